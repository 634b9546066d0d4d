//! The transport: builds each request, authenticates it, retries what is safe
//! to retry and turns failed answers into typed errors.

use crate::auth::{BearerToken, Credentials, HmacCredentials, RequestParts};
use crate::error::{Error, Result};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, Url};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Never wait longer than this between retries, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Builds a [`Client`]; `Client::new` covers the common case.
pub struct ClientBuilder {
    base_url: String,
    credentials: Credentials,
    timeout: Duration,
    long_timeout: Duration,
    max_retries: u32,
}

impl ClientBuilder {
    /// Whole-request time limit for ordinary calls (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time limit for bulk work: generate, import, export, bulk (default 1 h).
    pub fn long_timeout(mut self, timeout: Duration) -> Self {
        self.long_timeout = timeout;
        self
    }

    /// How often a failed request that is safe to repeat is tried again.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    pub fn build(self) -> Result<Client> {
        let base = self.base_url.trim_end_matches('/').to_owned();
        let parsed = Url::parse(&base).map_err(|e| Error::Usage(format!("invalid server URL {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(Error::Usage(format!(
                "the server URL must be http:// or https:// without a query, not {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("codegate-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // The server closes keep-alive connections idle for 10 s; reusing one at that
            // moment fails mid-request, so idle connections are let go before.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                credentials: self.credentials,
                timeout: self.timeout,
                long_timeout: self.long_timeout,
                max_retries: self.max_retries,
            }),
        })
    }
}

/// A connection to one CodeGate server with one credential. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    timeout: Duration,
    long_timeout: Duration,
    max_retries: u32,
}

/// What a request carries.
pub(crate) enum Payload {
    Empty,
    Json(Vec<u8>),
    /// Sent once, never retried; Bearer only (a signature needs the whole body first).
    Stream {
        body: Option<reqwest::Body>,
        content_type: &'static str,
    },
}

/// One API call, before authentication.
pub(crate) struct Call {
    pub method: Method,
    /// Under the base URL, already percent-encoded, e.g. `/api/v1/projects`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub payload: Payload,
    pub idempotency_key: Option<String>,
    /// Bulk work that may take minutes: gets the long time limit.
    pub long: bool,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            payload: Payload::Empty,
            idempotency_key: None,
            long: false,
        }
    }

    pub fn long(mut self) -> Self {
        self.long = true;
        self
    }

    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Usage(e.to_string()))?;
        self.payload = Payload::Json(bytes);
        Ok(self)
    }

    pub fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }
}

/// Whether the server may have acted on a request that failed with `status`.
fn safe_to_retry(call: &Call, status: Option<u16>) -> bool {
    let idempotent =
        matches!(call.method, Method::GET | Method::HEAD | Method::DELETE) || call.idempotency_key.is_some();
    match status {
        // Rate limiting refuses before any work is done.
        Some(429) => true,
        Some(502..=504) => idempotent,
        Some(_) => false,
        None => idempotent,
    }
}

fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    if let Some(secs) = retry_after {
        return Duration::from_secs(secs).min(MAX_RETRY_WAIT);
    }
    let base = 0.25 * f64::from(1u32 << attempt.min(5));
    // Jitter (half to full delay) keeps retrying clients from moving in step.
    Duration::from_secs_f64(base.min(5.0) * (0.5 + rand::random::<f64>() / 2.0))
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`) with a token or an API key.
    pub fn new(base_url: impl Into<String>, credentials: impl Into<Credentials>) -> Result<Client> {
        Client::builder(base_url, credentials).build()
    }

    pub fn builder(base_url: impl Into<String>, credentials: impl Into<Credentials>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            credentials: credentials.into(),
            timeout: Duration::from_secs(30),
            long_timeout: Duration::from_secs(3600),
            max_retries: 2,
        }
    }

    /// Convenience for a Bearer-token client.
    pub fn with_token(base_url: impl Into<String>, token: impl Into<String>) -> Result<Client> {
        Client::new(base_url, BearerToken(token.into()))
    }

    /// Convenience for an HMAC (API key) client.
    pub fn with_api_key(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Client> {
        Client::new(base_url, HmacCredentials::new(api_key, secret))
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Sends a call, retrying when safe; the answer is 2xx.
    pub(crate) async fn execute(&self, mut call: Call) -> Result<Response> {
        let streaming = matches!(call.payload, Payload::Stream { .. });
        let mut attempt = 0;
        loop {
            let result = self.send_once(&mut call).await;
            let (retry, wait_hint) = match &result {
                Ok(_) => return result,
                Err(Error::RateLimited { retry_after, .. }) => (true, *retry_after),
                Err(e @ Error::Api { .. }) => (safe_to_retry(&call, e.status()), None),
                // Never reached the server: always safe to repeat.
                Err(Error::Transport(e)) if e.is_connect() => (true, None),
                Err(Error::Transport(_)) => (safe_to_retry(&call, None), None),
                Err(_) => return result,
            };
            if streaming || !retry || attempt >= self.inner.max_retries {
                return result;
            }
            tokio::time::sleep(backoff(attempt, wait_hint)).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, call: &mut Call) -> Result<Response> {
        let wire_query = crate::auth::encode_query(&call.query);
        let mut url = format!("{}{}", self.inner.base, call.path);
        if !wire_query.is_empty() {
            url.push('?');
            url.push_str(&wire_query);
        }
        let url = Url::parse(&url).map_err(|e| Error::Usage(format!("invalid URL {url}: {e}")))?;
        let mut req = self.inner.http.request(call.method.clone(), url.clone());
        let body: &[u8] = match &call.payload {
            Payload::Json(bytes) => bytes,
            _ => &[],
        };
        match &self.inner.credentials {
            Credentials::Bearer(token) => req = req.bearer_auth(&token.0),
            Credentials::Hmac(creds) => {
                if matches!(call.payload, Payload::Stream { .. }) {
                    return Err(Error::Usage("streamed uploads need a token, not an API key".into()));
                }
                // A fresh nonce and timestamp per attempt: a retry is a new request.
                let signed = creds.sign_now(RequestParts {
                    method: call.method.as_str(),
                    path: url.path(),
                    wire_query: url.query().unwrap_or(""),
                    body,
                });
                for (name, value) in signed.iter() {
                    req = req.header(name, value);
                }
            }
        }
        if let Some(key) = &call.idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req = req.timeout(if call.long { self.inner.long_timeout } else { self.inner.timeout });
        req = match &mut call.payload {
            Payload::Empty => req,
            Payload::Json(bytes) => req.header(CONTENT_TYPE, "application/json").body(bytes.clone()),
            Payload::Stream { body, content_type } => {
                let body = body.take().ok_or_else(|| Error::Usage("a streamed body can be sent only once".into()))?;
                req.header(CONTENT_TYPE, *content_type).body(body)
            }
        };
        let resp = req.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        Err(Error::from_answer(status, &headers, &body))
    }

    /// Sends a call whose answer is JSON of type `T`.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let what = format!("{} {}", call.method, call.path);
        let bytes = self.execute(call).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(format!("{what}: {e}")))
    }

    /// Sends a call whose answer has no body worth reading (204).
    pub(crate) async fn no_content(&self, call: Call) -> Result<()> {
        self.execute(call).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unusable_base_urls() {
        assert!(Client::with_token("ftp://x", "t").is_err());
        assert!(Client::with_token("not a url", "t").is_err());
        assert!(Client::with_token("http://x/?a=1", "t").is_err());
        let c = Client::with_token("http://127.0.0.1:1/", "t").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:1");
    }

    #[test]
    fn retries_only_what_is_safe() {
        let post = Call::new(Method::POST, "/x");
        assert!(safe_to_retry(&post, Some(429)));
        assert!(!safe_to_retry(&post, Some(503)));
        assert!(!safe_to_retry(&post, None));
        let mut keyed = Call::new(Method::POST, "/x");
        keyed.idempotency_key = Some("k".into());
        assert!(safe_to_retry(&keyed, Some(503)));
        let get = Call::new(Method::GET, "/x");
        assert!(safe_to_retry(&get, Some(502)));
        assert!(!safe_to_retry(&get, Some(500)));
        assert!(!safe_to_retry(&get, Some(404)));
    }

    #[test]
    fn backoff_honours_retry_after_within_a_cap() {
        assert_eq!(backoff(0, Some(3)), Duration::from_secs(3));
        assert_eq!(backoff(0, Some(3600)), MAX_RETRY_WAIT);
        assert!(backoff(10, None) <= Duration::from_secs(5));
    }
}
