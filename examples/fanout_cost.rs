//! What the live fan-out costs inside the feed: the time one `publish` takes on the memory
//! feed with 10,000 live subscribers, for a broadcast (queued to all of them) and for a
//! comment addressed to one user (queued to that user's subscriber only). Nothing reads the
//! queues, so every publish is a fan-out and nothing else; they are sized to hold every
//! comment published, so no subscriber is dropped. Run with
//! `cargo run --release --example fanout_cost` (in a debug build, compare runs, not figures).

use std::time::{Duration, Instant};

use pushlab::feed::{Feed, MemoryFeed, NewComment};

const SUBSCRIBERS: usize = 10_000;
const PUBLISHES: usize = 200;

fn comment(to: Option<String>) -> NewComment {
    NewComment {
        from: "alice".into(),
        to,
        text: "x".repeat(100),
    }
}

/// Median and 99th percentile of the sorted times.
fn quantiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let feed = MemoryFeed::new(4 * PUBLISHES, 2 * PUBLISHES);
    let mut subscriptions = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        subscriptions.push(feed.subscribe(None, Some(format!("user{i}"))).await?);
    }
    for (name, to) in [
        ("broadcast", None::<String>),
        ("addressed to one user", Some("user7".to_string())),
    ] {
        let mut times = Vec::with_capacity(PUBLISHES);
        for _ in 0..PUBLISHES {
            let new = comment(to.clone());
            let start = Instant::now();
            feed.publish(new).await?;
            times.push(start.elapsed());
        }
        let (p50, p99) = quantiles(times);
        println!(
            "{SUBSCRIBERS} subscribers, {name}: publish p50 {:.1} us, p99 {:.1} us",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    // Every subscriber got every broadcast, and none was dropped.
    let queued = subscriptions
        .iter_mut()
        .map(|s| std::iter::from_fn(|| s.try_next()).count())
        .sum::<usize>();
    println!("{queued} deliveries queued");
    Ok(())
}
