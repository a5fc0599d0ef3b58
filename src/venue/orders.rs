//! The live order lifecycle as the live venue sees it, and the journal it is written to.
//!
//! The live venue must record every step of an order before and after it touches the
//! exchange (intent, answer, fills, final state), so that a crash never leads to a second
//! order. Where that record is kept is not the venue's business: it writes through
//! [`OrderJournal`], which the ledger implements on SQLite (`ledger::orders::OrderStore`,
//! where the lifecycle is described step by step). Defining the types and the trait here
//! keeps the dependency one way: the ledger knows the venue's types, the venue knows no
//! ledger.

use crate::risk::Halt;
use rust_decimal::Decimal;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Written before sending; the venue may or may not have it (a crash right after).
    Intended,
    /// The venue answered and holds the order (its fills may still be provisional).
    Submitted,
    /// Sent, but the answer never came: to be found on the venue, never assumed unfilled.
    Unknown,
    /// Matched, wholly or partly (fills may still be provisional).
    Filled,
    /// The venue holds it but nothing matched (a FAK that found nothing, or cancelled).
    Unfilled,
    /// The venue refused it; there is no position.
    Rejected,
    /// After a crash the venue had no such order: nothing was sent; the window is not retried.
    NotSent,
}

impl OrderState {
    /// Stable code stored in the ledger.
    pub fn code(self) -> &'static str {
        match self {
            OrderState::Intended => "intended",
            OrderState::Submitted => "submitted",
            OrderState::Unknown => "unknown",
            OrderState::Filled => "filled",
            OrderState::Unfilled => "unfilled",
            OrderState::Rejected => "rejected",
            OrderState::NotSent => "not_sent",
        }
    }

    /// The state stored as `s` by [`OrderState::code`].
    pub fn parse(s: &str) -> Option<OrderState> {
        Some(match s {
            "intended" => OrderState::Intended,
            "submitted" => OrderState::Submitted,
            "unknown" => OrderState::Unknown,
            "filled" => OrderState::Filled,
            "unfilled" => OrderState::Unfilled,
            "rejected" => OrderState::Rejected,
            "not_sent" => OrderState::NotSent,
            _ => return None,
        })
    }

    /// Whether the venue still has to be asked what became of the order.
    pub fn needs_venue(self) -> bool {
        matches!(
            self,
            OrderState::Intended | OrderState::Submitted | OrderState::Unknown
        )
    }
}

/// A trade's settlement status as the venue reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillStatus {
    /// Matched off-chain, not yet on chain: provisional.
    Matched,
    /// Mined, not yet final: provisional.
    Mined,
    /// The chain transaction is being retried: provisional.
    Retrying,
    /// Final.
    Confirmed,
    /// The chain transaction failed: the fill is void.
    Failed,
}

impl FillStatus {
    /// Stable code (the venue's, upper case).
    pub fn code(self) -> &'static str {
        match self {
            FillStatus::Matched => "MATCHED",
            FillStatus::Mined => "MINED",
            FillStatus::Retrying => "RETRYING",
            FillStatus::Confirmed => "CONFIRMED",
            FillStatus::Failed => "FAILED",
        }
    }

    /// The venue's status text (any case); unknown text is read as provisional.
    pub fn parse(s: &str) -> FillStatus {
        match s.to_ascii_uppercase().as_str() {
            "MINED" => FillStatus::Mined,
            "RETRYING" => FillStatus::Retrying,
            "CONFIRMED" => FillStatus::Confirmed,
            "FAILED" => FillStatus::Failed,
            // Anything new is treated as not final: never counted as settled.
            _ => FillStatus::Matched,
        }
    }

    /// Whether the fill can still change (confirm or fail).
    pub fn provisional(self) -> bool {
        matches!(
            self,
            FillStatus::Matched | FillStatus::Mined | FillStatus::Retrying
        )
    }
}

/// What is written before an order is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    /// The trading wallet (the orders' maker), lower-case hex.
    pub wallet: String,
    /// Start of the window the order is for (Unix s).
    pub window_start: i64,
    /// The window's market slug.
    pub slug: String,
    /// `up` or `down`.
    pub side: String,
    /// The outcome token bought.
    pub token_id: String,
    /// pUSD offered (the order's `makerAmount`).
    pub usd: Decimal,
    /// The worst price accepted.
    pub price_cap: Decimal,
    /// The signed order's hash, which is the venue's order id.
    pub order_hash: String,
    /// The order's salt.
    pub salt: String,
    /// Wall time of the intent, Unix ms.
    pub created_ms: i64,
}

impl Intent {
    /// The idempotency key: one order per wallet and window, ever.
    pub fn key(&self) -> String {
        order_key(&self.wallet, self.window_start)
    }
}

/// The idempotency key of `wallet`'s order for the window starting at `window_start`.
pub fn order_key(wallet: &str, window_start: i64) -> String {
    format!("updown:{}:{window_start}", wallet.to_ascii_lowercase())
}

/// One recorded order.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRow {
    /// What was intended.
    pub intent: Intent,
    /// Where it stands.
    pub state: OrderState,
    /// The venue's order id once known.
    pub venue_order_id: Option<String>,
    /// The venue's last order status (`matched`, `live`, `CANCELED`…).
    pub venue_status: Option<String>,
    /// Why it is in this state (rejection text, reconciliation note).
    pub detail: Option<String>,
}

/// One venue trade of an order.
#[derive(Clone, Debug, PartialEq)]
pub struct FillRow {
    /// The venue's trade id.
    pub trade_id: String,
    /// Price of the trade.
    pub price: Decimal,
    /// Shares bought.
    pub shares: Decimal,
    /// Fee in pUSD.
    pub fee: Decimal,
    /// Settlement status.
    pub status: FillStatus,
}

/// Why the order journal could not be read or written; its message names the file and what
/// to do (the ledger's advice), and the venue refuses to trade on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// The durable record of live orders, written at every step of an order's life.
///
/// Implemented by the ledger (`ledger::orders::OrderStore`); the live venue owns one and
/// never trades when a write fails.
pub trait OrderJournal: std::fmt::Debug + Send {
    /// Write the intent before the order is sent; `false` if the window already has an
    /// order (whatever its state: a window is never traded twice).
    fn record_intent(&self, intent: &Intent) -> Result<bool, JournalError>;
    /// Move the order of `key` to `state`, keeping fields given as `None`.
    fn set_state(
        &self,
        key: &str,
        state: OrderState,
        venue_order_id: Option<&str>,
        venue_status: Option<&str>,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), JournalError>;
    /// Insert or update one venue trade of the order `key`.
    fn upsert_fill(&self, key: &str, fill: &FillRow) -> Result<(), JournalError>;
    /// The order of `wallet` for the window starting at `window_start`.
    fn order(&self, wallet: &str, window_start: i64) -> Result<Option<OrderRow>, JournalError>;
    /// Orders of `wallet` whose outcome the venue still has to tell (see the ledger's
    /// `OrderStore::unresolved`).
    fn unresolved(
        &self,
        wallet: &str,
        recheck_since_ms: i64,
    ) -> Result<Vec<OrderRow>, JournalError>;
    /// Every order of `wallet`, oldest first.
    fn all(&self, wallet: &str) -> Result<Vec<OrderRow>, JournalError>;
    /// The fills of the order `key`.
    fn fills(&self, key: &str) -> Result<Vec<FillRow>, JournalError>;
    /// Latch a trading halt where the session will find it.
    fn latch_halt(&self, halt: &Halt) -> Result<(), JournalError>;
}
