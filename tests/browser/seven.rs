//! `GET /seven` in Chromium: seven SSE streams from one page. Over HTTP/1.1 the browser's six
//! connections per origin leave the seventh pending (while the six deliver); over HTTP/2
//! (`--tls`, ALPN h2) one connection carries all seven and all are live.

use super::*;

/// The seven streams' states and the protocol the page was loaded over.
#[derive(Debug, Deserialize)]
struct Seven {
    protocol: String,
    streams: Vec<Stream>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    status: String,
    last_id: Option<u64>,
}

const READ_SEVEN: &str = r#"
return {
  protocol: document.getElementById('protocol').textContent,
  streams: [...document.querySelectorAll('section[data-stream]')].map((s) => ({
    status: s.dataset.status,
    last_id: s.dataset.lastId ? Number(s.dataset.lastId) : null,
  })),
};
"#;

impl Seven {
    fn live(&self) -> usize {
        self.streams.iter().filter(|s| s.status == "live").count()
    }
}

async fn read_seven(lab: &Lab) -> Seven {
    let value = lab
        .browser
        .execute(READ_SEVEN, vec![])
        .await
        .expect("reading /seven");
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("unexpected /seven state ({e}): {value:#}"))
}

async fn wait_seven<T>(lab: &Lab, what: &str, check: impl Fn(&Seven) -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        let seven = read_seven(lab).await;
        if let Some(value) = check(&seven) {
            return value;
        }
        if started.elapsed() > DEADLINE {
            panic!("timed out waiting for {what}: {seven:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn over_http11_the_seventh_sse_stream_waits_for_a_connection() {
    run(|| async {
        let lab = Lab::start_with(ServerConfig::default(), &[], "/seven").await;
        wait_seven(&lab, "six live streams", |s| (s.live() == 6).then_some(())).await;
        // The six deliver; the seventh, still without a connection, gets nothing.
        let mut connection = lab.connection().await;
        let id = post(&mut connection, "alice", None, "to all seven").await;
        wait_seven(&lab, "the six to show the comment", |s| {
            let delivered = s.streams.iter().filter(|s| s.last_id == Some(id)).count();
            (delivered == 6).then_some(())
        })
        .await;
        let seven = read_seven(&lab).await;
        assert_eq!(seven.protocol, "http/1.1", "{seven:#?}");
        let pending: Vec<&Stream> = seven
            .streams
            .iter()
            .filter(|s| s.status == "pending")
            .collect();
        assert_eq!(pending.len(), 1, "{seven:#?}");
        assert_eq!(pending[0].last_id, None);
        let stats = lab.stats().await;
        let sse = stats.accounts["sse"];
        assert_eq!(
            (sse.requests, sse.connections_open),
            (6, 6),
            "the server saw six streams on six connections: {sse:?}"
        );
        // Closing one stream frees its connection, and the waiting one takes it.
        lab.browser
            .find(Locator::Css("section[data-stream=\"1\"] button.close"))
            .await
            .expect("stream 1's close button")
            .click()
            .await
            .expect("click close");
        wait_seven(&lab, "the seventh to go live", |s| {
            (s.streams[6].status == "live" && s.streams[0].status == "closed").then_some(())
        })
        .await;
        lab.finish().await;
    });
}

#[test]
fn over_http2_all_seven_sse_streams_share_one_connection() {
    run(|| async {
        let config = ServerConfig {
            tls: true,
            ..ServerConfig::default()
        };
        // The certificate is self-signed, made at the server's start.
        let lab = Lab::start_with(config, &["--ignore-certificate-errors"], "/seven").await;
        wait_seven(&lab, "seven live streams", |s| {
            (s.live() == 7).then_some(())
        })
        .await;
        let seven = read_seven(&lab).await;
        assert_eq!(seven.protocol, "h2", "{seven:#?}");
        let stats = lab.server.state.snapshot();
        let sse = stats.accounts["sse"];
        assert_eq!(sse.requests, 7, "{sse:?}");
        assert_eq!(
            sse.connections_opened, 1,
            "one connection carried all seven: {sse:?}"
        );
        assert!(
            stats.h2.connections >= 1 && stats.h2.tls_in > 0,
            "{:?}",
            stats.h2
        );
        lab.finish().await;
    });
}
