//! `codegate rotate-master-key`: the secrets move to a new master key and
//! every backend keeps signing with the secret it has.

mod common;

use common::{noted_database_url, spawn_serve, Key, TestServer, BIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn rotate(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(["rotate-master-key", "--json", "--data-dir"])
        .arg(dir)
        .args(args)
        .envs(noted_database_url(dir).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .env_remove("CODEGATE_MASTER_KEY")
        .envs(envs.iter().copied())
        .output()
        .expect("run codegate rotate-master-key")
}

fn rotated(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Value {
    let out = rotate(dir, args, envs);
    assert!(out.status.success(), "rotate-master-key failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn key_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("master.key")).unwrap().trim().to_owned()
}

fn restart(s: &mut TestServer, envs: &[(&str, &str)]) {
    s.stop();
    let (child, base, _) = spawn_serve(s.data_dir.path(), envs);
    s.child = child;
    s.base = base;
}

/// Starts `codegate serve` expecting it to refuse; returns what it printed on stderr.
fn refused_start(dir: &Path) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .envs(noted_database_url(dir).map(|url| ("CODEGATE_DATABASE_URL", url)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn codegate serve");
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return err;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server started although a rotation had not finished");
}

async fn verify(s: &TestServer, pid: &str, key: &Key, code: &str) -> (StatusCode, Value) {
    let body = json!({ "code": code }).to_string();
    s.signed(key, Method::POST, &format!("/api/v1/projects/{pid}/codes/verify"), Some(&body)).await
}

#[tokio::test]
async fn rotating_the_master_key_keeps_every_api_secret_working() {
    let mut s = TestServer::start().await;
    let dir = s.data_dir.path().to_owned();
    let pid = s.create_project("rekey").await;
    let plain = s.create_key(&pid).await;
    let before_rotation = s.create_key(&pid).await;
    let (status, r) = s
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{pid}/api-keys/{}/rotate", before_rotation.id),
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let after_rotation = Key { secret: r["secret"].as_str().unwrap().to_owned(), ..before_rotation.clone() };
    let codes = s.generate(&pid, json!({"count": 6})).await;
    let old_key = key_file(&dir);

    s.stop();
    let report = rotated(&dir, &[], &[]);
    assert_eq!(report["resealed"], 2, "{report}");
    assert_eq!(report["already_resealed"], 0, "{report}");
    let new_key = key_file(&dir);
    assert_ne!(new_key, old_key);
    assert_eq!(new_key.len(), 64);
    let kept = report["previous_key_file"].as_str().expect("the old key is kept");
    assert_eq!(std::fs::read_to_string(kept).unwrap().trim(), old_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [kept.to_owned(), dir.join("master.key").display().to_string()] {
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    assert!(!dir.join("master.key.next").exists());

    // The same secrets sign as before: the plain key, the rotated key's new
    // secret, and its previous one within its grace period.
    restart(&mut s, &[]);
    for (key, code) in [(&plain, &codes[0]), (&after_rotation, &codes[1]), (&before_rotation, &codes[2])] {
        let (status, v) = verify(&s, &pid, key, code).await;
        assert_eq!((status, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    }

    // The database no longer opens with the old key: with it back in place
    // every signature fails, and a rotation from it finds secrets neither key opens.
    s.stop();
    std::fs::write(dir.join("master.key"), &old_key).unwrap();
    restart(&mut s, &[]);
    let (status, v) = verify(&s, &pid, &plain, &codes[3]).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("INVALID_SIGNATURE")), "{v}");
    s.stop();
    let refused = rotate(&dir, &[], &[]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("neither"), "{message}");
    for secret in [&plain.secret, &after_rotation.secret, &before_rotation.secret] {
        assert!(!message.contains(secret.as_str()), "a secret in the error: {message}");
    }
    std::fs::write(dir.join("master.key"), &new_key).unwrap();
    restart(&mut s, &[]);
    let (status, v) = verify(&s, &pid, &plain, &codes[3]).await;
    assert_eq!((status, &v["success"]), (StatusCode::OK, &json!(true)), "nothing changed by the refused run: {v}");
}

#[tokio::test]
async fn a_rotation_cut_short_is_finished_by_running_it_again() {
    let mut s = TestServer::start().await;
    let dir = s.data_dir.path().to_owned();
    let pid = s.create_project("cut short").await;
    let key = s.create_key(&pid).await;
    let codes = s.generate(&pid, json!({"count": 3})).await;
    let first_key = key_file(&dir);
    s.stop();

    // The moment after the new key was written and before the database changed:
    // the server will not start, and a plain run finishes with that key.
    let second_key = "ab".repeat(32);
    std::fs::write(dir.join("master.key.next"), &second_key).unwrap();
    let refused = refused_start(&dir);
    assert!(refused.contains("rotate-master-key"), "{refused}");
    let report = rotated(&dir, &[], &[]);
    assert_eq!((report["resealed"].as_i64(), report["already_resealed"].as_i64()), (Some(1), Some(0)), "{report}");
    assert_eq!(key_file(&dir), second_key);

    // The moment after the database changed and before the key files moved
    // (made here with the CODEGATE_MASTER_KEY form, which leaves the files alone):
    // running again moves nothing in the database and puts the key in place.
    let third_key = "cd".repeat(32);
    let third_file = dir.join("third.key");
    std::fs::write(&third_file, &third_key).unwrap();
    let env_run = rotated(
        &dir,
        &["--new-key-file", third_file.to_str().unwrap()],
        &[("CODEGATE_MASTER_KEY", second_key.as_str())],
    );
    assert_eq!(env_run["resealed"], 1, "{env_run}");
    assert_eq!(env_run["key_file"], Value::Null, "the key file is the operator's part here: {env_run}");
    assert_eq!(key_file(&dir), second_key, "master.key untouched with CODEGATE_MASTER_KEY");
    std::fs::write(dir.join("master.key.next"), &third_key).unwrap();
    let finish = rotated(&dir, &[], &[]);
    assert_eq!((finish["resealed"].as_i64(), finish["already_resealed"].as_i64()), (Some(0), Some(1)), "{finish}");
    assert_eq!(key_file(&dir), third_key);

    restart(&mut s, &[]);
    let (status, v) = verify(&s, &pid, &key, &codes[0]).await;
    assert_eq!((status, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    // The environment form wants the new key spelled out.
    s.stop();
    let out = rotate(&dir, &[], &[("CODEGATE_MASTER_KEY", third_key.as_str())]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-file"));
    assert_ne!(first_key, third_key);
}
