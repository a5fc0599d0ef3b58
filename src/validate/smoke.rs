//! The built-in smoke check of `updown validate`: the script decides a few real windows.
//!
//! Fixtures pin what a script must answer; a script without any still has to be shown to
//! work before it trades. The smoke check loads it once and lets it decide the first
//! windows of a recorded candle file exactly as a replay session would reach them: the same
//! warm-up (`session.warmup_candles`), window alignment and decision time, candles delivered
//! through the same feed and anomaly filter, the replay venue's quote, a fresh account, the
//! strategy's `[params.<stem>]`, and one instance whose memory (`this`) carries from window
//! to window. Every call runs in the production sandbox.
//!
//! Each window's `predict` and — for UP or DOWN — `size` must succeed and return a valid
//! decision and a valid stake (a finite number ≥ 0). A failure is reported with its kind (the
//! session's `script_*` codes, or `invalid_stake`), the file, the line and column when the
//! engine gave one, the call (`predict` or `size`) and the windows it happened in. Nothing is
//! traded: the account stays fresh, and the risk gate's verdict is shown for information,
//! without the standard-deviation breaker (there is no warm-up session to measure its
//! baseline). A stake the gate had to clamp to `risk.max_stake`, and failures in a row that
//! would halt a session, are reported as warnings.

use super::{GateView, Meter, Problem, Situation, call_problem, gate_verdict, load_problem};
use crate::config::Config;
use crate::domain::{StakeAsk, Window};
use crate::feed::{AnomalyFilter, Feed, Recorded, ReplayFeed};
use crate::indicators::IndicatorCache;
use crate::ledger::Account;
use crate::script::{Ctx, CtxState, ScriptStrategy, Strategy};
use crate::session::market_view;
use crate::session::replay::strategy_params;
use crate::venue::{Quote, ReplayVenue, Venue};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Windows the smoke check decides unless told otherwise.
pub const DEFAULT_SMOKE_WINDOWS: u32 = 5;

/// [`SmokeReport::status`] when every window was decided validly.
pub const PASSED: &str = "passed";
/// [`SmokeReport::status`] when a call failed or returned something invalid.
pub const FAILED: &str = "failed";
/// [`SmokeReport::status`] when the check did not run.
pub const SKIPPED: &str = "skipped";

/// The candles the smoke check decides from.
#[derive(Clone, Debug)]
pub enum SmokeData {
    /// A recorded candle file, loaded.
    Recorded(Recorded),
    /// No data: the check is skipped, for this reason (a sentence for people).
    Skipped(String),
}

/// What the smoke check found for one script.
#[derive(Clone, Debug, Serialize)]
pub struct SmokeReport {
    /// `passed`, `failed` or `skipped`.
    pub status: &'static str,
    /// The candle file decided from.
    pub data: Option<PathBuf>,
    /// Why it was skipped, or a remark (e.g. `size` never called).
    pub note: Option<String>,
    /// One entry per window decided, in order.
    pub windows: Vec<SmokeWindow>,
    /// Failures, one per distinct kind, call and message, with the windows it happened in.
    pub problems: Vec<Problem>,
    /// Things that are contained but look wrong (`stake_clamped`, `would_halt`).
    pub warnings: Vec<Problem>,
    /// Most Rhai operations one call used.
    pub max_operations: Option<u64>,
    /// Longest call, microseconds.
    pub max_call_us: Option<u64>,
}

/// One window of the smoke check.
#[derive(Clone, Debug, Serialize)]
pub struct SmokeWindow {
    /// The market, e.g. `btc-updown-5m-1761717900`.
    pub slug: String,
    /// Decision time, Unix seconds.
    pub decision_time: i64,
    /// `up`, `down` or `skip`; `None` when `predict` failed.
    pub side: Option<String>,
    /// The decision's reason.
    pub reason: Option<String>,
    /// The stake asked (UP/DOWN), when it is a number.
    pub stake: Option<f64>,
    /// Where the stake came from: `size` or `default_stake`.
    pub stake_from: Option<&'static str>,
    /// The risk gate's verdict, for a valid UP/DOWN.
    pub gate: Option<GateView>,
    /// The problem kind, when this window failed.
    pub failure: Option<String>,
    /// Most Rhai operations one call used in this window.
    pub operations: u64,
    /// Longest call in this window, microseconds.
    pub call_us: u64,
}

impl SmokeReport {
    fn skipped(data: Option<PathBuf>, why: String) -> Self {
        SmokeReport {
            status: SKIPPED,
            data,
            note: Some(why),
            windows: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            max_operations: None,
            max_call_us: None,
        }
    }
}

/// Add `p` in `window`, merging it with an earlier problem of the same kind, call and
/// message.
fn record(list: &mut Vec<Problem>, mut p: Problem, window: &str) {
    if let Some(seen) = list
        .iter_mut()
        .find(|q| q.kind == p.kind && q.function == p.function && q.message == p.message)
    {
        seen.windows.push(window.to_string());
    } else {
        p.windows.push(window.to_string());
        list.push(p);
    }
}

/// The windows a replay session over `feed` would decide first (at most `n`), skipping those
/// the data does not cover (a session journals them as `data_gap` without asking the script).
fn plan(feed: &ReplayFeed, config: &Config, n: u32) -> Result<Vec<Window>, String> {
    let recorded = feed.recorded();
    let interval = config.session.interval_secs;
    let lead = config.session.decision_lead_secs;
    let warmup = config.session.warmup_candles.max(1);
    let candles = &recorded.candles;
    if candles.len() <= warmup {
        return Err(format!(
            "smoke check skipped: {} holds {} candles, not enough for the warm-up of {warmup} (session.warmup_candles) plus a window",
            recorded.path.display(),
            candles.len()
        ));
    }
    let first = Window::first_start_at_or_after(candles[warmup - 1].close_time() + lead, interval);
    let data_end = candles[candles.len() - 1].close_time();
    let mut windows = Vec::new();
    let mut start = first;
    let mut index = 0u32;
    while windows.len() < n as usize && start + interval <= data_end {
        if feed.covers(start, start + interval) {
            windows.push(Window::new(start, interval, index));
        }
        index += 1;
        start += interval;
    }
    if windows.is_empty() {
        return Err(format!(
            "smoke check skipped: {} has no complete {interval}s window after the warm-up of {warmup} candles",
            recorded.path.display()
        ));
    }
    Ok(windows)
}

/// Run the smoke check of `script` on `data`, deciding up to `windows` windows.
pub fn run(script: &Path, config: &Config, data: &SmokeData, windows: u32) -> SmokeReport {
    let recorded = match data {
        SmokeData::Skipped(why) => return SmokeReport::skipped(None, why.clone()),
        SmokeData::Recorded(r) => r,
    };
    let path = Some(recorded.path.clone());
    if windows == 0 {
        return SmokeReport::skipped(path, "smoke check skipped: --smoke-windows 0".into());
    }
    let mut feed = ReplayFeed::new(recorded.clone());
    let plan = match plan(&feed, config, windows) {
        Ok(p) => p,
        Err(why) => return SmokeReport::skipped(path, why),
    };
    let mut report = SmokeReport {
        status: PASSED,
        data: path,
        note: None,
        windows: Vec::with_capacity(plan.len()),
        problems: Vec::new(),
        warnings: Vec::new(),
        max_operations: None,
        max_call_us: None,
    };
    let mut strategy = match ScriptStrategy::load(script, &config.sandbox) {
        Ok(s) => s,
        Err(e) => {
            // It loaded a moment ago for the compile check; a file changed in between.
            report.status = FAILED;
            report.problems.push(load_problem(script, &e));
            return report;
        }
    };

    let lead = config.session.decision_lead_secs;
    let account = Account::new(config.account.starting_capital);
    let mut venue = ReplayVenue::new(&config.replay);
    let mut filter = AnomalyFilter::new(config.risk.max_price_jump_pct);
    let ctx = Ctx::new(CtxState {
        candles: Vec::with_capacity(recorded.candles.len()),
        indicators: IndicatorCache::new(),
        params: strategy_params(config, script, &toml::Table::new()),
        ..CtxState::default()
    });
    let limit = config.risk.max_consecutive_script_failures;
    let (mut in_a_row, mut most_in_a_row) = (0u32, 0u32);
    let mut sized = false;
    let mut total = Meter::default();

    for window in &plan {
        let t = window.start - lead;
        {
            let mut st = ctx.0.borrow_mut();
            feed.deliver_until(t, &mut |c| {
                if filter.accept(&c) {
                    st.candles.push(c);
                }
            });
        }
        // The replay venue always quotes; a venue that cannot is not the script's fault.
        let Ok(quote) = venue.quote(window) else {
            continue;
        };
        {
            let mut st = ctx.0.borrow_mut();
            st.now = t;
            st.window = Some(window.clone());
            st.market = market_view(&quote);
            st.account = crate::script::AccountView::of(&account);
        }
        let mut meter = Meter::default();
        let (mut row, failed) = decide(
            &mut strategy,
            &ctx,
            &mut meter,
            &Turn {
                script,
                config,
                account: &account,
                quote: &quote,
                window,
                now: t,
            },
        );
        if let Some(gate) = &row.gate
            && gate.adjustments.iter().any(|a| a == "clamped_to_max_stake")
        {
            let message = format!(
                "{}: size asked {}, more than risk.max_stake {}: the risk gate clamps it to {}",
                script.display(),
                row.stake.unwrap_or_default(),
                config.risk.max_stake,
                gate.approved.unwrap_or_default()
            );
            record(
                &mut report.warnings,
                Problem::new("stake_clamped", message)
                    .in_script(script)
                    .in_function("size"),
                &window.slug,
            );
        }
        sized |= row.stake_from == Some("size");
        row.operations = meter.max_ops;
        row.call_us = meter.max_us;
        total.calls += meter.calls;
        total.max_ops = total.max_ops.max(meter.max_ops);
        total.max_us = total.max_us.max(meter.max_us);
        match failed {
            Some(p) => {
                row.failure = Some(p.kind.clone());
                record(&mut report.problems, p, &window.slug);
                in_a_row += 1;
                most_in_a_row = most_in_a_row.max(in_a_row);
            }
            None => in_a_row = 0,
        }
        report.windows.push(row);
    }

    if total.calls > 0 {
        report.max_operations = Some(total.max_ops);
        report.max_call_us = Some(total.max_us);
    }
    if !report.problems.is_empty() {
        report.status = FAILED;
    }
    if limit > 0 && most_in_a_row >= limit {
        report.warnings.push(
            Problem::new(
                "would_halt",
                format!(
                    "{}: {most_in_a_row} script failures in a row: a session halts after {limit} (risk.max_consecutive_script_failures)",
                    script.display()
                ),
            )
            .in_script(script),
        );
    }
    if strategy.has_size() && !sized && report.problems.is_empty() {
        report.note = Some(format!(
            "size() was not exercised: predict chose SKIP in all {} windows",
            report.windows.len()
        ));
    }
    report
}

/// What [`decide`] needs to know about one window of the smoke check.
struct Turn<'a> {
    script: &'a Path,
    config: &'a Config,
    account: &'a Account,
    quote: &'a Quote,
    window: &'a Window,
    now: i64,
}

/// Ask the strategy for one window as a session does (`predict`, then for UP or DOWN `size`
/// or the default stake) and judge the answer; the failure, if any, comes back separately.
fn decide(
    strategy: &mut ScriptStrategy,
    ctx: &Ctx,
    meter: &mut Meter,
    at: &Turn<'_>,
) -> (SmokeWindow, Option<Problem>) {
    let mut row = SmokeWindow {
        slug: at.window.slug.clone(),
        decision_time: at.now,
        side: None,
        reason: None,
        stake: None,
        stake_from: None,
        gate: None,
        failure: None,
        operations: 0,
        call_us: 0,
    };
    let decision = match meter.call(strategy, |s| s.predict(ctx)) {
        Ok(d) => d,
        Err(f) => return (row, Some(call_problem(f, at.script).in_function("predict"))),
    };
    row.side = Some(decision.side.map_or("skip", |s| s.as_str()).to_string());
    row.reason = Some(decision.reason.clone());
    let Some(side) = decision.side else {
        return (row, None);
    };
    let (ask, from) = match meter.call(strategy, |s| s.size(ctx, &decision)) {
        Err(f) => return (row, Some(call_problem(f, at.script).in_function("size"))),
        Ok(Some(ask)) => (ask, "size"),
        Ok(None) => (
            StakeAsk::Usd(at.config.strategy.default_stake.to_f64().unwrap_or(0.0)),
            "default_stake",
        ),
    };
    row.stake_from = Some(from);
    if let StakeAsk::Usd(x) = ask {
        row.stake = Some(x);
    }
    if let Some(p) = invalid_stake(&ask, at.script) {
        return (row, Some(p));
    }
    let st = ctx.0.borrow();
    row.gate = Some(gate_verdict(
        at.config,
        &Situation {
            account: at.account,
            quote: at.quote,
            candles: &st.candles,
            now: at.now,
            window_end: at.window.end,
        },
        side,
        &ask,
    ));
    (row, None)
}

/// A stake the gate refuses as `invalid_stake` (and a session counts as a script failure).
fn invalid_stake(ask: &StakeAsk, script: &Path) -> Option<Problem> {
    let message = match ask {
        StakeAsk::Usd(x) if x.is_finite() && *x >= 0.0 => return None,
        StakeAsk::Usd(x) => format!("size returned {x}: a stake must be a finite number ≥ 0"),
        StakeAsk::Invalid(t) => format!("size returned a {t}: a stake must be a number"),
    };
    Some(
        Problem::new(
            "invalid_stake",
            format!(
                "{}: {message}; the risk gate refuses it and a session counts it as a script failure",
                script.display()
            ),
        )
        .in_script(script)
        .in_function("size"),
    )
}
