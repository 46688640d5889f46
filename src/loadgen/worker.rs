//! Load-generator worker processes: each holds a share of a cell's subscribers, with its own
//! file limit (20,000 per process here) and its own runtime on the cores. The parent starts
//! the servers, publishes and reads `/stats`, as for a cell of its own; the workers connect,
//! learn the schedule, and at the end return their share merged into histograms and counts,
//! which the parent adds exactly (V2-serialised histograms, `Histogram::add`).
//!
//! The two talk over the worker's stdin and stdout, one JSON message a line:
//! parent `Job` -> worker `Ready`; parent `Start` (the schedule, on the machine's monotonic
//! clock, which every process shares) -> worker `Progress`...; parent `Finish` (what the
//! server accepted) -> worker `Done`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

use super::observations::CutOff;
use super::recorder::{self, Expectation, PartialRecord, Schedule, SeqSet};
use super::subscribers::{
    MeterTotals, Share, client_moment, connect_subscribers, join_subscribers, spawn_lag_probe,
    spawn_reconnect_monitor,
};
use crate::model::scenario::{CellSpec, Scenario};
use crate::model::stats::ClientCounts;
use crate::report::hgrm;

/// Why a worker could not do its share.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("starting load-generator worker {worker} ({binary}): {source}")]
    Spawn {
        worker: u32,
        binary: String,
        source: std::io::Error,
    },
    #[error("load-generator worker {worker}: {message}")]
    Failed { worker: u32, message: String },
    #[error("worker protocol: {0}")]
    Protocol(String),
    #[error("worker I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What a worker is asked to do: its share of one cell.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub scenario: Scenario,
    pub spec: CellSpec,
    /// The subscribers it holds: `first`, `first + step`, ...
    pub first: u32,
    pub step: u32,
    /// Measured comments in the cell.
    pub measured: usize,
    /// Where the subscribers connect, round robin by subscriber index (one per instance).
    pub addrs: Vec<SocketAddr>,
    pub start_cursor: u64,
}

/// The schedule, with its start on `CLOCK_MONOTONIC`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ScheduleOrder {
    pub start_ns: u64,
    pub period_ns: u64,
    pub first_measured: u64,
    pub end: u64,
}

impl ScheduleOrder {
    fn of(schedule: &Schedule) -> Self {
        let (now, now_ns) = (Instant::now(), crate::sys::monotonic_ns());
        let ahead = schedule.start.saturating_duration_since(now).as_nanos() as u64;
        let behind = now.saturating_duration_since(schedule.start).as_nanos() as u64;
        Self {
            start_ns: (now_ns + ahead).saturating_sub(behind),
            period_ns: schedule.period.as_nanos() as u64,
            first_measured: schedule.first_measured,
            end: schedule.end,
        }
    }

    fn schedule(&self) -> Schedule {
        let (now, now_ns) = (Instant::now(), crate::sys::monotonic_ns());
        let start = if self.start_ns >= now_ns {
            now + Duration::from_nanos(self.start_ns - now_ns)
        } else {
            now.checked_sub(Duration::from_nanos(now_ns - self.start_ns))
                .unwrap_or(now)
        };
        Schedule {
            start,
            period: Duration::from_nanos(self.period_ns),
            first_measured: self.first_measured,
            end: self.end,
        }
    }
}

/// What the parent learned at the end of publishing, which the worker needs to check its
/// subscribers' records pair by pair.
#[derive(Debug, Serialize, Deserialize)]
pub struct FinishOrder {
    pub accepted: SeqSet,
    pub per_user: Option<u64>,
    pub publish_errors: u64,
    /// How long subscribers may take to stop after the end-of-cell comment.
    pub stop_after_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum Order {
    Job(Box<Job>),
    Start(ScheduleOrder),
    Finish(FinishOrder),
}

/// The worker's subscribers' counters at one moment (the parent keeps the moment's time).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MomentData {
    pub counts: ClientCounts,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub cpu_seconds: f64,
}

/// A worker's share of the cell, merged.
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub window_start: MomentData,
    pub window_end: MomentData,
    pub reconnects_by_second: Vec<u64>,
    /// V2-serialised histograms: the runtime's timer lag, all latencies, latencies by second.
    pub lag: Vec<u8>,
    pub histogram: Vec<u8>,
    pub per_second: Vec<Vec<u8>>,
    pub deliveries: crate::model::results::Deliveries,
    pub misdelivered: u64,
    pub unexpected: u64,
    pub payload_bytes: u64,
    pub restarts_seen: u64,
    /// Bytes and kernel counts by server instance.
    pub meters: Vec<MeterTotals>,
    pub still_running: usize,
    pub failed_tasks: usize,
}

impl Done {
    pub fn partial(&self) -> Result<PartialRecord, WorkerError> {
        let read = |bytes: &[u8]| {
            hgrm::deserialize(bytes).map_err(|e| WorkerError::Protocol(format!("histogram: {e}")))
        };
        Ok(PartialRecord {
            histogram: read(&self.histogram)?,
            per_second: self
                .per_second
                .iter()
                .map(|h| read(h))
                .collect::<Result<_, _>>()?,
            deliveries: self.deliveries,
            misdelivered: self.misdelivered,
            unexpected: self.unexpected,
            payload_bytes: self.payload_bytes,
            restarts_seen: self.restarts_seen,
        })
    }

    pub fn lag(&self) -> Result<Histogram<u64>, WorkerError> {
        hgrm::deserialize(&self.lag).map_err(|e| WorkerError::Protocol(format!("histogram: {e}")))
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Ready { ready: u64 },
    Progress { delivered: u64 },
    Done(Box<Done>),
}

/// The worker's side: reads orders from `input`, writes reports to `output`, for one cell.
pub async fn serve<R, W>(input: R, output: W) -> Result<(), WorkerError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut orders = BufReader::new(input).lines();
    let (reports, outbox) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_reports(outbox, output));
    let Order::Job(job) = next_order(&mut orders).await? else {
        return Err(WorkerError::Protocol("expected a job first".into()));
    };
    crate::sys::raise_open_files_limit();
    let load = job.scenario.load;
    crate::http::client::bind_connections_to(load.sources());
    let share = Share {
        first: job.first,
        step: job.step,
    };
    let mut subscribers = connect_subscribers(
        &job.scenario,
        &job.spec,
        job.measured,
        &job.addrs,
        job.start_cursor,
        share,
    )
    .await;
    let _ = reports.send(Report::Ready {
        ready: subscribers.ready,
    });
    let ticker = tokio::spawn({
        let (progress, reports) = (subscribers.progress.clone(), reports.clone());
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let delivered = progress.delivered.load(Ordering::Relaxed);
                if delivered != last {
                    last = delivered;
                    let _ = reports.send(Report::Progress { delivered });
                }
            }
        }
    });

    let Order::Start(order) = next_order(&mut orders).await? else {
        return Err(WorkerError::Protocol("expected the schedule".into()));
    };
    let schedule = order.schedule();
    let _ = subscribers.started.set(schedule);
    let (monitor, reconnects) = spawn_reconnect_monitor(subscribers.counters.clone(), schedule);
    let lag = spawn_lag_probe(schedule);
    let moments = tokio::spawn({
        let (counters, meters) = (subscribers.counters.clone(), subscribers.meters.clone());
        async move {
            let moment = || {
                let m = client_moment(&counters, &meters);
                MomentData {
                    counts: m.counts,
                    bytes_up: m.bytes_up,
                    bytes_down: m.bytes_down,
                    cpu_seconds: m.cpu_seconds,
                }
            };
            tokio::time::sleep_until(schedule.window_start().into()).await;
            let start = moment();
            tokio::time::sleep_until(schedule.window_end().into()).await;
            (start, moment())
        }
    });

    let Order::Finish(finish) = next_order(&mut orders).await? else {
        return Err(WorkerError::Protocol(
            "expected the end of publishing".into(),
        ));
    };
    let (records, cut_off) = join_subscribers(
        &mut subscribers,
        Duration::from_millis(finish.stop_after_ms),
    )
    .await;
    // Kernel counts are taken as each socket closes, which may follow the subscriber's end
    // (hyper's connection task drops it): wait for every socket opened to have closed.
    let closed_deadline = Instant::now() + Duration::from_secs(5);
    let closed = || -> u64 { subscribers.meters.iter().map(|m| m.kernel_totals().0).sum() };
    let opened = subscribers.counters.snapshot().connections_opened;
    while closed() < opened && Instant::now() < closed_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ticker.abort();
    monitor.abort();
    let _ = monitor.await;
    let (window_start, window_end) = moments
        .await
        .map_err(|e| WorkerError::Protocol(format!("window snapshots: {e}")))?;
    let lag = lag.await.unwrap_or_else(|_| recorder::new_histogram());
    let expectation = Expectation {
        schedule: &schedule,
        accepted: &finish.accepted,
        per_user: finish.per_user,
        tabs: u64::from(job.scenario.tabs),
        publish_errors: finish.publish_errors,
    };
    let partial = recorder::merge_share(
        records.iter().enumerate().map(|(p, r)| (share.index(p), r)),
        &expectation,
    );
    let done = Done {
        window_start,
        window_end,
        reconnects_by_second: reconnects.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        lag: hgrm::serialize(&lag),
        histogram: hgrm::serialize(&partial.histogram),
        per_second: partial.per_second.iter().map(hgrm::serialize).collect(),
        deliveries: partial.deliveries,
        misdelivered: partial.misdelivered,
        unexpected: partial.unexpected,
        payload_bytes: partial.payload_bytes,
        restarts_seen: partial.restarts_seen,
        meters: subscribers
            .meters
            .iter()
            .map(|m| MeterTotals::of(m))
            .collect(),
        still_running: cut_off.map_or(0, |c| c.still_running),
        failed_tasks: records.iter().filter(|r| r.is_none()).count(),
    };
    let _ = reports.send(Report::Done(Box::new(done)));
    drop(reports);
    writer
        .await
        .map_err(|e| WorkerError::Protocol(e.to_string()))??;
    Ok(())
}

async fn next_order<R: AsyncRead + Unpin>(
    orders: &mut Lines<BufReader<R>>,
) -> Result<Order, WorkerError> {
    let line = orders
        .next_line()
        .await?
        .ok_or_else(|| WorkerError::Protocol("the parent closed the pipe".into()))?;
    serde_json::from_str(&line).map_err(|e| WorkerError::Protocol(format!("order: {e}")))
}

async fn write_reports<W: AsyncWrite + Unpin>(
    mut outbox: mpsc::UnboundedReceiver<Report>,
    mut output: W,
) -> Result<(), WorkerError> {
    while let Some(report) = outbox.recv().await {
        let mut line = serde_json::to_vec(&report)
            .map_err(|e| WorkerError::Protocol(format!("report: {e}")))?;
        line.push(b'\n');
        output.write_all(&line).await?;
        output.flush().await?;
    }
    Ok(())
}

/// One worker, seen from the parent.
struct WorkerHandle {
    child: Child,
    orders: ChildStdin,
    ready: Option<oneshot::Receiver<u64>>,
    done: Option<oneshot::Receiver<Box<Done>>>,
    delivered: Arc<AtomicU64>,
}

/// The parent's side: the cell's worker processes.
pub struct Workers {
    workers: Vec<WorkerHandle>,
}

impl Workers {
    /// Starts `job_for(w)`'s worker for each of `count` workers: `binary worker`, its errors
    /// to `<log_stem>-worker-<w>.log`.
    pub async fn start(
        binary: &Path,
        count: u32,
        log_stem: &Path,
        job_for: impl Fn(u32) -> Job,
    ) -> Result<Self, WorkerError> {
        let mut workers = Vec::new();
        for w in 0..count {
            let spawn_error = |source| WorkerError::Spawn {
                worker: w,
                binary: binary.display().to_string(),
                source,
            };
            let log = std::fs::File::create(format!("{}-worker-{w}.log", log_stem.display()))
                .map_err(spawn_error)?;
            let mut child = tokio::process::Command::new(binary)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(spawn_error)?;
            let (Some(mut orders), Some(reports)) = (child.stdin.take(), child.stdout.take())
            else {
                return Err(WorkerError::Protocol("worker pipes missing".into()));
            };
            send(&mut orders, &Order::Job(Box::new(job_for(w)))).await?;
            let (ready_tx, ready) = oneshot::channel();
            let (done_tx, done) = oneshot::channel();
            let delivered = Arc::new(AtomicU64::new(0));
            tokio::spawn(read_reports(reports, ready_tx, done_tx, delivered.clone()));
            workers.push(WorkerHandle {
                child,
                orders,
                ready: Some(ready),
                done: Some(done),
                delivered,
            });
        }
        Ok(Self { workers })
    }

    /// Waits for every worker to have connected its share (or given up); returns how many
    /// subscribers are connected in all.
    pub async fn ready(&mut self) -> Result<u64, WorkerError> {
        let mut ready = 0;
        for (w, worker) in self.workers.iter_mut().enumerate() {
            let receiver = worker.ready.take().expect("asked once");
            ready += receiver
                .await
                .map_err(|_| failed(w, &mut worker.child, "ended before connecting"))?;
        }
        Ok(ready)
    }

    /// Tells every worker the schedule.
    pub async fn start_schedule(&mut self, schedule: &Schedule) -> Result<(), WorkerError> {
        let order = Order::Start(ScheduleOrder::of(schedule));
        for worker in &mut self.workers {
            send(&mut worker.orders, &order).await?;
        }
        Ok(())
    }

    /// First deliveries of measured comments so far, over every worker.
    pub fn delivered(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.delivered.load(Ordering::Relaxed))
            .sum()
    }

    /// Tells the workers what was accepted and collects their shares.
    pub async fn finish(
        mut self,
        accepted: &SeqSet,
        per_user: Option<u64>,
        publish_errors: u64,
        stop_after: Duration,
    ) -> Result<Vec<Done>, WorkerError> {
        let order = Order::Finish(FinishOrder {
            accepted: accepted.clone(),
            per_user,
            publish_errors,
            stop_after_ms: stop_after.as_millis() as u64,
        });
        for worker in &mut self.workers {
            send(&mut worker.orders, &order).await?;
        }
        let mut shares = Vec::new();
        for (w, worker) in self.workers.iter_mut().enumerate() {
            let receiver = worker.done.take().expect("asked once");
            let done = tokio::time::timeout(stop_after + Duration::from_secs(60), receiver)
                .await
                .map_err(|_| failed(w, &mut worker.child, "did not report within a minute"))?
                .map_err(|_| failed(w, &mut worker.child, "ended without reporting"))?;
            shares.push(*done);
        }
        for worker in &mut self.workers {
            let _ = worker.child.wait().await;
        }
        Ok(shares)
    }
}

/// The error for worker `w`, which is killed if still running.
fn failed(w: usize, child: &mut Child, what: &str) -> WorkerError {
    let _ = child.start_kill();
    WorkerError::Failed {
        worker: w as u32,
        message: format!("{what} (its log is beside the cell's server log)"),
    }
}

async fn send(orders: &mut ChildStdin, order: &Order) -> Result<(), WorkerError> {
    let mut line =
        serde_json::to_vec(order).map_err(|e| WorkerError::Protocol(format!("order: {e}")))?;
    line.push(b'\n');
    orders.write_all(&line).await?;
    orders.flush().await?;
    Ok(())
}

async fn read_reports(
    reports: tokio::process::ChildStdout,
    ready: oneshot::Sender<u64>,
    done: oneshot::Sender<Box<Done>>,
    delivered: Arc<AtomicU64>,
) {
    let mut lines = BufReader::new(reports).lines();
    let (mut ready, mut done) = (Some(ready), Some(done));
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str(&line) {
            Ok(Report::Ready { ready: count }) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(count);
                }
            }
            Ok(Report::Progress { delivered: count }) => delivered.store(count, Ordering::Relaxed),
            Ok(Report::Done(share)) => {
                if let Some(tx) = done.take() {
                    let _ = tx.send(share);
                }
            }
            Err(_) => break,
        }
    }
}

/// A cut-off over the workers: how many of their subscribers were still running.
pub fn cut_off(shares: &[Done], after: Duration) -> Option<CutOff> {
    let still_running: usize = shares.iter().map(|d| d.still_running).sum();
    (still_running > 0).then_some(CutOff {
        still_running,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_crosses_processes_on_the_monotonic_clock() {
        let schedule = Schedule {
            start: Instant::now() + Duration::from_millis(50),
            period: Duration::from_millis(100),
            first_measured: 3,
            end: 10,
        };
        let order = ScheduleOrder::of(&schedule);
        let text = serde_json::to_string(&Order::Start(order)).unwrap();
        let Order::Start(back) = serde_json::from_str(&text).unwrap() else {
            panic!("not a start order");
        };
        let again = back.schedule();
        let skew = if again.start > schedule.start {
            again.start - schedule.start
        } else {
            schedule.start - again.start
        };
        assert!(skew < Duration::from_millis(1), "{skew:?}");
        assert_eq!(
            (again.period, again.first_measured, again.end),
            (schedule.period, 3, 10)
        );
    }
}
