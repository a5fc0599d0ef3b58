//! `updown run`: start or resume a session and print what it did.
//!
//! With `--replay CSV` the session replays recorded candles on a simulated clock. Without
//! it, the session is a paper session on live data (`[live]` in the config): the live
//! Binance feed and Polymarket's books, simulated fills, a wall clock synchronised to the
//! exchange; while it runs, a status block at the bottom of the terminal shows what is
//! happening ([`super::status_line`]). With no network it fails at once, naming the host it
//! could not reach and pointing at `--replay`. With `--live` the same session places real
//! orders (`updown::venue::live`): the wallet comes from the environment or `./.env`, and
//! before the first order the wallet, its balance and the risk limits are shown and a typed
//! confirmation (or `--yes-i-understand-real-money`) is required. All modes share the signal
//! handling (a first SIGINT/SIGTERM finishes the current step and saves state, a second exits
//! at once), the session thread and the printed result.

use super::status_line::{self, StatusBlock};
use super::{Common, load_config, logging, out_dir};
use anyhow::{Context, bail};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use updown::config::{Config, parse_param_overrides};
use updown::ledger::lock::FolderLock;
use updown::session::live::{LiveError, LiveTrading};
use updown::session::replay::ReplayOutcome;
use updown::session::{Ending, LiveSpec, ReplaySpec, run_live, run_replay};
use updown::venue::live::{AccountSnapshot, CrashPoint, Credentials, LiveTradingConfig};

/// The bundled recorded data the no-network message points at.
const BUNDLED_DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";

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
    /// 6-column, full 12-column and close-time layouts, ISO or millisecond times. Without
    /// it, the session trades paper money on live data from the `[live]` URLs.
    #[arg(long, value_name = "CSV")]
    replay: Option<PathBuf>,
    /// Pace the replay at X times real time (e.g. 60 = one simulated minute per second).
    /// Without it, the replay runs as fast as the machine allows. (A live session runs on
    /// the exchange's clock: `[live] clock_speed`.)
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
    /// Trade REAL MONEY: place real orders on Polymarket's CLOB with the wallet in
    /// POLYMARKET_PRIVATE_KEY (optional POLYMARKET_FUNDER and POLYMARKET_SIGNATURE_TYPE:
    /// eoa, proxy, gnosis-safe, deposit-wallet), read from the environment or ./.env. Before
    /// the first order the wallet, its pUSD balance and the risk limits are shown and a
    /// typed confirmation is asked (or pass --yes-i-understand-real-money).
    #[arg(long, conflicts_with_all = ["replay", "speed"])]
    live: bool,
    /// With --live: confirm trading real money without the interactive prompt.
    #[arg(long, requires = "live")]
    yes_i_understand_real_money: bool,
}

/// What the trader types to confirm live trading at the prompt.
const CONSENT_PHRASE: &str = "trade real money";

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
    if args.yes_i_understand_real_money && !args.live {
        // clap's `requires` does not fire for a flag that is merely present, so this is
        // checked here: a consent that trades nothing is almost surely a mistaken command.
        bail!(
            "--yes-i-understand-real-money confirms --live, which was not given; add --live to \
             trade real money, or drop the flag to run on paper"
        );
    }
    let config = load_config(&args.common)?;
    let out = out_dir(&args.common, &config);
    // Held until the session ends: one process writes a folder's ledger and journals.
    let _lock = FolderLock::acquire(
        &out,
        &format!("updown run --strategy {}", args.strategy.display()),
    )?;
    match args.replay.clone() {
        Some(replay) => replay_mode(&args, config, out, replay),
        None => live_mode(&args, config, out),
    }
}

/// SIGINT/SIGTERM raise the returned flag; a second one while the first is being honoured
/// exits at once.
fn install_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    Ok(stop)
}

/// Runs `f` on the session thread (scripts run there: a generous stack keeps even the
/// deepest call nesting the sandbox allows far from a native stack overflow, in debug
/// builds too).
fn session_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name("session".into())
        .stack_size(SESSION_STACK_BYTES)
        .spawn(f)
        .context("starting the session thread")
}

fn joined<T>(handle: std::thread::JoinHandle<T>) -> anyhow::Result<T> {
    handle.join().map_err(|_| {
        anyhow::anyhow!(
            "the session thread panicked; the ledger holds every step committed before it"
        )
    })
}

fn replay_mode(
    args: &RunArgs,
    config: Config,
    out: PathBuf,
    replay: PathBuf,
) -> anyhow::Result<ExitCode> {
    logging::init(&out, args.quiet)?;
    let overrides = parse_param_overrides(&args.params)?;
    super::warn_params(&args.strategy, &config, &overrides);
    let stop = install_signals()?;
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
    let session_stop = Arc::clone(&stop);
    let outcome = joined(session_thread(move || run_replay(&spec, &session_stop))?)?
        .context("running the session")?;
    print_outcome(&outcome)
}

fn live_mode(args: &RunArgs, config: Config, out: PathBuf) -> anyhow::Result<ExitCode> {
    if let Some(x) = args.speed {
        bail!(
            "--speed {x} paces a replay (with --replay CSV); a live session runs on the exchange's clock. \
             Against the loopback test venue, set `clock_speed` in the [live] section of the config instead"
        );
    }
    let tty = std::io::stderr().is_terminal() && !args.quiet;
    let block = tty.then(StatusBlock::new);
    logging::init_with(&out, args.quiet, block.as_ref())?;
    let overrides = parse_param_overrides(&args.params)?;
    super::warn_params(&args.strategy, &config, &overrides);
    let stop = install_signals()?;
    let live = &config.live;
    eprintln!(
        "updown run: {} on live data from {} ({}), {} on Polymarket's books at {}, output in {}",
        args.strategy.display(),
        updown::feed::net::host_of(&live.binance_ws),
        if (live.clock_speed - 1.0).abs() > f64::EPSILON {
            format!("clock {}× — loopback test venue only", live.clock_speed)
        } else {
            "real time".into()
        },
        if args.live {
            "REAL MONEY (live orders)"
        } else {
            "paper money"
        },
        updown::feed::net::host_of(&live.clob_ws),
        out.display()
    );
    let trading = if args.live {
        Some(live_trading(args, &config)?)
    } else {
        None
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = LiveSpec {
        strategy: args.strategy.clone(),
        config,
        overrides,
        intervals: args.intervals,
        out_dir: Some(out.clone()),
        fresh: args.fresh,
        watch: !args.no_reload,
        events: Some(tx),
        trading,
    };
    let session_stop = Arc::clone(&stop);
    let handle = session_thread(move || run_live(&spec, &session_stop))?;
    status_line::watch(&rx, block.as_ref(), || handle.is_finished());
    match joined(handle)? {
        Ok(outcome) => print_outcome(&outcome),
        Err(LiveError::Feed(e)) => bail!(no_network(&e.to_string(), &args.strategy)),
        Err(e) => Err(anyhow::Error::new(e).context("running the live session")),
    }
}

/// The wallet and settings of `--live`, with the consent step. Credentials come only from
/// the environment or `./.env`; nothing here prints them.
fn live_trading(args: &RunArgs, config: &Config) -> anyhow::Result<LiveTrading> {
    let credentials = Credentials::from_env(Path::new(".env"))?;
    let mut settings = LiveTradingConfig::new(&config.live.clob_rest, config.risk.max_entry_price);
    settings.request_timeout =
        std::time::Duration::from_millis(config.live.http_timeout_ms.max(1000));
    // Test-only crash points (crash tests); documented in src/venue/live.rs, not in --help.
    settings.crash_at = CrashPoint::from_env();
    if !CrashPoint::available() && std::env::var_os(updown::venue::live::CRASH_VAR).is_some() {
        tracing::warn!(
            "{} is set but ignored: this build has no crash points (they exist only in test builds)",
            updown::venue::live::CRASH_VAR
        );
    }
    if let Some(at) = settings.crash_at {
        tracing::warn!("UPDOWN_CRASH_AT is set: the process kills itself at {at:?} (crash tests)");
    }
    let risk = config.risk.clone();
    let capital = config.account.starting_capital;
    let pre_confirmed = args.yes_i_understand_real_money;
    let confirm = move |s: &AccountSnapshot| -> bool {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "\nLIVE TRADING — real orders with real money\n  wallet       {} ({})\n  signer       {}\n  \
             pUSD balance {}{}\n  open orders  {}\n  risk limits  max stake ${} · max entry price {} · \
             max drawdown {}% · daily loss limit ${} · max spread {} · min {}s to close · \
             session capital ${}",
            s.wallet,
            s.kind.label(),
            s.signer,
            s.balance,
            if s.allowance_ok {
                ""
            } else {
                " (NO ALLOWANCE: orders will be refused)"
            },
            s.open_orders,
            risk.max_stake,
            risk.max_entry_price,
            risk.max_drawdown_pct,
            risk.daily_loss_limit,
            risk.max_spread,
            risk.min_seconds_to_close,
            capital
        );
        for n in &s.notes {
            let _ = writeln!(err, "  reconciled   {n}");
        }
        if pre_confirmed {
            let _ = writeln!(err, "  confirmed with --yes-i-understand-real-money\n");
            return true;
        }
        if !std::io::stdin().is_terminal() {
            let _ = writeln!(
                err,
                "not confirmed: pass --yes-i-understand-real-money, or run in a terminal to confirm"
            );
            return false;
        }
        let _ = write!(err, "Type \"{CONSENT_PHRASE}\" to start: ");
        let _ = err.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer.trim() == CONSENT_PHRASE
    };
    Ok(LiveTrading {
        credentials,
        settings,
        confirm: Arc::new(confirm),
    })
}

/// The message for a live session that cannot get its data.
fn no_network(error: &str, strategy: &Path) -> String {
    format!(
        "cannot start a live session: {error}\n\
         Check the network and the [live] URLs in the config; or run the strategy on recorded \
         data instead:\n  updown run --strategy {} --replay {BUNDLED_DATA}",
        strategy.display()
    )
}

/// Prints how a session went (both modes) and returns the exit code.
fn print_outcome(outcome: &ReplayOutcome) -> anyhow::Result<ExitCode> {
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
    // The full report, computed from the journals just written, exactly as `updown report`
    // computes it later; report.json and the charts go beside the journals.
    match super::report::build(&outcome.out_dir, true) {
        Ok((report, written)) => {
            writeln!(out, "\n{report}")?;
            if let Some(w) = &written {
                writeln!(out, "{}", super::report::written_line(w))?;
            }
        }
        Err(e) => {
            writeln!(out, "{}", outcome.summary)?;
            tracing::warn!("no full report: {e:#}");
        }
    }
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
