//! PostgreSQL restarted under load: answers turn into 503 with Retry-After
//! (never a crash, never a 500), the server recovers without a restart, and
//! no success was answered that the database does not hold.
//!
//! It restarts the local cluster, so it is the only test in this binary
//! (cargo runs test binaries one at a time).

mod common;
mod postgres_support;

use codegate_storage::{CodeFilter, CodeStore, PageAt, ProjectStore};
use postgres_support::Cluster;
use reqwest::StatusCode;
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cluster_version() -> Option<String> {
    std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .min()
}

fn pg_ctl(action: &str) -> bool {
    let Some(version) = cluster_version() else { return false };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .is_ok_and(|s| s.success())
}

fn pg_ready() -> bool {
    Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", "5432", "-q"]).status().is_ok_and(|s| s.success())
}

/// Makes sure PostgreSQL runs again when the test ends, whatever happened.
struct KeepPostgresRunning;

impl Drop for KeepPostgresRunning {
    fn drop(&mut self) {
        for _ in 0..30 {
            if pg_ready() {
                return;
            }
            let _ = pg_ctl("start");
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("PostgreSQL did not come back: start it by hand");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_gives_503s_then_recovers_without_false_successes() {
    if cluster_version().is_none() || Command::new("pg_ctlcluster").arg("--help").output().is_err() {
        codegate_storage::postgres::test_support::unavailable("no local PostgreSQL cluster to restart (pg_ctlcluster)");
        return;
    }
    let _guard = KeepPostgresRunning;
    let Some(cluster) = Cluster::start(1).await else { return };
    let cluster = Arc::new(cluster);
    let pid = cluster.create_project("restart").await;
    let key = cluster.create_key(&pid).await;
    let codes = Arc::new(cluster.generate(&pid, 4000).await);

    let next = Arc::new(AtomicUsize::new(0));
    let after = Arc::new(AtomicUsize::new(codes.len() / 2));
    let stop = Arc::new(AtomicBool::new(false));
    let restarted_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let recovered = Arc::new(AtomicBool::new(false));
    let answered_success = Arc::new(Mutex::new(HashSet::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));

    // 8 clients, each code sent once; bounded by the codes and by a deadline.
    let deadline = Instant::now() + Duration::from_secs(90);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (cluster, key, pid, codes) = (cluster.clone(), key.clone(), pid.clone(), codes.clone());
            let (next, after, stop, restarted_at, recovered) =
                (next.clone(), after.clone(), stop.clone(), restarted_at.clone(), recovered.clone());
            let (answered_success, statuses) = (answered_success.clone(), statuses.clone());
            tokio::spawn(async move {
                // A code answered 503 is sent again (not a fresh one), so a slow
                // restart cannot use up the codes before the database is back.
                let mut retry: Option<&String> = None;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    // The first half of the codes is for before and during the
                    // restart, the second for after it: however long the restart
                    // takes, codes are left to show that verifies succeed again.
                    // Until the restart is done the load goes on, with codes of
                    // the first half sent again (answered "already used").
                    let code = match retry.take() {
                        Some(code) => code,
                        None if restarted_at.lock().unwrap().is_some() => {
                            match codes.get(after.fetch_add(1, Ordering::Relaxed)) {
                                Some(code) => code,
                                None => break,
                            }
                        }
                        None => {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            &codes[i % (codes.len() / 2)]
                        }
                    };
                    let sent = Instant::now();
                    let body = serde_json::json!({"code": code, "verified_by": format!("w{w}")}).to_string();
                    let path = format!("/api/v1/projects/{pid}/codes/verify");
                    let req = common::signed_request(
                        &cluster.http,
                        cluster.base(0),
                        &key,
                        reqwest::Method::POST,
                        &path,
                        Some(&body),
                        common::now(),
                    );
                    let Ok(resp) = req.send().await else { panic!("the server stopped answering") };
                    let status = resp.status();
                    let retry_after = resp.headers().contains_key("retry-after");
                    let (_, json) = common::read(resp).await;
                    if status == StatusCode::OK && json["success"] == true {
                        answered_success.lock().unwrap().insert(code.clone());
                        if restarted_at.lock().unwrap().is_some_and(|t| sent > t) {
                            recovered.store(true, Ordering::Relaxed);
                        }
                    }
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        assert!(retry_after, "a 503 carries Retry-After");
                        retry = Some(code);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    statuses.lock().unwrap().push(status);
                }
            })
        })
        .collect();

    // Let the load run, restart PostgreSQL in the middle of it.
    while answered_success.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopped, and started again only once the load has met the outage (a
    // plain restart can be quick enough for the pool to hide it completely).
    let stopped = tokio::task::spawn_blocking(|| pg_ctl("stop")).await.unwrap();
    assert!(stopped, "pg_ctlcluster stop failed");
    while !statuses.lock().unwrap().contains(&StatusCode::SERVICE_UNAVAILABLE) {
        assert!(Instant::now() < deadline, "no 503 while PostgreSQL was down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = tokio::task::spawn_blocking(|| pg_ctl("start")).await.unwrap();
    assert!(started, "pg_ctlcluster start failed");
    *restarted_at.lock().unwrap() = Some(Instant::now());
    while !recovered.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little more load after recovery, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let statuses = statuses.lock().unwrap().clone();
    let unavailable = statuses.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    let other: Vec<_> = statuses.iter().filter(|s| !matches!(s.as_u16(), 200 | 503)).collect();
    assert!(other.is_empty(), "only 200 and 503 while the database restarts: {other:?}");
    assert!(unavailable > 0, "the restart was seen as 503s ({} answers)", statuses.len());
    assert!(recovered.load(Ordering::Relaxed), "verifies succeed again after the restart, without restarting codegate");
    let (status, _) = common::read(cluster.http.get(format!("{}/readyz", cluster.base(0))).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "ready again");

    // Every success that was answered is durable in the database.
    let store = codegate_storage::postgres::PgStore::connect(&cluster.url).await.unwrap();
    let project = store.get_project(&pid).await.unwrap().unwrap();
    let used = CodeFilter { state: Some(codegate_domain::CodeState::Used), ..Default::default() };
    let mut in_db = HashSet::new();
    let mut at = PageAt::Number(1);
    loop {
        let page = store.list_codes(&project, &used, at, 500, common::now()).await.unwrap();
        in_db.extend(page.items.into_iter().map(|c| c.code));
        match page.next {
            Some(n) => at = PageAt::After(n),
            None => break,
        }
    }
    let answered = answered_success.lock().unwrap().clone();
    let missing: Vec<_> = answered.difference(&in_db).collect();
    assert!(missing.is_empty(), "successes answered but not in the database: {missing:?}");
    eprintln!(
        "restart: {} answers, {} successes, {} 503s, {} codes used in the database",
        statuses.len(),
        answered.len(),
        unavailable,
        in_db.len()
    );
    store.close().await;
}
