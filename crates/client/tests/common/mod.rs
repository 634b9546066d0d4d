//! Test harness: the real `codegate` binary (`CODEGATE_BIN`, else the one
//! `cargo build -p codegate` puts next to these tests) on a free port with a
//! fresh data directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The server binary: `CODEGATE_BIN`, or `codegate` in this profile's target directory.
pub fn server_bin() -> PathBuf {
    let bin = std::env::var_os("CODEGATE_BIN").map(PathBuf::from).unwrap_or_else(|| {
        // target/<profile>/deps/<this test> → target/<profile>/codegate
        let exe = std::env::current_exe().expect("the test knows its own path");
        exe.parent().and_then(|deps| deps.parent()).expect("tests live in target/<profile>/deps").join("codegate")
    });
    assert!(bin.exists(), "{} is missing: run `cargo build -p codegate` (or set CODEGATE_BIN) first", bin.display());
    bin
}

pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The first admin's personal access token (from `codegate init`).
    pub token: String,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    /// `codegate init` then `codegate serve --listen 127.0.0.1:0`, rate limits off.
    pub fn start() -> TestServer {
        let bin = server_bin();
        let dir = tempfile::Builder::new().prefix("codegate-client-test-").tempdir().unwrap();
        let out = Command::new(&bin).args(["init", "--json", "--data-dir"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "codegate init failed: {}", String::from_utf8_lossy(&out.stderr));
        let init: serde_json::Value = serde_json::from_slice(&out.stdout).expect("init --json prints JSON");
        let token = init["token"].as_str().expect("init prints the token").to_owned();
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("CODEGATE_LOG", "warn")
            .env("CODEGATE_RATE_LIMITS", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn codegate serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let base = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("codegate serve exited ({status}) before listening");
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        TestServer { child, base, token, _data_dir: dir }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
