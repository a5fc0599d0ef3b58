//! Command line: flags, subcommands, and printing results for a person.
//!
//! Everything here is the binary's edge: it turns flags into library calls and library
//! errors into messages (with `anyhow`), and owns the process concerns — signals, logging
//! setup, prompts and exit codes. No trading logic lives here.

mod api;
mod backtest;
mod logging;
mod report;
mod run;
mod status;
mod status_line;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Trade Polymarket's "Bitcoin Up or Down" markets with Rhai strategy scripts, inside hard
/// risk limits. Paper trading on recorded data by default; no credentials needed.
#[derive(Debug, Parser)]
#[command(name = "updown", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a trading session with a strategy script.
    ///
    /// With --replay, the session replays recorded 1-minute BTC candles on a simulated clock
    /// (paper money, replay venue). Without it, a paper session on live data: the Binance
    /// feed and Polymarket's books from the [live] URLs of the config, simulated fills.
    /// Restarting the same run resumes it where it stopped.
    Run(run::RunArgs),
    /// Show the ledger's state: equity, open position, and any halt with its reason.
    Status(status::StatusArgs),
    /// Clear a latched trading halt, after asking for confirmation.
    ResetHalt(status::ResetHaltArgs),
    /// Print the strategy script API: every `ctx` member and helper with its meaning.
    Api(api::ApiArgs),
    /// Check strategy scripts against their fixtures: compile, expected answers, determinism, budget.
    Validate(validate::ValidateArgs),
    /// Backtest a strategy on recorded data: a fresh session through the same loop as `run`,
    /// with real fees and order minimums, optional real Polymarket outcomes, a fingerprint,
    /// parameter sweeps and a look-ahead self-check.
    ///
    /// Each backtest starts a fresh session in its output folder (default
    /// data/backtests/<strategy stem>/): the ledger.sqlite(-wal/-shm) and journals an earlier
    /// backtest wrote there are replaced, so an earlier halt there does not block it. A folder
    /// whose ledger records an `updown run` session is refused, never replaced.
    Backtest(backtest::BacktestArgs),
    /// Print the full report of an earlier run from the journals in its output folder, and
    /// (re)write report.json, equity.png and equity.svg there.
    Report(report::ReportArgs),
}

/// Options shared by commands that read the configuration and output folder.
#[derive(Debug, clap::Args)]
struct Common {
    /// Configuration file (every setting is documented in the shipped config.toml).
    #[arg(long, value_name = "FILE", default_value = "config.toml")]
    config: PathBuf,
    /// Output folder for the ledger, journals and log (default: session.out_dir from the
    /// config, `data`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Parse the command line and run the chosen command.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::status(args),
        Command::ResetHalt(args) => status::reset_halt(args),
        Command::Api(args) => api::api(args),
        Command::Validate(args) => validate::validate_cmd(args),
        Command::Backtest(args) => backtest::backtest(args),
        Command::Report(args) => report::report(args),
    }
}

/// Load the config named by `common`, tolerating a missing default file.
fn load_config(common: &Common) -> anyhow::Result<updown::config::Config> {
    use anyhow::Context;
    if !common.config.exists() && common.config == std::path::Path::new("config.toml") {
        // Running from another folder without a config is fine: the defaults are the
        // shipped config's values.
        return Ok(updown::config::Config::default());
    }
    updown::config::Config::load(&common.config).context("loading the configuration")
}

/// Warn, before a run, about every parameter the script never reads or gets with another
/// type than its default (`[params.<stem>]` of the config, then `overrides`): either one
/// changes results without a word otherwise. The script is loaded on a thread with a
/// session's stack, as the session loads it; a script that does not load is left to the
/// session to report.
fn warn_params(
    strategy: &std::path::Path,
    config: &updown::config::Config,
    overrides: &toml::Table,
) {
    use updown::script::ScriptStrategy;
    if updown::native::native_name(strategy).is_some() {
        return;
    }
    let strategy = strategy.to_path_buf();
    let stem = updown::native::params_name(&strategy);
    let table = config.params.get(&stem).cloned();
    let sandbox = config.sandbox.clone();
    let overrides = overrides.clone();
    let warnings = std::thread::Builder::new()
        .name("param-check".into())
        .stack_size(updown::session::sweep::SCRIPT_STACK_BYTES)
        .spawn(move || match ScriptStrategy::load(&strategy, &sandbox) {
            Ok(s) => s.check_params(table.as_ref(), &overrides),
            Err(_) => Vec::new(),
        })
        .ok()
        .and_then(|h| h.join().ok())
        .unwrap_or_default();
    for w in warnings {
        tracing::warn!("{w}");
    }
}

fn out_dir(common: &Common, config: &updown::config::Config) -> PathBuf {
    common
        .out
        .clone()
        .unwrap_or_else(|| config.session.out_dir.clone())
}
