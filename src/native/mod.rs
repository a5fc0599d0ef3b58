//! Strategies written in Rust, for benchmarks and as a reference.
//!
//! A native strategy implements the same [`Strategy`] trait as a Rhai script and runs through
//! the same session loop (clock, feed, `ctx`, risk gate, venue, ledger, journals), so the
//! difference between the two measures exactly what the script layer costs. Each one follows
//! a shipped script rule for rule — same parameters from `ctx`, same comparisons (including
//! Rhai's float tolerance), same reasons — and a test proves that its journals equal the
//! script's line for line.
//!
//! `updown backtest --strategy native:rsi_ema` selects one; [`load_strategy`] resolves a
//! strategy argument to a native strategy or a script.
//!
//! - [`rsi_ema`]: `strategies/rsi_ema.rhai` with the win-streak sizing of
//!   `strategies/sizing.rhai`.

pub mod rsi_ema;

use crate::config::SandboxConfig;
use crate::script::{ScriptStrategy, Strategy};
use std::path::Path;

/// Prefix of a strategy argument that names a native strategy (`native:rsi_ema`).
pub const PREFIX: &str = "native:";

/// The native strategies, by the name that follows [`PREFIX`].
pub const NAMES: [&str; 1] = [rsi_ema::NAME];

/// The native strategy name in a strategy argument (`native:rsi_ema` → `rsi_ema`), or `None`
/// for a script path.
pub fn native_name(strategy: &Path) -> Option<&str> {
    strategy.to_str()?.strip_prefix(PREFIX)
}

/// The name whose `[params.<name>]` table configures a strategy: the file stem of a script,
/// the name of a native strategy (so `native:rsi_ema` reads `[params.rsi_ema]`, like
/// `strategies/rsi_ema.rhai`).
pub fn params_name(strategy: &Path) -> String {
    match native_name(strategy) {
        Some(name) => name.to_string(),
        None => strategy
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// The native strategy called `name`, if there is one.
pub fn native(name: &str) -> Option<Box<dyn Strategy>> {
    match name {
        rsi_ema::NAME => Some(Box::new(rsi_ema::RsiEma::new())),
        _ => None,
    }
}

/// Load the strategy a `--strategy` argument names: `native:<name>` for a native strategy,
/// anything else a Rhai script file (sandboxed by `limits`).
pub fn load_strategy(strategy: &Path, limits: &SandboxConfig) -> Result<Box<dyn Strategy>, String> {
    match native_name(strategy) {
        Some(name) => native(name).ok_or_else(|| {
            format!(
                "there is no native strategy {name:?}; native strategies: {}",
                NAMES.map(|n| format!("{PREFIX}{n}")).join(", ")
            )
        }),
        None => ScriptStrategy::load(strategy, limits)
            .map(|s| Box::new(s) as Box<dyn Strategy>)
            .map_err(|e| e.to_string()),
    }
}
