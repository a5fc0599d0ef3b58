//! `updown run`: start or resume a session and print what it did.

use super::{Common, load_config, logging, out_dir};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use updown::config::parse_param_overrides;
use updown::session::{Ending, ReplaySpec, run_replay};

/// Native stack for the session thread, where scripts run.
const SESSION_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Flags of `updown run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Strategy script (.rhai); `import` inside it may reach only its own folder.
    #[arg(long, value_name = "FILE")]
    strategy: PathBuf,
    #[command(flatten)]
    common: Common,
    /// Replay recorded Binance 1m klines from this CSV instead of live feeds. Accepts the
    /// 6-column, full 12-column and close-time layouts, ISO or millisecond times.
    #[arg(long, value_name = "CSV")]
    replay: Option<PathBuf>,
    /// Pace the replay at X times real time (e.g. 60 = one simulated minute per second).
    /// Without it, the replay runs as fast as the machine allows.
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    speed: Option<f64>,
    /// Number of windows in the session (default: session.intervals, 18 = 90 minutes).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    intervals: Option<u32>,
    /// Strategy parameter override, repeatable: --param rsi_low=25 --param ema_fast=7.
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Start the run over even if the same run is already in the ledger (the old session
    /// is kept in the ledger, the journals are rewritten).
    #[arg(long)]
    fresh: bool,
    /// Do not watch the strategy for changes. By default, saving the script (or a module it
    /// imports) swaps the new version in at the next window if it compiles and loads; a
    /// broken version is reported and the running one stays.
    #[arg(long)]
    no_reload: bool,
    /// Print only warnings and the summary.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "{s:?} is not a positive number (e.g. 60 for one simulated minute per second)"
        )),
    }
}

/// Run `updown run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common)?;
    let out = out_dir(&args.common, &config);
    let Some(replay) = args.replay.clone() else {
        bail!(
            "live feeds are not available in this version; pass --replay with a recorded CSV, e.g.\n  \
             updown run --strategy {} --replay data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv",
            args.strategy.display()
        );
    };
    logging::init(&out, args.quiet)?;
    let overrides = parse_param_overrides(&args.params)?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being honoured exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }

    let spec = ReplaySpec {
        strategy: args.strategy.clone(),
        data: replay.clone(),
        config,
        overrides,
        intervals: args.intervals,
        speed: args.speed,
        out_dir: Some(out.clone()),
        fresh: args.fresh,
        watch: !args.no_reload,
    };
    eprintln!(
        "updown run: {} on {} ({}), paper money, output in {}",
        args.strategy.display(),
        replay.display(),
        match args.speed {
            Some(x) => format!("replay at {x}× real time"),
            None => "replay at full speed".into(),
        },
        out.display()
    );
    // Scripts run on this thread; a generous stack keeps even the deepest call nesting the
    // sandbox allows far from a native stack overflow, in debug builds too.
    let session_stop = Arc::clone(&stop);
    let outcome = std::thread::Builder::new()
        .name("session".into())
        .stack_size(SESSION_STACK_BYTES)
        .spawn(move || run_replay(&spec, &session_stop))
        .context("starting the session thread")?
        .join()
        .map_err(|_| {
            anyhow::anyhow!(
                "the session thread panicked; the ledger holds every step committed before it"
            )
        })?
        .context("running the session")?;

    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    match (&outcome.ending, outcome.resumed_at) {
        (None, _) => writeln!(
            out,
            "This run already finished earlier (pass --fresh to run it again). Its result:"
        ),
        (Some(Ending::Complete), Some(at)) => {
            writeln!(out, "Session complete (resumed at window {}).", at + 1)
        }
        (Some(Ending::Complete), None) => writeln!(out, "Session complete."),
        (Some(Ending::Halted(h)), _) => writeln!(
            out,
            "Session HALTED: {} — {}. Trading stays halted until `updown reset-halt --out {}`.",
            h.reason,
            h.detail,
            outcome.out_dir.display()
        ),
        (Some(Ending::Interrupted), _) => {
            writeln!(
                out,
                "Session interrupted; state saved. Run the same command again to resume."
            )
        }
    }?;
    writeln!(
        out,
        "{} windows from {} · script {} · data gaps: {}{}",
        outcome.windows,
        outcome.first_slug,
        outcome.script_hash,
        outcome.gaps,
        if outcome.anomalies > 0 {
            format!(" · {} price anomalies rejected", outcome.anomalies)
        } else {
            String::new()
        }
    )?;
    writeln!(out, "{}", outcome.summary)?;
    writeln!(
        out,
        "Journals: {0}/predictions.jsonl, {0}/trades.jsonl, {0}/equity_curve.csv; log {0}/{1}; ledger {0}/ledger.sqlite",
        outcome.out_dir.display(),
        logging::LOG_FILE
    )?;
    Ok(match outcome.ending {
        Some(Ending::Interrupted) => ExitCode::from(130),
        Some(Ending::Halted(_)) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}
