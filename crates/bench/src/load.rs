//! The load generator: N keep-alive HTTP/1.1 connections, each sending one
//! request at a time (closed loop) from a prepared plan until a deadline or
//! until the plan's one-shot requests run out.
//!
//! It shares the machine with the server, so the hot loop does as little as
//! possible: requests are signed (by the client crate's signer) before the
//! step starts, a request is built by cloning shared headers and
//! reference-counted bodies, and a verify answer is checked with a byte search
//! instead of a JSON parse.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One request of a plan: what differs between requests.
pub struct Item {
    pub uri: Uri,
    pub body: Bytes,
    pub signature: Option<HeaderValue>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Items are cycled through for the whole step (reads: not replay-checked).
    Cycle,
    /// Each item is sent once at most (verify: every code is redeemed once).
    Once,
}

pub struct Plan {
    pub method: Method,
    /// Headers every request carries (API key, timestamp, content type).
    pub common: HeaderMap,
    /// The header an item's signature goes under (`X-Signature`).
    pub signature_header: HeaderName,
    pub items: Vec<Item>,
    pub mode: Mode,
    /// A 2xx answer must also say `"success":true`.
    pub expect_success: bool,
}

impl Plan {
    fn request(&self, item: &Item) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(item.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = item.uri.clone();
        *req.headers_mut() = self.common.clone();
        if let Some(sig) = &item.signature {
            req.headers_mut().insert(self.signature_header.clone(), sig.clone());
        }
        req
    }
}

pub struct StepResult {
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    /// Latency in microseconds.
    pub histogram: Histogram<u64>,
    /// The step stopped because its one-shot items ran out.
    pub exhausted: bool,
    /// The first few error descriptions, for diagnosis.
    pub error_samples: Vec<String>,
}

struct WorkerResult {
    requests: u64,
    errors: u64,
    histogram: Histogram<u64>,
    exhausted: bool,
    error_samples: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Runs `plan` on `connections` connections for `duration` (or until a
/// one-shot plan runs out).
pub async fn run_step(addr: SocketAddr, plan: Arc<Plan>, connections: usize, duration: Duration) -> StepResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> =
        (0..connections).map(|_| tokio::spawn(worker(addr, plan.clone(), next.clone(), deadline))).collect();
    let mut total = StepResult {
        requests: 0,
        errors: 0,
        secs: 0.0,
        histogram: histogram(),
        exhausted: false,
        error_samples: Vec::new(),
    };
    for w in workers {
        let r = w.await.expect("load worker panicked");
        total.requests += r.requests;
        total.errors += r.errors;
        total.exhausted |= r.exhausted;
        total.histogram.add(&r.histogram).expect("histograms share bounds");
        for s in r.error_samples {
            if total.error_samples.len() < 5 {
                total.error_samples.push(s);
            }
        }
    }
    total.secs = start.elapsed().as_secs_f64();
    total
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(addr: SocketAddr, plan: Arc<Plan>, next: Arc<AtomicUsize>, deadline: Instant) -> WorkerResult {
    let mut r =
        WorkerResult { requests: 0, errors: 0, histogram: histogram(), exhausted: false, error_samples: Vec::new() };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < deadline {
        if let Some(s) = &mut sender {
            if s.ready().await.is_err() {
                sender = None;
            }
        }
        let s = match &mut sender {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    fail(&mut r, e);
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let i = next.fetch_add(1, Ordering::Relaxed);
        let item = match plan.mode {
            Mode::Cycle => &plan.items[i % plan.items.len()],
            Mode::Once if i < plan.items.len() => &plan.items[i],
            Mode::Once => {
                r.exhausted = true;
                break;
            }
        };
        let req = plan.request(item);
        let sent = Instant::now();
        let answer = match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await {
                    Ok(body) => Ok((status, body.to_bytes())),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("sending: {e}")),
        };
        let micros = sent.elapsed().as_micros() as u64;
        r.requests += 1;
        r.histogram.saturating_record(micros.max(1));
        match answer {
            Ok((status, _)) if !status.is_success() => {
                fail(&mut r, format!("HTTP {status}"));
            }
            Ok((_, body)) if plan.expect_success && !says_success(&body) => {
                fail(&mut r, String::from_utf8_lossy(&body).into_owned());
            }
            Ok(_) => {}
            Err(e) => {
                fail(&mut r, e);
                sender = None;
            }
        }
    }
    r
}

fn fail(r: &mut WorkerResult, what: String) {
    r.errors += 1;
    if r.error_samples.len() < 3 {
        r.error_samples.push(what);
    }
}

fn says_success(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"success\":true";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// Headers every request of a run carries.
pub fn common_headers(host: &str, extra: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_str(host).expect("host is a valid header"));
    for (name, value) in extra {
        h.insert(name.clone(), value.clone());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::says_success;

    #[test]
    fn success_is_read_from_the_compact_json_the_server_writes() {
        assert!(says_success(br#"{"success":true,"code":"X"}"#));
        assert!(!says_success(br#"{"success":false,"error_code":"CODE_ALREADY_USED"}"#));
        assert!(!says_success(b""));
    }
}
