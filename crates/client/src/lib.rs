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

mod account;
mod auth;
mod error;
mod http;
mod project;
mod transfer;
mod types;

pub use auth::{encode_query, encode_segment, BearerToken, Credentials, HmacCredentials, RequestParts, SignedHeaders};
pub use error::{Error, Result};
pub use http::{Client, ClientBuilder};
pub use project::{ListCodes, ProjectClient, MAX_PAGE_SIZE};
pub use transfer::{ExportOptions, Progress};
pub use types::*;
