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
use crate::ledger::{Account, Halt, Ledger, PositionRecord, SessionRecords};
use std::collections::BTreeMap;
use std::path::Path;

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

/// The recorder of backtests and sweeps: every step kept in memory and written out once,
/// at the end ([`MemoryRecorder::write`]): the ledger in one transaction, the journals in one
/// pass. A backtest is a computation that a rerun reproduces exactly, so it does not need
/// a live session's step-by-step commits; what a trader reads afterwards (`updown report`,
/// `status`, the journals) is the same. The report and the fingerprint are computed from
/// these records directly.
#[derive(Clone, Debug, Default)]
pub struct MemoryRecorder {
    /// Prediction lines with their window start, in decision order.
    pub predictions: Vec<(i64, String)>,
    /// Positions taken, in decision order.
    pub positions: Vec<PositionRecord>,
    /// Trade lines with their window start, in settlement order.
    pub trades: Vec<(i64, String)>,
    /// Equity points by time (a later point at the same time replaces the earlier, as in
    /// the ledger).
    pub equity: BTreeMap<i64, String>,
    /// Reload lines.
    pub reloads: Vec<String>,
    /// The first halt latched.
    pub halt: Option<Halt>,
    /// The next window to decide.
    pub next_index: u32,
    /// The account after the last step.
    pub account: Option<Account>,
    /// The script's memory after the last decision that had one.
    pub memory: Option<String>,
}

impl MemoryRecorder {
    /// Nothing recorded yet; `equity` is the session's first point (time, equity).
    pub fn new(equity: (i64, String)) -> Self {
        let mut r = MemoryRecorder::default();
        r.equity.insert(equity.0, equity.1);
        r
    }

    /// Write everything recorded into the session `session` of `ledger`, then the journals
    /// into `dir` (replacing them), with `flush_every` as a session would.
    pub fn write(
        &self,
        ledger: &mut Ledger,
        session: i64,
        dir: &Path,
        flush_every: u32,
    ) -> Result<(), SessionError> {
        let equity: Vec<(i64, String)> = self.equity.iter().map(|(t, e)| (*t, e.clone())).collect();
        if let Some(account) = &self.account {
            ledger.record_all(
                session,
                &SessionRecords {
                    predictions: &self.predictions,
                    positions: &self.positions,
                    trades: &self.trades,
                    equity: &equity,
                    reloads: &self.reloads,
                    halt: self.halt.as_ref(),
                    next_index: self.next_index,
                    account,
                    memory: self.memory.as_deref(),
                },
            )?;
        }
        // Written and flushed; the lines are read where they are, not copied.
        Journals::rebuild(
            dir,
            self.predictions.iter().map(|(_, l)| l),
            self.trades.iter().map(|(_, l)| l),
            &equity,
            &self.reloads,
            flush_every,
        )?;
        Ok(())
    }
}

impl Recorder for MemoryRecorder {
    fn halt(&self) -> Result<Option<Halt>, SessionError> {
        Ok(self.halt.clone())
    }

    fn decision(&mut self, s: &DecisionStep<'_>) -> Result<(), SessionError> {
        self.predictions.push((s.window_start, s.line.to_string()));
        if let Some(fill) = s.fill {
            self.positions.push(PositionRecord {
                window_start: s.window_start,
                window_index: s.window_index,
                fill: fill.clone(),
                settled: false,
            });
        }
        self.next_index = s.window_index + 1;
        self.account = Some(s.account.clone());
        if let Some(m) = s.memory {
            self.memory = Some(m.to_string());
        }
        if self.halt.is_none() {
            self.halt = s.halt.cloned();
        }
        Ok(())
    }

    fn settlement(&mut self, s: &SettlementStep<'_>) -> Result<(), SessionError> {
        // As the ledger refuses it: a window is settled once, and only if it was entered.
        let Some(p) = self
            .positions
            .iter_mut()
            .rev()
            .find(|p| p.window_start == s.window_start && !p.settled)
        else {
            return Err(SessionError::DoubleSettlement {
                window_start: s.window_start,
            });
        };
        p.settled = true;
        self.trades.push((s.window_start, s.line.to_string()));
        self.account = Some(s.account.clone());
        self.equity.insert(s.equity.0, s.equity.1.to_string());
        if self.halt.is_none() {
            self.halt = s.halt.cloned();
        }
        Ok(())
    }

    fn reload(&mut self, line: &str) -> Result<(), SessionError> {
        self.reloads.push(line.to_string());
        Ok(())
    }

    fn window_done(&mut self) -> Result<(), SessionError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SessionError> {
        Ok(())
    }
}
