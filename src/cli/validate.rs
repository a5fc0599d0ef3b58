//! `updown validate`: check strategy scripts against their fixtures and print the verdict,
//! as a table for a person or as one JSON document for CI.
//!
//! Exit codes: 0 when every script compiled and every fixture passed, 1 when anything
//! failed, 2 for usage and configuration errors (a missing file, a bad config).

use super::{Common, load_config};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use updown::validate::{Answer, Expect, FixtureReport, Report, StrategyReport, validate};

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
instances and twice on the first: a different answer is reported as non-deterministic.";

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
    let report = validate(&args.strategies, args.fixtures.as_deref(), &config)
        .context("validating strategies")?;
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
                format!("FAIL {}", first_line(e, 60)),
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
        "\nTOTAL: {} strategies, {} compiled, {} failed to compile; {} fixtures: {} passed, {} failed → {}",
        t.strategies,
        t.compiled,
        t.compile_errors,
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
            for line in e.lines() {
                let _ = writeln!(details, "    {line}");
            }
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
    }
    if !details.is_empty() {
        let _ = write!(out, "\nFailures:\n{details}");
    }
    if !notes.is_empty() {
        let _ = write!(out, "\nNotes:\n{notes}");
    }
    out
}

fn strategy_line(s: &StrategyReport, report: &Report) -> String {
    if s.compile_error.is_some() {
        return format!("{}: does not compile (details below)", s.path.display());
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
        return line;
    }
    let passed = s.fixtures.iter().filter(|f| f.passed).count();
    let n = s.fixtures.len();
    let _ = write!(
        line,
        "; {n} fixture{}, {passed} passed",
        if n == 1 { "" } else { "s" }
    );
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
