//! `codegate codes …`: generate, import, export, list, show, verify, disable, enable.

use super::{parse_json_object, parse_time, ProjectArg, Remote};
use crate::output::{self, fmt_time, or_dash, print_json, print_table};
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use codegate_client::{
    BulkAction, BulkRequest, Client, Code, CodeFilter, CodeUpdate, ExportOptions, FileFormat, GenerateRequest,
    HmacCredentials, ListCodes, ProjectClient,
};
use futures_util::TryStreamExt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl From<Format> for FileFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Csv => FileFormat::Csv,
            Format::Jsonl => FileFormat::Jsonl,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Status {
    Unused,
    Used,
    Disabled,
    Expired,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Unused => "unused",
            Status::Used => "used",
            Status::Disabled => "disabled",
            Status::Expired => "expired",
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct FilterArgs {
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Substring of the code.
    #[arg(long)]
    search: Option<String>,
    /// Only codes of this batch.
    #[arg(long = "batch")]
    batch: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> CodeFilter {
        CodeFilter {
            status: self.status.map(|s| s.as_str().to_owned()),
            search: self.search.clone(),
            batch_id: self.batch.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum CodesCmd {
    /// Generate a batch of random codes (printed one per line, or to --out).
    Generate {
        #[command(flatten)]
        project: ProjectArg,
        /// How many codes.
        #[arg(long, short = 'n')]
        count: u64,
        #[command(flatten)]
        rules: super::projects::RuleArgs,
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
        /// How often each code may be redeemed.
        #[arg(long)]
        max_uses: Option<i64>,
        /// JSON object attached to every code, returned on a successful verify.
        #[arg(long, value_parser = parse_json_object)]
        metadata: Option<serde_json::Value>,
        #[arg(long)]
        batch_name: Option<String>,
        /// Write the codes to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import codes from a CSV (header row naming `code`) or JSON Lines file.
    Import {
        #[command(flatten)]
        project: ProjectArg,
        file: PathBuf,
        /// Default: from the file extension (.jsonl/.ndjson → jsonl, else csv).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Export codes as CSV or JSON Lines, to stdout or --out.
    Export {
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List codes, newest first.
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        page_size: u32,
        /// Every matching code (walks all pages).
        #[arg(long, conflicts_with = "page")]
        all: bool,
    },
    /// Show one code and its verification log.
    Show {
        #[command(flatten)]
        project: ProjectArg,
        /// The code (or its id with --id).
        code: String,
        #[arg(long)]
        id: bool,
    },
    /// Redeem a code (with the token, or signed with --api-key/--secret).
    Verify {
        #[command(flatten)]
        project: ProjectArg,
        code: String,
        /// Who redeems it (e.g. your user id).
        #[arg(long = "by")]
        verified_by: Option<String>,
        /// Sign with this API key instead of using the token.
        #[arg(long, env = "CODEGATE_API_KEY", requires = "secret")]
        api_key: Option<String>,
        /// The API key's secret.
        #[arg(long, env = "CODEGATE_SECRET", hide_env_values = true, requires = "api_key")]
        secret: Option<String>,
    },
    /// Disable codes so they cannot be redeemed.
    Disable(Toggle),
    /// Enable disabled codes again.
    Enable(Toggle),
}

#[derive(clap::Args)]
pub struct Toggle {
    #[command(flatten)]
    project: ProjectArg,
    /// Codes (or ids with --id).
    codes: Vec<String>,
    #[arg(long)]
    id: bool,
    /// Every code of this batch instead.
    #[arg(long = "batch", conflicts_with = "codes")]
    batch: Option<String>,
}

pub async fn run(remote: &Remote, cmd: CodesCmd) -> anyhow::Result<()> {
    match cmd {
        CodesCmd::Generate { project, count, rules, expires_at, max_uses, metadata, batch_name, out } => {
            let req = GenerateRequest {
                count,
                length: rules.length,
                prefix: rules.prefix,
                suffix: rules.suffix,
                charset: rules.charset,
                group: rules.group,
                check_char: rules.check_char.then_some(true),
                expires_at,
                max_uses,
                metadata,
                batch_name,
            };
            generate(remote, &project, req, out.as_deref()).await
        }
        CodesCmd::Import { project, file, format } => import(remote, &project, &file, format).await,
        CodesCmd::Export { project, format, filter, out } => {
            export(remote, &project, format, &filter, out.as_deref()).await
        }
        CodesCmd::List { project, filter, page, page_size, all } => {
            list(remote, &project, &filter, page, page_size, all).await
        }
        CodesCmd::Show { project, code, id } => {
            let p = remote.client()?.project(&project.project);
            let c = if id { p.get_code(&code).await? } else { p.get_code_by_code(&code).await? };
            show(remote, &c)
        }
        CodesCmd::Verify { project, code, verified_by, api_key, secret } => {
            let client = match (api_key, secret) {
                (Some(k), Some(s)) => Client::new(&remote.url, HmacCredentials::new(k, s))?,
                _ => remote.client()?,
            };
            let r = client.project(&project.project).verify_code(&code, verified_by.as_deref()).await?;
            if remote.json {
                print_json(&r)?;
            } else if r.success {
                println!("verified {} ({})", r.code, r.message);
                if let Some(m) = r.metadata.as_ref().filter(|m| !m.is_null()) {
                    println!("metadata: {m}");
                }
            }
            if !r.success {
                bail!("{} ({})", r.message, r.error_code.as_deref().unwrap_or("FAILED"));
            }
            Ok(())
        }
        CodesCmd::Disable(t) => toggle(remote, t, true).await,
        CodesCmd::Enable(t) => toggle(remote, t, false).await,
    }
}

async fn generate(
    remote: &Remote,
    project: &ProjectArg,
    req: GenerateRequest,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let p = remote.client()?.project(&project.project);
    let spinner = output::spinner(&format!("generating {} codes", req.count));
    let result = p.generate(&req).await;
    spinner.finish_and_clear();
    let result = result?;
    if remote.json && out.is_none() {
        return print_json(&result);
    }
    match out {
        Some(path) => {
            let mut file = create(path).await?;
            let mut written = 0u64;
            if result.codes_inline {
                for code in &result.codes {
                    file.write_all(format!("{code}\n").as_bytes()).await?;
                }
                written = result.codes.len() as u64;
            } else {
                // Too many to come inline: walk the batch by cursor.
                let bar = output::items(result.count, "downloading codes");
                let filter = CodeFilter { batch_id: Some(result.batch_id.clone()), ..Default::default() };
                let mut codes = std::pin::pin!(p.codes(filter));
                while let Some(code) = codes.try_next().await? {
                    file.write_all(format!("{}\n", code.code).as_bytes()).await?;
                    written += 1;
                    bar.set_position(written);
                }
                bar.finish_and_clear();
            }
            file.flush().await?;
            if remote.json {
                print_json(&json!({
                    "batch_id": result.batch_id,
                    "count": result.count,
                    "file": path,
                    "written": written,
                }))?;
            } else {
                eprintln!(
                    "generated {} codes in batch {}; wrote {written} to {}",
                    result.count,
                    result.batch_id,
                    path.display()
                );
            }
        }
        None => {
            for code in &result.codes {
                println!("{code}");
            }
            eprintln!("generated {} codes in batch {}", result.count, result.batch_id);
            if !result.codes_inline {
                eprintln!(
                    "too many to print here: use --out FILE, or `codegate codes export --batch {}`",
                    result.batch_id
                );
            }
        }
    }
    Ok(())
}

async fn create(path: &Path) -> anyhow::Result<tokio::fs::File> {
    tokio::fs::File::create(path).await.with_context(|| format!("cannot create {}", path.display()))
}

async fn import(remote: &Remote, project: &ProjectArg, file: &Path, format: Option<Format>) -> anyhow::Result<()> {
    let p = remote.client()?.project(&project.project);
    let format =
        format.unwrap_or_else(|| match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
            Some(e) if e == "jsonl" || e == "ndjson" => Format::Jsonl,
            _ => Format::Csv,
        });
    let reader = tokio::fs::File::open(file).await.with_context(|| format!("cannot open {}", file.display()))?;
    let size = reader.metadata().await.ok().map(|m| m.len());
    let bar = output::bytes(size, "uploading");
    let progress = {
        let bar = bar.clone();
        Arc::new(move |n: u64| {
            bar.set_position(n);
            if Some(n) == size {
                // The server parses and stores only once the whole file is in.
                bar.set_message("uploaded; the server is importing");
            }
        })
    };
    let result = p.import(format.into(), reader, Some(progress)).await;
    bar.finish_and_clear();
    let result = result?;
    if remote.json {
        return print_json(&result);
    }
    println!("imported {} codes into batch {}; {} rejected", result.imported, result.batch_id, result.rejected.len());
    const SHOWN: usize = 20;
    for r in result.rejected.iter().take(SHOWN) {
        eprintln!("  line {}: {}: {}", r.line, r.code.as_deref().unwrap_or("-"), r.reason);
    }
    if result.rejected.len() > SHOWN {
        eprintln!("  … and {} more (use --json for all)", result.rejected.len() - SHOWN);
    }
    Ok(())
}

/// Counts the lines that pass through, to report rows written.
struct LineCounter<W> {
    inner: W,
    lines: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LineCounter<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.lines += buf[..*n].iter().filter(|b| **b == b'\n').count() as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn export(
    remote: &Remote,
    project: &ProjectArg,
    format: Format,
    filter: &FilterArgs,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let p = remote.client()?.project(&project.project);
    let options = ExportOptions { format: format.into(), filter: filter.filter() };
    let Some(path) = out else {
        // Straight to stdout: the data is the output.
        let mut stdout = tokio::io::stdout();
        return match p.export(&options, &mut stdout, None).await {
            // The reader (e.g. `head`) has seen enough: not an error.
            Err(codegate_client::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map(drop).map_err(Into::into),
        };
    };
    // Write beside the target and rename, so a failed export leaves no half file.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut writer = LineCounter { inner: create(&partial).await?, lines: 0 };
    let bar = output::bytes(None, "exporting");
    let progress = {
        let bar = bar.clone();
        Arc::new(move |n: u64| bar.set_position(n))
    };
    let result = p.export(&options, &mut writer, Some(progress)).await;
    bar.finish_and_clear();
    let bytes = match result {
        Ok(b) => b,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.into());
        }
    };
    tokio::fs::rename(&partial, path).await.with_context(|| format!("cannot write {}", path.display()))?;
    let rows = match format {
        Format::Csv => writer.lines.saturating_sub(1),
        Format::Jsonl => writer.lines,
    };
    if remote.json {
        print_json(&json!({"file": path, "rows": rows, "bytes": bytes}))
    } else {
        eprintln!("exported {rows} codes ({bytes} bytes) to {}", path.display());
        Ok(())
    }
}

fn code_row(c: &Code) -> Vec<String> {
    vec![
        c.code.clone(),
        c.state.clone().unwrap_or_else(|| {
            if c.is_disabled {
                "disabled"
            } else if c.status {
                "used"
            } else if c.is_expired {
                "expired"
            } else {
                "unused"
            }
            .into()
        }),
        format!("{}/{}", c.use_count.unwrap_or(i64::from(c.status)), c.max_uses.unwrap_or(1)),
        fmt_time(c.expires_at),
        or_dash(c.verified_by.as_deref()),
        fmt_time(c.created_at.into()),
        c.id.clone(),
    ]
}

const CODE_HEADERS: [&str; 7] = ["CODE", "STATE", "USES", "EXPIRES", "VERIFIED_BY", "CREATED", "ID"];

async fn list(
    remote: &Remote,
    project: &ProjectArg,
    filter: &FilterArgs,
    page: u32,
    page_size: u32,
    all: bool,
) -> anyhow::Result<()> {
    let p = remote.client()?.project(&project.project);
    if all {
        let codes = p.all_codes(filter.filter()).await?;
        if remote.json {
            return print_json(&codes);
        }
        print_table(&CODE_HEADERS, &codes.iter().map(code_row).collect::<Vec<_>>());
        eprintln!("{} codes", codes.len());
        return Ok(());
    }
    let result = p
        .list(&ListCodes { page: Some(page), page_size: Some(page_size), filter: filter.filter(), cursor: None })
        .await?;
    if remote.json {
        return print_json(&result);
    }
    print_table(&CODE_HEADERS, &result.items.iter().map(code_row).collect::<Vec<_>>());
    eprintln!("page {} of {} ({} codes)", result.page, result.total_pages, result.total);
    Ok(())
}

fn show(remote: &Remote, c: &Code) -> anyhow::Result<()> {
    if remote.json {
        return print_json(c);
    }
    let row = code_row(c);
    let fields = [
        ("code", row[0].clone()),
        ("id", c.id.clone()),
        ("state", row[1].clone()),
        ("uses", row[2].clone()),
        ("expires", row[3].clone()),
        ("verified at", fmt_time(c.verified_at)),
        ("verified by", row[4].clone()),
        ("batch", or_dash(c.batch_id.as_deref())),
        ("metadata", c.metadata.as_ref().filter(|m| !m.is_null()).map_or("-".into(), ToString::to_string)),
        ("created", row[5].clone()),
    ];
    for (k, v) in fields {
        println!("{k:<12} {v}");
    }
    let logs = c.verification_logs.as_deref().unwrap_or_default();
    if !logs.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = logs
            .iter()
            .map(|l| {
                vec![
                    fmt_time(Some(l.verified_at)),
                    l.result.clone(),
                    or_dash(l.verified_by.as_deref()),
                    or_dash(l.ip_address.as_deref()),
                ]
            })
            .collect();
        print_table(&["AT", "RESULT", "BY", "IP"], &rows);
    }
    Ok(())
}

async fn toggle(remote: &Remote, t: Toggle, disable: bool) -> anyhow::Result<()> {
    let p: ProjectClient = remote.client()?.project(&t.project.project);
    let verb = if disable { "disabled" } else { "enabled" };
    if let Some(batch) = t.batch {
        let r = p
            .bulk(&BulkRequest {
                action: if disable { BulkAction::Disable } else { BulkAction::Enable },
                ids: None,
                filter: Some(CodeFilter { batch_id: Some(batch.clone()), ..Default::default() }),
            })
            .await?;
        if remote.json {
            return print_json(&r);
        }
        println!("{verb} {} codes of batch {batch}", r.affected);
        return Ok(());
    }
    if t.codes.is_empty() {
        bail!("name the codes to change, or pass --batch");
    }
    let mut changed = Vec::new();
    for code in &t.codes {
        let id = if t.id { code.clone() } else { p.get_code_by_code(code).await?.id };
        let update = CodeUpdate { disabled: Some(disable), ..Default::default() };
        let c = p.update_code(&id, &update).await?;
        if !remote.json {
            println!("{verb} {}", c.code);
        }
        changed.push(c);
    }
    if remote.json {
        print_json(&changed)?;
    }
    Ok(())
}
