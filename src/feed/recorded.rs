//! Recorded Binance 1-minute kline CSV files, loaded into [`Candle`]s.
//!
//! This module owns the accepted file layouts ([`Layout`]), the time parsing they need,
//! per-row validation and its errors ([`LoadError`]), and the detection and summary of
//! holes in the minute sequence ([`Gap`], [`describe_gaps`]).
//!
//! Backtests replay these files minute by minute, so anything doubtful (an off-minute
//! time, an impossible OHLC row, a duplicate or out-of-order bar) is rejected with the
//! file, line and column rather than repaired: a silently sorted or merged history would
//! produce results nobody can reproduce from the file. Real exchange outages are normal
//! and are reported as [`Gap`]s instead.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveTime};

use super::candle::{CANDLE_SECS, Candle};

/// A recorded candle history loaded from one CSV file, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The file the candles came from (as given to [`load_csv`] / [`parse_csv`]).
    pub path: PathBuf,
    /// Candles in strictly increasing `open_time` order, one per present minute.
    pub candles: Vec<Candle>,
    /// Holes in the minute sequence, in time order; empty for a complete history.
    pub gaps: Vec<Gap>,
    /// The layout detected from the file's header.
    pub layout: Layout,
}

impl Recorded {
    /// Total number of 1-minute bars missing between the first and last candle.
    pub fn missing_minutes(&self) -> i64 {
        self.gaps.iter().map(|g| g.missing).sum()
    }
}

/// A hole in the minute sequence: `missing` bars between two present candles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Open time (Unix seconds, UTC) of the last candle before the hole.
    pub after_open_time: i64,
    /// Open time (Unix seconds, UTC) of the first candle after the hole.
    pub next_open_time: i64,
    /// Number of absent 1-minute bars: `(next - after) / 60 - 1`.
    pub missing: i64,
}

/// The CSV layouts [`parse_csv`] recognises, detected from the header (not the file name).
///
/// Column names are matched case-insensitively after trimming spaces. Every layout's
/// `volume` is in the base asset (BTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// `timestamp,open,high,low,close,volume`; `timestamp` is the bar open
    /// (e.g. `2021-03-26 03:00:00`, UTC when it has no offset).
    TimestampOhlcv,
    /// `open_time,open,high,low,close,volume`; `open_time` is the bar open, with or
    /// without an offset (`2023-03-01 00:00:00+00:00`, `2026-02-21 14:26:00`).
    OpenTimeOhlcv,
    /// Binance's full kline layout with a header of 12 or 13 columns:
    /// `open_time,open,high,low,close,volume,close_time,` five more (quote volume,
    /// trades, taker base, taker quote, ignore; their names are not checked) and an
    /// optional 13th such as `symbol`. Times are ISO strings or epoch ms/µs integers;
    /// `close_time` must be 59.999 s after `open_time`.
    BinanceKlines,
    /// Binance's raw 12-column kline rows with no header line, as dumped from
    /// `GET /api/v3/klines` or the data.binance.vision archive; recognised by a numeric
    /// first field. Times are epoch milliseconds (or microseconds, as the archive uses
    /// from 2025).
    BinanceRaw,
    /// `open,high,low,close,volume,quote_volume,trades,close_datetime` with no open
    /// time: `close_datetime` is the bar close with an offset
    /// (`2024-12-01 00:00:59.999000+01:00`); bar open = close − 59.999 s.
    CloseDatetime,
}

impl Layout {
    /// Every layout, in the order they are listed to users.
    pub const ALL: [Layout; 5] = [
        Layout::TimestampOhlcv,
        Layout::OpenTimeOhlcv,
        Layout::BinanceKlines,
        Layout::BinanceRaw,
        Layout::CloseDatetime,
    ];

    /// The header this layout is recognised by, as shown to users.
    pub fn header(self) -> &'static str {
        match self {
            Layout::TimestampOhlcv => "timestamp,open,high,low,close,volume",
            Layout::OpenTimeOhlcv => "open_time,open,high,low,close,volume",
            Layout::BinanceKlines => {
                "open_time,open,high,low,close,volume,close_time,<5 more>[,symbol]"
            }
            Layout::BinanceRaw => {
                "(no header) 12 raw Binance kline fields, epoch ms/µs open time first"
            }
            Layout::CloseDatetime => {
                "open,high,low,close,volume,quote_volume,trades,close_datetime"
            }
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

/// Why a recorded CSV file could not be loaded. Every variant names the file and,
/// where it applies, the 1-based line and the column, and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{} line {line}: not valid UTF-8 text; re-export the file as a UTF-8 CSV", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: u64,
    },
    /// The CSV reader itself failed (malformed quoting and the like).
    #[error("{} line {line}: malformed CSV ({source}); fix the quoting on that line", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line where the reader stopped (0 if unknown).
        line: u64,
        /// The underlying CSV error.
        source: csv::Error,
    },
    /// The file has no lines at all.
    #[error(
        "{} is empty; expected a kline CSV starting with a header such as {}",
        path.display(),
        Layout::TimestampOhlcv.header()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header was recognised but no data rows follow it.
    #[error("{} has a header ({layout}) but no data rows; re-download or re-export the data", path.display())]
    NoCandles {
        /// The file.
        path: PathBuf,
        /// The layout the header matched.
        layout: Layout,
    },
    /// The first line matches none of the accepted layouts.
    #[error(
        "{} line 1: unrecognised header \"{found}\"; accepted layouts (names are \
         case-insensitive): {}; rename the columns to match one of them or convert the file",
        path.display(),
        accepted_layouts()
    )]
    UnknownHeader {
        /// The file.
        path: PathBuf,
        /// The first line as found (possibly shortened).
        found: String,
    },
    /// A data row has a different number of fields than the header.
    #[error(
        "{} line {line}: {found} fields where the layout has {expected}; the row is \
         truncated or has stray commas, fix or delete it",
        path.display()
    )]
    FieldCount {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Fields the layout requires.
        expected: usize,
        /// Fields the row has.
        found: usize,
    },
    /// A price or volume field does not parse as a number.
    #[error(
        "{} line {line}, column \"{column}\": \"{value}\" is not a number; fix or delete this row",
        path.display()
    )]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: &'static str,
        /// The field as found (possibly shortened).
        value: String,
    },
    /// A time field does not parse.
    #[error(
        "{} line {line}, column \"{column}\": \"{value}\" is not a valid time ({reason}); fix or delete this row",
        path.display()
    )]
    BadTime {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: &'static str,
        /// The field as found (possibly shortened).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bar open time derived from the row is not on a whole minute.
    #[error(
        "{} line {line}, column \"{column}\": \"{value}\" gives a bar open of {} UTC, not on a \
         whole minute; only 1-minute klines are accepted, check the export's interval and time zone",
        path.display(),
        utc_text(*open_time, true)
    )]
    NotOnMinute {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: &'static str,
        /// The field as found (possibly shortened).
        value: String,
        /// The derived bar open time, rounded to the second (Unix seconds, UTC).
        open_time: i64,
    },
    /// `close_time` is not 59.999 s after `open_time`, so this is not a 1-minute kline.
    #[error(
        "{} line {line}, column \"close_time\": \"{value}\" is not 59.999 s after the bar open \
         {} UTC; this is not a 1-minute kline (check the export's interval) or the row is corrupt",
        path.display(),
        utc_text(*open_time, true)
    )]
    CloseTimeMismatch {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The `close_time` field as found (possibly shortened).
        value: String,
        /// The row's bar open time (Unix seconds, UTC).
        open_time: i64,
    },
    /// A price is zero, negative, infinite or NaN.
    #[error(
        "{} line {line}, column \"{column}\": price {value} is not a positive finite number; \
         fix or delete this row",
        path.display()
    )]
    BadPrice {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: &'static str,
        /// The parsed value.
        value: f64,
    },
    /// The volume is negative, infinite or NaN.
    #[error(
        "{} line {line}, column \"volume\": volume {value} is not a finite number >= 0; \
         fix or delete this row",
        path.display()
    )]
    BadVolume {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The parsed value.
        value: f64,
    },
    /// `high < max(open, close)` or `low > min(open, close)`.
    #[error(
        "{} line {line}, column \"{column}\": OHLC violation (open {open}, high {high}, low {low}, \
         close {close}); high must be >= max(open, close) and low <= min(open, close), the row \
         is corrupt, fix or delete it",
        path.display()
    )]
    OhlcViolation {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// `"high"` or `"low"`: the bound that is violated.
        column: &'static str,
        /// Open price.
        open: f64,
        /// High price.
        high: f64,
        /// Low price.
        low: f64,
        /// Close price.
        close: f64,
    },
    /// Two rows have the same bar open time.
    #[error(
        "{} line {line}: a second bar opening at {} UTC (the first is on line {first_line}); \
         remove the duplicate row",
        path.display(),
        utc_text(*open_time, false)
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line of the repeated bar.
        line: u64,
        /// 1-based line of the first bar with this open time.
        first_line: u64,
        /// The repeated open time (Unix seconds, UTC).
        open_time: i64,
    },
    /// A row opens earlier than the row before it.
    #[error(
        "{} line {line}: bar opening at {} UTC comes after the bar at {} UTC on line \
         {previous_line}; rows must be in ascending time order, sort the file by its time column",
        path.display(),
        utc_text(*open_time, false),
        utc_text(*previous_open_time, false)
    )]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// 1-based line of the out-of-order bar.
        line: u64,
        /// Its open time (Unix seconds, UTC).
        open_time: i64,
        /// 1-based line of the preceding bar.
        previous_line: u64,
        /// The preceding bar's open time (Unix seconds, UTC).
        previous_open_time: i64,
    },
}

impl LoadError {
    /// The 1-based line the error refers to, if it refers to one.
    pub fn line(&self) -> Option<u64> {
        match self {
            LoadError::Io { .. } | LoadError::Empty { .. } | LoadError::NoCandles { .. } => None,
            LoadError::UnknownHeader { .. } => Some(1),
            LoadError::NotUtf8 { line, .. }
            | LoadError::Csv { line, .. }
            | LoadError::FieldCount { line, .. }
            | LoadError::BadNumber { line, .. }
            | LoadError::BadTime { line, .. }
            | LoadError::NotOnMinute { line, .. }
            | LoadError::CloseTimeMismatch { line, .. }
            | LoadError::BadPrice { line, .. }
            | LoadError::BadVolume { line, .. }
            | LoadError::OhlcViolation { line, .. }
            | LoadError::Duplicate { line, .. }
            | LoadError::OutOfOrder { line, .. } => Some(*line),
        }
    }

    /// The column the error refers to, if it refers to one.
    pub fn column(&self) -> Option<&'static str> {
        match self {
            LoadError::BadNumber { column, .. }
            | LoadError::BadTime { column, .. }
            | LoadError::NotOnMinute { column, .. }
            | LoadError::BadPrice { column, .. }
            | LoadError::OhlcViolation { column, .. } => Some(column),
            LoadError::CloseTimeMismatch { .. } => Some("close_time"),
            LoadError::BadVolume { .. } => Some("volume"),
            _ => None,
        }
    }
}

/// Reads `path` and parses it with [`parse_csv`].
pub fn load_csv(path: &Path) -> Result<Recorded, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad_at = e.utf8_error().valid_up_to();
        let newlines = e.as_bytes()[..bad_at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        LoadError::NotUtf8 {
            path: path.to_path_buf(),
            line: newlines as u64 + 1,
        }
    })?;
    parse_csv(path, &text)
}

/// Parses the text of a recorded kline CSV; `path_for_errors` is only used to name the
/// file in [`Recorded::path`] and in errors.
///
/// The layout is detected from the first line (see [`Layout`]); a leading UTF-8 BOM,
/// CRLF line ends and blank lines are tolerated. Gaps are recorded, never filled.
pub fn parse_csv(path_for_errors: &Path, text: &str) -> Result<Recorded, LoadError> {
    let path = path_for_errors;
    // Spreadsheet exports often start with a UTF-8 byte-order mark; it would otherwise
    // become part of the first column name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Headers are handled here rather than by the csv crate so that headerless raw
    // Binance dumps can be told apart from headed files by their first field.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::ByteRecord::new();
    let csv_error = |source: csv::Error| LoadError::Csv {
        path: path.to_path_buf(),
        line: source.position().map_or(0, |p| p.line()),
        source,
    };

    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    let (layout, cols) = detect_layout(&record).ok_or_else(|| LoadError::UnknownHeader {
        path: path.to_path_buf(),
        found: shown(&join_fields(&record)),
    })?;

    // About 65 bytes a row in the smallest layout; a close guess saves regrowing.
    let mut candles: Vec<Candle> = Vec::with_capacity(text.len() / 64 + 1);
    let mut gaps = Vec::new();
    let mut days = DayCache::default();
    let mut previous: Option<(i64, u64)> = None;
    let mut first_is_data = layout == Layout::BinanceRaw;

    loop {
        if !first_is_data && !reader.read_byte_record(&mut record).map_err(csv_error)? {
            break;
        }
        first_is_data = false;
        let line = record.position().map_or(0, |p| p.line());
        let candle = parse_row(path, line, &record, &cols, &mut days)?;

        if let Some((prev_open, prev_line)) = previous {
            if candle.open_time == prev_open {
                return Err(LoadError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    first_line: prev_line,
                    open_time: candle.open_time,
                });
            }
            if candle.open_time < prev_open {
                return Err(LoadError::OutOfOrder {
                    path: path.to_path_buf(),
                    line,
                    open_time: candle.open_time,
                    previous_line: prev_line,
                    previous_open_time: prev_open,
                });
            }
            if candle.open_time > prev_open + CANDLE_SECS {
                gaps.push(Gap {
                    after_open_time: prev_open,
                    next_open_time: candle.open_time,
                    missing: (candle.open_time - prev_open) / CANDLE_SECS - 1,
                });
            }
        }
        previous = Some((candle.open_time, line));
        candles.push(candle);
    }

    if candles.is_empty() {
        return Err(LoadError::NoCandles {
            path: path.to_path_buf(),
            layout,
        });
    }
    Ok(Recorded {
        path: path.to_path_buf(),
        candles,
        gaps,
        layout,
    })
}

/// A short human summary of `gaps`, listing at most five, e.g.
/// `2 gaps, 434 missing minutes: 2021-04-20 01:59→04:30 UTC (150 min), …`.
pub fn describe_gaps(gaps: &[Gap]) -> String {
    const LISTED: usize = 5;
    if gaps.is_empty() {
        return "no gaps".to_string();
    }
    let missing: i64 = gaps.iter().map(|g| g.missing).sum();
    let mut out = format!(
        "{} gap{}, {} missing minute{}: ",
        gaps.len(),
        plural(gaps.len() as i64),
        missing,
        plural(missing)
    );
    for (i, gap) in gaps.iter().take(LISTED).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let from = utc_text(gap.after_open_time, false);
        let to = utc_text(gap.next_open_time, false);
        // Same day: the end only needs its time, as in "01:59→04:30".
        let to = match (from.split_once(' '), to.split_once(' ')) {
            (Some((from_day, _)), Some((to_day, to_time))) if from_day == to_day => to_time,
            _ => to.as_str(),
        };
        // Writing to a String cannot fail.
        let _ = write!(out, "{from}→{to} UTC ({} min)", gap.missing);
    }
    if gaps.len() > LISTED {
        let _ = write!(out, ", … and {} more", gaps.len() - LISTED);
    }
    out
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn accepted_layouts() -> String {
    let mut out = String::new();
    for (i, layout) in Layout::ALL.iter().enumerate() {
        let _ = write!(
            out,
            "{}[{}] {}",
            if i > 0 { ", " } else { "" },
            i + 1,
            layout.header()
        );
    }
    out
}

/// `YYYY-MM-DD HH:MM` (or with `:SS`) in UTC, for messages.
fn utc_text(secs: i64, with_seconds: bool) -> String {
    let format = if with_seconds {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M"
    };
    match DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format(format).to_string(),
        None => format!("unix time {secs}"),
    }
}

/// A field for an error message: trimmed, and shortened so one bad line cannot flood it.
fn shown(field: &[u8]) -> String {
    const MAX_CHARS: usize = 80;
    let text = String::from_utf8_lossy(field.trim_ascii());
    if text.chars().count() <= MAX_CHARS {
        text.into_owned()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

fn join_fields(record: &csv::ByteRecord) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(field);
    }
    out
}

const OHLCV: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Where a layout keeps the fields a candle needs.
struct Columns {
    /// Fields every row must have.
    count: usize,
    time: usize,
    time_name: &'static str,
    /// The time column holds the bar close (59.999 s after the open), not the open.
    time_is_close: bool,
    /// Indices of open, high, low, close, volume.
    ohlcv: [usize; 5],
    /// A `close_time` column to cross-check the interval against.
    close_time: Option<usize>,
}

fn detect_layout(first: &csv::ByteRecord) -> Option<(Layout, Columns)> {
    let names_are = |names: &[&str]| {
        first.len() >= names.len()
            && names
                .iter()
                .zip(first.iter())
                .all(|(want, got)| got.trim_ascii().eq_ignore_ascii_case(want.as_bytes()))
    };
    let open_first = |count, time_name, close_time| Columns {
        count,
        time: 0,
        time_name,
        time_is_close: false,
        ohlcv: [1, 2, 3, 4, 5],
        close_time,
    };

    let first_field = first.get(0).unwrap_or_default().trim_ascii();
    if !first_field.is_empty() && first_field.iter().all(u8::is_ascii_digit) {
        return (first.len() == 12)
            .then(|| (Layout::BinanceRaw, open_first(12, "open_time", Some(6))));
    }
    let n = first.len();
    if n == 6 && names_are(&["timestamp", "open", "high", "low", "close", "volume"]) {
        return Some((Layout::TimestampOhlcv, open_first(6, "timestamp", None)));
    }
    if n == 6 && names_are(&["open_time", "open", "high", "low", "close", "volume"]) {
        return Some((Layout::OpenTimeOhlcv, open_first(6, "open_time", None)));
    }
    if (n == 12 || n == 13)
        && names_are(&[
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "close_time",
        ])
    {
        return Some((Layout::BinanceKlines, open_first(n, "open_time", Some(6))));
    }
    if n == 8
        && names_are(&[
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quote_volume",
            "trades",
            "close_datetime",
        ])
    {
        let cols = Columns {
            count: 8,
            time: 7,
            time_name: "close_datetime",
            time_is_close: true,
            ohlcv: [0, 1, 2, 3, 4],
            close_time: None,
        };
        return Some((Layout::CloseDatetime, cols));
    }
    None
}

fn parse_row(
    path: &Path,
    line: u64,
    record: &csv::ByteRecord,
    cols: &Columns,
    days: &mut DayCache,
) -> Result<Candle, LoadError> {
    if record.len() != cols.count {
        return Err(LoadError::FieldCount {
            path: path.to_path_buf(),
            line,
            expected: cols.count,
            found: record.len(),
        });
    }
    // Every index is below `cols.count`, which was just checked.
    let field = |i: usize| record.get(i).unwrap_or_default();

    let time_field = field(cols.time);
    let time = parse_time(time_field, days).map_err(|reason| LoadError::BadTime {
        path: path.to_path_buf(),
        line,
        column: cols.time_name,
        value: shown(time_field),
        reason,
    })?;
    let open_time = if cols.time_is_close {
        time.minus_millis(CANDLE_SECS * 1000 - 1)
    } else {
        time
    }
    .round_to_second();
    if open_time.rem_euclid(CANDLE_SECS) != 0 {
        return Err(LoadError::NotOnMinute {
            path: path.to_path_buf(),
            line,
            column: cols.time_name,
            value: shown(time_field),
            open_time,
        });
    }
    if let Some(ci) = cols.close_time {
        let close_field = field(ci);
        let close = parse_time(close_field, days).map_err(|reason| LoadError::BadTime {
            path: path.to_path_buf(),
            line,
            column: "close_time",
            value: shown(close_field),
            reason,
        })?;
        if close.round_to_second() != open_time + CANDLE_SECS {
            return Err(LoadError::CloseTimeMismatch {
                path: path.to_path_buf(),
                line,
                value: shown(close_field),
                open_time,
            });
        }
    }

    let mut values = [0.0; 5];
    for (k, (&ci, value)) in cols.ohlcv.iter().zip(values.iter_mut()).enumerate() {
        let raw = field(ci);
        *value = parse_f64(raw).ok_or_else(|| LoadError::BadNumber {
            path: path.to_path_buf(),
            line,
            column: OHLCV[k],
            value: shown(raw),
        })?;
    }
    let [open, high, low, close, volume] = values;
    for (k, price) in [open, high, low, close].into_iter().enumerate() {
        if !(price.is_finite() && price > 0.0) {
            return Err(LoadError::BadPrice {
                path: path.to_path_buf(),
                line,
                column: OHLCV[k],
                value: price,
            });
        }
    }
    if !(volume.is_finite() && volume >= 0.0) {
        return Err(LoadError::BadVolume {
            path: path.to_path_buf(),
            line,
            value: volume,
        });
    }
    let violated = if high < open.max(close) {
        Some("high")
    } else if low > open.min(close) {
        Some("low")
    } else {
        None
    };
    if let Some(column) = violated {
        return Err(LoadError::OhlcViolation {
            path: path.to_path_buf(),
            line,
            column,
            open,
            high,
            low,
            close,
        });
    }
    Ok(Candle {
        open_time,
        open,
        high,
        low,
        close,
        volume,
    })
}

fn parse_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field.trim_ascii()).ok()?.parse().ok()
}

/// A parsed instant; seconds and nanoseconds are kept apart so that any four-digit
/// year fits without 128-bit arithmetic in the per-row path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Instant {
    secs: i64,
    /// Always in `0..1_000_000_000`.
    nanos: i64,
}

impl Instant {
    fn minus_millis(self, millis: i64) -> Instant {
        let nanos = self.nanos - millis.rem_euclid(1000) * 1_000_000;
        let secs = self.secs - millis.div_euclid(1000);
        if nanos < 0 {
            Instant {
                secs: secs - 1,
                nanos: nanos + 1_000_000_000,
            }
        } else {
            Instant { secs, nanos }
        }
    }

    /// Nearest whole second, halves rounding up.
    fn round_to_second(self) -> i64 {
        self.secs + i64::from(self.nanos >= 500_000_000)
    }
}

const TIME_FORMAT: &str = "expected YYYY-MM-DD HH:MM:SS with a space or T, optional fractional \
                           seconds and an optional offset such as +00:00 or Z, or an epoch time \
                           in milliseconds";

/// Rows of one file mostly share their date, so the calendar maths is done once a day.
#[derive(Default)]
struct DayCache {
    key: [u8; 10],
    start: i64,
    valid: bool,
}

impl DayCache {
    /// Unix seconds at 00:00 UTC of the `YYYY-MM-DD` in `date` (exactly 10 bytes).
    fn day_start(&mut self, date: &[u8]) -> Result<i64, &'static str> {
        if self.valid && self.key[..] == *date {
            return Ok(self.start);
        }
        if date.len() != 10 || date[4] != b'-' || date[7] != b'-' {
            return Err(TIME_FORMAT);
        }
        let (Some(y), Some(m), Some(d)) = (
            digits(&date[0..4]),
            digits(&date[5..7]),
            digits(&date[8..10]),
        ) else {
            return Err(TIME_FORMAT);
        };
        let day = i32::try_from(y)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, m as u32, d as u32))
            .ok_or("no such calendar date")?;
        let start = day.and_time(NaiveTime::MIN).and_utc().timestamp();
        self.key.copy_from_slice(date);
        self.start = start;
        self.valid = true;
        Ok(start)
    }
}

/// Value of an all-ASCII-digit slice (at most 18 digits, so it cannot overflow).
fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

fn parse_time(field: &[u8], days: &mut DayCache) -> Result<Instant, &'static str> {
    let s = field.trim_ascii();
    if !s.is_empty() && s.iter().all(u8::is_ascii_digit) {
        // Lengths other than 13 and 16 fall through to the error before `digits` could
        // overflow.
        let v = if matches!(s.len(), 13 | 16) {
            digits(s).ok_or(TIME_FORMAT)?
        } else {
            0
        };
        return match s.len() {
            13 => Ok(Instant {
                secs: v.div_euclid(1000),
                nanos: v.rem_euclid(1000) * 1_000_000,
            }),
            16 => Ok(Instant {
                secs: v.div_euclid(1_000_000),
                nanos: v.rem_euclid(1_000_000) * 1000,
            }),
            _ => Err(
                "an integer time must be epoch milliseconds (13 digits) or microseconds (16 digits)",
            ),
        };
    }
    if s.len() < 19 || !matches!(s[10], b' ' | b'T' | b't') || s[13] != b':' || s[16] != b':' {
        return Err(TIME_FORMAT);
    }
    let day_start = days.day_start(&s[..10])?;
    let (Some(h), Some(m), Some(sec)) =
        (digits(&s[11..13]), digits(&s[14..16]), digits(&s[17..19]))
    else {
        return Err(TIME_FORMAT);
    };
    if h > 23 || m > 59 || sec > 59 {
        return Err("hour, minute or second out of range");
    }

    let mut rest = &s[19..];
    let mut nanos = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err(TIME_FORMAT);
        }
        // Digits past nanoseconds cannot matter for minute bars; they are dropped.
        let kept = n.min(9);
        nanos = digits(&tail[..kept]).ok_or(TIME_FORMAT)? * 10_i64.pow((9 - kept) as u32);
        rest = &tail[n..];
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (oh, om) = match tail {
                [h1, h2] => (digits(&[*h1, *h2]), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2]), digits(&[*m1, *m2]))
                }
                _ => (None, None),
            };
            let (Some(oh), Some(om)) = (oh, om) else {
                return Err(TIME_FORMAT);
            };
            if oh > 23 || om > 59 {
                return Err("UTC offset out of range");
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return Err(TIME_FORMAT),
    };
    Ok(Instant {
        secs: day_start + h * 3600 + m * 60 + sec - offset,
        nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Recorded, LoadError> {
        parse_csv(Path::new("data/x.csv"), text)
    }

    fn parse_ok(text: &str) -> Recorded {
        match parse(text) {
            Ok(r) => r,
            Err(e) => panic!("expected a successful parse, got: {e}"),
        }
    }

    fn parse_err(text: &str) -> LoadError {
        match parse(text) {
            Ok(r) => panic!("expected an error, parsed {} candles", r.candles.len()),
            Err(e) => e,
        }
    }

    // First lines of binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv.
    const TIMESTAMP_HEAD: &str = "timestamp,open,high,low,close,volume
2021-03-26 03:00:00,51696.7,51926.17,51696.7,51827.72,73.9024
2021-03-26 03:01:00,51826.95,51842.84,51724.7,51761.1,21.689789
2021-03-26 03:02:00,51761.09,51810.36,51723.54,51808.88,23.316243
";

    #[test]
    fn timestamp_layout_parses_real_head() {
        let r = parse_ok(TIMESTAMP_HEAD);
        assert_eq!(r.layout, Layout::TimestampOhlcv);
        assert_eq!(r.path, Path::new("data/x.csv"));
        assert_eq!(r.candles.len(), 3);
        // date -u -d "2021-03-26 03:00 UTC" +%s
        assert_eq!(
            r.candles[0],
            Candle {
                open_time: 1_616_727_600,
                open: 51696.7,
                high: 51926.17,
                low: 51696.7,
                close: 51827.72,
                volume: 73.9024,
            }
        );
        assert_eq!(r.candles[1].open_time, 1_616_727_660);
        assert_eq!(r.candles[2].open_time, 1_616_727_720);
        assert_eq!(r.candles[2].close, 51808.88);
        assert!(r.gaps.is_empty());
    }

    #[test]
    fn open_time_layout_with_offset_binance_us_head() {
        let r = parse_ok(
            "open_time,open,high,low,close,volume
2023-03-01 00:00:00+00:00,23140.48,23150.77,23128.52,23142.31,2.131777
2023-03-01 00:01:00+00:00,23143.89,23148.8,23137.61,23137.77,0.881378
",
        );
        assert_eq!(r.layout, Layout::OpenTimeOhlcv);
        // date -u -d "2023-03-01 00:00 UTC" +%s
        assert_eq!(r.candles[0].open_time, 1_677_628_800);
        assert_eq!(r.candles[1].open_time, 1_677_628_860);
        assert_eq!(r.candles[1].volume, 0.881378);
    }

    #[test]
    fn open_time_layout_without_offset_polymarket_week_head() {
        let r = parse_ok(
            "open_time,open,high,low,close,volume
2026-02-21 14:26:00,68522.3,68525.53,68484.35,68484.35,7.44951
2026-02-21 14:27:00,68484.36,68484.36,68400.0,68400.01,66.92764
",
        );
        assert_eq!(r.layout, Layout::OpenTimeOhlcv);
        // date -u -d "2026-02-21 14:26 UTC" +%s
        assert_eq!(r.candles[0].open_time, 1_771_683_960);
        assert_eq!(r.candles[1].low, 68400.0);
    }

    // First lines of binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv.
    const FULLCOLS_HEAD: &str = "open_time,open,high,low,close,volume,close_time,qav,num_trades,taker_base,taker_quote,ignore,symbol
2025-10-29 04:22:00+00:00,112731.29,112749.73,112730.4,112749.72,4.75297,2025-10-29 04:22:59.999000+00:00,535846.83867820,1459,1.90045000,214244.39643660,0,BTCUSDT
2025-10-29 04:23:00+00:00,112749.71,112749.72,112686.38,112700.35,8.63715,2025-10-29 04:23:59.999000+00:00,973519.26917390,2437,1.44497000,162838.41531140,0,BTCUSDT
";

    #[test]
    fn binance_full_layout_iso_times() {
        let r = parse_ok(FULLCOLS_HEAD);
        assert_eq!(r.layout, Layout::BinanceKlines);
        // date -u -d "2025-10-29 04:22 UTC" +%s
        assert_eq!(
            r.candles[0],
            Candle {
                open_time: 1_761_711_720,
                open: 112731.29,
                high: 112749.73,
                low: 112730.4,
                close: 112749.72,
                volume: 4.75297,
            }
        );
        assert_eq!(r.candles[1].open_time, 1_761_711_780);
    }

    #[test]
    fn binance_full_layout_millisecond_times_without_symbol() {
        // The real first row with its times as Binance's epoch milliseconds.
        let r = parse_ok(
            "open_time,open,high,low,close,volume,close_time,qav,num_trades,taker_base,taker_quote,ignore
1761711720000,112731.29,112749.73,112730.4,112749.72,4.75297,1761711779999,535846.83867820,1459,1.90045000,214244.39643660,0
",
        );
        assert_eq!(r.layout, Layout::BinanceKlines);
        assert_eq!(r.candles[0].open_time, 1_761_711_720);
        assert_eq!(r.candles[0].close, 112749.72);
    }

    #[test]
    fn headerless_raw_binance_millis_and_micros() {
        let r = parse_ok(
            "1761711720000,112731.29,112749.73,112730.4,112749.72,4.75297,1761711779999,535846.83867820,1459,1.90045000,214244.39643660,0
1761711780000000,112749.71,112749.72,112686.38,112700.35,8.63715,1761711839999999,973519.26917390,2437,1.44497000,162838.41531140,0
",
        );
        assert_eq!(r.layout, Layout::BinanceRaw);
        assert_eq!(r.candles.len(), 2, "the first line is data, not a header");
        assert_eq!(r.candles[0].open_time, 1_761_711_720);
        assert_eq!(r.candles[1].open_time, 1_761_711_780);
        assert_eq!(r.candles[1].open, 112749.71);
    }

    #[test]
    fn close_datetime_layout_privet1x_head() {
        let r = parse_ok(
            "open,high,low,close,volume,quote_volume,trades,close_datetime
96466.11,96495.52,96440.0,96440.0,6.6158,638250.2950308,3577,2024-12-01 00:00:59.999000+01:00
96440.01,96454.62,96422.0,96454.62,7.0222,677202.9744168,2318,2024-12-01 00:01:59.999000+01:00
",
        );
        assert_eq!(r.layout, Layout::CloseDatetime);
        // date -u -d "2024-11-30 23:00 UTC" +%s
        assert_eq!(
            r.candles[0],
            Candle {
                open_time: 1_733_007_600,
                open: 96466.11,
                high: 96495.52,
                low: 96440.0,
                close: 96440.0,
                volume: 6.6158,
            }
        );
        assert_eq!(r.candles[1].open_time, 1_733_007_660);
    }

    #[test]
    fn header_case_crlf_bom_t_separator_z_and_negative_offset() {
        let r = parse_ok(
            "\u{feff}TimeStamp, Open ,HIGH,low,Close,VOLUME\r\n\
             2021-03-26T03:00:00Z,51696.7,51926.17,51696.7,51827.72,73.9024\r\n\
             2021-03-25T23:01:00.000-04:00,51826.95,51842.84,51724.7,51761.1,21.689789\r\n\
             2021-03-26 03:02:00+0000,51761.09,51810.36,51723.54,51808.88,23.316243\r\n",
        );
        assert_eq!(r.layout, Layout::TimestampOhlcv);
        let times: Vec<i64> = r.candles.iter().map(|c| c.open_time).collect();
        assert_eq!(times, [1_616_727_600, 1_616_727_660, 1_616_727_720]);
    }

    #[test]
    fn gaps_are_recorded_not_rejected() {
        // Real rows around the 2021-04-20 maintenance gap.
        let r = parse_ok(
            "timestamp,open,high,low,close,volume
2021-04-20 01:58:00,54813.21,54825.63,54743.0,54825.63,20.928509
2021-04-20 01:59:00,54825.61,54850.0,54752.62,54764.12,9.081129
2021-04-20 04:30:00,54764.13,54787.37,54567.79,54636.86,66.740941
",
        );
        // date -u -d "2021-04-20 01:59 UTC" +%s; date -u -d "2021-04-20 04:30 UTC" +%s
        assert_eq!(
            r.gaps,
            [Gap {
                after_open_time: 1_618_883_940,
                next_open_time: 1_618_893_000,
                missing: 150,
            }]
        );
        assert_eq!(r.missing_minutes(), 150);
        assert_eq!(
            describe_gaps(&r.gaps),
            "1 gap, 150 missing minutes: 2021-04-20 01:59→04:30 UTC (150 min)"
        );
    }

    #[test]
    fn describe_gaps_formats() {
        assert_eq!(describe_gaps(&[]), "no gaps");
        let day = 86_400;
        let base = 1_618_876_800; // 2021-04-20 00:00 UTC
        let gap = |after: i64, missing: i64| Gap {
            after_open_time: after,
            next_open_time: after + (missing + 1) * 60,
            missing,
        };
        // One that crosses midnight shows the end's date too.
        assert_eq!(
            describe_gaps(&[gap(base - 60, 1)]),
            "1 gap, 1 missing minute: 2021-04-19 23:59→2021-04-20 00:01 UTC (1 min)"
        );
        let many: Vec<Gap> = (0..7).map(|i| gap(base + i * day, 2)).collect();
        let text = describe_gaps(&many);
        assert!(
            text.starts_with("7 gaps, 14 missing minutes: 2021-04-20 00:00→00:03 UTC (2 min), ")
        );
        assert!(
            text.contains("2021-04-24 00:00→00:03 UTC (2 min), … and 2 more"),
            "{text}"
        );
        assert!(!text.contains("2021-04-25"), "{text}");
    }

    fn with_row(row: &str) -> String {
        format!("{TIMESTAMP_HEAD}{row}\n")
    }

    #[test]
    fn bad_number_names_line_and_column() {
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,51900,51800,abc,1"));
        assert!(
            matches!(e, LoadError::BadNumber { line: 5, column: "close", ref value, .. } if value == "abc")
        );
        assert_eq!(
            e.to_string(),
            "data/x.csv line 5, column \"close\": \"abc\" is not a number; fix or delete this row"
        );
        assert_eq!((e.line(), e.column()), (Some(5), Some("close")));
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,51900,51800,51801,"));
        assert!(
            matches!(
                e,
                LoadError::BadNumber {
                    line: 5,
                    column: "volume",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_header_lists_accepted_layouts() {
        let e = parse_err(
            "pair,interval,start_utc,end_utc,exchange
BTCUSDT,1m,2023-03-01T00:00:00Z,2023-03-21T23:59:00Z,Binance.US
",
        );
        assert!(
            matches!(e, LoadError::UnknownHeader { ref found, .. } if found == "pair,interval,start_utc,end_utc,exchange")
        );
        let text = e.to_string();
        for layout in Layout::ALL {
            assert!(text.contains(layout.header()), "{text}");
        }
        assert_eq!(e.line(), Some(1));
        // Headerless but not Binance's 12 raw fields.
        let e = parse_err("1761711720000,1,2,0.5,1.5,3\n");
        assert!(matches!(e, LoadError::UnknownHeader { .. }), "{e}");
    }

    #[test]
    fn empty_file_and_header_only() {
        assert!(matches!(parse_err(""), LoadError::Empty { .. }));
        assert!(matches!(parse_err("\n\n"), LoadError::Empty { .. }));
        let e = parse_err("timestamp,open,high,low,close,volume\n");
        assert!(
            matches!(
                e,
                LoadError::NoCandles {
                    layout: Layout::TimestampOhlcv,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn time_not_on_minute_boundary() {
        let e = parse_err(&with_row(
            "2021-03-26 03:03:30,51808.88,51900,51800,51801,1",
        ));
        assert!(
            matches!(
                e,
                LoadError::NotOnMinute {
                    line: 5,
                    column: "timestamp",
                    open_time: 1_616_727_810,
                    ..
                }
            ),
            "{e}"
        );
        // A close time that is not x:59.999 does not give a whole-minute open.
        let e = parse_err(
            "open,high,low,close,volume,quote_volume,trades,close_datetime
96466.11,96495.52,96440.0,96440.0,6.6158,638250.2950308,3577,2024-12-01 00:00:58.000000+01:00
",
        );
        assert!(
            matches!(
                e,
                LoadError::NotOnMinute {
                    line: 2,
                    column: "close_datetime",
                    ..
                }
            ),
            "{e}"
        );
        // Sub-second noise rounds away.
        let r = parse_ok(&with_row(
            "2021-03-26 03:03:00.2,51808.88,51900,51800,51801,1",
        ));
        assert_eq!(r.candles[3].open_time, 1_616_727_780);
    }

    #[test]
    fn malformed_times() {
        for (row, what) in [
            ("2021-02-30 03:03:00,1,1,1,1,1", "no such calendar date"),
            ("2021-03-26 24:00:00,1,1,1,1,1", "out of range"),
            ("2021-03-26,1,1,1,1,1", "expected YYYY-MM-DD"),
            ("2021-03-26 03:03:00 UTC,1,1,1,1,1", "expected YYYY-MM-DD"),
            ("1616727780,1,1,1,1,1", "13 digits"),
            ("17617117200000000000000,1,1,1,1,1", "13 digits"),
        ] {
            let text = format!("timestamp,open,high,low,close,volume\n{row}\n");
            let e = parse_err(&text);
            assert!(
                matches!(
                    e,
                    LoadError::BadTime {
                        line: 2,
                        column: "timestamp",
                        ..
                    }
                ),
                "{row}: {e}"
            );
            assert!(e.to_string().contains(what), "{row}: {e}");
        }
    }

    #[test]
    fn non_positive_or_non_finite_price_and_bad_volume() {
        let e = parse_err(&with_row("2021-03-26 03:03:00,0,51900,51800,51801,1"));
        assert!(
            matches!(
                e,
                LoadError::BadPrice {
                    line: 5,
                    column: "open",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,51900,-5,51801,1"));
        assert!(
            matches!(
                e,
                LoadError::BadPrice {
                    line: 5,
                    column: "low",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,inf,51800,51801,1"));
        assert!(
            matches!(
                e,
                LoadError::BadPrice {
                    line: 5,
                    column: "high",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,51900,51800,NaN,1"));
        assert!(
            matches!(
                e,
                LoadError::BadPrice {
                    line: 5,
                    column: "close",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_err(&with_row(
            "2021-03-26 03:03:00,51808.88,51900,51800,51801,-1",
        ));
        assert!(matches!(e, LoadError::BadVolume { line: 5, .. }), "{e}");
        assert_eq!(e.column(), Some("volume"));
    }

    #[test]
    fn ohlc_violations() {
        let e = parse_err(&with_row(
            "2021-03-26 03:03:00,51808.88,51808.00,51800,51801,1",
        ));
        assert!(
            matches!(
                e,
                LoadError::OhlcViolation {
                    line: 5,
                    column: "high",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("OHLC violation"), "{e}");
        let e = parse_err(&with_row(
            "2021-03-26 03:03:00,51808.88,51900,51801.5,51801,1",
        ));
        assert!(
            matches!(
                e,
                LoadError::OhlcViolation {
                    line: 5,
                    column: "low",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn duplicate_and_out_of_order_bars_are_rejected() {
        let e = parse_err(&with_row(
            "2021-03-26 03:02:00,51761.09,51810.36,51723.54,51808.88,23.316243",
        ));
        assert!(
            matches!(
                e,
                LoadError::Duplicate {
                    line: 5,
                    first_line: 4,
                    open_time: 1_616_727_720,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "data/x.csv line 5: a second bar opening at 2021-03-26 03:02 UTC (the first is on \
             line 4); remove the duplicate row"
        );
        let e = parse_err(&with_row(
            "2021-03-26 03:01:00,51761.09,51810.36,51723.54,51808.88,1",
        ));
        assert!(
            matches!(
                e,
                LoadError::OutOfOrder {
                    line: 5,
                    previous_line: 4,
                    open_time: 1_616_727_660,
                    previous_open_time: 1_616_727_720,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("sort the file"), "{e}");
    }

    #[test]
    fn field_count_and_close_time_mismatch() {
        let e = parse_err(&with_row("2021-03-26 03:03:00,51808.88,51900,51800,51801"));
        assert!(
            matches!(
                e,
                LoadError::FieldCount {
                    line: 5,
                    expected: 6,
                    found: 5,
                    ..
                }
            ),
            "{e}"
        );
        // A 5-minute kline: close_time 4:59.999 after the open.
        let e = parse_err(
            "1761711720000,112731.29,112749.73,112730.4,112749.72,4.75297,1761712019999,535846.83867820,1459,1.90045000,214244.39643660,0\n",
        );
        assert!(
            matches!(e, LoadError::CloseTimeMismatch { line: 1, .. }),
            "{e}"
        );
        assert_eq!(e.column(), Some("close_time"));
    }

    #[test]
    fn io_and_utf8_errors_name_the_file() {
        let e = match load_csv(Path::new("/nonexistent/klines.csv")) {
            Ok(_) => panic!("loaded a missing file"),
            Err(e) => e,
        };
        assert!(matches!(e, LoadError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/klines.csv"), "{e}");

        let path = std::env::temp_dir().join(format!("recorded-utf8-{}.csv", std::process::id()));
        let mut bytes = TIMESTAMP_HEAD.as_bytes().to_vec();
        bytes.extend_from_slice(b"2021-03-26 03:03:00,5\xff,1,1,1,1\n");
        if let Err(e) = std::fs::write(&path, &bytes) {
            panic!("cannot write {}: {e}", path.display());
        }
        let result = load_csv(&path);
        let _ = std::fs::remove_file(&path);
        match result {
            Err(LoadError::NotUtf8 { line: 5, .. }) => {}
            other => panic!("expected NotUtf8 on line 5, got {other:?}"),
        }
    }

    #[test]
    fn error_messages_read_well() {
        // Printed with --nocapture for review; the assertions above pin the content.
        for text in [
            "",
            "a,b\n",
            "timestamp,open,high,low,close,volume\n",
            "timestamp,open,high,low,close,volume\n2021-03-26 03:00:10,1,1,1,1,1\n",
            "timestamp,open,high,low,close,volume\n2021-03-26 03:00:00,1,1,2,1,1\n",
            "timestamp,open,high,low,close,volume\n2021-03-26 03:00:00,1,1,1,1,1\n2021-03-26 02:00:00,1,1,1,1,1\n",
            "timestamp,open,high,low,close,volume\n2021-03-26 03:00,1,1,1,1,1\n",
            "1761711720000,1,1,1,1,1,1761711779000,0,0,0,0,0\n",
        ] {
            println!("{}", parse_err(text));
        }
    }

    // ---- the real recorded files ----

    const SHARED_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

    fn shared_file(relative: &str) -> PathBuf {
        let path = Path::new(SHARED_DATA).join(relative);
        assert!(
            path.is_file(),
            "recorded data file {} is missing: the shared data folder must sit next to the \
             repository (../shared/data from the crate root)",
            path.display()
        );
        path
    }

    /// Loads a real file and checks it against the figures in shared/data/README.md.
    fn check_real(
        relative: &str,
        layout: Layout,
        rows: usize,
        first: i64,
        last: i64,
        gaps: &[Gap],
    ) {
        let path = shared_file(relative);
        let r = match load_csv(&path) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.layout, layout, "{relative}");
        assert_eq!(r.candles.len(), rows, "{relative}");
        assert_eq!(
            r.candles.first().map(|c| c.open_time),
            Some(first),
            "{relative}"
        );
        assert_eq!(
            r.candles.last().map(|c| c.open_time),
            Some(last),
            "{relative}"
        );
        assert_eq!(r.gaps, gaps, "{relative}");
        let span_minutes = (last - first) / CANDLE_SECS + 1;
        assert_eq!(
            span_minutes,
            rows as i64 + r.missing_minutes(),
            "{relative}"
        );
    }

    const KLINES: &str = "binance_klines_1m/";

    // Expected times below: date -u -d "<README time> UTC" +%s.

    #[test]
    fn real_2021_with_two_maintenance_gaps() {
        let file = "binance_klines_1m/binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv";
        let gaps = [
            Gap {
                after_open_time: 1_618_883_940, // 2021-04-20 01:59
                next_open_time: 1_618_893_000,  // 2021-04-20 04:30
                missing: 150,
            },
            Gap {
                after_open_time: 1_619_323_200, // 2021-04-25 04:00
                next_open_time: 1_619_340_300,  // 2021-04-25 08:45
                missing: 284,
            },
        ];
        check_real(
            file,
            Layout::TimestampOhlcv,
            50_000,
            1_616_727_600,
            1_619_753_580,
            &gaps,
        );
        assert_eq!(gaps.iter().map(|g| g.missing).sum::<i64>(), 434);
        assert_eq!(
            describe_gaps(&gaps),
            "2 gaps, 434 missing minutes: 2021-04-20 01:59→04:30 UTC (150 min), \
             2021-04-25 04:00→08:45 UTC (284 min)"
        );
    }

    #[test]
    fn real_ccxt_windows_without_gaps() {
        for (name, rows, first, last) in [
            (
                "2022-06-15_2022-07-19",
                50_000,
                1_655_262_000,
                1_658_261_940,
            ),
            (
                "2023-08-26_2023-09-29",
                50_000,
                1_693_018_800,
                1_696_018_740,
            ),
            (
                "2024-02-12_2024-03-17",
                50_000,
                1_707_706_800,
                1_710_706_740,
            ),
            (
                "2024-10-01_2024-11-04",
                50_000,
                1_727_751_600,
                1_730_751_540,
            ),
            (
                "2025-01-01_2025-02-04",
                50_000,
                1_735_700_400,
                1_738_700_340,
            ),
            (
                "2025-03-01_2025-03-31",
                44_640,
                1_740_798_000,
                1_743_476_340,
            ),
        ] {
            let file = format!("{KLINES}binance_spot_BTCUSDT_1m_{name}.csv");
            check_real(&file, Layout::TimestampOhlcv, rows, first, last, &[]);
        }
    }

    #[test]
    fn real_privet1x_close_datetime() {
        check_real(
            "binance_klines_1m/binance_spot_BTCUSDT_1m_2024-12-01_2024-12-30_privet1x.csv",
            Layout::CloseDatetime,
            41_761,
            1_733_007_600, // 2024-11-30 23:00
            1_735_513_200, // 2024-12-29 23:00
            &[],
        );
    }

    #[test]
    fn real_fullcols() {
        check_real(
            "binance_klines_1m/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv",
            Layout::BinanceKlines,
            4_320,
            1_761_711_720, // 2025-10-29 04:22
            1_761_970_860, // 2025-11-01 04:21
            &[],
        );
    }

    #[test]
    fn real_binance_us() {
        check_real(
            "binance_klines_1m/binanceus_spot_BTCUSDT_1m_2023-03-01_2023-03-21.csv",
            Layout::OpenTimeOhlcv,
            30_240,
            1_677_628_800, // 2023-03-01 00:00
            1_679_443_140, // 2023-03-21 23:59
            &[],
        );
    }

    #[test]
    fn real_polymarket_week_binance_btc() {
        check_real(
            "polymarket_btc_updown_2026-02/binance_btc.csv",
            Layout::OpenTimeOhlcv,
            10_080,
            1_771_683_960, // 2026-02-21 14:26
            1_772_288_700, // 2026-02-28 14:25
            &[],
        );
    }

    #[test]
    fn real_metadata_file_is_not_klines() {
        let path =
            shared_file("binance_klines_1m/binanceus_metadata_range_1m_2023-03-01_2023-03-21.csv");
        assert!(matches!(
            load_csv(&path),
            Err(LoadError::UnknownHeader { .. })
        ));
    }

    #[test]
    fn every_real_kline_file_is_covered() {
        // A file added to the folder must get its own expectations above.
        let dir = Path::new(SHARED_DATA).join("binance_klines_1m");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => panic!(
                "cannot list {} ({e}): the shared data folder must sit next to the repository",
                dir.display()
            ),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".csv"))
            .collect();
        names.sort();
        let expected = [
            "binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv",
            "binance_spot_BTCUSDT_1m_2022-06-15_2022-07-19.csv",
            "binance_spot_BTCUSDT_1m_2023-08-26_2023-09-29.csv",
            "binance_spot_BTCUSDT_1m_2024-02-12_2024-03-17.csv",
            "binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv",
            "binance_spot_BTCUSDT_1m_2024-12-01_2024-12-30_privet1x.csv",
            "binance_spot_BTCUSDT_1m_2025-01-01_2025-02-04.csv",
            "binance_spot_BTCUSDT_1m_2025-03-01_2025-03-31.csv",
            "binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv",
            "binanceus_metadata_range_1m_2023-03-01_2023-03-21.csv",
            "binanceus_spot_BTCUSDT_1m_2023-03-01_2023-03-21.csv",
        ];
        assert_eq!(names, expected);
    }
}
