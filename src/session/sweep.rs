//! Parameter sweeps: the same backtest over a grid of strategy parameters, in parallel.
//!
//! This module owns the `--sweep key=v1,v2,…` syntax ([`parse_axis`]), the grid of
//! combinations in a fixed order ([`grid`]), running them across threads ([`run_sweep`],
//! on [`run_parallel`]: each thread loads its own script, since Rhai values are not `Send`),
//! the metrics rows can be sorted by ([`SortKey`]), and the spread of a metric over the grid
//! ([`Spread`]) so that over-fitting is visible. It never names a "best" combination.

use super::Progress;
use super::backtest::{
    BacktestData, BacktestError, BacktestResult, BacktestSpec, Plan, run_backtest,
};
use crate::config::parse_param_overrides;
use crate::report::Summary;
use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// Native stack for threads that run scripts (as `updown run`'s session thread).
pub const SCRIPT_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A malformed `--sweep`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--sweep {raw:?}: {problem}; expected key=v1,v2,… e.g. --sweep rsi_low=25,30,35")]
pub struct SweepError {
    /// The argument as given.
    pub raw: String,
    /// What is wrong.
    pub problem: String,
}

/// One swept parameter and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Parameter name.
    pub key: String,
    /// Values as written, and as the script receives them (typed like `--param`).
    pub values: Vec<(String, toml::Value)>,
}

/// Parse `key=v1,v2,…`; values are typed like `--param` values (integer, float, boolean,
/// else string).
pub fn parse_axis(raw: &str) -> Result<Axis, SweepError> {
    let fail = |problem: &str| SweepError {
        raw: raw.to_string(),
        problem: problem.to_string(),
    };
    let (key, list) = raw.split_once('=').ok_or_else(|| fail("no `=`"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(fail("no parameter name before `=`"));
    }
    let mut values: Vec<(String, toml::Value)> = Vec::new();
    for v in list.split(',') {
        let v = v.trim();
        if v.is_empty() {
            return Err(fail("an empty value"));
        }
        if values.iter().any(|(w, _)| w == v) {
            return Err(fail(&format!("the value {v} is listed twice")));
        }
        let table =
            parse_param_overrides(&[format!("{key}={v}")]).map_err(|e| fail(&e.to_string()))?;
        let value = table
            .get(key)
            .cloned()
            .ok_or_else(|| fail("the value could not be read"))?;
        values.push((v.to_string(), value));
    }
    Ok(Axis {
        key: key.to_string(),
        values,
    })
}

/// One point of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Combination {
    /// `(key, value as written)`, in `--sweep` order.
    pub params: Vec<(String, String)>,
    /// The overrides this combination adds to `--param`s.
    pub overrides: toml::Table,
}

impl Combination {
    /// `rsi_low=25,ema_fast=7`: the label, and the name of its output sub-folder (characters
    /// a file name cannot hold become `_`).
    pub fn label(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The output sub-folder name.
    pub fn dir_name(&self) -> String {
        self.label()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "=,._-+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Every combination of the axes' values; the first axis varies slowest.
pub fn grid(axes: &[Axis]) -> Result<Vec<Combination>, SweepError> {
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            return Err(SweepError {
                raw: a.key.clone(),
                problem: "this parameter is swept twice; list all its values in one --sweep".into(),
            });
        }
    }
    let mut combos = vec![Combination {
        params: Vec::new(),
        overrides: toml::Table::new(),
    }];
    for axis in axes {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for c in &combos {
            for (text, value) in &axis.values {
                let mut c = c.clone();
                c.params.push((axis.key.clone(), text.clone()));
                c.overrides.insert(axis.key.clone(), value.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    Ok(combos)
}

/// A metric rows can be sorted by. Add a variant (and its arms) to offer a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SortKey {
    /// Realised P&L, USD (higher first).
    Pnl,
    /// Return on starting capital, percent (higher first).
    Return,
    /// Winning share of settled trades, percent (higher first).
    WinRate,
    /// Settled trades (more first).
    Trades,
    /// Largest fall from a peak of equity, percent (lower first).
    MaxDrawdown,
    /// Annualised Sharpe ratio of per-window returns, as `updown report` defines it.
    Sharpe,
    /// Annualised Sortino ratio of per-window returns, as `updown report` defines it.
    Sortino,
}

impl SortKey {
    /// Every key, in the order they are listed to users.
    pub const ALL: [SortKey; 7] = [
        SortKey::Pnl,
        SortKey::Return,
        SortKey::WinRate,
        SortKey::Trades,
        SortKey::MaxDrawdown,
        SortKey::Sharpe,
        SortKey::Sortino,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Pnl => "pnl",
            SortKey::Return => "return",
            SortKey::WinRate => "win_rate",
            SortKey::Trades => "trades",
            SortKey::MaxDrawdown => "max_drawdown",
            SortKey::Sharpe => "sharpe",
            SortKey::Sortino => "sortino",
        }
    }

    /// Whether a higher value sorts first.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, SortKey::MaxDrawdown)
    }

    /// The metric of a backtest (`None` when it does not exist, e.g. a win rate without
    /// trades or a Sortino ratio without a losing window).
    pub fn value(self, r: &BacktestResult) -> Option<Decimal> {
        self.of(&r.summary, r.ratios.sharpe, r.ratios.sortino)
    }

    /// The metric from a summary and the session's Sharpe and Sortino ratios.
    pub fn of(self, s: &Summary, sharpe: Option<f64>, sortino: Option<f64>) -> Option<Decimal> {
        let ratio = |x: Option<f64>| x.and_then(Decimal::from_f64_retain).map(|d| d.round_dp(4));
        match self {
            SortKey::Pnl => Some(s.pnl),
            SortKey::Return => return_pct(s),
            SortKey::WinRate => (s.settled > 0).then(|| {
                (Decimal::from(s.wins) * Decimal::ONE_HUNDRED / Decimal::from(s.settled))
                    .round_dp(2)
            }),
            SortKey::Trades => Some(Decimal::from(s.settled)),
            SortKey::MaxDrawdown => Some(s.max_drawdown_pct),
            SortKey::Sharpe => ratio(sharpe),
            SortKey::Sortino => ratio(sortino),
        }
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SortKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SortKey::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a metric to sort by; use one of {}",
                    SortKey::ALL.map(SortKey::name).join(", ")
                )
            })
    }
}

/// Return on starting capital in percent, 2 decimals.
pub fn return_pct(s: &Summary) -> Option<Decimal> {
    (s.starting_equity > Decimal::ZERO).then(|| {
        ((s.final_equity - s.starting_equity) / s.starting_equity * Decimal::ONE_HUNDRED)
            .round_dp(2)
    })
}

/// One combination's result.
#[derive(Debug)]
pub struct Row {
    /// The combination.
    pub combination: Combination,
    /// Its backtest, or why it failed.
    pub result: Result<BacktestResult, BacktestError>,
}

/// Sort `rows` by `key`, best first (rows without the metric, and failed rows, last; ties
/// keep grid order).
pub fn sort_rows(rows: &mut [Row], key: SortKey) {
    rows.sort_by(|a, b| {
        let va = a.result.as_ref().ok().and_then(|r| key.value(r));
        let vb = b.result.as_ref().ok().and_then(|r| key.value(r));
        match (va, vb) {
            (Some(x), Some(y)) if key.higher_is_better() => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
}

/// The spread of a metric over the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// The metric.
    pub key: SortKey,
    /// Smallest value.
    pub min: Decimal,
    /// Median value (mean of the middle two for an even count).
    pub median: Decimal,
    /// Largest value.
    pub max: Decimal,
    /// Combinations with the metric.
    pub counted: usize,
    /// Combinations with a positive P&L.
    pub profitable: usize,
    /// Combinations that ran.
    pub total: usize,
}

impl Spread {
    /// The spread of `key` over the rows that ran (`None` if none has the metric).
    pub fn of(rows: &[Row], key: SortKey) -> Option<Spread> {
        let results: Vec<&BacktestResult> =
            rows.iter().filter_map(|r| r.result.as_ref().ok()).collect();
        let mut values: Vec<Decimal> = results.iter().filter_map(|r| key.value(r)).collect();
        values.sort();
        let n = values.len();
        let (min, max) = (*values.first()?, *values.last()?);
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / Decimal::TWO
        };
        Some(Spread {
            key,
            min,
            median,
            max,
            counted: n,
            profitable: results
                .iter()
                .filter(|r| r.summary.pnl > Decimal::ZERO)
                .count(),
            total: results.len(),
        })
    }
}

/// Run `f` over `items` on up to `jobs` threads (each with a stack large enough for
/// scripts), returning the results in `items` order.
pub fn run_parallel<T, R, F>(jobs: usize, items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    let queue: Mutex<Vec<(usize, T)>> = Mutex::new(items.into_iter().enumerate().rev().collect());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    let next = || queue.lock().ok().and_then(|mut q| q.pop());
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..jobs.clamp(1, n.max(1)) {
            let (f, results, next) = (&f, &results, &next);
            let spawned = std::thread::Builder::new()
                .name(format!("backtest-{i}"))
                .stack_size(SCRIPT_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    while let Some((idx, item)) = next() {
                        let r = f(item);
                        if let Ok(mut out) = results.lock() {
                            out[idx] = Some(r);
                        }
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                // No thread could be started: run the work here instead.
                Err(_) if handles.is_empty() => {
                    while let Some((idx, item)) = next() {
                        let r = f(item);
                        if let Ok(mut out) = results.lock() {
                            out[idx] = Some(r);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        for h in handles {
            // A panicking job leaves its slot empty; the caller reports it.
            let _ = h.join();
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Run every combination on up to `jobs` threads, each in its own sub-folder of
/// `base.out_dir` (named by [`Combination::dir_name`]). `tick` is called after every window
/// of every run. Rows come back in grid order.
pub fn run_sweep(
    base: &BacktestSpec,
    data: &BacktestData,
    plan: &Plan,
    combinations: Vec<Combination>,
    jobs: usize,
    tick: &(dyn Fn() + Sync),
    stop: &AtomicBool,
) -> Vec<Row> {
    let n = combinations.len();
    let results = run_parallel(jobs, combinations.clone(), |c: Combination| {
        let mut spec = base.clone();
        spec.out_dir = base.out_dir.join(c.dir_name());
        for (k, v) in &c.overrides {
            spec.overrides.insert(k.clone(), v.clone());
        }
        let hook: Box<dyn FnMut(Progress) + '_> = Box::new(|_| tick());
        let r = run_backtest(&spec, data, plan, None, Some(hook), stop);
        (c, r)
    });
    let mut rows: Vec<Row> = results
        .into_iter()
        .map(|(combination, result)| Row {
            combination,
            result,
        })
        .collect();
    // A thread that panicked left its combination out; say so rather than drop it.
    if rows.len() < n {
        for c in combinations {
            if !rows.iter().any(|r| r.combination == c) {
                rows.push(Row {
                    combination: c,
                    result: Err(BacktestError::Failed("the backtest thread panicked".into())),
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn axes_parse_typed_values_and_grids_vary_the_last_axis_fastest() {
        let a = parse_axis("rsi_low=25,30").unwrap();
        assert_eq!(a.values[0].1, toml::Value::Integer(25));
        let b = parse_axis("mode=fast, 0.5").unwrap();
        assert_eq!(b.values[0].1, toml::Value::String("fast".into()));
        assert_eq!(b.values[1].1, toml::Value::Float(0.5));
        let g = grid(&[a.clone(), b]).unwrap();
        let labels: Vec<String> = g.iter().map(Combination::label).collect();
        assert_eq!(
            labels,
            [
                "rsi_low=25,mode=fast",
                "rsi_low=25,mode=0.5",
                "rsi_low=30,mode=fast",
                "rsi_low=30,mode=0.5"
            ]
        );
        assert_eq!(g[1].overrides.get("mode"), Some(&toml::Value::Float(0.5)));
        assert!(grid(&[a.clone(), a]).is_err());
        assert!(parse_axis("rsi_low").is_err());
        assert!(parse_axis("rsi_low=25,,30").is_err());
        assert!(parse_axis("rsi_low=25,25").is_err());
        assert!(parse_axis("=1").is_err());
        let odd = Combination {
            params: vec![("p".into(), "a/b c".into())],
            overrides: toml::Table::new(),
        };
        assert_eq!(odd.dir_name(), "p=a_b_c");
    }

    #[test]
    fn sort_keys_parse_and_drawdown_sorts_low_first() {
        assert_eq!("win_rate".parse::<SortKey>(), Ok(SortKey::WinRate));
        assert!("sharpe_ratio".parse::<SortKey>().is_err());
        assert_eq!("sortino".parse::<SortKey>(), Ok(SortKey::Sortino));
        assert!(!SortKey::MaxDrawdown.higher_is_better());
        let s = Summary::from_records(dec!(100), &[], &[]);
        assert_eq!(SortKey::WinRate.of(&s, None, None), None);
        assert_eq!(SortKey::Return.of(&s, None, None), Some(dec!(0)));
        assert_eq!(
            SortKey::Sharpe.of(&s, Some(-1.234567), None),
            Some(dec!(-1.2346))
        );
        assert_eq!(SortKey::Sortino.of(&s, Some(1.0), None), None);
    }

    #[test]
    fn parallel_results_keep_item_order() {
        let out = run_parallel(3, (0..20).collect(), |i: u64| i * i);
        assert_eq!(out, (0..20).map(|i| i * i).collect::<Vec<u64>>());
        assert!(run_parallel(2, Vec::<u8>::new(), |i| i).is_empty());
    }
}
