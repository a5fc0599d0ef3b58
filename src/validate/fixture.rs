//! The fixture format of `updown validate`: one TOML file per situation a strategy must
//! answer in a known way, readable (and writable) by a trader.
//!
//! This module owns reading a fixture file and turning it into a [`Fixture`]: the candles a
//! script sees, the decision time and window, the venue's quote, the account, parameters,
//! optional script memory, and what the answer must be. Parsing is strict: unknown keys,
//! wrong types and impossible values are refused with the file, the key and the line and
//! column. Running fixtures is [`super`]'s job.
//!
//! ```toml
//! description = "RSI exactly 30 is oversold: UP"
//! [candles]                    # exactly one of: closes / rows / csv
//! closes = [60000.0, 60001.0]  # open = high = low = close, volume 1, one per minute
//! # start = 1761717600         # (closes only) open time of the first candle
//! # rows = [[1761717600, 60000.0, 60002.0, 59999.0, 60001.0, 3.2], ...]
//! #                             # [open_time, open, high, low, close, volume]
//! # csv = "../../../data/x.csv" # recorded candles, relative to this file, with
//! #   from = "2025-10-29T06:00:00Z" (first candle's open time) or index = 120 (first row)
//! #   plus count = 200; or at = "2025-10-29T09:20:00Z" (the decision time) with an
//! #   optional count (default: every candle of the file up to `at`, as a replay sees it)
//! [market]                     # optional, on top of the replay quote model in the config
//! up_ask = 0.51                # up_bid, up_ask, down_bid, down_ask, imbalance, up_depth,
//!                              # down_depth, fee_rate, tick_size, min_order_size
//! [account]                    # optional, on top of a fresh account of starting_capital
//! win_streak = 2               # equity, cash, starting_capital, peak_equity, win_streak,
//!                              # loss_streak, trades, wins, losses, last_result
//! [params]                     # optional, on top of [params.<stem>] in the config
//! rsi_low = 30
//! [memory]                     # optional: the script's `this` before the call
//! [expect]
//! side = "up"                  # up | down | skip (required)
//! reason_contains = "oversold" # optional
//! confidence = 0.6             # optional, ± 1e-9
//! prob = 0.6                   # optional, ± 1e-9
//! stake = 11.25                # optional: what the script asks for, ± 1e-9
//! approved = 11.25             # optional: what the risk gate approves (exact decimal)
//! # refused = "entry_price_too_high"  # or: the gate's refusal code
//! # repeatable = false         # the answer may change on a second call (script memory)
//! ```
//!
//! Time: every candle given is closed and visible; the decision time is the close of the
//! last candle and must be a decision time of the session (a window start minus
//! `session.decision_lead_secs`). Without `start`, `closes` are placed so that it is.

use crate::config::Config;
use crate::domain::{Side, Window};
use crate::feed::recorded::LoadError;
use crate::feed::{CANDLE_SECS, Candle, load_csv};
use crate::ledger::Account;
use crate::script::MarketView;
use crate::venue::{Quote, ReplayVenue, Venue};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use toml::Spanned;

/// Where `closes` without a `start` end: the first window start at or after
/// 2025-10-29T08:00:00Z (1761724800 is a multiple of every interval dividing a day).
pub const DEFAULT_WINDOW_START: i64 = 1_761_724_800;

/// Tolerance for the float expectations (`stake`, `confidence`, `prob`).
pub const FLOAT_TOLERANCE: f64 = 1e-9;

/// Why a fixture file cannot be used. Every message names the file; the ones about a value
/// also name the key and its line and column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The file could not be read.
    #[error("{}: cannot read fixture: {source}", path.display())]
    Read {
        /// The fixture.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type; toml's message carries line and column.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The fixture.
        path: PathBuf,
        /// toml's message, with the offending line.
        message: String,
    },
    /// A value that parses but cannot be right.
    #[error("{}:{line}:{column}: `{key}`: {message}", path.display())]
    Invalid {
        /// The fixture.
        path: PathBuf,
        /// Dotted key, e.g. `candles.count`.
        key: String,
        /// 1-based line of the value.
        line: usize,
        /// 1-based column of the value.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Values that contradict each other or the configuration.
    #[error("{}: `{key}`: {message}", path.display())]
    Conflict {
        /// The fixture.
        path: PathBuf,
        /// Dotted key, e.g. `market.up_bid`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The recorded CSV named by `candles.csv` could not be loaded.
    #[error("{}: `candles.csv`: {source}", path.display())]
    Csv {
        /// The fixture.
        path: PathBuf,
        /// The loader's error, with the CSV file, line and column.
        source: LoadError,
    },
}

/// What the strategy must answer for a fixture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expect {
    /// The side; `None` is SKIP.
    #[serde(serialize_with = "ser_side")]
    pub side: Option<Side>,
    /// A piece of text the decision's reason must contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_contains: Option<String>,
    /// The decision's confidence, within [`FLOAT_TOLERANCE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The decision's `prob`, within [`FLOAT_TOLERANCE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prob: Option<f64>,
    /// The stake the script asks for (its `size`, or `strategy.default_stake`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stake: Option<f64>,
    /// The stake the risk gate approves, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<Decimal>,
    /// The risk gate's refusal code, e.g. `entry_price_too_high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Whether a second call on the same instance must give the same answer (default
    /// true); `false` for rules that depend on the script's memory on purpose.
    pub repeatable: bool,
}

fn ser_side<S: serde::Serializer>(side: &Option<Side>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(side.map_or("skip", Side::as_str))
}

/// One fixture, parsed and checked: the situation and the expected answer.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The file.
    pub path: PathBuf,
    /// The file stem, used as the fixture's name in reports.
    pub name: String,
    /// What the fixture pins, in the trader's words.
    pub description: String,
    /// Closed 1m candles visible at the decision, oldest first.
    pub candles: Vec<Candle>,
    /// Decision time, Unix seconds: the close of the last candle.
    pub now: i64,
    /// The window decided (index 0).
    pub window: Window,
    /// The venue's quote: the replay quote model with the fixture's `[market]` on top.
    pub quote: Quote,
    /// Order-book imbalance shown to the script.
    pub imbalance: f64,
    /// The account: a fresh one with the fixture's `[account]` on top.
    pub account: Account,
    /// `[params]`: overrides on top of `[params.<stem>]` from the config.
    pub params: toml::Table,
    /// `[memory]` as JSON: the script's `this` before the call.
    pub memory: Option<String>,
    /// The expected answer.
    pub expect: Expect,
}

impl Fixture {
    /// Read and check the fixture at `path`; `csv` caches recorded files between fixtures.
    pub fn load(path: &Path, config: &Config, csv: &mut CsvCache) -> Result<Fixture, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Fixture::parse(path, &text, config, csv)
    }

    /// Parse and check fixture text; `path` names it in messages and roots `candles.csv`.
    pub fn parse(
        path: &Path,
        text: &str,
        config: &Config,
        csv: &mut CsvCache,
    ) -> Result<Fixture, FixtureError> {
        let raw: RawFixture = toml::from_str(text).map_err(|e| FixtureError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let at = Locator { path, text };
        let candles = build_candles(&at, &raw.candles, config, csv)?;
        let last = candles[candles.len() - 1];
        let now = last.close_time();
        let lead = config.session.decision_lead_secs;
        let interval = config.session.interval_secs;
        if (now + lead).rem_euclid(interval) != 0 {
            let next = Window::first_start_at_or_after(now + lead, interval) - lead;
            let (key, span) = match &raw.candles.get_ref().start {
                Some(s) => ("candles.start", s.span()),
                None => ("candles", raw.candles.span()),
            };
            return Err(at.invalid(
                key,
                span,
                format!(
                    "the last candle closes at {} ({now}), which is not a decision time \
                     (a window start every {interval} s, minus session.decision_lead_secs = {lead}); \
                     the next one is {} ({next}): add or shift candles so the last one closes there",
                    iso(now),
                    iso(next)
                ),
            ));
        }
        let window = Window::new(now + lead, interval, 0);
        let (quote, imbalance) =
            build_market(&at, raw.market.unwrap_or_default(), config, &window)?;
        let account = build_account(&at, raw.account.unwrap_or_default(), config)?;
        let memory =
            match raw.memory {
                None => None,
                Some(table) => Some(serde_json::to_string(&table).map_err(|e| {
                    at.conflict("memory", format!("cannot be turned into JSON: {e}"))
                })?),
            };
        let expect = build_expect(&at, raw.expect)?;
        Ok(Fixture {
            path: path.to_path_buf(),
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            description: raw.description.unwrap_or_default(),
            candles,
            now,
            window,
            quote,
            imbalance,
            account,
            params: raw.params.unwrap_or_default(),
            memory,
            expect,
        })
    }

    /// The market as the script sees it, converted from the quote as the session does
    /// (`up_depth`/`down_depth` are the ask depths; imbalance as given or from the Up book).
    pub fn market_view(&self) -> MarketView {
        // The fixture states the imbalance outright instead of a book to derive it from.
        MarketView {
            imbalance: self.imbalance,
            ..crate::session::market_view(&self.quote)
        }
    }
}

/// Recorded CSV files loaded so far, by canonical path, so many fixtures over one file
/// read it once.
#[derive(Debug, Default)]
pub struct CsvCache(HashMap<PathBuf, Rc<Vec<Candle>>>);

impl CsvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&mut self, path: &Path) -> Result<Rc<Vec<Candle>>, LoadError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(c) = self.0.get(&key) {
            return Ok(c.clone());
        }
        let candles = Rc::new(load_csv(path)?.candles);
        self.0.insert(key, candles.clone());
        Ok(candles)
    }
}

// ---------------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixture {
    description: Option<String>,
    candles: Spanned<RawCandles>,
    market: Option<RawMarket>,
    account: Option<RawAccount>,
    params: Option<toml::Table>,
    memory: Option<toml::Table>,
    expect: RawExpect,
}

type Row = (i64, f64, f64, f64, f64, f64);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCandles {
    closes: Option<Spanned<Vec<f64>>>,
    rows: Option<Spanned<Vec<Row>>>,
    csv: Option<Spanned<String>>,
    start: Option<Spanned<i64>>,
    from: Option<Spanned<toml::Value>>,
    index: Option<Spanned<i64>>,
    at: Option<Spanned<toml::Value>>,
    count: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarket {
    up_bid: Option<Spanned<Decimal>>,
    up_ask: Option<Spanned<Decimal>>,
    down_bid: Option<Spanned<Decimal>>,
    down_ask: Option<Spanned<Decimal>>,
    imbalance: Option<Spanned<f64>>,
    up_depth: Option<Spanned<Decimal>>,
    down_depth: Option<Spanned<Decimal>>,
    fee_rate: Option<Spanned<Decimal>>,
    tick_size: Option<Spanned<Decimal>>,
    min_order_size: Option<Spanned<Decimal>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    equity: Option<Spanned<Decimal>>,
    cash: Option<Spanned<Decimal>>,
    starting_capital: Option<Spanned<Decimal>>,
    peak_equity: Option<Spanned<Decimal>>,
    win_streak: Option<u32>,
    loss_streak: Option<Spanned<u32>>,
    trades: Option<Spanned<u32>>,
    wins: Option<u32>,
    losses: Option<u32>,
    last_result: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSide {
    Up,
    Down,
    Skip,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    side: Spanned<RawSide>,
    reason_contains: Option<String>,
    confidence: Option<Spanned<f64>>,
    prob: Option<Spanned<f64>>,
    stake: Option<Spanned<f64>>,
    approved: Option<Spanned<Decimal>>,
    refused: Option<Spanned<String>>,
    repeatable: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Checking and building
// ---------------------------------------------------------------------------------------

/// Turns byte spans into error messages with line and column.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn conflict(&self, key: &str, message: String) -> FixtureError {
        FixtureError::Conflict {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message,
        }
    }

    fn invalid(&self, key: &str, span: Range<usize>, message: String) -> FixtureError {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        FixtureError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            line,
            column,
            message,
        }
    }
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn build_candles(
    at: &Locator,
    raw: &Spanned<RawCandles>,
    config: &Config,
    csv: &mut CsvCache,
) -> Result<Vec<Candle>, FixtureError> {
    let c = raw.get_ref();
    let sources = [c.closes.is_some(), c.rows.is_some(), c.csv.is_some()];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(at.invalid(
            "candles",
            raw.span(),
            "give exactly one of `closes`, `rows` or `csv`".into(),
        ));
    }
    if c.csv.is_none() {
        for (key, span) in [
            ("from", c.from.as_ref().map(Spanned::span)),
            ("index", c.index.as_ref().map(Spanned::span)),
            ("at", c.at.as_ref().map(Spanned::span)),
            ("count", c.count.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                return Err(at.invalid(
                    &format!("candles.{key}"),
                    span,
                    "only applies to `csv` candles".into(),
                ));
            }
        }
    }
    let candles = if let Some(closes) = &c.closes {
        closes_to_candles(at, closes, c.start.as_ref(), config)?
    } else if let Some(rows) = &c.rows {
        if let Some(start) = &c.start {
            return Err(at.invalid(
                "candles.start",
                start.span(),
                "`rows` carry their own open times; `start` only applies to `closes`".into(),
            ));
        }
        rows_to_candles(at, rows)?
    } else if let Some(file) = &c.csv {
        if let Some(start) = &c.start {
            return Err(at.invalid(
                "candles.start",
                start.span(),
                "for `csv` candles use `from`, `index` or `at`".into(),
            ));
        }
        csv_slice(at, raw, file, csv)?
    } else {
        Vec::new()
    };
    if candles.is_empty() {
        return Err(at.invalid(
            "candles",
            raw.span(),
            "no candles: a decision needs at least one".into(),
        ));
    }
    Ok(candles)
}

fn closes_to_candles(
    at: &Locator,
    closes: &Spanned<Vec<f64>>,
    start: Option<&Spanned<i64>>,
    config: &Config,
) -> Result<Vec<Candle>, FixtureError> {
    let n = closes.get_ref().len() as i64;
    if let Some((i, x)) = closes
        .get_ref()
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0))
    {
        return Err(at.invalid(
            "candles.closes",
            closes.span(),
            format!("close #{i} is {x}: prices must be finite and positive"),
        ));
    }
    let first = match start {
        Some(s) => *s.get_ref(),
        None => {
            let window =
                Window::first_start_at_or_after(DEFAULT_WINDOW_START, config.session.interval_secs);
            window - config.session.decision_lead_secs - n * CANDLE_SECS
        }
    };
    Ok(closes
        .get_ref()
        .iter()
        .enumerate()
        .map(|(i, &close)| Candle {
            open_time: first + i as i64 * CANDLE_SECS,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        })
        .collect())
}

fn rows_to_candles(at: &Locator, rows: &Spanned<Vec<Row>>) -> Result<Vec<Candle>, FixtureError> {
    let mut out: Vec<Candle> = Vec::with_capacity(rows.get_ref().len());
    for (i, &(open_time, open, high, low, close, volume)) in rows.get_ref().iter().enumerate() {
        let bad = |why: String| {
            at.invalid(
                "candles.rows",
                rows.span(),
                format!("row #{i} [{open_time}, {open}, {high}, {low}, {close}, {volume}]: {why}"),
            )
        };
        if ![open, high, low, close]
            .iter()
            .all(|x| x.is_finite() && *x > 0.0)
        {
            return Err(bad("prices must be finite and positive".into()));
        }
        if !(volume.is_finite() && volume >= 0.0) {
            return Err(bad("volume must be finite and ≥ 0".into()));
        }
        if high < open.max(close) || low > open.min(close) {
            return Err(bad(
                "high must be ≥ open and close, low ≤ open and close".into()
            ));
        }
        if let Some(prev) = out.last()
            && open_time <= prev.open_time
        {
            return Err(bad(format!(
                "open times must increase (the row before opens at {})",
                prev.open_time
            )));
        }
        out.push(Candle {
            open_time,
            open,
            high,
            low,
            close,
            volume,
        });
    }
    Ok(out)
}

/// A time given as Unix seconds, an RFC 3339 string, or a TOML date-time.
fn time_value(at: &Locator, key: &str, v: &Spanned<toml::Value>) -> Result<i64, FixtureError> {
    let text = match v.get_ref() {
        toml::Value::Integer(i) => return Ok(*i),
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            return Err(at.invalid(
                key,
                v.span(),
                format!(
                    "expected a time like \"2025-10-29T06:00:00Z\" or Unix seconds, got a {}",
                    other.type_str()
                ),
            ));
        }
    };
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|d| d.timestamp())
        .map_err(|e| {
            at.invalid(
                key,
                v.span(),
                format!("{text:?} is not an RFC 3339 time such as \"2025-10-29T06:00:00Z\": {e}"),
            )
        })
}

fn csv_slice(
    at: &Locator,
    raw: &Spanned<RawCandles>,
    file: &Spanned<String>,
    cache: &mut CsvCache,
) -> Result<Vec<Candle>, FixtureError> {
    let c = raw.get_ref();
    let base = at.path.parent().unwrap_or(Path::new("."));
    let csv_path = base.join(file.get_ref());
    if !csv_path.is_file() {
        return Err(at.invalid(
            "candles.csv",
            file.span(),
            format!(
                "no such file {} (the path is relative to the fixture file)",
                csv_path.display()
            ),
        ));
    }
    let all = cache.get(&csv_path).map_err(|source| FixtureError::Csv {
        path: at.path.to_path_buf(),
        source,
    })?;
    let count = match &c.count {
        None => None,
        Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref() as usize),
        Some(n) => {
            return Err(at.invalid(
                "candles.count",
                n.span(),
                format!("must be at least 1, got {}", n.get_ref()),
            ));
        }
    };
    let anchors = [c.from.is_some(), c.index.is_some(), c.at.is_some()];
    if anchors.iter().filter(|a| **a).count() != 1 {
        return Err(at.invalid(
            "candles",
            raw.span(),
            "with `csv`, give exactly one of `from` (first candle's open time), `index` (first \
             row) or `at` (decision time)"
                .into(),
        ));
    }
    let need_count = |key: &str, span: Range<usize>| {
        count.ok_or_else(|| {
            at.invalid(
                key,
                span,
                "give `count` too: how many candles to take from there".into(),
            )
        })
    };
    let (first, n) = if let Some(from) = &c.from {
        let t = time_value(at, "candles.from", from)?;
        let first = all.partition_point(|k| k.open_time < t);
        if all.get(first).is_none_or(|k| k.open_time != t) {
            return Err(at.invalid(
                "candles.from",
                from.span(),
                format!(
                    "no candle opens at {} ({t}) in {}",
                    iso(t),
                    csv_path.display()
                ),
            ));
        }
        (first, need_count("candles.from", from.span())?)
    } else if let Some(index) = &c.index {
        let i = usize::try_from(*index.get_ref())
            .ok()
            .filter(|i| *i < all.len())
            .ok_or_else(|| {
                at.invalid(
                    "candles.index",
                    index.span(),
                    format!(
                        "must be between 0 and {} (rows of candles in {})",
                        all.len().saturating_sub(1),
                        csv_path.display()
                    ),
                )
            })?;
        (i, need_count("candles.index", index.span())?)
    } else if let Some(when) = &c.at {
        let t = time_value(at, "candles.at", when)?;
        let end = all.partition_point(|k| k.close_time() <= t);
        if end == 0 || all[end - 1].close_time() != t {
            return Err(at.invalid(
                "candles.at",
                when.span(),
                format!(
                    "no candle closes at {} ({t}) in {}",
                    iso(t),
                    csv_path.display()
                ),
            ));
        }
        let n = count.unwrap_or(end);
        if n > end {
            let span = c.count.as_ref().map_or(when.span(), Spanned::span);
            return Err(at.invalid(
                "candles.count",
                span,
                format!("only {end} candles close at or before {}", iso(t)),
            ));
        }
        (end - n, n)
    } else {
        (0, 0)
    };
    if first + n > all.len() {
        let span = c.count.as_ref().map_or(raw.span(), Spanned::span);
        return Err(at.invalid(
            "candles.count",
            span,
            format!(
                "{n} candles from row {first} run past the end of {} ({} candles)",
                csv_path.display(),
                all.len()
            ),
        ));
    }
    Ok(all[first..first + n].to_vec())
}

fn build_market(
    at: &Locator,
    raw: RawMarket,
    config: &Config,
    window: &Window,
) -> Result<(Quote, f64), FixtureError> {
    let mut venue = ReplayVenue::new(&config.replay);
    let mut quote = venue.quote(window).map_err(|e| {
        at.conflict(
            "market",
            format!("the replay quote model gave no quote: {e}"),
        )
    })?;
    // Where to point if a book turns out crossed: the bid given, else the ask given.
    let spans = [
        (
            "up",
            raw.up_bid
                .as_ref()
                .or(raw.up_ask.as_ref())
                .map(Spanned::span),
        ),
        (
            "down",
            raw.down_bid
                .as_ref()
                .or(raw.down_ask.as_ref())
                .map(Spanned::span),
        ),
    ];
    let price = |key: &str, v: Option<Spanned<Decimal>>, into: &mut Decimal| {
        if let Some(v) = v {
            let x = *v.get_ref();
            if x < Decimal::ZERO || x > Decimal::ONE {
                return Err(at.invalid(
                    &format!("market.{key}"),
                    v.span(),
                    format!("must be between 0 and 1, got {x}"),
                ));
            }
            *into = x;
        }
        Ok(())
    };
    price("up_bid", raw.up_bid, &mut quote.up.bid)?;
    price("up_ask", raw.up_ask, &mut quote.up.ask)?;
    price("down_bid", raw.down_bid, &mut quote.down.bid)?;
    price("down_ask", raw.down_ask, &mut quote.down.ask)?;
    price("fee_rate", raw.fee_rate, &mut quote.fee_rate)?;
    price("tick_size", raw.tick_size, &mut quote.tick_size)?;
    let amount = |key: &str, v: Option<Spanned<Decimal>>, into: &mut Decimal| {
        if let Some(v) = v {
            if *v.get_ref() < Decimal::ZERO {
                return Err(at.invalid(
                    &format!("market.{key}"),
                    v.span(),
                    format!("must be ≥ 0, got {}", v.get_ref()),
                ));
            }
            *into = *v.get_ref();
        }
        Ok(())
    };
    amount("up_depth", raw.up_depth, &mut quote.up.ask_depth)?;
    amount("down_depth", raw.down_depth, &mut quote.down.ask_depth)?;
    amount(
        "min_order_size",
        raw.min_order_size,
        &mut quote.min_order_shares,
    )?;
    for ((key, span), book) in spans.into_iter().zip([&quote.up, &quote.down]) {
        if book.bid > book.ask {
            let message = format!(
                "the {key} bid {} is above its ask {}: a crossed book is not a quote",
                book.bid, book.ask
            );
            let key = format!("market.{key}_bid");
            return Err(match span {
                Some(span) => at.invalid(&key, span, message),
                None => at.conflict(&key, message),
            });
        }
    }
    // As the session computes it from the Up book, unless the fixture says otherwise.
    let imbalance = match raw.imbalance {
        Some(v) => {
            let x = *v.get_ref();
            if !(x.is_finite() && (-1.0..=1.0).contains(&x)) {
                return Err(at.invalid(
                    "market.imbalance",
                    v.span(),
                    format!("must be between -1 and 1, got {x}"),
                ));
            }
            x
        }
        None => {
            let bid = quote.up.bid_depth.to_f64().unwrap_or(0.0);
            let ask = quote.up.ask_depth.to_f64().unwrap_or(0.0);
            if bid + ask > 0.0 {
                (bid - ask) / (bid + ask)
            } else {
                0.0
            }
        }
    };
    Ok((quote, imbalance))
}

fn build_account(at: &Locator, raw: RawAccount, config: &Config) -> Result<Account, FixtureError> {
    let positive = |key: &str, v: &Option<Spanned<Decimal>>| -> Result<(), FixtureError> {
        match v {
            Some(v) if *v.get_ref() < Decimal::ZERO => Err(at.invalid(
                &format!("account.{key}"),
                v.span(),
                format!("must be ≥ 0, got {}", v.get_ref()),
            )),
            _ => Ok(()),
        }
    };
    positive("equity", &raw.equity)?;
    positive("cash", &raw.cash)?;
    positive("starting_capital", &raw.starting_capital)?;
    positive("peak_equity", &raw.peak_equity)?;
    let val = |v: &Option<Spanned<Decimal>>| v.as_ref().map(|s| *s.get_ref());
    let capital = val(&raw.starting_capital).unwrap_or(config.account.starting_capital);
    let mut a = Account::new(capital);
    let equity = val(&raw.equity).or(val(&raw.cash)).unwrap_or(capital);
    let cash = val(&raw.cash).unwrap_or(equity);
    if cash > equity {
        let span = raw.cash.as_ref().map_or(0..0, Spanned::span);
        return Err(at.invalid(
            "account.cash",
            span,
            format!(
                "cash {cash} is more than equity {equity} (equity = cash + stakes of open positions)"
            ),
        ));
    }
    a.cash = cash;
    a.open_cost = equity - cash;
    a.peak_equity = val(&raw.peak_equity).unwrap_or(capital.max(equity));
    if a.peak_equity < equity {
        let span = raw.peak_equity.as_ref().map_or(0..0, Spanned::span);
        return Err(at.invalid(
            "account.peak_equity",
            span,
            format!("peak {} is below equity {equity}", a.peak_equity),
        ));
    }
    a.win_streak = raw.win_streak.unwrap_or(0);
    a.loss_streak = raw.loss_streak.as_ref().map_or(0, |s| *s.get_ref());
    if a.win_streak > 0 && a.loss_streak > 0 {
        let span = raw.loss_streak.as_ref().map_or(0..0, Spanned::span);
        return Err(at.invalid(
            "account.loss_streak",
            span,
            "an account cannot be on a win streak and a loss streak at once".into(),
        ));
    }
    a.wins = raw.wins.unwrap_or(0).max(a.win_streak);
    a.losses = raw.losses.unwrap_or(0).max(a.loss_streak);
    a.trades = match &raw.trades {
        None => a.wins + a.losses,
        Some(t) if *t.get_ref() >= a.wins + a.losses => *t.get_ref(),
        Some(t) => {
            return Err(at.invalid(
                "account.trades",
                t.span(),
                format!(
                    "{} trades cannot hold {} wins and {} losses",
                    t.get_ref(),
                    a.wins,
                    a.losses
                ),
            ));
        }
    };
    a.last_result = match &raw.last_result {
        None if a.win_streak > 0 => Some(true),
        None if a.loss_streak > 0 => Some(false),
        None => None,
        Some(s) => match s.get_ref().as_str() {
            "win" => Some(true),
            "loss" => Some(false),
            "" => None,
            other => {
                return Err(at.invalid(
                    "account.last_result",
                    s.span(),
                    format!("must be \"win\", \"loss\" or \"\", got {other:?}"),
                ));
            }
        },
    };
    a.mark();
    Ok(a)
}

fn build_expect(at: &Locator, raw: RawExpect) -> Result<Expect, FixtureError> {
    let side = match raw.side.get_ref() {
        RawSide::Up => Some(Side::Up),
        RawSide::Down => Some(Side::Down),
        RawSide::Skip => None,
    };
    if side.is_none() {
        for (key, span) in [
            ("stake", raw.stake.as_ref().map(Spanned::span)),
            ("approved", raw.approved.as_ref().map(Spanned::span)),
            ("refused", raw.refused.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                return Err(at.invalid(
                    &format!("expect.{key}"),
                    span,
                    "a SKIP asks for no stake and never reaches the risk gate".into(),
                ));
            }
        }
    }
    if let (Some(_), Some(r)) = (&raw.approved, &raw.refused) {
        return Err(at.invalid(
            "expect.refused",
            r.span(),
            "give `approved` or `refused`, not both".into(),
        ));
    }
    let unit = |key: &str, v: Option<Spanned<f64>>| -> Result<Option<f64>, FixtureError> {
        match v {
            Some(v) if !(0.0..=1.0).contains(v.get_ref()) => Err(at.invalid(
                &format!("expect.{key}"),
                v.span(),
                format!("must be between 0 and 1, got {}", v.get_ref()),
            )),
            v => Ok(v.map(Spanned::into_inner)),
        }
    };
    let confidence = unit("confidence", raw.confidence)?;
    let prob = unit("prob", raw.prob)?;
    let stake = match raw.stake {
        Some(v) if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) => {
            return Err(at.invalid(
                "expect.stake",
                v.span(),
                format!("must be finite and ≥ 0, got {}", v.get_ref()),
            ));
        }
        v => v.map(Spanned::into_inner),
    };
    Ok(Expect {
        side,
        reason_contains: raw.reason_contains,
        confidence,
        prob,
        stake,
        approved: raw.approved.map(Spanned::into_inner),
        refused: raw.refused.map(Spanned::into_inner),
        repeatable: raw.repeatable.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn parse(text: &str) -> Result<Fixture, FixtureError> {
        Fixture::parse(
            Path::new("f.toml"),
            text,
            &Config::default(),
            &mut CsvCache::new(),
        )
    }

    #[test]
    fn closes_end_on_a_window_start_and_are_all_visible() {
        let f = parse("[candles]\ncloses = [1.0, 2.0, 3.0]\n[expect]\nside = \"up\"\n")
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(f.now % 300, 0);
        assert_eq!(f.window.start, f.now);
        assert_eq!(f.window.end - f.now, 300);
        assert_eq!(f.candles.len(), 3);
        assert_eq!(f.candles[2].close_time(), f.now);
        assert_eq!(f.candles[1].open_time - f.candles[0].open_time, 60);
        // The replay quote model of the config, with a symmetric book.
        assert_eq!(f.quote.up.ask, dec!(0.51));
        assert_eq!(f.imbalance, 0.0);
        assert_eq!(f.account.equity(), dec!(100));
    }

    #[test]
    fn account_and_market_overrides_are_consistent() {
        let f = parse(
            "[candles]\ncloses = [1.0]\n[market]\nup_ask = 0.6\nup_bid = 0.58\nimbalance = -0.5\n\
             [account]\nwin_streak = 3\ncash = 80\nequity = 90\n[expect]\nside = \"up\"\n",
        )
        .map_err(|e| e.to_string())
        .unwrap();
        assert_eq!(f.quote.up.ask, dec!(0.6));
        assert_eq!(f.market_view().imbalance, -0.5);
        let v = crate::script::AccountView::of(&f.account);
        assert_eq!((v.equity, v.cash, v.win_streak, v.wins), (90.0, 80.0, 3, 3));
        assert_eq!(v.last_result, "win");
        assert_eq!(f.account.open_cost, dec!(10));
    }

    #[test]
    fn errors_name_the_key_with_line_and_column() {
        let err = |text: &str| parse(text).map(|_| ()).unwrap_err().to_string();
        let e = err("[candles]\ncloses = [1.0]\n[expect]\nside = \"skip\"\nstake = 5\n");
        assert!(e.starts_with("f.toml:5:9: `expect.stake`"), "{e}");
        let e = err("[candles]\ncloses = [1.0, -2.0]\n[expect]\nside = \"up\"\n");
        assert!(e.starts_with("f.toml:2:10: `candles.closes`"), "{e}");
        let e = err(
            "[candles]\ncloses = [1.0]\n[account]\nwin_streak = 1\nloss_streak = 2\n[expect]\nside = \"up\"\n",
        );
        assert!(e.contains("`account.loss_streak`"), "{e}");
        let e = err("[candles]\ncloses = [1.0]\n[expect]\nside = \"up\"\nsied = 1\n");
        assert!(e.contains("sied") && e.contains("line 5"), "{e}");
    }
}
