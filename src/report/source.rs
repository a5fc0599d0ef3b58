//! What a report is computed from: a session's records, read back from the journals of its
//! output folder (`predictions.jsonl`, `trades.jsonl`, `equity_curve.csv`) or handed over
//! directly.
//!
//! Reading names the file and the line of anything it cannot parse, so a damaged journal
//! says where it is damaged. The ledger (`ledger.sqlite`), when present, is consulted only
//! for the session's label (strategy and data) and status, which the journals do not carry;
//! nothing is written to it, and a failure there only leaves the label out.

use super::{Curve, Report, ReportBuilder, ReportError};
use crate::ledger::journal::{EQUITY, PREDICTIONS, TRADES};
use crate::ledger::records::{PredictionRecord, TradeRecord};
use crate::ledger::{LEDGER_FILE, Ledger, LedgerError};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Window length assumed when the records do not tell it (no prediction to read it from):
/// the 5-minute markets.
pub const DEFAULT_INTERVAL_SECS: i64 = 300;

/// One point of the equity curve: a line of `equity_curve.csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EquityPoint {
    /// Unix seconds: the session start, then the end of each settled trade's window.
    pub time: i64,
    /// Equity (cash plus open stakes at cost), USD.
    pub equity: Decimal,
}

/// The ledger's description of the session the journals belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's label, e.g. `strategies/rsi_ema.rhai on data/btc.csv`.
    pub label: String,
    /// `complete`, `halted`, `running` (interrupted or still going) or `abandoned`.
    pub status: String,
}

/// Everything a [`Report`](super::Report) is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecords {
    /// Capital at the session start, USD.
    pub starting_capital: Decimal,
    /// Window length in seconds (300 for the 5-minute markets).
    pub interval_secs: i64,
    /// One record per decided window, in window order.
    pub predictions: Vec<PredictionRecord>,
    /// One record per settled trade, in window order.
    pub trades: Vec<TradeRecord>,
    /// The equity curve: the start, then one point per settlement. May be empty, in which
    /// case the report rebuilds it from the trades.
    pub equity: Vec<EquityPoint>,
    /// Label and status from the ledger, when known.
    pub session: Option<SessionInfo>,
}

impl SessionRecords {
    /// Read the journals of the output folder `dir`.
    ///
    /// The starting capital is the first point of `equity_curve.csv` (the session writes
    /// it before the first window); the window length is read from the market slugs
    /// (`btc-updown-5m-…` → 300 s), or from the spacing of the windows.
    pub fn read_dir(dir: &Path) -> Result<SessionRecords, ReportError> {
        let (pred_path, pred_text) = read(dir, PREDICTIONS)?;
        let (trade_path, trade_text) = read(dir, TRADES)?;
        let (eq_path, eq_text) = read(dir, EQUITY)?;
        let predictions: Vec<PredictionRecord> = parse_jsonl(&pred_path, &pred_text)?;
        let trades: Vec<TradeRecord> = parse_jsonl(&trade_path, &trade_text)?;
        let equity = parse_equity_csv(&eq_path, &eq_text)?;
        let starting_capital = match (equity.first(), trades.first()) {
            (Some(p), _) => p.equity,
            (None, Some(t)) => t.equity_after - t.pnl,
            (None, None) => {
                return Err(ReportError::NoStartingCapital { path: eq_path });
            }
        };
        let lines: Vec<&str> = pred_text.lines().filter(|l| !l.trim().is_empty()).collect();
        Ok(SessionRecords {
            starting_capital,
            interval_secs: interval_of(&predictions),
            session: session_info(&dir.join(LEDGER_FILE), &lines),
            predictions,
            trades,
            equity,
        })
    }
}

/// A session's report read from the journals of its output folder one line at a time
/// ([`read_report_dir`]), with what the charts need.
#[derive(Clone, Debug, PartialEq)]
pub struct DirReport {
    /// The report, equal to `Report::from_records(&SessionRecords::read_dir(dir)?)`.
    pub report: Report,
    /// Capital at the session start.
    pub starting_capital: Decimal,
    /// Window length in seconds.
    pub interval_secs: i64,
    /// The equity curve, as `equity_curve.csv` holds it.
    pub equity: Vec<EquityPoint>,
}

impl DirReport {
    /// What the charts draw.
    pub fn curve(&self) -> Curve<'_> {
        Curve {
            starting_capital: self.starting_capital,
            interval_secs: self.interval_secs,
            equity: &self.equity,
        }
    }
}

/// The report of the output folder `dir`, as [`SessionRecords::read_dir`] and
/// [`Report::from_records`] give it, but reading the journals one line at a time: memory
/// stays at a few dozen bytes per window however long the session was.
pub fn read_report_dir(dir: &Path) -> Result<DirReport, ReportError> {
    // Opened in `read_dir`'s order, so a missing journal is named the same way.
    let predictions = open(dir, PREDICTIONS)?;
    let trades = open(dir, TRADES)?;
    let (eq_path, eq_text) = read(dir, EQUITY)?;
    let mut b = ReportBuilder::new();
    let mut journal = LinesDigest::default();
    each_jsonl(predictions, |line, p: PredictionRecord| {
        journal.add(line);
        b.prediction(&p);
    })?;
    let mut first_trade: Option<Decimal> = None;
    each_jsonl(trades, |_, t: TradeRecord| {
        if first_trade.is_none() {
            first_trade = Some(t.equity_after - t.pnl);
        }
        b.trade(&t);
    })?;
    let equity = parse_equity_csv(&eq_path, &eq_text)?;
    drop(eq_text);
    for p in &equity {
        b.equity(*p);
    }
    let starting_capital = match (equity.first(), first_trade) {
        (Some(p), _) => p.equity,
        (None, Some(start)) => start,
        (None, None) => {
            return Err(ReportError::NoStartingCapital { path: eq_path });
        }
    };
    let interval_secs = b.interval_secs();
    let session = session_info_digest(&dir.join(LEDGER_FILE), &journal);
    Ok(DirReport {
        report: b.report(starting_capital, interval_secs, session),
        starting_capital,
        interval_secs,
        equity,
    })
}

/// Open the journal `name` in `dir`.
fn open(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File), ReportError> {
    let path = dir.join(name);
    match std::fs::File::open(&path) {
        Ok(file) => Ok((path, file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReportError::Missing {
            path,
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(ReportError::Read { path, source }),
    }
}

/// Parse each non-blank line of an opened journal as a `T` and hand it to `f` with its
/// text; a line that does not parse is reported with its 1-based number.
fn each_jsonl<T: DeserializeOwned>(
    (path, file): (PathBuf, std::fs::File),
    mut f: impl FnMut(&str, T),
) -> Result<(), ReportError> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(source) => return Err(ReportError::Read { path, source }),
        }
        number += 1;
        // As `str::lines`: without the `\n` or `\r\n` that ends it.
        let text = match line.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => &line,
        };
        if text.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(text).map_err(|e| ReportError::Line {
            path: path.clone(),
            line: number,
            message: e.to_string(),
        })?;
        f(text, value);
    }
    Ok(())
}

/// The number and digest of a sequence of journal lines, to find the ledger session that
/// holds exactly them without keeping them.
#[derive(Clone, Debug, Default)]
struct LinesDigest {
    count: usize,
    hash: sha2::Sha256,
}

impl LinesDigest {
    fn add(&mut self, line: &str) {
        use sha2::Digest;
        self.count += 1;
        self.hash.update((line.len() as u64).to_le_bytes());
        self.hash.update(line.as_bytes());
    }

    fn finish(self) -> (usize, Vec<u8>) {
        use sha2::Digest;
        (self.count, self.hash.finalize().to_vec())
    }
}

/// [`session_info`] by digest: the label and status of the newest ledger session whose
/// prediction lines have the journal's count and digest.
fn session_info_digest(ledger: &Path, journal: &LinesDigest) -> Option<SessionInfo> {
    if journal.count == 0 {
        return None;
    }
    let want = journal.clone().finish();
    find_session(ledger, |ledger, id| {
        let mut digest = LinesDigest::default();
        ledger
            .for_each_prediction(id, |line| {
                digest.add(line);
                Ok::<(), LedgerError>(())
            })
            .ok()?;
        Some(digest.finish() == want)
    })
}

/// The newest session of the ledger at `path` for which `is_it` says yes, as the report
/// names it. Best effort: a missing or unreadable ledger gives `None`.
fn find_session(
    path: &Path,
    mut is_it: impl FnMut(&Ledger, i64) -> Option<bool>,
) -> Option<SessionInfo> {
    if !path.is_file() {
        return None;
    }
    let ledger = Ledger::open_existing(path).ok()?;
    let sessions = ledger.sessions().ok()?;
    sessions.into_iter().find_map(|(id, label, status)| {
        is_it(&ledger, id)?.then(|| SessionInfo {
            label,
            status: status.code().to_string(),
        })
    })
}

fn read(dir: &Path, name: &str) -> Result<(PathBuf, String), ReportError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReportError::Missing {
            path,
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(ReportError::Read { path, source }),
    }
}

/// Parse a JSON-lines journal: one record per non-blank line. An unreadable line is
/// reported with the file and its 1-based line number.
pub fn parse_jsonl<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>, ReportError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ReportError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Parse `equity_curve.csv`: a `time,equity` header, then `unix_seconds,decimal` lines.
pub fn parse_equity_csv(path: &Path, text: &str) -> Result<Vec<EquityPoint>, ReportError> {
    let err = |line: usize, message: String| ReportError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut points = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if i == 0 {
            if line != "time,equity" {
                return Err(err(
                    1,
                    format!("expected the header `time,equity`, found `{line}`"),
                ));
            }
            continue;
        }
        let Some((time, equity)) = line.split_once(',') else {
            return Err(err(
                i + 1,
                format!("expected `time,equity`, found `{line}`"),
            ));
        };
        let time = time.trim().parse::<i64>().map_err(|e| {
            err(
                i + 1,
                format!("column 1 (time): `{time}` is not Unix seconds: {e}"),
            )
        })?;
        let equity = equity.trim().parse::<Decimal>().map_err(|e| {
            err(
                i + 1,
                format!("column 2 (equity): `{equity}` is not an amount: {e}"),
            )
        })?;
        points.push(EquityPoint { time, equity });
    }
    Ok(points)
}

/// The window length of a session, from its market slugs (`btc-updown-5m-<T>` → 300,
/// `btc-updown-15m-<T>` → 900, `btc-updown-90s-<T>` → 90), else from the smallest spacing
/// of consecutive windows, else [`DEFAULT_INTERVAL_SECS`].
pub fn interval_of(predictions: &[PredictionRecord]) -> i64 {
    let from_slug = predictions.first().and_then(|p| interval_of_slug(&p.slug));
    from_slug
        .filter(|s| *s > 0)
        .or_else(|| {
            predictions
                .windows(2)
                .map(|w| w[1].interval_start - w[0].interval_start)
                .filter(|d| *d > 0)
                .min()
        })
        .unwrap_or(DEFAULT_INTERVAL_SECS)
}

/// The window length a market slug names (`btc-updown-5m-<T>` → 300, `…-90s-<T>` → 90).
pub fn interval_of_slug(slug: &str) -> Option<i64> {
    let len = slug.rsplit('-').nth(1)?;
    if let Some(minutes) = len.strip_suffix('m') {
        minutes.parse::<i64>().ok()?.checked_mul(60)
    } else {
        len.strip_suffix('s')?.parse::<i64>().ok()
    }
}

/// The label and status of the ledger session whose prediction lines are exactly the
/// journal's (the journals are rewritten from the ledger, line for line). Best effort: a
/// missing or unreadable ledger gives `None`.
fn session_info(ledger: &Path, journal_lines: &[&str]) -> Option<SessionInfo> {
    if journal_lines.is_empty() {
        return None;
    }
    find_session(ledger, |ledger, id| {
        let mut next = journal_lines.iter();
        let mut same = true;
        ledger
            .for_each_prediction(id, |line| {
                same &= next.next() == Some(&line);
                Ok::<(), LedgerError>(())
            })
            .ok()?;
        Some(same && next.next().is_none())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(slug: &str, start: i64) -> PredictionRecord {
        PredictionRecord {
            interval_start: start,
            slug: slug.into(),
            decision_time: start,
            side: "skip".into(),
            confidence: 0.0,
            prob: None,
            reason: String::new(),
            features: serde_json::Map::new(),
            stake_asked: None,
            stake_approved: None,
            verdict: "skipped".into(),
            reason_code: Some("script_skip".into()),
            detail: None,
            script_hash: "h".into(),
            config_hash: "c".into(),
        }
    }

    #[test]
    fn the_interval_comes_from_the_slug_then_the_spacing() {
        assert_eq!(interval_of(&[pred("btc-updown-5m-300", 300)]), 300);
        assert_eq!(interval_of(&[pred("btc-updown-15m-900", 900)]), 900);
        assert_eq!(interval_of(&[pred("btc-updown-90s-90", 90)]), 90);
        assert_eq!(
            interval_of(&[pred("odd", 1200), pred("odd", 1800), pred("odd", 3600)]),
            600
        );
        assert_eq!(interval_of(&[]), DEFAULT_INTERVAL_SECS);
    }

    #[test]
    fn a_bad_equity_line_is_named_with_its_line_and_column() {
        let p = Path::new("x/equity_curve.csv");
        let ok = parse_equity_csv(p, "time,equity\n0,100\n300,95.5\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].equity, Decimal::new(955, 1));
        let e = parse_equity_csv(p, "time,equity\n0,100\n300,abc\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("equity_curve.csv line 3"), "{e}");
        assert!(e.contains("column 2"), "{e}");
        let e = parse_equity_csv(p, "when,equity\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
