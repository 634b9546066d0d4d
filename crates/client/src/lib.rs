//! Async client for a CodeGate server.
//!
//! ```no_run
//! # async fn demo() -> codegate_client::Result<()> {
//! use codegate_client::Client;
//! // Backends redeem with a project's API key; every request is signed.
//! let sdk = Client::with_api_key("http://127.0.0.1:8080", "cg_…", "secret")?.project("6f1c…");
//! let answer = sdk.verify_code("ABCD-EFGH", Some("user-42")).await?;
//! println!("{} {:?}", answer.success, answer.error_code);
//! // Operators manage with a personal access token.
//! let admin = Client::with_token("http://127.0.0.1:8080", "cgp_…")?;
//! for p in admin.list_projects().await? {
//!     println!("{} {}", p.id, p.name);
//! }
//! # Ok(()) }
//! ```
//!
//! # Signing requests yourself
//!
//! [`HmacCredentials::sign`] is the signer the client uses (`codegate-hmac-v1`,
//! checked against every vector of `signature_v1.json`). It gives the headers
//! for a request you send some other way, or sign ahead of time: the benchmark
//! signs all its verify requests before a step starts and only sends them in
//! the measured loop.
//!
//! ```
//! use codegate_client::{HmacCredentials, RequestParts};
//! let signer = HmacCredentials::new("cg_live_key", "the-secret");
//! let body = br#"{"code":"ABCD-EFGH"}"#;
//! // The path percent-encoded and the query exactly as they go on the wire.
//! let req = RequestParts::new("POST", "/api/v1/projects/6f1c/codes/verify", body);
//! // Unix seconds, and an optional X-Nonce (`sign_now` uses the clock and a random one).
//! let headers = signer.sign(req, 1_767_225_600, Some("5f2b8c0e-1d3a"));
//! let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
//! assert_eq!(names, ["X-API-Key", "X-Timestamp", "X-Signature", "X-Nonce"]);
//! assert_eq!(headers.signature.len(), 64); // lower-case hex HMAC-SHA256
//! ```
//!
//! Without a nonce a signed POST can be sent only once (the server remembers
//! its signature) while a signed GET can be repeated; with a nonce, any second
//! use of that nonce within the window is refused.

mod account;
mod auth;
mod error;
mod http;
mod project;
mod transfer;
mod types;

pub use auth::{
    encode_query, encode_segment, unix_now, BearerToken, Credentials, HmacCredentials, RequestParts, SignedHeaders,
    API_KEY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
pub use error::{Error, Result};
pub use http::{Client, ClientBuilder};
pub use project::{ListCodes, ProjectClient, MAX_PAGE_SIZE};
pub use transfer::{ExportOptions, Progress};
pub use types::*;
