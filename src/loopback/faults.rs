//! Fault injection: what a test (or the control endpoint) can make the venue do wrong.
//!
//! A fault is a [`FaultSpec`], given to [`Faults::inject`] (the handle from
//! `Running::faults()`) or POSTed as JSON to `/control/fault`. Faults that act on sockets
//! use **real** durations (a stall of 2 s is 2 s on the test's watch whatever the speed);
//! faults on market events (a late resolution) use **virtual** seconds, like the
//! resolution delay they extend.
//!
//! "Next N" faults are shared by every connection of the service and consumed in the order
//! requests or data frames happen; a WebSocket *data* frame is a kline, trade, book,
//! `price_change`, `best_bid_ask` or `market_resolved` message, never a `PONG`, a
//! subscription answer or a protocol ping.

use super::LoopbackError;
use super::market::ResolutionFault;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One of the services the venue serves, each under its own path prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// Binance spot REST under `/binance` (`/api/v3/klines`, `/api/v3/time`).
    BinanceRest,
    /// Binance spot WebSocket streams under `/binance-ws` (`/stream?streams=…`, `/ws/<stream>`).
    BinanceWs,
    /// Polymarket Gamma under `/gamma` (`/events`, `/markets`).
    Gamma,
    /// Polymarket CLOB REST under `/clob` (`/book`, `/books`, `/midpoint`, `/time`).
    ClobRest,
    /// Polymarket CLOB market channel under `/clob-ws` (`/ws/market`).
    ClobWs,
    /// Coinbase's spot price under `/coinbase` (`/v2/prices/BTC-USD/spot`): the live feed's
    /// fallback price.
    Coinbase,
    /// CoinGecko's simple price under `/coingecko` (`/api/v3/simple/price`): the second
    /// fallback.
    CoinGecko,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 7] = [
        Service::BinanceRest,
        Service::BinanceWs,
        Service::Gamma,
        Service::ClobRest,
        Service::ClobWs,
        Service::Coinbase,
        Service::CoinGecko,
    ];

    /// The path prefix, e.g. `/binance-ws`.
    pub fn prefix(self) -> &'static str {
        match self {
            Service::BinanceRest => "/binance",
            Service::BinanceWs => "/binance-ws",
            Service::Gamma => "/gamma",
            Service::ClobRest => "/clob",
            Service::ClobWs => "/clob-ws",
            Service::Coinbase => "/coinbase",
            Service::CoinGecko => "/coingecko",
        }
    }

    /// Whether it is a WebSocket service.
    pub fn is_ws(self) -> bool {
        matches!(self, Service::BinanceWs | Service::ClobWs)
    }

    /// The snake-case name, e.g. `clob_ws`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::BinanceRest => "binance_rest",
            Service::BinanceWs => "binance_ws",
            Service::Gamma => "gamma",
            Service::ClobRest => "clob_rest",
            Service::ClobWs => "clob_ws",
            Service::Coinbase => "coinbase",
            Service::CoinGecko => "coingecko",
        }
    }

    /// The service a request path belongs to (by its first segment).
    pub fn of_path(path: &str) -> Option<Service> {
        let first = path.trim_start_matches('/').split('/').next()?;
        Service::ALL
            .into_iter()
            .find(|s| s.prefix().trim_start_matches('/') == first)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault to inject. As JSON: `{"kind": "stall", "service": "clob_ws", "millis": 2000}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultSpec {
    /// Close every open WebSocket of `service` with a close frame (1001, going away).
    Disconnect {
        /// A WebSocket service.
        service: Service,
    },
    /// Drop every open WebSocket of `service` without a close frame (TCP closed).
    Kill {
        /// A WebSocket service.
        service: Service,
    },
    /// Send no data on `service`'s sockets for `millis` real ms. Sockets stay open, and
    /// heartbeats (`PING`→`PONG`, protocol pings) are still answered, as in the silent
    /// stalls seen live; data that would have been sent meanwhile is lost.
    Stall {
        /// A WebSocket service.
        service: Service,
        /// Real milliseconds.
        millis: u64,
    },
    /// The next `count` HTTP requests to `service` (REST calls, or WebSocket upgrade
    /// requests) answer `status` with the service's error body; `429` and `503` carry
    /// `Retry-After: retry_after_secs` (default 1).
    HttpStatus {
        /// Any service.
        service: Service,
        /// How many requests.
        count: u32,
        /// HTTP status, 400..=599 (e.g. 429, 500, 502, 503).
        status: u16,
        /// `Retry-After` in seconds for 429/503.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// The next `count` REST bodies or WebSocket data frames of `service` are malformed JSON
    /// (the first `"` becomes `'`, as a broken proxy might send).
    Malformed {
        /// Any service.
        service: Service,
        /// How many bodies or frames.
        count: u32,
    },
    /// The next `count` REST bodies or WebSocket data frames of `service` are cut in half.
    Truncated {
        /// Any service.
        service: Service,
        /// How many bodies or frames.
        count: u32,
    },
    /// The next data frame of a WebSocket `service` is sent as a broken WebSocket frame (a
    /// header announcing more bytes than follow), then the TCP connection is closed.
    BrokenFrame {
        /// A WebSocket service.
        service: Service,
    },
    /// The next `count` data frames of a WebSocket `service` are each sent twice.
    Duplicate {
        /// A WebSocket service.
        service: Service,
        /// How many frames.
        count: u32,
    },
    /// After each of the next `count` data frames of a WebSocket `service`, an older data
    /// frame of the same connection (the one two frames back) is sent again: an old
    /// `price_change` after a newer one, an earlier kline after a later one.
    Stale {
        /// A WebSocket service.
        service: Service,
        /// How many frames.
        count: u32,
    },
    /// The market of the window starting at `window_start` (Unix s) resolves late or never.
    Resolution {
        /// Window start, Unix seconds.
        window_start: i64,
        /// How.
        fault: ResolutionFault,
    },
    /// Take `service` down: its open WebSockets are dropped and every new request to it has
    /// its TCP connection closed without an answer, for `millis` real ms (or until
    /// [`FaultSpec::RestoreService`] when absent).
    DropService {
        /// Any service.
        service: Service,
        /// Real milliseconds; absent = until restored.
        #[serde(default)]
        millis: Option<u64>,
    },
    /// Bring a dropped service back.
    RestoreService {
        /// Any service.
        service: Service,
    },
    /// Close the listening socket for `millis` real ms: new connections are refused
    /// (ECONNREFUSED) and every open connection is closed; the same port is bound again
    /// afterwards.
    RefuseConnections {
        /// Real milliseconds.
        millis: u64,
    },
    /// Forget every pending fault (counts, stalls, drops, resolution faults).
    Clear,
}

/// What to do with an HTTP request, decided before it is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFault {
    /// Close the TCP connection without answering.
    Drop,
    /// Answer this status with the service's error body.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after_secs: u64,
    },
    /// Answer normally, with the body made malformed.
    Malformed,
    /// Answer normally, with the body cut in half.
    Truncated,
}

/// What to do with one WebSocket data frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramePlan {
    /// Do not send it (stalled).
    pub skip: bool,
    /// Send a broken frame and close the connection instead.
    pub broken: bool,
    /// Make it malformed.
    pub malformed: bool,
    /// Cut it in half.
    pub truncated: bool,
    /// Send it twice.
    pub duplicate: bool,
    /// Send an older frame after it.
    pub stale: bool,
}

/// What an open WebSocket should do about connection-level faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Carry on.
    Keep,
    /// Close with a close frame.
    Close,
    /// Drop the TCP connection without a close frame.
    Kill,
}

/// A WebSocket's snapshot of the disconnect/kill generations at its start; a fault bumps the
/// service's generation, and every socket opened before it closes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generations {
    disconnect: u64,
    kill: u64,
}

#[derive(Debug, Default)]
struct PerService {
    http: VecDeque<(u16, u64)>,
    malformed: u32,
    truncated: u32,
    broken: u32,
    duplicate: u32,
    stale: u32,
    stall_until: Option<Instant>,
    generations: Generations,
    /// `Some(None)`: dropped until restored; `Some(Some(t))`: until `t`.
    dropped: Option<Option<Instant>>,
}

#[derive(Debug, Default)]
struct Book {
    per: BTreeMap<Service, PerService>,
    resolution: BTreeMap<i64, ResolutionFault>,
    refuse_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Shared {
    book: Mutex<Book>,
    refuse_changed: Notify,
    applied: Mutex<BTreeMap<String, u64>>,
}

/// The handle through which faults are injected and consulted. Cheap to clone; every clone
/// acts on the same venue.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// A handle with no faults pending.
    pub fn new() -> Self {
        Faults::default()
    }

    /// Injects `spec`; refuses a fault that cannot apply to its service (e.g. a stall of a
    /// REST service) or an out-of-range status.
    pub fn inject(&self, spec: FaultSpec) -> Result<(), LoopbackError> {
        let bad = |why: &str| Err(LoopbackError::Fault(format!("{spec:?}: {why}")));
        let now = Instant::now();
        let mut book = lock(&self.shared.book);
        match &spec {
            FaultSpec::Disconnect { service }
            | FaultSpec::Kill { service }
            | FaultSpec::Stall { service, .. }
            | FaultSpec::BrokenFrame { service }
            | FaultSpec::Duplicate { service, .. }
            | FaultSpec::Stale { service, .. }
                if !service.is_ws() =>
            {
                return bad("only WebSocket services (binance_ws, clob_ws) take this fault");
            }
            FaultSpec::HttpStatus { status, .. } if !(400..=599).contains(status) => {
                return bad("status must be 400..=599");
            }
            _ => {}
        }
        match spec.clone() {
            FaultSpec::Disconnect { service } => {
                book.per.entry(service).or_default().generations.disconnect += 1;
            }
            FaultSpec::Kill { service } => {
                book.per.entry(service).or_default().generations.kill += 1;
            }
            FaultSpec::Stall { service, millis } => {
                book.per.entry(service).or_default().stall_until =
                    Some(now + Duration::from_millis(millis));
            }
            FaultSpec::HttpStatus {
                service,
                count,
                status,
                retry_after_secs,
            } => {
                let s = book.per.entry(service).or_default();
                for _ in 0..count {
                    s.http.push_back((status, retry_after_secs.unwrap_or(1)));
                }
            }
            FaultSpec::Malformed { service, count } => {
                book.per.entry(service).or_default().malformed += count;
            }
            FaultSpec::Truncated { service, count } => {
                book.per.entry(service).or_default().truncated += count;
            }
            FaultSpec::BrokenFrame { service } => {
                book.per.entry(service).or_default().broken += 1;
            }
            FaultSpec::Duplicate { service, count } => {
                book.per.entry(service).or_default().duplicate += count;
            }
            FaultSpec::Stale { service, count } => {
                book.per.entry(service).or_default().stale += count;
            }
            FaultSpec::Resolution {
                window_start,
                fault,
            } => {
                book.resolution.insert(window_start, fault);
            }
            FaultSpec::DropService { service, millis } => {
                book.per.entry(service).or_default().dropped =
                    Some(millis.map(|m| now + Duration::from_millis(m)));
            }
            FaultSpec::RestoreService { service } => {
                book.per.entry(service).or_default().dropped = None;
            }
            FaultSpec::RefuseConnections { millis } => {
                book.refuse_until = Some(now + Duration::from_millis(millis));
            }
            FaultSpec::Clear => {
                // Generations only ever grow, so sockets opened before a clear stay judged
                // against the same numbers.
                for s in book.per.values_mut() {
                    let generations = s.generations;
                    *s = PerService {
                        generations,
                        ..PerService::default()
                    };
                }
                book.resolution.clear();
                book.refuse_until = None;
            }
        }
        drop(book);
        if matches!(spec, FaultSpec::RefuseConnections { .. } | FaultSpec::Clear) {
            self.shared.refuse_changed.notify_one();
        }
        tracing::warn!(target: "updown::loopback", "fault injected: {spec:?}");
        Ok(())
    }

    /// Closes every open WebSocket of `service` with a close frame.
    pub fn disconnect(&self, service: Service) -> Result<(), LoopbackError> {
        self.inject(FaultSpec::Disconnect { service })
    }

    /// Stops data on `service`'s sockets for `d` (real time), sockets left open.
    pub fn stall(&self, service: Service, d: Duration) -> Result<(), LoopbackError> {
        self.inject(FaultSpec::Stall {
            service,
            millis: d.as_millis() as u64,
        })
    }

    /// The next `count` requests to `service` answer `status`.
    pub fn http_status(
        &self,
        service: Service,
        count: u32,
        status: u16,
    ) -> Result<(), LoopbackError> {
        self.inject(FaultSpec::HttpStatus {
            service,
            count,
            status,
            retry_after_secs: None,
        })
    }

    /// Makes the market of `window_start` resolve `extra_secs` virtual seconds late.
    pub fn resolve_late(&self, window_start: i64, extra_secs: i64) -> Result<(), LoopbackError> {
        self.inject(FaultSpec::Resolution {
            window_start,
            fault: ResolutionFault::Late { extra_secs },
        })
    }

    /// Makes the market of `window_start` never resolve.
    pub fn never_resolve(&self, window_start: i64) -> Result<(), LoopbackError> {
        self.inject(FaultSpec::Resolution {
            window_start,
            fault: ResolutionFault::Never,
        })
    }

    fn applied(&self, what: &str) {
        *lock(&self.shared.applied)
            .entry(what.to_string())
            .or_default() += 1;
        tracing::info!(target: "updown::loopback", "fault applied: {what}");
    }

    /// Faults applied so far, by `service/kind`.
    pub fn applied_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.applied).clone()
    }

    /// Whether `service` is down at `now` (expired drops are cleared).
    fn dropped(s: &mut PerService, now: Instant) -> bool {
        match s.dropped {
            Some(Some(until)) if now >= until => {
                s.dropped = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The fault, if any, for the next HTTP request to `service` (consumed).
    pub fn http_fault(&self, service: Service) -> Option<HttpFault> {
        let now = Instant::now();
        let mut book = lock(&self.shared.book);
        let s = book.per.entry(service).or_default();
        let fault = if Self::dropped(s, now) {
            Some(HttpFault::Drop)
        } else if let Some((status, retry_after_secs)) = s.http.pop_front() {
            Some(HttpFault::Status {
                status,
                retry_after_secs,
            })
        } else if service.is_ws() {
            None
        } else if s.malformed > 0 {
            s.malformed -= 1;
            Some(HttpFault::Malformed)
        } else if s.truncated > 0 {
            s.truncated -= 1;
            Some(HttpFault::Truncated)
        } else {
            None
        };
        drop(book);
        if let Some(f) = fault {
            self.applied(&format!("{service}/http/{f:?}"));
        }
        fault
    }

    /// Whether `service`'s data is stalled now.
    pub fn stalled(&self, service: Service) -> bool {
        let now = Instant::now();
        let mut book = lock(&self.shared.book);
        let s = book.per.entry(service).or_default();
        match s.stall_until {
            Some(t) if now < t => true,
            Some(_) => {
                s.stall_until = None;
                false
            }
            None => false,
        }
    }

    /// The plan for the next data frame of `service` (counts consumed unless stalled).
    pub fn frame_plan(&self, service: Service) -> FramePlan {
        if self.stalled(service) {
            return FramePlan {
                skip: true,
                ..FramePlan::default()
            };
        }
        let mut book = lock(&self.shared.book);
        let s = book.per.entry(service).or_default();
        let take = |n: &mut u32| {
            let hit = *n > 0;
            if hit {
                *n -= 1;
            }
            hit
        };
        let plan = FramePlan {
            skip: false,
            broken: take(&mut s.broken),
            malformed: take(&mut s.malformed),
            truncated: take(&mut s.truncated),
            duplicate: take(&mut s.duplicate),
            stale: take(&mut s.stale),
        };
        drop(book);
        for (hit, name) in [
            (plan.broken, "broken_frame"),
            (plan.malformed, "malformed"),
            (plan.truncated, "truncated"),
            (plan.duplicate, "duplicate"),
            (plan.stale, "stale"),
        ] {
            if hit {
                self.applied(&format!("{service}/{name}"));
            }
        }
        plan
    }

    /// The generations a new socket of `service` starts with.
    pub fn generations(&self, service: Service) -> Generations {
        lock(&self.shared.book)
            .per
            .entry(service)
            .or_default()
            .generations
    }

    /// What an open socket of `service`, started at `mine`, should do now.
    pub fn verdict(&self, service: Service, mine: Generations) -> Verdict {
        let now = Instant::now();
        let mut book = lock(&self.shared.book);
        let refusing = book.refuse_until.is_some_and(|t| now < t);
        let s = book.per.entry(service).or_default();
        if refusing || Self::dropped(s, now) || s.generations.kill > mine.kill {
            Verdict::Kill
        } else if s.generations.disconnect > mine.disconnect {
            Verdict::Close
        } else {
            Verdict::Keep
        }
    }

    /// The resolution fault of the window starting at `window_start`, if any.
    pub fn resolution(&self, window_start: i64) -> Option<ResolutionFault> {
        lock(&self.shared.book)
            .resolution
            .get(&window_start)
            .copied()
    }

    /// Until when new connections are refused, if they are now.
    pub fn refusing_until(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut book = lock(&self.shared.book);
        match book.refuse_until {
            Some(t) if now < t => Some(t),
            Some(_) => {
                book.refuse_until = None;
                None
            }
            None => None,
        }
    }

    /// Resolves when a refuse fault was injected or cleared.
    pub async fn refuse_changed(&self) {
        self.shared.refuse_changed.notified().await;
    }
}

/// `text` with its first `"` replaced by `'` (or `,,` inserted when it has none): never JSON.
pub fn malform(text: &str) -> String {
    match text.find('"') {
        Some(i) => format!("{}'{}", &text[..i], &text[i + 1..]),
        None => {
            let cut = text.char_indices().nth(1).map_or(text.len(), |(i, _)| i);
            format!("{},,{}", &text[..cut], &text[cut..])
        }
    }
}

/// The first half of `text` (on a character boundary).
pub fn truncate(text: &str) -> String {
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_found_by_their_first_path_segment() {
        assert_eq!(
            Service::of_path("/binance/api/v3/klines"),
            Some(Service::BinanceRest)
        );
        assert_eq!(
            Service::of_path("/binance-ws/stream"),
            Some(Service::BinanceWs)
        );
        assert_eq!(
            Service::of_path("/clob-ws/ws/market"),
            Some(Service::ClobWs)
        );
        assert_eq!(Service::of_path("/clob/book"), Some(Service::ClobRest));
        assert_eq!(Service::of_path("/control/fault"), None);
    }

    #[test]
    fn counted_faults_are_consumed_in_order() {
        let f = Faults::new();
        f.http_status(Service::Gamma, 2, 429).unwrap();
        f.inject(FaultSpec::Malformed {
            service: Service::Gamma,
            count: 1,
        })
        .unwrap();
        assert!(matches!(
            f.http_fault(Service::Gamma),
            Some(HttpFault::Status { status: 429, .. })
        ));
        assert!(f.http_fault(Service::Gamma).is_some());
        assert_eq!(f.http_fault(Service::Gamma), Some(HttpFault::Malformed));
        assert_eq!(f.http_fault(Service::Gamma), None);
        assert!(f.stall(Service::Gamma, Duration::from_secs(1)).is_err());
        assert!(f.http_status(Service::Gamma, 1, 200).is_err());
    }

    #[test]
    fn malformed_and_truncated_texts_are_not_json() {
        for t in [r#"{"a":1}"#, "[[1,2]]", "[]"] {
            assert!(serde_json::from_str::<serde_json::Value>(&malform(t)).is_err());
            assert!(serde_json::from_str::<serde_json::Value>(&truncate(t)).is_err());
        }
    }
}
