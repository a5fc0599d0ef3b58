//! `updown status` and `updown reset-halt`: read and clear the ledger's state.

use super::{Common, load_config, out_dir};
use anyhow::{Context, bail};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use updown::ledger::{LEDGER_FILE, Ledger};

/// Flags of `updown status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
}

/// Flags of `updown reset-halt`.
#[derive(Debug, clap::Args)]
pub struct ResetHaltArgs {
    #[command(flatten)]
    common: Common,
    /// Do not ask; clear the halt (for scripted use, after a person has reviewed it).
    #[arg(long)]
    yes: bool,
}

fn open(common: &Common) -> anyhow::Result<(Ledger, std::path::PathBuf)> {
    let config = load_config(common)?;
    let dir = out_dir(common, &config);
    let path = dir.join(LEDGER_FILE);
    if !path.exists() {
        bail!(
            "no ledger at {}: no session has run with this output folder yet (see `updown run --help`)",
            path.display()
        );
    }
    Ok((Ledger::open(&path)?, dir))
}

/// Run `updown status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (ledger, dir) = open(&args.common)?;
    println!("ledger     {}", ledger.path().display());
    match ledger.halt()? {
        Some(h) => println!(
            "trading    HALTED since t={} — {}: {}\n           clear with `updown reset-halt --out {}`",
            h.at,
            h.reason,
            h.detail,
            dir.display()
        ),
        None => println!("trading    not halted"),
    }
    let Some(s) = ledger.latest_session()? else {
        println!("session    none yet");
        return Ok(ExitCode::SUCCESS);
    };
    let a = &s.account;
    println!(
        "session    #{} {} ({:?}), next window {}",
        s.id,
        s.label,
        s.status,
        s.next_index + 1
    );
    println!(
        "equity     ${} (cash ${}, in positions ${})",
        a.equity(),
        a.cash,
        a.open_cost
    );
    println!(
        "capital    ${} · peak ${} · max drawdown {}%",
        a.starting_capital, a.peak_equity, a.max_drawdown_pct
    );
    println!(
        "trades     {} ({} won, {} lost) · win streak {} · loss streak {}",
        a.trades, a.wins, a.losses, a.win_streak, a.loss_streak
    );
    let open = ledger.open_positions(s.id)?;
    if open.is_empty() {
        println!("open       no position");
    }
    for p in open {
        println!(
            "open       {} ${} at {} ({} shares) in window starting {}",
            p.fill.side, p.fill.stake, p.fill.price, p.fill.shares, p.fill.window_start
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `updown reset-halt`.
pub fn reset_halt(args: ResetHaltArgs) -> anyhow::Result<ExitCode> {
    let (ledger, _) = open(&args.common)?;
    let Some(h) = ledger.halt()? else {
        println!(
            "Trading is not halted in {}; nothing to do.",
            ledger.path().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!("Trading halted: {} — {}", h.reason, h.detail);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to clear the halt without confirmation: run in a terminal, or pass --yes after reviewing it"
            );
        }
        print!("Clear this halt and allow trading again? Type 'yes' to confirm: ");
        std::io::stdout().flush().context("writing the prompt")?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("reading the answer")?;
        if answer.trim() != "yes" {
            println!("Not cleared.");
            return Ok(ExitCode::from(1));
        }
    }
    ledger.clear_halt()?;
    println!("Halt cleared.");
    Ok(ExitCode::SUCCESS)
}
