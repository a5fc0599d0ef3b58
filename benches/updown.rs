//! `cargo bench`: the end-to-end benchmarks of `updown` over the real recorded data in
//! `../shared/data/binance_klines_1m/`, with their targets (docs/BENCHMARKS.md).
//!
//! A custom harness (`harness = false`, `std::time` only): every scenario runs the real code
//! paths — the library's backtest pipeline in process, the `updown` binary in a child
//! process — and prints one table of figures against their targets.
//!
//! - **Backtest throughput**: candles and decisions per second, end to end (load and join the
//!   CSV, plan, session loop with indicators, script, risk gate, venue, settlement, ledger and
//!   journals, summary and fingerprint, then the full report with `report.json` and both
//!   charts, as `updown backtest` does), for each shipped strategy and for the native RSI/EMA
//!   rules, with the Rhai/native ratio; best of N runs.
//! - **Strategy calls alone**: time per decision of `predict` + `size`, script and native.
//! - **Decision latency**: p50, p99 and max from the feed handing over the candle that closes
//!   at the decision time to the risk verdict ([`updown::session::LatencyProbe`]), with
//!   backtest batching and with one ledger transaction per step as `updown run` does.
//! - **Hot reload**: from a script file written (in place, or renamed over as editors save)
//!   to the new version active, through the real `ScriptWatcher` and `Reloader::poll`.
//! - **Peak memory** (VmHWM, read from `/proc/<pid>/status` while it runs) and wall time of
//!   `updown backtest` over every shared kline file joined.
//! - **Start-up**: from spawning `updown run` to its first decision line.
//! - **Sweep scaling**: a 4-combination sweep on 1 and on 2 threads.
//!
//! Flags (after `cargo bench --`): `--runs N` (default 5), `--quick` (1 run, fewer reloads),
//! `--markdown FILE` (write the tables as Markdown), `--write-docs` (replace the results block
//! of docs/BENCHMARKS.md), and words that select scenarios by name (`e2e`, `calls`,
//! `latency`, `reload`, `memory`, `startup`, `sweep`).

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use updown::config::Config;
use updown::domain::Window;
use updown::feed::Feed;
use updown::indicators::IndicatorCache;
use updown::report::write_report_curve;
use updown::script::reload::ScriptWatcher;
use updown::script::{Ctx, CtxState, Reload, Reloader, ScriptStrategy, Strategy};
use updown::session::backtest::{
    BacktestData, BacktestSpec, Hooks, Range, Recording, plan, run_backtest, run_backtest_with,
};
use updown::session::sweep::{SCRIPT_STACK_BYTES, grid, parse_axis, run_sweep};
use updown::session::{DecisionLatency, LatencyProbe, market_view, replay::strategy_params};
use updown::venue::{ReplayVenue, Venue};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The `updown` binary built with the benchmarks (`UPDOWN_BIN` overrides it, to compare
/// two builds).
fn updown_bin() -> PathBuf {
    std::env::var_os("UPDOWN_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_updown")),
        PathBuf::from,
    )
}
const KLINES: &str = "../shared/data/binance_klines_1m";
/// The 50,000-candle window the throughput target is set on.
const OCT_2024: &str = "binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv";
/// The data bundled with the repository (the README's quick start).
const BUNDLED: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";
const SCRIPTS: [&str; 3] = [
    "strategies/rsi_ema.rhai",
    "strategies/rsi_macd_imbalance.rhai",
    "strategies/edge_kelly.rhai",
];
const NATIVE: &str = "native:rsi_ema";
const DOCS: &str = "docs/BENCHMARKS.md";
const DOCS_START: &str = "<!-- bench:results:start -->";
const DOCS_END: &str = "<!-- bench:results:end -->";

// Targets (the issue's, on a 2-core machine).
const TARGET_CANDLES_PER_SEC: f64 = 1_000_000.0;
const TARGET_RATIO: f64 = 3.0;
const TARGET_P99: Duration = Duration::from_micros(50);
const TARGET_RELOAD: Duration = Duration::from_millis(200);
const TARGET_PEAK_MB: f64 = 150.0;

struct Options {
    runs: usize,
    reloads: usize,
    markdown: Option<PathBuf>,
    write_docs: bool,
    only: Vec<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut o = Options {
            runs: 5,
            reloads: 12,
            markdown: None,
            write_docs: false,
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {}
                "--quick" => {
                    o.runs = 1;
                    o.reloads = 4;
                }
                "--runs" => {
                    o.runs = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .context("--runs needs a positive number")?;
                }
                "--markdown" => {
                    o.markdown = Some(args.next().context("--markdown needs a file")?.into())
                }
                "--write-docs" => o.write_docs = true,
                s if s.starts_with('-') => bail!("unknown flag {s}"),
                s => o.only.push(s.to_string()),
            }
        }
        Ok(o)
    }

    fn wants(&self, scenario: &str) -> bool {
        let scenarios = [
            "e2e", "calls", "latency", "reload", "memory", "startup", "sweep",
        ];
        let chosen: Vec<&String> = self
            .only
            .iter()
            .filter(|w| scenarios.contains(&w.as_str()))
            .collect();
        chosen.is_empty() || chosen.iter().any(|w| w.as_str() == scenario)
    }
}

/// One line of the results table.
struct Row {
    section: &'static str,
    what: String,
    figure: String,
    target: String,
    met: Option<bool>,
    /// The 1-minute load average when the figure was taken (other processes' share of
    /// the 2 cores shows in every timing).
    load: String,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, section: &'static str, what: impl Into<String>, figure: impl Into<String>) {
        self.rows.push(Row {
            section,
            what: what.into(),
            figure: figure.into(),
            target: String::new(),
            met: None,
            load: Machine::load_1min(),
        });
        self.print_last();
    }

    fn check(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        figure: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        self.rows.push(Row {
            section,
            what: what.into(),
            figure: figure.into(),
            target: target.into(),
            met: Some(met),
            load: Machine::load_1min(),
        });
        self.print_last();
    }

    fn print_last(&self) {
        if let Some(r) = self.rows.last() {
            let met = match r.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "",
            };
            println!("  {:<58} {:>26}  {:<14} {met}", r.what, r.figure, r.target);
        }
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = r.section;
                out.push_str(&format!(
                    "\n**{section}** (1-minute load average {})\n\n| measure | figure | target | |\n| --- | ---: | --- | --- |\n",
                    r.load
                ));
            }
            let met = match r.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {met} |\n",
                r.what, r.figure, r.target
            ));
        }
        out
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    // Scripts run on a thread with the stack `updown backtest` gives them.
    let worker = std::thread::Builder::new()
        .name("bench".into())
        .stack_size(SCRIPT_STACK_BYTES)
        .spawn(move || run(&options))
        .context("starting the benchmark thread")?;
    match worker.join() {
        Ok(r) => r,
        Err(_) => bail!("the benchmark thread panicked"),
    }
}

fn run(options: &Options) -> anyhow::Result<()> {
    std::env::set_current_dir(REPO).context("entering the repository")?;
    let data_dir = Path::new(REPO).join(KLINES);
    if !data_dir.is_dir() {
        bail!(
            "{} is missing: the benchmarks run over the shared recorded data",
            data_dir.display()
        );
    }
    let machine = Machine::read();
    println!("updown benchmarks · {}", machine.describe());
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let mut table = Table::default();

    if options.wants("e2e") {
        e2e(options, &data_dir, scratch.path(), &mut table)?;
    }
    if options.wants("calls") {
        calls(&data_dir, &mut table)?;
    }
    if options.wants("latency") {
        latency(options, &data_dir, scratch.path(), &mut table)?;
    }
    if options.wants("reload") {
        reload(options, scratch.path(), &mut table)?;
    }
    if options.wants("memory") {
        memory(&data_dir, scratch.path(), &mut table)?;
    }
    if options.wants("startup") {
        startup(options, &data_dir, scratch.path(), &mut table)?;
    }
    if options.wants("sweep") {
        sweep(options, &data_dir, scratch.path(), &mut table)?;
    }

    let load_after = Machine::loadavg();
    let header = format!(
        "Machine: {}; load average after: {load_after}. Best of {} runs where repeated.\n",
        machine.describe(),
        options.runs
    );
    let md = format!("{header}{}", table.markdown());
    if let Some(path) = &options.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
        println!("tables written to {}", path.display());
    }
    if options.write_docs {
        write_docs(&md)?;
        println!("results written into {DOCS}");
    }
    Ok(())
}

/// The machine and how loaded it is.
struct Machine {
    cpu: String,
    cores: usize,
    mem_gib: f64,
    load: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_gib: mem_kib / 1024.0 / 1024.0,
            load: Machine::loadavg(),
        }
    }

    fn load_1min() -> String {
        Machine::loadavg()
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_string()
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    }

    fn describe(&self) -> String {
        format!(
            "{} × {} (nproc {}), {:.1} GiB RAM, load average before: {}",
            self.cores, self.cpu, self.cores, self.mem_gib, self.load
        )
    }
}

/// `config.toml` with enough capital that neither the drawdown floor nor the daily loss
/// limit ends a run early: every window of the data is decided.
fn bench_config() -> anyhow::Result<Config> {
    let mut config = Config::load(Path::new("config.toml")).context("loading config.toml")?;
    config.account.starting_capital = rust_decimal::Decimal::from(1_000_000);
    config.risk.daily_loss_limit = rust_decimal::Decimal::from(1_000_000);
    Ok(config)
}

/// The same settings as a file, for the child processes.
fn bench_config_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string("config.toml").context("reading config.toml")?;
    let mut table: toml::Table = text.parse().context("parsing config.toml")?;
    let section = |t: &mut toml::Table, name: &str| -> anyhow::Result<toml::Table> {
        Ok(match t.remove(name) {
            Some(toml::Value::Table(s)) => s,
            _ => toml::Table::new(),
        })
    };
    let mut account = section(&mut table, "account")?;
    account.insert("starting_capital".into(), toml::Value::Integer(1_000_000));
    table.insert("account".into(), toml::Value::Table(account));
    let mut risk = section(&mut table, "risk")?;
    risk.insert("daily_loss_limit".into(), toml::Value::Integer(1_000_000));
    table.insert("risk".into(), toml::Value::Table(risk));
    let path = dir.join("bench-config.toml");
    std::fs::write(&path, toml::to_string(&table)?).context("writing the bench config")?;
    Ok(path)
}

fn spec(strategy: &str, config: &Config, out: &Path, recording: Recording) -> BacktestSpec {
    BacktestSpec {
        strategy: PathBuf::from(strategy),
        config: config.clone(),
        overrides: toml::Table::new(),
        out_dir: out.to_path_buf(),
        recording,
        keep_predictions: false,
    }
}

/// Times of one end-to-end backtest, by phase.
#[derive(Clone, Copy, Debug)]
struct E2e {
    load: Duration,
    session: Duration,
    report: Duration,
    candles: usize,
    windows: usize,
}

impl E2e {
    fn total(&self) -> Duration {
        self.load + self.session + self.report
    }
}

/// What `updown backtest --data FILE --quiet` does, in process: load and join, plan, run the
/// session (its report, summary and fingerprint included), then write `report.json` and the
/// charts.
fn backtest_once(strategy: &str, files: &[PathBuf], out: &Path) -> anyhow::Result<E2e> {
    let config = bench_config()?;
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let data = BacktestData::load(files, None, config.session.interval_secs)?;
    let plan = plan(&data, &config, &Range::default())?;
    let t1 = Instant::now();
    let result = run_backtest(
        &spec(strategy, &config, out, Recording::InMemory),
        &data,
        &plan,
        None,
        None,
        &stop,
    )?;
    let t2 = Instant::now();
    // As `updown backtest` prints it: the report computed with the session, then
    // report.json and both charts written.
    write_report_curve(out, result.curve(), &result.report)?;
    let t3 = Instant::now();
    if result.windows != plan.windows.len() {
        bail!(
            "{strategy}: only {} of {} windows decided ({:?})",
            result.windows,
            plan.windows.len(),
            result.ending
        );
    }
    Ok(E2e {
        load: t1 - t0,
        session: t2 - t1,
        report: t3 - t2,
        candles: data.candles.len(),
        windows: result.windows,
    })
}

fn best_of(runs: usize, mut f: impl FnMut() -> anyhow::Result<E2e>) -> anyhow::Result<E2e> {
    let mut best: Option<E2e> = None;
    for _ in 0..runs {
        let r = f()?;
        if best.is_none_or(|b| r.total() < b.total()) {
            best = Some(r);
        }
    }
    best.context("no run")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn e2e(
    options: &Options,
    data_dir: &Path,
    scratch: &Path,
    table: &mut Table,
) -> anyhow::Result<()> {
    println!(
        "\nEnd-to-end backtest, {OCT_2024} (best of {}):",
        options.runs
    );
    let files = [data_dir.join(OCT_2024)];
    let mut rsi_ema = None;
    let mut native = None;
    let all: Vec<&str> = SCRIPTS.iter().copied().chain([NATIVE]).collect();
    // Words naming strategies (`cargo bench -- e2e native`) narrow the list, for profiling.
    let named: Vec<&str> = all
        .iter()
        .copied()
        .filter(|s| {
            options
                .only
                .iter()
                .any(|w| w != "e2e" && s.contains(w.as_str()))
        })
        .collect();
    let strategies = if named.is_empty() { all } else { named };
    for strategy in strategies {
        let out = scratch.join("e2e").join(strategy.replace(['/', ':'], "_"));
        let r = best_of(options.runs, || backtest_once(strategy, &files, &out))?;
        let cps = per_sec(r.candles, r.total());
        let name = strategy.trim_start_matches("strategies/");
        let what = format!("{name}: candles/s (decisions/s) · total = load + session + report");
        let figure = format!(
            "{} ({}) · {} = {} + {} + {}",
            thousands(cps),
            thousands(per_sec(r.windows, r.total())),
            ms(r.total()),
            ms(r.load),
            ms(r.session),
            ms(r.report)
        );
        if strategy == SCRIPTS[0] {
            table.check(
                "Backtest throughput, 2024-10 window (50,000 candles, 9,980 decisions)",
                what,
                figure,
                "≥ 1,000,000 candles/s",
                cps >= TARGET_CANDLES_PER_SEC,
            );
            rsi_ema = Some(r);
        } else {
            table.add(
                "Backtest throughput, 2024-10 window (50,000 candles, 9,980 decisions)",
                what,
                figure,
            );
        }
        if strategy == NATIVE {
            native = Some(r);
        }
    }
    if let (Some(s), Some(n)) = (rsi_ema, native) {
        let ratio = s.total().as_secs_f64() / n.total().as_secs_f64();
        table.check(
            "Backtest throughput, 2024-10 window (50,000 candles, 9,980 decisions)",
            "Rhai/native, end to end (rsi_ema.rhai time / native:rsi_ema time)",
            format!("{ratio:.2}"),
            "≤ 3",
            ratio <= TARGET_RATIO,
        );
        let session = s.session.as_secs_f64() / n.session.as_secs_f64();
        table.add(
            "Backtest throughput, 2024-10 window (50,000 candles, 9,980 decisions)",
            "Rhai/native, session loop only",
            format!("{session:.2}"),
        );
    }
    Ok(())
}

/// `predict` + `size` alone, per decision, over the 2024-10 window: the script against the
/// native rules, on the same `ctx`.
fn calls(data_dir: &Path, table: &mut Table) -> anyhow::Result<()> {
    println!("\nStrategy calls alone, per decision:");
    let config = bench_config()?;
    let data = BacktestData::load(&[data_dir.join(OCT_2024)], None, 300)?;
    let plan = plan(&data, &config, &Range::default())?;
    let mut per_decision = Vec::new();
    for strategy in [SCRIPTS[0], NATIVE] {
        let mut s = updown::native::load_strategy(Path::new(strategy), &config.sandbox)
            .map_err(anyhow::Error::msg)?;
        let params = strategy_params(&config, Path::new(strategy), &toml::Table::new());
        let ctx = Ctx::new(CtxState {
            candles: Vec::with_capacity(data.candles.len()),
            indicators: IndicatorCache::new(),
            params,
            ..CtxState::default()
        });
        let mut feed = updown::feed::HistoryFeed::new(
            data.candles.clone(),
            i64::MAX,
            &data.joined.recorded.path,
        );
        let mut venue = ReplayVenue::new(&config.replay);
        let account = updown::ledger::Account::new(config.account.starting_capital);
        let mut spent = Duration::ZERO;
        let mut n = 0usize;
        for w in &plan.windows {
            let quote = venue.quote(w)?;
            {
                let mut st = ctx.0.borrow_mut();
                feed.deliver_until(w.start, &mut |c| st.candles.push(c));
                st.now = w.start;
                st.window = Some(Window::clone(w));
                st.market = market_view(&quote);
                st.account = updown::script::AccountView::of(&account);
            }
            let t = Instant::now();
            let d = s.predict(&ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
            if d.side.is_some() {
                s.size(&ctx, &d).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            spent += t.elapsed();
            n += 1;
        }
        let each = spent / n.max(1) as u32;
        table.add(
            "Strategy calls alone (predict + size on the same ctx, 9,980 decisions)",
            format!(
                "{}: per decision",
                strategy.trim_start_matches("strategies/")
            ),
            us(each),
        );
        per_decision.push(each);
    }
    if let [rhai, native] = per_decision[..] {
        table.add(
            "Strategy calls alone (predict + size on the same ctx, 9,980 decisions)",
            "Rhai/native, calls alone",
            format!(
                "{:.0}",
                rhai.as_secs_f64() / native.as_secs_f64().max(1e-12)
            ),
        );
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Decision latency through the real session loop, with the in-process probe.
fn latency(
    options: &Options,
    data_dir: &Path,
    scratch: &Path,
    table: &mut Table,
) -> anyhow::Result<()> {
    let runs = options.runs.min(3);
    println!(
        "\nDecision latency, candle handed over → risk verdict (the run with the median p99 of {runs}):"
    );
    let config = bench_config()?;
    let data = BacktestData::load(&[data_dir.join(OCT_2024)], None, 300)?;
    let plan = plan(&data, &config, &Range::default())?;
    let stop = AtomicBool::new(false);
    let section = "Decision latency (in process, 2024-10 window, the run with the median p99)";
    for (strategy, recording, mode) in [
        (
            SCRIPTS[0],
            Recording::InMemory,
            "backtest (recorded in memory)",
        ),
        (
            SCRIPTS[0],
            Recording::Ledger { commit_every: 1 },
            "one ledger transaction per step, as `updown run`",
        ),
        (NATIVE, Recording::InMemory, "backtest (recorded in memory)"),
    ] {
        // (p50, p99, max, decisions, gated) of each run.
        let mut results = Vec::new();
        for _ in 0..runs {
            let mut samples: Vec<DecisionLatency> = Vec::with_capacity(plan.windows.len());
            {
                let sink = |d: DecisionLatency| samples.push(d);
                let hooks = Hooks {
                    progress: None,
                    latency: Some(LatencyProbe::new(Box::new(sink))),
                };
                let out = scratch.join("latency");
                run_backtest_with(
                    &spec(strategy, &config, &out, recording),
                    &data,
                    &plan,
                    None,
                    hooks,
                    &stop,
                )?;
            }
            let mut all: Vec<Duration> = samples.iter().map(|d| d.elapsed).collect();
            all.sort_unstable();
            let gated = samples.iter().filter(|d| d.gated).count();
            results.push((
                percentile(&all, 50.0),
                percentile(&all, 99.0),
                all.last().copied().unwrap_or_default(),
                all.len(),
                gated,
            ));
        }
        results.sort_by_key(|r| r.1);
        let Some(&(p50, p99, max, n, gated)) = results.get(results.len() / 2) else {
            bail!("no latency run");
        };
        let name = strategy.trim_start_matches("strategies/");
        let what = format!("{name}, {mode}: {n} decisions ({gated} judged by the gate)");
        let figure = format!("p50 {} · p99 {} · max {}", us(p50), us(p99), us(max));
        if strategy == NATIVE {
            table.add(section, what, figure);
        } else {
            table.check(section, what, figure, "p99 ≤ 50 µs", p99 <= TARGET_P99);
        }
    }
    Ok(())
}

/// From a script written to disk to the new version active, through the real watcher.
fn reload(options: &Options, scratch: &Path, table: &mut Table) -> anyhow::Result<()> {
    println!("\nHot reload, file written → new version active:");
    let config = bench_config()?;
    let dir = scratch.join("reload");
    std::fs::create_dir_all(&dir)?;
    let base = std::fs::read_to_string("strategies/rsi_ema.rhai")?;
    std::fs::copy("strategies/sizing.rhai", dir.join("sizing.rhai"))?;
    let script = dir.join("rsi_ema.rhai");
    std::fs::write(&script, &base)?;
    let mut current: Box<dyn Strategy> = Box::new(ScriptStrategy::load(&script, &config.sandbox)?);
    let mut watcher = ScriptWatcher::start(&script, current.content_hash(), &config.sandbox)?;
    std::thread::sleep(Duration::from_millis(300));
    let mut times = Vec::new();
    for i in 0..options.reloads {
        let text = format!("{base}\n// version {i}\n");
        let t0 = Instant::now();
        if i % 2 == 0 {
            std::fs::write(&script, &text)?;
        } else {
            // As most editors save: a temporary file renamed over the script.
            let tmp = dir.join("rsi_ema.rhai.swp");
            std::fs::write(&tmp, &text)?;
            std::fs::rename(&tmp, &script)?;
        }
        let deadline = t0 + Duration::from_secs(5);
        loop {
            // The session polls between windows; here, every millisecond.
            match watcher.poll(current.as_ref()) {
                Some(Reload::Swap(next)) => {
                    times.push(t0.elapsed());
                    current = next;
                    break;
                }
                Some(Reload::Rejected { error }) => bail!("reload rejected: {error}"),
                None if Instant::now() > deadline => bail!("no reload within 5 s"),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    times.sort_unstable();
    let max = times.last().copied().unwrap_or_default();
    table.check(
        "Hot reload (real ScriptWatcher + Reloader::poll, debounce included)",
        format!("{} saves (in place and by rename): p50 · max", times.len()),
        format!("{} · {}", ms(percentile(&times, 50.0)), ms(max)),
        "≤ 200 ms",
        max <= TARGET_RELOAD,
    );
    table.add(
        "Hot reload (real ScriptWatcher + Reloader::poll, debounce included)",
        "of which the debounce (quiet time before a version is checked)",
        ms(updown::script::reload::DEBOUNCE),
    );
    Ok(())
}

/// VmHWM of a running process, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Every kline file of the shared data (the Binance.US metadata file is not klines).
fn all_kline_files(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "csv") && !p.to_string_lossy().contains("metadata")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Peak memory of `updown backtest` over every shared kline file joined.
fn memory(data_dir: &Path, scratch: &Path, table: &mut Table) -> anyhow::Result<()> {
    println!("\nPeak memory, every shared kline file joined:");
    let files = all_kline_files(data_dir)?;
    let config = bench_config_file(scratch)?;
    let out = scratch.join("joined");
    let started = Instant::now();
    let mut child = Command::new(updown_bin())
        .args(["backtest", "--quiet", "--strategy", SCRIPTS[0], "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--data")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting updown backtest")?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut s) = child.stdout.take() {
        std::io::Read::read_to_string(&mut s, &mut stdout)?;
    }
    if !status.success() {
        bail!("updown backtest over the joined files failed: {status}");
    }
    // The joined span's windows, most of them in the gaps between the files (journaled as
    // `data_gap`), as the summary's `windows` line gives them.
    let windows = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("windows "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map_or_else(|| "?".to_string(), |n| thousands(n as f64));
    let candles = BacktestData::load(&files, None, 300)?.candles.len();
    let mb = peak as f64 / 1024.0;
    table.check(
        "Peak memory and wall time, `updown backtest` over every shared kline file joined",
        format!(
            "rsi_ema.rhai, {} files, {} candles, {windows} windows: VmHWM",
            files.len(),
            thousands(candles as f64)
        ),
        format!("{mb:.1} MiB"),
        "≤ 150 MB",
        mb <= TARGET_PEAK_MB,
    );
    table.add(
        "Peak memory and wall time, `updown backtest` over every shared kline file joined",
        "wall time (child process, report and charts included)",
        format!(
            "{} ({} candles/s)",
            ms(elapsed),
            thousands(per_sec(candles, elapsed))
        ),
    );
    Ok(())
}

/// From spawning `updown run` to its first decision line on stderr.
fn startup(
    options: &Options,
    data_dir: &Path,
    scratch: &Path,
    table: &mut Table,
) -> anyhow::Result<()> {
    println!("\nStart-up to the first decision (`updown run`, child process):");
    let config = bench_config_file(scratch)?;
    let oct = data_dir.join(OCT_2024);
    for (label, data) in [
        (
            "bundled data (4,320 candles, the README's quick start)",
            PathBuf::from(BUNDLED),
        ),
        ("2024-10 window (50,000 candles)", oct),
    ] {
        let mut best: Option<Duration> = None;
        for _ in 0..options.runs {
            // A fresh folder each time: nothing to resume, no latched halt.
            let out = scratch.join("startup");
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            let started = Instant::now();
            let mut child = Command::new(updown_bin())
                .args(["run", "--strategy", SCRIPTS[0], "--no-reload", "--config"])
                .arg(&config)
                .arg("--replay")
                .arg(&data)
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting updown run")?;
            let stderr = child.stderr.take().context("no stderr")?;
            let mut first = None;
            for line in BufReader::new(stderr).lines() {
                let line = line?;
                if first.is_none()
                    && line.contains("btc-updown-5m-")
                    && [" UP ", " DOWN ", " SKIP "]
                        .iter()
                        .any(|s| line.contains(s))
                {
                    first = Some(started.elapsed());
                }
            }
            child.wait()?;
            let Some(t) = first else {
                bail!("updown run printed no decision line");
            };
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        table.add(
            "Start-up to the first decision (`updown run --replay`, child process)",
            label,
            ms(best.unwrap_or_default()),
        );
    }
    Ok(())
}

/// A 2 × 2 sweep on one thread and on two.
fn sweep(
    options: &Options,
    data_dir: &Path,
    scratch: &Path,
    table: &mut Table,
) -> anyhow::Result<()> {
    println!("\nSweep scaling:");
    let config = bench_config()?;
    let data = BacktestData::load(&[data_dir.join(OCT_2024)], None, 300)?;
    let plan = plan(&data, &config, &Range::default())?;
    let axes = [parse_axis("rsi_low=25,30")?, parse_axis("ema_fast=7,9")?];
    let combos = grid(&axes)?;
    let stop = AtomicBool::new(false);
    // Rounds alternate 1 and 2 threads, so a change in the machine's load hits both alike.
    let mut best: [Option<(Duration, Duration)>; 2] = [None, None];
    for _ in 0..options.runs.min(3) {
        for (slot, jobs) in [1usize, 2].into_iter().enumerate() {
            let base = spec(
                SCRIPTS[0],
                &config,
                &scratch.join(format!("sweep{jobs}")),
                Recording::InMemory,
            );
            let cpu0 = cpu_time();
            let t = Instant::now();
            let rows = run_sweep(&base, &data, &plan, combos.clone(), jobs, &|| {}, &stop);
            let wall = t.elapsed();
            let cpu = cpu_time().saturating_sub(cpu0);
            if let Some(row) = rows.iter().find(|r| r.result.is_err()) {
                bail!("sweep row {} failed", row.combination.label());
            }
            if best[slot].is_none_or(|(w, _)| wall < w) {
                best[slot] = Some((wall, cpu));
            }
        }
    }
    let section = "Sweep scaling (4 combinations of rsi_ema.rhai on the 2024-10 window)";
    for (slot, jobs) in [1usize, 2].into_iter().enumerate() {
        let (wall, cpu) = best[slot].unwrap_or_default();
        table.add(
            section,
            format!(
                "{jobs} thread{}: wall time (CPU time, cores kept busy)",
                if jobs > 1 { "s" } else { "" }
            ),
            format!(
                "{} ({}, {:.2})",
                ms(wall),
                ms(cpu),
                cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
            ),
        );
    }
    if let [Some((_, cpu1)), Some((_, cpu2))] = best {
        table.add(
            section,
            "CPU time of the sweep, 2 threads over 1 (1.00 = no parallel overhead)",
            format!("{:.2}", cpu2.as_secs_f64() / cpu1.as_secs_f64().max(1e-9)),
        );
    }
    if let [Some((one, _)), Some((two, _))] = best {
        let speedup = one.as_secs_f64() / two.as_secs_f64();
        table.check(
            section,
            "speed-up, 2 threads over 1",
            format!("{speedup:.2}×"),
            "close to 2×",
            speedup >= 1.7,
        );
    }
    Ok(())
}

/// CPU time this process has used, all threads (`/proc/self/stat`, in USER_HZ = 1/100 s).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) closed by `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counted after `)`.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Replace the results block of docs/BENCHMARKS.md.
fn write_docs(md: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(DOCS).with_context(|| format!("reading {DOCS}"))?;
    let (Some(a), Some(b)) = (text.find(DOCS_START), text.find(DOCS_END)) else {
        bail!("{DOCS} has no {DOCS_START} … {DOCS_END} block");
    };
    let mut out = String::with_capacity(text.len() + md.len());
    out.push_str(&text[..a + DOCS_START.len()]);
    out.push('\n');
    out.push_str(md.trim());
    out.push('\n');
    out.push_str(&text[b..]);
    let mut f = std::fs::File::create(DOCS)?;
    f.write_all(out.as_bytes())?;
    Ok(())
}
