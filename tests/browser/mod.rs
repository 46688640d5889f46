//! The four-pane page (`GET /`) in a real headless Chromium, driven over WebDriver by
//! fantoccini, against a server running in this process on port 0 with the admin endpoint on.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages; without them every test here
//! fails and names the command that installs them. Each test starts its own chromedriver (on a
//! port it picks itself), its own Chromium with a fresh profile, and its own server, and waits
//! for conditions in the page's DOM against a deadline: nothing here sleeps to synchronise.
//!
//! `seven.rs`: the seven-stream page, HTTP/1.1 (the seventh waits) against HTTP/2 over `--tls`.
//!
//! Set `PUSHLAB_SCREENSHOT=/path/page.png` to save a screenshot of the page after a few
//! comments (from `comments_posted_from_the_page_appear_in_all_four_panes`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pushlab::http::client::HttpConnection;
use pushlab::net::ByteMeter;
use pushlab::server::{RunningServer, ServerConfig, StatsSnapshot};
use pushlab::techniques::Target;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// The seven-stream page: HTTP/1.1's six connections per origin against HTTP/2.
mod seven;

/// What CI (and a developer) runs as root to get the browser and its driver.
const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";

/// How long any awaited condition may take: generous, because two shared cores may be busy
/// with other builds; a passing run takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(30);

/// The flags Chromium needs on this closed network, or it stalls on lookups of Google's hosts
/// (the machine notes); the profile directory is added per test.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    // A projector-like 16:10 viewport, so the screenshot shows what a room would see.
    "--window-size=1600,1000",
];

/// The panes, in the page's order.
const TECHNIQUES: [&str; 4] = ["short-polling", "long-polling", "websocket", "sse"];

/// Browser tests take turns: each starts a Chromium, and several at once on two shared cores
/// only make every one of them slower.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs one browser test on its own runtime, after the previous one has finished. The lock is
/// held outside the future, so no lock guard lives across an `.await`.
fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test());
}

/// The page as the tests read it: one state per pane, plus the post form's answer.
#[derive(Debug, Deserialize)]
struct Page {
    panes: BTreeMap<String, Pane>,
    /// The id the post form last reported, if any.
    posted: Option<u64>,
    /// The post form's error message, if its last post failed.
    post_error: Option<String>,
    subscribed_as: String,
    /// `window.__pushlabInjected`, which only an injected script would set.
    injected: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Pane {
    status: String,
    /// Counter values; `None` where the pane shows none (a median before any comment,
    /// empty answers of a push technique).
    counters: BTreeMap<String, Option<f64>>,
    /// Comment ids as listed, newest first.
    ids: Vec<u64>,
    texts: Vec<String>,
    delays_ms: Vec<f64>,
    /// Elements found inside comment texts; text-only rendering keeps this at zero.
    elements_in_texts: u64,
}

impl Page {
    fn pane(&self, technique: &str) -> &Pane {
        self.panes
            .get(technique)
            .unwrap_or_else(|| panic!("the page has no {technique} pane: {self:#?}"))
    }

    fn all_live(&self) -> bool {
        TECHNIQUES.iter().all(|t| self.pane(t).status == "live")
    }

    /// True when every pane lists every one of `ids`.
    fn all_have(&self, ids: &[u64]) -> bool {
        TECHNIQUES
            .iter()
            .all(|t| ids.iter().all(|id| self.pane(t).ids.contains(id)))
    }
}

impl Pane {
    /// A whole-number counter.
    fn counter(&self, name: &str) -> u64 {
        match self.counters.get(name) {
            Some(Some(value)) if value.fract() == 0.0 && *value >= 0.0 => *value as u64,
            _ => panic!("no whole-number counter {name} in {self:#?}"),
        }
    }

    fn text_of(&self, id: u64) -> Option<&str> {
        let index = self.ids.iter().position(|i| *i == id)?;
        Some(&self.texts[index])
    }
}

/// Reads the page's state in one script, so a check sees one consistent moment.
const READ_PAGE: &str = r#"
const panes = {};
for (const pane of document.querySelectorAll('section.pane')) {
  const counters = {};
  for (const dd of pane.querySelectorAll('[data-counter]')) {
    const value = dd.dataset.value;
    counters[dd.dataset.counter] = value === '' ? null : Number(value);
  }
  const rows = [...pane.querySelectorAll('ol.comments > li')];
  panes[pane.dataset.technique] = {
    status: pane.dataset.status,
    counters,
    ids: rows.map((row) => Number(row.dataset.id)),
    texts: rows.map((row) => row.querySelector('.text').textContent),
    delays_ms: rows.map((row) => Number(row.dataset.delayMs)),
    elements_in_texts: pane.querySelectorAll('ol.comments .text *').length,
  };
}
const result = document.getElementById('post-result');
return {
  panes,
  posted: result.dataset.id ? Number(result.dataset.id) : null,
  post_error: result.className === 'error' ? result.textContent : null,
  subscribed_as: document.getElementById('subscribed-as').textContent,
  injected: window.__pushlabInjected === undefined ? null : String(window.__pushlabInjected),
};
"#;

/// A server, a chromedriver and a Chromium showing the page.
struct Lab {
    server: RunningServer,
    browser: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver in a process group of its own; Chromium runs in the same group, so a test
/// that fails half-way still leaves no browser behind.
struct Driver {
    child: tokio::process::Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group's id is chromedriver's pid (process_group(0) below).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// The path of `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Chromium and chromedriver, or a failure that says how to install them.
fn browser_programs() -> (PathBuf, PathBuf) {
    let find = |program: &str, package: &str| {
        find_program(program).unwrap_or_else(|| {
            panic!(
                "browser tests need `{program}` (Debian package `{package}`) on PATH; install \
                 Debian's `chromium` and `chromium-driver` as root with: {INSTALL}"
            )
        })
    };
    (
        find("chromium", "chromium"),
        find("chromedriver", "chromium-driver"),
    )
}

/// Starts chromedriver on a port it picks (`--port=0`) and reads the port from its banner,
/// so no two tests or engineers can race for a fixed port.
async fn start_chromedriver(program: &PathBuf) -> (Driver, u16) {
    let mut child = tokio::process::Command::new(program)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().expect("chromedriver's stdout is piped");
    let driver = Driver { child };
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = String::new();
    let port = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            // "ChromeDriver was started successfully on port 41263."
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(port) = port else {
        panic!("chromedriver did not report its port; it printed:\n{banner}");
    };
    // Keep reading so chromedriver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (driver, port)
}

impl Lab {
    /// Starts everything and opens the page subscribed as `bob`.
    async fn start() -> Lab {
        let config = ServerConfig {
            admin: true,
            ..ServerConfig::default()
        };
        Lab::start_with(config, &[], "/?user=bob").await
    }

    /// Starts a server with `config`, a Chromium with `flags` added, and opens `path`
    /// (over `https://` when the server serves `--tls`).
    async fn start_with(config: ServerConfig, flags: &[&str], path: &str) -> Lab {
        let (chromium, chromedriver) = browser_programs();
        let tls = config.tls;
        let server = pushlab::server::spawn(config)
            .await
            .expect("the server starts on 127.0.0.1:0");
        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let (driver, port) = start_chromedriver(&chromedriver).await;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.extend(flags.iter().map(|f| f.to_string()));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let browser = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        let lab = Lab {
            server,
            browser,
            _driver: driver,
            _profile: profile,
        };
        let origin = if tls {
            format!("https://{}", lab.server.addr)
        } else {
            lab.server.url()
        };
        lab.browser
            .goto(&format!("{origin}{path}"))
            .await
            .expect("the page loads");
        lab
    }

    async fn read(&self) -> Page {
        let value = self
            .browser
            .execute(READ_PAGE, vec![])
            .await
            .unwrap_or_else(|e| panic!("reading the page failed (an alert open?): {e}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("unexpected page state ({e}): {value:#}"))
    }

    /// Polls the page until `check` returns `Some`, or fails naming `what` and showing the
    /// last state seen.
    async fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&Page) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            let page = self.read().await;
            if let Some(value) = check(&page) {
                return value;
            }
            if started.elapsed() > DEADLINE {
                panic!("timed out after {DEADLINE:?} waiting for {what}; the page: {page:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_live(&self) -> Page {
        self.wait_for("all four panes to be live", |page| {
            page.all_live().then_some(())
        })
        .await;
        self.read().await
    }

    async fn fill(&self, id: &str, value: &str) {
        let input = self
            .browser
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        input.clear().await.expect("clear an input");
        if !value.is_empty() {
            input.send_keys(value).await.expect("type into an input");
        }
    }

    /// Posts with the page's own form and returns the id the page reports.
    async fn post_from_page(&self, from: &str, to: &str, text: &str) -> u64 {
        let before = self.read().await.posted;
        self.fill("post-from", from).await;
        self.fill("post-to", to).await;
        self.fill("post-text", text).await;
        self.browser
            .find(Locator::Id("post-send"))
            .await
            .expect("the post button")
            .click()
            .await
            .expect("click post");
        self.wait_for("the post form to report an id", |page| {
            if let Some(error) = &page.post_error {
                panic!("the page could not post {text:?}: {error}");
            }
            page.posted.filter(|id| Some(*id) != before)
        })
        .await
    }

    /// A connection to the server outside the browser.
    async fn connection(&self) -> HttpConnection {
        let target = Target {
            addr: self.server.addr,
        };
        HttpConnection::open(&target, ByteMeter::new())
            .await
            .expect("connect to the server")
    }

    async fn stats(&self) -> StatsSnapshot {
        let body = self
            .connection()
            .await
            .get("/stats")
            .await
            .expect("GET /stats");
        serde_json::from_slice(&body).expect("/stats is JSON")
    }

    /// Closes the WebDriver session (Chromium quits), then the server.
    async fn finish(self) {
        let _ = self.browser.close().await;
        self.server.stop().await.expect("the server stops cleanly");
    }
}

/// `POST /comments` outside the browser; returns the new id.
async fn post(connection: &mut HttpConnection, from: &str, to: Option<&str>, text: &str) -> u64 {
    let mut body = json!({ "from": from, "text": text });
    if let Some(to) = to {
        body["to"] = json!(to);
    }
    let answer = connection
        .post_json("/comments", &body.to_string())
        .await
        .expect("POST /comments");
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON answer");
    answer["id"].as_u64().expect("an id in the answer")
}

#[test]
fn page_loads_and_all_four_panes_connect() {
    run(|| async {
        let lab = Lab::start().await;
        assert_eq!(
            lab.browser.title().await.expect("a title"),
            "pushlab: one feed, four ways"
        );
        let page = lab.wait_live().await;
        assert!(
            page.subscribed_as.contains("bob"),
            "the page says whom it subscribed as: {:?}",
            page.subscribed_as
        );
        for technique in TECHNIQUES {
            let pane = page.pane(technique);
            assert!(pane.counter("requests") >= 1, "{technique}: {pane:#?}");
            assert_eq!(pane.counter("reconnects"), 0, "{technique}: {pane:#?}");
            assert!(pane.ids.is_empty(), "{technique}: {pane:#?}");
        }
        // One stream each, opened by the browser's own APIs, seen from the server's side.
        let stats = lab.stats().await;
        for technique in ["websocket", "sse"] {
            let account = &stats.accounts[technique];
            assert_eq!(account.connections_open, 1, "{technique}: {account:?}");
            assert_eq!(account.requests, 1, "{technique}: {account:?}");
        }

        // The interval control takes effect: five more polls at 200 ms take about a second
        // (plus what is left of the 2 s wait under way); at the default 2 s they take ten.
        let polls = page.pane("short-polling").counter("requests");
        lab.fill("interval", "200").await;
        let started = Instant::now();
        lab.wait_for("five more short polls", |page| {
            (page.pane("short-polling").counter("requests") >= polls + 5).then_some(())
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "five polls at a 200 ms interval took {:?}",
            started.elapsed()
        );
        lab.finish().await;
    });
}

#[test]
fn comments_posted_from_the_page_appear_in_all_four_panes() {
    run(|| async {
        let lab = Lab::start().await;
        lab.wait_live().await;
        let mut ids = Vec::new();
        for (from, to, text) in [
            ("alice", "", "Hello from the page, everyone!"),
            ("carol", "bob", "Bob, this one is only for you."),
            ("alice", "", "한국어도 됩니다: 댓글 알림 테스트"),
        ] {
            let id = lab.post_from_page(from, to, text).await;
            lab.wait_for(&format!("comment #{id} in all four panes"), |page| {
                page.all_have(&[id]).then_some(())
            })
            .await;
            let page = lab.read().await;
            for technique in TECHNIQUES {
                let pane = page.pane(technique);
                assert_eq!(pane.text_of(id), Some(text), "{technique}: {pane:#?}");
                let delay = pane.delays_ms[pane.ids.iter().position(|i| *i == id).unwrap()];
                assert!(
                    (0.0..DEADLINE.as_millis() as f64).contains(&delay),
                    "{technique}: a delay of {delay} ms for #{id}"
                );
            }
            ids.push(id);
        }
        let page = lab.read().await;
        let stats = lab.stats().await;
        for technique in TECHNIQUES {
            let pane = page.pane(technique);
            assert_eq!(pane.counter("comments"), ids.len() as u64, "{pane:#?}");
            assert_eq!(pane.counter("duplicates"), 0, "{pane:#?}");
            // What the browser exposes is payload: more than the comments' text, never more
            // than the server wrote to the socket (a header estimate would break this).
            let payload = pane.counter("bytes");
            let wire = stats.accounts[technique].bytes_out;
            let texts: usize = ids.len() * "Hello".len();
            assert!(
                texts as u64 <= payload && payload <= wire,
                "{technique}: payload {payload} B against {wire} B on the wire"
            );
        }
        if let Some(path) = std::env::var_os("PUSHLAB_SCREENSHOT") {
            // Let the counters from /stats catch up with the last comment before the picture.
            let stats_before = lab.stats().await.accounts["sse"].bytes_out;
            lab.wait_for("the page to show the server's latest byte counts", |page| {
                (page.pane("sse").counter("server-bytes-out") >= stats_before).then_some(())
            })
            .await;
            let png = lab.browser.screenshot().await.expect("a screenshot");
            std::fs::write(&path, png).expect("write the screenshot");
        }
        lab.finish().await;
    });
}

#[test]
fn a_comment_posted_with_post_comments_appears_in_all_four_panes() {
    run(|| async {
        let lab = Lab::start().await;
        lab.wait_live().await;
        let mut connection = lab.connection().await;
        let id = post(&mut connection, "alice", None, "posted with POST /comments").await;
        lab.wait_for(&format!("comment #{id} in all four panes"), |page| {
            page.all_have(&[id]).then_some(())
        })
        .await;
        let page = lab.read().await;
        for technique in TECHNIQUES {
            let pane = page.pane(technique);
            assert_eq!(pane.ids, vec![id], "{technique}: {pane:#?}");
            assert_eq!(pane.text_of(id), Some("posted with POST /comments"));
        }
        lab.finish().await;
    });
}

#[test]
fn each_user_gets_only_comments_to_them_or_to_everyone() {
    run(|| async {
        let lab = Lab::start().await;
        lab.wait_live().await;
        let mut connection = lab.connection().await;
        // Comments arrive in id order, so once the later one is in every pane, the earlier
        // one would be there too had it been delivered.
        let to_carol = post(&mut connection, "alice", Some("carol"), "for carol").await;
        let to_bob = post(&mut connection, "alice", Some("bob"), "for bob").await;
        lab.wait_for("the comment to bob in all four panes", |page| {
            page.all_have(&[to_bob]).then_some(())
        })
        .await;
        let page = lab.read().await;
        for technique in TECHNIQUES {
            assert_eq!(page.pane(technique).ids, vec![to_bob], "{technique} as bob");
        }

        // Resubscribe as carol with the page's own control.
        lab.fill("user", "carol").await;
        lab.browser
            .find(Locator::Css("#subscribe button"))
            .await
            .expect("the resubscribe button")
            .click()
            .await
            .expect("click resubscribe");
        lab.wait_for("the panes to resubscribe as carol", |page| {
            (page.subscribed_as.contains("carol") && page.all_live()).then_some(())
        })
        .await;
        let to_bob_again = post(&mut connection, "alice", Some("bob"), "bob again").await;
        let to_carol_again = post(&mut connection, "alice", Some("carol"), "carol again").await;
        let to_all = post(&mut connection, "alice", None, "everyone").await;
        lab.wait_for("carol's comments in all four panes", |page| {
            page.all_have(&[to_carol_again, to_all]).then_some(())
        })
        .await;
        let page = lab.read().await;
        for technique in TECHNIQUES {
            // Newest first; nothing from before the resubscription, nothing to bob.
            assert_eq!(
                page.pane(technique).ids,
                vec![to_all, to_carol_again],
                "{technique} as carol (#{to_carol} and #{to_bob_again} are not hers)"
            );
        }
        lab.finish().await;
    });
}

#[test]
fn injected_html_is_shown_as_text_and_runs_no_script() {
    run(|| async {
        let lab = Lab::start().await;
        lab.wait_live().await;
        let alert = "<img src=x onerror=alert(1)>";
        let flag = r#"<img src=x onerror="window.__pushlabInjected='img'">"#;
        let script = "<script>window.__pushlabInjected='script'</script><b>bold?</b>";
        let mut connection = lab.connection().await;
        let mut ids = vec![
            post(&mut connection, "mallory", None, alert).await,
            post(&mut connection, "mallory", None, flag).await,
        ];
        ids.push(lab.post_from_page("mallory", "", script).await);
        lab.wait_for("the injected comments in all four panes", |page| {
            page.all_have(&ids).then_some(())
        })
        .await;
        let page = lab.read().await;
        for technique in TECHNIQUES {
            let pane = page.pane(technique);
            for (id, text) in ids.iter().zip([alert, flag, script]) {
                assert_eq!(pane.text_of(*id), Some(text), "{technique}: {pane:#?}");
            }
            assert_eq!(pane.elements_in_texts, 0, "{technique}: markup was parsed");
        }
        let no_elements = lab
            .browser
            .execute(
                "return document.querySelectorAll('ol.comments img, ol.comments script, \
                 ol.comments b').length",
                vec![],
            )
            .await
            .expect("count elements");
        assert_eq!(no_elements, json!(0));
        // A broken image's onerror fires as soon as it is parsed; had one been, the flag
        // would be set and the alert open by now.
        assert_eq!(page.injected, None, "an injected handler ran");
        match lab.browser.get_alert_text().await {
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::NoSuchAlert => {}
            other => panic!("expected no alert, got {other:?}"),
        }
        lab.finish().await;
    });
}

#[test]
fn sse_reconnects_by_itself_after_a_drop_and_resumes_without_loss_or_duplicates() {
    run(|| async {
        let lab = Lab::start().await;
        lab.wait_live().await;
        let mut connection = lab.connection().await;

        // Comments before the drop, so EventSource has a last event id to resume from.
        let mut posted = vec![
            post(&mut connection, "alice", None, "before the drop 1").await,
            post(&mut connection, "alice", Some("bob"), "before the drop 2").await,
        ];
        lab.wait_for("the first comments in the SSE pane", |page| {
            page.all_have(&posted).then_some(())
        })
        .await;
        let before = lab.read().await;
        let before = |name| before.pane("sse").counter(name);
        let sse_connections = lab.stats().await.accounts["sse"].connections_opened;

        // Comments keep coming all along, from another connection.
        let stop = CancellationToken::new();
        let background = {
            let stop = stop.clone();
            let mut connection = lab.connection().await;
            tokio::spawn(async move {
                let mut ids = Vec::new();
                // Bounded: a stuck test still ends.
                for n in 0..300 {
                    if stop.is_cancelled() {
                        break;
                    }
                    let text = format!("keeps coming {n}");
                    ids.push(post(&mut connection, "carol", None, &text).await);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                ids
            })
        };

        let answer = connection
            .post_json("/admin/drop?technique=sse", "")
            .await
            .expect("POST /admin/drop?technique=sse");
        let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
        assert_eq!(answer["connections_signalled"], json!(1), "{answer}");

        lab.wait_for("the SSE pane to notice the drop", |page| {
            (page.pane("sse").status == "reconnecting").then_some(())
        })
        .await;
        // Published while no SSE connection is open: these can reach the pane only through
        // the resumed stream.
        let mut in_the_gap = Vec::new();
        for n in 0..3 {
            in_the_gap.push(post(&mut connection, "alice", None, &format!("in the gap {n}")).await);
        }
        let stats = lab.stats().await;
        assert_eq!(
            stats.accounts["sse"].connections_opened, sse_connections,
            "EventSource reconnected before the gap comments were posted; the test proves \
             nothing then"
        );
        assert_eq!(stats.accounts["sse"].dropped_by_admin, 1);

        lab.wait_for("EventSource to reconnect and resume", |page| {
            let pane = page.pane("sse");
            (pane.status == "live"
                && pane.counter("reconnects") > before("reconnects")
                && in_the_gap.iter().all(|id| pane.ids.contains(id)))
            .then_some(())
        })
        .await;
        // A few more after the reconnection, then stop.
        posted.extend(&in_the_gap);
        posted.push(post(&mut connection, "alice", None, "after the reconnect").await);
        stop.cancel();
        posted.extend(background.await.expect("the background poster"));
        posted.sort_unstable();

        lab.wait_for("every comment in every pane", |page| {
            page.all_have(&posted).then_some(())
        })
        .await;
        let page = lab.read().await;
        let sse = page.pane("sse");
        let mut listed = sse.ids.clone();
        listed.reverse();
        assert_eq!(
            listed, posted,
            "the SSE pane, oldest first: each once, in order"
        );
        assert_eq!(sse.counter("duplicates"), 0, "{sse:#?}");
        assert_eq!(sse.counter("comments"), posted.len() as u64);
        assert_eq!(sse.counter("reconnects"), before("reconnects") + 1);
        assert_eq!(sse.counter("requests"), before("requests") + 1);
        // The other panes were not dropped and saw the same comments once each.
        for technique in ["short-polling", "long-polling", "websocket"] {
            let pane = page.pane(technique);
            let unique: BTreeSet<_> = pane.ids.iter().collect();
            assert_eq!(unique.len(), posted.len(), "{technique}: {pane:#?}");
            assert_eq!(pane.counter("reconnects"), 0, "{technique}");
        }
        lab.finish().await;
    });
}
