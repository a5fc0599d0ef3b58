//! The listener, the per-connection HTTP/1.1 service, routing, the fault gate every request
//! passes, the WebSocket upgrade and the control endpoints.
//!
//! Connections are accepted here rather than by `axum::serve` so that a fault can close one
//! TCP connection without answering (a dropped service) or close the listening socket
//! itself (connection refused), and so that an upgraded WebSocket keeps raw access to its
//! socket (a broken frame).

use super::clock::VirtualClock;
use super::data::VenueData;
use super::faults::{FaultSpec, Faults, HttpFault, Service, malform, truncate};
use super::market::{Model, ModelConfig};
use super::stats::StatsHandle;
use super::{LoopbackConfig, LoopbackError, binance, orders, polymarket, spot};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Everything a handler needs.
#[derive(Debug)]
pub(crate) struct App {
    pub cfg: LoopbackConfig,
    pub model: Model,
    pub clock: VirtualClock,
    pub faults: Faults,
    pub stats: StatsHandle,
    /// The CLOB V2 trading side (`orders.rs`).
    pub exchange: Arc<orders::Exchange>,
}

pub(crate) type Shared = Arc<App>;

/// Lets a handler close the TCP connection its request came on.
#[derive(Clone, Debug)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

type Started = Result<(SocketAddr, Shared), LoopbackError>;

/// Body of the venue thread: builds the runtime, binds, reports, serves until shutdown.
pub(crate) fn run(
    cfg: LoopbackConfig,
    data: Arc<VenueData>,
    started: std::sync::mpsc::Sender<Started>,
    shutdown: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("updown-loopback-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(LoopbackError::Runtime(e)));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(("127.0.0.1", cfg.port)).await {
            Ok(l) => l,
            Err(source) => {
                let _ = started.send(Err(LoopbackError::Bind {
                    port: cfg.port,
                    source,
                }));
                return;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(source) => {
                let _ = started.send(Err(LoopbackError::Bind {
                    port: cfg.port,
                    source,
                }));
                return;
            }
        };
        let model = Model::new(
            data,
            ModelConfig {
                resolution_delay_ms: cfg.resolution_delay_secs * 1000,
                listing_lead_ms: cfg.listing_lead_secs * 1000,
                seed: cfg.seed,
                book_levels: cfg.book_levels,
                book_size_scale: cfg.book_size_scale,
                sigma_per_minute: cfg.sigma_per_minute,
                book_bucket_ms: cfg.book_update_ms,
                fee_schedule: cfg.fee_schedule,
            },
        );
        let clock = VirtualClock::new(cfg.start_ms(), cfg.speed);
        let app = Arc::new(App {
            exchange: Arc::new(orders::Exchange::new(cfg.exchange.clone(), clock)),
            clock,
            cfg,
            model,
            faults: Faults::new(),
            stats: StatsHandle::default(),
        });
        if started.send(Ok((addr, app.clone()))).is_err() {
            return;
        }
        serve(listener, addr, app, shutdown).await;
    });
    rt.shutdown_timeout(Duration::from_millis(300));
}

fn router(app: Shared) -> Router {
    Router::new()
        .merge(binance::routes())
        .merge(polymarket::routes())
        .merge(orders::routes())
        .merge(spot::routes())
        .route("/control/fault", post(control_fault))
        .route("/control/stats", get(control_stats))
        .route("/control/clock", get(control_clock))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

/// Accepts connections until shutdown; closes the listener while a refuse fault lasts.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    app: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router(app.clone());
    let conns: Arc<Mutex<HashMap<u64, Arc<Notify>>>> = Arc::default();
    let next_id = AtomicU64::new(0);
    let mut listener = Some(listener);
    loop {
        if let Some(until) = app.faults.refusing_until() {
            if listener.take().is_some() {
                tracing::warn!(target: "updown::loopback", "refusing connections on {addr}");
                let all: Vec<_> = conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                for kill in all {
                    kill.notify_one();
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = app.faults.refuse_changed() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let Some(l) = listener.as_ref() else {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::warn!(target: "updown::loopback", "accepting connections on {addr} again");
                    listener = Some(l);
                }
                Err(e) => {
                    tracing::warn!(target: "updown::loopback", "cannot bind {addr} again yet: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(target: "updown::loopback", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                app.stats.tcp_connection();
                let _ = stream.set_nodelay(true);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let kill = Arc::new(Notify::new());
                conns.lock().unwrap_or_else(|e| e.into_inner()).insert(id, kill.clone());
                let conns = conns.clone();
                let router = router.clone();
                tokio::spawn(async move {
                    let ctx = ConnKill(kill.clone());
                    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ctx.clone());
                        router.clone().oneshot(req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.notified() => {}
                    }
                    conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                });
            }
            _ = app.faults.refuse_changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The error body `service` sends with `status` (reference §5.2 for Polymarket, Binance's
/// `{"code","msg"}`), and whether it is HTML.
fn error_body(service: Service, status: u16) -> (String, bool) {
    let cloudflare = |title: &str| {
        (
            format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
            ),
            true,
        )
    };
    match (service, status) {
        (Service::BinanceRest | Service::BinanceWs, 429) => (
            r#"{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please use WebSocket Streams for live updates to avoid polling the API."}"#.into(),
            false,
        ),
        (Service::BinanceRest | Service::BinanceWs, 418) => (
            r#"{"code":-1003,"msg":"Way too many requests; IP(127.0.0.1) banned until 1700000000000. Please use WebSocket Streams for live updates to avoid bans."}"#.into(),
            false,
        ),
        (Service::BinanceRest | Service::BinanceWs, 503) => (
            r#"{"code":-1008,"msg":"Server is currently overloaded with other requests. Please try again in a few minutes."}"#.into(),
            false,
        ),
        (Service::BinanceRest | Service::BinanceWs, 502) => cloudflare("502 Bad Gateway"),
        (Service::BinanceRest | Service::BinanceWs, s) if s >= 500 => (
            r#"{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}"#.into(),
            false,
        ),
        (_, 429) => (r#"{"error":"Too Many Requests"}"#.into(), false),
        (_, 502) => cloudflare("502 Bad Gateway"),
        (Service::ClobRest | Service::ClobWs, 503) => (
            r#"{"error":"Trading is currently disabled. Check polymarket.com for updates"}"#.into(),
            false,
        ),
        (_, 503) => cloudflare("503 Service Temporarily Unavailable"),
        (_, s) if s >= 500 => (r#"{"error":"Internal Server Error"}"#.into(), false),
        (_, _) => (r#"{"error":"Bad Request"}"#.into(), false),
    }
}

fn fault_response(service: Service, status: u16, retry_after_secs: u64) -> Response {
    let (body, html) = error_body(service, status);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (code, body).into_response();
    let kind = if html {
        "text/html"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if matches!(status, 429 | 418 | 503) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
    r
}

/// Counts every request and applies HTTP faults before the handler runs.
async fn gate(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let service = Service::of_path(&path);
    app.stats.request(&path, service);
    tracing::debug!(target: "updown::loopback", "{} {}", req.method(), req.uri());
    let fault = service.and_then(|s| app.faults.http_fault(s).map(|f| (s, f)));
    let response = match fault {
        Some((_, HttpFault::Drop)) => {
            if let Some(ConnKill(kill)) = req.extensions().get::<ConnKill>() {
                kill.notify_one();
            }
            // The connection task drops this request with the connection.
            std::future::pending::<()>().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Some((
            s,
            HttpFault::Status {
                status,
                retry_after_secs,
            },
        )) => fault_response(s, status, retry_after_secs),
        Some((_, f @ (HttpFault::Malformed | HttpFault::Truncated))) => {
            let response = next.run(req).await;
            let (parts, body) = response.into_parts();
            let text = match axum::body::to_bytes(body, 64 << 20).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            let text = if f == HttpFault::Malformed {
                malform(&text)
            } else {
                truncate(&text)
            };
            let mut parts = parts;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        None => next.run(req).await,
    };
    app.stats.status(response.status().as_u16());
    response
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into())
}

async fn control_fault(State(app): State<Shared>, body: String) -> Response {
    let spec: FaultSpec = match serde_json::from_str(&body) {
        Ok(s) => s,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("not a fault: {e}")}).to_string(),
            );
        }
    };
    match app.faults.inject(spec) {
        Ok(()) => json_response(StatusCode::OK, r#"{"ok":true}"#.into()),
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": e.to_string()}).to_string(),
        ),
    }
}

async fn control_stats(State(app): State<Shared>) -> Response {
    let body = serde_json::json!({
        "stats": app.stats.snapshot(),
        "faults_applied": app.faults.applied_counts(),
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn control_clock(State(app): State<Shared>) -> Response {
    let body = serde_json::json!({
        "virtual_ms": app.clock.now_ms(),
        "start_ms": app.clock.start_ms(),
        "speed": app.clock.speed(),
    });
    json_response(StatusCode::OK, body.to_string())
}

/// Checks a WebSocket upgrade request and prepares the `101` answer; the socket is ready
/// once the answer is sent and the returned [`OnUpgrade`] resolves.
pub(crate) fn upgrade(req: &mut Request) -> Result<(Response, OnUpgrade), Box<Response>> {
    let headers = req.headers();
    let has = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(want))
            })
    };
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let (Some(key), true, true, true) = (
        key,
        version_ok,
        has(header::UPGRADE, "websocket"),
        has(header::CONNECTION, "upgrade"),
    ) else {
        return Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                "expected a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Version: 13)",
            )
                .into_response(),
        ));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let on_upgrade = hyper::upgrade::on(req);
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((r, on_upgrade))
}
