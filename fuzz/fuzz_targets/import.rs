//! The code import (CSV and JSON Lines), driven through the real router
//! in-process: no sockets, but the real parsers, validation and SQLite store.
//! Whatever the upload, the answer is a 200 report or a problem+json 4xx.
#![no_main]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use codegate_server::state::AppState;
use codegate_server::{app, bootstrap, limits, open_store, secrets::MasterKey, ServerConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    import_path: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // tmpfs when there is one: durable commits cost nothing there.
        let dir = tempfile::Builder::new()
            .prefix("codegate-fuzz-")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" })
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
        let (router, token) = rt.block_on(async {
            let store = open_store(&config).unwrap();
            let first = bootstrap::ensure_first_admin(store.as_ref()).await.unwrap().unwrap();
            // Rate limits off: the fuzzer uploads far faster than the bulk limit.
            let settings =
                limits::Settings::from_vars(|k| (k == "CODEGATE_RATE_LIMITS").then(|| "off".to_owned())).unwrap();
            let state = AppState::new(
                store,
                MasterKey::load_or_create(None, dir.path()).unwrap(),
                Arc::new(config.clone()),
                limits::Defences::start(settings, config.signature_window_secs).await.unwrap(),
            );
            (app(state), first.token)
        });
        let create = Request::post("/api/v1/projects")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"fuzz"}"#))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(create)).unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body = rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
        let project: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let pid = project["id"].as_str().unwrap().to_owned();
        World { rt, router, token, import_path: format!("/api/v1/projects/{pid}/codes/import"), _dir: dir }
    })
}

fuzz_target!(|input: (bool, &[u8])| {
    let (jsonl, upload) = input;
    let w = world();
    let content_type = if jsonl { "application/x-ndjson" } else { "text/csv" };
    let req = Request::post(&w.import_path)
        .header(header::AUTHORIZATION, format!("Bearer {}", w.token))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(upload.to_vec()))
        .unwrap();
    let resp = w.rt.block_on(w.router.clone().oneshot(req)).unwrap();
    let status = resp.status();
    let problem =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let body = w.rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
    assert!(!status.is_server_error(), "import answered {status}: {}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("answers are JSON");
    if status == StatusCode::OK {
        assert!(answer["imported"].is_u64(), "{answer}");
        assert!(answer["rejected"].is_array(), "{answer}");
    } else {
        assert!(status.is_client_error() && problem, "{status}: {answer}");
    }
});
