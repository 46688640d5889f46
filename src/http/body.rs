//! Request bodies with a deadline: a client that sends a head and then stalls its body would
//! otherwise hold its connection (and a `--max-connections` slot) for as long as it likes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a [`TimedBody`] ends with once its deadline passes; `AppJson` turns it into 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// A request body that fails with [`BodyTimedOut`] if it is not complete by its deadline.
pub struct TimedBody {
    inner: Body,
    deadline: Instant,
    timeout: Duration,
    /// Made on the first wait only: most bodies arrive with their head and never need it.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Called once when the deadline passes (the server counts the timeout).
    on_timeout: Option<Box<dyn FnOnce() + Send>>,
}

impl TimedBody {
    /// `inner` must be complete within `timeout` from now.
    pub fn new(inner: Body, timeout: Duration, on_timeout: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            inner,
            deadline: Instant::now() + timeout,
            timeout,
            sleep: None,
            on_timeout: Some(on_timeout),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some(on_timeout) = this.on_timeout.take() {
                    on_timeout();
                }
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or an error it wraps, is a [`BodyTimedOut`].
pub fn timed_out<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimedOut> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
            return Some(timed_out);
        }
        next = error.source();
    }
    None
}
