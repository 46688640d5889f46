//! `pushlab-server`: the comment feed served four ways. `app()` builds the router apart from
//! binding, `serve()` runs it on a bound listener whose every connection is byte-counted, and
//! `spawn()` starts one on 127.0.0.1:0 for tests.

mod admin;
mod conn;
mod edge;
mod h2;
mod held;
mod listener;
mod metrics;
mod publish;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::accounting::{ConnInfo, ConnMeter, Stats};
pub use crate::model::ServerConfig;
pub use crate::model::stats::StatsSnapshot;
pub use listener::CountingListener;

use crate::accounting::process_stats;
use crate::feed::redis::ConnectError;
use crate::feed::{Feed, FeedOptions, MemoryFeed, RedisFeed};
use crate::http::error::AppError;
use crate::model::FeedBackend;
use crate::model::stats::Account;
use crate::model::technique::Technique;
use crate::techniques::{Context, DropSwitch};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub feed: Arc<dyn Feed>,
    pub stats: Arc<Stats>,
    pub config: Arc<ServerConfig>,
    /// Cancelled on SIGINT/SIGTERM: streams close cleanly, long polls return.
    pub shutdown: CancellationToken,
    /// Per technique, in `Technique::ALL` order: fired when the admin endpoint drops its
    /// connections.
    drops: Arc<[Arc<DropSwitch>; Technique::COUNT]>,
    /// Held by upgraded WebSockets until their sessions end (see `Context::sessions`).
    sessions: Arc<tokio::sync::watch::Sender<()>>,
}

/// The prefix of the Redis feed's keys: every instance over one Redis shares them.
pub const REDIS_KEY_PREFIX: &str = "pushlab";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--feed` names a Redis that cannot be used.
    // Not `#[source]`: the message already holds the cause, and `{:#}` would repeat it.
    #[error("--feed: {0}")]
    Feed(ConnectError),
}

impl From<ConnectError> for StartError {
    fn from(error: ConnectError) -> Self {
        Self::Feed(error)
    }
}

impl AppState {
    /// State over the backend `config.feed` names, connecting to it (a Redis must answer now).
    pub async fn open(
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let feed: Arc<dyn Feed> = match &config.feed {
            FeedBackend::Memory => Arc::new(MemoryFeed::new(
                config.history_capacity,
                config.subscriber_queue,
            )),
            FeedBackend::Redis { url } => {
                let options = FeedOptions {
                    history: config.history_capacity,
                    queue: config.subscriber_queue,
                };
                Arc::new(RedisFeed::connect(url, REDIS_KEY_PREFIX, options).await?)
            }
        };
        Ok(Self::with_feed(config, shutdown, feed))
    }

    /// State over the in-memory feed, whatever `config.feed` says (`open` honours it).
    pub fn new(config: ServerConfig, shutdown: CancellationToken) -> Self {
        let feed = MemoryFeed::new(config.history_capacity, config.subscriber_queue);
        Self::with_feed(config, shutdown, Arc::new(feed))
    }

    /// State over a given backend (another kind, or one a test keeps a handle on).
    pub fn with_feed(
        config: ServerConfig,
        shutdown: CancellationToken,
        feed: Arc<dyn Feed>,
    ) -> Self {
        Self {
            feed,
            stats: Stats::new(),
            config: Arc::new(config),
            shutdown,
            drops: Arc::new(std::array::from_fn(|_| Arc::default())),
            sessions: Arc::new(tokio::sync::watch::channel(()).0),
        }
    }

    /// What the handlers of `technique` may use.
    pub fn context(&self, technique: Technique) -> Context {
        Context {
            technique,
            feed: self.feed.clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
            shutdown: self.shutdown.clone(),
            drops: self.drops[technique.index()].clone(),
            sessions: self.sessions.clone(),
        }
    }

    /// Drops the live connections of `technique`, as a network fault would.
    fn fire_drop(&self, technique: Technique) {
        self.drops[technique.index()].fire();
    }

    /// The drop switch of `technique`, to drop some users' connections only.
    fn drop_switch(&self, technique: Technique) -> &DropSwitch {
        &self.drops[technique.index()]
    }

    /// The feed's counters and the process's, as `/stats` serves them.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snapshot = self.stats.snapshot(self.feed.published(), process_stats());
        snapshot.feed = self.feed.info();
        snapshot
    }
}

/// The whole HTTP interface, apart from binding.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for technique in Technique::ALL {
        let routes = technique.routes().with_state(state.context(technique));
        router = router.merge(accounted(routes, Account::Technique(technique)));
    }
    let mut other = Router::new()
        .route("/stats", get(stats_json))
        .route("/metrics", get(metrics))
        .merge(crate::web::routes());
    if state.config.admin {
        other = other.merge(admin::routes());
    }
    router
        .merge(accounted(publish::routes(&state.config), Account::Publish))
        .merge(accounted(other, Account::Other))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge::guard))
        .with_state(state)
}

/// Books every request of `router` (and its connection's bytes) to `account`.
fn accounted(router: Router<AppState>, account: Account) -> Router<AppState> {
    router.route_layer(middleware::from_fn_with_state(account, attribute))
}

async fn attribute(State(account): State<Account>, request: Request, next: Next) -> Response {
    book(&request, account);
    next.run(request).await
}

/// Books `request` and its connection to `account` (requests served without our listener,
/// which have no connection meter, are not booked).
fn book(request: &Request, account: Account) {
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ConnInfo>>()
    {
        info.0.meter.attribute(account);
    }
}

async fn not_found(request: Request) -> AppError {
    book(&request, Account::Other);
    AppError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> AppError {
    book(&request, Account::Other);
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn stats_json(State(state): State<AppState>) -> Json<StatsSnapshot> {
    Json(state.snapshot())
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::prometheus(&state.snapshot()),
    )
}

/// Serves `state` on `listener` until `state.shutdown` is cancelled, then gives open streams
/// `grace` to close before returning.
pub async fn serve(listener: TcpListener, state: AppState, grace: Duration) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let mut listener = CountingListener::new(listener, state.stats.clone(), state.config.clone());
    if state.config.tls {
        let (acceptor, _) = tls::self_signed().map_err(std::io::Error::other)?;
        listener = listener.with_tls(acceptor);
    }
    let server = conn::run(listener, app(state), shutdown.clone());
    tokio::pin!(server);
    tokio::select! {
        result = async {
            (&mut server).await;
            sessions.closed().await;
            Ok(())
        } => result,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("connections still open {grace:?} after shutdown; exiting anyway");
            Ok(())
        }
    }
}

/// A server running in this process, for tests.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// `http://ADDR` of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cancels the server and waits for it to finish.
    pub async fn stop(self) -> std::io::Result<()> {
        self.state.shutdown.cancel();
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Starts a server on 127.0.0.1 with a free port, over the feed `config.feed` names.
pub async fn spawn(config: ServerConfig) -> std::io::Result<RunningServer> {
    let state = AppState::open(config, CancellationToken::new())
        .await
        .map_err(std::io::Error::other)?;
    spawn_with_state(state).await
}

/// Starts a server on 127.0.0.1 with a free port, serving `state`.
pub async fn spawn_with_state(state: AppState) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, state.clone(), Duration::from_secs(5)));
    Ok(RunningServer { addr, state, task })
}
