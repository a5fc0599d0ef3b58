//! Strategy scripts: the Rhai host that turns a `.rhai` file into decisions and stakes.
//!
//! The session calls a [`Strategy`] once per window; the Rhai implementation compiles the
//! file once, runs its top level once, then calls `predict(ctx)` and the optional
//! `size(ctx, decision)`. Scripts return intents only: they never see the venue, the ledger
//! or the risk limits, and a failing call costs its window, never the run.
//!
//! - [`api`]: the documented script API, source of `updown api`.
//! - [`sandbox`]: every engine limit and capability, in one place.
//! - [`ctx`]: the read-only, lazy `ctx` the script decides from.
//! - [`decision`]: strict checking of what the script returned.
//! - [`host`]: loading, calling, failure classification and script memory.
//! - [`params`]: the parameters a script reads, checked against those a run gives it.
//! - [`reload`]: watching a script and its modules, and offering new versions.
//! - [`text`]: escaping what a script wrote before it is logged, journaled or shown.

pub mod api;
pub mod ctx;
pub mod decision;
pub mod host;
pub mod params;
pub mod reload;
pub mod sandbox;
pub mod text;

pub use ctx::{AccountView, Ctx, CtxState, MarketView};
pub use host::{CallFailure, FailureKind, ScriptError, ScriptStrategy};

use crate::domain::{Decision, StakeAsk};

/// A source of decisions: what the session needs from a strategy, whatever it is written in.
///
/// The boundary is a trait so that a native Rust strategy (for benchmarks) runs through the
/// same session loop as a script.
pub trait Strategy {
    /// Short name for logs, e.g. the file stem.
    fn name(&self) -> &str;
    /// Content hash of the version in use, journaled with every decision.
    fn content_hash(&self) -> &str;
    /// The decision for the window in `ctx`.
    fn predict(&mut self, ctx: &Ctx) -> Result<Decision, CallFailure>;
    /// The stake for a decided side; `Ok(None)` means "use the configured default".
    fn size(&mut self, ctx: &Ctx, decision: &Decision) -> Result<Option<StakeAsk>, CallFailure>;
    /// The strategy's own memory, serialised for the ledger (`None` if it keeps none).
    fn memory_json(&self) -> Option<String>;
    /// Restore memory saved by [`Strategy::memory_json`] (on resume).
    fn restore_memory(&mut self, json: &str) -> Result<(), String>;
}

/// A new strategy version offered to the session between windows.
pub enum Reload {
    /// A version that loaded, with the old version's memory already carried over.
    Swap(Box<dyn Strategy>),
    /// A version that failed to load; the running one stays.
    Rejected {
        /// What was wrong, with file, line and column.
        error: String,
    },
}

/// Offers new versions of the running strategy; polled by the session at window boundaries
/// so a swap never happens during a call.
pub trait Reloader {
    /// A new version (or a rejected one) since the last poll, if any.
    fn poll(&mut self, current: &dyn Strategy) -> Option<Reload>;
}
