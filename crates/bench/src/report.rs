//! The report: a markdown table, a JSON document, and a verdict per DESIGN §7
//! target. It reports; it never fails a run on a timing.

use crate::cpu::{CpuUse, ThreadUse};
use crate::load::StepResult;
use serde::Serialize;

const MB: f64 = 1024.0 * 1024.0;

#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_total_mb: u64,
    /// /proc/loadavg at the start and the end of the run: other work on the
    /// machine skews every number, so the report says how busy it was.
    pub load_at_start: String,
    pub load_at_end: String,
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn probe(load_at_start: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            mem_total_mb: mem_kb / 1024,
            load_at_start,
            load_at_end: load_average(),
        }
    }
}

#[derive(Serialize)]
pub struct Config {
    pub codes: u64,
    pub duration_secs: u64,
    pub read_secs: u64,
    pub connections: Vec<usize>,
    pub read_connections: usize,
    pub healthz_connections: usize,
    pub client_threads: usize,
    pub database: String,
    pub rate_limits: &'static str,
    pub server_bin: String,
}

#[derive(Serialize)]
pub struct Bulk {
    pub name: String,
    pub codes: u64,
    pub secs: f64,
    pub codes_per_sec: f64,
    pub note: String,
}

#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub peak_rss_mb: f64,
    /// The server's CPU time (user and system, all threads) per request, in microseconds.
    pub server_cpu_us: f64,
    /// The load generator's own CPU time per request, in microseconds (it shares the machine).
    pub client_cpu_us: f64,
    /// How much of all cores' time stayed idle during the step, in per cent
    /// (`None` where /proc/stat cannot be read).
    pub machine_idle_pct: Option<f64>,
    /// The server's threads by name during the step, busiest first.
    pub server_threads: Vec<ThreadUse>,
    pub note: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
}

impl Row {
    /// `cpu`: what the server, the load generator and the machine did during the step.
    pub fn new(name: &str, connections: usize, r: StepResult, peak_rss: u64, cpu: CpuUse) -> Row {
        let ms = |q: f64| r.histogram.value_at_quantile(q) as f64 / 1000.0;
        let per_request_us = |secs: f64| if r.requests > 0 { secs * 1e6 / r.requests as f64 } else { 0.0 };
        Row {
            name: name.to_owned(),
            connections,
            requests: r.requests,
            errors: r.errors,
            secs: r.secs,
            rps: if r.secs > 0.0 { r.requests as f64 / r.secs } else { 0.0 },
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: r.histogram.max() as f64 / 1000.0,
            peak_rss_mb: peak_rss as f64 / MB,
            server_cpu_us: per_request_us(cpu.server_secs),
            client_cpu_us: per_request_us(cpu.client_secs),
            machine_idle_pct: cpu.idle_share.map(|share| share * 100.0),
            server_threads: cpu.threads,
            note: if r.exhausted { "stopped early: its share of codes ran out".to_owned() } else { String::new() },
            error_samples: r.error_samples,
        }
    }
}

#[derive(Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
    pub detail: String,
}

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub config: Config,
    pub codes_source: String,
    pub bulk: Vec<Bulk>,
    pub rows: Vec<Row>,
    pub server_peak_rss_mb: f64,
    pub server_rss_during_verify_mb: f64,
    pub targets: Vec<Target>,
}

fn short(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// At most `limit` ms (judged on p99).
fn latency_target(name: &str, row: Option<&Row>, limit: f64) -> Option<Target> {
    let row = row?;
    let met = row.p99_ms <= limit;
    Some(Target {
        target: format!("{name}: p99 ≤ {limit} ms"),
        measured: format!("p99 {:.2} ms (p50 {:.2} ms) at {} connections", row.p99_ms, row.p50_ms, row.connections),
        met,
        detail: if met {
            format!("{:.2} ms under", limit - row.p99_ms)
        } else {
            format!("{:.2} ms over ({:.1}×)", row.p99_ms - limit, row.p99_ms / limit)
        },
    })
}

fn throughput_detail(measured: f64, goal: f64) -> (bool, String) {
    let met = measured >= goal;
    let detail = if met {
        format!("{:.0}/s above", measured - goal)
    } else {
        format!("{:.0}/s ({:.0} %) short", goal - measured, (goal - measured) / goal * 100.0)
    };
    (met, detail)
}

impl Report {
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The verify row judged against the targets: 64 connections, else the most.
    fn verify_row(&self) -> Option<&Row> {
        let verify = self.rows.iter().filter(|r| r.name == "verify");
        verify.clone().find(|r| r.connections == 64).or_else(|| verify.max_by_key(|r| r.connections))
    }

    /// Fills `targets` from the measurements (DESIGN §7).
    pub fn judge(&mut self) {
        let mut t = Vec::new();
        let scale = if self.config.codes == 1_000_000 {
            String::new()
        } else {
            format!(" (at {} codes; the target is set at 1,000,000)", self.config.codes)
        };
        if let Some(v) = self.verify_row() {
            let (met, detail) = throughput_detail(v.rps, 25_000.0);
            t.push(Target {
                target: "verify ≥ 25,000 redemptions/s at 64 connections".into(),
                measured: format!("{:.0}/s at {} connections", v.rps, v.connections),
                met,
                detail,
            });
            t.extend(latency_target("verify", Some(v), 10.0));
            if let Some(h) = self.row("healthz") {
                let share = v.rps / h.rps.max(1.0);
                let (met, detail) = throughput_detail(v.rps, h.rps * 0.5);
                t.push(Target {
                    target: "verify ≥ 50 % of /healthz throughput".into(),
                    measured: format!("{:.0} % ({:.0}/s vs {:.0}/s)", share * 100.0, v.rps, h.rps),
                    met,
                    detail,
                });
            }
        }
        for (name, limit) in
            [("statistics", 5.0), ("project info", 5.0), ("list page 1", 10.0), ("list page 10000", 10.0)]
        {
            if let Some(mut target) = latency_target(name, self.row(name), limit) {
                target.detail.push_str(&scale);
                t.push(target);
            }
        }
        for b in self.bulk.iter().filter(|b| b.name.starts_with("generate") || b.name.starts_with("import")) {
            let met = b.secs <= 10.0;
            t.push(Target {
                target: format!("{} 1,000,000 codes ≤ 10 s", b.name),
                measured: format!("{:.2} s for {} codes", b.secs, b.codes),
                met,
                detail: if met {
                    format!("{:.2} s under{scale}", 10.0 - b.secs)
                } else {
                    format!("{:.2} s over{scale}", b.secs - 10.0)
                },
            });
        }
        let rss = self.server_rss_during_verify_mb;
        let met = rss <= 150.0;
        t.push(Target {
            target: "server RSS ≤ 150 MB while serving verify".into(),
            measured: format!("{rss:.1} MB peak during verify"),
            met,
            detail: if met {
                format!("{:.1} MB under{scale}", 150.0 - rss)
            } else {
                format!("{:.1} MB over{scale}", rss - 150.0)
            },
        });
        self.targets = t;
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let c = &self.config;
        let mut s = format!(
            "## codegate-bench\n\nMachine: {} × {}, {} MB RAM; load average {} at the start, {} at the end. \
             Database: {}. Rate limits: {}. Codes: {}. Load generator: {} thread(s), on the same machine.\n\n",
            m.nproc,
            m.cpu,
            m.mem_total_mb,
            m.load_at_start,
            m.load_at_end,
            c.database,
            c.rate_limits,
            c.codes,
            c.client_threads
        );
        s.push_str("| bulk operation | codes | time | codes/s | note |\n|---|---:|---:|---:|---|\n");
        for b in &self.bulk {
            s.push_str(&format!(
                "| {} | {} | {:.2} s | {:.0} | {} |\n",
                b.name, b.codes, b.secs, b.codes_per_sec, b.note
            ));
        }
        s.push_str(&format!("\nCodes to redeem from: {}.\n\n", self.codes_source));
        s.push_str(
            "| requests | conns | requests/s | p50 ms | p99 ms | max ms | errors | total | peak RSS MB | server CPU µs/req | load generator CPU µs/req | machine idle % | note |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} | {:.0} | {:.0} | {} | {} |\n",
                r.name,
                r.connections,
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors,
                r.requests,
                r.peak_rss_mb,
                r.server_cpu_us,
                r.client_cpu_us,
                r.machine_idle_pct.map_or_else(|| "–".to_owned(), |p| format!("{p:.0}")),
                r.note
            ));
        }
        s.push_str(&threads_section(&self.rows));
        s.push_str(&format!(
            "\nServer peak RSS (VmHWM, whole run incl. bulk loads): {:.1} MB; during verify: {:.1} MB.\n\n",
            self.server_peak_rss_mb, self.server_rss_during_verify_mb
        ));
        s.push_str("### DESIGN §7 targets\n\n");
        for t in &self.targets {
            s.push_str(&format!("- {}: **{}** — {}; {}\n", t.target, short(t.met), t.measured, t.detail));
        }
        for r in self.rows.iter().filter(|r| !r.error_samples.is_empty()) {
            s.push_str(&format!(
                "\nErrors seen in '{}' ({} conns): {}\n",
                r.name,
                r.connections,
                r.error_samples.join(" | ")
            ));
        }
        s
    }
}

/// Per step, how busy each of the server's threads (by name) and the load
/// generator were, in per cent of one core: a stage near 100 % caps the step;
/// with none near it and the machine idle, the step waits on something else.
fn threads_section(rows: &[Row]) -> String {
    let mut s = String::from(
        "\nBusy threads, in % of one core: the server's by name (×N where several share it; tokio names its \
         HTTP workers and the blocking threads that run SQLite reads alike, `tokio-rt-worker`), with the time they \
         were ready to run but waited for a core; then the load generator.\n\n",
    );
    for r in rows.iter().filter(|r| !r.server_threads.is_empty()) {
        let server: Vec<String> = r
            .server_threads
            .iter()
            .filter(|t| t.busy_pct >= 1.0)
            .map(|t| {
                let several = if t.threads > 1 { format!(" ×{}", t.threads) } else { String::new() };
                let queued = t.queued_pct.map_or_else(String::new, |q| format!(" (queued {q:.0})"));
                format!("{}{several} {:.0}{queued}", t.name, t.busy_pct)
            })
            .collect();
        let client_pct = if r.secs > 0.0 { r.client_cpu_us * r.requests as f64 / 1e6 / r.secs * 100.0 } else { 0.0 };
        s.push_str(&format!(
            "- {} at {}: {}; load generator {client_pct:.0}\n",
            r.name,
            r.connections,
            server.join(", ")
        ));
    }
    s
}
