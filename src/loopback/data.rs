//! The recorded real data the loopback venue serves from, loaded once at start.
//!
//! - Binance 1-minute klines of the recorded Polymarket week (`binance_btc.csv`, read with
//!   [`crate::feed::load_csv`]): the spot price, the klines and the in-minute price path.
//! - Polymarket's recorded resolutions (`polymarket_btc.csv`, read with
//!   [`crate::feed::load_outcomes`]): one market per 5-minute window, with the real Up token
//!   id from the same file; the other ids are derived deterministically from the slug.
//! - The real Gamma market `nautilus_crate_gamma_market.json`, the template every served
//!   market is rendered from.
//! - The real CLOB book `nautilus_py_ws_messages_book.json`, whose level sizes (best level
//!   first) shape the synthetic books.
//!
//! Nothing here changes after loading; what is *visible* at a virtual time is decided by
//! [`super::market`].

use super::LoopbackError;
use crate::domain::Side;
use crate::feed::{Candle, Lookup, load_csv, load_outcomes};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Length of one Up/Down window in seconds (the recorded week is of 5-minute markets).
pub const WINDOW_SECS: i64 = 300;

/// Paths of the recorded files, relative to the shared data folder.
pub const KLINES_FILE: &str = "polymarket_btc_updown_2026-02/binance_btc.csv";
/// Polymarket's recorded outcomes of the same week.
pub const OUTCOMES_FILE: &str = "polymarket_btc_updown_2026-02/polymarket_btc.csv";
/// The real Gamma market used as the template of every served market.
pub const GAMMA_TEMPLATE_FILE: &str = "polymarket_api_samples/nautilus_crate_gamma_market.json";
/// The real CLOB WebSocket book whose level sizes shape the served books.
pub const BOOK_SHAPE_FILE: &str = "polymarket_api_samples/nautilus_py_ws_messages_book.json";

/// One 5-minute market of the recorded week, with the identifiers the venue serves for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    /// Window start, Unix seconds (the `T` of the slug).
    pub start: i64,
    /// Window end, Unix seconds (`start + 300`).
    pub end: i64,
    /// `btc-updown-5m-<start>`.
    pub slug: String,
    /// Position in the recorded week, from 0.
    pub index: usize,
    /// Gamma market id (the template's id plus `index`).
    pub market_id: String,
    /// Gamma event id (the template's event id plus `index`).
    pub event_id: String,
    /// Condition id: `0x` and 64 hex digits derived from the slug.
    pub condition_id: String,
    /// Question id: `0x` and 64 hex digits derived from the slug.
    pub question_id: String,
    /// The Up token id: the real one recorded for this window when the file has it.
    pub up_token: String,
    /// The Down token id, derived from the slug (77 decimal digits).
    pub down_token: String,
    /// The real resolution, `None` for a market the recording saw unresolved.
    pub outcome: Option<Side>,
    /// The Up token's final price as recorded (1, 0, or the price of an open market).
    pub yes_price: Decimal,
}

impl WindowInfo {
    /// The token id of `side`.
    pub fn token(&self, side: Side) -> &str {
        match side {
            Side::Up => &self.up_token,
            Side::Down => &self.down_token,
        }
    }

    /// Which side `token` is, if it is one of this market's tokens.
    pub fn side_of(&self, token: &str) -> Option<Side> {
        if token == self.up_token {
            Some(Side::Up)
        } else if token == self.down_token {
            Some(Side::Down)
        } else {
            None
        }
    }
}

/// Level sizes of the real recorded book, best level first, per side.
#[derive(Clone, Debug, PartialEq)]
pub struct BookShape {
    /// Bid sizes, best (highest) bid first.
    pub bids: Vec<f64>,
    /// Ask sizes, best (lowest) ask first.
    pub asks: Vec<f64>,
}

/// Everything loaded from the shared data folder.
#[derive(Debug)]
pub struct VenueData {
    /// The folder the files were read from.
    pub dir: PathBuf,
    /// 1-minute candles in strictly increasing time order.
    pub candles: Vec<Candle>,
    /// Markets by window start.
    pub windows: BTreeMap<i64, WindowInfo>,
    /// The Gamma market template (a JSON object).
    pub gamma_template: Value,
    /// Level sizes of the recorded book.
    pub book_shape: BookShape,
}

/// Hex SHA-256 of `parts` joined with `/`.
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"/");
    }
    h.finalize().into()
}

/// `0x` and 64 hex digits derived from `kind` and `slug`.
fn hex_id(kind: &str, slug: &str) -> String {
    format!(
        "0x{}",
        hex::encode(digest(&["updown-loopback", kind, slug]))
    )
}

/// A 77-digit decimal token id derived from `kind` and `slug` (CLOB token ids are uint256s
/// written in decimal).
fn decimal_id(kind: &str, slug: &str) -> String {
    let a = digest(&["updown-loopback", kind, slug, "a"]);
    let b = digest(&["updown-loopback", kind, slug, "b"]);
    let c = digest(&["updown-loopback", kind, slug, "c"]);
    let mut s: String = a
        .iter()
        .chain(b.iter())
        .chain(c.iter())
        .take(77)
        .map(|x| char::from(b'0' + x % 10))
        .collect();
    if s.starts_with('0') {
        s.replace_range(0..1, "1");
    }
    s
}

fn read_json(path: &Path) -> Result<Value, LoopbackError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoopbackError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LoopbackError::Data {
        path: path.to_path_buf(),
        problem: format!("not JSON: {e}"),
    })
}

/// Up token ids by window start from the outcomes file's `clob_token_id` column (the typed
/// loader validates the file but does not keep the token ids).
fn recorded_up_tokens(path: &Path) -> Result<BTreeMap<i64, String>, LoopbackError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoopbackError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| LoopbackError::Data {
        path: path.to_path_buf(),
        problem: format!("unreadable header: {e}"),
    })?;
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(slug_col), Some(token_col)) = (
        col("slug"),
        col("clob_token_id").or_else(|| col("clob_token_id_yes")),
    ) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| LoopbackError::Data {
            path: path.to_path_buf(),
            problem: format!("malformed CSV: {e}"),
        })?;
        let (Some(slug), Some(token)) = (record.get(slug_col), record.get(token_col)) else {
            continue;
        };
        let start = slug
            .trim()
            .rsplit('-')
            .next()
            .and_then(|t| t.parse::<i64>().ok());
        let token = token.trim();
        if let Some(start) = start
            && !token.is_empty()
            && token.len() <= 78
            && token.bytes().all(|b| b.is_ascii_digit())
        {
            out.insert(start, token.to_string());
        }
    }
    Ok(out)
}

/// Best-first sizes of one side of the recorded book.
fn shape_side(book: &Value, side: &str, best_is_highest: bool, path: &Path) -> Vec<f64> {
    let mut levels: Vec<(f64, f64)> = book
        .get(side)
        .and_then(Value::as_array)
        .map(|levels| {
            levels
                .iter()
                .filter_map(|l| {
                    let p = l.get("price")?.as_str()?.parse::<f64>().ok()?;
                    let s = l.get("size")?.as_str()?.parse::<f64>().ok()?;
                    (p.is_finite() && s.is_finite() && s > 0.0).then_some((p, s))
                })
                .collect()
        })
        .unwrap_or_default();
    levels.sort_by(|a, b| {
        if best_is_highest {
            b.0.total_cmp(&a.0)
        } else {
            a.0.total_cmp(&b.0)
        }
    });
    let sizes: Vec<f64> = levels.into_iter().map(|(_, s)| s).take(40).collect();
    if sizes.is_empty() {
        tracing::warn!(
            "{}: no usable {side} levels; using flat sizes",
            path.display()
        );
        vec![1000.0]
    } else {
        sizes
    }
}

impl VenueData {
    /// Loads the recorded files from `dir` (the shared data folder).
    pub fn load(dir: &Path) -> Result<Self, LoopbackError> {
        let klines_path = dir.join(KLINES_FILE);
        let recorded = load_csv(&klines_path).map_err(|e| LoopbackError::Data {
            path: klines_path.clone(),
            problem: e.to_string(),
        })?;
        if recorded.candles.is_empty() {
            return Err(LoopbackError::Data {
                path: klines_path,
                problem: "no candles".into(),
            });
        }

        let outcomes_path = dir.join(OUTCOMES_FILE);
        let outcomes =
            load_outcomes(&outcomes_path, WINDOW_SECS).map_err(|e| LoopbackError::Data {
                path: outcomes_path.clone(),
                problem: e.to_string(),
            })?;
        let up_tokens = recorded_up_tokens(&outcomes_path)?;

        let template_path = dir.join(GAMMA_TEMPLATE_FILE);
        let gamma_template = read_json(&template_path)?;
        let template_id = |v: Option<&Value>| -> i64 {
            v.and_then(|x| match x {
                Value::String(s) => s.parse().ok(),
                other => other.as_i64(),
            })
            .unwrap_or(1_000_000)
        };
        let base_market_id = template_id(gamma_template.get("id"));
        let base_event_id = template_id(
            gamma_template
                .get("events")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("id")),
        );
        if !gamma_template.is_object() {
            return Err(LoopbackError::Data {
                path: template_path,
                problem: "expected a market object".into(),
            });
        }

        let mut windows = BTreeMap::new();
        for (index, row) in outcomes.rows().enumerate() {
            let outcome = match outcomes.lookup(row.start) {
                Lookup::Resolved(side) => Some(side),
                _ => None,
            };
            let slug = row.slug.clone();
            let up_token = up_tokens
                .get(&row.start)
                .cloned()
                .unwrap_or_else(|| decimal_id("up-token", &slug));
            let mut down_token = decimal_id("down-token", &slug);
            if down_token == up_token {
                down_token = decimal_id("down-token-2", &slug);
            }
            windows.insert(
                row.start,
                WindowInfo {
                    start: row.start,
                    end: row.start + WINDOW_SECS,
                    index,
                    market_id: (base_market_id + index as i64).to_string(),
                    event_id: (base_event_id + index as i64).to_string(),
                    condition_id: hex_id("condition", &slug),
                    question_id: hex_id("question", &slug),
                    up_token,
                    down_token,
                    outcome,
                    yes_price: row.yes_price,
                    slug,
                },
            );
        }

        let shape_path = dir.join(BOOK_SHAPE_FILE);
        let book = read_json(&shape_path)?;
        let book_shape = BookShape {
            bids: shape_side(&book, "bids", true, &shape_path),
            asks: shape_side(&book, "asks", false, &shape_path),
        };

        Ok(VenueData {
            dir: dir.to_path_buf(),
            candles: recorded.candles,
            windows,
            gamma_template,
            book_shape,
        })
    }

    /// The candle whose minute contains `t_ms` (virtual Unix ms), if recorded.
    pub fn candle_at(&self, t_ms: i64) -> Option<&Candle> {
        let minute = t_ms.div_euclid(60_000) * 60;
        let i = self.candles.partition_point(|c| c.open_time < minute);
        self.candles.get(i).filter(|c| c.open_time == minute)
    }

    /// Open time of the first candle and close time of the last, Unix seconds.
    pub fn span(&self) -> (i64, i64) {
        let first = self.candles.first().map_or(0, |c| c.open_time);
        let last = self.candles.last().map_or(0, Candle::close_time);
        (first, last)
    }

    /// The market of the window containing or starting at `start`, if recorded.
    pub fn window(&self, start: i64) -> Option<&WindowInfo> {
        self.windows.get(&start)
    }

    /// The market whose Up or Down token is `token`.
    pub fn window_of_token(&self, token: &str) -> Option<&WindowInfo> {
        // Linear over ~2,000 markets; called per request or subscription, not per tick.
        self.windows.values().find(|w| w.side_of(token).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_and_well_formed() {
        let c = hex_id("condition", "btc-updown-5m-1771684200");
        assert_eq!(c, hex_id("condition", "btc-updown-5m-1771684200"));
        assert_eq!(c.len(), 66);
        assert!(c[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        let t = decimal_id("down-token", "btc-updown-5m-1771684200");
        assert_eq!(t.len(), 77);
        assert!(t.bytes().all(|b| b.is_ascii_digit()) && !t.starts_with('0'));
        assert_ne!(t, decimal_id("down-token", "btc-updown-5m-1771684500"));
    }
}
