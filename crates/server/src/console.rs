//! The admin web console: plain HTML, CSS and JavaScript modules from
//! `crates/server/console/`, compiled into the binary so it works offline.
//!
//! `/` and every unknown GET path outside `/api/` answer `index.html` (the
//! console routes in the browser); `/assets/…` answers the files themselves.
//! Every answer carries a strict CSP: the console loads nothing from elsewhere
//! and runs no inline script or style.

use crate::error::problem;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One embedded file: its path under `console/` and its bytes.
struct Asset {
    path: &'static str,
    body: &'static [u8],
}

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }),*]
    };
}

/// Every file the console ships. A new file must be listed here.
static ASSETS: &[Asset] = embed![
    "index.html",
    "app.css",
    "favicon.svg",
    "js/app.js",
    "js/api.js",
    "js/ui.js",
    "js/chart.js",
    "js/pages/login.js",
    "js/pages/dashboard.js",
    "js/pages/projects.js",
    "js/pages/project.js",
    "js/pages/codes.js",
    "js/pages/code.js",
    "js/pages/generate.js",
    "js/pages/transfer.js",
    "js/pages/keys.js",
    "js/pages/tokens.js",
    "js/pages/users.js",
    "js/pages/audit.js",
    "js/pages/verify.js",
];

const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Routes of the console; merge them into the API router (API routes win,
/// being more specific than the catch-all).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/assets/{*path}", get(asset)).route("/{*path}", any(fallback))
}

async fn index(headers: HeaderMap) -> Response {
    serve(find("index.html").expect("index.html is embedded"), &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&path).filter(|a| a.path != "index.html") {
        Some(a) => serve(a, &headers),
        None => problem(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset", None),
    }
}

/// Paths the console may route in the browser get `index.html`; API paths
/// and other methods keep the API's problem+json 404.
async fn fallback(Path(path): Path<String>, req: Request) -> Response {
    let is_api = path == "api" || path.starts_with("api/");
    if is_api || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return problem(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route", None);
    }
    index(req.headers().clone()).await
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Strong ETags from the content, computed once per file. With
/// `Cache-Control: no-cache` the browser revalidates and gets a cheap 304,
/// so a new binary never leaves stale modules behind.
fn etag(asset: &'static Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                format!("\"{}\"", hex::encode(&digest[..12]))
            })
            .collect()
    });
    let i = ASSETS.iter().position(|a| std::ptr::eq(a, asset)).expect("asset comes from ASSETS");
    &tags[i]
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(asset.body));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::builder().uri(path);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        router::<()>().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn serves_assets_with_type_csp_and_revalidation() {
        let r = get("/assets/js/app.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CONTENT_TYPE), "text/javascript; charset=utf-8");
        assert!(header_of(&r, header::CONTENT_SECURITY_POLICY).starts_with("default-src 'self'"));
        assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache");
        let tag = header_of(&r, header::ETAG).to_owned();
        let again = get("/assets/js/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let css = get("/assets/app.css", None).await;
        assert_eq!(header_of(&css, header::CONTENT_TYPE), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn console_paths_fall_back_to_index_but_api_paths_do_not() {
        for path in ["/", "/projects/abc", "/audit"] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
        }
        let api = get("/api/v1/no-such-route", None).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(header_of(&api, header::CONTENT_TYPE), "application/problem+json");
        let missing = get("/assets/nope.js", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_asset_is_non_empty() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
        }
    }
}
