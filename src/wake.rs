//! A waker that remembers it rang, for a task that waits on one busy source and a few quiet
//! ones: a streaming response waits on its comment queue, and also on the server's shutdown,
//! an admin drop, a heartbeat timer and the client leaving. Polling the quiet ones on every
//! wake-up costs on every delivery (a `CancellationToken`'s future locks its token's and its
//! `Notify`'s mutexes, shared by every subscriber for the shutdown; a socket read goes down
//! through the byte meter to the I/O driver), though they almost never fire. Polled with
//! [`Alarm::waker`] instead, they ring the alarm when they fire, and the task polls them
//! only after [`Alarm::rang`] says one did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// One task's alarm: see the module's comment.
pub struct Alarm {
    bell: Arc<Bell>,
    /// A waker ringing `bell`, made once.
    waker: Waker,
}

struct Bell {
    rang: AtomicBool,
    /// The task a ring wakes: the one that last asked [`Alarm::rang`].
    task: AtomicWaker,
}

impl Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Set before the task is woken, so the task it wakes sees it.
        self.rang.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

impl Alarm {
    /// An alarm that has rung, so its task's first poll registers the quiet sources.
    pub fn new() -> Self {
        let bell = Arc::new(Bell {
            rang: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(bell.clone());
        Self { bell, waker }
    }

    /// Whether a quiet source woke the task since the last call (and on the first): if so,
    /// poll them all now, with [`Self::waker`], or [`Self::ring`] to come back to them. From
    /// now on a ring wakes `cx`'s task.
    pub fn rang(&self, cx: &Context<'_>) -> bool {
        // Registered before the flag is read: a ring in between wakes the task again.
        self.bell.task.register(cx.waker());
        self.bell.rang.swap(false, Ordering::AcqRel)
    }

    /// Marks the alarm rung, for a task that returns before polling every quiet source.
    pub fn ring(&self) {
        self.bell.rang.store(true, Ordering::Release);
    }

    /// The waker to poll the quiet sources with: it rings the alarm and wakes the task.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wake-ups: the task.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_ring_wakes_the_task_and_is_seen_once() {
        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let cx = Context::from_waker(&task_waker);
        let alarm = Alarm::new();
        assert!(
            alarm.rang(&cx),
            "a new alarm has rung, so the first poll registers"
        );
        assert!(!alarm.rang(&cx), "seen once");

        alarm.waker().wake_by_ref();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(alarm.rang(&cx));
        assert!(!alarm.rang(&cx));

        alarm.ring();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "ring() wakes nobody");
        assert!(alarm.rang(&cx), "but the next poll sees it");
    }

    #[tokio::test]
    async fn a_quiet_source_polled_with_the_alarm_rings_it() {
        let token = tokio_util::sync::CancellationToken::new();
        let mut cancelled = Box::pin(token.clone().cancelled_owned());
        let alarm = Alarm::new();
        let seen = std::future::poll_fn(|cx| {
            if alarm.rang(cx) {
                let mut quiet = Context::from_waker(alarm.waker());
                if cancelled.as_mut().poll(&mut quiet).is_ready() {
                    return std::task::Poll::Ready(true);
                }
                token.cancel();
            }
            std::task::Poll::Pending
        });
        // The cancel rings the alarm, which wakes this task, which then sees it.
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), seen).await;
        assert_eq!(seen, Ok(true));
    }
}
