//! The journal line formats: one [`PredictionRecord`] per window, one [`TradeRecord`] per
//! settled trade (DESIGN.md §7).
//!
//! Money is written as decimal strings (`"5.00"`), exactly as held, the way exchange APIs
//! send prices; `serde_json` reads them back without loss for reports.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One line of `predictions.jsonl`: what was decided for a window and what the gate said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    /// Window start, Unix seconds.
    pub interval_start: i64,
    /// Market slug.
    pub slug: String,
    /// When the decision was made, Unix seconds.
    pub decision_time: i64,
    /// `up`, `down` or `skip`.
    pub side: String,
    /// The script's confidence.
    pub confidence: f64,
    /// The script's probability, if given.
    pub prob: Option<f64>,
    /// The script's reason (or the failure message).
    pub reason: String,
    /// Numbers the script attached.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Stake asked, USD (`null` for a SKIP; the raw number when not representable).
    pub stake_asked: Option<String>,
    /// Stake approved, USD.
    pub stake_approved: Option<Decimal>,
    /// `approved`, `refused` or `skipped`.
    pub verdict: String,
    /// Why it was refused or skipped (`script_skip`, `data_gap`, a risk code, a script failure).
    pub reason_code: Option<String>,
    /// Details of a refusal or failure, and limits that reduced the stake.
    pub detail: Option<String>,
    /// Content hash of the script version that decided.
    pub script_hash: String,
    /// Hash of the configuration in force.
    pub config_hash: String,
}

/// One line of `trades.jsonl`: a settled trade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    /// Window start, Unix seconds.
    pub interval_start: i64,
    /// Market slug.
    pub slug: String,
    /// Side bought.
    pub side: String,
    /// USD spent.
    pub stake: Decimal,
    /// Price paid.
    pub price: Decimal,
    /// Shares held after the fee.
    pub shares: Decimal,
    /// Fee, USD.
    pub fee: Decimal,
    /// Winning side, or `null` if the window could not be settled (stake refunded).
    pub outcome: Option<String>,
    /// Whether the trade won (`null` when void).
    pub won: Option<bool>,
    /// Profit or loss, USD.
    pub pnl: Decimal,
    /// Equity after settlement.
    pub equity_after: Decimal,
    /// Win streak after settlement.
    pub win_streak: u32,
    /// `price_data`, `venue` or `void_no_data`.
    pub settled_by: String,
}

/// One line of `script_reloads.jsonl`: a new script version swapped in, or refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadRecord {
    /// Session time of the window boundary where it happened, Unix seconds.
    pub time: i64,
    /// The script file.
    pub script: String,
    /// Content hash of the version running before.
    pub old_hash: String,
    /// Content hash of the new version (`null` when it was refused).
    pub new_hash: Option<String>,
    /// `active` (swapped in) or `rejected` (the old version stays).
    pub status: String,
    /// Why a version was refused, with file, line and column.
    pub error: Option<String>,
}
