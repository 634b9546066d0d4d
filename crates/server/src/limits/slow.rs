//! Request bodies that arrive too slowly are cut off: a body may stall for
//! the configured timeout, and must keep an average of
//! [`MIN_BODY_BYTES_PER_SEC`] beyond that grace. (Slow request heads are
//! hyper's `header_read_timeout`, set in the serve loop.)

use super::settings::MIN_BODY_BYTES_PER_SEC;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Set when a body was cut off, so the middleware answers 408.
#[derive(Clone, Default)]
pub struct TimedOut(pub Arc<AtomicBool>);

impl TimedOut {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct DeadlineBody {
    inner: Body,
    started: Instant,
    received: u64,
    grace: Duration,
    /// When the next frame is due.
    due: Instant,
    /// Armed (at `due`) the first time the body is not there yet: a small body
    /// that came with the request head never needs a timer.
    timer: Option<Pin<Box<Sleep>>>,
    flag: TimedOut,
}

impl DeadlineBody {
    pub fn wrap(inner: Body, grace: Duration, flag: TimedOut) -> Body {
        let started = Instant::now();
        Body::new(DeadlineBody { inner, started, received: 0, grace, due: started + grace, timer: None, flag })
    }

    fn arm(&mut self) -> Pin<&mut Sleep> {
        if self.timer.is_none() {
            self.timer = Some(Box::pin(tokio::time::sleep_until(self.due)));
        }
        self.timer.as_mut().expect("armed just now").as_mut()
    }

    /// The next frame is due by the earlier of "no stall longer than the
    /// grace" and "at least the minimum rate since the start".
    fn next_deadline(&self) -> Instant {
        let by_rate = self.started + self.grace + Duration::from_secs(self.received / MIN_BODY_BYTES_PER_SEC);
        by_rate.min(Instant::now() + self.grace)
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(Ok(f)) = &frame {
                    if let Some(data) = f.data_ref() {
                        this.received += data.len() as u64;
                    }
                    this.due = this.next_deadline();
                    if let Some(timer) = &mut this.timer {
                        timer.as_mut().reset(this.due);
                    }
                }
                Poll::Ready(frame)
            }
            Poll::Pending => match this.arm().poll(cx) {
                Poll::Ready(()) => {
                    this.flag.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new("the request body arrived too slowly"))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
