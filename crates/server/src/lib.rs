//! The HTTP front end of keytrail: one listener (HTTP or HTTPS) that serves every protocol.
//!
//! Routing is by request shape, as AWS's endpoints would be told apart: `X-Amz-Target` names an
//! awsJson 1.1 service (KMS, CloudTrail); `Action=` form posts are the query protocol (STS, IAM);
//! everything else is S3 through s3s. `/_keytrail/*` serves health, Prometheus metrics and KMS usage.
//! This is the only crate that knows HTTP; it authenticates each request (SigV4), builds the
//! call context and journals one event per call before the response leaves.

mod call;
pub mod config;
mod connection_threads;
mod deadlines;
mod errors;
mod iam_wire;
mod json;
mod kms_wire;
mod limits;
mod query;
mod s3;
mod sigauth;
pub mod tls;
mod usage_api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use foldhash::HashMap;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use keytrail_audit::Journal;
use keytrail_iam::Identities;
use keytrail_kms::Kms;
use keytrail_store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower::ServiceExt;

pub use call::ConnInfo;
pub use config::{ServerConfig, TlsMode};

use crate::errors::ApiError;
use crate::limits::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Shared by every request.
pub struct AppState {
    pub config: ServerConfig,
    pub store: Arc<dyn Store>,
    pub identities: Arc<Identities>,
    pub journal: Journal,
    pub kms: Arc<Kms>,
    pub cloudtrail: Arc<keytrail_cloudtrail::CloudTrail>,
    signing_keys: sigauth::SigningKeyCache,
    s3: s3s::service::S3Service,
    metrics: PrometheusHandle,
    request_metrics: RequestMetrics,
    call_deadlines: deadlines::CallDeadlines,
}

/// The process-wide metrics recorder; tests start several servers in one process.
fn metrics_handle() -> Result<PrometheusHandle, ServerError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .map_err(|e| ServerError::Metrics(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder was already installed");
    }
    Ok(HANDLE
        .get_or_init(|| {
            spawn_metrics_upkeep(handle.clone());
            handle
        })
        .clone())
}

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into the buckets, which happens
/// only on a scrape or an upkeep: without this thread an unscraped server's memory grows with
/// every request (~10 MB a minute at 20,000 requests/s). Started with the process's recorder.
fn spawn_metrics_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("keytrail-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histogram samples accumulate until scraped");
    }
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
}

impl Server {
    pub async fn bind(
        config: ServerConfig,
        store: Arc<dyn Store>,
        identities: Arc<Identities>,
        kms: Arc<Kms>,
        s3_engine: keytrail_s3::S3Engine,
        cloudtrail: Arc<keytrail_cloudtrail::CloudTrail>,
    ) -> Result<Self, ServerError> {
        let tls =
            tls::server_config(&config.tls, &config.data_dir)?.map(tokio_rustls::TlsAcceptor::from);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let s3 = s3::build_service(
            s3_engine,
            Arc::clone(&identities),
            config.virtual_host_domains.clone(),
        );
        let state = Arc::new(AppState {
            journal: Journal::new(Arc::clone(&store)),
            store,
            identities,
            kms,
            cloudtrail,
            signing_keys: sigauth::SigningKeyCache::default(),
            s3,
            metrics: metrics_handle()?,
            request_metrics: RequestMetrics::default(),
            call_deadlines: deadlines::CallDeadlines::new(config.api_timeout),
            config,
        });
        Ok(Self {
            listener,
            local_addr,
            tls,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets open connections finish
    /// (up to the configured grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let router = router(Arc::clone(&self.state));
        let grace = self.state.config.shutdown_grace;
        let threads = self.state.config.connection_threads;
        let deadlines = tokio::spawn(deadlines::CallDeadlines::watch(Arc::downgrade(&self.state)));
        serve_router(self.listener, self.tls, router, grace, threads, shutdown).await;
        deadlines.abort();
    }
}

/// The accept loop shared by keytrail and the benchmark's null server: HTTP/1.1 and HTTP/2,
/// optional TLS, connection facts attached to each request as [`ConnInfo`], graceful shutdown.
/// Connections are served on `connection_threads` threads of their own (see
/// `connection_threads`); with 0, on the caller's runtime.
pub async fn serve_router(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    grace: Duration,
    connection_threads: usize,
    shutdown: impl Future<Output = ()>,
) {
    let threads = connection_threads::ConnectionThreads::start(connection_threads);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!(error = %e, %remote, "could not hand over an accepted connection");
                continue;
            }
        };
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        threads.serve(socket, move |stream| async move {
            let (io, tls_facts): (Box<dyn ConnectionIo>, _) = match tls {
                None => (Box::new(stream), None),
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let facts = tls::describe(tls_stream.get_ref().1);
                        (Box::new(tls_stream), facts)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, %remote, "TLS handshake failed");
                        return;
                    }
                },
            };
            let info = Arc::new(ConnInfo {
                remote,
                remote_ip: remote.ip().to_string(),
                tls: tls_facts,
            });
            let service = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Arc::clone(&info));
                req
            });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
                .into_owned();
            let result = watcher.watch(connection).await;
            if let Err(e) = result {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}

/// A plain TCP or a TLS stream, served alike.
trait ConnectionIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ConnectionIo for T {}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_keytrail/health", get(health))
        .route("/_keytrail/metrics", get(render_metrics))
        .route("/_keytrail/usage", get(usage_api::usage))
        .fallback(dispatch)
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response<Body> {
    let (status, body) = if state.store.is_healthy().await {
        (StatusCode::OK, r#"{"status":"ok"}"#)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"unavailable"}"#,
        )
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, errors::APPLICATION_JSON_VALUE);
    resp
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response<Body> {
    let mut resp = Response::new(Body::from(state.metrics.render()));
    errors::set_header(
        &mut resp,
        http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4",
    );
    resp
}

/// Reads a JSON or query-protocol body; bodies without a declared length are cut at the limit.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, state.config.max_api_body_bytes);
    match limited.collect().await {
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            "RequestEntityTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body exceeds the limit of {} bytes.",
                state.config.max_api_body_bytes
            ),
        )),
        Err(_) => Err(ApiError::new(
            "IncompleteBody",
            StatusCode::BAD_REQUEST,
            "The request body could not be read.",
        )),
        Ok(collected) => Ok(collected.to_bytes()),
    }
}

/// Each protocol's handling is boxed: its future holds the state of every operation it can run
/// (several kilobytes), and the router moves the handler's future by value before boxing it
/// itself — copying a small future instead is cheaper than the one allocation.
async fn dispatch(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let protocol = Protocol::of(&req);
    let (service, operation, response) =
        match limits::refuse_oversized(&state, &protocol, req).await {
            Err(refused) => refused,
            Ok(req) => match &protocol {
                Protocol::S3 => Box::pin(s3::handle(&state, req)).await,
                api => {
                    let call = async {
                        let (parts, body) = req.into_parts();
                        match (read_body(&state, body).await, api) {
                            (Err(e), _) => limits::api_error(api, &e),
                            (Ok(body), Protocol::Json(target)) => {
                                Box::pin(json::handle(&state, &parts, target, body)).await
                            }
                            (Ok(body), _) => Box::pin(query::handle(&state, &parts, body)).await,
                        }
                    };
                    limits::within_api_time(&state, api, call).await
                }
            },
        };
    state
        .request_metrics
        .record(service, operation, response.status(), started.elapsed());
    response
}

/// The handles of the per-request metrics, by label set. The recorder's own lookup builds the
/// label set (allocating) and hashes it on every call; here a request finds its handles by the
/// service, status and operation name it already has.
#[derive(Default)]
struct RequestMetrics {
    requests: RwLock<HashMap<(&'static str, u16), CountersByOperation>>,
    durations: RwLock<HashMap<&'static str, metrics::Histogram>>,
}

type CountersByOperation = HashMap<String, metrics::Counter>;

/// Operation names per service and status kept beyond which a request goes to the recorder
/// directly (names come from the requests, so their number is not ours to bound).
const MAX_CACHED_OPERATIONS: usize = 1024;

impl RequestMetrics {
    fn record(
        &self,
        service: &'static str,
        operation: String,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        self.counter(service, operation, status).increment(1);
        self.duration(service).record(elapsed.as_secs_f64());
    }

    fn counter(
        &self,
        service: &'static str,
        operation: String,
        status: StatusCode,
    ) -> metrics::Counter {
        let labels = (service, status.as_u16());
        if let Ok(requests) = self.requests.read()
            && let Some(counter) = requests
                .get(&labels)
                .and_then(|by_operation| by_operation.get(operation.as_str()))
        {
            return counter.clone();
        }
        let counter = metrics::counter!(
            "keytrail_requests_total",
            "service" => service,
            "operation" => operation.clone(),
            "status" => status.as_u16().to_string()
        );
        if let Ok(mut requests) = self.requests.write() {
            let by_operation = requests.entry(labels).or_default();
            if by_operation.len() < MAX_CACHED_OPERATIONS {
                by_operation.insert(operation, counter.clone());
            }
        }
        counter
    }

    fn duration(&self, service: &'static str) -> metrics::Histogram {
        if let Ok(durations) = self.durations.read()
            && let Some(histogram) = durations.get(service)
        {
            return histogram.clone();
        }
        let histogram =
            metrics::histogram!("keytrail_request_duration_seconds", "service" => service);
        if let Ok(mut durations) = self.durations.write() {
            durations.insert(service, histogram.clone());
        }
        histogram
    }
}
