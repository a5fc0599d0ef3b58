//! A loopback test venue: Binance spot and Polymarket (Gamma, CLOB REST, CLOB market
//! channel) served from recorded real data on one `127.0.0.1` port, in the real wire
//! formats, on a virtual clock, with faults a test can inject while it runs.
//!
//! The live paper-trading code is proven against this server over real sockets: no
//! internet, no mocks inside the bot. Each service has its own path prefix, so each base
//! URL can be configured on its own ([`Urls`]):
//!
//! | service | base URL | paths |
//! |---|---|---|
//! | Binance REST | `http://127.0.0.1:P/binance` | `/api/v3/klines`, `/api/v3/time`, `/api/v3/ping` |
//! | Binance WS | `ws://127.0.0.1:P/binance-ws` | `/stream?streams=btcusdt@kline_1m/btcusdt@aggTrade`, `/ws/<stream>` |
//! | Gamma | `http://127.0.0.1:P/gamma` | `/events?slug=`, `/events/slug/<slug>`, `/markets?slug=`, `/markets/slug/<slug>` |
//! | CLOB REST | `http://127.0.0.1:P/clob` | `/book?token_id=`, `POST /books`, `/midpoint?token_id=`, `/time` |
//! | CLOB WS | `ws://127.0.0.1:P/clob-ws` | `/ws/market` |
//! | Coinbase | `http://127.0.0.1:P/coinbase` | `/v2/prices/BTC-USD/spot` |
//! | CoinGecko | `http://127.0.0.1:P/coingecko` | `/api/v3/simple/price?ids=bitcoin&vs_currencies=usd` |
//! | CLOB trading | `http://127.0.0.1:P/clob/` ([`Urls::clob_sdk_host`]) | L1/L2 auth, `POST`/`DELETE /order`, `/data/orders`, `/data/trades`, `/balance-allowance`, … ([`orders`]) |
//! | control | `http://127.0.0.1:P/control` | `POST /fault` ([`FaultSpec`] JSON), `GET /stats`, `GET /clock`, `POST /order-fault` ([`OrderFault`]), `GET /orders` (orders received) |
//!
//! What is served (formats from `shared/reference/polymarket-api.md` §1, §3.1, §4.1, §5, §7):
//! - Binance klines and kline/aggTrade/trade events of the recorded week
//!   (`polymarket_btc_updown_2026-02/binance_btc.csv`); a bar is never served before its
//!   virtual close (unless [`LoopbackConfig::forming_bar`] asks for Binance's in-progress
//!   last row), WebSocket kline updates (`x:false`) come every
//!   [`LoopbackConfig::kline_update_ms`] virtual ms and the closing one (`x:true`) when a
//!   virtual minute ends.
//! - One Gamma event/market per 5-minute window of the recorded Polymarket week, rendered
//!   from the real market fixture; listed [`LoopbackConfig::listing_lead_secs`] before the
//!   window, `closed` with `["1","0"]`/`["0","1"]` from the real outcome once the window has
//!   ended and [`LoopbackConfig::resolution_delay_secs`] have passed.
//! - CLOB books around a mid that follows the window's BTC move ([`market`] says how),
//!   shaped like the real recorded book, seeded; `book` on subscribe, `price_change` (the
//!   `price_changes[]` form) as they move, `best_bid_ask` and `market_resolved` for clients
//!   that subscribe with `custom_feature_enabled: true`, `PING`→`PONG`.
//!
//! - Coinbase and CoinGecko spot prices (the live feed's fallbacks, `spot.rs`): BTC's price
//!   on the same in-minute path as the Binance bars, at the virtual time. Deliberately
//!   minimal: one endpoint each, no other coins or currencies.
//!
//! Start it with [`LoopbackVenue::start`]; it runs on its own Tokio runtime in its own
//! thread, so blocking and async tests alike can use it, and stops when the [`Running`]
//! handle is dropped. `cargo run --bin updown-loopback -- --speed 60` runs it by hand.

pub mod auth;
pub mod clock;
pub mod data;
pub mod faults;
pub mod market;
pub mod orders;
pub mod stats;

mod binance;
mod polymarket;
mod server;
mod spot;
mod ws;

pub use clock::VirtualClock;
pub use data::{VenueData, WINDOW_SECS, WindowInfo};
pub use faults::{FaultSpec, Faults, Service};
pub use market::{Phase, ResolutionFault};
pub use orders::{
    ExchangeConfig, ExchangeHandle, OrderFault, OrderView, ReceivedOrder, TradeView, WalletConfig,
};
pub use stats::Stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Why the venue could not start or a fault was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoopbackError {
    /// A recorded file could not be read.
    #[error("cannot read {}: {source}; the shared data folder must sit next to the repository (../shared/data) or be given with --data-dir", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A recorded file is not what the venue needs.
    #[error("{}: {problem}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A configuration value is out of range.
    #[error("invalid loopback configuration: {0}")]
    Config(String),
    /// The port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The venue's runtime or thread could not be started.
    #[error("cannot start the loopback venue: {0}")]
    Runtime(std::io::Error),
    /// A fault cannot apply as given.
    #[error("invalid fault {0}")]
    Fault(String),
}

/// Default virtual start: 2026-02-21 16:30:00 UTC (two hours into the recorded week, so a
/// REST backfill finds 124 closed bars) minus [`DEFAULT_WARMUP_SECS`].
pub const DEFAULT_START_WINDOW: i64 = 1_771_691_400;

/// Default warm-up before the first window: 30 virtual seconds.
pub const DEFAULT_WARMUP_SECS: i64 = 30;

/// Settings of a loopback venue. `LoopbackConfig::default()` serves the shared data folder
/// next to the repository, on an OS-assigned port, at real speed.
#[derive(Clone, Debug)]
pub struct LoopbackConfig {
    /// The shared data folder (`../shared/data` from the crate root by default).
    pub data_dir: PathBuf,
    /// Port on 127.0.0.1; 0 lets the OS choose.
    pub port: u16,
    /// Virtual time at start, Unix ms; `None` = [`DEFAULT_START_WINDOW`] − warm-up.
    pub start_ms: Option<i64>,
    /// Virtual ms per real ms (0 < speed ≤ 10 000).
    pub speed: f64,
    /// Virtual seconds from a window's end to its resolution.
    pub resolution_delay_secs: i64,
    /// Virtual seconds a market is listed on Gamma before its window starts (live: ~1 day).
    pub listing_lead_secs: i64,
    /// Seed of the books' sizes and spreads and of the trades.
    pub seed: u64,
    /// Whether `/api/v3/klines` includes the bar still forming as its last row, as Binance
    /// does (its values are the part formed so far). Off by default: no row then has a
    /// close time in the virtual future.
    pub forming_bar: bool,
    /// Virtual ms between `x:false` kline updates (Binance: 2000 for 1m).
    pub kline_update_ms: i64,
    /// Virtual ms between trade events.
    pub trade_interval_ms: i64,
    /// Virtual ms between book updates.
    pub book_update_ms: i64,
    /// Real time between two passes of each WebSocket's sender (bounds the frame rate at
    /// high speeds: several virtual updates collapse into one).
    pub tick: Duration,
    /// Real time a CLOB market-channel client may go without subscribing (first) or sending
    /// anything (`PING`, later) before it is dropped.
    pub clob_idle_timeout: Duration,
    /// Real time between protocol pings on Binance sockets (Binance: 20 s).
    pub binance_ping_interval: Duration,
    /// Levels per book side.
    pub book_levels: usize,
    /// Multiplier of the recorded book's level sizes.
    pub book_size_scale: f64,
    /// Standard deviation of BTC's 1-minute return in the mid model.
    pub sigma_per_minute: f64,
    /// Whether Gamma markets carry the `feeSchedule` block (`crypto_fees_v2`, rate 0.07)
    /// seen live since mid-2026; off, they are as the recorded template (`crypto_fees`).
    pub fee_schedule: bool,
    /// The CLOB V2 trading side: the wallet (signer, signature type, funder, pUSD), fee
    /// rate, minimum size and settlement time.
    pub exchange: ExchangeConfig,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        LoopbackConfig {
            data_dir: default_data_dir(),
            port: 0,
            start_ms: None,
            speed: 1.0,
            resolution_delay_secs: 60,
            listing_lead_secs: 86_400,
            seed: 1,
            forming_bar: false,
            kline_update_ms: 2_000,
            trade_interval_ms: 1_000,
            book_update_ms: 1_000,
            tick: Duration::from_millis(25),
            clob_idle_timeout: Duration::from_secs(30),
            binance_ping_interval: Duration::from_secs(20),
            book_levels: 15,
            book_size_scale: 0.05,
            sigma_per_minute: 0.0006,
            fee_schedule: false,
            exchange: ExchangeConfig::default(),
        }
    }
}

/// `../shared/data` from the crate root (where CI and every developer have it), unless
/// `UPDOWN_SHARED_DATA` names another folder.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("UPDOWN_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

impl LoopbackConfig {
    /// Starts the clock `warmup_secs` before the window starting at `window_start`.
    pub fn at_window(mut self, window_start: i64, warmup_secs: i64) -> Self {
        self.start_ms = Some((window_start - warmup_secs) * 1000);
        self
    }

    /// Sets the speed.
    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// The virtual start time, Unix ms.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
            .unwrap_or((DEFAULT_START_WINDOW - DEFAULT_WARMUP_SECS) * 1000)
    }

    fn validate(&self, data: &VenueData) -> Result<(), LoopbackError> {
        let bad = |m: String| Err(LoopbackError::Config(m));
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 10_000.0) {
            return bad(format!("speed {} is not within (0, 10000]", self.speed));
        }
        let (first, last) = data.span();
        let start = self.start_ms();
        if start < first * 1000 || start >= last * 1000 {
            return bad(format!(
                "start {start} ms is outside the recorded data ({} .. {} ms)",
                first * 1000,
                last * 1000
            ));
        }
        for (name, v) in [
            ("kline_update_ms", self.kline_update_ms),
            ("trade_interval_ms", self.trade_interval_ms),
            ("book_update_ms", self.book_update_ms),
        ] {
            if v <= 0 {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if self.resolution_delay_secs < 0 || self.listing_lead_secs < 0 {
            return bad("resolution delay and listing lead must not be negative".into());
        }
        if self.tick.is_zero() || self.tick > Duration::from_secs(1) {
            return bad(format!("tick {:?} is not within (0, 1 s]", self.tick));
        }
        if self.book_levels == 0 || self.book_levels > 99 {
            return bad(format!(
                "book_levels {} is not within 1..=99",
                self.book_levels
            ));
        }
        if !(self.book_size_scale.is_finite() && self.book_size_scale > 0.0) {
            return bad("book_size_scale must be positive".into());
        }
        if !(self.sigma_per_minute.is_finite() && self.sigma_per_minute > 0.0) {
            return bad("sigma_per_minute must be positive".into());
        }
        self.exchange.validate()
    }
}

/// Base URLs of the services, one per configurable endpoint of the bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urls {
    /// `http://127.0.0.1:P/binance` (append `/api/v3/klines`).
    pub binance_rest: String,
    /// `ws://127.0.0.1:P/binance-ws` (append `/stream?streams=…` or `/ws/<stream>`).
    pub binance_ws: String,
    /// `http://127.0.0.1:P/gamma` (append `/events?slug=…`).
    pub gamma: String,
    /// `http://127.0.0.1:P/clob` (append `/book?token_id=…`).
    pub clob_rest: String,
    /// `ws://127.0.0.1:P/clob-ws` (append `/ws/market`).
    pub clob_ws: String,
    /// `http://127.0.0.1:P/coinbase` (append `/v2/prices/BTC-USD/spot`).
    pub coinbase: String,
    /// `http://127.0.0.1:P/coingecko` (append `/api/v3/simple/price?…`).
    pub coingecko: String,
    /// `http://127.0.0.1:P/control` (append `/fault`, `/stats`, `/clock`).
    pub control: String,
}

impl Urls {
    /// The CLOB host to give `polymarket_client_sdk_v2::clob::Client::new`: the CLOB REST
    /// base with a trailing `/` (the SDK appends paths to its host as text, so without it
    /// `…/clob` + `order` would be `…/cloborder`).
    pub fn clob_sdk_host(&self) -> String {
        format!("{}/", self.clob_rest)
    }

    fn new(addr: SocketAddr) -> Self {
        let http = format!("http://{addr}");
        let ws = format!("ws://{addr}");
        Urls {
            binance_rest: format!("{http}{}", Service::BinanceRest.prefix()),
            binance_ws: format!("{ws}{}", Service::BinanceWs.prefix()),
            gamma: format!("{http}{}", Service::Gamma.prefix()),
            clob_rest: format!("{http}{}", Service::ClobRest.prefix()),
            clob_ws: format!("{ws}{}", Service::ClobWs.prefix()),
            coinbase: format!("{http}{}", Service::Coinbase.prefix()),
            coingecko: format!("{http}{}", Service::CoinGecko.prefix()),
            control: format!("{http}/control"),
        }
    }

    /// The `[live]` section of `config.toml` pointing the bot at this venue.
    pub fn config_toml(&self) -> String {
        format!(
            "[live]\nbinance_rest = \"{}\"\nbinance_ws = \"{}\"\ncoinbase = \"{}\"\ncoingecko = \"{}\"\ngamma = \"{}\"\nclob_rest = \"{}\"\nclob_ws = \"{}\"\n",
            self.binance_rest,
            self.binance_ws,
            self.coinbase,
            self.coingecko,
            self.gamma,
            self.clob_rest,
            self.clob_ws
        )
    }
}

/// Entry point: starts venues.
#[derive(Debug)]
pub struct LoopbackVenue;

/// Loaded data by folder, so a test suite starting many venues reads the files once.
fn load_cached(dir: &Path) -> Result<Arc<VenueData>, LoopbackError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<VenueData>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = map.get(dir) {
        return Ok(d.clone());
    }
    let data = Arc::new(VenueData::load(dir)?);
    map.insert(dir.to_path_buf(), data.clone());
    Ok(data)
}

impl LoopbackVenue {
    /// Loads the data, binds `127.0.0.1:<port>` and starts serving on a runtime of its own
    /// (in a thread named `updown-loopback`). The virtual clock starts when the port is
    /// bound. Needs no Tokio runtime from the caller.
    pub fn start(cfg: LoopbackConfig) -> Result<Running, LoopbackError> {
        let data = load_cached(&cfg.data_dir)?;
        cfg.validate(&data)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let thread_cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("updown-loopback".into())
            .spawn(move || server::run(thread_cfg, data, tx, shutdown_rx))
            .map_err(LoopbackError::Runtime)?;
        let started = rx.recv().map_err(|_| {
            LoopbackError::Runtime(std::io::Error::other("the venue thread stopped at start"))
        });
        let (addr, app) = match started.and_then(|r| r) {
            Ok(v) => v,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        tracing::info!(target: "updown::loopback", "loopback venue on {addr}");
        Ok(Running {
            addr,
            app,
            shutdown: shutdown_tx,
            thread: Some(thread),
        })
    }
}

/// A running venue. Dropping it stops the server and closes every connection.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    app: Arc<server::App>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The bound address (127.0.0.1 and the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URLs of every service.
    pub fn urls(&self) -> Urls {
        Urls::new(self.addr)
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.app.faults.clone()
    }

    /// The trading side: order faults, every order received, orders, trades, balance.
    pub fn exchange(&self) -> ExchangeHandle {
        ExchangeHandle::new(self.app.exchange.clone())
    }

    /// A snapshot of what has been served.
    pub fn stats(&self) -> Stats {
        self.app.stats.snapshot()
    }

    /// The current virtual time, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.app.clock.now_ms()
    }

    /// The virtual clock.
    pub fn clock(&self) -> VirtualClock {
        self.app.clock
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LoopbackConfig {
        &self.app.cfg
    }

    /// The market of the window starting at `start` (Unix s), if the data has one: its
    /// slug, token ids, condition id and real outcome, for tests to compare with.
    pub fn window(&self, start: i64) -> Option<WindowInfo> {
        self.app.model.data().window(start).cloned()
    }

    /// The market whose window contains the virtual time `t_ms`.
    pub fn window_at(&self, t_ms: i64) -> Option<WindowInfo> {
        let secs = t_ms.div_euclid(1000);
        self.window(secs - secs.rem_euclid(WINDOW_SECS))
    }

    /// Where the market of `w` is now (faults included).
    pub fn phase(&self, w: &WindowInfo) -> Phase {
        self.app
            .model
            .phase(w, self.now_ms(), self.app.faults.resolution(w.start))
    }

    /// Stops the venue now (as dropping it does).
    pub fn shutdown(self) {}
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
