//! What the engine records of a session, behind one trait.
//!
//! The engine writes four kinds of step — a decided window (its prediction line, the fill,
//! the account and the script's memory after it, a halt it latched), a settlement (the
//! trade line, the account, the equity point), a script reload, and the end of a window —
//! and asks whether a halt is latched. It does so through [`Recorder`], so that where the
//! records go is the session's choice, not the loop's: [`LedgerRecorder`] commits each
//! step to the SQLite ledger and then appends it to the journals, which is what makes a
//! `run` safe to kill at any point; a backtest, which a rerun reproduces exactly, can keep
//! its records another way without a second loop.

use super::SessionError;
use crate::domain::Fill;
use crate::ledger::journal::Journals;
use crate::ledger::{Account, Halt, Ledger};

/// One decided window, as the engine records it.
#[derive(Clone, Copy, Debug)]
pub struct DecisionStep<'r> {
    /// The window's start (Unix s).
    pub window_start: i64,
    /// The window's index in the session: the session resumes after it.
    pub window_index: u32,
    /// The prediction journal line.
    pub line: &'r str,
    /// The entry filled in this window, if any.
    pub fill: Option<&'r Fill>,
    /// The account after the decision.
    pub account: &'r Account,
    /// The strategy's memory after the decision (JSON).
    pub memory: Option<&'r str>,
    /// A halt the decision latched.
    pub halt: Option<&'r Halt>,
}

/// One settled position, as the engine records it.
#[derive(Clone, Copy, Debug)]
pub struct SettlementStep<'r> {
    /// The settled window's start (Unix s).
    pub window_start: i64,
    /// The trade journal line.
    pub line: &'r str,
    /// The account after settlement.
    pub account: &'r Account,
    /// The equity point: session time and equity (decimal text).
    pub equity: (i64, &'r str),
    /// A halt the settlement latched.
    pub halt: Option<&'r Halt>,
}

/// Where the engine records a session's steps. Each call must have recorded its step
/// durably (as durably as the recorder promises) before it returns, because the engine
/// goes on as if it had.
pub trait Recorder {
    /// The halt latched for this folder, if any.
    fn halt(&self) -> Result<Option<Halt>, SessionError>;
    /// Record a decided window.
    fn decision(&mut self, step: &DecisionStep<'_>) -> Result<(), SessionError>;
    /// Record a settlement.
    fn settlement(&mut self, step: &SettlementStep<'_>) -> Result<(), SessionError>;
    /// Record a script version swapped in or refused (its journal line).
    fn reload(&mut self, line: &str) -> Result<(), SessionError>;
    /// A window is done (journals may flush every N windows).
    fn window_done(&mut self) -> Result<(), SessionError>;
    /// Make everything recorded so far visible (journals flushed).
    fn flush(&mut self) -> Result<(), SessionError>;
}

/// The recorder of `updown run` and backtests today: every step committed to the ledger
/// first, then appended to the journals, so a kill between the two loses nothing (the
/// journals are rebuilt from the ledger on resume).
pub struct LedgerRecorder<'a> {
    ledger: &'a mut Ledger,
    journals: Journals,
    session: i64,
}

impl<'a> LedgerRecorder<'a> {
    /// Record the session `session` into `ledger` and `journals`.
    pub fn new(ledger: &'a mut Ledger, journals: Journals, session: i64) -> Self {
        LedgerRecorder {
            ledger,
            journals,
            session,
        }
    }
}

impl Recorder for LedgerRecorder<'_> {
    fn halt(&self) -> Result<Option<Halt>, SessionError> {
        Ok(self.ledger.halt()?)
    }

    fn decision(&mut self, s: &DecisionStep<'_>) -> Result<(), SessionError> {
        self.ledger.record_decision(
            self.session,
            s.window_start,
            s.window_index,
            s.line,
            s.fill,
            s.account,
            s.memory,
            s.halt,
        )?;
        self.journals.prediction(s.line)?;
        Ok(())
    }

    fn settlement(&mut self, s: &SettlementStep<'_>) -> Result<(), SessionError> {
        self.ledger.record_settlement(
            self.session,
            s.window_start,
            s.line,
            s.account,
            s.equity,
            s.halt,
        )?;
        self.journals.trade(s.line)?;
        self.journals.equity(s.equity.0, s.equity.1)?;
        Ok(())
    }

    fn reload(&mut self, line: &str) -> Result<(), SessionError> {
        self.ledger.record_reload(self.session, line)?;
        self.journals.reload(line)?;
        Ok(())
    }

    fn window_done(&mut self) -> Result<(), SessionError> {
        Ok(self.journals.window_done()?)
    }

    fn flush(&mut self) -> Result<(), SessionError> {
        Ok(self.journals.flush()?)
    }
}
