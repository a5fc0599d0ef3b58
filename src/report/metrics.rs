//! The full report of a session: every number a trader asks about, computed only from the
//! session's records ([`SessionRecords`]): prediction records, trade records, the equity
//! curve and the starting capital. Nothing comes from in-memory counters, so the report
//! printed at the end of a run and `updown report DIR` on its folder later are the same.
//!
//! Every metric is defined in its field's documentation and, for machines, in the
//! [`Report::definitions`] map written into `report.json`. In short:
//!
//! - **Per-window return** `r_i`: for each decided window, the P&L of the trade of that
//!   window divided by the equity just before that trade settled (`equity_after − pnl`);
//!   0 for a window without a trade (skipped, refused, void). All decided windows count but
//!   those the data did not cover (`data_gap`): a hole in the data is no period of trading.
//! - **Sharpe** = `mean(r) / std(r) × √W`, `std` the *sample* standard deviation
//!   (divisor `N − 1`), `W = 365 × 24 × 3600 / interval` windows per year (105 120 for
//!   5-minute windows), risk-free rate 0. `null` with fewer than 2 windows or `std = 0`.
//! - **Sortino** = `mean(r) / DD × √W`, `DD = √(Σ min(r_i, 0)² / N)` over all `N` windows
//!   (target return 0). `null` when no window lost.
//! - **Max drawdown**: the largest fall of the equity curve below its running peak, in % of
//!   that peak; its **duration** runs from the peak to the first point back at or above the
//!   peak (recovery), or to the end of the session's last window if it never recovered, in
//!   seconds and in windows (windows ending after the peak, up to and including recovery).
//! - **Profit factor** = gross won / gross lost (sums of positive and of negative trade
//!   P&L); `null` when nothing was lost (the table prints `∞`, or `n/a` with no trade).
//! - **Expectancy** = P&L per decided (won or lost) trade.
//! - **Calibration**: per settled, decided trade, the stated probability is the decision's
//!   `prob` when it has one, else its `confidence`; trades are bucketed by it in 0.1-wide
//!   buckets (`[0.0, 0.1)`, …, `[0.9, 1.0]`) with the realised win frequency of each; the
//!   **Brier score** is `mean((p − won)²)`, `won` 1 or 0 (0.25 = always saying 50%).
//!
//! A void trade (`won: null`, stake refunded because the window could not be settled) is
//! counted as void and nowhere else: not in win rates, streaks, averages or calibration;
//! its return is 0.

use super::Summary;
use super::source::{EquityPoint, SessionInfo, SessionRecords};
use crate::ledger::records::{PredictionRecord, TradeRecord};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Seconds in a (365-day) year, for annualising per-window ratios.
pub const SECONDS_PER_YEAR: i64 = 365 * 24 * 3600;

/// Width of a calibration bucket.
pub const CALIBRATION_BUCKET: f64 = 0.1;

/// The report of one session. Serialises to `report.json`; prints as a table
/// (`Display`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// What the session was.
    pub session: SessionPart,
    /// Decided windows: traded, skipped and refused, by reason code.
    pub windows: WindowCounts,
    /// Settled trades: wins, losses, void, win rates, streaks, settlement sources.
    pub trades: TradeStats,
    /// Money: P&L, fees, equity, return, profit factor, expectancy.
    pub money: MoneyStats,
    /// The largest drawdown and how long it lasted.
    pub drawdown: Drawdown,
    /// Sharpe and Sortino from per-window returns.
    pub ratios: Ratios,
    /// Stated probability against realised frequency.
    pub calibration: Calibration,
    /// How every metric above is defined, by field name.
    pub definitions: BTreeMap<&'static str, &'static str>,
}

/// What the session was.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionPart {
    /// The ledger's label (strategy and data), when the ledger was found.
    pub label: Option<String>,
    /// The strategy's file name, from the label.
    pub strategy: Option<String>,
    /// `complete`, `halted`, `running` (interrupted) or `abandoned`, from the ledger.
    pub status: Option<String>,
    /// Content hashes of the script versions that decided, in order of first use.
    pub script_hashes: Vec<String>,
    /// Window length, seconds.
    pub interval_secs: i64,
    /// Start of the first decided window, Unix seconds.
    pub first_window: Option<i64>,
    /// End of the last decided window, Unix seconds: the end of the session.
    pub end: Option<i64>,
}

/// Decided windows by what happened to them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowCounts {
    /// Windows decided (lines of `predictions.jsonl`).
    pub decided: usize,
    /// Windows with an approved, filled entry (verdict `approved`).
    pub traded: usize,
    /// Windows without an entry: `decided − traded`.
    pub not_traded: usize,
    /// Windows where no entry was asked (verdict `skipped`: the script chose SKIP, a data
    /// gap, a script failure), by reason code.
    pub skipped: BTreeMap<String, usize>,
    /// Entries refused (verdict `refused`: the risk gate, or the venue as
    /// `execution_failed`), by reason code.
    pub refused: BTreeMap<String, usize>,
}

/// Settled trades.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TradeStats {
    /// Trade lines (settled trades, void ones included).
    pub settled: usize,
    /// Traded windows not settled yet (an interrupted session).
    pub open: usize,
    /// Trades won.
    pub wins: usize,
    /// Trades lost.
    pub losses: usize,
    /// Void trades: the window could not be settled and the stake was refunded.
    pub void: usize,
    /// `wins / (wins + losses)`; `null` without a decided trade.
    pub win_rate: Option<f64>,
    /// The same by side bought (`up`, `down`).
    pub by_side: BTreeMap<String, SideStats>,
    /// Longest run of consecutive wins (void trades neither extend nor break a run).
    pub longest_win_streak: usize,
    /// Longest run of consecutive losses (same rule).
    pub longest_loss_streak: usize,
    /// Trades by what settled them (`price_data`, `venue`, `void_no_data`).
    pub settled_by: BTreeMap<String, usize>,
}

/// Trades of one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SideStats {
    /// Trades settled on this side, void ones included.
    pub trades: usize,
    /// Won.
    pub wins: usize,
    /// Lost.
    pub losses: usize,
    /// Void.
    pub void: usize,
    /// `wins / (wins + losses)`; `null` without a decided trade.
    pub win_rate: Option<f64>,
    /// P&L of these trades, USD.
    pub pnl: Decimal,
}

/// Money, in USD (exact decimals; quotients rounded to 6 places).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MoneyStats {
    /// Capital at the start.
    pub starting_equity: Decimal,
    /// Equity after the last settlement.
    pub final_equity: Decimal,
    /// Sum of trade P&L (net of fees, which are taken in shares).
    pub pnl: Decimal,
    /// Sum of trade fees, as recorded on every trade line (void ones included, as the
    /// account counts them). Already inside the P&L: not to be subtracted again.
    pub fees: Decimal,
    /// `(final − start) / start × 100`, rounded to 4 places.
    pub return_pct: Decimal,
    /// Sum of the positive trade P&Ls.
    pub gross_won: Decimal,
    /// Sum of the negative trade P&Ls, as a positive amount.
    pub gross_lost: Decimal,
    /// `gross_won / gross_lost`; `null` when `gross_lost` is 0.
    pub profit_factor: Option<f64>,
    /// P&L per decided (won or lost) trade; `null` without one.
    pub expectancy: Option<Decimal>,
    /// Mean P&L of the won trades.
    pub average_win: Option<Decimal>,
    /// Mean P&L of the lost trades (negative).
    pub average_loss: Option<Decimal>,
}

/// The largest drawdown of the equity curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drawdown {
    /// Largest fall below the running peak, % of the peak, rounded to 4 places (0 if the
    /// equity never fell).
    pub max_pct: Decimal,
    /// The same fall in USD.
    pub max_usd: Decimal,
    /// Equity at that peak.
    pub peak_equity: Option<Decimal>,
    /// When the peak was reached (Unix seconds).
    pub peak_time: Option<i64>,
    /// Equity at the bottom.
    pub trough_equity: Option<Decimal>,
    /// When the bottom was reached.
    pub trough_time: Option<i64>,
    /// First time equity was back at or above the peak; `null` if never.
    pub recovery_time: Option<i64>,
    /// Seconds from the peak to the recovery, or to the end of the session.
    pub duration_secs: i64,
    /// Windows that ended after the peak, up to the recovery (or the end) included.
    pub duration_windows: usize,
}

/// Risk-adjusted ratios from per-window returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratios {
    /// Windows in the sample (all decided windows but those the data did not cover).
    pub windows: usize,
    /// `365 × 24 × 3600 / interval_secs`.
    pub windows_per_year: f64,
    /// Mean per-window return (a fraction, 0.01 = 1%).
    pub mean_return: Option<f64>,
    /// Sample standard deviation of per-window returns (divisor `N − 1`).
    pub std_return: Option<f64>,
    /// `√(Σ min(r, 0)² / N)`.
    pub downside_deviation: Option<f64>,
    /// `mean / std × √windows_per_year`.
    pub sharpe: Option<f64>,
    /// `mean / downside_deviation × √windows_per_year`.
    pub sortino: Option<f64>,
}

/// Stated probability against realised win frequency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// Settled, decided trades scored.
    pub trades: usize,
    /// Of those, how many stated a `prob`.
    pub from_prob: usize,
    /// And how many fell back to `confidence`.
    pub from_confidence: usize,
    /// Trades without a prediction record for their window, or with a stated value outside
    /// `[0, 1]`: left out.
    pub unscored: usize,
    /// Bucket width.
    pub bucket_width: f64,
    /// Ten buckets, `[0.0, 0.1)` … `[0.9, 1.0]`, empty ones included.
    pub buckets: Vec<Bucket>,
    /// `mean((p − won)²)`; `null` without a scored trade.
    pub brier: Option<f64>,
}

/// One calibration bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    /// Lower bound (included).
    pub from: f64,
    /// Upper bound (excluded, except 1.0 for the last bucket).
    pub to: f64,
    /// Trades in it.
    pub trades: usize,
    /// Mean stated probability.
    pub mean_stated: Option<f64>,
    /// Fraction of them won.
    pub realised: Option<f64>,
}

/// The definitions written into `report.json`, by field.
pub fn definitions() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "windows.decided",
            "windows the session decided: lines of predictions.jsonl",
        ),
        (
            "windows.traded",
            "windows with verdict `approved` (an entry was filled)",
        ),
        (
            "windows.skipped",
            "windows with verdict `skipped` (no entry asked: script SKIP, data gap, script failure), by reason code",
        ),
        (
            "windows.refused",
            "windows with verdict `refused` (the risk gate, or the venue as execution_failed), by reason code",
        ),
        (
            "trades.by_side",
            "the same counts, win rate and pnl for each side bought (up, down)",
        ),
        (
            "trades.settled_by",
            "trades by what settled them: price_data (replay from candles), venue (the market's resolution), void_no_data",
        ),
        (
            "trades.open",
            "traded windows without a settled trade line yet (an interrupted session)",
        ),
        (
            "ratios.windows_per_year",
            "365*24*3600 / interval_secs: 105120 for 5-minute windows",
        ),
        (
            "session.end",
            "end of the last decided window, Unix seconds; session.status comes from the ledger when present",
        ),
        (
            "trades.void",
            "trades with won = null: the window could not be settled, the stake was refunded; excluded from win rates, streaks, averages and calibration",
        ),
        (
            "trades.win_rate",
            "wins / (wins + losses); null without a decided trade",
        ),
        (
            "trades.longest_win_streak",
            "longest run of consecutive won trades in window order; void trades neither extend nor break a run",
        ),
        ("money.pnl", "sum of trade pnl, USD, net of fees"),
        (
            "money.fees",
            "sum of trade fees as recorded (taken in shares, so already inside pnl)",
        ),
        (
            "money.return_pct",
            "(final_equity - starting_equity) / starting_equity * 100",
        ),
        (
            "money.profit_factor",
            "gross_won / gross_lost (sums of positive and of negative trade pnl); null when gross_lost = 0",
        ),
        ("money.gross_won", "sum of the positive trade pnl, USD"),
        (
            "money.gross_lost",
            "sum of the negative trade pnl, as a positive amount, USD",
        ),
        (
            "money.final_equity",
            "equity_after of the last trade (the starting capital without one)",
        ),
        (
            "money.average_win",
            "mean pnl of won trades; average_loss: mean pnl of lost trades (negative)",
        ),
        (
            "money.expectancy",
            "pnl / number of decided (won or lost) trades, USD per trade",
        ),
        (
            "drawdown.recovery_time",
            "first equity point after the bottom at or above the peak; null if it never came back",
        ),
        (
            "drawdown.max_pct",
            "largest (peak - equity) / peak * 100 over the equity curve, peak = running maximum",
        ),
        (
            "drawdown.duration_secs",
            "from the peak before the max drawdown to the first point back at or above it, or to the end of the last window if never recovered",
        ),
        (
            "drawdown.duration_windows",
            "windows ending after the peak, up to and including the recovery (or the end)",
        ),
        (
            "ratios.per_window_return",
            "for each decided window: its trade's pnl / equity just before that trade settled (equity_after - pnl); 0 for a window without a trade or a void one; windows the data did not cover (reason data_gap) are not in the sample",
        ),
        (
            "ratios.sharpe",
            "mean / sample standard deviation (divisor N - 1) of per-window returns * sqrt(windows_per_year); windows_per_year = 365*24*3600 / interval_secs; risk-free rate 0; null when N < 2 or std = 0",
        ),
        (
            "ratios.sortino",
            "mean / downside deviation * sqrt(windows_per_year); downside deviation = sqrt(sum(min(r, 0)^2) / N) over all N windows (target 0); null when no window lost",
        ),
        (
            "calibration.stated",
            "per settled, decided trade: the decision's prob when it has one, else its confidence",
        ),
        (
            "calibration.buckets",
            "trades grouped by stated probability in buckets of width 0.1 ([0.0,0.1) ... [0.9,1.0]); realised = fraction won",
        ),
        (
            "calibration.brier",
            "mean((stated - won)^2), won = 1 or 0, over scored trades; 0.25 = always stating 0.5",
        ),
    ])
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn mean_money(sum: Decimal, n: usize) -> Option<Decimal> {
    (n > 0).then(|| (sum / Decimal::from(n)).round_dp(6))
}

impl Report {
    /// Compute the report of a session from its records.
    pub fn from_records(r: &SessionRecords) -> Report {
        let mut b = ReportBuilder::new();
        for p in &r.predictions {
            b.prediction(p);
        }
        for t in &r.trades {
            b.trade(t);
        }
        for p in &r.equity {
            b.equity(*p);
        }
        b.report(r.starting_capital, r.interval_secs, r.session.clone())
    }

    /// The short summary (the numbers `updown run` printed before the full report existed),
    /// from the same records.
    pub fn summary(r: &SessionRecords) -> Summary {
        Summary::from_records(r.starting_capital, &r.predictions, &r.trades)
    }

    /// The report as pretty-printed JSON (the content of `report.json`).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// What the report keeps of a prediction record.
#[derive(Clone, Copy, Debug)]
struct WindowRow {
    start: i64,
    confidence: f64,
    prob: Option<f64>,
    /// The data did not cover the window (`data_gap`): no market could be traded, so it
    /// is not a period of the strategy's returns.
    gap: bool,
}

/// What the report keeps of a trade record (`side` and `settled_by` are indices into the
/// builder's names).
#[derive(Clone, Copy, Debug)]
struct TradeRow {
    start: i64,
    side: usize,
    settled_by: usize,
    won: Option<bool>,
    pnl: Decimal,
    fee: Decimal,
    equity_after: Decimal,
}

/// A session's [`Report`] (and its [`Summary`]) computed record by record: it keeps a few
/// dozen bytes per window instead of the records, so a session of any length can be
/// reported while its journals or ledger rows are read one line at a time.
/// [`Report::from_records`] is this builder fed with every record, so both give the same
/// report by construction.
#[derive(Clone, Debug, Default)]
pub struct ReportBuilder {
    windows: Vec<WindowRow>,
    min_decision_time: Option<i64>,
    traded: usize,
    skipped: BTreeMap<String, usize>,
    refused: BTreeMap<String, usize>,
    script_hashes: Vec<String>,
    /// In record order.
    trades: Vec<TradeRow>,
    names: Vec<String>,
    equity: Vec<EquityPoint>,
    interval: IntervalFinder,
}

/// The fields of a prediction line the report reads, as [`PredictionRecord`] parses them.
#[derive(Deserialize)]
struct PredictionFields<'a> {
    interval_start: i64,
    #[serde(borrow)]
    slug: Cow<'a, str>,
    decision_time: i64,
    confidence: f64,
    prob: Option<f64>,
    #[serde(borrow)]
    verdict: Cow<'a, str>,
    #[serde(borrow)]
    reason_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    script_hash: Cow<'a, str>,
}

/// The fields of a trade line the report reads, as [`TradeRecord`] parses them.
#[derive(Deserialize)]
struct TradeFields<'a> {
    interval_start: i64,
    #[serde(borrow)]
    side: Cow<'a, str>,
    fee: Decimal,
    won: Option<bool>,
    pnl: Decimal,
    equity_after: Decimal,
    #[serde(borrow)]
    settled_by: Cow<'a, str>,
}

/// [`super::source::interval_of`], one prediction at a time.
#[derive(Clone, Copy, Debug, Default)]
struct IntervalFinder {
    seen_first: bool,
    from_slug: Option<i64>,
    last_start: Option<i64>,
    min_step: Option<i64>,
}

impl IntervalFinder {
    fn add(&mut self, interval_start: i64, slug: &str) {
        if !self.seen_first {
            self.seen_first = true;
            self.from_slug = super::source::interval_of_slug(slug);
        }
        if let Some(last) = self.last_start {
            let d = interval_start - last;
            if d > 0 {
                self.min_step = Some(self.min_step.map_or(d, |m| m.min(d)));
            }
        }
        self.last_start = Some(interval_start);
    }

    fn get(&self) -> i64 {
        self.from_slug
            .filter(|s| *s > 0)
            .or(self.min_step)
            .unwrap_or(super::source::DEFAULT_INTERVAL_SECS)
    }
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder for about `windows` prediction records.
    pub fn with_capacity(windows: usize) -> Self {
        ReportBuilder {
            windows: Vec::with_capacity(windows),
            ..Self::default()
        }
    }

    fn name(&mut self, s: &str) -> usize {
        match self.names.iter().position(|n| n == s) {
            Some(i) => i,
            None => {
                self.names.push(s.to_string());
                self.names.len() - 1
            }
        }
    }

    /// Add the next prediction record (in journal order).
    pub fn prediction(&mut self, p: &PredictionRecord) {
        self.add_prediction(&PredictionFields {
            interval_start: p.interval_start,
            slug: Cow::Borrowed(&p.slug),
            decision_time: p.decision_time,
            confidence: p.confidence,
            prob: p.prob,
            verdict: Cow::Borrowed(&p.verdict),
            reason_code: p.reason_code.as_deref().map(Cow::Borrowed),
            script_hash: Cow::Borrowed(&p.script_hash),
        });
    }

    /// Add the next prediction line, reading only the fields the report uses (the rest of
    /// the line is skipped, not checked): for lines this process has just written, such as
    /// a finished backtest's ledger rows. Journals from disk go through [`Self::prediction`]
    /// after a full parse.
    pub fn prediction_line(&mut self, line: &str) -> Result<(), serde_json::Error> {
        let p: PredictionFields<'_> = serde_json::from_str(line)?;
        self.add_prediction(&p);
        Ok(())
    }

    fn add_prediction(&mut self, p: &PredictionFields<'_>) {
        self.interval.add(p.interval_start, &p.slug);
        self.windows.push(WindowRow {
            start: p.interval_start,
            confidence: p.confidence,
            prob: p.prob,
            gap: p.reason_code.as_deref() == Some(DATA_GAP),
        });
        self.min_decision_time = Some(
            self.min_decision_time
                .map_or(p.decision_time, |m| m.min(p.decision_time)),
        );
        if !self.script_hashes.iter().any(|h| *h == p.script_hash) {
            self.script_hashes.push(p.script_hash.to_string());
        }
        let map = match &*p.verdict {
            "approved" => {
                self.traded += 1;
                return;
            }
            "refused" => &mut self.refused,
            // `skipped`, and anything unknown, is a window where no entry was asked.
            _ => &mut self.skipped,
        };
        let code = p.reason_code.as_deref().unwrap_or(&p.verdict);
        match map.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                map.insert(code.to_string(), 1);
            }
        }
    }

    /// Add the next trade record (in journal order).
    pub fn trade(&mut self, t: &TradeRecord) {
        self.add_trade(&TradeFields {
            interval_start: t.interval_start,
            side: Cow::Borrowed(&t.side),
            fee: t.fee,
            won: t.won,
            pnl: t.pnl,
            equity_after: t.equity_after,
            settled_by: Cow::Borrowed(&t.settled_by),
        });
    }

    /// Add the next trade line, reading only the fields the report uses (see
    /// [`Self::prediction_line`]).
    pub fn trade_line(&mut self, line: &str) -> Result<(), serde_json::Error> {
        let t: TradeFields<'_> = serde_json::from_str(line)?;
        self.add_trade(&t);
        Ok(())
    }

    fn add_trade(&mut self, t: &TradeFields<'_>) {
        let side = self.name(&t.side);
        let settled_by = self.name(&t.settled_by);
        self.trades.push(TradeRow {
            start: t.interval_start,
            side,
            settled_by,
            won: t.won,
            pnl: t.pnl,
            fee: t.fee,
            equity_after: t.equity_after,
        });
    }

    /// Add the next point of the equity curve.
    pub fn equity(&mut self, point: EquityPoint) {
        self.equity.push(point);
    }

    /// The equity curve added so far.
    pub fn equity_curve(&self) -> &[EquityPoint] {
        &self.equity
    }

    /// The window length the predictions added so far tell, as
    /// [`interval_of`](super::source::interval_of) finds it.
    pub fn interval_secs(&self) -> i64 {
        self.interval.get()
    }

    /// The short summary, as [`Summary::from_records`] computes it.
    pub fn summary(&self, starting_equity: Decimal) -> Summary {
        let mut not_traded = self.skipped.clone();
        for (code, n) in &self.refused {
            *not_traded.entry(code.clone()).or_insert(0) += n;
        }
        let mut peak = starting_equity;
        let mut max_dd = Decimal::ZERO;
        let mut equity = starting_equity;
        let (mut wins, mut losses) = (0, 0);
        let (mut pnl, mut fees) = (Decimal::ZERO, Decimal::ZERO);
        for t in &self.trades {
            equity = t.equity_after;
            peak = peak.max(equity);
            if peak > Decimal::ZERO {
                max_dd = max_dd.max((peak - equity) / peak * Decimal::ONE_HUNDRED);
            }
            wins += usize::from(t.won == Some(true));
            losses += usize::from(t.won == Some(false));
            pnl += t.pnl;
            fees += t.fee;
        }
        Summary {
            windows: self.windows.len(),
            traded: self.traded,
            not_traded,
            settled: self.trades.len(),
            wins,
            losses,
            pnl,
            fees,
            max_drawdown_pct: max_dd.round_dp(2),
            starting_equity,
            final_equity: equity,
        }
    }

    /// The report of what was added, for a session that started with `starting_capital`,
    /// with windows of `interval_secs` and the ledger's label and status when known.
    pub fn report(
        &self,
        starting_capital: Decimal,
        interval_secs: i64,
        session: Option<SessionInfo>,
    ) -> Report {
        let interval = interval_secs.max(1);
        // `self.trades` is in settlement order (the journal's and the ledger's): the last one
        // holds the final equity. Statistics per window want window order.
        let last_settled = self.trades.last();
        let mut trades: Vec<&TradeRow> = self.trades.iter().collect();
        trades.sort_by_key(|t| t.start);
        let end = self
            .windows
            .iter()
            .map(|p| p.start + interval)
            .max()
            .or_else(|| self.equity.iter().map(|p| p.time).max());

        let label = session.as_ref().map(|s| s.label.clone());
        let strategy = label.as_deref().and_then(|l| {
            let script = l.split(" on ").next()?;
            let name = std::path::Path::new(script).file_name()?.to_string_lossy();
            (!name.is_empty()).then(|| name.into_owned())
        });
        let session = SessionPart {
            label,
            strategy,
            status: session.map(|s| s.status),
            script_hashes: self.script_hashes.clone(),
            interval_secs,
            first_window: self.windows.iter().map(|p| p.start).min(),
            end,
        };
        let windows = WindowCounts {
            decided: self.windows.len(),
            traded: self.traded,
            not_traded: self.windows.len() - self.traded,
            skipped: self.skipped.clone(),
            refused: self.refused.clone(),
        };
        let trade_stats = trade_stats(&trades, windows.traded, &self.names);
        let money = money_stats(starting_capital, &trades, last_settled);
        let curve = if self.equity.is_empty() {
            self.rebuild_curve(starting_capital, interval_secs, &trades)
        } else {
            let mut c = self.equity.clone();
            c.sort_by_key(|p| p.time);
            c
        };
        let drawdown = drawdown(&curve, &self.windows, interval, end);
        let ratios = ratios(&self.windows, &trades, interval);
        let calibration = self.calibration(&trades);
        Report {
            session,
            windows,
            trades: trade_stats,
            money,
            drawdown,
            ratios,
            calibration,
            definitions: definitions(),
        }
    }

    /// The equity curve when the records carry none: the start, then each settlement at the
    /// end of its window.
    fn rebuild_curve(
        &self,
        starting_capital: Decimal,
        interval_secs: i64,
        trades: &[&TradeRow],
    ) -> Vec<EquityPoint> {
        let start = self
            .min_decision_time
            .or_else(|| trades.first().map(|t| t.start))
            .unwrap_or(0);
        std::iter::once(EquityPoint {
            time: start,
            equity: starting_capital,
        })
        .chain(trades.iter().map(|t| EquityPoint {
            time: t.start + interval_secs,
            equity: t.equity_after,
        }))
        .collect()
    }

    /// Calibration, each trade scored by the (last) prediction of its window.
    fn calibration(&self, trades: &[&TradeRow]) -> Calibration {
        let wanted: std::collections::BTreeSet<i64> = trades.iter().map(|t| t.start).collect();
        let mut by_window: BTreeMap<i64, WindowRow> = BTreeMap::new();
        for w in self.windows.iter().filter(|w| wanted.contains(&w.start)) {
            by_window.insert(w.start, *w);
        }
        calibration(trades, &by_window)
    }
}

fn trade_stats(trades: &[&TradeRow], traded: usize, names: &[String]) -> TradeStats {
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    let mut by_side: BTreeMap<String, SideStats> = ["up", "down"]
        .into_iter()
        .map(|s| {
            (
                s.to_string(),
                SideStats {
                    trades: 0,
                    wins: 0,
                    losses: 0,
                    void: 0,
                    win_rate: None,
                    pnl: Decimal::ZERO,
                },
            )
        })
        .collect();
    let mut settled_by = BTreeMap::new();
    let (mut wins, mut losses, mut void) = (0, 0, 0);
    let (mut run_w, mut run_l, mut best_w, mut best_l) = (0, 0, 0, 0);
    for t in trades {
        *settled_by.entry(name(t.settled_by)).or_insert(0) += 1;
        let side = by_side.entry(name(t.side)).or_insert(SideStats {
            trades: 0,
            wins: 0,
            losses: 0,
            void: 0,
            win_rate: None,
            pnl: Decimal::ZERO,
        });
        side.trades += 1;
        side.pnl += t.pnl;
        match t.won {
            Some(true) => {
                wins += 1;
                side.wins += 1;
                run_w += 1;
                run_l = 0;
                best_w = best_w.max(run_w);
            }
            Some(false) => {
                losses += 1;
                side.losses += 1;
                run_l += 1;
                run_w = 0;
                best_l = best_l.max(run_l);
            }
            None => {
                void += 1;
                side.void += 1;
            }
        }
    }
    for s in by_side.values_mut() {
        s.win_rate = ratio(s.wins, s.wins + s.losses);
    }
    TradeStats {
        settled: trades.len(),
        open: traded.saturating_sub(trades.len()),
        wins,
        losses,
        void,
        win_rate: ratio(wins, wins + losses),
        by_side,
        longest_win_streak: best_w,
        longest_loss_streak: best_l,
        settled_by,
    }
}

/// Money figures over `trades`; the final equity is that after `last_settled`, the trade
/// that settled last (resolutions may arrive out of window order).
fn money_stats(
    start: Decimal,
    trades: &[&TradeRow],
    last_settled: Option<&TradeRow>,
) -> MoneyStats {
    let pnl: Decimal = trades.iter().map(|t| t.pnl).sum();
    let fees: Decimal = trades.iter().map(|t| t.fee).sum();
    let final_equity = last_settled.map_or(start, |t| t.equity_after);
    let gross_won: Decimal = trades.iter().map(|t| t.pnl.max(Decimal::ZERO)).sum();
    let gross_lost: Decimal = trades.iter().map(|t| (-t.pnl).max(Decimal::ZERO)).sum();
    let decided: Vec<&&TradeRow> = trades.iter().filter(|t| t.won.is_some()).collect();
    let won: Vec<Decimal> = decided
        .iter()
        .filter(|t| t.won == Some(true))
        .map(|t| t.pnl)
        .collect();
    let lost: Vec<Decimal> = decided
        .iter()
        .filter(|t| t.won == Some(false))
        .map(|t| t.pnl)
        .collect();
    MoneyStats {
        starting_equity: start,
        final_equity,
        pnl,
        fees,
        return_pct: if start > Decimal::ZERO {
            ((final_equity - start) / start * Decimal::ONE_HUNDRED).round_dp(4)
        } else {
            Decimal::ZERO
        },
        gross_won,
        gross_lost,
        profit_factor: (gross_lost > Decimal::ZERO).then(|| f(gross_won / gross_lost)),
        expectancy: mean_money(decided.iter().map(|t| t.pnl).sum(), decided.len()),
        average_win: mean_money(won.iter().sum(), won.len()),
        average_loss: mean_money(lost.iter().sum(), lost.len()),
    }
}

fn drawdown(
    curve: &[EquityPoint],
    windows: &[WindowRow],
    interval: i64,
    end: Option<i64>,
) -> Drawdown {
    let mut none = Drawdown {
        max_pct: Decimal::ZERO,
        max_usd: Decimal::ZERO,
        peak_equity: None,
        peak_time: None,
        trough_equity: None,
        trough_time: None,
        recovery_time: None,
        duration_secs: 0,
        duration_windows: 0,
    };
    let Some(first) = curve.first() else {
        return none;
    };
    let mut peak = *first;
    // (pct, peak, trough)
    let mut worst: Option<(Decimal, EquityPoint, EquityPoint)> = None;
    for p in curve {
        if p.equity >= peak.equity {
            peak = *p;
        } else if peak.equity > Decimal::ZERO {
            let pct = (peak.equity - p.equity) / peak.equity * Decimal::ONE_HUNDRED;
            if worst.is_none_or(|(w, _, _)| pct > w) {
                worst = Some((pct, peak, *p));
            }
        }
    }
    let Some((pct, peak, trough)) = worst else {
        none.peak_equity = Some(peak.equity);
        none.peak_time = Some(peak.time);
        return none;
    };
    let recovery = curve
        .iter()
        .find(|p| p.time > trough.time && p.equity >= peak.equity)
        .map(|p| p.time);
    let until = recovery.or(end).unwrap_or(trough.time).max(trough.time);
    Drawdown {
        max_pct: pct.round_dp(4),
        max_usd: peak.equity - trough.equity,
        peak_equity: Some(peak.equity),
        peak_time: Some(peak.time),
        trough_equity: Some(trough.equity),
        trough_time: Some(trough.time),
        recovery_time: recovery,
        duration_secs: until - peak.time,
        duration_windows: windows
            .iter()
            .map(|p| p.start + interval)
            .filter(|e| *e > peak.time && *e <= until)
            .count(),
    }
}

/// Reason code of a window the data did not cover.
const DATA_GAP: &str = "data_gap";

/// Per-window returns in window order: each decided window's trade P&L over the equity
/// before it settled (`equity_after − pnl`), 0 for a window without a trade. Windows the
/// data did not cover (`data_gap`) are left out: a year-long hole in the data is not a year
/// of zero returns, and counting it would shrink the mean and the ratios built on it.
pub fn per_window_returns(predictions: &[PredictionRecord], trades: &[TradeRecord]) -> Vec<f64> {
    let mut b = ReportBuilder::new();
    for p in predictions {
        b.prediction(p);
    }
    for t in trades {
        b.trade(t);
    }
    returns(&b.windows, b.trades.iter())
}

fn returns<'a>(windows: &[WindowRow], trades: impl IntoIterator<Item = &'a TradeRow>) -> Vec<f64> {
    let by_window: BTreeMap<i64, &TradeRow> = trades.into_iter().map(|t| (t.start, t)).collect();
    let mut starts: Vec<i64> = windows.iter().filter(|p| !p.gap).map(|p| p.start).collect();
    starts.sort_unstable();
    starts
        .into_iter()
        .map(|s| match by_window.get(&s) {
            Some(t) => {
                let before = t.equity_after - t.pnl;
                if before > Decimal::ZERO {
                    f(t.pnl / before)
                } else {
                    0.0
                }
            }
            None => 0.0,
        })
        .collect()
}

fn ratios(windows: &[WindowRow], trades: &[&TradeRow], interval: i64) -> Ratios {
    let r = returns(windows, trades.iter().copied());
    let n = r.len();
    let windows_per_year = SECONDS_PER_YEAR as f64 / interval as f64;
    let k = windows_per_year.sqrt();
    let mean = (n > 0).then(|| r.iter().sum::<f64>() / n as f64);
    let std = mean
        .filter(|_| n >= 2)
        .map(|m| (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    let downside =
        (n > 0).then(|| (r.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / n as f64).sqrt());
    let over = |d: Option<f64>| match (mean, d) {
        (Some(m), Some(d)) if d > 0.0 => Some(m / d * k),
        _ => None,
    };
    Ratios {
        windows: n,
        windows_per_year,
        mean_return: mean,
        std_return: std,
        downside_deviation: downside,
        sharpe: over(std),
        sortino: over(downside),
    }
}

fn calibration(trades: &[&TradeRow], by_window: &BTreeMap<i64, WindowRow>) -> Calibration {
    let n_buckets = (1.0 / CALIBRATION_BUCKET).round() as usize;
    let mut sums = vec![(0usize, 0.0f64, 0usize); n_buckets];
    let (mut from_prob, mut from_confidence, mut unscored) = (0, 0, 0);
    let mut brier_sum = 0.0;
    for t in trades {
        let Some(won) = t.won else { continue };
        let stated = by_window
            .get(&t.start)
            .map(|p| (p.prob.unwrap_or(p.confidence), p.prob.is_some()));
        let Some((p, is_prob)) = stated.filter(|(p, _)| (0.0..=1.0).contains(p)) else {
            unscored += 1;
            continue;
        };
        if is_prob {
            from_prob += 1;
        } else {
            from_confidence += 1;
        }
        let y = if won { 1.0 } else { 0.0 };
        brier_sum += (p - y).powi(2);
        // The epsilon keeps a stated value on a bound (0.7) in the bucket it opens, whatever
        // the last bit of its binary form.
        let i = ((p * n_buckets as f64 + 1e-9).floor() as usize).min(n_buckets - 1);
        sums[i].0 += 1;
        sums[i].1 += p;
        sums[i].2 += usize::from(won);
    }
    let scored = from_prob + from_confidence;
    Calibration {
        trades: scored,
        from_prob,
        from_confidence,
        unscored,
        bucket_width: CALIBRATION_BUCKET,
        buckets: sums
            .iter()
            .enumerate()
            .map(|(i, (n, sum, won))| Bucket {
                from: i as f64 / n_buckets as f64,
                to: (i + 1) as f64 / n_buckets as f64,
                trades: *n,
                mean_stated: (*n > 0).then(|| sum / *n as f64),
                realised: ratio(*won, *n),
            })
            .collect(),
        brier: (scored > 0).then(|| brier_sum / scored as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const T: i64 = 300;

    fn pred(i: i64, side: &str, conf: f64, prob: Option<f64>, verdict: &str) -> PredictionRecord {
        let code = match verdict {
            "approved" => None,
            "refused" => Some("spread_too_wide".to_string()),
            _ => Some("script_skip".to_string()),
        };
        PredictionRecord {
            interval_start: i * T,
            slug: format!("btc-updown-5m-{}", i * T),
            decision_time: i * T,
            side: side.into(),
            confidence: conf,
            prob,
            reason: String::new(),
            features: serde_json::Map::new(),
            stake_asked: None,
            stake_approved: None,
            verdict: verdict.into(),
            reason_code: code,
            detail: None,
            script_hash: "h1".into(),
            config_hash: "c".into(),
        }
    }

    fn trade(i: i64, side: &str, won: Option<bool>, pnl: Decimal, after: Decimal) -> TradeRecord {
        TradeRecord {
            interval_start: i * T,
            slug: format!("btc-updown-5m-{}", i * T),
            side: side.into(),
            stake: dec!(10),
            price: dec!(0.5),
            shares: dec!(20),
            fee: dec!(0.1),
            outcome: won.map(|w| if w == (side == "up") { "up" } else { "down" }.into()),
            won,
            pnl,
            equity_after: after,
            win_streak: 0,
            settled_by: if won.is_some() {
                "price_data"
            } else {
                "void_no_data"
            }
            .into(),
        }
    }

    fn records(preds: Vec<PredictionRecord>, trades: Vec<TradeRecord>) -> SessionRecords {
        let mut equity = vec![EquityPoint {
            time: 0,
            equity: dec!(100),
        }];
        equity.extend(trades.iter().map(|t| EquityPoint {
            time: t.interval_start + T,
            equity: t.equity_after,
        }));
        SessionRecords {
            starting_capital: dec!(100),
            interval_secs: T,
            predictions: preds,
            trades,
            equity,
            session: None,
        }
    }

    /// Nine 5-minute windows, starting capital $100:
    ///
    /// | w | decision                      | outcome | pnl    | equity after | r      |
    /// |---|-------------------------------|---------|--------|--------------|--------|
    /// | 0 | up, conf 0.6                  | won     | +10    | 110          | 0.10   |
    /// | 1 | skip (script_skip)            |         |        |              | 0      |
    /// | 2 | down, conf 0.7, prob 0.8      | lost    | −22    | 88           | −0.20  |
    /// | 3 | up, refused (spread_too_wide) |         |        |              | 0      |
    /// | 4 | up, conf 0.55                 | won     | +22    | 110          | 0.25   |
    /// | 5 | up, conf 0.65                 | won     | +11    | 121          | 0.10   |
    /// | 6 | down, conf 0.5, prob 0.52     | lost    | −12.1  | 108.9        | −0.10  |
    /// | 7 | up, conf 0.9                  | void    | 0      | 108.9        | 0      |
    /// | 8 | down, conf 0.58               | lost    | −10.89 | 98.01        | −0.10  |
    fn sample() -> SessionRecords {
        records(
            vec![
                pred(0, "up", 0.6, None, "approved"),
                pred(1, "skip", 0.0, None, "skipped"),
                pred(2, "down", 0.7, Some(0.8), "approved"),
                pred(3, "up", 0.6, None, "refused"),
                pred(4, "up", 0.55, None, "approved"),
                pred(5, "up", 0.65, None, "approved"),
                pred(6, "down", 0.5, Some(0.52), "approved"),
                pred(7, "up", 0.9, None, "approved"),
                pred(8, "down", 0.58, None, "approved"),
            ],
            vec![
                trade(0, "up", Some(true), dec!(10), dec!(110)),
                trade(2, "down", Some(false), dec!(-22), dec!(88)),
                trade(4, "up", Some(true), dec!(22), dec!(110)),
                trade(5, "up", Some(true), dec!(11), dec!(121)),
                trade(6, "down", Some(false), dec!(-12.1), dec!(108.9)),
                trade(7, "up", None, dec!(0), dec!(108.9)),
                trade(8, "down", Some(false), dec!(-10.89), dec!(98.01)),
            ],
        )
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.unwrap_or(f64::NAN);
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn windows_the_data_did_not_cover_are_not_returns() {
        let plain = Report::from_records(&sample());
        let mut holed = sample();
        // A hole of 100 windows after the sample: journaled, but no market could trade.
        for i in 9..109 {
            let mut p = pred(i, "skip", 0.0, None, "skipped");
            p.reason_code = Some("data_gap".into());
            holed.predictions.push(p);
        }
        let r = Report::from_records(&holed);
        assert_eq!(
            r.windows.decided, 109,
            "the gap windows are still counted as windows"
        );
        assert_eq!(r.ratios.windows, 9);
        assert_eq!(r.ratios.sharpe, plain.ratios.sharpe);
        assert_eq!(r.ratios.sortino, plain.ratios.sortino);
        close(r.ratios.mean_return, 1.0 / 180.0);
    }

    #[test]
    fn the_hand_computed_example() {
        let r = Report::from_records(&sample());

        assert_eq!(
            (r.windows.decided, r.windows.traded, r.windows.not_traded),
            (9, 7, 2)
        );
        assert_eq!(
            r.windows.skipped,
            BTreeMap::from([("script_skip".into(), 1)])
        );
        assert_eq!(
            r.windows.refused,
            BTreeMap::from([("spread_too_wide".into(), 1)])
        );

        // 3 won, 3 lost, 1 void: win rate 3/6; up won 3 of 3 (void not counted), down 0 of 3.
        let t = &r.trades;
        assert_eq!(
            (t.settled, t.wins, t.losses, t.void, t.open),
            (7, 3, 3, 1, 0)
        );
        close(t.win_rate, 0.5);
        close(t.by_side["up"].win_rate, 1.0);
        assert_eq!((t.by_side["up"].trades, t.by_side["up"].void), (4, 1));
        close(t.by_side["down"].win_rate, 0.0);
        assert_eq!(t.by_side["up"].pnl, dec!(43));
        // W L W W L (void) L: the void does not break the run of losses.
        assert_eq!((t.longest_win_streak, t.longest_loss_streak), (2, 2));
        assert_eq!(t.settled_by["price_data"], 6);
        assert_eq!(t.settled_by["void_no_data"], 1);

        // P&L 10 − 22 + 22 + 11 − 12.1 + 0 − 10.89 = −1.99; fees 7 × 0.1 (void included).
        let m = &r.money;
        assert_eq!(m.pnl, dec!(-1.99));
        assert_eq!(m.fees, dec!(0.7));
        assert_eq!(m.final_equity, dec!(98.01));
        assert_eq!(m.return_pct, dec!(-1.99));
        // Gross won 10 + 22 + 11 = 43, gross lost 22 + 12.1 + 10.89 = 44.99.
        assert_eq!((m.gross_won, m.gross_lost), (dec!(43), dec!(44.99)));
        close(m.profit_factor, 43.0 / 44.99); // 0.955768
        // Expectancy −1.99 / 6 decided trades = −0.331667 (rounded to 6 places).
        assert_eq!(m.expectancy, Some(dec!(-0.331667)));
        assert_eq!(m.average_win, Some(dec!(14.333333))); // 43 / 3
        assert_eq!(m.average_loss, Some(dec!(-14.996667))); // −44.99 / 3

        // Peak 110 at t=300 (end of w0), bottom 88 at t=900: 22 / 110 = 20%. Back to 110 at
        // t=1500 (end of w4): 1200 s, the windows ending at 600, 900, 1200 and 1500 = 4.
        // The later fall 121 → 98.01 is 19%, smaller.
        let d = &r.drawdown;
        assert_eq!(d.max_pct, dec!(20));
        assert_eq!(d.max_usd, dec!(22));
        assert_eq!((d.peak_time, d.trough_time), (Some(300), Some(900)));
        assert_eq!(d.recovery_time, Some(1500));
        assert_eq!((d.duration_secs, d.duration_windows), (1200, 4));

        // r = [0.1, 0, −0.2, 0, 0.25, 0.1, −0.1, 0, −0.1]: Σr = 0.05, mean = 1/180.
        // Σr² = 0.1425; sample variance = (0.1425 − 9 × (1/180)²) / 8 = 0.16 / 9 → std = 0.4/3.
        // √(31 536 000 / 300) = √105 120 = 324.2221460665511.
        // Sharpe = (1/180) / (0.4/3) × 324.22214… = 13.50925608610629.
        // Downside: Σmin(r,0)² = 0.04 + 0.01 + 0.01 = 0.06; /9 → DD = √(1/150) = 0.0816497.
        // Sortino = (1/180) / 0.0816497 × 324.22214… = 22.06052281036572.
        let q = &r.ratios;
        assert_eq!(q.windows, 9);
        assert_eq!(q.windows_per_year, 105_120.0);
        close(q.mean_return, 1.0 / 180.0);
        close(q.std_return, 0.4 / 3.0);
        close(q.downside_deviation, (1.0f64 / 150.0).sqrt());
        close(q.sharpe, 13.50925608610629);
        close(q.sortino, 22.06052281036572);

        // Scored: w0 0.6 (conf) won, w2 0.8 (prob) lost, w4 0.55 won, w5 0.65 won,
        // w6 0.52 (prob) lost, w8 0.58 lost; the void w7 is not scored.
        // Brier = (0.16 + 0.64 + 0.2025 + 0.1225 + 0.2704 + 0.3364) / 6 = 0.2886333…
        // Buckets: [0.5,0.6): 0.55, 0.52, 0.58 → mean 0.55, won 1/3; [0.6,0.7): 0.6, 0.65 →
        // mean 0.625, won 1 (0.6 sits on the bound and opens its bucket); [0.8,0.9): 0.8 → 0.
        let c = &r.calibration;
        assert_eq!((c.trades, c.from_prob, c.from_confidence), (6, 2, 4));
        close(c.brier, 1.7318 / 6.0);
        assert_eq!(c.buckets.len(), 10);
        let b = |i: usize| &c.buckets[i];
        assert_eq!((b(5).from, b(5).to, b(5).trades), (0.5, 0.6, 3));
        close(b(5).mean_stated, 0.55);
        close(b(5).realised, 1.0 / 3.0);
        assert_eq!(b(6).trades, 2);
        close(b(6).mean_stated, 0.625);
        close(b(6).realised, 1.0);
        assert_eq!(b(8).trades, 1);
        close(b(8).realised, 0.0);
        assert_eq!(b(9).trades, 0);
        assert_eq!(b(9).mean_stated, None);
    }

    #[test]
    fn the_report_agrees_with_the_short_summary() {
        let recs = sample();
        let r = Report::from_records(&recs);
        let s = Report::summary(&recs);
        assert_eq!(s.windows, r.windows.decided);
        assert_eq!(s.traded, r.windows.traded);
        assert_eq!(s.not_traded.values().sum::<usize>(), r.windows.not_traded);
        assert_eq!(
            (s.wins, s.losses, s.settled),
            (r.trades.wins, r.trades.losses, r.trades.settled)
        );
        assert_eq!((s.pnl, s.fees), (r.money.pnl, r.money.fees));
        assert_eq!(s.final_equity, r.money.final_equity);
        assert_eq!(s.max_drawdown_pct, r.drawdown.max_pct.round_dp(2));
    }

    #[test]
    fn no_trades_gives_empty_ratios_not_zeros() {
        let r = Report::from_records(&records(
            vec![
                pred(0, "skip", 0.0, None, "skipped"),
                pred(1, "skip", 0.0, None, "skipped"),
            ],
            vec![],
        ));
        assert_eq!((r.windows.decided, r.windows.traded), (2, 0));
        assert_eq!(r.trades.win_rate, None);
        assert_eq!(r.money.profit_factor, None);
        assert_eq!(r.money.expectancy, None);
        assert_eq!(r.money.final_equity, dec!(100));
        assert_eq!(r.money.return_pct, dec!(0));
        assert_eq!(r.drawdown.max_pct, dec!(0));
        assert_eq!(r.drawdown.duration_windows, 0);
        // All returns 0: std 0, so neither ratio is defined.
        assert_eq!((r.ratios.sharpe, r.ratios.sortino), (None, None));
        assert_eq!(r.calibration.brier, None);
        let table = r.to_string();
        assert!(table.contains("n/a"), "{table}");
    }

    #[test]
    fn all_wins_have_no_profit_factor_and_no_sortino() {
        // +10 (100 → 110, r 0.1), +11 (110 → 121, r 0.1): std 0 too, so no Sharpe either.
        let r = Report::from_records(&records(
            vec![
                pred(0, "up", 0.6, None, "approved"),
                pred(1, "up", 0.6, None, "approved"),
                pred(2, "skip", 0.0, None, "skipped"),
            ],
            vec![
                trade(0, "up", Some(true), dec!(10), dec!(110)),
                trade(1, "up", Some(true), dec!(11), dec!(121)),
            ],
        ));
        assert_eq!(r.money.profit_factor, None);
        assert_eq!(r.money.gross_lost, dec!(0));
        assert_eq!(r.ratios.sortino, None);
        // r = [0.1, 0.1, 0]: mean 0.2/3, sample std = √((2 × (0.1/3)² + (0.2/3)²) / 2) = 0.057735.
        close(
            r.ratios.sharpe,
            (0.2 / 3.0) / (0.01f64 / 3.0).sqrt() * 105_120f64.sqrt(),
        );
        assert_eq!(
            (r.trades.longest_win_streak, r.trades.longest_loss_streak),
            (2, 0)
        );
        close(r.trades.win_rate, 1.0);
        assert_eq!(r.drawdown.max_pct, dec!(0));
        let table = r.to_string();
        assert!(table.contains("∞"), "{table}");
    }

    #[test]
    fn a_drawdown_that_never_recovers_lasts_to_the_end_of_the_last_window() {
        // 100 → 90 at t=300 (end of w0), then skips until w3 ends at t=1200.
        let r = Report::from_records(&records(
            vec![
                pred(0, "up", 0.6, None, "approved"),
                pred(1, "skip", 0.0, None, "skipped"),
                pred(2, "skip", 0.0, None, "skipped"),
                pred(3, "skip", 0.0, None, "skipped"),
            ],
            vec![trade(0, "up", Some(false), dec!(-10), dec!(90))],
        ));
        let d = &r.drawdown;
        assert_eq!(d.max_pct, dec!(10));
        assert_eq!((d.peak_time, d.recovery_time), (Some(0), None));
        // From the start (t=0) to the end of w3 (t=1200): 4 windows.
        assert_eq!((d.duration_secs, d.duration_windows), (1200, 4));
        assert_eq!(r.session.end, Some(1200));
    }

    #[test]
    fn a_void_trade_counts_only_as_void() {
        let r = Report::from_records(&records(
            vec![pred(0, "up", 0.7, Some(0.7), "approved")],
            vec![trade(0, "up", None, dec!(0), dec!(100))],
        ));
        assert_eq!((r.trades.settled, r.trades.void), (1, 1));
        assert_eq!((r.trades.wins, r.trades.losses), (0, 0));
        assert_eq!(r.trades.win_rate, None);
        assert_eq!(r.money.expectancy, None);
        assert_eq!(r.calibration.trades, 0);
        assert_eq!(r.calibration.brier, None);
        assert_eq!(r.ratios.mean_return, Some(0.0));
        assert_eq!(r.trades.settled_by["void_no_data"], 1);
    }

    #[test]
    fn without_an_equity_curve_the_trades_rebuild_it() {
        let mut recs = sample();
        let with_curve = Report::from_records(&recs);
        recs.equity.clear();
        assert_eq!(Report::from_records(&recs).drawdown, with_curve.drawdown);
    }

    #[test]
    fn the_json_defines_every_metric_family() {
        let json: serde_json::Value =
            serde_json::from_str(&Report::from_records(&sample()).to_json().unwrap()).unwrap();
        let defs = json["definitions"].as_object().unwrap();
        for key in [
            "ratios.sharpe",
            "ratios.sortino",
            "ratios.per_window_return",
            "drawdown.duration_secs",
            "money.profit_factor",
            "money.expectancy",
            "calibration.brier",
            "trades.void",
        ] {
            assert!(defs.contains_key(key), "no definition of {key}");
        }
        // Money stays exact: decimal strings, as in the journals.
        assert_eq!(json["money"]["pnl"], "-1.99");
        assert_eq!(
            json["money"]["profit_factor"].as_f64().map(|x| x > 0.95),
            Some(true)
        );
        assert!(json["money"]["profit_factor"].is_number());
    }
}
