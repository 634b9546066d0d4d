//! CodeGate's HTTP layer: routing, authentication, problem+json errors, and
//! the server's life cycle (start, first-run setup, graceful shutdown).

pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod lookups;
pub mod metrics;
pub mod rekey;
pub mod replay;
pub mod routes;
pub mod secrets;
pub mod state;

use anyhow::Context;
use codegate_storage::sqlite::SqliteStore;
use codegate_storage::Store;
pub use config::ServerConfig;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Opens the configured database (creating and migrating it).
pub fn open_store(config: &ServerConfig) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = config.postgres_url() {
        // Several replicas may share it; migrations take an advisory lock.
        let store =
            codegate_storage::postgres::PgStore::open_blocking(url).context("opening the PostgreSQL database")?;
        tracing::info!(database = %redact_url(url), "using PostgreSQL");
        let store = Arc::new(store);
        crate::metrics::watch_pool(&store, |s| crate::metrics::PoolUse {
            pool: "postgres",
            connections: s.pool().size(),
            idle: u32::try_from(s.pool().num_idle()).unwrap_or(u32::MAX),
            max: s.pool().options().get_max_connections(),
        });
        return Ok(store);
    }
    let path = config.sqlite_path()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store = SqliteStore::open(&path).with_context(|| format!("opening the database at {}", path.display()))?;
    let store = Arc::new(store);
    crate::metrics::watch_pool(&store, |s| {
        let (connections, idle, max) = s.read_pool_state();
        crate::metrics::PoolUse { pool: "sqlite_read", connections, idle, max }
    });
    Ok(store)
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub fn app(state: AppState) -> axum::Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    // Installs the recorder before the first request is counted.
    crate::metrics::handle();
    // Outermost first. One `Router::layer` for the whole stack: each call boxes
    // every route once more, and each request then clones its route and boxes
    // its future and body through every one of those layers.
    let stack = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        // Each request's span carries its id and route template (never the raw path: it may hold a code).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
            tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        // Outside the panic catcher and the limits: every answer is counted, by route template.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        // A bug in a handler still gets an answer (500, problem+json), never a dropped connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            error::problem(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "an internal error occurred",
                None,
            )
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::middleware));
    routes::router(state).layer(stack)
}

/// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
/// `on_listening` is told the bound address (useful with port 0).
pub async fn serve(config: ServerConfig, on_listening: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    crate::metrics::Access::from_env()?;
    let store = open_store(&config)?;
    let master_key = secrets::MasterKey::load_or_create(config.master_key.as_deref(), &config.data_dir)?;
    if let Some(first) = bootstrap::ensure_first_admin(store.as_ref()).await? {
        bootstrap::announce_first_admin(&first, &config.listen);
    }
    let abuse = match config.abuse.clone() {
        Some(settings) => settings,
        None => limits::Settings::from_env()?,
    };
    let defences = limits::Defences::start(abuse, config.signature_window_secs).await?;
    let state = AppState::new(store, master_key, Arc::new(config.clone()), defences.clone());
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "codegate is serving");
    on_listening(addr);
    limits::serve_connections(listener, app(state), &defences.settings, shutdown_signal()).await?;
    tracing::info!("stopped: in-flight requests are answered");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
}
