//! Loading the data: projects, an API key, generated and imported codes, and
//! the list of codes to redeem. Management calls use the Bearer token.

use anyhow::{bail, Context, Result};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Most codes one generate request may ask for (api-contract.md).
const MAX_GENERATE: u64 = 1_000_000;
/// The default charset of generated codes (DESIGN §4).
const CHARSET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

pub struct ApiKey {
    pub api_key: String,
    pub secret: String,
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

impl Admin {
    pub fn new(base: &str, token: &str) -> Result<Admin> {
        Ok(Admin {
            // Bulk calls on a million codes take a while.
            http: reqwest::Client::builder().timeout(Duration::from_secs(900)).build()?,
            base: base.to_owned(),
            token: token.to_owned(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        Ok((status, resp.bytes().await?))
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, bytes) = self.call(method.clone(), path, "application/json", body).await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn create_project(&self, name: &str) -> Result<String> {
        let p = self
            .json(Method::POST, "/api/v1/projects", Some(json!({"name": name, "description": "codegate-bench"})))
            .await?;
        p["id"].as_str().map(str::to_owned).context("project id")
    }

    pub async fn create_key(&self, pid: &str) -> Result<ApiKey> {
        let k = self
            .json(Method::POST, &format!("/api/v1/projects/{pid}/api-keys"), Some(json!({"name": "codegate-bench"})))
            .await?;
        Ok(ApiKey {
            api_key: k["api_key"].as_str().context("api_key")?.to_owned(),
            secret: k["secret"].as_str().context("secret")?.to_owned(),
        })
    }

    /// Generates `count` codes (one request per million) and times it.
    pub async fn generate(&self, pid: &str, count: u64) -> Result<Timed<u64>> {
        let start = Instant::now();
        let mut made = 0;
        while made < count {
            let n = (count - made).min(MAX_GENERATE);
            let g = self
                .json(
                    Method::POST,
                    &format!("/api/v1/projects/{pid}/codes/generate"),
                    Some(json!({"count": n, "batch_name": "bench", "metadata": {"plan": "pro"}})),
                )
                .await?;
            made += g["count"].as_u64().context("generate answers a count")?;
        }
        Ok(Timed { value: made, secs: start.elapsed().as_secs_f64() })
    }

    /// Imports a CSV of `count` fresh random codes; returns (imported, rejected).
    pub async fn import(&self, pid: &str, count: u64) -> Result<Timed<(u64, u64)>> {
        let csv = fresh_codes_csv(count);
        let start = Instant::now();
        let (status, bytes) =
            self.call(Method::POST, &format!("/api/v1/projects/{pid}/codes/import"), "text/csv", csv).await?;
        let secs = start.elapsed().as_secs_f64();
        if !status.is_success() {
            bail!("import answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let v: Value = serde_json::from_slice(&bytes)?;
        let imported = v["imported"].as_u64().context("import answers imported")?;
        let rejected = v["rejected"].as_array().map_or(0, |r| r.len() as u64);
        Ok(Timed { value: (imported, rejected), secs })
    }

    /// The project's unused codes: by export when the server has it, else by
    /// walking the list with a cursor.
    pub async fn unused_codes(&self, pid: &str) -> Result<Timed<(CodesSource, Vec<String>)>> {
        let start = Instant::now();
        let path = format!("/api/v1/projects/{pid}/codes/export?format=csv&status=unused");
        let (status, bytes) = self.call(Method::GET, &path, "text/csv", Vec::new()).await?;
        let found = if status.is_success() {
            (CodesSource::Export, codes_from_csv(&bytes)?)
        } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            (CodesSource::CursorWalk, self.walk(pid).await?)
        } else {
            bail!("export answered {status}: {}", String::from_utf8_lossy(&bytes));
        };
        Ok(Timed { value: found, secs: start.elapsed().as_secs_f64() })
    }

    async fn walk(&self, pid: &str) -> Result<Vec<String>> {
        let mut codes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/projects/{pid}/codes?page_size=100&status=unused");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let page = self.json(Method::GET, &path, None).await?;
            let items = page["items"].as_array().context("list answers items")?;
            codes.extend(items.iter().filter_map(|c| c["code"].as_str().map(str::to_owned)));
            match page["next_cursor"].as_str() {
                Some(c) if !items.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(codes),
            }
        }
    }
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
