//! `updown validate`: checking strategy scripts against fixtures before they trade.
//!
//! This module owns running the checks and the [`Report`] they produce; the fixture file
//! format is [`fixture`], printing is the command line's job. For each script it:
//!
//! 1. compiles it with [`ScriptStrategy::load`] — the same loader, sandbox and contract
//!    checks (`predict(ctx)`, optional `size(ctx, decision)`) as a session;
//! 2. runs each fixture through the library's own types (`CtxState`, `IndicatorCache`,
//!    `MarketView`, `Account::view`, `Window`, [`strategy_params`], [`RiskGate::check`]) and
//!    compares the decision, the stake asked and, if pinned, the gate's verdict;
//! 3. checks determinism: the first call on a freshly loaded instance is the fixture's
//!    answer. A second freshly loaded instance must give the identical answer (decision with
//!    its features, and stake), otherwise the fixture fails as `nondeterministic` (across
//!    fresh instances). A second call on the first instance must give it too, otherwise the
//!    fixture fails as `not_repeatable` (non-deterministic across two calls on one
//!    instance): the answer depends on the script's memory (`this`), which the first call
//!    changed. Rhai has no randomness, so in practice only memory makes a difference, and
//!    both results are reported separately ([`Determinism`]). Memory is allowed (DESIGN.md
//!    §3), so a fixture that pins a memory-dependent rule on purpose gives the starting
//!    memory in `[memory]` and says `repeatable = false`, which turns the difference into a
//!    note;
//! 4. measures every call: Rhai operations ([`ScriptStrategy::last_call_operations`]) and
//!    wall time, reported against `sandbox.max_operations` and `sandbox.call_timeout_ms`;
//!    a call that breaks a limit or throws fails the fixture with its failure kind;
//! 5. with or without fixtures, runs the [`smoke`] check: the script decides the first
//!    windows of a recorded candle file the way a replay session reaches them, and every
//!    failure is reported with its kind, file, position (where the engine gives one), call
//!    and windows.
//!
//! A script that does not load is reported with a precise kind too ([`load_problem`]:
//! `syntax_error`, `eval_disabled`, `missing_predict`, `size_signature`, `import_refused`,
//! `import_cycle`, `too_many_modules`, or the limit its top level broke).
//!
//! A fixture's answer is the session's: `predict`, then — for UP or DOWN — `size` or
//! `strategy.default_stake`, exactly as the session asks a strategy. The risk gate sees the
//! fixture's quote and account, a fresh price (age 0), the volatility range of the
//! fixture's candles, no open position unless `cash` < `equity`, and no standard-deviation
//! baseline (fixtures have no warm-up session to measure one, so that breaker is off).

pub mod fixture;
pub mod smoke;

pub use fixture::{CsvCache, Expect, FLOAT_TOLERANCE, Fixture, FixtureError};
pub use smoke::{DEFAULT_SMOKE_WINDOWS, SmokeData, SmokeReport, SmokeWindow};

use crate::config::Config;
use crate::domain::{Decision, StakeAsk};
use crate::indicators::IndicatorCache;
use crate::risk::{DataHealth, GateInput, RiskGate, SideQuote, Verdict};
use crate::script::{
    CallFailure, Ctx, CtxState, FailureKind, ScriptError, ScriptStrategy, Strategy,
};
use crate::session::replay::strategy_params;
use crate::session::stddev_of_closes;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Folder name, next to a script, that holds its fixtures: `<folder>/fixtures/<stem>/`.
pub const FIXTURES_DIR: &str = "fixtures";

/// Why validation could not run at all (as opposed to a script or fixture failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    /// A fixtures folder exists but cannot be listed.
    #[error("{}: cannot list fixtures: {source}", path.display())]
    ListFixtures {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The sandbox limits the measurements are compared with.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// `sandbox.max_operations`: Rhai operations per call.
    pub max_operations: u64,
    /// `sandbox.call_timeout_ms`: wall-clock deadline per call.
    pub call_timeout_ms: u64,
}

/// Counts over the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Scripts checked.
    pub strategies: usize,
    /// Scripts that compiled and met the contract.
    pub compiled: usize,
    /// Scripts that did not.
    pub compile_errors: usize,
    /// Scripts that compiled but have no fixture.
    pub without_fixtures: usize,
    /// Fixtures run.
    pub fixtures: usize,
    /// Fixtures that passed.
    pub passed: usize,
    /// Fixtures that failed.
    pub failed: usize,
    /// Scripts whose smoke check ran and passed.
    pub smoke_passed: usize,
    /// Scripts whose smoke check ran and failed.
    pub smoke_failed: usize,
    /// Scripts that compiled but whose smoke check did not run (no data, or turned off).
    pub smoke_skipped: usize,
}

/// Everything one `validate` run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True only if every script compiled, every fixture passed and no smoke check failed.
    pub ok: bool,
    /// The limits measured against.
    pub limits: Limits,
    /// Counts.
    pub totals: Totals,
    /// One entry per script, in the order given.
    pub strategies: Vec<StrategyReport>,
}

/// What was found for one script.
#[derive(Clone, Debug, Serialize)]
pub struct StrategyReport {
    /// The script as given.
    pub path: PathBuf,
    /// Its file stem.
    pub name: String,
    /// Whether it compiled and met the contract.
    pub compiled: bool,
    /// Content hash (as journaled by sessions), when it compiled.
    pub script_hash: Option<String>,
    /// Whether it defines `size(ctx, decision)`.
    pub has_size: bool,
    /// The compile, contract or top-level error, with file, line and column.
    pub compile_error: Option<String>,
    /// The same error with its precise kind (`syntax_error`, `missing_predict`, ...).
    pub load_error: Option<Problem>,
    /// Where its fixtures were looked for.
    pub fixtures_dir: PathBuf,
    /// E.g. "no fixtures".
    pub note: Option<String>,
    /// Most Rhai operations any call used.
    pub max_operations: Option<u64>,
    /// Longest call, microseconds.
    pub max_call_us: Option<u64>,
    /// What looked wrong without failing: parameters of `[params.<stem>]` the script never
    /// reads or gets with another type than its default (`parameter`), and calls that used
    /// over half of `sandbox.call_timeout_ms` (`slow_call`).
    pub warnings: Vec<Problem>,
    /// One entry per fixture file, sorted by name.
    pub fixtures: Vec<FixtureReport>,
    /// The built-in smoke check on recorded data; `None` when the script did not load.
    pub smoke: Option<SmokeReport>,
}

/// Why a script, a fixture or the smoke check failed (or, in `warnings`, what looked wrong).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Problem {
    /// Loading: `syntax_error`, `eval_disabled`, `missing_predict`, `size_signature`,
    /// `import_refused`, `unreadable`, or a script failure code when the top level broke a
    /// limit. Calls: a script failure code such as `script_operation_budget`, or
    /// `invalid_stake`. Fixtures also: `fixture_error`, `mismatch`, `nondeterministic`,
    /// `not_repeatable`. Smoke warnings: `stake_clamped`, `would_halt`.
    pub kind: String,
    /// For people, with the details (file, line, column where known).
    pub message: String,
    /// The script the problem is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// 1-based line, when the script engine reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when the script engine reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The call that failed: `predict`, `size`, or `top level` (at load time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Smoke check: the windows (slugs) it happened in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<String>,
}

impl Problem {
    /// A problem of `kind`, described by `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind: kind.into(),
            message: message.into(),
            ..Problem::default()
        }
    }

    /// The same problem located in `script`: the line and column come from the message
    /// when the script engine put one there (`line 4, column 19` or `(line 4, position 9)`).
    pub fn in_script(mut self, script: &Path) -> Self {
        if let Some((line, column)) = position_in(&self.message) {
            self.line = Some(line);
            self.column = Some(column);
        }
        self.file = Some(script.to_path_buf());
        self
    }

    /// The same problem, in the call `function`.
    pub fn in_function(mut self, function: &str) -> Self {
        self.function = Some(function.to_string());
        self
    }
}

/// The first `line L, column C` or `line L, position C` in `text`.
pub fn position_in(text: &str) -> Option<(usize, usize)> {
    let number = |s: &str| -> Option<(usize, usize)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        s[..digits].parse().ok().map(|n| (n, digits))
    };
    let mut rest = text;
    while let Some(at) = rest.find("line ") {
        let after = &rest[at + 5..];
        if let Some((line, used)) = number(after) {
            let tail = &after[used..];
            for sep in [", column ", ", position "] {
                if let Some(col) = tail.strip_prefix(sep).and_then(number) {
                    return Some((line, col.0));
                }
            }
        }
        rest = after;
    }
    None
}

/// What was wrong with a script that did not load, with a precise kind.
///
/// The kind comes from the loader's error variant and, inside a variant, from the words of
/// its message (the loader's own sentences, and Rhai's names for broken limits).
pub fn load_problem(script: &Path, err: &ScriptError) -> Problem {
    let message = err.to_string();
    let kind = match err {
        ScriptError::Read { .. } => "unreadable",
        ScriptError::Compile { message, .. } if message.contains("'eval'") => "eval_disabled",
        ScriptError::Compile { .. } => "syntax_error",
        ScriptError::Contract { message, .. } if message.contains("predict") => "missing_predict",
        ScriptError::Contract { message, .. } if message.contains("`size`") => "size_signature",
        ScriptError::Contract { .. } => "contract",
        ScriptError::TopLevel { message, .. } => {
            if message.contains("refused: import cycle") {
                "import_cycle"
            } else if message.contains("(sandbox.max_modules)")
                || message.contains("Too many modules")
            {
                "too_many_modules"
            } else if message.contains("refused") && message.contains("strategies folder") {
                "import_refused"
            } else if message.contains("Too many operations") {
                FailureKind::OperationBudget.code()
            } else if message.contains("wall-clock deadline") {
                FailureKind::Timeout.code()
            } else if message.contains("Stack overflow") {
                FailureKind::CallDepth.code()
            } else if message.contains(" too large") {
                FailureKind::DataTooLarge.code()
            } else {
                FailureKind::Runtime.code()
            }
        }
    };
    let p = Problem::new(kind, message).in_script(script);
    if matches!(err, ScriptError::TopLevel { .. }) {
        p.in_function("top level")
    } else {
        p
    }
}

/// Results of the determinism checks; `None` when a check did not run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Determinism {
    /// Two freshly loaded instances gave the same answer.
    pub fresh_instances: Option<bool>,
    /// A second call on the same instance gave the same answer.
    pub same_instance: Option<bool>,
}

/// The risk gate's verdict on the stake asked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateView {
    /// `approved` or `refused`.
    pub verdict: &'static str,
    /// The approved stake (exact decimal).
    pub approved: Option<Decimal>,
    /// The refusal code.
    pub code: Option<String>,
    /// The refusal's sentence.
    pub detail: Option<String>,
    /// Limits that reduced the stake, e.g. `clamped_to_max_stake`.
    pub adjustments: Vec<String>,
}

/// What the script answered (first call on a fresh instance).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// `up`, `down` or `skip`.
    pub side: String,
    /// Stated confidence.
    pub confidence: f64,
    /// Stated probability, if any.
    pub prob: Option<f64>,
    /// Stated reason.
    pub reason: String,
    /// Numbers the script attached.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// The stake asked, for UP/DOWN (`None` for SKIP or when not a number).
    pub stake: Option<f64>,
    /// Where the stake came from: `size` or `default_stake`.
    pub stake_from: Option<&'static str>,
    /// The gate's verdict, for UP/DOWN.
    pub gate: Option<GateView>,
}

/// The outcome of one fixture.
#[derive(Clone, Debug, Serialize)]
pub struct FixtureReport {
    /// The fixture file.
    pub file: PathBuf,
    /// Its stem.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Passed every check.
    pub passed: bool,
    /// What failed (empty when passed).
    pub problems: Vec<Problem>,
    /// Remarks that are not failures.
    pub notes: Vec<String>,
    /// The expectation, when the fixture parsed.
    pub expected: Option<Expect>,
    /// The answer, when the first call succeeded.
    pub got: Option<Answer>,
    /// Most Rhai operations one call used.
    pub operations: Option<u64>,
    /// Longest call, microseconds.
    pub max_call_us: Option<u64>,
    /// Calls made (predict and size, over all runs).
    pub calls: u32,
    /// Determinism checks.
    pub deterministic: Determinism,
}

impl Report {
    /// Exit status for the command line: every script compiled and every fixture passed.
    pub fn all_passed(&self) -> bool {
        self.ok
    }
}

/// Where fixtures for `script` live: `<root>/<stem>/` with `--fixtures <root>`, else
/// `<script folder>/fixtures/<stem>/`.
pub fn fixtures_dir(script: &Path, root: Option<&Path>) -> PathBuf {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match root {
        Some(r) => r.join(stem),
        None => script
            .parent()
            .unwrap_or(Path::new("."))
            .join(FIXTURES_DIR)
            .join(stem),
    }
}

/// The `*.toml` files in `dir`, sorted; none if `dir` does not exist.
pub fn list_fixtures(dir: &Path) -> Result<Vec<PathBuf>, ValidateError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let err = |source| ValidateError::ListFixtures {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// What to check besides compiling.
#[derive(Debug)]
pub struct Options<'a> {
    /// Read fixtures from `<root>/<stem>/` instead of next to each script (see
    /// [`fixtures_dir`]).
    pub fixtures_root: Option<&'a Path>,
    /// Recorded candles for the smoke check, or why it is skipped.
    pub smoke: SmokeData,
    /// Windows the smoke check decides (0 turns it off).
    pub smoke_windows: u32,
}

/// Validate every script in `scripts` against its fixtures, without a smoke check.
pub fn validate(
    scripts: &[PathBuf],
    fixtures_root: Option<&Path>,
    config: &Config,
) -> Result<Report, ValidateError> {
    let options = Options {
        fixtures_root,
        smoke: SmokeData::Skipped("smoke check skipped: not requested".into()),
        smoke_windows: 0,
    };
    validate_with(scripts, &options, config)
}

/// Validate every script in `scripts`: compile, fixtures, and the smoke check on recorded
/// data.
pub fn validate_with(
    scripts: &[PathBuf],
    options: &Options<'_>,
    config: &Config,
) -> Result<Report, ValidateError> {
    let mut csv = CsvCache::new();
    let mut strategies = Vec::with_capacity(scripts.len());
    for script in scripts {
        let mut report = validate_strategy(script, options.fixtures_root, config, &mut csv)?;
        if report.compiled {
            let smoke = smoke::run(script, config, &options.smoke, options.smoke_windows);
            report.max_operations = report.max_operations.max(smoke.max_operations);
            report.max_call_us = report.max_call_us.max(smoke.max_call_us);
            report.smoke = Some(smoke);
        }
        let deadline_us = config.sandbox.call_timeout_ms.saturating_mul(1000);
        if let Some(us) = report.max_call_us
            && us.saturating_mul(2) > deadline_us
        {
            report.warnings.push(Problem::new(
                "slow_call",
                format!(
                    "the slowest call took {:.1} ms, over half of sandbox.call_timeout_ms \
                     ({} ms): on a slower or busier machine a session may time out there and \
                     skip the window. Backtests are decided by the operation budget instead",
                    us as f64 / 1000.0,
                    config.sandbox.call_timeout_ms
                ),
            ));
        }
        strategies.push(report);
    }
    let mut totals = Totals {
        strategies: strategies.len(),
        ..Totals::default()
    };
    for s in &strategies {
        if s.compiled {
            totals.compiled += 1;
            if s.fixtures.is_empty() {
                totals.without_fixtures += 1;
            }
        } else {
            totals.compile_errors += 1;
        }
        totals.fixtures += s.fixtures.len();
        totals.passed += s.fixtures.iter().filter(|f| f.passed).count();
        match s.smoke.as_ref().map(|r| r.status) {
            Some(smoke::PASSED) => totals.smoke_passed += 1,
            Some(smoke::FAILED) => totals.smoke_failed += 1,
            Some(_) => totals.smoke_skipped += 1,
            None => {}
        }
    }
    totals.failed = totals.fixtures - totals.passed;
    Ok(Report {
        ok: totals.compile_errors == 0 && totals.failed == 0 && totals.smoke_failed == 0,
        limits: Limits {
            max_operations: config.sandbox.max_operations,
            call_timeout_ms: config.sandbox.call_timeout_ms,
        },
        totals,
        strategies,
    })
}

/// Validate one script against its fixtures.
pub fn validate_strategy(
    script: &Path,
    fixtures_root: Option<&Path>,
    config: &Config,
    csv: &mut CsvCache,
) -> Result<StrategyReport, ValidateError> {
    let dir = fixtures_dir(script, fixtures_root);
    let mut report = StrategyReport {
        path: script.to_path_buf(),
        name: script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        compiled: false,
        script_hash: None,
        has_size: false,
        compile_error: None,
        load_error: None,
        fixtures_dir: dir.clone(),
        note: None,
        max_operations: None,
        max_call_us: None,
        warnings: Vec::new(),
        fixtures: Vec::new(),
        smoke: None,
    };
    match ScriptStrategy::load(script, &config.sandbox) {
        Err(e) => {
            report.compile_error = Some(e.to_string());
            report.load_error = Some(load_problem(script, &e));
            return Ok(report);
        }
        Ok(s) => {
            report.compiled = true;
            report.script_hash = Some(s.content_hash().to_string());
            report.has_size = s.has_size();
            let stem = crate::native::params_name(script);
            for message in s.check_params(config.params.get(&stem), &toml::Table::new()) {
                report.warnings.push(Problem::new("parameter", message));
            }
        }
    }
    let files = list_fixtures(&dir)?;
    if files.is_empty() {
        report.note = Some(format!("no fixtures (looked in {})", dir.display()));
    }
    for file in files {
        let fx = match Fixture::load(&file, config, csv) {
            Ok(fx) => run_fixture(script, config, &fx),
            Err(e) => broken_fixture(&file, e),
        };
        report.fixtures.push(fx);
    }
    report.max_operations = report.fixtures.iter().filter_map(|f| f.operations).max();
    report.max_call_us = report.fixtures.iter().filter_map(|f| f.max_call_us).max();
    Ok(report)
}

fn broken_fixture(file: &Path, e: FixtureError) -> FixtureReport {
    FixtureReport {
        file: file.to_path_buf(),
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        description: String::new(),
        passed: false,
        problems: vec![Problem::new("fixture_error", e.to_string())],
        notes: Vec::new(),
        expected: None,
        got: None,
        operations: None,
        max_call_us: None,
        calls: 0,
        deterministic: Determinism::default(),
    }
}

/// Measurements of the calls made for one fixture (or one smoke check).
#[derive(Default)]
pub(crate) struct Meter {
    pub(crate) calls: u32,
    pub(crate) max_ops: u64,
    pub(crate) max_us: u64,
}

impl Meter {
    pub(crate) fn call<T>(
        &mut self,
        s: &mut ScriptStrategy,
        f: impl FnOnce(&mut ScriptStrategy) -> T,
    ) -> T {
        let t0 = Instant::now();
        let out = f(s);
        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.calls += 1;
        self.max_ops = self.max_ops.max(s.last_call_operations());
        self.max_us = self.max_us.max(us);
        out
    }
}

/// One run of a fixture: the decision and the stake asked, as the session asks them.
type Run = Result<(Decision, Option<StakeAsk>), CallFailure>;

fn run_once(
    s: &mut ScriptStrategy,
    fx: &Fixture,
    script: &Path,
    config: &Config,
    m: &mut Meter,
) -> Run {
    let ctx = Ctx::new(CtxState {
        candles: fx.candles.clone(),
        indicators: IndicatorCache::new(),
        now: fx.now,
        window: Some(fx.window.clone()),
        market: fx.market_view(),
        account: crate::script::AccountView::of(&fx.account),
        params: strategy_params(config, script, &fx.params),
    });
    let decision = m.call(s, |s| s.predict(&ctx))?;
    if decision.side.is_none() {
        return Ok((decision, None));
    }
    let ask = match m.call(s, |s| s.size(&ctx, &decision))? {
        Some(ask) => ask,
        None => StakeAsk::Usd(config.strategy.default_stake.to_f64().unwrap_or(0.0)),
    };
    Ok((decision, Some(ask)))
}

fn fresh(script: &Path, config: &Config, fx: &Fixture) -> Result<ScriptStrategy, Box<Problem>> {
    let mut s = ScriptStrategy::load(script, &config.sandbox)
        .map_err(|e| Box::new(Problem::new("compile_error", e.to_string())))?;
    if let Some(memory) = &fx.memory {
        s.restore_memory(memory).map_err(|e| {
            Box::new(Problem::new(
                "fixture_error",
                format!("{}: `memory`: {e}", fx.path.display()),
            ))
        })?;
    }
    Ok(s)
}

/// A failed call as a problem: its kind code, the message, and where.
pub(crate) fn call_problem(f: CallFailure, script: &Path) -> Problem {
    Problem::new(f.kind.code(), f.message).in_script(script)
}

/// Run one fixture on two fresh instances (and twice on the first) and judge the answer.
pub fn run_fixture(script: &Path, config: &Config, fx: &Fixture) -> FixtureReport {
    let mut report = FixtureReport {
        file: fx.path.clone(),
        name: fx.name.clone(),
        description: fx.description.clone(),
        passed: false,
        problems: Vec::new(),
        notes: Vec::new(),
        expected: Some(fx.expect.clone()),
        got: None,
        operations: None,
        max_call_us: None,
        calls: 0,
        deterministic: Determinism::default(),
    };
    let mut meter = Meter::default();
    let outcome = judge(script, config, fx, &mut meter, &mut report);
    if let Err(p) = outcome {
        report.problems.push(*p);
    }
    if meter.calls > 0 {
        report.operations = Some(meter.max_ops);
        report.max_call_us = Some(meter.max_us);
    }
    report.calls = meter.calls;
    report.passed = report.problems.is_empty();
    report
}

fn judge(
    script: &Path,
    config: &Config,
    fx: &Fixture,
    meter: &mut Meter,
    report: &mut FixtureReport,
) -> Result<(), Box<Problem>> {
    let failed = |f| Box::new(call_problem(f, script));
    let mut a = fresh(script, config, fx)?;
    let mut b = fresh(script, config, fx)?;
    let first = run_once(&mut a, fx, script, config, meter).map_err(failed)?;
    let (decision, ask) = &first;
    let gate = decision
        .side
        .zip(ask.as_ref())
        .map(|(side, ask)| gate_view(config, fx, side, ask));
    report.got = Some(answer(decision, ask.as_ref(), gate, a.has_size()));

    let other = run_once(&mut b, fx, script, config, meter).map_err(failed)?;
    let fresh_same = other == first;
    report.deterministic.fresh_instances = Some(fresh_same);
    if !fresh_same {
        report.problems.push(Problem::new(
            "nondeterministic",
            format!(
                "a second freshly loaded instance answered differently: {} instead of {}",
                describe(&other),
                describe(&first)
            ),
        ));
    }
    let again = run_once(&mut a, fx, script, config, meter).map_err(failed)?;
    let repeat_same = again == first;
    report.deterministic.same_instance = Some(repeat_same);
    if !repeat_same {
        let message = format!(
            "non-deterministic across two calls on one instance: the second call answered {} \
             instead of {}; the answer depends on the script's memory (`this`)",
            describe(&again),
            describe(&first)
        );
        if fx.expect.repeatable {
            report.problems.push(Problem::new(
                "not_repeatable",
                format!("{message}; if that is intended, say `repeatable = false` in [expect]"),
            ));
        } else {
            report.notes.push(message);
        }
    }

    if let Some(StakeAsk::Usd(x)) = ask
        && !(x.is_finite() && *x >= 0.0)
    {
        report.problems.push(Problem::new(
            "invalid_stake",
            format!("size returned {x}: a stake must be a finite number ≥ 0"),
        ));
    }
    if let Some(StakeAsk::Invalid(t)) = ask {
        report.problems.push(Problem::new(
            "invalid_stake",
            format!("size returned {t}: a stake must be a number"),
        ));
    }
    if let Some(got) = &report.got {
        for message in mismatches(&fx.expect, got) {
            report.problems.push(Problem::new("mismatch", message));
        }
    }
    Ok(())
}

fn gate_view(config: &Config, fx: &Fixture, side: crate::domain::Side, ask: &StakeAsk) -> GateView {
    gate_verdict(
        config,
        &Situation {
            account: &fx.account,
            quote: &fx.quote,
            candles: &fx.candles,
            now: fx.now,
            window_end: fx.window.end,
        },
        side,
        ask,
    )
}

/// What the risk gate sees of a decision outside a session.
pub(crate) struct Situation<'a> {
    /// The account (an open position when `cash` < `equity`).
    pub account: &'a crate::ledger::Account,
    /// The venue's quote.
    pub quote: &'a crate::venue::Quote,
    /// Closed candles visible at `now`.
    pub candles: &'a [crate::feed::Candle],
    /// Decision time.
    pub now: i64,
    /// End of the window decided.
    pub window_end: i64,
}

/// The gate's verdict on `ask` for `side` in `at`, with no standard-deviation baseline
/// (there is no warm-up session to measure one, so that breaker is off).
pub(crate) fn gate_verdict(
    config: &Config,
    at: &Situation<'_>,
    side: crate::domain::Side,
    ask: &StakeAsk,
) -> GateView {
    let account = at.account;
    let book = at.quote.side(side);
    let input = GateInput {
        side,
        ask: ask.clone(),
        quote: SideQuote {
            ask: book.ask,
            bid: book.bid,
            min_order_shares: at.quote.min_order_shares,
        },
        equity: account.equity(),
        cash: account.cash,
        open_positions: usize::from(account.open_cost > Decimal::ZERO),
        allow_overlap: config.session.allow_overlap,
        halted: false,
        data: DataHealth {
            price_age_secs: at.candles.last().map(|c| at.now - c.close_time()),
            range_pct: crate::script::ctx::range_pct(
                at.candles,
                i64::from(config.risk.vol_range_minutes),
            )
            .ok()
            .flatten(),
            stddev: stddev_of_closes(at.candles, config.risk.stddev_window as usize),
            stddev_baseline: None,
            feed_stale: None,
        },
        seconds_to_close: at.window_end - at.now,
    };
    match RiskGate::new(&config.risk, account.starting_capital).check(&input) {
        Verdict::Approved(stake) => GateView {
            verdict: "approved",
            approved: Some(stake.usd()),
            code: None,
            detail: None,
            adjustments: stake.adjustments().iter().map(|s| s.to_string()).collect(),
        },
        Verdict::Refused(r) => GateView {
            verdict: "refused",
            approved: None,
            code: Some(r.code.code().to_string()),
            detail: Some(r.detail),
            adjustments: Vec::new(),
        },
    }
}

fn answer(d: &Decision, ask: Option<&StakeAsk>, gate: Option<GateView>, has_size: bool) -> Answer {
    Answer {
        side: d.side.map_or("skip", |s| s.as_str()).to_string(),
        confidence: d.confidence,
        prob: d.prob,
        reason: d.reason.clone(),
        features: d.features.clone(),
        stake: match ask {
            Some(StakeAsk::Usd(x)) => Some(*x),
            _ => None,
        },
        stake_from: ask.map(|_| if has_size { "size" } else { "default_stake" }),
        gate,
    }
}

fn describe(run: &(Decision, Option<StakeAsk>)) -> String {
    let (d, ask) = run;
    let mut s = format!(
        "{} ({}, confidence {})",
        d.side.map_or("skip", |s| s.as_str()),
        d.reason,
        d.confidence
    );
    match ask {
        Some(StakeAsk::Usd(x)) => s.push_str(&format!(" stake {x}")),
        Some(StakeAsk::Invalid(t)) => s.push_str(&format!(" stake <{t}>")),
        None => {}
    }
    s
}

/// Every way `got` differs from `expect`, one sentence each.
pub fn mismatches(expect: &Expect, got: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    let want_side = expect.side.map_or("skip", |s| s.as_str());
    if got.side != want_side {
        out.push(format!(
            "side: expected {want_side}, got {} ({:?})",
            got.side, got.reason
        ));
    }
    if let Some(text) = &expect.reason_contains
        && !got.reason.contains(text.as_str())
    {
        out.push(format!(
            "reason: expected it to contain {text:?}, got {:?}",
            got.reason
        ));
    }
    let close = |a: f64, b: f64| (a - b).abs() <= FLOAT_TOLERANCE;
    if let Some(c) = expect.confidence
        && !close(c, got.confidence)
    {
        out.push(format!("confidence: expected {c}, got {}", got.confidence));
    }
    if let Some(p) = expect.prob {
        match got.prob {
            Some(q) if close(p, q) => {}
            Some(q) => out.push(format!("prob: expected {p}, got {q}")),
            None => out.push(format!("prob: expected {p}, the decision has none")),
        }
    }
    if let Some(x) = expect.stake {
        match got.stake {
            Some(y) if close(x, y) => {}
            Some(y) => out.push(format!("stake: expected {x}, got {y}")),
            None => out.push(format!("stake: expected {x}, got none")),
        }
    }
    let gate = got.gate.as_ref();
    if let Some(x) = expect.approved {
        match gate {
            Some(g) if g.approved == Some(x) => {}
            Some(GateView {
                approved: Some(y), ..
            }) => out.push(format!("approved: expected {x}, the gate approved {y}")),
            Some(g) => out.push(format!(
                "approved: expected {x}, the gate refused: {} ({})",
                g.code.as_deref().unwrap_or("?"),
                g.detail.as_deref().unwrap_or("")
            )),
            None => out.push(format!("approved: expected {x}, nothing reached the gate")),
        }
    }
    if let Some(code) = &expect.refused {
        match gate {
            Some(g) if g.code.as_deref() == Some(code.as_str()) => {}
            Some(GateView {
                approved: Some(y), ..
            }) => out.push(format!("refused: expected {code}, the gate approved {y}")),
            Some(g) => out.push(format!(
                "refused: expected {code}, the gate refused with {} ({})",
                g.code.as_deref().unwrap_or("?"),
                g.detail.as_deref().unwrap_or("")
            )),
            None => out.push(format!(
                "refused: expected {code}, nothing reached the gate"
            )),
        }
    }
    out
}
