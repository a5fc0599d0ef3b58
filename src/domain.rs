//! The vocabulary every stage shares: which side a position takes, which market window a
//! decision is for, and what a strategy decided.
//!
//! These types sit below every other module so that the data flow (feed → script → risk →
//! venue → ledger) can name the same things without any stage depending on a later one.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome token a position buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// BTC ends the window at or above where it started (ties go to Up).
    Up,
    /// BTC ends the window below where it started.
    Down,
}

impl Side {
    /// Lower-case name as used in journals and by scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Up => "up",
            Side::Down => "down",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One market window `[start, end)`, aligned to Unix time like Polymarket's slugs.
///
/// Owned by the session, which creates one per interval; everything downstream refers to a
/// window by its `start` (the `T` in `btc-updown-5m-<T>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Window start, Unix seconds, a multiple of the interval length.
    pub start: i64,
    /// Window end (exclusive), `start + interval`.
    pub end: i64,
    /// Position of this window in its session, from 0.
    pub index: u32,
    /// The market's slug, e.g. `btc-updown-5m-1761712200`.
    pub slug: String,
}

impl Window {
    /// The window of length `interval_secs` that starts at `start`.
    pub fn new(start: i64, interval_secs: i64, index: u32) -> Self {
        Window {
            start,
            end: start + interval_secs,
            index,
            slug: slug_for(start, interval_secs),
        }
    }

    /// The first window start at or after `t` for this interval length.
    pub fn first_start_at_or_after(t: i64, interval_secs: i64) -> i64 {
        t.div_euclid(interval_secs) * interval_secs
            + if t.rem_euclid(interval_secs) == 0 {
                0
            } else {
                interval_secs
            }
    }
}

/// Polymarket's slug for a BTC Up/Down market starting at `start`.
pub fn slug_for(start: i64, interval_secs: i64) -> String {
    let len = if interval_secs % 60 == 0 {
        format!("{}m", interval_secs / 60)
    } else {
        format!("{interval_secs}s")
    };
    format!("btc-updown-{len}-{start}")
}

/// What a strategy decided for one window, after the host checked its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// `None` is a SKIP.
    pub side: Option<Side>,
    /// The script's stated confidence in `[0, 1]` (0 for a SKIP).
    pub confidence: f64,
    /// Why, in the script's words.
    pub reason: String,
    /// The script's probability that `side` wins, for EV/Kelly sizing, when it gives one.
    pub prob: Option<f64>,
    /// Numbers the script wants journaled next to its decision (e.g. indicator values).
    pub features: serde_json::Map<String, serde_json::Value>,
}

impl Decision {
    /// A SKIP with the given reason and nothing else.
    pub fn skip(reason: impl Into<String>) -> Self {
        Decision {
            side: None,
            confidence: 0.0,
            reason: reason.into(),
            prob: None,
            features: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_unix_time_like_market_slugs() {
        // 2026-03-12 09:20:00 UTC, the start of the real market btc-updown-5m-1773307200.
        assert_eq!(Window::first_start_at_or_after(1773307200, 300), 1773307200);
        assert_eq!(Window::first_start_at_or_after(1773307201, 300), 1773307500);
        assert_eq!(Window::first_start_at_or_after(1773307199, 300), 1773307200);
        let w = Window::new(1773307200, 300, 0);
        assert_eq!(w.slug, "btc-updown-5m-1773307200");
        assert_eq!(w.end, 1773307500);
        assert_eq!(slug_for(1772244000, 900), "btc-updown-15m-1772244000");
    }
}

/// The stake a strategy asked for, before the risk gate has looked at it.
///
/// Scripts compute in floats and may return anything; the gate decides what a request is
/// worth, so a request that is not a finite number travels as `Invalid` to be refused there
/// with a reason code rather than being coerced here.
#[derive(Clone, Debug, PartialEq)]
pub enum StakeAsk {
    /// A number of USD (may still be NaN, infinite, negative or absurd).
    Usd(f64),
    /// Not a number at all; the text names what came back.
    Invalid(String),
}

/// A filled entry: what a venue reports and the ledger books (defined here, below both,
/// so that neither depends on the other).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    /// Window it belongs to.
    pub window_start: i64,
    /// Token bought.
    pub side: Side,
    /// USD spent.
    pub stake: Decimal,
    /// Average price paid.
    pub price: Decimal,
    /// Shares held after the fee (Polymarket takes a buy's fee in shares).
    pub shares: Decimal,
    /// Fee in USD.
    pub fee: Decimal,
}

/// A strategy parameter's value, as `[params.<stem>]` and `--param` give it: plain Rust, so
/// that a native strategy reads it without the script engine; the script host turns it into
/// Rhai values for `ctx.params` and `ctx.param`.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// `14`
    Int(i64),
    /// `0.08`
    Float(f64),
    /// `true`
    Bool(bool),
    /// `"fast"` (a TOML date is given as its text)
    Text(String),
    /// `[1, 2]`
    List(Vec<ParamValue>),
    /// `{ a = 1 }`
    Table(std::collections::BTreeMap<String, ParamValue>),
}

/// A strategy's parameters by name.
pub type Params = std::collections::BTreeMap<String, ParamValue>;

impl ParamValue {
    /// The value of a TOML value.
    pub fn from_toml(v: &toml::Value) -> ParamValue {
        match v {
            toml::Value::Integer(i) => ParamValue::Int(*i),
            toml::Value::Float(f) => ParamValue::Float(*f),
            toml::Value::Boolean(b) => ParamValue::Bool(*b),
            toml::Value::String(s) => ParamValue::Text(s.clone()),
            toml::Value::Datetime(d) => ParamValue::Text(d.to_string()),
            toml::Value::Array(a) => {
                ParamValue::List(a.iter().map(ParamValue::from_toml).collect())
            }
            toml::Value::Table(t) => ParamValue::Table(
                t.iter()
                    .map(|(k, v)| (k.clone(), ParamValue::from_toml(v)))
                    .collect(),
            ),
        }
    }

    /// The value a parameter read with an integer default gets: a whole float (`14.0`) is
    /// the integer it says, as `ctx.param` gives it to scripts; anything else is itself.
    pub fn for_integer_default(self) -> ParamValue {
        match self {
            ParamValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                ParamValue::Int(f as i64)
            }
            v => v,
        }
    }
}

impl From<bool> for ParamValue {
    fn from(b: bool) -> Self {
        ParamValue::Bool(b)
    }
}

impl From<i64> for ParamValue {
    fn from(i: i64) -> Self {
        ParamValue::Int(i)
    }
}

impl From<f64> for ParamValue {
    fn from(f: f64) -> Self {
        ParamValue::Float(f)
    }
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        ParamValue::Text(s.to_string())
    }
}
