//! The `codegate` command line against a real running server: projects, codes,
//! keys, tokens, import/export files, errors, and `backup` of a live database.

mod common;

use common::{TestServer, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the CLI against `s` with its admin token (overridable via `extra_env`).
fn run(s: &TestServer, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("CODEGATE_URL", &s.base)
        .env("CODEGATE_TOKEN", &s.token)
        .env_remove("CODEGATE_PROJECT_ID")
        .env_remove("CODEGATE_API_KEY")
        .env_remove("CODEGATE_SECRET")
        .env("CODEGATE_LOG", "warn")
        .envs(extra_env.iter().copied())
        .output()
        .expect("run codegate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command that must succeed; returns stdout.
fn ok(s: &TestServer, args: &[&str]) -> String {
    let out = run(s, args, &[]);
    assert!(out.status.success(), "codegate {args:?} failed: {}{}", text(&out.stderr), text(&out.stdout));
    text(&out.stdout)
}

fn ok_json(s: &TestServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let stdout = ok(s, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed non-JSON ({e}): {stdout}"))
}

/// Runs a command that must fail; returns its one-line error.
fn fails(s: &TestServer, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(s, args, env);
    assert!(!out.status.success(), "codegate {args:?} should fail but printed {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
    assert!(lines[0].starts_with("codegate: "), "{stderr}");
    lines[0].to_owned()
}

fn new_project(s: &TestServer, name: &str) -> String {
    let p = ok_json(s, &["projects", "create", name, "--description", "from the CLI"]);
    assert_eq!(p["name"], name);
    assert_eq!(p["status"], true);
    p["id"].as_str().unwrap().to_owned()
}

fn generate(s: &TestServer, pid: &str, count: u32) -> Vec<String> {
    let g = ok_json(s, &["codes", "generate", "-p", pid, "--count", &count.to_string()]);
    assert_eq!(g["count"], count);
    assert_eq!(g["batch_id"].as_str().unwrap().len(), 32);
    g["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn projects_and_codes_round_trip() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "spring promo");

    let list = ok_json(&s, &["projects", "list"]);
    let listed = list.as_array().unwrap();
    assert!(listed.iter().any(|p| p["id"] == pid.as_str()), "{list}");
    let human = ok(&s, &["projects", "list"]);
    assert!(human.contains(&pid) && human.contains("spring promo"), "{human}");

    let updated = ok_json(&s, &["projects", "update", &pid, "--name", "summer", "--disable"]);
    assert_eq!(updated["name"], "summer");
    assert_eq!(updated["status"], false);
    let updated = ok_json(&s, &["projects", "update", &pid, "--enable"]);
    assert_eq!(updated["status"], true);

    let codes = generate(&s, &pid, 25);
    assert_eq!(codes.len(), 25);
    // Without --json the codes come one per line on stdout.
    let plain = ok(&s, &["codes", "generate", "-p", &pid, "-n", "3", "--prefix", "CLI-"]);
    let plain: Vec<&str> = plain.lines().collect();
    assert_eq!(plain.len(), 3);
    assert!(plain.iter().all(|c| c.starts_with("CLI-")), "{plain:?}");

    let page = ok_json(&s, &["codes", "list", "-p", &pid, "--page-size", "10"]);
    assert_eq!(page["total"], 28);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let all = ok_json(&s, &["codes", "list", "-p", &pid, "--all"]);
    let mut seen: Vec<&str> = all.as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 28, "every code exactly once across pages");
    let searched = ok_json(&s, &["codes", "list", "-p", &pid, "--search", "CLI-"]);
    assert_eq!(searched["total"], 3);

    let code = &codes[0];
    let shown = ok_json(&s, &["codes", "show", "-p", &pid, code]);
    assert_eq!(shown["code"], code.as_str());
    assert_eq!(shown["state"], "unused");
    let by_id = ok_json(&s, &["codes", "show", "-p", &pid, "--id", shown["id"].as_str().unwrap()]);
    assert_eq!(by_id["code"], code.as_str());
    let human = ok(&s, &["codes", "show", "-p", &pid, code]);
    assert!(human.contains("unused"), "{human}");

    ok(&s, &["codes", "disable", "-p", &pid, code]);
    let shown = ok_json(&s, &["codes", "show", "-p", &pid, code]);
    assert_eq!(shown["state"], "disabled");
    assert_eq!(shown["is_disabled"], true);
    let err = fails(&s, &["codes", "verify", "-p", &pid, code], &[]);
    assert!(err.contains("(CODE_DISABLED)"), "{err}");

    ok(&s, &["codes", "enable", "-p", &pid, code]);
    let v = ok_json(&s, &["codes", "verify", "-p", &pid, code, "--by", "user-42"]);
    assert_eq!(v["success"], true);
    assert_eq!(v["code"], code.as_str());
    let err = fails(&s, &["codes", "verify", "-p", &pid, code], &[]);
    assert!(err.contains("(CODE_ALREADY_USED)"), "{err}");

    let shown = ok_json(&s, &["codes", "show", "-p", &pid, code]);
    assert_eq!(shown["state"], "used");
    assert_eq!(shown["verified_by"], "user-42");
    let results: Vec<&str> =
        shown["verification_logs"].as_array().unwrap().iter().map(|l| l["result"].as_str().unwrap()).collect();
    assert!(results.contains(&"success"), "{shown}");
    let used = ok_json(&s, &["codes", "list", "-p", &pid, "--status", "used"]);
    assert_eq!(used["total"], 1);

    let err = fails(&s, &["codes", "show", "-p", &pid, "NO-SUCH-CODE"], &[]);
    assert!(err.contains("(NOT_FOUND)"), "{err}");
}

#[tokio::test]
async fn api_keys_sign_verifies_and_stop_when_deleted() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "keys");
    let codes = generate(&s, &pid, 3);

    let key = ok_json(&s, &["keys", "create", "-p", &pid, "--name", "backend"]);
    let (key_id, api_key, secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["api_key"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    );
    assert!(!secret.is_empty());
    let keys = ok_json(&s, &["keys", "list", "-p", &pid]);
    let listed = keys.as_array().unwrap().iter().find(|k| k["id"] == key_id.as_str()).expect("new key listed");
    assert_eq!(listed["name"], "backend");
    assert!(listed.get("secret").is_none(), "list never shows secrets");

    // Signed with the key (HMAC), not the token.
    let bad_token = [("CODEGATE_TOKEN", "cgp_not_used_here")];
    let hmac = ["--api-key", &api_key, "--secret", &secret];
    let mut args = vec!["codes", "verify", "-p", &pid, &codes[0], "--json"];
    args.extend(hmac);
    let out = run(&s, &args, &bad_token);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], true);

    // A wrong secret is refused by the server.
    let mut args = vec!["codes", "verify", "-p", &pid, &codes[1]];
    args.extend(["--api-key", &api_key, "--secret", "wrong"]);
    let err = fails(&s, &args, &bad_token);
    assert!(err.contains("(INVALID_SIGNATURE)"), "{err}");

    ok(&s, &["keys", "delete", "-p", &pid, &key_id]);
    let keys = ok_json(&s, &["keys", "list", "-p", &pid]);
    assert!(!keys.as_array().unwrap().iter().any(|k| k["id"] == key_id.as_str()));
    let mut args = vec!["codes", "verify", "-p", &pid, &codes[1]];
    args.extend(hmac);
    let err = fails(&s, &args, &bad_token);
    assert!(err.contains("(INVALID_API_KEY)"), "{err}");
}

#[tokio::test]
async fn rotated_api_key_gets_a_working_secret() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "rotate");
    let codes = generate(&s, &pid, 2);
    let key = ok_json(&s, &["keys", "create", "-p", &pid]);
    let key_id = key["id"].as_str().unwrap();
    let rotated = ok_json(&s, &["keys", "rotate", "-p", &pid, key_id, "--grace-seconds", "0"]);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, key["secret"].as_str().unwrap());
    let api_key = rotated["api_key"].as_str().unwrap();
    let v = ok_json(&s, &["codes", "verify", "-p", &pid, &codes[0], "--api-key", api_key, "--secret", new_secret]);
    assert_eq!(v["success"], true);
}

#[tokio::test]
async fn export_and_import_files() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "files");
    let codes = generate(&s, &pid, 30);
    ok(&s, &["codes", "verify", "-p", &pid, &codes[5], "--by", "exporter"]);
    let dir = tempfile::tempdir().unwrap();

    let csv_path = dir.path().join("all.csv");
    let summary = ok_json(&s, &["codes", "export", "-p", &pid, "--out", csv_path.to_str().unwrap()]);
    assert_eq!(summary["rows"], 30);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        headers.join(","),
        "id,code,state,disabled,use_count,max_uses,expires_at,verified_at,verified_by,batch_id,metadata,created_at"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 30);
    let mut exported: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    exported.sort_unstable();
    let mut expected: Vec<&str> = codes.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(exported, expected);
    let used = rows.iter().find(|r| r[1] == codes[5]).unwrap();
    assert_eq!(&used[2], "used");
    assert_eq!(&used[8], "exporter");
    assert!(!dir.path().join("all.csv.partial").exists());

    // JSON Lines to stdout, filtered.
    let jsonl = ok(&s, &["codes", "export", "-p", &pid, "--format", "jsonl", "--status", "used"]);
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["code"], codes[5].as_str());

    // Import: three good rows and one refused (a duplicate of an existing code).
    let import_path = dir.path().join("import.csv");
    std::fs::write(
        &import_path,
        format!("code,max_uses\nIMPORT-0001,1\nIMPORT-0002,2\nIMPORT-0003,\n{},1\n", codes[0]),
    )
    .unwrap();
    let result = ok_json(&s, &["codes", "import", "-p", &pid, import_path.to_str().unwrap()]);
    assert_eq!(result["imported"], 3, "{result}");
    let rejected = result["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{result}");
    assert_eq!(rejected[0]["code"], codes[0].as_str());
    let shown = ok_json(&s, &["codes", "show", "-p", &pid, "IMPORT-0002"]);
    assert_eq!(shown["max_uses"], 2);
    assert_eq!(shown["batch_id"], result["batch_id"]);

    // JSON Lines import, format taken from the extension.
    let jsonl_path = dir.path().join("more.jsonl");
    std::fs::write(&jsonl_path, "{\"code\":\"LINE-0001\",\"metadata\":{\"plan\":\"pro\"}}\n{\"code\":\"LINE-0002\"}\n")
        .unwrap();
    let out = ok(&s, &["codes", "import", "-p", &pid, jsonl_path.to_str().unwrap()]);
    assert!(out.contains("imported 2 codes"), "{out}");
    let v = ok_json(&s, &["codes", "verify", "-p", &pid, "line-0001"]);
    assert_eq!(v["success"], true, "codes match case-insensitively");
    assert_eq!(v["metadata"]["plan"], "pro");

    let err = fails(&s, &["codes", "import", "-p", &pid, "/no/such/file.csv"], &[]);
    assert!(err.contains("/no/such/file.csv"), "{err}");
}

#[tokio::test]
async fn tokens_scope_and_revoke() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "tokens");
    let t = ok_json(&s, &["tokens", "create", "--name", "ci", "--scopes", "read"]);
    let (tid, token) = (t["id"].as_str().unwrap().to_owned(), t["token"].as_str().unwrap().to_owned());
    assert!(token.starts_with("cgp_"));
    assert_eq!(t["scopes"], serde_json::json!(["read"]));
    let list = ok_json(&s, &["tokens", "list"]);
    assert!(list.as_array().unwrap().iter().any(|x| x["id"] == tid.as_str()));

    let as_reader = [("CODEGATE_TOKEN", token.as_str())];
    let out = run(&s, &["projects", "list", "--json"], &as_reader);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&pid));
    let err = fails(&s, &["projects", "create", "nope"], &as_reader);
    assert!(err.contains("(FORBIDDEN)"), "{err}");

    ok(&s, &["tokens", "revoke", &tid]);
    let err = fails(&s, &["projects", "list"], &as_reader);
    assert!(err.contains("(INVALID_TOKEN)"), "{err}");
}

#[tokio::test]
async fn errors_are_one_line_with_a_code() {
    let s = TestServer::start().await;
    let err = fails(&s, &["projects", "list"], &[("CODEGATE_TOKEN", "cgp_wrong")]);
    assert!(err.ends_with("(INVALID_TOKEN)"), "{err}");
    let err = fails(&s, &["projects", "list"], &[("CODEGATE_TOKEN", "")]);
    assert!(err.contains("no token"), "{err}");
    let err = fails(&s, &["projects", "create", ""], &[]);
    assert!(err.contains("(VALIDATION_FAILED)"), "{err}");
    let err = fails(&s, &["codes", "list", "-p", "0123456789abcdef0123456789abcdef"], &[]);
    assert!(err.contains("(NOT_FOUND)"), "{err}");
    // Nothing listens on port 9 of loopback.
    let err = fails(&s, &["projects", "list", "--url", "http://127.0.0.1:9"], &[]);
    assert!(err.contains("cannot reach"), "{err}");
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn backup_copies_a_live_database() {
    let s = TestServer::start().await;
    let pid = new_project(&s, "backup");
    let codes = generate(&s, &pid, 50);
    for c in &codes[..4] {
        ok(&s, &["codes", "verify", "-p", &pid, c]);
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = s.data_dir.path().to_str().unwrap().to_owned();

    // The server keeps taking writes while the backup runs.
    let writer = {
        let (base, token, pid) = (s.base.clone(), s.token.clone(), pid.clone());
        std::thread::spawn(move || {
            for _ in 0..5 {
                let out = Command::new(BIN)
                    .args(["codes", "generate", "-p", &pid, "-n", "200", "--json"])
                    .env("CODEGATE_URL", &base)
                    .env("CODEGATE_TOKEN", &token)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
            }
        })
    };
    let copy = dir.path().join("copy.db");
    let copy_str = copy.to_str().unwrap();
    if common::noted_database_url(s.data_dir.path()).is_some() {
        // On PostgreSQL `codegate backup` (a copy of the SQLite file) has no
        // meaning: it says there is no SQLite database and writes nothing. The
        // PostgreSQL backup is pg_dump (docs/deploy.md), tested under load by
        // operations.rs. What stays checked here: the live writes all landed.
        let err = fails(&s, &["backup", "--data-dir", &data_dir, "--to", copy_str], &[]);
        assert!(err.contains("no database"), "{err}");
        assert!(!copy.exists() && !dir.path().join("copy.db.partial").exists());
        writer.join().unwrap();
        let dir_of = s.data_dir.path();
        assert_eq!(common::db_int(dir_of, "SELECT COUNT(*) FROM codes", &[]), 1050);
        assert_eq!(common::db_int(dir_of, "SELECT COUNT(*) FROM codes WHERE use_count > 0", &[]), 4);
        assert_eq!(common::db_int(dir_of, "SELECT COUNT(*) FROM codes WHERE code = $1", &[&codes[0]]), 1);
        return;
    }
    let summary = ok_json(&s, &["backup", "--data-dir", &data_dir, "--to", copy_str]);
    writer.join().unwrap();
    let copied = summary["codes"].as_i64().unwrap();
    // Each generate commits its 200 codes at once: the copy has whole batches only.
    assert!((50..=1050).contains(&copied) && (copied - 50) % 200 == 0, "{summary}");
    assert_eq!(summary["projects"], 1);
    assert!(Path::new(copy_str).exists());
    assert!(!dir.path().join("copy.db.partial").exists());

    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert_eq!(count(&conn, "SELECT count(*) FROM codes"), copied);
    assert_eq!(count(&conn, "SELECT count(*) FROM codes WHERE use_count > 0"), 4);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete", "the copy is a standalone file");
    let has_first: i64 =
        conn.query_row("SELECT count(*) FROM codes WHERE code = ?1", [&codes[0]], |r| r.get(0)).unwrap();
    assert_eq!(has_first, 1);
    drop(conn);

    // Refuses to overwrite, unless told to; a second copy sees every write.
    let err = fails(&s, &["backup", "--data-dir", &data_dir, "--to", copy_str], &[]);
    assert!(err.contains("--force"), "{err}");
    let again = ok_json(&s, &["backup", "--data-dir", &data_dir, "--to", copy_str, "--force"]);
    assert_eq!(again["codes"], 1050);
    let human = ok(&s, &["backup", "--data-dir", &data_dir, "--to", dir.path().join("h.db").to_str().unwrap()]);
    assert!(human.contains("1050 codes"), "{human}");

    let err = fails(&s, &["backup", "--data-dir", dir.path().to_str().unwrap(), "--to", "x.db"], &[]);
    assert!(err.contains("no database"), "{err}");
}

/// The Rust client's SDK surface, signed with an API key, against the real server.
#[tokio::test]
async fn client_sdk_surface_signed_with_an_api_key() {
    use codegate_client::{Client, CodeFilter, Error, FileFormat, GenerateRequest};
    use std::io::Cursor;

    let s = TestServer::start().await;
    let pid = s.create_project("sdk").await;
    let key = s.create_key(&pid).await;
    let admin = Client::with_token(&s.base, &s.token).unwrap().project(&pid);
    // A code whose path segment needs every kind of escaping.
    let odd = "A/B C#1?x=兑%";
    let csv = format!("code\n\"{odd}\"\nPLAIN-1\n");
    let imported = admin.import(FileFormat::Csv, Cursor::new(csv.into_bytes()), None).await.unwrap();
    assert_eq!(imported.imported, 2, "{imported:?}");
    let generated = admin.generate(&GenerateRequest { count: 150, ..Default::default() }).await.unwrap();
    assert_eq!(generated.codes.len(), 150);

    let sdk = Client::with_api_key(&s.base, &key.api_key, &key.secret).unwrap().project(&pid);
    let project = sdk.get_project().await.unwrap();
    assert_eq!(project.id, pid);
    assert_eq!(project.statistics.unwrap().total_codes, 152);
    let page = sdk.list_codes(2, 100, None, None).await.unwrap();
    assert_eq!((page.total, page.total_pages, page.items.len()), (152, 2, 52));
    let mut all: Vec<String> =
        sdk.all_codes(CodeFilter::default()).await.unwrap().into_iter().map(|c| c.code).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 152, "the cursor walk sees every code once");
    let plain = sdk.list_codes(1, 20, Some("unused"), Some("PLAIN")).await.unwrap();
    assert_eq!(plain.total, 1);

    let by_code = sdk.get_code_by_code(odd).await.unwrap();
    assert_eq!(by_code.code, odd);
    let by_id = sdk.get_code(&by_code.id).await.unwrap();
    assert_eq!(by_id.code, odd);

    let v = sdk.verify_code(odd, Some("用户-42")).await.unwrap();
    assert!(v.success, "{v:?}");
    let again = sdk.verify_code(odd, None).await.unwrap();
    assert!(!again.success);
    assert_eq!(again.error_code.as_deref(), Some("CODE_ALREADY_USED"));
    let stats = sdk.get_statistics().await.unwrap();
    assert_eq!(stats.counts.used_codes, 1);
    assert_eq!(stats.recent_verifications[0].code, odd);
    let r = sdk.reactivate_code(odd, Some("support"), Some("customer asked")).await.unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(sdk.get_statistics().await.unwrap().counts.used_codes, 0);

    let wrong = Client::with_api_key(&s.base, &key.api_key, "not-the-secret")
        .unwrap()
        .project(&pid)
        .get_project()
        .await
        .unwrap_err();
    assert_eq!((wrong.status(), wrong.code()), (Some(401), Some("INVALID_SIGNATURE")));
    let streamed = sdk.import(FileFormat::Csv, Cursor::new(b"code\nX\n".to_vec()), None).await.unwrap_err();
    assert!(matches!(streamed, Error::Usage(_)), "{streamed:?}");
}
