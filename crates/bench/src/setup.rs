//! Loading the data: projects, an API key, generated and imported codes, and
//! the list of codes to redeem. Every call goes through the client crate
//! (`codegate_client`) with the Bearer token: typed answers, typed errors.

use anyhow::{Context, Result};
use codegate_client::{
    Client, CodeFilter, ExportOptions, FileFormat, GenerateRequest, HmacCredentials, NewProject, ProjectClient,
};
use futures_util::TryStreamExt;
use rand::Rng;
use std::time::{Duration, Instant};

/// Most codes one generate request may ask for (api-contract.md).
const MAX_GENERATE: u64 = 1_000_000;
/// The default charset of generated codes (DESIGN §4).
const CHARSET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub struct Admin {
    client: Client,
}

/// How long a bulk operation took.
pub struct Timed<T> {
    pub value: T,
    pub secs: f64,
}

/// Where the codes to redeem came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodesSource {
    Export,
    CursorWalk,
}

impl CodesSource {
    pub fn label(self) -> &'static str {
        match self {
            CodesSource::Export => "export (GET …/codes/export?format=csv&status=unused)",
            CodesSource::CursorWalk => "cursor walk (GET …/codes?page_size=100&cursor=…)",
        }
    }
}

fn unused() -> CodeFilter {
    CodeFilter { status: Some("unused".into()), ..Default::default() }
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Result<Admin> {
        let client = Client::builder(base, codegate_client::BearerToken(token.to_owned()))
            // Bulk calls on a million codes take a while.
            .timeout(Duration::from_secs(900))
            .long_timeout(Duration::from_secs(900))
            .build()?;
        Ok(Admin { client })
    }

    fn project(&self, pid: &str) -> ProjectClient {
        self.client.project(pid)
    }

    pub async fn create_project(&self, name: &str) -> Result<String> {
        let new =
            NewProject { name: name.to_owned(), description: Some("codegate-bench".into()), ..Default::default() };
        Ok(self.client.create_project(&new).await.context("create a project")?.id)
    }

    /// A new API key of the project, as the signer of the SDK traffic.
    pub async fn create_key(&self, pid: &str) -> Result<HmacCredentials> {
        let key = self.project(pid).create_api_key(Some("codegate-bench")).await.context("create an API key")?;
        let secret = key.secret.context("a new API key comes with its secret")?;
        Ok(HmacCredentials::new(key.api_key, secret))
    }

    /// Generates `count` codes (one request per million) and times it.
    pub async fn generate(&self, pid: &str, count: u64) -> Result<Timed<u64>> {
        let project = self.project(pid);
        let start = Instant::now();
        let mut made = 0;
        while made < count {
            let req = GenerateRequest {
                count: (count - made).min(MAX_GENERATE),
                batch_name: Some("bench".into()),
                metadata: Some(serde_json::json!({"plan": "pro"})),
                ..Default::default()
            };
            made += project.generate(&req).await.context("generate codes")?.count;
        }
        Ok(Timed { value: made, secs: start.elapsed().as_secs_f64() })
    }

    /// Imports a CSV of `count` fresh random codes; returns (imported, rejected).
    pub async fn import(&self, pid: &str, count: u64) -> Result<Timed<(u64, u64)>> {
        let csv = std::io::Cursor::new(fresh_codes_csv(count));
        let start = Instant::now();
        let done = self.project(pid).import(FileFormat::Csv, csv, None).await.context("import codes")?;
        Ok(Timed { value: (done.imported, done.rejected.len() as u64), secs: start.elapsed().as_secs_f64() })
    }

    /// The project's unused codes: by export when the server has it, else by
    /// walking the list with a cursor.
    pub async fn unused_codes(&self, pid: &str) -> Result<Timed<(CodesSource, Vec<String>)>> {
        let project = self.project(pid);
        let start = Instant::now();
        let mut csv = Vec::new();
        let options = ExportOptions { format: FileFormat::Csv, filter: unused() };
        let found = match project.export(&options, &mut csv, None).await {
            Ok(_) => (CodesSource::Export, codes_from_csv(&csv)?),
            // A server without export.
            Err(e) if matches!(e.status(), Some(404 | 405)) => (CodesSource::CursorWalk, walk(&project).await?),
            Err(e) => return Err(e).context("export the unused codes"),
        };
        Ok(Timed { value: found, secs: start.elapsed().as_secs_f64() })
    }
}

/// Every unused code, page by page with the listing's cursor.
async fn walk(project: &ProjectClient) -> Result<Vec<String>> {
    let mut codes = Vec::new();
    let pages = project.code_pages(unused());
    futures_util::pin_mut!(pages);
    while let Some(page) = pages.try_next().await.context("list the unused codes")? {
        codes.extend(page.items.into_iter().map(|c| c.code));
    }
    Ok(codes)
}

/// The `code` column of an export.
fn codes_from_csv(bytes: &[u8]) -> Result<Vec<String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let col = reader.headers()?.iter().position(|h| h == "code").context("the export has a 'code' column")?;
    let mut codes = Vec::new();
    for record in reader.records() {
        if let Some(code) = record?.get(col) {
            codes.push(code.to_owned());
        }
    }
    Ok(codes)
}

/// `code\n` then `count` random 12-character codes from the default charset.
fn fresh_codes_csv(count: u64) -> Vec<u8> {
    let mut rng = rand::rng();
    let mut out = Vec::with_capacity(5 + count as usize * 13);
    out.extend_from_slice(b"code\n");
    for _ in 0..count {
        for _ in 0..12 {
            out.push(CHARSET[rng.random_range(0..CHARSET.len())]);
        }
        out.push(b'\n');
    }
    out
}
