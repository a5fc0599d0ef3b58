//! Polymarket's recorded resolutions of the BTC Up/Down markets, loaded from an outcomes CSV.
//!
//! This module owns the outcomes file format, its strict validation and its errors
//! ([`OutcomesError`], each naming the file, the 1-based line and the column), and the
//! lookup a backtest venue settles from ([`Outcomes::lookup`]).
//!
//! Accepted layouts (header names case-insensitive), one row per market:
//! - `timestamp,slug,yes_price,clob_token_id` (the 5-minute collector's file), and
//! - `timestamp,slug,yes_price,no_price,clob_token_id_yes,clob_token_id_no` (the 15-minute one).
//!
//! `timestamp` is the window start: an ISO time (`2026-02-21 14:30:00+00:00`, `T` or space,
//! an offset or `Z`; no offset means UTC) or Unix seconds. It must be a multiple of the
//! configured interval and equal the time in `slug`, which must be exactly
//! `btc-updown-<5m|15m|…>-<timestamp>`. `yes_price` is the Up token's final price:
//! `1` = resolved Up, `0` = resolved Down, anything else in `[0, 1]` = not resolved (never
//! guessed). Rows must be in strictly increasing time order with no duplicate market.

use crate::domain::{Side, slug_for};
use chrono::{DateTime, NaiveDateTime};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why an outcomes file could not be used. Every variant names the file and, where it
/// applies, the 1-based line and the column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutcomesError {
    /// The file could not be read.
    #[error("cannot read outcomes file {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{} line {line}: not valid UTF-8 text; re-export the outcomes as a UTF-8 CSV", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: u64,
    },
    /// The CSV reader failed (malformed quoting and the like).
    #[error("{} line {line}: malformed CSV ({source}); fix the quoting on that line", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 if unknown).
        line: u64,
        /// The underlying CSV error.
        source: csv::Error,
    },
    /// The header is not one of the accepted layouts.
    #[error(
        "{} line 1: unrecognised outcomes header \"{found}\"; expected \"{}\" or \"{}\"",
        path.display(), OutcomesLayout::Single.header(), OutcomesLayout::YesNo.header()
    )]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The first line as found (shortened).
        found: String,
    },
    /// The file has a header but no rows.
    #[error("{} has no outcome rows after its header", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A row has the wrong number of fields.
    #[error("{} line {line}: {found} fields where the header has {expected}; fix or delete the row", path.display())]
    FieldCount {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A field is malformed or out of range.
    #[error("{} line {line}, column \"{column}\": \"{value}\" {problem}", path.display())]
    BadField {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: &'static str,
        /// The field as found (shortened).
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The slug does not name the market of the row's timestamp and interval.
    #[error(
        "{} line {line}, column \"slug\": \"{found}\" does not match the row's timestamp and the \
         configured {interval_secs} s interval: expected \"{expected}\"{hint}",
        path.display()
    )]
    SlugMismatch {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The slug as found.
        found: String,
        /// The slug the timestamp implies.
        expected: String,
        /// The configured interval (`session.interval_secs`).
        interval_secs: i64,
        /// Extra advice (e.g. a 15-minute file with a 5-minute configuration).
        hint: String,
    },
    /// The same market appears twice.
    #[error("{} line {line}: a second row for {slug} (the first is on line {first_line}); remove the duplicate", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line of the repeat.
        line: u64,
        /// 1-based line of the first row.
        first_line: u64,
        /// The market.
        slug: String,
    },
    /// A row is earlier than the row before it.
    #[error(
        "{} line {line}: {slug} comes after {previous_slug} on line {previous_line}; rows must be \
         in ascending time order, sort the file by timestamp",
        path.display()
    )]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// This row's market.
        slug: String,
        /// 1-based line of the previous row.
        previous_line: u64,
        /// The previous row's market.
        previous_slug: String,
    },
}

impl OutcomesError {
    /// The 1-based line the error refers to, if any.
    pub fn line(&self) -> Option<u64> {
        match self {
            OutcomesError::Io { .. } | OutcomesError::NoRows { .. } => None,
            OutcomesError::BadHeader { .. } => Some(1),
            OutcomesError::NotUtf8 { line, .. }
            | OutcomesError::Csv { line, .. }
            | OutcomesError::FieldCount { line, .. }
            | OutcomesError::BadField { line, .. }
            | OutcomesError::SlugMismatch { line, .. }
            | OutcomesError::Duplicate { line, .. }
            | OutcomesError::OutOfOrder { line, .. } => Some(*line),
        }
    }

    /// The column the error refers to, if any.
    pub fn column(&self) -> Option<&'static str> {
        match self {
            OutcomesError::BadField { column, .. } => Some(column),
            OutcomesError::SlugMismatch { .. } => Some("slug"),
            _ => None,
        }
    }
}

/// The two accepted outcomes layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomesLayout {
    /// `timestamp,slug,yes_price,clob_token_id`.
    Single,
    /// `timestamp,slug,yes_price,no_price,clob_token_id_yes,clob_token_id_no`.
    YesNo,
}

impl OutcomesLayout {
    /// The header line this layout is recognised by.
    pub fn header(self) -> &'static str {
        match self {
            OutcomesLayout::Single => "timestamp,slug,yes_price,clob_token_id",
            OutcomesLayout::YesNo => {
                "timestamp,slug,yes_price,no_price,clob_token_id_yes,clob_token_id_no"
            }
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            OutcomesLayout::Single => &["timestamp", "slug", "yes_price", "clob_token_id"],
            OutcomesLayout::YesNo => &[
                "timestamp",
                "slug",
                "yes_price",
                "no_price",
                "clob_token_id_yes",
                "clob_token_id_no",
            ],
        }
    }
}

/// One market of the outcomes file.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeRow {
    /// Window start, Unix seconds.
    pub start: i64,
    /// The market's slug.
    pub slug: String,
    /// The Up token's final price as recorded.
    pub yes_price: Decimal,
    /// `Some` when resolved (`yes_price` 1 → Up, 0 → Down); `None` when not resolved.
    pub outcome: Option<Side>,
    /// 1-based line in the file.
    pub line: u64,
}

/// What the outcomes file says about one window, as a venue may use it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup {
    /// Polymarket resolved the market to this side.
    Resolved(Side),
    /// The market is in the file but was not resolved when recorded.
    Unresolved(Decimal),
    /// The market is resolved in the file, but its result is withheld from this run (the
    /// look-ahead check hides results after its cut-off; the market still exists).
    Withheld,
    /// No row for this window.
    Missing,
}

/// Polymarket's recorded resolutions, by window start.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcomes {
    /// The file they came from.
    pub path: PathBuf,
    /// The interval length the rows were validated for.
    pub interval_secs: i64,
    /// The layout found.
    pub layout: OutcomesLayout,
    rows: BTreeMap<i64, OutcomeRow>,
    /// Results of windows ending after this time are withheld (see [`Lookup::Withheld`]).
    withheld_after: Option<i64>,
}

impl Outcomes {
    /// What the file says about the window starting at `start`.
    pub fn lookup(&self, start: i64) -> Lookup {
        let Some(row) = self.rows.get(&start) else {
            return Lookup::Missing;
        };
        match row.outcome {
            Some(_)
                if self
                    .withheld_after
                    .is_some_and(|cut| start + self.interval_secs > cut) =>
            {
                Lookup::Withheld
            }
            Some(side) => Lookup::Resolved(side),
            None => Lookup::Unresolved(row.yes_price),
        }
    }

    /// The row of the window starting at `start`, if any (for reports, not for decisions).
    pub fn row(&self, start: i64) -> Option<&OutcomeRow> {
        self.rows.get(&start)
    }

    /// All rows in time order.
    pub fn rows(&self) -> impl Iterator<Item = &OutcomeRow> {
        self.rows.values()
    }

    /// Rows whose market was not resolved when recorded, in time order.
    pub fn unresolved(&self) -> impl Iterator<Item = &OutcomeRow> {
        self.rows.values().filter(|r| r.outcome.is_none())
    }

    /// Number of markets in the file.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file holds no market (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Markets resolved Up and Down.
    pub fn resolved_counts(&self) -> (usize, usize) {
        let up = self
            .rows
            .values()
            .filter(|r| r.outcome == Some(Side::Up))
            .count();
        let down = self
            .rows
            .values()
            .filter(|r| r.outcome == Some(Side::Down))
            .count();
        (up, down)
    }

    /// The same outcomes with the results of every window ending after `t` withheld: the
    /// markets still exist (so they are quoted), but they cannot settle.
    pub fn withheld_after(&self, t: i64) -> Outcomes {
        Outcomes {
            withheld_after: Some(self.withheld_after.map_or(t, |c| c.min(t))),
            ..self.clone()
        }
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (up, down) = self.resolved_counts();
        let open = self.len() - up - down;
        write!(
            f,
            "{}: {} markets ({up} up, {down} down, {open} not resolved)",
            self.path.display(),
            self.len()
        )
    }
}

/// Read `path` and parse it with [`parse_outcomes`].
pub fn load_outcomes(path: &Path, interval_secs: i64) -> Result<Outcomes, OutcomesError> {
    let bytes = std::fs::read(path).map_err(|source| OutcomesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad_at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad_at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1;
        OutcomesError::NotUtf8 {
            path: path.to_path_buf(),
            line,
        }
    })?;
    parse_outcomes(path, &text, interval_secs)
}

/// Parse the text of an outcomes CSV for markets of `interval_secs` seconds;
/// `path_for_errors` names the file in errors.
pub fn parse_outcomes(
    path_for_errors: &Path,
    text: &str,
    interval_secs: i64,
) -> Result<Outcomes, OutcomesError> {
    let path = path_for_errors;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_error = |source: csv::Error| OutcomesError::Csv {
        path: path.to_path_buf(),
        line: source.position().map_or(0, |p| p.line()),
        source,
    };
    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).map_err(csv_error)? {
        return Err(OutcomesError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let names: Vec<String> = record
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let layout = [OutcomesLayout::Single, OutcomesLayout::YesNo]
        .into_iter()
        .find(|l| {
            l.columns()
                .iter()
                .copied()
                .eq(names.iter().map(String::as_str))
        })
        .ok_or_else(|| OutcomesError::BadHeader {
            path: path.to_path_buf(),
            found: shorten(&record.iter().collect::<Vec<_>>().join(",")),
        })?;
    let cols = layout.columns();

    let mut rows: BTreeMap<i64, OutcomeRow> = BTreeMap::new();
    let mut previous: Option<(i64, u64, String)> = None;
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        if record.len() != cols.len() {
            return Err(OutcomesError::FieldCount {
                path: path.to_path_buf(),
                line,
                expected: cols.len(),
                found: record.len(),
            });
        }
        let bad = |column: &'static str, value: &str, problem: String| OutcomesError::BadField {
            path: path.to_path_buf(),
            line,
            column,
            value: shorten(value),
            problem,
        };
        let ts_field = record[0].trim();
        let start = parse_time(ts_field).map_err(|why| {
            bad(
                "timestamp",
                ts_field,
                format!(
                    "is not a window start time ({why}); use Unix seconds or e.g. 2026-02-21 14:30:00+00:00"
                ),
            )
        })?;
        if start.rem_euclid(interval_secs) != 0 {
            return Err(bad(
                "timestamp",
                ts_field,
                format!(
                    "is not on a {interval_secs} s window boundary (session.interval_secs); \
                     markets start at multiples of the interval"
                ),
            ));
        }
        let slug = record[1].trim().to_string();
        let expected = slug_for(start, interval_secs);
        if slug != expected {
            // Same start, other length (a 15-minute file with a 5-minute configuration).
            let other_length = matches!(
                (slug.rsplit_once('-'), expected.rsplit_once('-')),
                (Some((found_prefix, ts)), Some((wanted_prefix, _)))
                    if ts == start.to_string() && found_prefix != wanted_prefix
            );
            let hint = if other_length {
                "; the file's markets have another length: set session.interval_secs to match \
                 (300 for 5m, 900 for 15m)"
                    .to_string()
            } else {
                String::new()
            };
            return Err(OutcomesError::SlugMismatch {
                path: path.to_path_buf(),
                line,
                found: shorten(&slug),
                expected,
                interval_secs,
                hint,
            });
        }
        let yes_field = record[2].trim();
        let yes_price = parse_price(yes_field).map_err(|p| bad("yes_price", yes_field, p))?;
        let outcome = if yes_price == Decimal::ONE {
            Some(Side::Up)
        } else if yes_price.is_zero() {
            Some(Side::Down)
        } else {
            None
        };
        let token_cols: &[usize] = match layout {
            OutcomesLayout::Single => &[3],
            OutcomesLayout::YesNo => {
                let no_field = record[3].trim();
                let no_price = parse_price(no_field).map_err(|p| bad("no_price", no_field, p))?;
                if outcome.is_some() && yes_price + no_price != Decimal::ONE {
                    return Err(bad(
                        "no_price",
                        no_field,
                        format!(
                            "contradicts yes_price {yes_price}: a resolved market has prices 1 and 0"
                        ),
                    ));
                }
                &[4, 5]
            }
        };
        for &c in token_cols {
            let id = record[c].trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    cols[c],
                    id,
                    "is not a CLOB token id (a decimal number); fix or delete the row".into(),
                ));
            }
        }
        if let Some((prev_start, prev_line, prev_slug)) = &previous {
            if start == *prev_start {
                return Err(OutcomesError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    first_line: *prev_line,
                    slug,
                });
            }
            if start < *prev_start {
                if let Some(first) = rows.get(&start) {
                    return Err(OutcomesError::Duplicate {
                        path: path.to_path_buf(),
                        line,
                        first_line: first.line,
                        slug,
                    });
                }
                return Err(OutcomesError::OutOfOrder {
                    path: path.to_path_buf(),
                    line,
                    slug,
                    previous_line: *prev_line,
                    previous_slug: prev_slug.clone(),
                });
            }
        }
        previous = Some((start, line, slug.clone()));
        rows.insert(
            start,
            OutcomeRow {
                start,
                slug,
                yes_price,
                outcome,
                line,
            },
        );
    }
    if rows.is_empty() {
        return Err(OutcomesError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(Outcomes {
        path: path.to_path_buf(),
        interval_secs,
        layout,
        rows,
        withheld_after: None,
    })
}

/// A price in `[0, 1]`, exactly as written.
fn parse_price(field: &str) -> Result<Decimal, String> {
    let value = field
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(field))
        .map_err(|_| "is not a number; fix or delete the row".to_string())?;
    if value < Decimal::ZERO || value > Decimal::ONE {
        return Err("is outside [0, 1]: an outcome token price is a probability".into());
    }
    Ok(value)
}

/// Unix seconds, or an ISO date-time with an optional offset (UTC without one).
fn parse_time(field: &str) -> Result<i64, &'static str> {
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        return field.parse::<i64>().map_err(|_| "too large");
    }
    let normal = field.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&normal) {
        return Ok(t.timestamp());
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&normal, format) {
            return Ok(t.and_utc().timestamp());
        }
    }
    Err("not Unix seconds or YYYY-MM-DD HH:MM:SS[+HH:MM]")
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const HEAD: &str = "timestamp,slug,yes_price,clob_token_id\n";

    fn parse(body: &str) -> Result<Outcomes, OutcomesError> {
        parse_outcomes(Path::new("o.csv"), &format!("{HEAD}{body}"), 300)
    }

    #[test]
    fn reads_resolved_and_unresolved_markets() {
        let o = parse(
            "2026-02-21 14:30:00+00:00,btc-updown-5m-1771684200,1.0,123\n\
             1771684500,btc-updown-5m-1771684500,0.0,456\n\
             2026-02-21T14:40:00Z,btc-updown-5m-1771684800,0.235,789\n",
        )
        .unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o.lookup(1771684200), Lookup::Resolved(Side::Up));
        assert_eq!(o.lookup(1771684500), Lookup::Resolved(Side::Down));
        assert_eq!(o.lookup(1771684800), Lookup::Unresolved(dec!(0.235)));
        assert_eq!(o.lookup(1771685100), Lookup::Missing);
        assert_eq!(o.resolved_counts(), (1, 1));
        assert_eq!(o.unresolved().count(), 1);
        // Withholding hides results of windows ending after the cut, not their existence.
        let w = o.withheld_after(1771684799);
        assert_eq!(w.lookup(1771684200), Lookup::Resolved(Side::Up));
        assert_eq!(w.lookup(1771684500), Lookup::Withheld);
        assert_eq!(w.lookup(1771684800), Lookup::Unresolved(dec!(0.235)));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("2026-02-21 14:30:00+00:00,btc-updown-5m-1771684500,1.0,1\n").unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(2), Some("slug")));
        assert!(e.to_string().contains("o.csv line 2"), "{e}");
        assert!(e.to_string().contains("btc-updown-5m-1771684200"), "{e}");

        let e = parse("2026-02-21 14:31:00+00:00,btc-updown-5m-1771684260,1.0,1\n").unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(2), Some("timestamp")));

        let e = parse("1771684200,btc-updown-5m-1771684200,1.5,1\n").unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(2), Some("yes_price")));
        let e = parse("1771684200,btc-updown-5m-1771684200,up,1\n").unwrap_err();
        assert_eq!(e.column(), Some("yes_price"));

        let e = parse("1771684200,btc-updown-5m-1771684200,1,0xab\n").unwrap_err();
        assert_eq!(e.column(), Some("clob_token_id"));

        let e = parse("1771684200,btc-updown-5m-1771684200,1\n").unwrap_err();
        assert!(
            matches!(e, OutcomesError::FieldCount { line: 2, .. }),
            "{e}"
        );

        let e = parse(
            "1771684200,btc-updown-5m-1771684200,1,1\n1771684200,btc-updown-5m-1771684200,1,1\n",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                OutcomesError::Duplicate {
                    line: 3,
                    first_line: 2,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse(
            "1771684500,btc-updown-5m-1771684500,1,1\n1771684200,btc-updown-5m-1771684200,1,1\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, OutcomesError::OutOfOrder { line: 3, .. }),
            "{e}"
        );

        let e = parse_outcomes(Path::new("o.csv"), "time,slug,up\n", 300).unwrap_err();
        assert_eq!(e.line(), Some(1));
        assert!(parse("").is_err());
    }

    #[test]
    fn a_15_minute_file_needs_a_15_minute_interval() {
        let text = "timestamp,slug,yes_price,no_price,clob_token_id_yes,clob_token_id_no\n\
                    2026-02-28 02:30:00+00:00,btc-updown-15m-1772245800,1.0,0.0,1,2\n";
        let o = parse_outcomes(Path::new("q.csv"), text, 900).unwrap();
        assert_eq!(o.lookup(1772245800), Lookup::Resolved(Side::Up));
        let e = parse_outcomes(Path::new("q.csv"), text, 300).unwrap_err();
        assert!(e.to_string().contains("session.interval_secs"), "{e}");
        let bad = text.replace("1.0,0.0", "1.0,0.5");
        let e = parse_outcomes(Path::new("q.csv"), &bad, 900).unwrap_err();
        assert_eq!(e.column(), Some("no_price"));
    }

    #[test]
    fn the_real_polymarket_week_loads() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/polymarket_btc_updown_2026-02/polymarket_btc.csv"
        ));
        let o = load_outcomes(path, 300).unwrap();
        assert_eq!(o.len(), 2017);
        assert_eq!(o.resolved_counts(), (1006, 1010));
        let open: Vec<_> = o.unresolved().map(|r| r.slug.clone()).collect();
        assert_eq!(open, ["btc-updown-5m-1772289000"]);
    }
}
