//! `updown` trades Polymarket's "Bitcoin Up or Down" markets with rules written as Rhai
//! scripts, inside hard limits written in Rust.
//!
//! # Layout
//!
//! Modules follow the data flow of DESIGN.md, and each depends only on those before it in
//! this list (no cycles, no arrow back up):
//!
//! ```text
//! clock, config, domain ─► account ─► feed ─► indicators ─► script ─► risk ─► venue ─► ledger ─► report
//!                                                                                    ▲
//!                                                     session: the loop that drives them all
//! ```
//!
//! - [`clock`]: session time (simulated, or the exchange's), below everything that waits.
//! - [`config`]: `config.toml`, parsed and range-checked.
//! - [`domain`]: the shared vocabulary (`Side`, `Window`, `Decision`, `StakeAsk`, `Fill`).
//! - [`account`]: the books (cash, open stakes, streaks, drawdown) in exact decimals.
//! - [`feed`]: candles and where they come from (recorded files, the live Binance stream).
//! - [`indicators`]: TA-Lib-compatible indicators, incremental and cached.
//! - [`script`]: the sandboxed Rhai host and the read-only `ctx` scripts decide from; it
//!   turns the account into the scripts' view.
//! - [`risk`]: the gate every order passes, and the halts it latches.
//! - [`native`]: strategies written in Rust, for benchmarks and as a reference.
//! - [`venue`]: quotes, fills, fees and settlement: replay, paper on live books, and live
//!   orders on Polymarket's CLOB V2 ([`venue::live`]), which records each order through the
//!   [`venue::orders::OrderJournal`] it defines.
//! - [`ledger`]: the durable SQLite record, the journals, and the live order tables
//!   ([`ledger::orders`], the venue's journal).
//! - [`report`]: summaries computed from the records, read through the ledger's methods.
//! - [`session`]: the one loop shared by replay, paper and live, recording through
//!   [`session::Recorder`].
//! - [`validate`]: `updown validate`, checking scripts against fixtures before they trade.
//! - [`loopback`]: a test venue serving recorded Binance and Polymarket data on 127.0.0.1.
//!
//! The binary's command line lives in `src/cli/` and is not part of the library: the core
//! never depends on it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod account;
pub mod clock;
pub mod config;
pub mod domain;
pub mod feed;
pub mod indicators;
pub mod ledger;
pub mod loopback;
pub mod native;
pub mod report;
pub mod risk;
pub mod script;
pub mod session;
pub mod validate;
pub mod venue;
