//! `updown` trades Polymarket's "Bitcoin Up or Down" markets with rules written as Rhai
//! scripts, inside hard limits written in Rust.
//!
//! # Layout
//!
//! Modules follow the data flow of DESIGN.md, and each depends only on those before it:
//!
//! ```text
//! clock ─► feed ─► indicators ─► script (ctx, Rhai) ─► risk ─► venue ─► ledger ─► report
//!                                                                         ▲
//!                                          session: the loop that drives them all
//! ```
//!
//! - [`domain`]: the shared vocabulary (`Side`, `Window`, `Decision`, `StakeAsk`).
//! - [`config`]: `config.toml`, parsed and range-checked.
//! - [`feed`]: candles and where they come from (recorded files now, live streams later).
//! - [`indicators`]: TA-Lib-compatible indicators, incremental and cached.
//! - [`script`]: the sandboxed Rhai host and the read-only `ctx` scripts decide from.
//! - [`risk`]: the gate every order passes, and the halts it latches.
//! - [`venue`]: quotes, fills, fees and settlement: replay, paper on live books, and live
//!   orders on Polymarket's CLOB V2 ([`venue::live`]).
//! - [`ledger`]: the durable SQLite record, the account, the journals, and the live order
//!   lifecycle ([`ledger::orders`]).
//! - [`report`]: summaries computed from the ledger's records.
//! - [`session`]: the one loop shared by replay, paper and live.
//! - [`validate`]: `updown validate`, checking scripts against fixtures before they trade.
//! - [`loopback`]: a test venue serving recorded Binance and Polymarket data on 127.0.0.1.
//! - [`native`]: strategies written in Rust, for benchmarks and as a reference.
//!
//! The binary's command line lives in `src/cli/` and is not part of the library: the core
//! never depends on it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
