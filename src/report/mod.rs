//! Reports: what a session did, computed from its records.
//!
//! Everything here is built only from the records a session leaves (its prediction and
//! trade records, its equity curve and its starting capital), never from in-memory
//! counters, so the end-of-run report, a resumed run's report, `updown status` and
//! `updown report DIR` on an old folder agree by construction.
//!
//! - [`Summary`]: the short block of counts and money (windows, trades, P&L, fees, drawdown).
//! - [`Report`] ([`metrics`]): the full report, with every metric defined; prints as a table
//!   ([`table`]) and serialises to `report.json`.
//! - [`SessionRecords`] ([`source`]): the records, read back from an output folder's journals.
//! - [`chart`]: the equity-and-drawdown chart, `equity.png` and `equity.svg`.
//! - [`write_report`]: `report.json` and both charts into a folder.

pub mod chart;
pub mod metrics;
pub mod source;
pub mod table;

pub use metrics::{Report, ReportBuilder};
pub use source::{DirReport, EquityPoint, SessionInfo, SessionRecords, read_report_dir};

use crate::ledger::records::{PredictionRecord, TradeRecord};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// File name of the machine-readable report in the output folder.
pub const REPORT_JSON: &str = "report.json";

/// Why a report could not be read, computed or written; always names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A journal is not there.
    #[error("{path} not found: is {dir} the output folder of an `updown run`?")]
    Missing {
        /// The journal.
        path: PathBuf,
        /// The folder it was looked for in.
        dir: PathBuf,
    },
    /// A journal could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The journal.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a journal could not be parsed.
    #[error("{path} line {line}: {message}")]
    Line {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Neither an equity point nor a trade tells the capital the session started with.
    #[error("{path} has no equity point and there is no trade: the starting capital is unknown")]
    NoStartingCapital {
        /// The equity curve file.
        path: PathBuf,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Chart {
        /// The chart file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The report could not be encoded as JSON.
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Report {
    /// Read the journals of the output folder `dir` (one line at a time) and compute its
    /// report.
    pub fn from_dir(dir: &Path) -> Result<Report, ReportError> {
        Ok(read_report_dir(dir)?.report)
    }
}

/// Where [`write_report`] put its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// `report.json`.
    pub json: PathBuf,
    /// `equity.png`.
    pub png: PathBuf,
    /// `equity.svg`.
    pub svg: PathBuf,
}

/// What the charts draw: a session's equity curve, its starting capital and its window
/// length (all a chart needs of the records).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Curve<'a> {
    /// Capital at the session start.
    pub starting_capital: Decimal,
    /// Window length in seconds.
    pub interval_secs: i64,
    /// The equity curve: the start, then one point per settlement (may be empty).
    pub equity: &'a [EquityPoint],
}

impl<'a> Curve<'a> {
    /// The curve of `records`.
    pub fn of(records: &'a SessionRecords) -> Self {
        Curve {
            starting_capital: records.starting_capital,
            interval_secs: records.interval_secs,
            equity: &records.equity,
        }
    }
}

/// Write `report.json` (pretty JSON) and the equity charts (`equity.png`, `equity.svg`)
/// into `dir`, replacing earlier ones.
pub fn write_report(
    dir: &Path,
    records: &SessionRecords,
    report: &Report,
) -> Result<Written, ReportError> {
    write_report_curve(dir, Curve::of(records), report)
}

/// [`write_report`] from the equity curve alone (a report computed record by record).
pub fn write_report_curve(
    dir: &Path,
    curve: Curve<'_>,
    report: &Report,
) -> Result<Written, ReportError> {
    let written = Written {
        json: dir.join(REPORT_JSON),
        png: dir.join(chart::PNG_FILE),
        svg: dir.join(chart::SVG_FILE),
    };
    let mut json = report.to_json()?;
    json.push('\n');
    std::fs::write(&written.json, json).map_err(|source| ReportError::Write {
        path: written.json.clone(),
        source,
    })?;
    chart::write_png(&written.png, curve, report)?;
    chart::write_svg(&written.svg, curve, report)?;
    Ok(written)
}

/// The end-of-run summary for a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Windows decided.
    pub windows: usize,
    /// Windows with an approved and filled entry.
    pub traded: usize,
    /// Windows without an entry, by reason code.
    pub not_traded: BTreeMap<String, usize>,
    /// Settled trades.
    pub settled: usize,
    /// Winning trades.
    pub wins: usize,
    /// Losing trades.
    pub losses: usize,
    /// Realised P&L, USD.
    pub pnl: Decimal,
    /// Fees paid, USD.
    pub fees: Decimal,
    /// Largest fall from a peak of equity, percent.
    pub max_drawdown_pct: Decimal,
    /// Equity at the start.
    pub starting_equity: Decimal,
    /// Equity after the last settlement.
    pub final_equity: Decimal,
}

impl Summary {
    /// Summarise a session's records.
    pub fn from_records(
        starting_equity: Decimal,
        predictions: &[PredictionRecord],
        trades: &[TradeRecord],
    ) -> Summary {
        let mut not_traded = BTreeMap::new();
        let mut traded = 0;
        for p in predictions {
            if p.verdict == "approved" {
                traded += 1;
            } else {
                let code = p.reason_code.clone().unwrap_or_else(|| p.verdict.clone());
                *not_traded.entry(code).or_insert(0) += 1;
            }
        }
        let mut peak = starting_equity;
        let mut max_dd = Decimal::ZERO;
        let mut equity = starting_equity;
        for t in trades {
            equity = t.equity_after;
            peak = peak.max(equity);
            if peak > Decimal::ZERO {
                max_dd = max_dd.max((peak - equity) / peak * Decimal::ONE_HUNDRED);
            }
        }
        Summary {
            windows: predictions.len(),
            traded,
            not_traded,
            settled: trades.len(),
            wins: trades.iter().filter(|t| t.won == Some(true)).count(),
            losses: trades.iter().filter(|t| t.won == Some(false)).count(),
            pnl: trades.iter().map(|t| t.pnl).sum(),
            fees: trades.iter().map(|t| t.fee).sum(),
            max_drawdown_pct: max_dd.round_dp(2),
            starting_equity,
            final_equity: equity,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let win_rate = if self.settled > 0 {
            format!("{:.1}%", self.wins as f64 * 100.0 / self.settled as f64)
        } else {
            "n/a".into()
        };
        let ret = if self.starting_equity > Decimal::ZERO {
            ((self.final_equity - self.starting_equity) / self.starting_equity
                * Decimal::ONE_HUNDRED)
                .round_dp(2)
        } else {
            Decimal::ZERO
        };
        writeln!(f, "  windows          {:>10}", self.windows)?;
        writeln!(f, "  traded           {:>10}", self.traded)?;
        let skipped: usize = self.not_traded.values().sum();
        writeln!(f, "  not traded       {:>10}", skipped)?;
        for (code, n) in &self.not_traded {
            writeln!(f, "    {code:<22} {n:>4}")?;
        }
        writeln!(
            f,
            "  wins / losses    {:>10}",
            format!("{} / {}", self.wins, self.losses)
        )?;
        writeln!(f, "  win rate         {:>10}", win_rate)?;
        writeln!(
            f,
            "  P&L              {:>10}",
            format!("${}", self.pnl.round_dp(2))
        )?;
        writeln!(
            f,
            "  fees paid        {:>10}",
            format!("${}", self.fees.round_dp(2))
        )?;
        writeln!(
            f,
            "  max drawdown     {:>10}",
            format!("{}%", self.max_drawdown_pct)
        )?;
        writeln!(
            f,
            "  equity           {:>10}",
            format!(
                "${} → ${}",
                self.starting_equity.round_dp(2),
                self.final_equity.round_dp(2)
            )
        )?;
        write!(f, "  return           {:>10}", format!("{ret}%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn trade(pnl: Decimal, equity_after: Decimal, won: bool) -> TradeRecord {
        TradeRecord {
            interval_start: 0,
            slug: String::new(),
            side: "up".into(),
            stake: dec!(5),
            price: dec!(0.51),
            shares: dec!(9.6),
            fee: dec!(0.1),
            outcome: Some("up".into()),
            won: Some(won),
            pnl,
            equity_after,
            win_streak: 0,
            settled_by: "price_data".into(),
        }
    }

    #[test]
    fn drawdown_is_measured_from_the_running_peak() {
        let trades = [
            trade(dec!(10), dec!(110), true),
            trade(dec!(-22), dec!(88), false),
            trade(dec!(5), dec!(93), true),
        ];
        let s = Summary::from_records(dec!(100), &[], &trades);
        assert_eq!(s.max_drawdown_pct, dec!(20)); // 110 → 88
        assert_eq!((s.wins, s.losses, s.settled), (2, 1, 3));
        assert_eq!(s.pnl, dec!(-7));
        assert_eq!(s.fees, dec!(0.3));
        assert_eq!(s.final_equity, dec!(93));
    }
}
