//! `codegate-bench`: the benchmark of DESIGN §7.
//!
//! Starts a (release) `codegate serve` on a fresh data directory, loads codes
//! by generate and by import, drives signed verify requests with distinct
//! codes, then the read endpoints and `/healthz`, and reports requests/s,
//! latency percentiles, errors and the server's peak RSS.

mod cpu;
mod load;
mod plans;
mod report;
mod server;
mod setup;

use anyhow::{bail, Result};
use clap::Parser;
use cpu::CpuMark;
use load::run_step;
use plans::{unsigned_get_plan, Signer};
use report::{Bulk, Config, Machine, Report, Row};
use server::{Server, ServerOptions};
use setup::Admin;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// By-code lookups cycle over at most this many codes.
const BY_CODE_POOL: usize = 10_000;

#[derive(Parser, Debug)]
#[command(name = "codegate-bench", about = "Benchmarks a codegate server against the targets of DESIGN §7")]
struct Args {
    /// The server binary (build it with `cargo build --release -p codegate`).
    #[arg(long, default_value = "target/release/codegate")]
    server_bin: PathBuf,
    /// Codes to generate, and again to import into a second project.
    #[arg(long, default_value_t = 1_000_000)]
    codes: u64,
    /// Seconds per verify step and for /healthz.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds per read endpoint.
    #[arg(long, default_value_t = 3)]
    read_secs: u64,
    /// Connection counts of the verify steps.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    connections: Vec<usize>,
    /// Connections for the read endpoints.
    #[arg(long, default_value_t = 16)]
    read_connections: usize,
    /// Connections for /healthz.
    #[arg(long, default_value_t = 64)]
    healthz_connections: usize,
    /// Threads of the load generator (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Passed to the server as CODEGATE_DATABASE_URL (e.g. postgres://…).
    #[arg(long)]
    database_url: Option<String>,
    /// Do not set CODEGATE_RATE_LIMITS=off.
    #[arg(long)]
    keep_rate_limits: bool,
    /// Print the report as JSON on stdout (the markdown table goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs positive counts, e.g. 1,16,64");
    }
    if args.codes == 0 {
        bail!("--codes must be at least 1");
    }
    let runtime = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads).enable_all().build()?
    };
    let server = Server::start(&ServerOptions {
        bin: args.server_bin.clone(),
        database_url: args.database_url.clone(),
        keep_rate_limits: args.keep_rate_limits,
    })?;
    progress(&format!("server pid {} listening on {}", server.pid(), server.base));
    let report = match runtime.block_on(run(&args, &server)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("server log tail:\n{}\n", server.log_tail());
            return Err(e);
        }
    };
    let table = report.markdown();
    if args.json {
        eprintln!("{table}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{table}");
    }
    Ok(())
}

fn progress(msg: &str) {
    eprintln!("[codegate-bench] {msg}");
}

async fn run(args: &Args, server: &Server) -> Result<Report> {
    let load_at_start = report::load_average();
    let admin = Admin::new(&server.base, &server.token)?;
    let stamp = std::process::id();
    let pid = admin.create_project(&format!("bench generate {stamp}")).await?;
    let import_pid = admin.create_project(&format!("bench import {stamp}")).await?;
    let key = admin.create_key(&pid).await?;
    let mut bulk = Vec::new();

    progress(&format!("generating {} codes", args.codes));
    let g = admin.generate(&pid, args.codes).await?;
    bulk.push(Bulk {
        name: "generate".into(),
        codes: g.value,
        secs: g.secs,
        codes_per_sec: g.value as f64 / g.secs,
        note: "one POST …/codes/generate per 1,000,000".into(),
    });
    progress(&format!("importing {} codes", args.codes));
    let imp = admin.import(&import_pid, args.codes).await?;
    let (imported, rejected) = imp.value;
    bulk.push(Bulk {
        name: "import".into(),
        codes: imported,
        secs: imp.secs,
        codes_per_sec: imported as f64 / imp.secs,
        note: format!("one POST …/codes/import of a CSV; {rejected} rejected"),
    });
    progress("fetching the codes to redeem");
    let fetched = admin.unused_codes(&pid).await?;
    let (source, codes) = fetched.value;
    if codes.is_empty() {
        bail!("the server listed no unused codes to redeem");
    }
    bulk.push(Bulk {
        name: "fetch codes".into(),
        codes: codes.len() as u64,
        secs: fetched.secs,
        codes_per_sec: codes.len() as f64 / fetched.secs,
        note: source.label().into(),
    });

    let signer = Signer { host: server.addr.to_string(), credentials: key };
    let duration = Duration::from_secs(args.duration_secs);
    let mut rows = Vec::new();
    let mut verify_rss = 0u64;
    let mut used = 0usize;
    for (i, &conns) in args.connections.iter().enumerate() {
        // Each step gets a fair share of what is left, so later steps never start empty.
        let share = (codes.len() - used) / (args.connections.len() - i);
        let plan = Arc::new(signer.verify_plan(&pid, &codes[used..used + share]));
        progress(&format!("verify at {conns} connections ({share} codes signed)"));
        server.rss.take_window_peak();
        let cpu = CpuMark::now(server.pid());
        let r = run_step(server.addr, plan, conns, duration).await;
        let cpu = cpu.used();
        let rss = server.rss.take_window_peak();
        verify_rss = verify_rss.max(rss);
        used += (r.requests as usize).min(share);
        rows.push(Row::new("verify", conns, r, rss, cpu));
        settle().await;
    }

    let read_time = Duration::from_secs(args.read_secs);
    let p = format!("/api/v1/projects/{pid}");
    let reads = [
        ("project info", signer.get_plan(std::slice::from_ref(&p))),
        ("statistics", signer.get_plan(&[format!("{p}/statistics")])),
        ("list page 1", signer.get_plan(&[format!("{p}/codes?page=1&page_size=20")])),
        ("list page 10000", signer.get_plan(&[format!("{p}/codes?page_size=20&page=10000")])),
        (
            // Redeemed codes first: their answers carry a verification log.
            "by-code",
            signer.by_code_plan(&pid, &codes[..codes.len().min(BY_CODE_POOL)]),
        ),
    ];
    for (name, plan) in reads {
        progress(&format!("{name} at {} connections", args.read_connections));
        server.rss.take_window_peak();
        let cpu = CpuMark::now(server.pid());
        let r = run_step(server.addr, Arc::new(plan), args.read_connections, read_time).await;
        let cpu = cpu.used();
        rows.push(Row::new(name, args.read_connections, r, server.rss.take_window_peak(), cpu));
    }

    progress(&format!("/healthz at {} connections", args.healthz_connections));
    server.rss.take_window_peak();
    let host = server.addr.to_string();
    let cpu = CpuMark::now(server.pid());
    let r =
        run_step(server.addr, Arc::new(unsigned_get_plan(&host, "/healthz")), args.healthz_connections, duration).await;
    let cpu = cpu.used();
    rows.push(Row::new("healthz", args.healthz_connections, r, server.rss.take_window_peak(), cpu));

    let mut report = Report {
        machine: Machine::probe(load_at_start),
        config: Config {
            codes: args.codes,
            duration_secs: args.duration_secs,
            read_secs: args.read_secs,
            connections: args.connections.clone(),
            read_connections: args.read_connections,
            healthz_connections: args.healthz_connections,
            client_threads: args.client_threads.max(1),
            database: database_label(args.database_url.as_deref()),
            rate_limits: if args.keep_rate_limits { "kept" } else { "off (CODEGATE_RATE_LIMITS=off)" },
            server_bin: args.server_bin.display().to_string(),
        },
        codes_source: source.label().into(),
        bulk,
        rows,
        server_peak_rss_mb: server.rss.high_water_mark() as f64 / (1024.0 * 1024.0),
        server_rss_during_verify_mb: verify_rss as f64 / (1024.0 * 1024.0),
        targets: Vec::new(),
    };
    report.judge();
    Ok(report)
}

/// Lets the server finish the previous step's work (group commits, closed
/// connections) before the next step is timed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The kind of database, never the URL (it may hold a password).
fn database_label(url: Option<&str>) -> String {
    match url {
        None | Some("") => "SQLite (default, in the data directory)".into(),
        Some(u) => u.split_once(':').map_or("custom", |(scheme, _)| scheme).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_label_never_shows_credentials() {
        assert_eq!(database_label(Some("postgres://u:secret@db/x")), "postgres");
        assert!(database_label(None).starts_with("SQLite"));
    }

    #[test]
    fn connection_counts_parse_from_a_comma_list() {
        let a = Args::try_parse_from(["codegate-bench", "--connections", "2,8"]).unwrap();
        assert_eq!(a.connections, vec![2, 8]);
        assert_eq!(a.codes, 1_000_000);
    }
}
