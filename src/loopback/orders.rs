//! The CLOB V2 trading endpoints of the loopback venue: API keys, order placement,
//! matching against the served books, cancels, order and trade queries, balances, and
//! settlement MATCHED → MINED → CONFIRMED (or FAILED) — with faults a test injects while it
//! runs, and a record of every order received (reference §3.2–§3.7, §5.2).
//!
//! Everything is under `/clob`, in the paths and shapes `polymarket_client_sdk_v2` 0.9 uses
//! (point the SDK at `Urls::clob_sdk_host()`, which ends in `/`):
//!
//! | path | auth | answer |
//! |---|---|---|
//! | `POST /auth/api-key`, `GET /auth/derive-api-key` | L1 | `{apiKey, secret, passphrase}` |
//! | `GET /auth/api-keys`, `DELETE /auth/api-key` | L2 | `{apiKeys:[…]}`, `"OK"` |
//! | `GET /version` | – | `{"version":2}` |
//! | `GET /tick-size`, `/neg-risk`, `/fee-rate` `?token_id=` | – | `{minimum_tick_size}`, `{neg_risk}`, `{base_fee}` |
//! | `GET /markets-by-token/{token}`, `/clob-markets/{condition}` | – | condition and tokens; `{c,t,mts,mos,nr,fd:{r,e,to}}` |
//! | `GET /markets/{condition}` | – | the CLOB market: `accepting_orders`, `closed`, `tokens[].winner` once resolved |
//! | `GET /auth/ban-status/closed-only` | L2 | `{"closed_only":false}` |
//! | `POST /order`, `POST /orders` (batch of ≤ 15) | L2 | `{success, orderID, status, makingAmount, takingAmount, transactionsHashes, tradeIDs, errorMsg}` |
//! | `DELETE /order` `{"orderID"}`, `DELETE /orders` `[ids]`, `DELETE /cancel-all`, `DELETE /cancel-market-orders` | L2 | `{canceled:[…], not_canceled:{id: reason}}` |
//! | `GET /data/order/{id}`, `GET /data/orders`, `GET /data/trades` | L2 | order; pages `{data, next_cursor:"LTE=", limit, count}` |
//! | `GET /balance-allowance`, `GET /balance-allowance/update` | L2 | `{balance, allowances}` in 6-decimal base units |
//!
//! What `POST /order` checks, in order, each with the real error body (`{"error": …}`,
//! 400 unless noted): L2 headers and HMAC (401 `Unauthorized/Invalid api key`); the body's
//! shape; a V1-shaped order (`taker`/`nonce`/`feeRateBps`, no `timestamp`) →
//! `order_version_mismatch`; `owner` is the API key; the order's signer is the key's address
//! (`the order signer address has to be the address of the API KEY`); the signature type and
//! maker are the configured wallet's, and the EIP-712 signature over the V2 struct in the V2
//! exchange domain recovers to the signer (`invalid signature`; a `POLY_1271` wrapped
//! signature must recover to the key's address); the token's market is listed and not over;
//! amounts are 6-decimal integers with the venue's precision (FOK/FAK: maker ≤ 2 decimals,
//! taker ≤ 4; GTC/GTD: shares ≤ 2, price = maker/taker on the 0.01 tick:
//! `Price (…) breaks minimum tick size rule: 0.01`), the price within `[0.01, 0.99]`
//! (`Invalid price (…), min: 0.01 - max: 0.99`), at least 5 shares
//! (`Size (…) lower than the minimum: 5`); balance and allowance cover the order and its
//! fee (`not enough balance / allowance: the balance is not enough -> balance: B, order
//! amount: A`, base units); an order hash seen before is refused (`order already exists`).
//!
//! Matching: a BUY walks the current served asks (best first) up to its price — for
//! FOK/FAK the implied `makerAmount / takerAmount`, spending at most `makerAmount` pUSD;
//! for GTC/GTD up to `takerAmount` shares, the rest resting `LIVE` (it never fills later:
//! the served book is a model, not an order book). Depth taken is remembered per book
//! update bucket, so two orders in one bucket do not both take the same level. FOK that
//! cannot fill completely → `order couldn't be fully filled. FOK orders are fully filled or
//! killed.`; FAK that finds nothing → `no orders found to match with FAK order. FAK orders
//! are partially filled or killed if no match is found.` SELL is symmetric against bids and
//! the wallet's shares. Each level filled is one trade; the taker fee of each trade is
//! `shares × rate × (p(1−p))^exponent` rounded to 5 decimals (at least 0.00001), paid in
//! pUSD on top of the cost of a BUY and out of the proceeds of a SELL. Trades are `MATCHED`
//! when the order answers, `MINED` after half of [`ExchangeConfig::settle_after`] (real
//! time), then `CONFIRMED` — or `FAILED` under [`OrderFault::TradesFail`], which gives the
//! pUSD back and takes the shares away.
//!
//! Faults ([`OrderFault`], `POST /control/order-fault`) are consumed in request order: a
//! status (429, 5xx…) for the next N `POST /order` (nothing placed), a response delay longer
//! than the client's timeout or a dropped connection *after* the order was placed, trades
//! that end `FAILED`, 401 for the next N authenticated requests, a new balance or allowance,
//! and the protocol version `/version` reports. Every `POST /order` that reaches the handler
//! is recorded ([`ReceivedOrder`], `GET /control/orders`) — refused, faulted, unauthorized
//! or placed — so a test can assert that no window got two orders. (A `FaultSpec` on the
//! whole `clob_rest` service answers before the handler: those orders are not recorded.)

use super::LoopbackError;
use super::auth::{
    self, ApiCreds, AuthError, EXCHANGE_V2, NEG_RISK_ADAPTER, NEG_RISK_EXCHANGE_V2, OrderV2,
    POLYGON_CHAIN_ID,
};
use super::clock::VirtualClock;
use super::data::WindowInfo;
use super::market::Phase;
use super::server::{ConnKill, Shared, json_response};
use crate::domain::Side as Outcome;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The served books' tick.
const TICK: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// Decimals of both pUSD and outcome tokens.
const UNIT_SCALE: u32 = 6;
const TERMINAL_CURSOR: &str = "LTE=";
const UNAUTHORIZED: &str = "Unauthorized/Invalid api key";

/// The wallet trading on the venue: who signs, how, for which funder, with how much pUSD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletConfig {
    /// The EOA that signs L1 headers and orders (the API key's address).
    pub signer: Address,
    /// `0` EOA, `1` POLY_PROXY, `2` POLY_GNOSIS_SAFE, `3` POLY_1271 (deposit wallet).
    pub signature_type: u8,
    /// The funder (proxy, Safe or deposit wallet) that is the orders' maker; `None` for EOA.
    pub funder: Option<Address>,
    /// Starting pUSD balance.
    pub balance: Decimal,
    /// Whether pUSD is approved to the exchanges (`false`: every order is refused for
    /// allowance).
    pub allowance: bool,
}

impl WalletConfig {
    /// The wallet of `private_key` (hex, `0x` optional), which the venue only uses to know
    /// the signer's address.
    pub fn from_private_key(
        private_key: &str,
        signature_type: u8,
        funder: Option<Address>,
        balance: Decimal,
    ) -> Result<WalletConfig, LoopbackError> {
        let signer = PrivateKeySigner::from_str(private_key.trim())
            .map_err(|_| LoopbackError::Config("the wallet's private key is not valid".into()))?;
        let w = WalletConfig {
            signer: signer.address(),
            signature_type,
            funder,
            balance,
            allowance: true,
        };
        w.validate()?;
        Ok(w)
    }

    /// The public Anvil/Hardhat account 0 as an EOA wallet holding `balance` pUSD.
    pub fn anvil(balance: Decimal) -> WalletConfig {
        WalletConfig {
            signer: auth::ANVIL_ADDRESS,
            signature_type: 0,
            funder: None,
            balance,
            allowance: true,
        }
    }

    /// The orders' maker: the funder, or the signer for an EOA.
    pub fn maker(&self) -> Address {
        self.funder.unwrap_or(self.signer)
    }

    fn validate(&self) -> Result<(), LoopbackError> {
        let bad = |m: &str| Err(LoopbackError::Config(m.into()));
        match (self.signature_type, self.funder) {
            (0, Some(_)) => bad("an EOA wallet (signature type 0) has no funder"),
            (1..=3, None) => bad("signature types 1, 2 and 3 need a funder address"),
            (4.., _) => bad("signature type must be 0, 1, 2 or 3"),
            _ if self.balance.is_sign_negative() => bad("the balance must not be negative"),
            _ => Ok(()),
        }
    }
}

impl Default for WalletConfig {
    /// [`WalletConfig::anvil`] with 100 pUSD.
    fn default() -> Self {
        WalletConfig::anvil(Decimal::ONE_HUNDRED)
    }
}

/// Settings of the trading side of the venue (part of [`super::LoopbackConfig`]).
#[derive(Clone, Debug)]
pub struct ExchangeConfig {
    /// The wallet that trades.
    pub wallet: WalletConfig,
    /// Chain id of the EIP-712 domains (137; the SDK also signs for 80002).
    pub chain_id: u64,
    /// Taker fee rate (`fd.r`), 0.07 for crypto markets.
    pub fee_rate: Decimal,
    /// Fee exponent (`fd.e`).
    pub fee_exponent: u32,
    /// Minimum order size, shares.
    pub min_order_size: Decimal,
    /// Real time from MATCHED to CONFIRMED (MINED at half of it).
    pub settle_after: Duration,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            wallet: WalletConfig::default(),
            chain_id: POLYGON_CHAIN_ID,
            fee_rate: Decimal::new(7, 2),
            fee_exponent: 1,
            min_order_size: Decimal::from(5),
            settle_after: Duration::from_millis(1_000),
        }
    }
}

impl ExchangeConfig {
    pub(crate) fn validate(&self) -> Result<(), LoopbackError> {
        self.wallet.validate()?;
        if self.fee_rate.is_sign_negative() || self.fee_rate > Decimal::ONE {
            return Err(LoopbackError::Config(
                "fee_rate must be within 0..=1".into(),
            ));
        }
        if self.settle_after > Duration::from_secs(3_600) {
            return Err(LoopbackError::Config("settle_after is over an hour".into()));
        }
        Ok(())
    }
}

/// A fault of the trading endpoints. As JSON: `{"kind": "status", "count": 2, "status": 503}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderFault {
    /// The next `count` `POST /order` answer `status` (429, 500, 502, 503…) before anything
    /// is placed.
    Status {
        /// How many orders.
        count: u32,
        /// 400..=599.
        status: u16,
    },
    /// The next `count` orders are placed (and matched), then answered only after `millis`
    /// real ms: longer than the client's timeout, the client sees no answer, the order
    /// exists anyway.
    DelayResponse {
        /// How many orders.
        count: u32,
        /// Real ms.
        millis: u64,
    },
    /// The next `count` orders are placed, then the connection is dropped without an answer.
    DropAfterAccept {
        /// How many orders.
        count: u32,
    },
    /// The trades of the next `count` matched orders end `FAILED` instead of `CONFIRMED`.
    TradesFail {
        /// How many orders.
        count: u32,
    },
    /// The next `count` L2-authenticated requests answer 401 whatever their headers.
    Unauthorized {
        /// How many requests.
        count: u32,
    },
    /// Sets the wallet's pUSD balance (e.g. too low for the next order).
    SetBalance {
        /// pUSD.
        pusd: Decimal,
    },
    /// Approves or revokes the pUSD allowance.
    SetAllowance {
        /// Whether approved.
        approved: bool,
    },
    /// The next `count` `GET /version` answer `version` (1 makes the SDK sign V1 orders,
    /// which `POST /order` refuses with `order_version_mismatch`).
    ReportVersion {
        /// How many requests.
        count: u32,
        /// Protocol version.
        version: u32,
    },
    /// Removes every pending order fault (balance and allowance stay as set).
    Clear,
}

/// One `POST /order` the venue received, whatever became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceivedOrder {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Virtual time of arrival, Unix ms.
    pub virtual_ms: i64,
    /// The order hash (its id), if the body was a V2 order.
    pub order_id: Option<String>,
    /// The token, if the body had one.
    pub token_id: Option<String>,
    /// Start of the token's window (Unix s), if the token is a served market's.
    pub window_start: Option<i64>,
    /// `BUY` or `SELL`.
    pub side: Option<String>,
    /// `FOK`, `FAK`, `GTC`, `GTD`.
    pub order_type: Option<String>,
    /// Raw `makerAmount`.
    pub maker_amount: Option<String>,
    /// Raw `takerAmount`.
    pub taker_amount: Option<String>,
    /// Whether the venue placed it (matched or resting), even if the client never saw the
    /// answer (delay or drop faults).
    pub placed: bool,
    /// The HTTP status answered (or that would have been, for a dropped connection).
    pub http_status: u16,
    /// `matched`, `live`, or the error message.
    pub outcome: String,
    /// The fault applied to it, if any.
    pub fault: Option<String>,
}

/// An order the venue holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    /// Order hash.
    pub id: String,
    /// `LIVE`, `MATCHED`, `CANCELED`.
    pub status: String,
    /// Token.
    pub token_id: String,
    /// Its window's start, Unix s.
    pub window_start: i64,
    /// `BUY`/`SELL`.
    pub side: String,
    /// Limit price (for FOK/FAK the implied `maker/taker`).
    pub price: Decimal,
    /// Shares ordered (for a FOK/FAK BUY the `takerAmount`).
    pub original_size: Decimal,
    /// Shares matched.
    pub size_matched: Decimal,
    /// Order type.
    pub order_type: String,
    /// Its trades.
    pub trade_ids: Vec<String>,
}

/// A trade the venue made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TradeView {
    /// Trade id.
    pub id: String,
    /// The taker order.
    pub order_id: String,
    /// Token.
    pub token_id: String,
    /// Its window's start, Unix s.
    pub window_start: i64,
    /// `BUY`/`SELL`.
    pub side: String,
    /// Price.
    pub price: Decimal,
    /// Shares.
    pub size: Decimal,
    /// Fee, pUSD.
    pub fee: Decimal,
    /// `MATCHED`, `MINED`, `CONFIRMED`, `FAILED`.
    pub status: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TradeSide {
    Buy,
    Sell,
}

impl TradeSide {
    fn as_str(self) -> &'static str {
        match self {
            TradeSide::Buy => "BUY",
            TradeSide::Sell => "SELL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TradeStatus {
    Matched,
    Mined,
    Confirmed,
    Failed,
}

impl TradeStatus {
    fn as_str(self) -> &'static str {
        match self {
            TradeStatus::Matched => "MATCHED",
            TradeStatus::Mined => "MINED",
            TradeStatus::Confirmed => "CONFIRMED",
            TradeStatus::Failed => "FAILED",
        }
    }
}

#[derive(Clone, Debug)]
struct OrderRec {
    id: String,
    owner: String,
    maker: Address,
    token: String,
    condition: String,
    outcome: String,
    window_start: i64,
    side: TradeSide,
    price: Decimal,
    original_size: Decimal,
    size_matched: Decimal,
    order_type: String,
    status: &'static str,
    created_s: i64,
    expiration: String,
    trade_ids: Vec<String>,
    /// pUSD held for the unmatched rest of a live BUY (shares held for a SELL).
    reserved: Decimal,
}

#[derive(Clone, Debug)]
struct TradeRec {
    id: String,
    order_id: String,
    owner: String,
    maker: Address,
    token: String,
    condition: String,
    outcome: String,
    window_start: i64,
    side: TradeSide,
    price: Decimal,
    size: Decimal,
    /// pUSD paid (BUY) or received before fees (SELL).
    notional: Decimal,
    fee: Decimal,
    fee_rate: Decimal,
    matched_at: Instant,
    match_s: i64,
    last_update_s: i64,
    status: TradeStatus,
    fails: bool,
    tx_hash: String,
    maker_order_id: String,
    maker_address: Address,
}

#[derive(Debug, Default)]
struct Pending {
    statuses: VecDeque<u16>,
    delays: VecDeque<u64>,
    drops: u32,
    fails: u32,
    unauthorized: u32,
    versions: VecDeque<u32>,
}

#[derive(Debug)]
struct Ledger {
    keys: BTreeMap<String, ApiCreds>,
    balance: Decimal,
    allowance: bool,
    positions: BTreeMap<String, Decimal>,
    orders: Vec<OrderRec>,
    trades: Vec<TradeRec>,
    received: Vec<ReceivedOrder>,
    /// Shares taken per (token, book bucket, price).
    taken: BTreeMap<(String, i64), BTreeMap<Decimal, Decimal>>,
    pending: Pending,
    applied: BTreeMap<String, u64>,
}

/// The trading state of a venue. Shared by the handlers and [`ExchangeHandle`]s.
#[derive(Debug)]
pub(crate) struct Exchange {
    cfg: ExchangeConfig,
    clock: VirtualClock,
    state: Mutex<Ledger>,
}

/// A handle on a running venue's trading side: faults, the received-orders record, orders,
/// trades, balance. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ExchangeHandle {
    inner: Arc<Exchange>,
}

fn round6(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(UNIT_SCALE, RoundingStrategy::ToZero)
}

fn micro(x: Decimal) -> String {
    (x * Decimal::from(1_000_000))
        .round_dp_with_strategy(0, RoundingStrategy::ToZero)
        .normalize()
        .to_string()
}

fn dstr(x: Decimal) -> String {
    x.normalize().to_string()
}

/// A UUID-shaped id from `parts`.
fn uuid_of(parts: &[&[u8]]) -> String {
    let k = hex::encode(&keccak256(parts.concat())[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &k[0..8],
        &k[8..12],
        &k[13..16],
        &k[17..20],
        &k[20..32]
    )
}

impl Exchange {
    pub(crate) fn new(cfg: ExchangeConfig, clock: VirtualClock) -> Exchange {
        let state = Ledger {
            keys: BTreeMap::new(),
            balance: cfg.wallet.balance,
            allowance: cfg.wallet.allowance,
            positions: BTreeMap::new(),
            orders: Vec::new(),
            trades: Vec::new(),
            received: Vec::new(),
            taken: BTreeMap::new(),
            pending: Pending::default(),
            applied: BTreeMap::new(),
        };
        Exchange {
            cfg,
            clock,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves consistent records behind (every change is
        // a push or a counter), still usable.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.settle(&mut s);
        s
    }

    /// Moves trades along MATCHED → MINED → CONFIRMED/FAILED by real time elapsed; a trade
    /// that fails gives its pUSD back and takes its shares away.
    fn settle(&self, s: &mut Ledger) {
        let now = Instant::now();
        let now_s = self.clock.now_ms().div_euclid(1000);
        let total = self.cfg.settle_after;
        let mut refunds = Vec::new();
        for t in &mut s.trades {
            if matches!(t.status, TradeStatus::Confirmed | TradeStatus::Failed) {
                continue;
            }
            let age = now.saturating_duration_since(t.matched_at);
            let next = if age >= total {
                if t.fails {
                    TradeStatus::Failed
                } else {
                    TradeStatus::Confirmed
                }
            } else if age >= total / 2 {
                TradeStatus::Mined
            } else {
                TradeStatus::Matched
            };
            if next != t.status {
                t.status = next;
                t.last_update_s = now_s;
                if next == TradeStatus::Failed {
                    refunds.push((t.side, t.token.clone(), t.size, t.notional, t.fee));
                }
            }
        }
        for (side, token, size, notional, fee) in refunds {
            let pos = s.positions.entry(token).or_default();
            match side {
                TradeSide::Buy => {
                    s.balance += notional + fee;
                    *pos -= size;
                }
                TradeSide::Sell => {
                    s.balance -= notional - fee;
                    *pos += size;
                }
            }
        }
    }

    fn applied(s: &mut Ledger, what: &str) {
        *s.applied.entry(what.to_string()).or_default() += 1;
        tracing::info!(target: "updown::loopback", "order fault applied: {what}");
    }

    fn inject(&self, f: OrderFault) -> Result<(), LoopbackError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let p = &mut s.pending;
        match f.clone() {
            OrderFault::Status { count, status } => {
                if !(400..=599).contains(&status) {
                    return Err(LoopbackError::Fault(format!(
                        "{f:?}: status must be 400..=599"
                    )));
                }
                p.statuses
                    .extend(std::iter::repeat_n(status, count as usize));
            }
            OrderFault::DelayResponse { count, millis } => {
                p.delays.extend(std::iter::repeat_n(millis, count as usize));
            }
            OrderFault::DropAfterAccept { count } => p.drops += count,
            OrderFault::TradesFail { count } => p.fails += count,
            OrderFault::Unauthorized { count } => p.unauthorized += count,
            OrderFault::SetBalance { pusd } => {
                if pusd.is_sign_negative() {
                    return Err(LoopbackError::Fault(format!(
                        "{f:?}: balance must not be negative"
                    )));
                }
                s.balance = pusd;
            }
            OrderFault::SetAllowance { approved } => s.allowance = approved,
            OrderFault::ReportVersion { count, version } => {
                p.versions
                    .extend(std::iter::repeat_n(version, count as usize));
            }
            OrderFault::Clear => s.pending = Pending::default(),
        }
        tracing::warn!(target: "updown::loopback", "order fault injected: {f:?}");
        Ok(())
    }

    fn register(&self, creds: ApiCreds) {
        self.lock().keys.insert(creds.key.clone(), creds);
    }
}

impl ExchangeHandle {
    pub(crate) fn new(inner: Arc<Exchange>) -> ExchangeHandle {
        ExchangeHandle { inner }
    }

    /// Injects an order fault.
    pub fn inject(&self, fault: OrderFault) -> Result<(), LoopbackError> {
        self.inner.inject(fault)
    }

    /// Every `POST /order` received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedOrder> {
        self.inner.lock().received.clone()
    }

    /// The orders placed (matched, resting or canceled).
    pub fn orders(&self) -> Vec<OrderView> {
        self.inner
            .lock()
            .orders
            .iter()
            .map(|o| OrderView {
                id: o.id.clone(),
                status: o.status.to_string(),
                token_id: o.token.clone(),
                window_start: o.window_start,
                side: o.side.as_str().into(),
                price: o.price,
                original_size: o.original_size,
                size_matched: o.size_matched,
                order_type: o.order_type.clone(),
                trade_ids: o.trade_ids.clone(),
            })
            .collect()
    }

    /// The trades made, with their settlement status now.
    pub fn trades(&self) -> Vec<TradeView> {
        self.inner
            .lock()
            .trades
            .iter()
            .map(|t| TradeView {
                id: t.id.clone(),
                order_id: t.order_id.clone(),
                token_id: t.token.clone(),
                window_start: t.window_start,
                side: t.side.as_str().into(),
                price: t.price,
                size: t.size,
                fee: t.fee,
                status: t.status.as_str().into(),
            })
            .collect()
    }

    /// The wallet's pUSD balance now.
    pub fn balance(&self) -> Decimal {
        self.inner.lock().balance
    }

    /// The wallet's shares of `token` now.
    pub fn position(&self, token: &str) -> Decimal {
        self.inner
            .lock()
            .positions
            .get(token)
            .copied()
            .unwrap_or_default()
    }

    /// The credentials the venue issues to `address` with L1 nonce `nonce`, registered as if
    /// created (so a test can skip L1 and hand them to the SDK).
    pub fn credentials(&self, address: Address, nonce: u64) -> ApiCreds {
        let c = ApiCreds::derive(address, nonce);
        self.inner.register(c.clone());
        c
    }

    /// The trading configuration.
    pub fn config(&self) -> &ExchangeConfig {
        &self.inner.cfg
    }

    /// Order faults applied so far, by kind.
    pub fn applied_counts(&self) -> BTreeMap<String, u64> {
        self.inner.lock().applied.clone()
    }

    /// The record as `GET /control/orders` serves it.
    pub fn snapshot_json(&self) -> Value {
        json!({
            "received": self.received(),
            "orders": self.orders(),
            "trades": self.trades(),
            "balance": dstr(self.balance()),
            "faults_applied": self.applied_counts(),
        })
    }
}

// ---- HTTP ----

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/clob/version", get(version))
        .route("/clob/tick-size", get(tick_size))
        .route("/clob/neg-risk", get(neg_risk))
        .route("/clob/fee-rate", get(fee_rate))
        .route("/clob/markets-by-token/{token}", get(market_by_token))
        .route("/clob/clob-markets/{condition}", get(clob_market))
        .route("/clob/markets/{condition}", get(market))
        .route("/clob/auth/ban-status/closed-only", get(closed_only))
        .route("/clob/auth/api-key", post(create_key).delete(delete_key))
        .route("/clob/auth/derive-api-key", get(derive_key))
        .route("/clob/auth/api-keys", get(api_keys))
        .route("/clob/order", post(post_order).delete(cancel_order))
        .route("/clob/orders", post(post_orders).delete(cancel_orders))
        .route("/clob/cancel-all", delete(cancel_all))
        .route("/clob/cancel-market-orders", delete(cancel_market))
        .route("/clob/data/order/{id}", get(get_order))
        .route("/clob/data/orders", get(get_orders))
        .route("/clob/data/trades", get(get_trades))
        .route("/clob/balance-allowance", get(balance_allowance))
        .route("/clob/balance-allowance/update", get(balance_update))
        .route("/control/orders", get(control_orders))
        .route("/control/order-fault", post(control_fault))
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, json!({ "error": msg }).to_string())
}

fn bad(msg: &str) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

fn ok_json(v: Value) -> Response {
    json_response(StatusCode::OK, v.to_string())
}

type Params = Vec<(String, String)>;

fn param(q: &Params, name: &str) -> Option<String> {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A request taken apart: what the HMAC covers and the connection to drop.
struct Call {
    method: String,
    path: String,
    query: Params,
    headers: HeaderMap,
    body: Bytes,
    kill: Option<ConnKill>,
}

async fn take(req: Request) -> Result<Call, Box<Response>> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| Box::new(bad("Invalid payload")))?;
    let query = Query::<Params>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    Ok(Call {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        kill: parts.extensions.get::<ConnKill>().cloned(),
        body,
    })
}

/// The request of an L2-authenticated endpoint, and whose API key signed it.
async fn authed(ex: &Exchange, req: Request) -> Result<(Call, ApiCreds), Box<Response>> {
    let call = take(req).await?;
    let creds = authenticate(ex, &call)?;
    Ok((call, creds))
}

/// L2 authentication of `call`: the credentials it was signed with, or the 401 answer.
fn authenticate(ex: &Exchange, call: &Call) -> Result<ApiCreds, Box<Response>> {
    let unauthorized = || Box::new(error(StatusCode::UNAUTHORIZED, UNAUTHORIZED));
    let mut s = ex.lock();
    if s.pending.unauthorized > 0 {
        s.pending.unauthorized -= 1;
        Exchange::applied(&mut s, "unauthorized");
        return Err(unauthorized());
    }
    let h = auth::read_l2(&call.headers).map_err(|e| {
        tracing::debug!(target: "updown::loopback", "L2 refused: {e}");
        unauthorized()
    })?;
    let creds = s.keys.get(&h.api_key).cloned().ok_or_else(unauthorized)?;
    drop(s);
    auth::verify_l2(&h, &creds, &call.method, &call.path, &call.body).map_err(|e| {
        tracing::debug!(target: "updown::loopback", "L2 refused: {e}");
        unauthorized()
    })?;
    Ok(creds)
}

async fn version(State(app): State<Shared>) -> Response {
    let mut s = app.exchange.lock();
    let v = match s.pending.versions.pop_front() {
        Some(v) => {
            Exchange::applied(&mut s, &format!("report_version/{v}"));
            v
        }
        None => 2,
    };
    ok_json(json!({ "version": v }))
}

/// The window and outcome of a token whose market is listed now, or the `/book`-style
/// error answer.
fn market_of<'a>(app: &'a Shared, token: &str) -> Result<(&'a WindowInfo, Outcome), Box<Response>> {
    let token = token.trim();
    if token.is_empty() || token.len() > 78 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Box::new(bad("Invalid token id")));
    }
    let now = app.clock.now_ms();
    let data = app.model.data();
    match data
        .window_of_token(token)
        .and_then(|w| w.side_of(token).map(|s| (w, s)))
    {
        Some((w, side)) if app.model.listed(w, now) => Ok((w, side)),
        _ => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "No orderbook exists for the requested token id",
        ))),
    }
}

async fn tick_size(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    match market_of(&app, &param(&q, "token_id").unwrap_or_default()) {
        Ok(_) => ok_json(json!({ "minimum_tick_size": 0.01 })),
        Err(r) => *r,
    }
}

async fn neg_risk(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    match market_of(&app, &param(&q, "token_id").unwrap_or_default()) {
        Ok(_) => ok_json(json!({ "neg_risk": false })),
        Err(r) => *r,
    }
}

async fn fee_rate(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    // The V1 field; V2 fees are `fd` of `/clob-markets`. Crypto markets show the legacy 1000.
    match market_of(&app, &param(&q, "token_id").unwrap_or_default()) {
        Ok(_) => ok_json(json!({ "base_fee": 1000 })),
        Err(r) => *r,
    }
}

async fn market_by_token(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    match market_of(&app, &token) {
        Ok((w, _)) => ok_json(json!({
            "condition_id": w.condition_id,
            "primary_token_id": w.up_token,
            "secondary_token_id": w.down_token,
        })),
        Err(r) => *r,
    }
}

async fn clob_market(State(app): State<Shared>, Path(condition): Path<String>) -> Response {
    let now = app.clock.now_ms();
    let found = app
        .model
        .data()
        .windows
        .values()
        .find(|w| w.condition_id.eq_ignore_ascii_case(condition.trim()))
        .filter(|w| app.model.listed(w, now));
    let cfg = &app.exchange.cfg;
    match found {
        Some(w) => ok_json(json!({
            "c": w.condition_id,
            "t": [{"t": w.up_token, "o": "Up"}, {"t": w.down_token, "o": "Down"}],
            "mts": 0.01,
            "mos": cfg.min_order_size.to_f64(),
            "nr": false,
            "fd": {"r": cfg.fee_rate.to_f64(), "e": cfg.fee_exponent, "to": true},
            "mbf": 1000,
            "tbf": 1000,
            "rfqe": false,
        })),
        None => error(StatusCode::NOT_FOUND, "market not found"),
    }
}

/// `GET /markets/{condition_id}`: the CLOB's market, with `tokens[].winner` once resolved.
async fn market(State(app): State<Shared>, Path(condition): Path<String>) -> Response {
    let now = app.clock.now_ms();
    let Some(w) = app
        .model
        .data()
        .windows
        .values()
        .find(|w| w.condition_id.eq_ignore_ascii_case(condition.trim()))
        .filter(|w| app.model.listed(w, now))
    else {
        return error(StatusCode::NOT_FOUND, "market not found");
    };
    let phase = app.model.phase(w, now, app.faults.resolution(w.start));
    let winner = match phase {
        Phase::Resolved(side) => Some(side),
        _ => None,
    };
    let up = match winner {
        Some(Outcome::Up) => Decimal::ONE,
        Some(Outcome::Down) => Decimal::ZERO,
        None => Decimal::from_f64_retain(app.model.up_mid(w, now))
            .unwrap_or(Decimal::ONE / Decimal::TWO)
            .round_dp(3),
    };
    let accepting = matches!(phase, Phase::Upcoming | Phase::Open);
    let cfg = &app.exchange.cfg;
    ok_json(json!({
        "enable_order_book": true,
        "active": true,
        "closed": winner.is_some(),
        "archived": false,
        "accepting_orders": accepting,
        "accepting_order_timestamp": super::market::iso(w.start - 86_400),
        "minimum_order_size": dstr(cfg.min_order_size),
        "minimum_tick_size": dstr(TICK),
        "condition_id": w.condition_id,
        "question_id": w.question_id,
        "question": super::market::question(w.start, w.end),
        "description": "This market will resolve to \"Up\" if the Bitcoin price at the end of the time range specified in the title is greater than or equal to the price at the beginning of that range. Otherwise, it will resolve to \"Down\".",
        "market_slug": w.slug,
        "end_date_iso": super::market::iso(w.end),
        "game_start_time": super::market::iso(w.start),
        "seconds_delay": 0,
        "fpmm": "",
        "maker_base_fee": 1000,
        "taker_base_fee": 1000,
        "notifications_enabled": true,
        "neg_risk": false,
        "neg_risk_market_id": "",
        "neg_risk_request_id": "",
        "icon": "",
        "image": "",
        "rewards": {"rates": null, "min_size": "50", "max_spread": "4.5"},
        "is_50_50_outcome": false,
        "tokens": [
            {"token_id": w.up_token, "outcome": "Up", "price": dstr(up), "winner": winner == Some(Outcome::Up)},
            {"token_id": w.down_token, "outcome": "Down", "price": dstr(Decimal::ONE - up), "winner": winner == Some(Outcome::Down)},
        ],
        "tags": ["Crypto", "Bitcoin", "Up or Down"],
    }))
}

async fn closed_only(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match authenticate(&app.exchange, &call) {
        Ok(_) => ok_json(json!({ "closed_only": false })),
        Err(r) => *r,
    }
}

// ---- keys ----

fn l1(app: &Shared, call: &Call) -> Result<(Address, u64), Box<Response>> {
    auth::verify_l1(&call.headers, app.exchange.cfg.chain_id).map_err(|e: AuthError| {
        tracing::debug!(target: "updown::loopback", "L1 refused: {e}");
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Invalid L1 Request headers",
        ))
    })
}

async fn create_key(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (address, nonce) = match l1(&app, &call) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let creds = ApiCreds::derive(address, nonce);
    let mut s = app.exchange.lock();
    if s.keys.contains_key(&creds.key) {
        return bad("Could not create api key");
    }
    s.keys.insert(creds.key.clone(), creds.clone());
    ok_json(creds.to_json())
}

async fn derive_key(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (address, nonce) = match l1(&app, &call) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let creds = ApiCreds::derive(address, nonce);
    if app.exchange.lock().keys.contains_key(&creds.key) {
        ok_json(creds.to_json())
    } else {
        bad("Could not derive api key!")
    }
}

async fn api_keys(State(app): State<Shared>, req: Request) -> Response {
    let (_, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let keys: Vec<String> = app
        .exchange
        .lock()
        .keys
        .values()
        .filter(|k| k.address == creds.address)
        .map(|k| k.key.clone())
        .collect();
    ok_json(json!({ "apiKeys": keys }))
}

async fn delete_key(State(app): State<Shared>, req: Request) -> Response {
    let (_, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    app.exchange.lock().keys.remove(&creds.key);
    ok_json(json!("OK"))
}

// ---- POST /order ----

/// What the handler decided about one order: its answer, and what to record.
struct Placement {
    status: StatusCode,
    body: Value,
    placed: bool,
    outcome: String,
}

impl Placement {
    fn refused(msg: &str) -> Placement {
        Placement {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": msg }),
            placed: false,
            outcome: msg.to_string(),
        }
    }
}

/// The parts of the body the record shows, read leniently.
#[derive(Default)]
struct Seen {
    order_id: Option<String>,
    token_id: Option<String>,
    window_start: Option<i64>,
    side: Option<String>,
    order_type: Option<String>,
    maker_amount: Option<String>,
    taker_amount: Option<String>,
}

fn field_str(o: &Map<String, Value>, name: &str) -> Option<String> {
    match o.get(name)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn uint(o: &Map<String, Value>, name: &str) -> Result<U256, String> {
    let s = field_str(o, name).ok_or_else(|| format!("invalid order: missing {name}"))?;
    U256::from_str_radix(&s, 10).map_err(|_| format!("invalid order: {name} is not an integer"))
}

fn address(o: &Map<String, Value>, name: &str) -> Result<Address, String> {
    let s = field_str(o, name).ok_or_else(|| format!("invalid order: missing {name}"))?;
    Address::from_str(&s).map_err(|_| format!("invalid order: {name} is not an address"))
}

fn bytes32(o: &Map<String, Value>, name: &str) -> Result<B256, String> {
    match field_str(o, name).as_deref() {
        None | Some("") => Ok(B256::ZERO),
        Some(s) => B256::from_str(s).map_err(|_| format!("invalid order: {name} is not bytes32")),
    }
}

/// 6-decimal base units → a decimal amount (at most 10^14 whole units).
fn amount(v: U256) -> Option<Decimal> {
    let n: u128 = v.try_into().ok()?;
    if n > 100_000_000_000_000_000_000 {
        return None;
    }
    Some(Decimal::from_i128_with_scale(i128::try_from(n).ok()?, UNIT_SCALE).normalize())
}

fn decimals_ok(x: Decimal, dp: u32) -> bool {
    x.normalize().scale() <= dp
}

async fn post_order(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let ex = &app.exchange;
    let now_ms = app.clock.now_ms();
    let creds = match authenticate(ex, &call) {
        Ok(c) => c,
        Err(r) => {
            // Recorded too: the order was received, and refused before anything else.
            let mut s = ex.lock();
            let seen = peek(&app, &call.body);
            record(&mut s, now_ms, seen, 401, false, UNAUTHORIZED.into(), None);
            return *r;
        }
    };
    let mut seen = Seen::default();
    // A status fault answers before anything is looked at, as an overloaded front would.
    let fault_status = {
        let mut s = ex.lock();
        let st = s.pending.statuses.pop_front();
        if let Some(st) = st {
            Exchange::applied(&mut s, &format!("status/{st}"));
        }
        st
    };
    let placement = match fault_status {
        Some(st) => {
            let body = match st {
                429 => json!({"error": "Too Many Requests"}),
                503 => {
                    json!({"error": "Trading is currently disabled. Check polymarket.com for updates"})
                }
                s if s >= 500 => json!({"error": "Internal Server Error"}),
                _ => json!({"error": "Bad Request"}),
            };
            let code = StatusCode::from_u16(st).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut s = ex.lock();
            record(
                &mut s,
                now_ms,
                seen,
                code.as_u16(),
                false,
                "not placed".into(),
                Some(format!("status {st}")),
            );
            return json_response(code, body.to_string());
        }
        None => place(&app, &creds, &call.body, now_ms, &mut seen),
    };
    // Faults that act after the order exists.
    let (delay, drop_conn, fault) = {
        let mut s = ex.lock();
        let mut fault = None;
        let mut delay = None;
        let mut drop_conn = false;
        if placement.placed {
            if s.pending.drops > 0 {
                s.pending.drops -= 1;
                drop_conn = true;
                fault = Some("drop_after_accept".to_string());
                Exchange::applied(&mut s, "drop_after_accept");
            } else if let Some(ms) = s.pending.delays.pop_front() {
                delay = Some(Duration::from_millis(ms));
                fault = Some(format!("delay_response {ms} ms"));
                Exchange::applied(&mut s, "delay_response");
            }
        }
        record(
            &mut s,
            now_ms,
            seen,
            placement.status.as_u16(),
            placement.placed,
            placement.outcome.clone(),
            fault.clone(),
        );
        (delay, drop_conn, fault)
    };
    if drop_conn {
        if let Some(ConnKill(kill)) = call.kill {
            kill.notify_one();
        }
        std::future::pending::<()>().await;
    }
    if let Some(d) = delay {
        tracing::warn!(target: "updown::loopback", "order answer delayed: {fault:?}");
        tokio::time::sleep(d).await;
    }
    json_response(placement.status, placement.body.to_string())
}

/// `POST /orders`: a batch of up to 15 orders, each checked and placed as by `POST /order`
/// and answered in one array (a refused one as `success: false` with its `errorMsg`). Order
/// faults other than 401 do not apply to batches.
async fn post_orders(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let ex = &app.exchange;
    let now_ms = app.clock.now_ms();
    let creds = match authenticate(ex, &call) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(items) = serde_json::from_slice::<Vec<Value>>(&call.body) else {
        return bad("Invalid order payload");
    };
    if items.len() > 15 {
        return bad("Too many orders in payload, max allowed: 15");
    }
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let body = item.to_string().into_bytes();
        let mut seen = Seen::default();
        let p = place(&app, &creds, &body, now_ms, &mut seen);
        let mut s = ex.lock();
        record(
            &mut s,
            now_ms,
            seen,
            p.status.as_u16(),
            p.placed,
            p.outcome.clone(),
            None,
        );
        drop(s);
        answers.push(if p.status == StatusCode::OK {
            p.body
        } else {
            json!({
                "success": false,
                "errorMsg": p.outcome,
                "orderID": "",
                "status": "",
                "makingAmount": "",
                "takingAmount": "",
            })
        });
    }
    ok_json(Value::Array(answers))
}

fn record(
    s: &mut Ledger,
    now_ms: i64,
    seen: Seen,
    http_status: u16,
    placed: bool,
    outcome: String,
    fault: Option<String>,
) {
    let seq = s.received.len() as u64;
    s.received.push(ReceivedOrder {
        seq,
        virtual_ms: now_ms,
        order_id: seen.order_id,
        token_id: seen.token_id,
        window_start: seen.window_start,
        side: seen.side,
        order_type: seen.order_type,
        maker_amount: seen.maker_amount,
        taker_amount: seen.taker_amount,
        placed,
        http_status,
        outcome,
        fault,
    });
}

/// What the record shows of an order body, read leniently (no check at all).
fn peek(app: &Shared, body: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let Ok(Value::Object(outer)) = serde_json::from_slice::<Value>(body) else {
        return seen;
    };
    let Some(Value::Object(o)) = outer.get("order") else {
        return seen;
    };
    seen.token_id = field_str(o, "tokenId");
    seen.side = field_str(o, "side");
    seen.maker_amount = field_str(o, "makerAmount");
    seen.taker_amount = field_str(o, "takerAmount");
    seen.order_type = outer
        .get("orderType")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &seen.token_id {
        seen.window_start = app.model.data().window_of_token(t).map(|w| w.start);
    }
    seen
}

/// Checks, matches and books one order body.
fn place(app: &Shared, creds: &ApiCreds, body: &[u8], now_ms: i64, seen: &mut Seen) -> Placement {
    let ex = &app.exchange;
    let cfg = &ex.cfg;
    let Ok(Value::Object(outer)) = serde_json::from_slice::<Value>(body) else {
        return Placement::refused("Invalid order payload");
    };
    let Some(Value::Object(o)) = outer.get("order") else {
        return Placement::refused("Invalid order payload");
    };
    *seen = peek(app, body);
    // V1 orders carry taker/nonce/feeRateBps inside the signed struct and no timestamp.
    let v1_shaped = ["taker", "nonce", "feeRateBps"]
        .iter()
        .any(|k| o.contains_key(*k))
        && !o.contains_key("timestamp");
    if v1_shaped {
        return Placement::refused("order_version_mismatch");
    }
    let parsed = (|| -> Result<(OrderV2, String, U256), String> {
        let side = match field_str(o, "side").as_deref() {
            Some("BUY") | Some("0") => 0,
            Some("SELL") | Some("1") => 1,
            _ => return Err("invalid order: side must be BUY or SELL".into()),
        };
        let signature_type = field_str(o, "signatureType")
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|t| *t <= 3)
            .ok_or("invalid order: signatureType must be 0, 1, 2 or 3")?;
        let order = OrderV2 {
            salt: uint(o, "salt")?,
            maker: address(o, "maker")?,
            signer: address(o, "signer")?,
            tokenId: uint(o, "tokenId")?,
            makerAmount: uint(o, "makerAmount")?,
            takerAmount: uint(o, "takerAmount")?,
            side,
            signatureType: signature_type,
            timestamp: uint(o, "timestamp")?,
            metadata: bytes32(o, "metadata")?,
            builder: bytes32(o, "builder")?,
        };
        let signature = field_str(o, "signature").ok_or("invalid order: missing signature")?;
        let expiration = match field_str(o, "expiration") {
            None => U256::ZERO,
            Some(e) => U256::from_str_radix(&e, 10)
                .map_err(|_| "invalid order: expiration is not an integer".to_string())?,
        };
        Ok((order, signature, expiration))
    })();
    let (order, signature, expiration) = match parsed {
        Ok(v) => v,
        Err(e) => return Placement::refused(&e),
    };
    let domain = auth::order_domain(cfg.chain_id, "2", EXCHANGE_V2);
    let hash = order.eip712_signing_hash(&domain);
    let order_id = format!("{hash:#x}");
    seen.order_id = Some(order_id.clone());

    if outer.get("owner").and_then(Value::as_str) != Some(creds.key.as_str()) {
        return Placement::refused("the order owner has to be the owner of the API KEY");
    }
    let order_type = match seen.order_type.as_deref() {
        Some(t @ ("FOK" | "FAK" | "GTC" | "GTD")) => t.to_string(),
        _ => return Placement::refused("invalid order type"),
    };
    // Signer, maker and signature type against the key and the configured wallet.
    let wallet = &cfg.wallet;
    if order.signatureType == 3 {
        if order.signer != order.maker {
            return Placement::refused("invalid signature");
        }
    } else if order.signer != creds.address {
        return Placement::refused("the order signer address has to be the address of the API KEY");
    }
    let ours = creds.address == wallet.signer;
    let maker_ok = if ours {
        order.signatureType == wallet.signature_type && order.maker == wallet.maker()
    } else {
        order.signatureType == 0 && order.maker == order.signer
    };
    if !maker_ok {
        return Placement::refused("invalid signature");
    }
    let recovered = if order.signatureType == 3 {
        auth::recover_poly1271(&signature, &order, &domain, cfg.chain_id)
    } else {
        auth::recover(&signature, &hash)
    };
    let expected = if order.signatureType == 3 {
        creds.address
    } else {
        order.signer
    };
    if recovered.ok() != Some(expected) {
        // A struct signed for another exchange version is the version mismatch the real
        // venue reports; anything else is a bad signature.
        let other_versions = [
            auth::order_domain(cfg.chain_id, "1", auth::EXCHANGE_V1),
            auth::order_domain(cfg.chain_id, "2", NEG_RISK_EXCHANGE_V2),
        ];
        if order.signatureType != 3
            && other_versions.iter().any(|d| {
                auth::recover(&signature, &order.eip712_signing_hash(d)).ok() == Some(expected)
            })
        {
            return Placement::refused("order_version_mismatch");
        }
        return Placement::refused("invalid signature");
    }

    // The market.
    let token = order.tokenId.to_string();
    let Some(w) = app.model.data().window_of_token(&token) else {
        return Placement::refused("Invalid token id");
    };
    let Some(outcome) = w.side_of(&token) else {
        return Placement::refused("Invalid token id");
    };
    let phase = app.model.phase(w, now_ms, app.faults.resolution(w.start));
    if !app.model.listed(w, now_ms) || !matches!(phase, Phase::Upcoming | Phase::Open) {
        return Placement::refused("the market is not accepting orders");
    }

    // Amounts.
    let (Some(maker_amt), Some(taker_amt)) = (amount(order.makerAmount), amount(order.takerAmount))
    else {
        return Placement::refused("invalid amounts");
    };
    if maker_amt.is_zero() || taker_amt.is_zero() {
        return Placement::refused("invalid amounts, maker and taker amounts must be positive");
    }
    let side = if order.side == 0 {
        TradeSide::Buy
    } else {
        TradeSide::Sell
    };
    let market_order = matches!(order_type.as_str(), "FOK" | "FAK");
    let (shares, usdc) = match side {
        TradeSide::Buy => (taker_amt, maker_amt),
        TradeSide::Sell => (maker_amt, taker_amt),
    };
    let price = usdc / shares;
    if market_order {
        if !decimals_ok(maker_amt, 2) || !decimals_ok(taker_amt, 4) {
            return Placement::refused(match side {
                TradeSide::Buy => {
                    "invalid amounts, the market buy orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals"
                }
                TradeSide::Sell => {
                    "invalid amounts, the sell orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals"
                }
            });
        }
        if expiration != U256::ZERO {
            return Placement::refused("invalid expiration, only GTD orders may expire");
        }
    } else {
        if !decimals_ok(shares, 2) || !decimals_ok(usdc, 4) {
            return Placement::refused(match side {
                TradeSide::Buy => {
                    "invalid amounts, the buy orders maker amount supports a max accuracy of 4 decimals, taker amount a max of 2 decimals"
                }
                TradeSide::Sell => {
                    "invalid amounts, the sell orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals"
                }
            });
        }
        if !(price / TICK).fract().is_zero() {
            return Placement::refused(&format!(
                "Price ({}) breaks minimum tick size rule: {}",
                dstr(price),
                dstr(TICK)
            ));
        }
        if order_type == "GTC" && expiration != U256::ZERO {
            return Placement::refused("invalid expiration, only GTD orders may expire");
        }
        if order_type == "GTD" {
            let min = U256::from(now_ms.div_euclid(1000).max(0) + 60);
            if expiration < min {
                return Placement::refused(
                    "invalid expiration value, it must be at least one minute in the future",
                );
            }
        }
    }
    let (lo, hi) = (TICK, Decimal::ONE - TICK);
    if price < lo || price > hi + Decimal::new(1, 4) {
        return Placement::refused(&format!(
            "Invalid price ({}), min: {} - max: {}",
            dstr(price.round_dp(4)),
            dstr(lo),
            dstr(hi)
        ));
    }
    if shares < cfg.min_order_size {
        return Placement::refused(&format!(
            "Size ({}) lower than the minimum: {}",
            dstr(shares),
            dstr(cfg.min_order_size)
        ));
    }
    let post_only = outer.get("postOnly").and_then(Value::as_bool) == Some(true);
    if post_only && market_order {
        return Placement::refused(
            "invalid post-only order: only GTC and GTD orders can be post-only",
        );
    }

    // Balance, duplicates and matching happen under one lock.
    let mut guard = ex.lock();
    let s = &mut *guard;
    if s.orders.iter().any(|r| r.id == order_id) {
        return Placement::refused("order already exists");
    }
    let fee_of = |n: Decimal, p: Decimal| -> Decimal {
        if cfg.fee_rate.is_zero() {
            return Decimal::ZERO;
        }
        let pq = p * (Decimal::ONE - p);
        let base = (0..cfg.fee_exponent).fold(Decimal::ONE, |b, _| b * pq);
        let f = (n * cfg.fee_rate * base)
            .round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero);
        f.max(Decimal::new(1, 5))
    };
    let reserved_usdc: Decimal = s
        .orders
        .iter()
        .filter(|r| r.status == "LIVE" && r.side == TradeSide::Buy)
        .map(|r| r.reserved)
        .sum();
    let reserved_shares: Decimal = s
        .orders
        .iter()
        .filter(|r| r.status == "LIVE" && r.side == TradeSide::Sell && r.token == token)
        .map(|r| r.reserved)
        .sum();
    let our_wallet = order.maker == wallet.maker() && ours;
    let balance = if our_wallet { s.balance } else { Decimal::ZERO };
    let held = if our_wallet {
        s.positions.get(&token).copied().unwrap_or_default()
    } else {
        Decimal::ZERO
    };
    match side {
        TradeSide::Buy => {
            let needed = usdc + fee_of(shares, price.min(hi));
            if !s.allowance {
                return Placement::refused(&format!(
                    "not enough balance / allowance: the allowance is not enough -> allowance: 0, order amount: {}",
                    micro(needed)
                ));
            }
            if balance - reserved_usdc < needed {
                let active = if reserved_usdc.is_zero() {
                    String::new()
                } else {
                    format!(", sum of active orders: {}", micro(reserved_usdc))
                };
                return Placement::refused(&format!(
                    "not enough balance / allowance: the balance is not enough -> balance: {}{active}, order amount: {}",
                    micro(balance),
                    micro(needed)
                ));
            }
        }
        TradeSide::Sell => {
            if held - reserved_shares < shares {
                return Placement::refused(&format!(
                    "not enough balance / allowance: the balance is not enough -> balance: {}, order amount: {}",
                    micro(held - reserved_shares),
                    micro(shares)
                ));
            }
        }
    }

    // Walk the served book, net of what earlier orders in this bucket took.
    let book = app.model.book(w, outcome, now_ms);
    let bucket = app.model.bucket(w, now_ms);
    let key = (token.clone(), bucket);
    let taken = s.taken.get(&key).cloned().unwrap_or_default();
    let levels: Vec<(Decimal, Decimal)> = match side {
        TradeSide::Buy => book
            .asks
            .iter()
            .filter(|(p, _)| *p <= price)
            .map(|(p, sz)| (*p, *sz - taken.get(p).copied().unwrap_or_default()))
            .filter(|(_, sz)| *sz > Decimal::ZERO)
            .collect(),
        TradeSide::Sell => book
            .bids
            .iter()
            .filter(|(p, _)| *p >= price)
            .map(|(p, sz)| (*p, *sz - taken.get(p).copied().unwrap_or_default()))
            .filter(|(_, sz)| *sz > Decimal::ZERO)
            .collect(),
    };
    if post_only && !levels.is_empty() {
        return Placement::refused("invalid post-only order: order crosses book");
    }
    // Fills: (price, shares, notional).
    let mut fills: Vec<(Decimal, Decimal, Decimal)> = Vec::new();
    let mut complete = false;
    if market_order && side == TradeSide::Buy {
        let mut budget = usdc;
        for (p, avail) in &levels {
            let affordable = round6(budget / *p);
            let n = affordable.min(*avail);
            if n <= Decimal::ZERO {
                complete = true;
                break;
            }
            let cost = round6(n * *p).min(budget);
            budget -= cost;
            fills.push((*p, n, cost));
            if n == affordable {
                complete = true;
                break;
            }
        }
    } else {
        let mut left = shares;
        for (p, avail) in &levels {
            let n = left.min(*avail);
            fills.push((*p, n, round6(n * *p)));
            left -= n;
            if left.is_zero() {
                complete = true;
                break;
            }
        }
    }
    match order_type.as_str() {
        "FOK" if !complete => {
            return Placement::refused(
                "order couldn't be fully filled. FOK orders are fully filled or killed.",
            );
        }
        "FAK" if fills.is_empty() => {
            return Placement::refused(
                "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.",
            );
        }
        _ => {}
    }
    // The check above used the fee at the order's price, as the venue's message shows; a
    // fill at a better price buys more shares and costs more fee, so the exact cost is
    // checked too: the wallet never goes below zero.
    if side == TradeSide::Buy {
        let matched: Decimal = fills.iter().map(|(_, n, _)| *n).sum();
        let rest = if market_order {
            Decimal::ZERO
        } else {
            (shares - matched) * price
        };
        let total: Decimal = fills
            .iter()
            .map(|(p, n, cost)| *cost + fee_of(*n, *p))
            .sum::<Decimal>()
            + rest;
        if balance - reserved_usdc < total {
            return Placement::refused(&format!(
                "not enough balance / allowance: the balance is not enough -> balance: {}, order amount: {}",
                micro(balance),
                micro(total)
            ));
        }
    }

    // Book it.
    let now_s = now_ms.div_euclid(1000);
    let fails = if !fills.is_empty() && s.pending.fails > 0 {
        s.pending.fails -= 1;
        Exchange::applied(s, "trades_fail");
        true
    } else {
        false
    };
    let mut trade_ids = Vec::new();
    let mut tx_hashes = Vec::new();
    let (mut making, mut taking, mut matched) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let maker_side_addr = Address::from_word(keccak256(format!("maker/{token}")));
    for (i, (p, n, notional)) in fills.iter().enumerate() {
        let fee = fee_of(*n, *p);
        let id = uuid_of(&[order_id.as_bytes(), &(i as u64).to_be_bytes()]);
        let tx = format!("{:#x}", keccak256(format!("tx/{id}")));
        let taken_at = s
            .taken
            .entry(key.clone())
            .or_default()
            .entry(*p)
            .or_default();
        *taken_at += *n;
        let pos = s.positions.entry(token.clone()).or_default();
        match side {
            TradeSide::Buy => {
                *pos += *n;
                s.balance -= *notional + fee;
                making += *notional;
                taking += *n;
            }
            TradeSide::Sell => {
                *pos -= *n;
                s.balance += *notional - fee;
                making += *n;
                taking += *notional;
            }
        }
        matched += *n;
        s.trades.push(TradeRec {
            id: id.clone(),
            order_id: order_id.clone(),
            owner: creds.key.clone(),
            maker: order.maker,
            token: token.clone(),
            condition: w.condition_id.clone(),
            outcome: outcome_name(outcome).into(),
            window_start: w.start,
            side,
            price: *p,
            size: *n,
            notional: *notional,
            fee,
            fee_rate: cfg.fee_rate,
            matched_at: Instant::now(),
            match_s: now_s,
            last_update_s: now_s,
            status: TradeStatus::Matched,
            fails,
            tx_hash: tx.clone(),
            maker_order_id: format!("{:#x}", keccak256(format!("maker-order/{id}"))),
            maker_address: maker_side_addr,
        });
        trade_ids.push(id);
        tx_hashes.push(tx);
    }
    let resting = !market_order && !complete;
    let status = if resting { "LIVE" } else { "MATCHED" };
    let rest = shares - matched;
    let (original_size, reserved) = match (side, resting) {
        (TradeSide::Buy, true) => (shares, rest * price),
        (TradeSide::Sell, true) => (shares, rest),
        _ => (shares, Decimal::ZERO),
    };
    s.orders.push(OrderRec {
        id: order_id.clone(),
        owner: creds.key.clone(),
        maker: order.maker,
        token: token.clone(),
        condition: w.condition_id.clone(),
        outcome: outcome_name(outcome).into(),
        window_start: w.start,
        side,
        price: if market_order {
            price.round_dp(4)
        } else {
            price
        },
        original_size,
        size_matched: matched,
        order_type: order_type.clone(),
        status,
        created_s: now_s,
        expiration: expiration.to_string(),
        trade_ids: trade_ids.clone(),
        reserved,
    });
    let wire_status = if fills.is_empty() { "live" } else { "matched" };
    let amt = |x: Decimal| if x.is_zero() { String::new() } else { dstr(x) };
    Placement {
        status: StatusCode::OK,
        body: json!({
            "success": true,
            "errorMsg": "",
            "orderID": order_id,
            "status": wire_status,
            "makingAmount": amt(making),
            "takingAmount": amt(taking),
            "transactionsHashes": tx_hashes,
            "tradeIDs": trade_ids,
        }),
        placed: true,
        outcome: wire_status.into(),
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Up => "Up",
        Outcome::Down => "Down",
    }
}

// ---- cancels ----

#[derive(Default)]
struct CancelResult {
    canceled: Vec<String>,
    not_canceled: BTreeMap<String, String>,
}

impl CancelResult {
    fn json(self) -> Response {
        ok_json(json!({ "canceled": self.canceled, "not_canceled": self.not_canceled }))
    }
}

fn cancel_where(
    s: &mut Ledger,
    creds: &ApiCreds,
    ids: Option<&[String]>,
    pred: &dyn Fn(&OrderRec) -> bool,
) -> CancelResult {
    let mut out = CancelResult::default();
    if let Some(ids) = ids {
        for id in ids {
            match s
                .orders
                .iter_mut()
                .find(|o| &o.id == id && o.owner == creds.key)
            {
                None => {
                    out.not_canceled
                        .insert(id.clone(), "order not found".into());
                }
                Some(o) if o.status != "LIVE" => {
                    let why = if o.status == "CANCELED" {
                        "the order is already canceled"
                    } else {
                        "order can't be canceled because it's already matched"
                    };
                    out.not_canceled.insert(id.clone(), why.into());
                }
                Some(o) => {
                    o.status = "CANCELED";
                    o.reserved = Decimal::ZERO;
                    out.canceled.push(id.clone());
                }
            }
        }
        return out;
    }
    for o in s
        .orders
        .iter_mut()
        .filter(|o| o.owner == creds.key && o.status == "LIVE")
        .filter(|o| pred(o))
    {
        o.status = "CANCELED";
        o.reserved = Decimal::ZERO;
        out.canceled.push(o.id.clone());
    }
    out
}

async fn cancel_order(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let id = serde_json::from_slice::<Value>(&call.body)
        .ok()
        .and_then(|v| {
            v.get("orderID")
                .or_else(|| v.get("orderId"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let Some(id) = id else {
        return bad("Invalid order payload");
    };
    let mut s = app.exchange.lock();
    cancel_where(&mut s, &creds, Some(&[id]), &|_| true).json()
}

async fn cancel_orders(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Ok(ids) = serde_json::from_slice::<Vec<String>>(&call.body) else {
        return bad("Invalid order payload");
    };
    if ids.len() > 1000 {
        return bad("Payload exceeds the limit");
    }
    let mut s = app.exchange.lock();
    cancel_where(&mut s, &creds, Some(&ids), &|_| true).json()
}

async fn cancel_all(State(app): State<Shared>, req: Request) -> Response {
    let (_, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut s = app.exchange.lock();
    cancel_where(&mut s, &creds, None, &|_| true).json()
}

async fn cancel_market(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let v = serde_json::from_slice::<Value>(&call.body).unwrap_or(Value::Null);
    let market = v
        .get("market")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let asset = v
        .get("asset_id")
        .and_then(|a| {
            a.as_str()
                .map(str::to_string)
                .or_else(|| Some(a.to_string()))
        })
        .filter(|a| a != "null");
    let mut s = app.exchange.lock();
    cancel_where(&mut s, &creds, None, &|o| {
        market
            .as_ref()
            .is_none_or(|m| o.condition.to_lowercase() == *m)
            && asset.as_ref().is_none_or(|a| &o.token == a)
    })
    .json()
}

// ---- queries ----

fn order_json(o: &OrderRec) -> Value {
    json!({
        "id": o.id,
        "status": o.status,
        "owner": o.owner,
        "maker_address": o.maker.to_checksum(None),
        "market": o.condition,
        "asset_id": o.token,
        "side": o.side.as_str(),
        "original_size": dstr(o.original_size),
        "size_matched": dstr(o.size_matched),
        "price": dstr(o.price),
        "associate_trades": o.trade_ids,
        "outcome": o.outcome,
        "created_at": o.created_s,
        "expiration": o.expiration,
        "order_type": o.order_type,
    })
}

fn trade_json(t: &TradeRec) -> Value {
    json!({
        "id": t.id,
        "taker_order_id": t.order_id,
        "market": t.condition,
        "asset_id": t.token,
        "side": t.side.as_str(),
        "size": dstr(t.size),
        "fee_rate_bps": dstr((t.fee_rate * Decimal::from(10_000)).round_dp(0)),
        "price": dstr(t.price),
        "status": t.status.as_str(),
        "match_time": t.match_s.to_string(),
        "last_update": t.last_update_s.to_string(),
        "outcome": t.outcome,
        "bucket_index": 0,
        "owner": t.owner,
        "maker_address": t.maker.to_checksum(None),
        "maker_orders": [{
            "order_id": t.maker_order_id,
            "owner": uuid_of(&[t.maker_address.as_slice()]),
            "maker_address": t.maker_address.to_checksum(None),
            "matched_amount": dstr(t.size),
            "price": dstr(t.price),
            "fee_rate_bps": "0",
            "asset_id": t.token,
            "outcome": t.outcome,
            "side": match t.side { TradeSide::Buy => "SELL", TradeSide::Sell => "BUY" },
        }],
        "transaction_hash": t.tx_hash,
        "trader_side": "TAKER",
        "fee": dstr(t.fee),
        "error_msg": if t.status == TradeStatus::Failed { Value::from("transaction failed") } else { Value::Null },
    })
}

fn page(data: Vec<Value>) -> Response {
    let n = data.len();
    ok_json(json!({ "data": data, "next_cursor": TERMINAL_CURSOR, "limit": n.max(1), "count": n }))
}

async fn get_order(State(app): State<Shared>, Path(id): Path<String>, req: Request) -> Response {
    let (_, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let s = app.exchange.lock();
    match s
        .orders
        .iter()
        .find(|o| o.id.eq_ignore_ascii_case(&id) && o.owner == creds.key)
    {
        Some(o) => ok_json(order_json(o)),
        None => ok_json(Value::Null),
    }
}

async fn get_orders(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let q = &call.query;
    let (id, market, asset) = (param(q, "id"), param(q, "market"), param(q, "asset_id"));
    let s = app.exchange.lock();
    let data = s
        .orders
        .iter()
        .filter(|o| o.owner == creds.key && o.status == "LIVE")
        .filter(|o| id.as_ref().is_none_or(|i| o.id.eq_ignore_ascii_case(i)))
        .filter(|o| {
            market
                .as_ref()
                .is_none_or(|m| o.condition.eq_ignore_ascii_case(m))
        })
        .filter(|o| asset.as_ref().is_none_or(|a| &o.token == a))
        .map(order_json)
        .collect();
    page(data)
}

async fn get_trades(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let q = &call.query;
    let (id, market, asset) = (param(q, "id"), param(q, "market"), param(q, "asset_id"));
    let maker = param(q, "maker").and_then(|a| Address::from_str(&a).ok());
    let taker = param(q, "taker").and_then(|a| Address::from_str(&a).ok());
    let before = param(q, "before").and_then(|b| b.parse::<i64>().ok());
    let after = param(q, "after").and_then(|b| b.parse::<i64>().ok());
    let s = app.exchange.lock();
    let data = s
        .trades
        .iter()
        .filter(|t| t.owner == creds.key)
        .filter(|t| id.as_ref().is_none_or(|i| &t.id == i))
        .filter(|t| {
            market
                .as_ref()
                .is_none_or(|m| t.condition.eq_ignore_ascii_case(m))
        })
        .filter(|t| asset.as_ref().is_none_or(|a| &t.token == a))
        .filter(|t| maker.is_none_or(|m| t.maker == m))
        .filter(|t| taker.is_none_or(|m| t.maker == m))
        .filter(|t| before.is_none_or(|b| t.match_s < b))
        .filter(|t| after.is_none_or(|a| t.match_s > a))
        .map(trade_json)
        .collect();
    page(data)
}

async fn balance_allowance(State(app): State<Shared>, req: Request) -> Response {
    let (call, creds) = match authed(&app.exchange, req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let q = &call.query;
    let wallet = &app.exchange.cfg.wallet;
    let ours = creds.address == wallet.signer
        && param(q, "signature_type").is_none_or(|t| t == wallet.signature_type.to_string());
    let s = app.exchange.lock();
    let max = U256::MAX.to_string();
    let allowance = if s.allowance { max } else { "0".to_string() };
    let allowances = json!({
        EXCHANGE_V2.to_checksum(None): allowance,
        NEG_RISK_EXCHANGE_V2.to_checksum(None): allowance,
        NEG_RISK_ADAPTER.to_checksum(None): allowance,
    });
    let balance = match param(q, "asset_type").as_deref() {
        Some("COLLATERAL") | None => {
            if ours {
                s.balance
            } else {
                Decimal::ZERO
            }
        }
        Some("CONDITIONAL") => match param(q, "token_id") {
            Some(t) if ours => s.positions.get(&t).copied().unwrap_or_default(),
            Some(_) => Decimal::ZERO,
            None => return bad("token_id is required for CONDITIONAL assets"),
        },
        Some(_) => return bad("invalid asset_type"),
    };
    ok_json(json!({ "balance": micro(balance.max(Decimal::ZERO)), "allowances": allowances }))
}

async fn balance_update(State(app): State<Shared>, req: Request) -> Response {
    let call = match take(req).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match authenticate(&app.exchange, &call) {
        Ok(_) => ok_json(Value::Null),
        Err(r) => *r,
    }
}

async fn control_orders(State(app): State<Shared>) -> Response {
    ok_json(ExchangeHandle::new(app.exchange.clone()).snapshot_json())
}

async fn control_fault(State(app): State<Shared>, body: String) -> Response {
    let fault: OrderFault = match serde_json::from_str(&body) {
        Ok(f) => f,
        Err(e) => return bad(&format!("not an order fault: {e}")),
    };
    match app.exchange.inject(fault) {
        Ok(()) => ok_json(json!({ "ok": true })),
        Err(e) => bad(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::auth::ANVIL_PRIVATE_KEY;

    #[test]
    fn amounts_are_six_decimal_fixed_point() {
        assert_eq!(amount(U256::from(5_000_000u64)), Some(Decimal::from(5)));
        assert_eq!(
            amount(U256::from(9_803_900u64)),
            Some(Decimal::new(98039, 4))
        );
        assert!(decimals_ok(Decimal::new(98039, 4), 4));
        assert!(!decimals_ok(Decimal::new(980391, 5), 4));
        assert_eq!(micro(Decimal::new(51_4007, 5)), "5140070");
    }

    #[test]
    fn wallets_are_validated() {
        let w = WalletConfig::from_private_key(ANVIL_PRIVATE_KEY, 0, None, Decimal::TEN).unwrap();
        assert_eq!(w.signer, auth::ANVIL_ADDRESS);
        assert_eq!(w.maker(), auth::ANVIL_ADDRESS);
        assert!(WalletConfig::from_private_key("0x12", 0, None, Decimal::TEN).is_err());
        assert!(WalletConfig::from_private_key(ANVIL_PRIVATE_KEY, 2, None, Decimal::TEN).is_err());
    }

    #[test]
    fn order_faults_read_from_json() {
        let f: OrderFault =
            serde_json::from_str(r#"{"kind":"status","count":2,"status":503}"#).unwrap();
        assert_eq!(
            f,
            OrderFault::Status {
                count: 2,
                status: 503
            }
        );
        let f: OrderFault = serde_json::from_str(r#"{"kind":"set_balance","pusd":"0.5"}"#).unwrap();
        assert_eq!(
            f,
            OrderFault::SetBalance {
                pusd: Decimal::new(5, 1)
            }
        );
    }
}
