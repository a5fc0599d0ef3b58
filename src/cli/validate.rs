//! `updown validate`: check strategy scripts against their fixtures and with a smoke check on
//! recorded data, and print the verdict, as a table for a person or as one JSON document for
//! CI.
//!
//! Exit codes: 0 when every script compiled, every fixture passed and every smoke check
//! passed (or was skipped), 1 when anything failed, 2 for usage and configuration errors (a
//! missing file, a bad config, unreadable `--data`).

use super::{Common, load_config};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use updown::feed::load_csv;
use updown::validate::{
    Answer, DEFAULT_SMOKE_WINDOWS, Expect, FixtureReport, Options, Problem, Report, SmokeData,
    SmokeReport, StrategyReport, smoke, validate_with,
};

/// The candle file the smoke check uses when `--data` is not given, if it exists.
pub const DEFAULT_DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";

/// The fixture format, shown by `updown validate --help`.
const FIXTURE_HELP: &str = "\
Fixture files (TOML), one situation each; unknown keys are errors:

  description = \"RSI exactly 30 is oversold: UP\"
  [candles]                   # exactly one of closes / rows / csv
  closes = [100.0, 101.0]     # one 1m candle per close (open=high=low=close, volume 1)
  # start = 1761717600        #   open time of the first; default: the last closes on a window start
  # rows = [[open_time, open, high, low, close, volume], ...]
  # csv = \"../../../data/x.csv\" # relative to the fixture, with from = \"2025-10-29T06:00:00Z\" or
  #                           #   index = 120, and count = 200; or at = \"2025-10-29T09:20:00Z\"
  #                           #   (decision time) with an optional count
  [market]                    # optional; default: the [replay] quote model
  up_ask = 0.51               # up_bid up_ask down_bid down_ask imbalance up_depth down_depth
                              # fee_rate tick_size min_order_size
  [account]                   # optional; default: a fresh account of starting_capital
  win_streak = 2              # equity cash starting_capital peak_equity win_streak loss_streak
                              # trades wins losses last_result
  [params]                    # optional; on top of [params.<stem>] in the config
  [memory]                    # optional; the script's `this` before the call
  [expect]
  side = \"up\"                 # up | down | skip (required)
  reason_contains = \"oversold\" # optional; confidence, prob, stake: ± 1e-9
  stake = 11.25               # what the script asks for (size(), or strategy.default_stake)
  approved = 11.25            # what the risk gate approves, exactly; or refused = \"<code>\"
  # repeatable = false        # the answer may change on a second call (script memory)

Every candle is closed and visible; the decision is at the close of the last one, which must
be a window start minus session.decision_lead_secs. Each fixture runs on two freshly loaded
instances and twice on the first: a different answer is reported as non-deterministic.

Smoke check (with or without fixtures): each script also decides the first --smoke-windows
windows (default 5) of a recorded candle file (--data, default
data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv when it exists) the way a
replay session reaches them, on one instance whose memory carries over. Every predict and
size call must succeed within the sandbox and return a valid decision and a finite stake
≥ 0; each failure is reported with its kind (script_operation_budget, script_call_depth,
script_timeout, script_runtime_error, script_bad_return, script_memory,
script_data_too_large, invalid_stake), the file, the line and column when known, the call
and the windows. Nothing is traded. Without data it says \"smoke check skipped: no data\".";

/// Flags of `updown validate`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = FIXTURE_HELP)]
pub struct ValidateArgs {
    /// Strategy scripts (.rhai) to check. Each one's fixtures are the `*.toml` files in
    /// `<script folder>/fixtures/<script stem>/` (e.g. strategies/fixtures/rsi_ema/).
    #[arg(value_name = "STRATEGY", required = true)]
    strategies: Vec<PathBuf>,
    /// Read fixtures from DIR/<script stem>/*.toml instead of next to each script.
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Print one JSON document (for CI) instead of the table.
    #[arg(long)]
    json: bool,
    /// Recorded 1m candles for the smoke check (any layout `run --replay` reads). Default:
    /// data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv if it exists,
    /// otherwise the smoke check is skipped.
    #[arg(long, value_name = "CSV")]
    data: Option<PathBuf>,
    /// Windows the smoke check decides per script (0 turns it off).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SMOKE_WINDOWS)]
    smoke_windows: u32,
    /// Configuration file: sandbox limits, risk limits, the replay quote model, default
    /// stake and [params.<stem>] (every setting is documented in the shipped config.toml).
    #[arg(long, value_name = "FILE", default_value = "config.toml")]
    config: PathBuf,
}

/// Run `updown validate`.
pub fn validate_cmd(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&Common {
        config: args.config.clone(),
        out: None,
    })?;
    for s in &args.strategies {
        if !s.is_file() {
            bail!("{}: no such strategy file", s.display());
        }
    }
    if let Some(dir) = &args.fixtures
        && !dir.is_dir()
    {
        bail!("--fixtures {}: no such folder", dir.display());
    }
    let smoke = smoke_data(args.data.as_deref(), args.smoke_windows)?;
    let options = Options {
        fixtures_root: args.fixtures.as_deref(),
        smoke,
        smoke_windows: args.smoke_windows,
    };
    let report =
        validate_with(&args.strategies, &options, &config).context("validating strategies")?;
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&report).context("writing the JSON report")?;
        t.push('\n');
        t
    } else {
        render(&report)
    };
    // A reader that stops early (`| head`) is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing the report");
    }
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The smoke check's candles: `--data`, else the bundled file if it is there, else none.
fn smoke_data(data: Option<&std::path::Path>, windows: u32) -> anyhow::Result<SmokeData> {
    if windows == 0 {
        return Ok(SmokeData::Skipped(
            "smoke check skipped: --smoke-windows 0".into(),
        ));
    }
    let path = match data {
        Some(p) => {
            if !p.is_file() {
                bail!("--data {}: no such file", p.display());
            }
            p.to_path_buf()
        }
        None => {
            let p = PathBuf::from(DEFAULT_DATA);
            if !p.is_file() {
                return Ok(SmokeData::Skipped(format!(
                    "smoke check skipped: no data ({DEFAULT_DATA} not found; pass --data CSV)"
                )));
            }
            p
        }
    };
    let recorded = load_csv(&path).context("loading the smoke check's candles (--data)")?;
    Ok(SmokeData::Recorded(recorded))
}

/// The report as a table with per-strategy lines, a totals line and the failure details.
fn render(report: &Report) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "STRATEGY".into(),
        "FIXTURE".into(),
        "EXPECTED".into(),
        "GOT".into(),
        "OPS".into(),
        "TIME µs".into(),
        "RESULT".into(),
    ]];
    for s in &report.strategies {
        if let Some(e) = &s.compile_error {
            rows.push([
                s.name.clone(),
                "-".into(),
                "compiles".into(),
                "error".into(),
                String::new(),
                String::new(),
                match &s.load_error {
                    Some(p) => match (p.line, p.column) {
                        (Some(l), Some(c)) => format!("FAIL {} at line {l}, column {c}", p.kind),
                        _ => format!("FAIL {}", p.kind),
                    },
                    None => format!("FAIL {}", first_line(e, 60)),
                },
            ]);
            continue;
        }
        if s.fixtures.is_empty() {
            rows.push([
                s.name.clone(),
                "-".into(),
                "compiles".into(),
                "compiled".into(),
                String::new(),
                String::new(),
                "ok (no fixtures)".into(),
            ]);
        }
        for f in &s.fixtures {
            rows.push([
                s.name.clone(),
                f.name.clone(),
                f.expected.as_ref().map_or("-".into(), expected),
                f.got.as_ref().map_or_else(|| "-".into(), got),
                f.operations.map_or(String::new(), thousands),
                f.max_call_us.map_or(String::new(), thousands),
                result(f),
            ]);
        }
        if let Some(smoke) = &s.smoke {
            rows.push(smoke_row(&s.name, smoke));
        }
    }
    let mut width = [0usize; 7];
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let l = &report.limits;
    let _ = writeln!(
        out,
        "updown validate: sandbox.max_operations {} per call, sandbox.call_timeout_ms {} ms\n",
        thousands(l.max_operations),
        l.call_timeout_ms
    );
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            if i == 6 {
                line.push_str(cell);
            } else if i == 4 || i == 5 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
                line.push_str("  ");
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push('\n');
    for s in &report.strategies {
        let _ = writeln!(out, "{}", strategy_line(s, report));
    }
    let t = &report.totals;
    let _ = writeln!(
        out,
        "\nTOTAL: {} strategies, {} compiled, {} failed to compile; smoke checks: {} passed, {} failed, {} skipped; {} fixtures: {} passed, {} failed → {}",
        t.strategies,
        t.compiled,
        t.compile_errors,
        t.smoke_passed,
        t.smoke_failed,
        t.smoke_skipped,
        t.fixtures,
        t.passed,
        t.failed,
        if report.ok { "PASS" } else { "FAIL" }
    );

    let mut details = String::new();
    let mut notes = String::new();
    for s in &report.strategies {
        if let Some(e) = &s.compile_error {
            let _ = writeln!(details, "  {} ({})", s.name, s.path.display());
            let mut lines = e.lines();
            match &s.load_error {
                Some(p) => {
                    let _ = writeln!(details, "    - {}: {}", p.kind, lines.next().unwrap_or(""));
                }
                None => {
                    let _ = writeln!(details, "    {}", lines.next().unwrap_or(""));
                }
            }
            for line in lines {
                let _ = writeln!(details, "      {line}");
            }
        }
        for p in &s.warnings {
            let _ = writeln!(notes, "  {}: {}: {}", s.name, p.kind, p.message);
        }
        for f in &s.fixtures {
            if !f.problems.is_empty() {
                let _ = writeln!(details, "  {} / {} ({})", s.name, f.name, f.file.display());
                if !f.description.is_empty() {
                    let _ = writeln!(details, "    {}", f.description);
                }
                for p in &f.problems {
                    let mut lines = p.message.lines();
                    let _ = writeln!(details, "    - {}: {}", p.kind, lines.next().unwrap_or(""));
                    for line in lines {
                        let _ = writeln!(details, "      {line}");
                    }
                }
            }
            for n in &f.notes {
                let _ = writeln!(notes, "  {} / {}: {n}", s.name, f.name);
            }
        }
        if let Some(smoke) = &s.smoke {
            if !smoke.problems.is_empty() {
                let _ = writeln!(
                    details,
                    "  {} / smoke ({} on {})",
                    s.name,
                    s.path.display(),
                    smoke
                        .data
                        .as_ref()
                        .map_or_else(|| "?".into(), |d| d.display().to_string())
                );
                for p in &smoke.problems {
                    write_problem(&mut details, p, smoke.windows.len());
                }
            }
            for p in &smoke.warnings {
                let _ = writeln!(notes, "  {} / smoke: {}: {}", s.name, p.kind, p.message);
            }
            if let Some(note) = &smoke.note
                && smoke.status != smoke::SKIPPED
            {
                let _ = writeln!(notes, "  {} / smoke: {note}", s.name);
            }
        }
    }
    if !details.is_empty() {
        let _ = write!(out, "\nFailures:\n{details}");
    }
    if !notes.is_empty() {
        let _ = write!(out, "\nNotes:\n{notes}");
    }
    out
}

/// One failure of the smoke check: kind, call, windows, then the message.
fn write_problem(out: &mut String, p: &Problem, windows: usize) {
    let mut head = p.kind.clone();
    if let Some(f) = &p.function {
        let _ = write!(head, " in {f}");
    }
    if let (Some(l), Some(c)) = (p.line, p.column) {
        let _ = write!(head, " at line {l}, column {c}");
    }
    if !p.windows.is_empty() {
        let _ = write!(
            head,
            " ({} of {windows} windows, first {})",
            p.windows.len(),
            p.windows[0]
        );
    }
    let mut lines = p.message.lines();
    let _ = writeln!(out, "    - {head}: {}", lines.next().unwrap_or(""));
    for line in lines {
        let _ = writeln!(out, "      {line}");
    }
}

/// The table row of a smoke check.
fn smoke_row(name: &str, smoke: &SmokeReport) -> [String; 7] {
    let n = smoke.windows.len();
    let (mut up, mut down, mut skip, mut failed) = (0, 0, 0, 0);
    for w in &smoke.windows {
        match (w.failure.is_some(), w.side.as_deref()) {
            (true, _) => failed += 1,
            (false, Some("up")) => up += 1,
            (false, Some("down")) => down += 1,
            _ => skip += 1,
        }
    }
    let mut got = Vec::new();
    for (count, what) in [
        (up, "up"),
        (down, "down"),
        (skip, "skip"),
        (failed, "failed"),
    ] {
        if count > 0 {
            got.push(format!("{count} {what}"));
        }
    }
    let result = match smoke.status {
        smoke::SKIPPED => smoke.note.clone().unwrap_or_else(|| "skipped".into()),
        smoke::FAILED => {
            let first = &smoke.problems[0];
            let more = smoke.problems.len() - 1;
            let mut r = format!(
                "FAIL {} ({} of {n} windows)",
                first.kind,
                first.windows.len()
            );
            if more > 0 {
                let _ = write!(r, " (+{more} more)");
            }
            r
        }
        _ if smoke.warnings.is_empty() => "PASS".into(),
        _ => "PASS (see notes)".into(),
    };
    [
        name.to_string(),
        "(smoke)".into(),
        if smoke.status == smoke::SKIPPED {
            "-".into()
        } else {
            format!("{n} windows valid")
        },
        if got.is_empty() {
            "-".into()
        } else {
            got.join(", ")
        },
        smoke.max_operations.map_or(String::new(), thousands),
        smoke.max_call_us.map_or(String::new(), thousands),
        result,
    ]
}

fn strategy_line(s: &StrategyReport, report: &Report) -> String {
    if s.compile_error.is_some() {
        return match &s.load_error {
            Some(p) => format!(
                "{}: does not load: {} (details below)",
                s.path.display(),
                p.kind
            ),
            None => format!("{}: does not compile (details below)", s.path.display()),
        };
    }
    let mut line = format!(
        "{}: compiled (script {}{})",
        s.path.display(),
        s.script_hash.as_deref().unwrap_or("?"),
        if s.has_size {
            ", with size()"
        } else {
            ", default stake"
        }
    );
    if let Some(note) = &s.note {
        let _ = write!(line, "; {note}");
    } else {
        let passed = s.fixtures.iter().filter(|f| f.passed).count();
        let n = s.fixtures.len();
        let _ = write!(
            line,
            "; {n} fixture{}, {passed} passed",
            if n == 1 { "" } else { "s" }
        );
    }
    if let Some(smoke) = &s.smoke {
        match smoke.status {
            smoke::SKIPPED => {
                let _ = write!(
                    line,
                    "; {}",
                    smoke.note.as_deref().unwrap_or("smoke check skipped")
                );
            }
            status => {
                let _ = write!(
                    line,
                    "; smoke check {status} on {} windows of {}",
                    smoke.windows.len(),
                    smoke
                        .data
                        .as_ref()
                        .map_or_else(|| "?".into(), |d| d.display().to_string())
                );
            }
        }
    }
    let l = &report.limits;
    if let Some(ops) = s.max_operations {
        let _ = write!(
            line,
            "; max {} ops/call ({} of {})",
            thousands(ops),
            percent(ops as f64, l.max_operations as f64),
            thousands(l.max_operations)
        );
    }
    if let Some(us) = s.max_call_us {
        let _ = write!(
            line,
            "; max {} µs/call ({} of {} ms)",
            thousands(us),
            percent(us as f64, l.call_timeout_ms as f64 * 1000.0),
            l.call_timeout_ms
        );
    }
    line
}

fn result(f: &FixtureReport) -> String {
    let Some(first) = f.problems.first() else {
        return if f.notes.is_empty() {
            "PASS".into()
        } else {
            "PASS (see notes)".into()
        };
    };
    let short = match first.kind.as_str() {
        "mismatch" => first_line(&first.message, 60),
        "fixture_error" => "fixture error".into(),
        kind => kind.to_string(),
    };
    let more = f.problems.len() - 1;
    if more > 0 {
        format!("FAIL {short} (+{more} more)")
    } else {
        format!("FAIL {short}")
    }
}

fn expected(e: &Expect) -> String {
    let mut s = e.side.map_or("skip", |s| s.as_str()).to_string();
    if let Some(x) = e.stake {
        let _ = write!(s, " stake {}", num(x));
    }
    if let Some(x) = e.approved {
        let _ = write!(s, " → {x}");
    }
    if let Some(code) = &e.refused {
        let _ = write!(s, " → refused {code}");
    }
    s
}

fn got(a: &Answer) -> String {
    let mut s = a.side.clone();
    if a.stake_from.is_some() {
        match a.stake {
            Some(x) => {
                let _ = write!(s, " stake {}", num(x));
            }
            None => s.push_str(" stake ?"),
        }
    }
    if let Some(g) = &a.gate {
        match (&g.approved, &g.code) {
            (Some(x), _) => {
                let _ = write!(s, " → {x}");
            }
            (None, Some(code)) => {
                let _ = write!(s, " → refused {code}");
            }
            (None, None) => {}
        }
    }
    s
}

/// A float for people: at most 4 decimals, no trailing zeros.
fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn percent(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        return "?".into();
    }
    let p = part / whole * 100.0;
    if p < 0.1 {
        "<0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max - 1).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}
