//! The link emulator: a TCP relay inside the load generator, between each client and the
//! server, that plays a slower network than loopback (this kernel has no netem). Each
//! direction of each connection is delayed by half the round trip, in order; jitter varies
//! each chunk's delay without reordering; a token bucket limits bandwidth per connection
//! and/or for all connections together; the whole link can pause periodically.
//!
//! Measurements stay true because the relay only moves bytes: every byte read from one side
//! is written to the other, a FIN is forwarded as a FIN (after the same delay as the data
//! before it) and a reset as a reset, so the bytes counted at the client's socket and at the
//! server's still agree to the byte. `probe` measures a link the way a user would.

pub mod probe;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::network::Link;

/// Bytes a direction may hold before it stops reading, so a slow link pushes back on the
/// sender through TCP as a real bottleneck's buffer would (about 4 s at 2 Mbit/s).
const QUEUE_LIMIT: usize = 1 << 20;
/// Largest piece a bandwidth-limited direction paces at once: one Ethernet-sized TCP
/// segment, so a big write trickles out as it would on the wire instead of arriving whole.
const SEGMENT: usize = 1448;
/// How much a direction reads at once.
const READ_SIZE: usize = 16 * 1024;

/// A running relay: clients connect to `addr`, and each connection is carried to the
/// upstream server over the emulated link. Dropping it stops accepting; connections already
/// carried run until both of their sides have closed.
pub struct Relay {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A cell's relays: the subscribers' (when the cell has a link) and the publisher's (when
/// `[network.publisher]` sets one), one per server instance, each group sharing one link.
/// Kept until the cell has settled, so connections close through them in order.
pub struct CellLinks {
    servers: Vec<SocketAddr>,
    subscribers: Vec<Relay>,
    publisher: Vec<Relay>,
}

impl CellLinks {
    /// Relays to every address of `servers` (a cell's server instances).
    pub async fn start(
        subscribers: Option<Link>,
        publisher: Option<Link>,
        servers: &[SocketAddr],
    ) -> io::Result<CellLinks> {
        Ok(CellLinks {
            servers: servers.to_vec(),
            subscribers: match subscribers {
                Some(link) => Relay::start_group(link, servers).await?,
                None => Vec::new(),
            },
            publisher: match publisher {
                Some(link) => Relay::start_group(link, servers).await?,
                None => Vec::new(),
            },
        })
    }

    /// Where the subscribers connect, server by server: the relays, or the servers.
    pub fn subscribers_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.subscribers, &self.servers)
    }

    /// Where the publisher connects, server by server.
    pub fn publisher_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.publisher, &self.servers)
    }

    /// Where the subscribers connect to the first (or only) server.
    pub fn subscribers_addr(&self) -> SocketAddr {
        self.subscribers_addrs()[0]
    }

    /// Where the publisher connects to the first (or only) server.
    pub fn publisher_addr(&self) -> SocketAddr {
        self.publisher_addrs()[0]
    }
}

fn addrs(relays: &[Relay], servers: &[SocketAddr]) -> Vec<SocketAddr> {
    if relays.is_empty() {
        servers.to_vec()
    } else {
        relays.iter().map(|r| r.addr).collect()
    }
}

/// What every connection over one relay shares: the link, the stalls' clock, and the
/// aggregate token buckets.
struct Shared {
    link: Link,
    /// Stalls are periods of this clock, so every connection pauses at once, as a whole link
    /// (a radio losing its signal) does.
    origin: Instant,
    /// When each direction's shared bucket is next free (`aggregate_bps`).
    up_free: Mutex<Instant>,
    down_free: Mutex<Instant>,
    /// Seeds each direction's jitter generator differently.
    connections: AtomicU64,
}

impl Relay {
    /// Listens on 127.0.0.1, port 0, relaying to `upstream` over `link`.
    pub async fn start(link: Link, upstream: SocketAddr) -> io::Result<Relay> {
        let mut relays = Relay::start_group(link, &[upstream]).await?;
        Ok(relays.pop().expect("one relay per upstream"))
    }

    /// One relay per upstream (server instances), all over one link: their connections
    /// share its aggregate bandwidth and stall together.
    pub async fn start_group(link: Link, upstreams: &[SocketAddr]) -> io::Result<Vec<Relay>> {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            link,
            origin: now,
            up_free: Mutex::new(now),
            down_free: Mutex::new(now),
            connections: AtomicU64::new(0),
        });
        let mut relays = Vec::with_capacity(upstreams.len());
        for &upstream in upstreams {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?;
            let shared = shared.clone();
            let accept = tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((client, _)) => {
                            tokio::spawn(carry(client, upstream, shared.clone()));
                        }
                        // Out of file descriptors or similar: the client sees a refused
                        // connection and retries, as it would against the server itself.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            });
            relays.push(Relay { addr, accept });
        }
        Ok(relays)
    }
}

/// Carries one connection until both directions have closed.
async fn carry(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let accepted = Instant::now();
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(_) => {
            // The server refused: so does the link, with a reset rather than a clean close.
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let abort = CancellationToken::new();
    let seed = shared.connections.fetch_add(1, Ordering::Relaxed);
    let link = shared.link;
    // TCP's handshake costs the client a round trip before its first byte can leave; the
    // kernel already completed it on loopback, so the first bytes up wait for it here.
    let up = Schedule::new(&shared, true, seed, accepted + link.rtt);
    let down = Schedule::new(&shared, false, seed, accepted);
    tokio::join!(
        pipe(client_read, server_write, up, abort.clone()),
        pipe(server_read, client_write, down, abort),
    );
}

/// What a direction carries, in order.
enum Item {
    Data(Bytes),
    /// The source closed its sending side: forward a FIN.
    Fin,
    /// The source's connection broke: reset the destination.
    Reset,
}

/// Moves one direction's bytes from `source` to `sink` at the times `schedule` gives them.
async fn pipe(
    mut source: OwnedReadHalf,
    mut sink: OwnedWriteHalf,
    mut schedule: Schedule<'_>,
    abort: CancellationToken,
) {
    let mut queue: VecDeque<(Instant, Item)> = VecDeque::new();
    let mut queued = 0usize;
    let mut open = true;
    let mut buffer = BytesMut::new();
    loop {
        let now = Instant::now();
        while queue.front().is_some_and(|(at, _)| *at <= now) {
            let (_, item) = queue.pop_front().expect("checked");
            match item {
                Item::Data(bytes) => {
                    queued -= bytes.len();
                    let written = tokio::select! {
                        written = sink.write_all(&bytes) => written,
                        () = abort.cancelled() => return,
                    };
                    if written.is_err() {
                        // The destination is gone (it reset or closed): the source learns
                        // it the same way, by a reset.
                        let _ = source.as_ref().set_zero_linger();
                        abort.cancel();
                        return;
                    }
                }
                Item::Fin => {
                    let _ = sink.shutdown().await;
                    return;
                }
                Item::Reset => {
                    let _ = sink.as_ref().set_zero_linger();
                    // No FIN before the reset: the socket closes when the other
                    // direction, told by `abort`, drops its half.
                    sink.forget();
                    abort.cancel();
                    return;
                }
            }
        }
        let next = queue.front().map(|(at, _)| *at);
        // `read_buf` into a full buffer would read 0 bytes, which looks like the peer's FIN.
        if buffer.capacity() - buffer.len() < READ_SIZE / 4 {
            buffer.reserve(READ_SIZE);
        }
        tokio::select! {
            () = abort.cancelled() => return,
            read = source.read_buf(&mut buffer), if open && queued < QUEUE_LIMIT => {
                let now = Instant::now();
                match read {
                    Ok(0) => {
                        open = false;
                        queue.push_back((schedule.at(now, 0), Item::Fin));
                    }
                    Ok(_) => {
                        let mut chunk = buffer.split().freeze();
                        queued += chunk.len();
                        let piece = if schedule.paced() { SEGMENT } else { chunk.len() };
                        while !chunk.is_empty() {
                            let part = chunk.split_to(piece.min(chunk.len()));
                            queue.push_back((schedule.at(now, part.len()), Item::Data(part)));
                        }
                    }
                    Err(_) => {
                        open = false;
                        queue.push_back((schedule.at(now, 0), Item::Reset));
                    }
                }
            }
            () = sleep_until_some(next) => {}
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When each piece of one direction reaches the far side.
struct Schedule<'a> {
    link: Link,
    origin: Instant,
    aggregate: &'a Mutex<Instant>,
    /// The previous piece's time: nothing is delivered before it, so order is kept.
    last: Instant,
    /// When this connection's own bucket is next free.
    free: Instant,
    /// xorshift state for the jitter.
    rng: u64,
}

impl<'a> Schedule<'a> {
    fn new(shared: &'a Shared, up: bool, seed: u64, not_before: Instant) -> Self {
        let rng = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ if up { 0x5555 } else { 0xAAAA }) | 1;
        Schedule {
            link: shared.link,
            origin: shared.origin,
            aggregate: if up {
                &shared.up_free
            } else {
                &shared.down_free
            },
            last: not_before + shared.link.one_way(),
            free: not_before,
            rng,
        }
    }

    /// Whether a bucket limits this direction, so big chunks are paced segment by segment.
    fn paced(&self) -> bool {
        self.link.bandwidth_bps.is_some() || self.link.aggregate_bps.is_some()
    }

    /// The time a piece of `len` bytes read at `now` is delivered: after the one-way delay
    /// (± jitter), after the piece before it, once each bucket has carried it, and outside
    /// any stall.
    fn at(&mut self, now: Instant, len: usize) -> Instant {
        let delay = self.jittered(self.link.one_way());
        let mut at = (now + delay).max(self.last);
        let start = at;
        if let Some(bps) = self.link.bandwidth_bps {
            self.free = self.free.max(start) + transmission(len, bps);
            at = at.max(self.free);
        }
        if let Some(bps) = self.link.aggregate_bps {
            let mut free = self.aggregate.lock().unwrap_or_else(|p| p.into_inner());
            *free = (*free).max(start) + transmission(len, bps);
            at = at.max(*free);
        }
        at = self.after_stall(at);
        self.last = at;
        at
    }

    fn jittered(&mut self, delay: Duration) -> Duration {
        let jitter = self.link.jitter;
        if jitter.is_zero() {
            return delay;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // Uniform in [-jitter, +jitter].
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let offset = jitter.as_secs_f64() * (2.0 * unit - 1.0);
        Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
    }

    /// Moves a delivery that falls in a stall (the last `length` of every period, so a
    /// link does not start stalled) to the stall's end.
    fn after_stall(&self, at: Instant) -> Instant {
        let Some(stall) = self.link.stall else {
            return at;
        };
        let since = at.saturating_duration_since(self.origin);
        let every = stall.every.as_nanos();
        let into = since.as_nanos() % every;
        if into >= every - stall.length.as_nanos() {
            at + Duration::from_nanos((every - into) as u64)
        } else {
            at
        }
    }
}

/// Time to carry `len` bytes at `bps` bits per second.
fn transmission(len: usize, bps: u64) -> Duration {
    Duration::from_nanos((len as u128 * 8 * 1_000_000_000 / u128::from(bps.max(1))) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::Stall;

    fn shared(link: Link) -> Shared {
        let now = Instant::now();
        Shared {
            link,
            origin: now,
            up_free: Mutex::new(now),
            down_free: Mutex::new(now),
            connections: AtomicU64::new(0),
        }
    }

    #[test]
    fn jitter_never_reorders_and_stays_within_its_bounds() {
        let link = Link {
            rtt: Duration::from_millis(100),
            jitter: Duration::from_millis(30),
            ..Link::DIRECT
        };
        let shared = shared(link);
        let start = shared.origin;
        let mut schedule = Schedule::new(&shared, false, 7, start);
        let mut last = start;
        let mut spread = (Duration::MAX, Duration::ZERO);
        // Pieces 100 ms apart, so one's jitter does not hold up the next.
        for i in 0..1000 {
            let now = start + Duration::from_millis(100 * i);
            let at = schedule.at(now, 100);
            assert!(at >= last, "reordered at {i}");
            last = at;
            let delay = at - now;
            spread = (spread.0.min(delay), spread.1.max(delay));
        }
        // Never before one-way − jitter, never past one-way + jitter.
        assert!(spread.0 >= Duration::from_millis(20), "{spread:?}");
        assert!(spread.1 <= Duration::from_millis(80), "{spread:?}");
        assert!(
            spread.1 - spread.0 > Duration::from_millis(30),
            "{spread:?}"
        );
    }

    #[test]
    fn the_bucket_paces_pieces_at_the_rate() {
        let link = Link {
            bandwidth_bps: Some(1_000_000),
            ..Link::DIRECT
        };
        let shared = shared(link);
        let start = shared.origin;
        let mut schedule = Schedule::new(&shared, false, 1, start);
        // 125,000 bytes at 1 Mbit/s, all read at once: the last arrives 1 s later.
        let mut last = start;
        for _ in 0..(125_000 / 1250) {
            last = schedule.at(start, 1250);
        }
        assert_eq!(last - start, Duration::from_secs(1));
    }

    #[test]
    fn a_stall_holds_what_falls_in_it_until_it_ends() {
        let link = Link {
            stall: Some(Stall {
                every: Duration::from_secs(10),
                length: Duration::from_millis(300),
            }),
            ..Link::DIRECT
        };
        let shared = shared(link);
        let start = shared.origin;
        let mut schedule = Schedule::new(&shared, false, 1, start);
        let early = start + Duration::from_secs(5);
        assert_eq!(schedule.at(early, 10), early);
        let stalled = start + Duration::from_millis(9_800);
        assert_eq!(schedule.at(stalled, 10) - start, Duration::from_secs(10));
    }
}
