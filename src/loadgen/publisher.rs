//! The open-loop publisher: comment `seq` is sent at its scheduled time whatever happened to
//! the previous ones, each POST on an idle keep-alive connection of its own pool (opening one
//! if all are busy), so a slow server delays deliveries, never the schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Instant;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::recorder::{END_TEXT, Schedule, SeqSet};
use super::scenario::Audience;
use crate::http::client::{ClientError, HttpConnection};
use crate::model::Target;
use crate::net::ByteMeter;

/// The schedule's clock: a thread of its own that sleeps to each due time and hands the
/// sequence number over. tokio's timer wheel has a 1 ms granularity, which would add up to a
/// millisecond of publisher lateness to every latency; a thread's `nanosleep` is accurate to
/// tens of microseconds.
fn spawn_clock(schedule: Schedule, stop: CancellationToken) -> mpsc::UnboundedReceiver<u64> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("publish-clock".into())
        .spawn(move || {
            for seq in 0..schedule.end {
                let due = schedule.due(seq);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if stop.is_cancelled() || sender.send(seq).is_err() {
                    return;
                }
            }
        })
        .expect("spawning a thread");
    receiver
}

/// Outcome counts of the publishes.
#[derive(Debug, Default)]
pub struct PublishCounts {
    /// Measured comments that failed (never entered the feed).
    pub measured_errors: AtomicU64,
    /// The first failure, to show the user.
    pub first_error: std::sync::Mutex<Option<String>>,
    /// Worst lateness of a publish behind its schedule, microseconds: the generator's own
    /// contribution to every latency, reported so it can be told apart from the server's.
    pub max_lateness_us: AtomicU64,
    /// Sum of lateness, for the mean.
    pub total_lateness_us: AtomicU64,
    pub publishes: AtomicU64,
    /// Measured comments the server accepted, by `seq - first_measured`.
    pub accepted: std::sync::Mutex<SeqSet>,
}

impl PublishCounts {
    fn record_lateness(&self, lateness: std::time::Duration) {
        let us = lateness.as_micros() as u64;
        self.max_lateness_us.fetch_max(us, Ordering::Relaxed);
        self.total_lateness_us.fetch_add(us, Ordering::Relaxed);
        self.publishes.fetch_add(1, Ordering::Relaxed);
    }

    /// Mean lateness behind the schedule, microseconds.
    pub fn mean_lateness_us(&self) -> f64 {
        let n = self.publishes.load(Ordering::Relaxed).max(1);
        self.total_lateness_us.load(Ordering::Relaxed) as f64 / n as f64
    }
}

/// Publishes on its own connections, whose bytes are kept apart from the subscribers'.
pub struct Publisher {
    /// The instances posted to, comment `seq` to `targets[seq % len]`, each with its pool.
    targets: Vec<(Target, Pool)>,
    pub meter: Arc<ByteMeter>,
    pub counts: Arc<PublishCounts>,
    payload_bytes: usize,
    audience: Audience,
    /// Users the per-user comments go to in turn (subscribers / tabs).
    users: u32,
}

impl Publisher {
    /// A publisher for a cell with `measured` measured comments.
    pub fn new(
        targets: Vec<Target>,
        payload_bytes: usize,
        audience: Audience,
        users: u32,
        measured: usize,
    ) -> Self {
        let counts = PublishCounts {
            accepted: SeqSet::new(measured).into(),
            ..Default::default()
        };
        assert!(!targets.is_empty(), "a publisher needs a target");
        Self {
            targets: targets.into_iter().map(|t| (t, Pool::default())).collect(),
            meter: ByteMeter::new(),
            counts: Arc::new(counts),
            payload_bytes,
            audience,
            users,
        }
    }

    /// The body of comment `seq`.
    fn body(&self, seq: u64) -> String {
        let to = match self.audience {
            Audience::Broadcast => None,
            Audience::PerUser => Some(user_name((seq % u64::from(self.users)) as u32)),
        };
        serde_json::json!({ "from": "publisher", "to": to, "text": Schedule::text(seq, self.payload_bytes) })
            .to_string()
    }

    /// Runs `run` on a thread with a runtime of its own, so a busy subscriber runtime cannot
    /// delay publishes (which would add the generator's own lag to every latency); the
    /// receiver completes when publishing is over.
    pub fn run_on_own_thread(
        self: Arc<Self>,
        schedule: Schedule,
        stop: CancellationToken,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a current-thread runtime");
                runtime.block_on(self.run(&schedule, &stop));
                // Dropping the runtime closes the pool's connections with it.
                drop(runtime);
                let _ = done.send(());
            })
            .expect("spawning a thread");
        finished
    }

    /// Publishes comments `0..schedule.end` on schedule; returns when all have answered or
    /// `stop` is cancelled.
    pub async fn run(&self, schedule: &Schedule, stop: &CancellationToken) {
        let mut due = spawn_clock(*schedule, stop.clone());
        let mut in_flight = JoinSet::new();
        loop {
            let seq = tokio::select! {
                _ = stop.cancelled() => break,
                seq = due.recv() => match seq {
                    Some(seq) => seq,
                    None => break,
                },
            };
            let body = self.body(seq);
            let due_at = schedule.due(seq);
            // Where a measured comment sits among the measured ones; `None` in the warm-up.
            let index = schedule
                .is_measured(seq)
                .then(|| (seq - schedule.first_measured) as usize);
            let (target, pool) = &self.targets[seq as usize % self.targets.len()];
            let (pool, target, meter, counts) = (
                pool.clone(),
                target.clone(),
                self.meter.clone(),
                self.counts.clone(),
            );
            in_flight.spawn(async move {
                let on_send = |counts: &PublishCounts| {
                    // Lateness up to the moment the request goes out, pool wait and new
                    // connection included; warm-up publishes are not measured.
                    if index.is_some() {
                        counts.record_lateness(Instant::now().saturating_duration_since(due_at));
                    }
                };
                let result = post(&pool, &target, &meter, &body, || on_send(&counts)).await;
                match (&result, index) {
                    (Ok(()), Some(index)) => {
                        counts
                            .accepted
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(index);
                    }
                    (Err(_), Some(_)) => {
                        counts.measured_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    (_, None) => {}
                }
                if let Err(error) = result {
                    let mut first = counts.first_error.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert_with(|| error.to_string());
                }
            });
            // Reap finished publishes so the set stays small on long runs.
            while in_flight.try_join_next().is_some() {}
        }
        tokio::select! {
            _ = stop.cancelled() => in_flight.abort_all(),
            _ = async { while in_flight.join_next().await.is_some() {} } => {}
        }
    }

    /// Publishes the end-of-cell comment to everyone (through the first instance: the
    /// instances share one feed).
    pub async fn publish_end(&self) -> Result<(), ClientError> {
        let body = serde_json::json!({ "from": "publisher", "text": END_TEXT }).to_string();
        let (target, pool) = &self.targets[0];
        post(pool, target, &self.meter, &body, || {}).await
    }

    /// Closes the pools' connections.
    pub async fn close(&self) {
        for (_, pool) in &self.targets {
            pool.lock().await.clear();
        }
    }
}

/// Idle keep-alive connections to one instance.
type Pool = Arc<Mutex<Vec<HttpConnection>>>;

/// How long one publish may take before it counts as failed: a stalled server must not hang
/// the cell.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn post(
    pool: &Mutex<Vec<HttpConnection>>,
    target: &Target,
    meter: &Arc<ByteMeter>,
    body: &str,
    on_send: impl FnOnce(),
) -> Result<(), ClientError> {
    let exchange = async {
        let idle = pool.lock().await.pop();
        let mut connection = match idle {
            Some(connection) if connection.is_open() => connection,
            _ => HttpConnection::open(target, meter.clone()).await?,
        };
        on_send();
        connection.post_json("/comments", body).await?;
        pool.lock().await.push(connection);
        Ok(())
    };
    tokio::time::timeout(PUBLISH_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(ClientError::Timeout(PUBLISH_TIMEOUT)))
}

/// The user id of subscriber `index`.
pub fn user_name(index: u32) -> String {
    format!("user-{index}")
}
