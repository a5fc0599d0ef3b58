//! What the venue has served, for tests to assert on ("the bot reconnected", "the bot
//! backfilled", "the bot subscribed to both tokens") and for the binary's log.

use super::faults::Service;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A snapshot of the venue's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// HTTP requests by path (without the query), WebSocket upgrade requests included.
    pub requests: BTreeMap<String, u64>,
    /// HTTP requests by service.
    pub requests_by_service: BTreeMap<Service, u64>,
    /// HTTP answers by status (101 for accepted WebSocket upgrades).
    pub statuses: BTreeMap<u16, u64>,
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// WebSocket connections opened, by service.
    pub ws_connections: BTreeMap<Service, u64>,
    /// WebSocket connections open now, by service.
    pub ws_open: BTreeMap<Service, u64>,
    /// WebSocket text frames sent, by service (heartbeats included).
    pub ws_frames_sent: BTreeMap<Service, u64>,
    /// Accepted CLOB market-channel subscription messages (initial and later).
    pub clob_subscriptions: u64,
    /// Every asset id a CLOB client has subscribed to.
    pub subscribed_assets: BTreeSet<String>,
    /// `PING` texts received on the CLOB market channel.
    pub clob_pings: u64,
    /// Binance streams clients have asked for (URL or `SUBSCRIBE`).
    pub binance_streams: BTreeSet<String>,
    /// Protocol pongs received from Binance WebSocket clients.
    pub binance_pongs: u64,
}

impl Stats {
    /// Requests to exactly `path` (e.g. `/binance/api/v3/klines`).
    pub fn requests_to(&self, path: &str) -> u64 {
        self.requests.get(path).copied().unwrap_or(0)
    }

    /// WebSocket connections opened to `service`.
    pub fn ws_connections_to(&self, service: Service) -> u64 {
        self.ws_connections.get(&service).copied().unwrap_or(0)
    }

    /// WebSocket connections of `service` open now.
    pub fn ws_open_to(&self, service: Service) -> u64 {
        self.ws_open.get(&service).copied().unwrap_or(0)
    }
}

/// The shared, mutable counters behind [`Stats`].
#[derive(Clone, Debug, Default)]
pub struct StatsHandle {
    inner: Arc<Mutex<Stats>>,
}

impl StatsHandle {
    fn lock(&self) -> MutexGuard<'_, Stats> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }

    /// Counts an HTTP request.
    pub fn request(&self, path: &str, service: Option<Service>) {
        let mut s = self.lock();
        *s.requests.entry(path.to_string()).or_default() += 1;
        if let Some(svc) = service {
            *s.requests_by_service.entry(svc).or_default() += 1;
        }
    }

    /// Counts an HTTP answer.
    pub fn status(&self, status: u16) {
        *self.lock().statuses.entry(status).or_default() += 1;
    }

    /// Counts an accepted TCP connection.
    pub fn tcp_connection(&self) {
        self.lock().tcp_connections += 1;
    }

    /// Counts a WebSocket opened (`open`) or closed.
    pub fn ws(&self, service: Service, open: bool) {
        let mut s = self.lock();
        if open {
            *s.ws_connections.entry(service).or_default() += 1;
            *s.ws_open.entry(service).or_default() += 1;
        } else {
            let n = s.ws_open.entry(service).or_default();
            *n = n.saturating_sub(1);
        }
    }

    /// Counts a text frame sent.
    pub fn frame(&self, service: Service) {
        *self.lock().ws_frames_sent.entry(service).or_default() += 1;
    }

    /// Records a CLOB subscription to `assets`.
    pub fn clob_subscription(&self, assets: &[String]) {
        let mut s = self.lock();
        s.clob_subscriptions += 1;
        s.subscribed_assets.extend(assets.iter().cloned());
    }

    /// Counts a CLOB `PING`.
    pub fn clob_ping(&self) {
        self.lock().clob_pings += 1;
    }

    /// Records Binance streams asked for.
    pub fn binance_streams<'a>(&self, streams: impl IntoIterator<Item = &'a String>) {
        self.lock()
            .binance_streams
            .extend(streams.into_iter().cloned());
    }

    /// Counts a Binance protocol pong.
    pub fn binance_pong(&self) {
        self.lock().binance_pongs += 1;
    }
}
