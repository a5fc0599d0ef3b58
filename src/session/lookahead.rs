//! The look-ahead self-check: rerun a backtest with the data cut right after the decision
//! time of a few sample windows, and demand that no decision up to the cut changes.
//!
//! This module owns choosing the sample windows ([`sample_windows`]), running the truncated
//! reruns in parallel ([`check_lookahead`]; each in `<out>/lookahead/<slug>/`), and the
//! verdict ([`LookaheadReport`]). A truncated rerun sees no candle closing after its cut and
//! no recorded result of a window ending after it (the markets still exist, their results
//! are withheld), so if anything after the cut reached a decision — through the feed, the
//! venue, the script or the core — that decision differs from the full run's, and the check
//! names the window and both decisions.

use super::backtest::{
    BacktestData, BacktestError, BacktestResult, BacktestSpec, Plan, run_backtest, utc,
};
use super::sweep::run_parallel;
use super::{Ending, Progress};
use crate::domain::Window;
use crate::ledger::records::PredictionRecord;
use std::sync::atomic::AtomicBool;

/// Sample windows per check by default.
pub const DEFAULT_SAMPLES: usize = 5;

/// One truncated rerun.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The window whose decision time is the cut.
    pub window: Window,
    /// The cut: no data after this time (Unix seconds).
    pub cut: i64,
    /// Decisions compared (every window up to and including `window`).
    pub compared: usize,
    /// The full run's decision for `window`, for people.
    pub decision: String,
}

/// A decision that changed when the data was cut: look-ahead.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// The window whose decision changed.
    pub window: Window,
    /// The window whose decision time was the cut.
    pub cut_window: Window,
    /// The cut (Unix seconds).
    pub cut: i64,
    /// The full run's decision, described.
    pub full: String,
    /// The truncated run's decision, described.
    pub truncated: String,
}

/// What the check did.
#[derive(Clone, Debug, PartialEq)]
pub struct LookaheadReport {
    /// Every rerun, in time order.
    pub probes: Vec<Probe>,
    /// The first changed decision found (by cut, then window), if any.
    pub mismatch: Option<Mismatch>,
}

impl LookaheadReport {
    /// Whether no decision changed.
    pub fn passed(&self) -> bool {
        self.mismatch.is_none()
    }
}

/// Up to `n` window indices spread evenly over `predictions` (the full run's decisions), each
/// moved forward to the first traded window before the next sample when there is one (a
/// trade exercises the most of the loop).
pub fn sample_windows(predictions: &[PredictionRecord], n: usize) -> Vec<usize> {
    let d = predictions.len();
    if d == 0 || n == 0 {
        return Vec::new();
    }
    if d <= n {
        return (0..d).collect();
    }
    let bases: Vec<usize> = (1..=n).map(|j| j * d / (n + 1)).collect();
    let mut out: Vec<usize> = Vec::with_capacity(n);
    for (j, &base) in bases.iter().enumerate() {
        let end = bases.get(j + 1).copied().unwrap_or(d);
        let pick = (base..end)
            .find(|&i| predictions[i].verdict == "approved")
            .unwrap_or(base);
        if out.last() != Some(&pick) {
            out.push(pick);
        }
    }
    out
}

/// Windows the reruns of a check with `samples` samples will decide in all (for a progress
/// bar).
pub fn planned_windows(full: &BacktestResult, samples: usize) -> u64 {
    let records: Vec<PredictionRecord> = full
        .predictions
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    sample_windows(&records, samples)
        .iter()
        .map(|&i| i as u64 + 1)
        .sum()
}

/// A decision line for people: `UP approved $5.00 — reason` or `SKIP (script_skip) — reason`.
pub fn describe(line: &str) -> String {
    match serde_json::from_str::<PredictionRecord>(line) {
        Ok(p) => {
            let verdict = match (&p.stake_approved, &p.reason_code) {
                (Some(stake), _) => format!("approved ${stake:.2}"),
                (None, Some(code)) => format!("{} ({code})", p.verdict),
                (None, None) => p.verdict.clone(),
            };
            format!(
                "{} {verdict}, confidence {:.3} — {}",
                p.side.to_uppercase(),
                p.confidence,
                p.reason
            )
        }
        Err(_) => line.to_string(),
    }
}

/// Rerun `spec` over `plan` cut after each sample window's decision (up to `samples` of
/// them, on `jobs` threads) and compare every decision up to each cut with `full` (which must
/// hold its predictions). `tick` is called after every window of every rerun.
#[allow(clippy::too_many_arguments)]
pub fn check_lookahead(
    spec: &BacktestSpec,
    data: &BacktestData,
    plan: &Plan,
    full: &BacktestResult,
    samples: usize,
    jobs: usize,
    tick: &(dyn Fn() + Sync),
    stop: &AtomicBool,
) -> Result<LookaheadReport, BacktestError> {
    let lead = spec.config.session.decision_lead_secs;
    let records = full
        .predictions
        .iter()
        .map(|l| serde_json::from_str::<PredictionRecord>(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BacktestError::Failed(format!("a stored prediction is unreadable: {e}")))?;
    let picks = sample_windows(&records, samples);
    clear_old_probes(&spec.out_dir.join("lookahead"))?;
    let runs = run_parallel(jobs, picks.clone(), |idx: usize| {
        let window = plan.windows[idx].clone();
        let cut = window.start - lead;
        let mut probe_spec = spec.clone();
        probe_spec.out_dir = spec.out_dir.join("lookahead").join(&window.slug);
        probe_spec.keep_predictions = true;
        let hook: Box<dyn FnMut(Progress) + '_> = Box::new(|_| tick());
        (
            idx,
            run_backtest(&probe_spec, data, plan, Some(cut), Some(hook), stop),
        )
    });
    if runs.len() < picks.len() {
        return Err(BacktestError::Failed(
            "a look-ahead rerun thread panicked".into(),
        ));
    }
    let mut probes = Vec::new();
    let mut mismatch = None;
    for (idx, run) in runs {
        let run = run?;
        if run.ending == Ending::Interrupted {
            return Err(BacktestError::Failed(
                "the look-ahead check was interrupted before it finished".into(),
            ));
        }
        let window = plan.windows[idx].clone();
        let cut = window.start - lead;
        if mismatch.is_none()
            && let Some(i) = first_change(&full.predictions, &run.predictions, idx)
        {
            let mut full_text = describe(&full.predictions[i]);
            let mut cut_text = run.predictions.get(i).map_or_else(
                || "no decision (the rerun stopped before this window)".into(),
                |l| describe(l),
            );
            // The difference is in a detail the short form leaves out: show the records.
            if full_text == cut_text
                && let Some(line) = run.predictions.get(i)
            {
                full_text = full.predictions[i].clone();
                cut_text = line.clone();
            }
            mismatch = Some(Mismatch {
                window: plan.windows[i].clone(),
                cut_window: window.clone(),
                cut,
                full: full_text,
                truncated: cut_text,
            });
        }
        probes.push(Probe {
            decision: describe(&full.predictions[idx]),
            window,
            cut,
            compared: idx + 1,
        });
    }
    Ok(LookaheadReport { probes, mismatch })
}

/// Remove earlier reruns' files (only those updown writes) and their then-empty folders,
/// so the folder holds this check's reruns only.
fn clear_old_probes(dir: &std::path::Path) -> Result<(), BacktestError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            super::backtest::start_fresh(&path)?;
            // Still holds something of the user's: keep it.
            let _ = std::fs::remove_dir(&path);
        }
    }
    Ok(())
}

/// The first window at or before `upto` whose decision line differs between the full run
/// and a truncated rerun (a missing line counts as a change).
pub fn first_change(full: &[String], truncated: &[String], upto: usize) -> Option<usize> {
    (0..=upto).find(|&i| full.get(i) != truncated.get(i))
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the decision for {} changed when the data was cut at {} UTC (right after the decision of {}):\n  full data:      {}\n  data cut there: {}",
            self.window.slug,
            utc(self.cut),
            self.cut_window.slug,
            self.full,
            self.truncated
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verdict: &str) -> PredictionRecord {
        PredictionRecord {
            interval_start: 0,
            slug: String::new(),
            decision_time: 0,
            side: "up".into(),
            confidence: 0.5,
            prob: None,
            reason: "r".into(),
            features: serde_json::Map::new(),
            stake_asked: None,
            stake_approved: None,
            verdict: verdict.into(),
            reason_code: None,
            detail: None,
            script_hash: String::new(),
            config_hash: String::new(),
        }
    }

    #[test]
    fn any_changed_or_missing_decision_up_to_the_cut_is_found() {
        let full: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(first_change(&full, &full[..3], 2), None);
        let mut changed = full.clone();
        changed[1] = "B".into();
        assert_eq!(first_change(&full, &changed, 2), Some(1));
        assert_eq!(first_change(&full, &changed, 0), None);
        assert_eq!(first_change(&full, &full[..2], 2), Some(2));
        let m = Mismatch {
            window: Window::new(600, 300, 2),
            cut_window: Window::new(900, 300, 3),
            cut: 900,
            full: describe(&serde_json::to_string(&rec("approved")).unwrap()),
            truncated: describe(&serde_json::to_string(&rec("skipped")).unwrap()),
        };
        let text = m.to_string();
        assert!(text.contains("btc-updown-5m-600"), "{text}");
        assert!(text.contains("btc-updown-5m-900"), "{text}");
        assert!(
            text.contains("UP approved") && text.contains("UP skipped"),
            "{text}"
        );
    }

    #[test]
    fn samples_spread_over_the_run_and_prefer_traded_windows() {
        let mut p: Vec<PredictionRecord> = (0..60).map(|_| rec("skipped")).collect();
        assert_eq!(sample_windows(&p, 5), [10, 20, 30, 40, 50]);
        p[23] = rec("approved");
        assert_eq!(sample_windows(&p, 5), [10, 23, 30, 40, 50]);
        assert_eq!(sample_windows(&p[..3], 5), [0, 1, 2]);
        assert!(sample_windows(&[], 5).is_empty());
    }
}
