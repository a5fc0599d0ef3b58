//! `updown status` and `updown reset-halt`: read and clear the ledger's state.

use super::{Common, load_config, out_dir};
use anyhow::{Context, bail};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use updown::ledger::lock::FolderLock;
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

/// The output folder and its ledger file, which must exist.
fn ledger_path(common: &Common) -> anyhow::Result<(PathBuf, PathBuf)> {
    let config = load_config(common)?;
    let dir = out_dir(common, &config);
    let path = dir.join(LEDGER_FILE);
    if !path.exists() {
        bail!(
            "no ledger at {}: no session has run with this output folder yet (see `updown run --help`)",
            path.display()
        );
    }
    Ok((dir, path))
}

/// Run `updown status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    // Read-only, and without the folder lock: status may look at a ledger while its run
    // trades, or one on a read-only disk.
    let (dir, path) = ledger_path(&args.common)?;
    let ledger = Ledger::open_read_only(&path)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ledger     {}", ledger.path().display())?;
    match ledger.halt()? {
        Some(h) => writeln!(
            out,
            "trading    HALTED since t={} — {}: {}\n           clear with `updown reset-halt --out {}`",
            h.at,
            h.reason,
            h.detail,
            dir.display()
        ),
        None => writeln!(out, "trading    not halted"),
    }?;
    let Some(s) = ledger.latest_session()? else {
        writeln!(out, "session    none yet")?;
        return Ok(ExitCode::SUCCESS);
    };
    let a = &s.account;
    writeln!(
        out,
        "session    #{} {} ({:?}), next window {}",
        s.id,
        s.label,
        s.status,
        s.next_index + 1
    )?;
    writeln!(
        out,
        "equity     ${} (cash ${}, in positions ${})",
        a.equity(),
        a.cash,
        a.open_cost
    )?;
    writeln!(
        out,
        "capital    ${} · peak ${} · max drawdown {}%",
        a.starting_capital, a.peak_equity, a.max_drawdown_pct
    )?;
    writeln!(
        out,
        "trades     {} ({} won, {} lost) · win streak {} · loss streak {}",
        a.trades, a.wins, a.losses, a.win_streak, a.loss_streak
    )?;
    let open = ledger.open_positions(s.id)?;
    if open.is_empty() {
        writeln!(out, "open       no position")?;
    }
    for p in open {
        writeln!(
            out,
            "open       {} ${} at {} ({} shares) in window starting {}",
            p.fill.side, p.fill.stake, p.fill.price, p.fill.shares, p.fill.window_start
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `updown reset-halt`.
pub fn reset_halt(args: ResetHaltArgs) -> anyhow::Result<ExitCode> {
    let (dir, path) = ledger_path(&args.common)?;
    // A running session re-reads the halt only at its own pace; clearing it under a live
    // process would race it, so the folder must be free.
    let _lock = FolderLock::acquire(&dir, "updown reset-halt")?;
    let ledger = Ledger::open(&path)?;
    let mut out = std::io::stdout().lock();
    let Some(h) = ledger.halt()? else {
        writeln!(
            out,
            "Trading is not halted in {}; nothing to do.",
            ledger.path().display()
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(out, "Trading halted: {} — {}", h.reason, h.detail)?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to clear the halt without confirmation: run in a terminal, or pass --yes after reviewing it"
            );
        }
        write!(
            out,
            "Clear this halt and allow trading again? Type 'yes' to confirm: "
        )?;
        std::io::stdout().flush().context("writing the prompt")?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("reading the answer")?;
        if answer.trim() != "yes" {
            writeln!(out, "Not cleared.")?;
            return Ok(ExitCode::from(1));
        }
    }
    ledger.clear_halt()?;
    writeln!(out, "Halt cleared.")?;
    Ok(ExitCode::SUCCESS)
}
