//! Runs the real benchmark with tiny numbers against the debug `codegate`
//! binary and checks the report's shape and behaviour (never its timings).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_codegate-bench");

/// The debug server binary: built next to this one by `cargo build --workspace`.
fn server_bin() -> PathBuf {
    let bin = std::env::var_os("CODEGATE_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(BENCH).parent().expect("the bench binary lives in a directory").join("codegate")
    });
    assert!(bin.exists(), "{} is missing: run `cargo build -p codegate` (or set CODEGATE_BIN) first", bin.display());
    bin
}

fn row<'a>(report: &'a Value, name: &str, connections: u64) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == name && r["connections"] == connections)
        .unwrap_or_else(|| panic!("no row '{name}' at {connections} connections: {report:#}"))
}

#[test]
fn a_tiny_run_reports_every_row_with_traffic_and_no_verify_errors() {
    let out = Command::new(BENCH)
        .args(["--codes", "2000", "--duration-secs", "1", "--read-secs", "1"])
        .args(["--connections", "1,16,64", "--json", "--server-bin"])
        .arg(server_bin())
        .output()
        .expect("run codegate-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the bench failed:\n{stderr}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("--json prints JSON ({e}):\n{stderr}"));

    let bulk = report["bulk"].as_array().expect("bulk");
    let codes_of = |name: &str| {
        bulk.iter().find(|b| b["name"] == name).unwrap_or_else(|| panic!("no bulk row '{name}'"))["codes"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(codes_of("generate"), 2000);
    assert_eq!(codes_of("import"), 2000);
    assert_eq!(codes_of("fetch codes"), 2000, "every generated code is unused");

    for conns in [1, 16, 64] {
        let v = row(&report, "verify", conns);
        assert!(v["rps"].as_f64().unwrap() > 0.0, "verify at {conns}: {v}");
        assert!(v["requests"].as_u64().unwrap() > 0, "verify at {conns}: {v}");
        assert_eq!(v["errors"], 0, "every verify redeems a fresh code: {v}");
    }
    // Distinct codes: the steps together never redeem more than there are.
    let redeemed: u64 = [1, 16, 64].iter().map(|c| row(&report, "verify", *c)["requests"].as_u64().unwrap()).sum();
    assert!(redeemed <= 2000, "{redeemed} verifies of 2000 codes");

    for name in ["project info", "statistics", "list page 1", "list page 10000", "by-code"] {
        let r = row(&report, name, 16);
        assert!(r["rps"].as_f64().unwrap() > 0.0, "{name}: {r}");
        assert_eq!(r["errors"], 0, "{name}: {r}");
    }
    let h = row(&report, "healthz", 64);
    assert!(h["rps"].as_f64().unwrap() > 0.0, "{h}");
    // Where the CPU went: both processes worked during the step (their CPU clocks
    // count nanoseconds: a step that ran out of codes within milliseconds still
    // shows its work), and the machine's idle share is a share.
    for r in [row(&report, "verify", 64), h] {
        assert!(r["server_cpu_us"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["client_cpu_us"].as_f64().unwrap() > 0.0, "{r}");
        let idle = r["machine_idle_pct"].as_f64().unwrap_or_else(|| panic!("/proc/stat is read on Linux: {r}"));
        assert!((0.0..=100.0).contains(&idle), "{r}");
    }

    // Which of the server's threads worked: redemptions go through the one SQLite writer.
    let threads = row(&report, "verify", 64)["server_threads"].as_array().expect("server_threads");
    let busy = |name: &str| threads.iter().find(|t| t["name"] == name).map_or(0.0, |t| t["busy_pct"].as_f64().unwrap());
    assert!(busy("sqlite-writer") > 0.0 && busy("tokio-rt-worker") > 0.0, "{threads:#?}");
    assert_eq!(threads.iter().filter(|t| t["name"] == "sqlite-writer").count(), 1);
    assert!(h["server_threads"].as_array().unwrap().iter().all(|t| t["name"] != "sqlite-writer"), "{h}");

    assert!(report["server_peak_rss_mb"].as_f64().unwrap() > 0.0);
    let targets = report["targets"].as_array().expect("targets");
    for t in ["verify ≥ 25,000", "statistics", "list page 10000", "RSS"] {
        assert!(
            targets.iter().any(|x| x["target"].as_str().unwrap().contains(t) && x["met"].is_boolean()),
            "a verdict on '{t}': {targets:#?}"
        );
    }
    // The markdown table goes to stderr when --json holds stdout.
    assert!(stderr.contains("| verify | 64 |"), "{stderr}");
    assert!(stderr.contains("- verify at 64: ") && stderr.contains("sqlite-writer "), "{stderr}");
}
