//! Configuration: `config.toml` parsed into typed, documented settings, then checked.
//!
//! Two phases, as in ripgrep's flags: serde turns the file into these structs (rejecting
//! unknown keys with their line), then [`Config::validate`] checks every value against its
//! allowed range and names the key it refuses. Nothing downstream re-validates: a `Config`
//! that exists is a good one. Secrets never live here; credentials come from the environment.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used. Every message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file we tried.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message carries line and column).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where (line, column, key) and what toml said, with every value redacted.
        message: String,
    },
    /// A value outside the range this setting allows.
    #[error("config file {path}: `{key}` = {value} is out of range: {rule}")]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `risk.max_stake`.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        rule: String,
    },
    /// A `--param k=v` that is not of that form.
    #[error("--param {0:?}: expected key=value, e.g. --param rsi_low=25")]
    BadParam(String),
}

/// Everything a session needs to know that is not the strategy itself.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Session shape: interval length, number of windows, timing.
    #[serde(default)]
    pub session: SessionConfig,
    /// The simulated or real account.
    #[serde(default)]
    pub account: AccountConfig,
    /// Hard risk limits (DESIGN.md §5).
    #[serde(default)]
    pub risk: RiskConfig,
    /// Replay venue: quote model, fees, order minimums.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Script sandbox limits.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Strategy defaults.
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// Per-strategy parameters, keyed by the script's file stem (`rsi_ema` for
    /// `strategies/rsi_ema.rhai`); scripts read them as `ctx.params`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
    /// Live data and paper sessions: service base URLs, the session clock's speed, and the
    /// feed's network timings.
    #[serde(default)]
    pub live: LiveConfig,
}

/// `[live]`: where live data comes from and how patiently it is waited for.
///
/// Every base URL is configuration so that a session can be pointed at the loopback test
/// venue (`updown-loopback` prints this section with its own URLs) or at a mirror. Network
/// timings are **real** milliseconds: they are about sockets, so `clock_speed` does not
/// scale them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Binance spot REST base (`/api/v3/klines`, `/api/v3/time` are appended).
    pub binance_rest: String,
    /// Binance spot WebSocket base (`/stream?streams=…` is appended).
    pub binance_ws: String,
    /// Coinbase base (`/v2/prices/BTC-USD/spot` is appended); fallback spot price.
    pub coinbase: String,
    /// CoinGecko base (`/api/v3/simple/price?…` is appended); second fallback spot price.
    pub coingecko: String,
    /// Polymarket Gamma base (`/events?slug=…` is appended).
    pub gamma: String,
    /// Polymarket CLOB REST base (`/book?token_id=…` is appended).
    pub clob_rest: String,
    /// Polymarket CLOB WebSocket base (`/ws/market` is appended).
    pub clob_ws: String,
    /// Session seconds per real second. 1.0 with real exchanges; more only against the
    /// loopback venue, whose virtual clock runs that much faster.
    pub clock_speed: f64,
    /// No valid frame on the Binance stream for this long (real ms): the data is marked
    /// stale, so the risk gate refuses entries, and the stream is reconnected.
    pub stall_timeout_ms: u64,
    /// How long a decision waits (real ms) for the 1m bar that closes at its time before it
    /// goes ahead without it and lets the risk gate judge the data's age.
    pub bar_grace_ms: u64,
    /// First reconnect delay (real ms); doubles per failed attempt, with jitter.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay (real ms).
    pub reconnect_max_ms: u64,
    /// Timeout of one HTTP request or WebSocket handshake (real ms).
    pub http_timeout_ms: u64,
    /// Attempts per REST call on a network error, 429 or 5xx, with exponential backoff.
    pub http_attempts: u32,
    /// While Binance is unreachable, poll the fallback spot price this often (real ms).
    pub fallback_poll_ms: u64,
    /// A decision that cannot be made within this many session seconds after its time (the
    /// bot was not running, or fell behind) is journaled as `missed`, never traded late.
    pub max_decision_delay_secs: i64,
    /// A trade whose market Polymarket has not resolved this many session seconds after its
    /// window's end is settled from price data instead, recorded as such.
    pub resolution_timeout_secs: i64,
    /// While a trade awaits its resolution, ask Gamma at most this often (session seconds,
    /// so a faster loopback clock polls as often per window as the real one would).
    pub resolution_poll_secs: f64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            binance_rest: "https://api.binance.com".into(),
            binance_ws: "wss://stream.binance.com:9443".into(),
            coinbase: "https://api.coinbase.com".into(),
            coingecko: "https://api.coingecko.com".into(),
            gamma: "https://gamma-api.polymarket.com".into(),
            clob_rest: "https://clob.polymarket.com".into(),
            clob_ws: "wss://ws-subscriptions-clob.polymarket.com".into(),
            clock_speed: 1.0,
            stall_timeout_ms: 10_000,
            bar_grace_ms: 3_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            http_timeout_ms: 10_000,
            http_attempts: 3,
            fallback_poll_ms: 5_000,
            max_decision_delay_secs: 30,
            resolution_timeout_secs: 900,
            resolution_poll_secs: 5.0,
        }
    }
}

/// Session shape.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Window length in seconds: 300 for the 5-minute markets, 900 for the 15-minute ones.
    pub interval_secs: i64,
    /// Windows per session.
    pub intervals: u32,
    /// Seconds before the window start at which the decision is made.
    pub decision_lead_secs: i64,
    /// Candles of history a replay keeps before its first window so indicators are warm.
    pub warmup_candles: usize,
    /// Allow a new position while an earlier position's window is still running. A position
    /// whose window has ended and only awaits resolution never blocks a new one.
    pub allow_overlap: bool,
    /// Where journals, the ledger and the log go.
    pub out_dir: PathBuf,
    /// Journal lines are flushed to disk at least every this many windows (the ledger is
    /// always committed first, so a crash loses nothing: journals are rebuilt on resume).
    pub journal_flush_windows: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            interval_secs: 300,
            intervals: 18,
            decision_lead_secs: 0,
            warmup_candles: 100,
            allow_overlap: false,
            out_dir: PathBuf::from("data"),
            journal_flush_windows: 64,
        }
    }
}

/// The account a session trades.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// Starting capital in USD.
    pub starting_capital: Decimal,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            starting_capital: dec!(100),
        }
    }
}

/// Hard limits enforced by the risk gate. Scripts can read none of these and change none.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest stake per trade, USD.
    pub max_stake: Decimal,
    /// Halt (latched) when equity falls this many percent below starting capital.
    pub max_drawdown_pct: Decimal,
    /// Minutes of history the volatility breaker looks at.
    pub vol_range_minutes: u32,
    /// Skip when the high–low range over `vol_range_minutes` exceeds this % of price.
    pub max_range_pct: f64,
    /// Closes in the standard-deviation breaker.
    pub stddev_window: u32,
    /// Skip when that standard deviation exceeds this multiple of the session's baseline.
    pub max_stddev_ratio: f64,
    /// Never trade on a price older than this many seconds at decision time.
    pub max_price_age_secs: i64,
    /// Reject a price that jumps more than this % from the last accepted one.
    pub max_price_jump_pct: f64,
    /// No entry with fewer seconds than this left in the window.
    pub min_seconds_to_close: i64,
    /// No entry when the side's ask − bid is wider than this.
    pub max_spread: Decimal,
    /// No entry when the side's ask is above this price.
    pub max_entry_price: Decimal,
    /// Halt after this many consecutive script failures.
    pub max_consecutive_script_failures: u32,
    /// Halt after this many failed executions within `failed_execution_window_secs`.
    pub max_failed_executions: u32,
    /// Window for the failed-execution kill switch.
    pub failed_execution_window_secs: i64,
    /// Halt when the day's realised loss (UTC day) reaches this many USD.
    pub daily_loss_limit: Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            max_stake: dec!(25),
            max_drawdown_pct: dec!(30),
            vol_range_minutes: 5,
            max_range_pct: 3.0,
            stddev_window: 10,
            max_stddev_ratio: 2.0,
            max_price_age_secs: 90,
            max_price_jump_pct: 10.0,
            min_seconds_to_close: 30,
            max_spread: dec!(0.05),
            max_entry_price: dec!(0.65),
            max_consecutive_script_failures: 5,
            max_failed_executions: 3,
            failed_execution_window_secs: 600,
            daily_loss_limit: dec!(50),
        }
    }
}

/// How the replay venue quotes and fills when no recorded quotes exist.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// Ask for either side.
    pub ask: Decimal,
    /// Bid for either side.
    pub bid: Decimal,
    /// Polymarket fee rate in `fee = shares × rate × p × (1 − p)`.
    pub fee_rate: Decimal,
    /// Smallest order in shares.
    pub min_order_shares: Decimal,
    /// Price tick.
    pub tick_size: Decimal,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            ask: dec!(0.51),
            bid: dec!(0.49),
            fee_rate: dec!(0.072),
            min_order_shares: dec!(5),
            tick_size: dec!(0.01),
        }
    }
}

/// Sandbox limits for strategy scripts; every one has a floor and a ceiling so that a
/// config cannot turn the sandbox off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Rhai operations per call.
    pub max_operations: u64,
    /// Function call nesting.
    pub max_call_depth: usize,
    /// Expression nesting at the top level.
    pub max_expr_depth: usize,
    /// Expression nesting inside functions.
    pub max_function_expr_depth: usize,
    /// Longest string, bytes.
    pub max_string_size: usize,
    /// Longest array.
    pub max_array_size: usize,
    /// Largest map.
    pub max_map_size: usize,
    /// Modules a script may import.
    pub max_modules: usize,
    /// Wall-clock deadline per call, milliseconds, in sessions (replay, paper, live).
    pub call_timeout_ms: u64,
    /// Wall-clock safety net per call in backtests and sweeps, milliseconds. A backtest is a
    /// computation that must give the same fingerprint on any machine, so there the
    /// operation budget decides and this only stops a call that hangs in a host function;
    /// when it fires, the result is reported as machine-dependent.
    pub backtest_call_timeout_ms: u64,
    /// Largest script memory (`this`), as JSON bytes.
    pub max_memory_bytes: usize,
    /// `log` lines kept per call; more are dropped with a note.
    pub max_log_lines_per_call: usize,
}

impl SandboxConfig {
    /// The limits a backtest runs a script under: the same, except that the wall clock is
    /// only the safety net (`backtest_call_timeout_ms`, never tighter than a session's
    /// deadline), so the operation budget decides.
    pub fn for_backtest(&self) -> SandboxConfig {
        SandboxConfig {
            call_timeout_ms: self.backtest_call_timeout_ms.max(self.call_timeout_ms),
            ..self.clone()
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_operations: 500_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 16_384,
            max_array_size: 10_000,
            max_map_size: 1_000,
            max_modules: 16,
            call_timeout_ms: 250,
            backtest_call_timeout_ms: 5_000,
            max_memory_bytes: 65_536,
            max_log_lines_per_call: 20,
        }
    }
}

/// Defaults for scripts that leave a choice to the core.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// Stake in USD when the script has no `size` function.
    pub default_stake: Decimal,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig {
            default_stake: dec!(5),
        }
    }
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parse and validate config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Check every value against its allowed range, naming the first key that fails.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let mut v = Validator { path, error: None };
        let s = &self.session;
        v.int("session.interval_secs", s.interval_secs, 60, 86_400);
        if s.interval_secs % 60 != 0 {
            v.fail(
                "session.interval_secs",
                s.interval_secs,
                "must be a whole number of minutes (300 or 900 for the real markets)",
            );
        }
        v.int("session.intervals", s.intervals, 1, 1_000_000);
        v.int("session.decision_lead_secs", s.decision_lead_secs, 0, 240);
        v.int("session.warmup_candles", s.warmup_candles, 0, 100_000);
        v.int(
            "session.journal_flush_windows",
            s.journal_flush_windows,
            1,
            100_000,
        );
        v.dec(
            "account.starting_capital",
            self.account.starting_capital,
            dec!(1),
            dec!(100_000_000),
        );
        let r = &self.risk;
        v.dec("risk.max_stake", r.max_stake, dec!(0.01), dec!(1_000_000));
        v.dec(
            "risk.max_drawdown_pct",
            r.max_drawdown_pct,
            dec!(1),
            dec!(100),
        );
        v.int("risk.vol_range_minutes", r.vol_range_minutes, 1, 1440);
        v.float("risk.max_range_pct", r.max_range_pct, 0.01, 100.0);
        v.int("risk.stddev_window", r.stddev_window, 2, 1440);
        v.float("risk.max_stddev_ratio", r.max_stddev_ratio, 0.1, 1000.0);
        v.int("risk.max_price_age_secs", r.max_price_age_secs, 1, 3600);
        v.float("risk.max_price_jump_pct", r.max_price_jump_pct, 0.1, 100.0);
        v.int(
            "risk.min_seconds_to_close",
            r.min_seconds_to_close,
            0,
            86_400,
        );
        v.dec("risk.max_spread", r.max_spread, dec!(0), dec!(1));
        v.dec(
            "risk.max_entry_price",
            r.max_entry_price,
            dec!(0.01),
            dec!(0.99),
        );
        v.int(
            "risk.max_consecutive_script_failures",
            r.max_consecutive_script_failures,
            1,
            1000,
        );
        v.int(
            "risk.max_failed_executions",
            r.max_failed_executions,
            1,
            1000,
        );
        v.int(
            "risk.failed_execution_window_secs",
            r.failed_execution_window_secs,
            1,
            86_400,
        );
        v.dec(
            "risk.daily_loss_limit",
            r.daily_loss_limit,
            dec!(0.01),
            dec!(100_000_000),
        );
        let q = &self.replay;
        v.dec("replay.ask", q.ask, dec!(0.01), dec!(0.99));
        v.dec("replay.bid", q.bid, dec!(0.00), dec!(0.99));
        if q.bid > q.ask {
            v.fail("replay.bid", q.bid, "must not exceed replay.ask");
        }
        v.dec("replay.fee_rate", q.fee_rate, dec!(0), dec!(1));
        v.dec(
            "replay.min_order_shares",
            q.min_order_shares,
            dec!(0),
            dec!(1_000_000),
        );
        v.dec("replay.tick_size", q.tick_size, dec!(0.0001), dec!(0.1));
        let b = &self.sandbox;
        v.int(
            "sandbox.max_operations",
            b.max_operations,
            1_000,
            100_000_000,
        );
        // Each Rhai call level costs tens of KB of native stack (more in debug builds); 64 keeps
        // the deepest legal script well inside the session thread's stack.
        v.int("sandbox.max_call_depth", b.max_call_depth, 4, 64);
        v.int("sandbox.max_expr_depth", b.max_expr_depth, 8, 1024);
        v.int(
            "sandbox.max_function_expr_depth",
            b.max_function_expr_depth,
            8,
            1024,
        );
        v.int(
            "sandbox.max_string_size",
            b.max_string_size,
            256,
            10_000_000,
        );
        v.int("sandbox.max_array_size", b.max_array_size, 64, 10_000_000);
        v.int("sandbox.max_map_size", b.max_map_size, 16, 1_000_000);
        v.int("sandbox.max_modules", b.max_modules, 0, 256);
        v.int("sandbox.call_timeout_ms", b.call_timeout_ms, 1, 10_000);
        v.int(
            "sandbox.backtest_call_timeout_ms",
            b.backtest_call_timeout_ms,
            1,
            600_000,
        );
        v.int(
            "sandbox.max_memory_bytes",
            b.max_memory_bytes,
            256,
            16_777_216,
        );
        v.int(
            "sandbox.max_log_lines_per_call",
            b.max_log_lines_per_call,
            0,
            10_000,
        );
        v.dec(
            "strategy.default_stake",
            self.strategy.default_stake,
            dec!(0),
            dec!(1_000_000),
        );
        let l = &self.live;
        for (key, url) in [
            ("live.binance_rest", &l.binance_rest),
            ("live.coinbase", &l.coinbase),
            ("live.coingecko", &l.coingecko),
            ("live.gamma", &l.gamma),
            ("live.clob_rest", &l.clob_rest),
        ] {
            v.url(key, url, &["http://", "https://"]);
        }
        for (key, url) in [
            ("live.binance_ws", &l.binance_ws),
            ("live.clob_ws", &l.clob_ws),
        ] {
            v.url(key, url, &["ws://", "wss://"]);
        }
        v.float("live.clock_speed", l.clock_speed, 0.01, 10_000.0);
        v.int("live.stall_timeout_ms", l.stall_timeout_ms, 50, 600_000);
        v.int("live.bar_grace_ms", l.bar_grace_ms, 0, 60_000);
        v.int("live.reconnect_min_ms", l.reconnect_min_ms, 10, 60_000);
        v.int("live.reconnect_max_ms", l.reconnect_max_ms, 10, 600_000);
        if l.reconnect_max_ms < l.reconnect_min_ms {
            v.fail(
                "live.reconnect_max_ms",
                l.reconnect_max_ms,
                "must not be below live.reconnect_min_ms",
            );
        }
        v.int("live.http_timeout_ms", l.http_timeout_ms, 50, 120_000);
        v.int("live.http_attempts", l.http_attempts, 1, 10);
        v.int("live.fallback_poll_ms", l.fallback_poll_ms, 50, 600_000);
        v.int(
            "live.max_decision_delay_secs",
            l.max_decision_delay_secs,
            0,
            s.interval_secs,
        );
        v.int(
            "live.resolution_timeout_secs",
            l.resolution_timeout_secs,
            0,
            86_400,
        );
        v.float(
            "live.resolution_poll_secs",
            l.resolution_poll_secs,
            0.1,
            600.0,
        );
        match v.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A short, stable hash of the settings that change results, for journals and run keys.
    /// `[live]` (where data comes from and network timings) is left out: pointing a session
    /// at a mirror changes no decision rule.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let rules = Config {
            live: LiveConfig::default(),
            ..self.clone()
        };
        // The backtest safety net decides no rule (the operation budget does), so it is left
        // out too; that also keeps the hash, and so the run keys sessions resume by, the same
        // as before the setting existed.
        let text = format!("{rules:?}").replace(
            &format!(
                ", backtest_call_timeout_ms: {}",
                self.sandbox.backtest_call_timeout_ms
            ),
            "",
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// Parse `--param k=v` overrides: integers, floats and booleans become numbers and booleans,
/// anything else a string.
pub fn parse_param_overrides(raw: &[String]) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::new();
    for item in raw {
        let Some((k, v)) = item.split_once('=') else {
            return Err(ConfigError::BadParam(item.clone()));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(ConfigError::BadParam(item.clone()));
        }
        let v = v.trim();
        let value = if let Ok(i) = v.parse::<i64>() {
            toml::Value::Integer(i)
        } else if let Ok(f) = v.parse::<f64>() {
            toml::Value::Float(f)
        } else if let Ok(b) = v.parse::<bool>() {
            toml::Value::Boolean(b)
        } else {
            toml::Value::String(v.to_string())
        };
        table.insert(k.to_string(), value);
    }
    Ok(table)
}

/// A config error must never print what was written as a value: the file sits beside
/// `[live]`, and a private key pasted into the wrong place (or a URL with a password in it)
/// would end up on screen, in a terminal log or in a bug report. So toml's message is
/// rebuilt from its parts — where the error is (line, column, and the key written on that
/// line) and what is wrong — and never from the snippet of the offending line it normally
/// quotes; the values serde names ("invalid type: string \"0x…\"") are replaced by their
/// kind.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let what = redact_values(e.message().trim_end());
    let Some(span) = e.span() else {
        return what;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = key_on_line(text, line_start).map_or(String::new(), |k| format!(" (`{k}`)"));
    format!("line {line}, column {column}{key}: {what}")
}

/// The dotted key assigned on the line starting at `line_start`, with its `[table]`, when
/// that line is a plain `key = value`; names only, never the value.
fn key_on_line(text: &str, line_start: usize) -> Option<String> {
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !plain(key) {
        return None;
    }
    let table = text
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim())
        .filter(|t| plain(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// Replace the values serde's messages quote (`string "…"`, `integer `5``, …) by their
/// kind, and any over-long quoted name (a secret pasted as a key) by its length.
fn redact_values(message: &str) -> String {
    const KINDS: [(&str, &str); 7] = [
        ("string \"", "a string"),
        ("integer `", "an integer"),
        ("floating point `", "a float"),
        ("boolean `", "a boolean"),
        ("character `", "a character"),
        ("byte array", "a byte array"),
        ("unit value", "a unit value"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    'outer: while !rest.is_empty() {
        for (prefix, kind) in KINDS {
            if let Some(after) = rest.strip_prefix(prefix) {
                let close = prefix.chars().last().filter(|c| matches!(c, '"' | '`'));
                out.push_str(kind);
                rest = match close {
                    Some(q) => skip_quoted(after, q),
                    None => after,
                };
                continue 'outer;
            }
        }
        if let Some(after) = rest.strip_prefix('`') {
            // A quoted name (an unknown field, an expected one): keep it unless it is too
            // long to be one of ours.
            let end = after.find('`').unwrap_or(after.len());
            let name = &after[..end];
            if name.chars().count() > 40 {
                out.push_str(&format!("`<{} characters, hidden>`", name.chars().count()));
            } else {
                out.push('`');
                out.push_str(name);
                out.push('`');
            }
            rest = after.get(end + 1..).unwrap_or("");
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// The text after a value quoted with `q` that starts `s` (serde escapes quotes inside with
/// a backslash).
fn skip_quoted(s: &str, q: char) -> &str {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == q && !escaped => return &s[i + c.len_utf8()..],
            _ => escaped = false,
        }
    }
    ""
}

/// A URL value as an error may show it: only when it looks like a URL without a password
/// in it, since a key pasted into a URL field must not be echoed.
fn shown_url(value: &str) -> String {
    let looks_like_url = value.contains("://") && !value.contains('@') && value.len() <= 200;
    if looks_like_url {
        format!("{value:?}")
    } else {
        format!("<{} characters, hidden>", value.chars().count())
    }
}

/// Collects the first range violation, so `validate` reads as a list of rules.
struct Validator<'a> {
    path: &'a Path,
    error: Option<ConfigError>,
}

impl Validator<'_> {
    fn fail(&mut self, key: &str, value: impl std::fmt::Display, rule: &str) {
        if self.error.is_none() {
            self.error = Some(ConfigError::OutOfRange {
                path: self.path.to_path_buf(),
                key: key.to_string(),
                value: value.to_string(),
                rule: rule.to_string(),
            });
        }
    }

    fn int<T: PartialOrd + std::fmt::Display + Copy>(&mut self, key: &str, value: T, lo: T, hi: T) {
        if value < lo || value > hi {
            self.fail(key, value, &format!("must be between {lo} and {hi}"));
        }
    }

    fn dec(&mut self, key: &str, value: Decimal, lo: Decimal, hi: Decimal) {
        if value < lo || value > hi {
            self.fail(key, value, &format!("must be between {lo} and {hi}"));
        }
    }

    fn url(&mut self, key: &str, value: &str, schemes: &[&str]) {
        let rest = schemes.iter().find_map(|s| value.strip_prefix(s));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        if host.is_none_or(str::is_empty) || value.chars().any(char::is_whitespace) {
            self.fail(
                key,
                shown_url(value),
                &format!("must be a URL starting with {}", schemes.join(" or ")),
            );
        }
    }

    fn float(&mut self, key: &str, value: f64, lo: f64, hi: f64) {
        if !value.is_finite() || value < lo || value > hi {
            self.fail(key, value, &format!("must be between {lo} and {hi}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn shipped_config_parses_and_matches_defaults() {
        let text = include_str!("../../config.toml");
        let c = parse(text).map_err(|e| e.to_string()).unwrap();
        assert_eq!(c.session.intervals, 18);
        assert_eq!(c.risk.max_stake, dec!(25));
        assert_eq!(c.replay.fee_rate, dec!(0.072));
        assert_eq!(c.account.starting_capital, dec!(100));
        assert_eq!(c.live, LiveConfig::default());
    }

    #[test]
    fn a_secret_in_the_config_never_appears_in_its_error() {
        let key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        for text in [
            // A value of the wrong type.
            format!("[live]\nclock_speed = \"{key}\"\n"),
            // A key pasted where a key name goes.
            format!("[live]\n{key} = 1\n"),
            // A key under [live], where none belongs.
            format!("[live]\nprivate_key = \"{key}\"\n"),
            // Broken TOML on the line holding the key.
            format!("[live]\nprivate_key = \"{key}\n"),
            format!("[live]\nprivate_key = {key}\n"),
            // A key pasted into a URL field.
            format!("[live]\ngamma = \"{key}\"\n"),
            format!("[live]\ngamma = \"ftp://user:{key}@example.com\"\n"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(!err.contains(&key[2..20]), "leaks the key: {err}");
            assert!(err.contains("test.toml"), "names the file: {err}");
        }
        // Still says where and what.
        let err = parse(&format!("[live]\nclock_speed = \"{key}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("live.clock_speed"), "{err}");
        assert!(err.contains("a string"), "{err}");
        let err = parse(&format!("[live]\nprivate_key = \"{key}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("private_key"), "names the unknown key: {err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name_and_line() {
        let err = parse("[risk]\nmax_stake = 10\nmax_stak = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_stak"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let err = parse("[risk]\nmax_entry_price = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("risk.max_entry_price"), "{err}");
        let err = parse("[sandbox]\nmax_operations = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sandbox.max_operations"), "{err}");
        let err = parse("[session]\ninterval_secs = 330\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("session.interval_secs"), "{err}");
    }

    #[test]
    fn the_backtest_safety_net_is_a_wall_clock_that_decides_no_rule() {
        let net = parse("[sandbox]\nbacktest_call_timeout_ms = 60000\n").unwrap();
        assert_eq!(net.fingerprint(), Config::default().fingerprint());
        assert_eq!(net.sandbox.for_backtest().call_timeout_ms, 60_000);
        let deadline = parse("[sandbox]\ncall_timeout_ms = 9000\n").unwrap();
        assert_ne!(deadline.fingerprint(), Config::default().fingerprint());
        // Never tighter than a session's deadline.
        assert_eq!(deadline.sandbox.for_backtest().call_timeout_ms, 9_000);
        assert!(parse("[sandbox]\nbacktest_call_timeout_ms = 0\n").is_err());
    }

    #[test]
    fn live_section_checks_urls_and_ranges_and_stays_out_of_the_fingerprint() {
        let c = parse("[live]\nbinance_rest = \"http://127.0.0.1:9/binance\"\nclock_speed = 300\n")
            .unwrap();
        assert_eq!(c.live.binance_rest, "http://127.0.0.1:9/binance");
        assert_eq!(c.live.clock_speed, 300.0);
        assert_eq!(c.fingerprint(), Config::default().fingerprint());
        for (text, key) in [
            ("[live]\nbinance_ws = \"http://x\"\n", "live.binance_ws"),
            ("[live]\ngamma = \"ftp://x\"\n", "live.gamma"),
            ("[live]\nclob_rest = \"https://\"\n", "live.clob_rest"),
            ("[live]\nclock_speed = 0\n", "live.clock_speed"),
            ("[live]\nhttp_attempts = 0\n", "live.http_attempts"),
            (
                "[live]\nreconnect_min_ms = 500\nreconnect_max_ms = 100\n",
                "live.reconnect_max_ms",
            ),
            (
                "[live]\nmax_decision_delay_secs = 301\n",
                "live.max_decision_delay_secs",
            ),
            (
                "[live]\nresolution_timeout_secs = -1\n",
                "live.resolution_timeout_secs",
            ),
            (
                "[live]\nresolution_poll_secs = nan\n",
                "live.resolution_poll_secs",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn param_overrides_keep_their_types() {
        let t =
            parse_param_overrides(&["a=25".into(), "b=0.5".into(), "c=true".into(), "d=x".into()])
                .unwrap();
        assert_eq!(t["a"], toml::Value::Integer(25));
        assert_eq!(t["b"], toml::Value::Float(0.5));
        assert_eq!(t["c"], toml::Value::Boolean(true));
        assert_eq!(t["d"], toml::Value::String("x".into()));
        assert!(parse_param_overrides(&["novalue".into()]).is_err());
    }
}
