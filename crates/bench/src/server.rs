//! The server under test: `codegate init` + `codegate serve` on a fresh data
//! directory, and a sampler of its resident memory.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct ServerOptions {
    pub bin: PathBuf,
    pub database_url: Option<String>,
    pub keep_rate_limits: bool,
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub token: String,
    log_path: PathBuf,
    pub rss: RssSampler,
    _data_dir: tempfile::TempDir,
}

impl Server {
    pub fn start(opts: &ServerOptions) -> Result<Server> {
        if !opts.bin.exists() {
            bail!(
                "server binary {} not found: build it first (scripts/bench.sh runs `cargo build --release -p codegate -p codegate-bench`)",
                opts.bin.display()
            );
        }
        let data_dir = tempfile::Builder::new().prefix("codegate-bench-").tempdir()?;
        let token = init(opts, data_dir.path())?;
        let log_path = data_dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(&opts.bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("CODEGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log);
        if !opts.keep_rate_limits {
            cmd.env("CODEGATE_RATE_LIMITS", "off");
        }
        if let Some(url) = &opts.database_url {
            cmd.env("CODEGATE_DATABASE_URL", url);
        }
        let mut child = cmd.spawn().context("spawn codegate serve")?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let base = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                bail!(
                    "the server exited ({status}) before listening; its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        let addr = base
            .strip_prefix("http://")
            .context("listen address is http://")?
            .parse()
            .context("listen address is IP:PORT")?;
        let rss = RssSampler::start(child.id());
        Ok(Server { child, base, addr, token, log_path, rss, _data_dir: data_dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server's log, for error reports.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.rss.stop();
        // The data directory is thrown away, so there is nothing to drain.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn init(opts: &ServerOptions, dir: &Path) -> Result<String> {
    let mut cmd = Command::new(&opts.bin);
    cmd.args(["init", "--json", "--data-dir"]).arg(dir);
    if let Some(url) = &opts.database_url {
        cmd.env("CODEGATE_DATABASE_URL", url);
    }
    let out = cmd.output().context("run codegate init")?;
    if !out.status.success() {
        bail!("codegate init failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("codegate init --json prints JSON")?;
    v["token"].as_str().map(str::to_owned).context("init printed no token")
}

/// Samples VmRSS of a process every 50 ms; `take_window_peak` gives the
/// largest value seen since the previous call, so each step has its own peak.
pub struct RssSampler {
    pid: u32,
    window_peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let window_peak_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let peak = window_peak_kb.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS:") {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        RssSampler { pid, window_peak_kb, stop, thread: Some(thread) }
    }

    /// Peak RSS in bytes since the last call (at least the current RSS).
    pub fn take_window_peak(&self) -> u64 {
        let now = status_kb(self.pid, "VmRSS:").unwrap_or(0);
        self.window_peak_kb.swap(0, Ordering::Relaxed).max(now) * 1024
    }

    /// The kernel's high-water mark of the process's RSS, in bytes.
    pub fn high_water_mark(&self) -> u64 {
        status_kb(self.pid, "VmHWM:").unwrap_or(0) * 1024
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `kB` field of /proc/<pid>/status.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
