//! `pushlab-loadgen conform URL`: checks, item by item, that a running server speaks the
//! interface the README documents, so the lab can measure a server it did not write. The
//! check list is plain data ([`checks`]); [`run`] drives the server with the load
//! generator's own clients (each technique's `run_client`) and raw requests, and returns one
//! typed [`Finding`] per check; the binary prints them.
//!
//! The checks assume an otherwise idle server: the byte comparison subtracts two `/stats`
//! snapshots, and anything else served by the same technique in between would show as a
//! disagreement.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::target::StatsReader;
use crate::feed::Comment;
use crate::http::client::HttpConnection;
use crate::model::comment::now_micros;
use crate::model::stats::{Account, StatsSnapshot};
use crate::model::{Target, Technique};
use crate::net::ByteMeter;
use crate::techniques::{Gone, Subscriber};

/// One item of the check list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A subscriber of the technique receives a comment published after it subscribed.
    Delivery(Technique),
    /// A comment to bob reaches bob's subscriber and not alice's; a broadcast reaches both.
    Routing(Technique),
    /// Two subscribers of one user (two tabs) both receive a comment to that user.
    TwoTabs(Technique),
    /// A subscription with `?after=N` starts with the comment after `N`.
    ResumeAfter(Technique),
    /// An SSE request with `Last-Event-ID: N` starts with the comment after `N`.
    ResumeLastEventId,
    /// A cursor ahead of the feed gets `400` with a JSON error, on every technique.
    CursorAhead,
    /// A cursor older than the history gets `410` naming the oldest id kept.
    CursorEvicted,
    /// Malformed requests get a 4xx with a JSON body `{"error": ...}`.
    BadInput,
    /// `/stats` books to the technique exactly the bytes the client's sockets counted.
    StatsBytes(Technique),
}

impl Check {
    /// A short stable name, e.g. `delivery sse`.
    pub fn name(self) -> String {
        match self {
            Check::Delivery(t) => format!("delivery {}", t.name()),
            Check::Routing(t) => format!("routing {}", t.name()),
            Check::TwoTabs(t) => format!("two tabs of one user {}", t.name()),
            Check::ResumeAfter(t) => format!("resume ?after= {}", t.name()),
            Check::ResumeLastEventId => "resume Last-Event-ID sse".into(),
            Check::CursorAhead => "400 for a cursor ahead".into(),
            Check::CursorEvicted => "410 for an evicted cursor".into(),
            Check::BadInput => "bad input: 4xx + JSON".into(),
            Check::StatsBytes(t) => format!("/stats bytes {}", t.name()),
        }
    }
}

/// Every check, in the order they are reported.
pub fn checks() -> Vec<Check> {
    let mut list = Vec::new();
    list.extend(Technique::ALL.map(Check::Delivery));
    list.extend(Technique::ALL.map(Check::Routing));
    list.extend(Technique::ALL.map(Check::TwoTabs));
    list.extend(Technique::ALL.map(Check::ResumeAfter));
    list.push(Check::ResumeLastEventId);
    list.push(Check::CursorAhead);
    list.push(Check::CursorEvicted);
    list.push(Check::BadInput);
    list.extend(Technique::ALL.map(Check::StatsBytes));
    list
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The server does not do what the interface says; the reason says what it did instead.
    Fail(String),
    /// The check could not be made (why says what it needs), which is not a failure.
    NotChecked(String),
}

/// One check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub verdict: Verdict,
}

/// Every finding, in [`checks`] order.
#[derive(Debug, Clone)]
pub struct ConformReport {
    pub target: SocketAddr,
    pub findings: Vec<Finding>,
}

impl ConformReport {
    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Fail(_)))
            .count()
    }

    /// The failed checks, by name.
    pub fn failed(&self) -> Vec<Check> {
        self.findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Fail(_)))
            .map(|f| f.check)
            .collect()
    }

    /// The verdict of one check.
    pub fn verdict(&self, check: Check) -> Option<&Verdict> {
        self.findings
            .iter()
            .find(|f| f.check == check)
            .map(|f| &f.verdict)
    }
}

/// How to run the checks.
#[derive(Debug, Clone)]
pub struct ConformOptions {
    pub addr: SocketAddr,
    /// The number of comments the server keeps (pushlab-server's `--history`), if known: the
    /// 410 check publishes that many and two more, then asks from before the first. Unknown,
    /// the check is not made (filling a history of unknown size has no end).
    pub history: Option<u64>,
    /// How long to wait for anything the server should send.
    pub wait: Duration,
}

/// Why the checks could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    #[error("cannot connect to {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The largest `history` the 410 check fills, so a mistyped hint cannot publish for hours.
pub const MAX_HISTORY_FILL: u64 = 100_000;

/// Runs every check against the server at `options.addr`.
pub async fn run(options: &ConformOptions) -> Result<ConformReport, ConformError> {
    // One plain connect first, so an absent server is one error rather than every check failing.
    tokio::net::TcpStream::connect(options.addr)
        .await
        .map_err(|source| ConformError::Unreachable {
            addr: options.addr,
            source,
        })?;
    let runner = Runner {
        options: options.clone(),
        // Users unique to this run, so comments left by an earlier run or another client
        // cannot be mistaken for this run's.
        prefix: format!("conform-{:x}", now_micros() % 0xff_ffff),
        stats: tokio::sync::Mutex::new(StatsReader::new(options.addr)),
    };
    let mut found = Vec::new();
    for technique in Technique::ALL {
        found.extend(runner.session(technique).await);
    }
    for technique in Technique::ALL {
        found.push(Finding {
            check: Check::TwoTabs(technique),
            verdict: runner.two_tabs(technique).await,
        });
    }
    for technique in Technique::ALL {
        found.push(Finding {
            check: Check::ResumeAfter(technique),
            verdict: runner.resume_after(technique).await,
        });
    }
    found.push(Finding {
        check: Check::ResumeLastEventId,
        verdict: runner.resume_last_event_id().await,
    });
    found.push(Finding {
        check: Check::CursorAhead,
        verdict: runner.cursor_ahead().await,
    });
    found.push(Finding {
        check: Check::CursorEvicted,
        verdict: runner.cursor_evicted().await,
    });
    found.push(Finding {
        check: Check::BadInput,
        verdict: runner.bad_input().await,
    });
    let findings = checks()
        .into_iter()
        .map(|check| {
            found
                .iter()
                .find(|f| f.check == check)
                .cloned()
                .unwrap_or(Finding {
                    check,
                    verdict: Verdict::NotChecked("not run".into()),
                })
        })
        .collect();
    Ok(ConformReport {
        target: options.addr,
        findings,
    })
}

struct Runner {
    options: ConformOptions,
    prefix: String,
    /// One keep-alive connection for every `/stats` read (the server books it to `other`).
    stats: tokio::sync::Mutex<StatsReader>,
}

/// A response: status, headers, and its body unless it is a stream (an upgrade or an event
/// stream, whose body never ends).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    /// `Ok` when the reply is a 4xx whose body is JSON with an `error` string.
    fn json_error(&self) -> Result<(), String> {
        if !self.status.is_client_error() {
            return Err(format!("{} (expected a 4xx)", self.status));
        }
        let body: serde_json::Value = serde_json::from_slice(&self.body).map_err(|_| {
            format!(
                "{} with a body that is not JSON: {:?}",
                self.status,
                excerpt(&self.body)
            )
        })?;
        if !body["error"].is_string() {
            return Err(format!("{} with no `error` string in {body}", self.status));
        }
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if !content_type.starts_with("application/json") {
            return Err(format!(
                "{} with a JSON body but content type {content_type:?}",
                self.status
            ));
        }
        Ok(())
    }
}

/// The first 80 characters of a body, for a failure's reason.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(80).collect()
}

/// A technique client running as the load generator runs it, its deliveries on a channel.
struct Client {
    subscriber: Arc<Subscriber>,
    comments: mpsc::UnboundedReceiver<Comment>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(technique: Technique, mut subscriber: Subscriber) -> Self {
        // Quick short polls, and long polls no longer than a check, so each check is short.
        subscriber.settings.poll_interval = Duration::from_millis(20);
        subscriber.settings.long_poll_timeout = Duration::from_secs(5);
        let subscriber = Arc::new(subscriber);
        let (mut sender, comments) = mpsc::unbounded_channel();
        let task = tokio::spawn({
            let subscriber = subscriber.clone();
            async move { technique.run_client(&subscriber, &mut sender).await }
        });
        Self {
            subscriber,
            comments,
            task,
        }
    }

    /// Waits for the subscription to be established (first answer, upgrade, `connect`).
    async fn ready(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while self
            .subscriber
            .counters
            .ready
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The comments delivered until one with id `until` or later arrives, or `wait` passes.
    async fn until(&mut self, until: u64, wait: Duration) -> Vec<Comment> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Ok(Some(comment)) = tokio::time::timeout_at(deadline, self.comments.recv()).await
        {
            let id = comment.id;
            got.push(comment);
            if id >= until {
                break;
            }
        }
        got
    }

    /// The next comment delivered within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Comment> {
        tokio::time::timeout(wait, self.comments.recv())
            .await
            .ok()
            .flatten()
    }

    async fn stop(self) {
        self.subscriber.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn ids(comments: &[Comment]) -> Vec<u64> {
    comments.iter().map(|c| c.id).collect()
}

impl Runner {
    fn user(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// One request on a fresh connection, its body read unless it streams.
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let target = Target {
            addr: self.options.addr,
        };
        let exchange = async {
            let mut connection = HttpConnection::open(&target, ByteMeter::new())
                .await
                .map_err(|e| e.to_string())?;
            let response = connection
                .send(
                    method.clone(),
                    path,
                    headers,
                    body.map(|b| Bytes::copy_from_slice(b.as_bytes())),
                )
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let headers = response.headers().clone();
            let streams = status == StatusCode::SWITCHING_PROTOCOLS
                || headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
            let body = if !streams {
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes()
            } else {
                Bytes::new()
            };
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.options.wait, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer to {method} {path} within {:?}",
                    self.options.wait
                ))
            })
    }

    /// Publishes a comment and returns its id.
    async fn publish(&self, to: Option<&str>, text: &str) -> Result<u64, String> {
        let body = serde_json::json!({ "from": self.user("publisher"), "to": to, "text": text });
        let headers = [("content-type", "application/json")];
        let reply = self
            .request(Method::POST, "/comments", &headers, Some(&body.to_string()))
            .await?;
        if reply.status != StatusCode::CREATED {
            return Err(format!(
                "POST /comments answered {} {:?} (expected 201 {{\"id\":N}})",
                reply.status,
                excerpt(&reply.body)
            ));
        }
        serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .ok_or_else(|| format!("POST /comments answered 201 {:?}", excerpt(&reply.body)))
    }

    /// `/stats` now; `Err` names why the server's figures are unavailable.
    async fn stats(&self) -> Result<StatsSnapshot, String> {
        let mut reader = self.stats.lock().await;
        match tokio::time::timeout(self.options.wait, reader.read()).await {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no /stats answer within {:?}", self.options.wait)),
        }
    }

    /// Delivery, routing and byte accounting of one technique, from one pair of subscribers
    /// (alice and bob) sharing one byte meter.
    async fn session(&self, technique: Technique) -> [Finding; 3] {
        let wait = self.options.wait;
        let before = self.stats().await;
        let meter = ByteMeter::new();
        let start = |role: &str| {
            let user = self.user(&format!("{}-{role}", technique.name()));
            let mut subscriber = Subscriber::new(self.options.addr, Some(&user), None);
            subscriber.meter = meter.clone();
            (user, Client::start(technique, subscriber))
        };
        let (_, mut alice) = start("alice");
        let (bob_name, mut bob) = start("bob");
        let (delivery, routing) = if !(alice.ready(wait).await && bob.ready(wait).await) {
            let why = format!(
                "a subscriber was not established within {wait:?} (no first answer, upgrade or \
                 `connect` event)"
            );
            (Verdict::Fail(why.clone()), Verdict::Fail(why))
        } else {
            match self.deliver_pair(&bob_name, &mut alice, &mut bob).await {
                Ok(verdicts) => verdicts,
                Err(why) => (Verdict::Fail(why.clone()), Verdict::Fail(why)),
            }
        };
        let stats = match before {
            Err(why) => Verdict::NotChecked(format!("server figures unavailable: {why}")),
            Ok(before) => self.settle(technique, &before, &meter).await,
        };
        alice.stop().await;
        bob.stop().await;
        [
            Finding {
                check: Check::Delivery(technique),
                verdict: delivery,
            },
            Finding {
                check: Check::Routing(technique),
                verdict: routing,
            },
            Finding {
                check: Check::StatsBytes(technique),
                verdict: stats,
            },
        ]
    }

    /// Publishes one comment to bob, then one to everyone, and judges what each received.
    async fn deliver_pair(
        &self,
        bob_name: &str,
        alice: &mut Client,
        bob: &mut Client,
    ) -> Result<(Verdict, Verdict), String> {
        let wait = self.options.wait;
        let private = self.publish(Some(bob_name), "to bob only").await?;
        let text = "to everyone";
        let broadcast = self.publish(None, text).await?;
        let bob_got = bob.until(broadcast, wait).await;
        let alice_got = alice.until(broadcast, wait).await;
        let delivery = match bob_got.iter().find(|c| c.id == broadcast) {
            Some(c) if c.text == text => Verdict::Pass,
            Some(c) => Verdict::Fail(format!(
                "comment #{broadcast} arrived with text {:?}, sent {text:?}",
                c.text
            )),
            None => Verdict::Fail(format!(
                "comment #{broadcast} not delivered within {wait:?} (received {:?})",
                ids(&bob_got)
            )),
        };
        let mut wrong = Vec::new();
        if !bob_got.iter().any(|c| c.id == private) {
            wrong.push(format!(
                "bob did not receive #{private} addressed to him (received {:?})",
                ids(&bob_got)
            ));
        }
        if !alice_got.iter().any(|c| c.id == broadcast) {
            wrong.push(format!(
                "alice did not receive the broadcast #{broadcast} (received {:?})",
                ids(&alice_got)
            ));
        }
        // Comments arrive in id order, so once alice has the later broadcast, bob's earlier
        // comment would have reached her before it if it were going to.
        if alice_got.iter().any(|c| c.id == private) {
            wrong.push(format!("alice received #{private}, addressed to bob"));
        }
        let routing = if wrong.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(wrong.join("; "))
        };
        Ok((delivery, routing))
    }

    /// Waits until `/stats` books to `technique`, since `before`, the bytes `meter` counted.
    async fn settle(
        &self,
        technique: Technique,
        before: &StatsSnapshot,
        meter: &ByteMeter,
    ) -> Verdict {
        let account = Account::Technique(technique);
        let deadline = Instant::now() + self.options.wait;
        let start = before.account(account);
        loop {
            let now = match self.stats().await {
                Ok(now) => now,
                Err(why) => return Verdict::Fail(format!("/stats stopped answering: {why}")),
            };
            if now.started_at_us != before.started_at_us {
                return Verdict::Fail("the server restarted during the check".into());
            }
            let a = now.account(account);
            let server = (
                a.bytes_in.saturating_sub(start.bytes_in),
                a.bytes_out.saturating_sub(start.bytes_out),
            );
            let client = meter.totals();
            if server == client {
                return Verdict::Pass;
            }
            if Instant::now() > deadline {
                return Verdict::Fail(format!(
                    "server booked in/out {}/{} bytes, the client's sockets counted up/down \
                     {}/{}",
                    server.0, server.1, client.0, client.1
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two subscribers as one user, as two tabs of one browser would be: a comment to that
    /// user must reach both (a server keeping one stream per user feeds only the newer).
    async fn two_tabs(&self, technique: Technique) -> Verdict {
        let wait = self.options.wait;
        let user = self.user(&format!("{}-tabs", technique.name()));
        let start = || {
            Client::start(
                technique,
                Subscriber::new(self.options.addr, Some(&user), None),
            )
        };
        let mut first = start();
        if !first.ready(wait).await {
            first.stop().await;
            return Verdict::Fail(format!("the first tab was not established within {wait:?}"));
        }
        let mut second = start();
        let verdict = if !second.ready(wait).await {
            Verdict::Fail(format!(
                "the second tab was not established within {wait:?}"
            ))
        } else {
            match self.publish(Some(&user), "to both tabs").await {
                Err(why) => Verdict::Fail(why),
                Ok(id) => {
                    let one = first.until(id, wait).await.iter().any(|c| c.id == id);
                    let two = second.until(id, wait).await.iter().any(|c| c.id == id);
                    match (one, two) {
                        (true, true) => Verdict::Pass,
                        (false, true) => Verdict::Fail(format!(
                            "#{id} reached only the second tab: it replaced the first, which \
                             stays open and receives nothing"
                        )),
                        (true, false) => Verdict::Fail(format!("#{id} reached only the first tab")),
                        (false, false) => {
                            Verdict::Fail(format!("#{id} reached neither tab within {wait:?}"))
                        }
                    }
                }
            }
        };
        first.stop().await;
        second.stop().await;
        verdict
    }

    /// Publishes two comments, subscribes after the first, then publishes a third: the
    /// second must come first (a server that ignores the cursor delivers the third).
    async fn resume_after(&self, technique: Technique) -> Verdict {
        let wait = self.options.wait;
        let result: Result<Verdict, String> = async {
            let first = self.publish(None, "resume: before the cursor").await?;
            let second = self.publish(None, "resume: after the cursor").await?;
            let user = self.user(&format!("{}-resume", technique.name()));
            let mut client = Client::start(
                technique,
                Subscriber::new(self.options.addr, Some(&user), Some(first)),
            );
            if !client.ready(wait).await {
                client.stop().await;
                return Ok(Verdict::Fail(format!(
                    "the subscription was not established within {wait:?}"
                )));
            }
            let third = self.publish(None, "resume: after subscribing").await?;
            let got = client.next(wait).await;
            client.stop().await;
            Ok(match got {
                Some(c) if c.id == second => Verdict::Pass,
                Some(c) if c.id == third => Verdict::Fail(format!(
                    "?after={first} was ignored: the first comment was #{third}, published \
                     after subscribing; #{second} was lost"
                )),
                Some(c) => Verdict::Fail(format!(
                    "?after={first}: the first comment was #{}, expected #{second}",
                    c.id
                )),
                None => Verdict::Fail(format!("?after={first}: nothing delivered within {wait:?}")),
            })
        }
        .await;
        result.unwrap_or_else(Verdict::Fail)
    }

    /// As [`Runner::resume_after`], over SSE with `Last-Event-ID` (as a reconnecting
    /// EventSource sends it) and no `after`.
    async fn resume_last_event_id(&self) -> Verdict {
        let wait = self.options.wait;
        let result: Result<Verdict, String> = async {
            let first = self.publish(None, "resume: before the cursor").await?;
            let second = self.publish(None, "resume: after the cursor").await?;
            let user = self.user("sse-last-event-id");
            let target = Target {
                addr: self.options.addr,
            };
            let mut connection = HttpConnection::open(&target, ByteMeter::new())
                .await
                .map_err(|e| e.to_string())?;
            let last = first.to_string();
            let headers = [("accept", "text/event-stream"), ("last-event-id", &*last)];
            let path = format!("/sse?user={user}");
            let response =
                tokio::time::timeout(wait, connection.send(Method::GET, &path, &headers, None))
                    .await
                    .map_err(|_| format!("no answer to GET {path} within {wait:?}"))?
                    .map_err(|e| e.to_string())?;
            if response.status() != StatusCode::OK {
                return Ok(Verdict::Fail(format!(
                    "GET /sse with Last-Event-ID: {first} answered {}",
                    response.status()
                )));
            }
            let mut events = response.into_body().into_data_stream().eventsource();
            let deadline = Instant::now() + wait;
            let mut third = None;
            loop {
                let event = match tokio::time::timeout_at(deadline, events.next()).await {
                    Ok(Some(Ok(event))) => event,
                    Ok(_) => return Ok(Verdict::Fail("the event stream ended".into())),
                    Err(_) => {
                        return Ok(Verdict::Fail(format!(
                            "Last-Event-ID: {first}: no comment within {wait:?}"
                        )));
                    }
                };
                // The stream is established once its first event (`connect`) is in: only
                // then is a comment published after subscribing sure to be after it.
                if third.is_none() {
                    third = Some(self.publish(None, "resume: after subscribing").await?);
                }
                if event.event != "comment" {
                    continue;
                }
                let id = serde_json::from_str::<Comment>(&event.data)
                    .map(|c| c.id)
                    .map_err(|e| format!("a comment event's data is not a comment: {e}"))?;
                return Ok(if id == second {
                    Verdict::Pass
                } else if Some(id) == third {
                    Verdict::Fail(format!(
                        "Last-Event-ID: {first} was ignored: the first comment was #{id}, \
                         published after subscribing; #{second} was lost"
                    ))
                } else {
                    Verdict::Fail(format!(
                        "Last-Event-ID: {first}: the first comment was #{id}, expected #{second}"
                    ))
                });
            }
        }
        .await;
        result.unwrap_or_else(Verdict::Fail)
    }

    /// The four subscription paths asked with `after=cursor`, each with its request headers.
    fn subscription_paths(&self, cursor: &str) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
        let user = self.user("cursor");
        vec![
            (format!("/poll?user={user}&after={cursor}"), vec![]),
            (
                format!("/long-poll?user={user}&after={cursor}&timeout_ms=1"),
                vec![],
            ),
            (
                format!("/sse?user={user}&after={cursor}"),
                vec![("accept", "text/event-stream")],
            ),
            (format!("/ws?user={user}&after={cursor}"), upgrade_headers()),
        ]
    }

    async fn cursor_ahead(&self) -> Verdict {
        let newest = match self.publish(None, "cursor check").await {
            Ok(id) => id,
            Err(why) => return Verdict::Fail(why),
        };
        // Far ahead of any id the server could hand out during the check.
        let ahead = (newest + 1_000_000).to_string();
        let mut wrong = Vec::new();
        for (path, headers) in self.subscription_paths(&ahead) {
            let outcome = self.request(Method::GET, &path, &headers, None).await;
            let problem = match outcome {
                Err(why) => Some(why),
                Ok(reply) if reply.status != StatusCode::BAD_REQUEST => {
                    Some(format!("{} (expected 400)", reply.status))
                }
                Ok(reply) => reply.json_error().err(),
            };
            if let Some(problem) = problem {
                wrong.push(format!("{}: {problem}", path_only(&path)));
            }
        }
        if wrong.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(format!("after={ahead}: {}", wrong.join("; ")))
        }
    }

    async fn cursor_evicted(&self) -> Verdict {
        let Some(history) = self.options.history else {
            return Verdict::NotChecked(
                "needs the server's history size to overflow it: pass --history N (pushlab-server's \
                 --history)"
                    .into(),
            );
        };
        if history > MAX_HISTORY_FILL {
            return Verdict::NotChecked(format!(
                "--history {history} is more than the {MAX_HISTORY_FILL} comments this check \
                 publishes"
            ));
        }
        // Every comment of the history, and two more: the first two are evicted.
        let target = Target {
            addr: self.options.addr,
        };
        let fill = async {
            let mut connection = HttpConnection::open(&target, ByteMeter::new())
                .await
                .map_err(|e| e.to_string())?;
            let body = serde_json::json!({ "from": self.user("filler"), "text": "fill" });
            let mut first = None;
            for _ in 0..history + 2 {
                let reply = connection
                    .post_json("/comments", &body.to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                let id = serde_json::from_slice::<serde_json::Value>(&reply)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                    .ok_or_else(|| format!("POST /comments answered {:?}", excerpt(&reply)))?;
                first.get_or_insert(id);
            }
            Ok::<u64, String>(first.expect("at least two publishes"))
        };
        let first = match fill.await {
            Ok(first) => first,
            Err(why) => return Verdict::Fail(why),
        };
        let cursor = (first - 1).to_string();
        let mut wrong = Vec::new();
        for (path, headers) in self.subscription_paths(&cursor) {
            let problem = match self.request(Method::GET, &path, &headers, None).await {
                Err(why) => Some(why),
                Ok(reply) if reply.status != StatusCode::GONE => {
                    Some(format!("{} (expected 410)", reply.status))
                }
                Ok(reply) => match Gone::parse(&reply.body) {
                    Some(gone) if gone.resume_after >= first => None,
                    Some(gone) => Some(format!(
                        "410 names oldest {} though #{first} was evicted",
                        gone.resume_after + 1
                    )),
                    None => Some(format!(
                        "410 without {{\"cursor\",\"oldest\"}}: {:?}",
                        excerpt(&reply.body)
                    )),
                },
            };
            if let Some(problem) = problem {
                wrong.push(format!("{}: {problem}", path_only(&path)));
            }
        }
        if wrong.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(format!(
                "after={cursor}, {} comments later: {}",
                history + 2,
                wrong.join("; ")
            ))
        }
    }

    async fn bad_input(&self) -> Verdict {
        let json = [("content-type", "application/json")];
        let stream = [("accept", "text/event-stream")];
        let bad_lei = [("accept", "text/event-stream"), ("last-event-id", "abc")];
        let upgrade = upgrade_headers();
        let cases: [(Method, &str, Headers, Option<&str>); 8] = [
            (Method::POST, "/comments", &json, Some("{not json")),
            (Method::POST, "/comments", &json, Some(r#"{"from":"a"}"#)),
            (Method::GET, "/poll?after=abc", &[], None),
            (Method::GET, "/long-poll?after=abc", &[], None),
            (Method::GET, "/long-poll?timeout_ms=abc", &[], None),
            (Method::GET, "/sse?after=abc", &stream, None),
            (Method::GET, "/sse", &bad_lei, None),
            (Method::GET, "/ws?after=abc", &upgrade, None),
        ];
        let mut wrong = Vec::new();
        for (method, path, headers, body) in cases {
            let problem = match self.request(method.clone(), path, headers, body).await {
                Err(why) => Some(why),
                Ok(reply) => reply.json_error().err(),
            };
            if let Some(problem) = problem {
                let what = match (body, headers.iter().find(|h| h.0 == "last-event-id")) {
                    (Some(body), _) => format!("{method} {path} {body}"),
                    (None, Some((_, id))) => format!("{method} {path} Last-Event-ID: {id}"),
                    (None, None) => format!("{method} {path}"),
                };
                wrong.push(format!("{what}: {problem}"));
            }
        }
        if wrong.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(wrong.join("; "))
        }
    }
}

/// Request headers, as name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A WebSocket handshake's headers (the key is any 16 bytes, base64).
fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
}

/// The path without its query, for a failure's reason.
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_list_names_each_item_once() {
        let list = checks();
        let mut names: Vec<String> = list.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), list.len());
        // Every technique is checked for delivery, routing, resume and bytes.
        assert_eq!(list.len(), 5 * 4 + 4);
    }

    #[test]
    fn a_report_fails_only_on_failures() {
        let report = ConformReport {
            target: "127.0.0.1:1".parse().unwrap(),
            findings: vec![
                Finding {
                    check: Check::CursorEvicted,
                    verdict: Verdict::NotChecked("no size".into()),
                },
                Finding {
                    check: Check::BadInput,
                    verdict: Verdict::Pass,
                },
            ],
        };
        assert_eq!(report.failures(), 0);
        let mut failing = report.clone();
        failing.findings[1].verdict = Verdict::Fail("500".into());
        assert_eq!(failing.failed(), vec![Check::BadInput]);
    }
}
