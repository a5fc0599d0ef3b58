//! The live venue: real orders on Polymarket's CLOB V2, placed through the official
//! `polymarket_client_sdk_v2` crate, with every step of each order's life on disk first.
//!
//! Quotes and settlement are the paper venue's ([`PaperVenue`]: live books, the market's own
//! resolution); what differs is `execute`, which sends a real order, and the care around it:
//!
//! - **Signing and auth** are the SDK's: L1 (EIP-712 `ClobAuth`) derives the API key, L2
//!   (HMAC) signs every trading request, orders are V2 EIP-712 structs in the V2 exchange
//!   domain, for the configured wallet kind ([`WalletKind`]: EOA, proxy, Gnosis Safe, deposit
//!   wallet). Amounts are the SDK's 6-decimal fixed point with its rounding, the price on
//!   the market's tick.
//! - **Entry** is a marketable BUY (FAK) of the chosen outcome with a price cap of
//!   `risk.max_entry_price` rounded down to the tick: it walks the asks and never pays more
//!   than the cap; what is not matched at once is cancelled by the venue. The pUSD sent is
//!   the approved stake, reduced so that stake + taker fee fits the wallet's balance.
//! - **Lifecycle** ([`super::orders`], written to the [`OrderJournal`] the ledger keeps):
//!   the intent (with the order's hash, which is the venue's order id) is committed before
//!   the order is sent; then the venue's answer,
//!   the fills (provisional until `CONFIRMED`, void if `FAILED`) and the final state. A
//!   window that has an order record is never sent a second order, whatever its state.
//! - **Reconciliation** ([`LiveVenue::connect`]): before trading, the wallet's balance, open
//!   orders, trades and the positions of its latest fills are loaded (no snapshot, no
//!   trading); every unfinished order in the ledger is looked up on the venue by its hash and
//!   trades; one the venue does not have is marked `not_sent` — and its window is not traded
//!   again; one of ours still resting is cancelled. An order the venue filled for the window
//!   the session is about to decide becomes that window's position
//!   ([`Venue::recovered_fill`]) instead of a new decision.
//! - **Errors**: 429 and 5xx are retried (3 attempts, exponential backoff; a retried order
//!   is the same signed order, which the venue refuses as a duplicate if it already has it);
//!   401/403 latch a halt; "not enough balance / allowance" is explained and latches a halt;
//!   `order_version_mismatch` is explained; a timeout or dropped answer is never read as
//!   "not filled": the order is looked up by its hash and trades.
//!
//! Credentials come only from the environment or a git-ignored `.env` ([`Credentials`]) and
//! are never printed: their `Debug` is redacted and no error message carries them.
//!
//! For crash tests, `UPDOWN_CRASH_AT` ([`CrashPoint`]) makes the process kill itself
//! (SIGKILL) at one step of the lifecycle, so the tests can prove a restart recovers.

use super::orders::{
    FillRow, FillStatus, Intent, JournalError, OrderJournal, OrderRow, OrderState,
};
use super::paper::PaperVenue;
use super::{Fill, PendingResolution, Quote, Resolution, Venue, VenueError};
use crate::domain::{Side, Window};
use crate::feed::Candle;
use crate::risk::Stake;
use crate::risk::{Halt, HaltReason};
use alloy::signers::Signer as _;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct as _};
use polymarket_client_sdk_v2 as sdk;
use rust_decimal::{Decimal, RoundingStrategy};
use sdk::auth::Normal;
use sdk::auth::state::Authenticated;
use sdk::clob::types::request::{BalanceAllowanceRequest, OrdersRequest, TradesRequest};
use sdk::clob::types::response::{OpenOrderResponse, TradeResponse};
use sdk::clob::types::{Amount, AssetType, OrderType, SignatureType, SignedOrder};
use sdk::types::{Address, U256};
use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the wallet's private key (hex).
pub const PRIVATE_KEY_VAR: &str = "POLYMARKET_PRIVATE_KEY";
/// Environment variable holding the funder (proxy, Safe or deposit wallet) address.
pub const FUNDER_VAR: &str = "POLYMARKET_FUNDER";
/// Environment variable holding the wallet kind (`eoa`, `proxy`, `gnosis-safe`,
/// `deposit-wallet`, or 0–3).
pub const SIGNATURE_TYPE_VAR: &str = "POLYMARKET_SIGNATURE_TYPE";
/// Test-only: the lifecycle step at which the process kills itself ([`CrashPoint`]).
pub const CRASH_VAR: &str = "UPDOWN_CRASH_AT";

/// Decimals of pUSD and outcome tokens on chain.
const UNIT_DP: u32 = 6;
/// How long orders marked `not_sent` are looked up again at startup (a day).
const RECHECK_NOT_SENT_MS: i64 = 86_400_000;
/// How many of the latest filled orders' positions startup compares with the wallet.
const RECENT_POSITIONS: usize = 5;

/// Why live trading could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveVenueError {
    /// Credentials are missing or malformed (the message never contains them).
    #[error("credentials: {0}")]
    Credentials(String),
    /// The venue refused the wallet's authentication.
    #[error("authentication with the CLOB failed: {0}")]
    Auth(String),
    /// The wallet's state on the venue could not be loaded: trading is refused.
    #[error("cannot load the wallet's state from the venue, so nothing will be traded: {0}")]
    Snapshot(String),
    /// The order journal (the ledger's order tables) failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Setting up the venue failed.
    #[error("{0}")]
    Setup(String),
}

/// How orders are signed for the wallet (Polymarket's signature types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalletKind {
    /// A plain key that holds the pUSD itself (type 0).
    Eoa,
    /// Polymarket's email/Magic proxy wallet (type 1).
    Proxy,
    /// A Gnosis Safe created by Polymarket for browser wallets (type 2).
    GnosisSafe,
    /// A deposit wallet (EIP-1271 smart-contract signatures, type 3).
    DepositWallet,
}

impl WalletKind {
    /// Parse `eoa`, `proxy`, `gnosis-safe`, `deposit-wallet` (or `poly1271`), or 0–3.
    pub fn parse(s: &str) -> Option<WalletKind> {
        Some(
            match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "0" | "eoa" => WalletKind::Eoa,
                "1" | "proxy" | "poly-proxy" => WalletKind::Proxy,
                "2" | "gnosis-safe" | "safe" | "poly-gnosis-safe" => WalletKind::GnosisSafe,
                "3" | "deposit-wallet" | "poly1271" | "poly-1271" => WalletKind::DepositWallet,
                _ => return None,
            },
        )
    }

    fn sdk(self) -> SignatureType {
        match self {
            WalletKind::Eoa => SignatureType::Eoa,
            WalletKind::Proxy => SignatureType::Proxy,
            WalletKind::GnosisSafe => SignatureType::GnosisSafe,
            WalletKind::DepositWallet => SignatureType::Poly1271,
        }
    }

    /// Name for people.
    pub fn label(self) -> &'static str {
        match self {
            WalletKind::Eoa => "EOA",
            WalletKind::Proxy => "Polymarket proxy",
            WalletKind::GnosisSafe => "Gnosis Safe",
            WalletKind::DepositWallet => "deposit wallet (EIP-1271)",
        }
    }
}

/// The wallet's secrets. `Debug` never shows the key.
#[derive(Clone)]
pub struct Credentials {
    private_key: String,
    funder: Option<String>,
    kind: WalletKind,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("private_key", &"<redacted>")
            .field("funder", &self.funder)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Credentials {
    /// From the environment, falling back to `KEY=VALUE` lines of `dotenv` (a git-ignored
    /// `.env`) for variables the environment does not set.
    pub fn from_env(dotenv: &Path) -> Result<Credentials, LiveVenueError> {
        let file = std::fs::read_to_string(dotenv).unwrap_or_default();
        let get = |name: &str| -> Option<String> {
            std::env::var(name)
                .ok()
                .or_else(|| dotenv_value(&file, name))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let private_key = get(PRIVATE_KEY_VAR).ok_or_else(|| {
            LiveVenueError::Credentials(format!(
                "{PRIVATE_KEY_VAR} is not set (in the environment or in {})",
                dotenv.display()
            ))
        })?;
        let kind = match get(SIGNATURE_TYPE_VAR) {
            None => WalletKind::Eoa,
            Some(s) => WalletKind::parse(&s).ok_or_else(|| {
                LiveVenueError::Credentials(format!(
                    "{SIGNATURE_TYPE_VAR}={s:?} is not one of eoa, proxy, gnosis-safe, deposit-wallet (or 0-3)"
                ))
            })?,
        };
        Credentials::new(private_key, get(FUNDER_VAR), kind)
    }

    /// From values; checks the key parses and the funder fits the wallet kind.
    pub fn new(
        private_key: String,
        funder: Option<String>,
        kind: WalletKind,
    ) -> Result<Credentials, LiveVenueError> {
        if PrivateKeySigner::from_str(private_key.trim()).is_err() {
            // The parser's message is not repeated: it could quote the input.
            return Err(LiveVenueError::Credentials(format!(
                "{PRIVATE_KEY_VAR} is not a valid hex private key"
            )));
        }
        if let Some(f) = &funder
            && Address::from_str(f.trim()).is_err()
        {
            return Err(LiveVenueError::Credentials(format!(
                "{FUNDER_VAR} is not an address"
            )));
        }
        if kind == WalletKind::Eoa && funder.is_some() {
            return Err(LiveVenueError::Credentials(format!(
                "{FUNDER_VAR} is set but the wallet kind is EOA; set {SIGNATURE_TYPE_VAR} to proxy, gnosis-safe or deposit-wallet"
            )));
        }
        if kind == WalletKind::DepositWallet && funder.is_none() {
            return Err(LiveVenueError::Credentials(format!(
                "a deposit wallet needs its address in {FUNDER_VAR}"
            )));
        }
        Ok(Credentials {
            private_key: private_key.trim().to_string(),
            funder: funder.map(|f| f.trim().to_string()),
            kind,
        })
    }

    /// The wallet kind.
    pub fn kind(&self) -> WalletKind {
        self.kind
    }
}

/// `NAME=value` from a `.env` text (quotes stripped, comments and `export ` allowed).
fn dotenv_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=')?;
        (k.trim() == name).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v)
                .to_string()
        })
    })
}

/// Where a test makes the process kill itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// An entry was approved; nothing written or sent yet.
    BeforeIntent,
    /// The intent is committed; the order has not been sent.
    AfterIntent,
    /// The venue has the order and answered; the answer is not recorded.
    AfterSend,
    /// The fills are recorded; the session has not recorded the position.
    AfterFill,
    /// The position is recorded; its window is about to be settled.
    BeforeSettle,
}

impl CrashPoint {
    /// Parse `before_intent`, `after_intent`, `after_send`, `after_fill`, `before_settle`.
    pub fn parse(s: &str) -> Option<CrashPoint> {
        Some(match s.trim() {
            "before_intent" => CrashPoint::BeforeIntent,
            "after_intent" => CrashPoint::AfterIntent,
            "after_send" => CrashPoint::AfterSend,
            "after_fill" => CrashPoint::AfterFill,
            "before_settle" => CrashPoint::BeforeSettle,
            _ => return None,
        })
    }

    /// From [`CRASH_VAR`], in a build with the `crash-points` feature (the tests'); always
    /// `None` otherwise, whatever the environment says.
    pub fn from_env() -> Option<CrashPoint> {
        if !Self::available() {
            return None;
        }
        std::env::var(CRASH_VAR)
            .ok()
            .and_then(|s| CrashPoint::parse(&s))
    }

    /// Whether this build has crash points at all (the `crash-points` feature).
    pub fn available() -> bool {
        cfg!(feature = "crash-points")
    }
}

/// Settings of live trading.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveTradingConfig {
    /// CLOB host as the SDK wants it, ending in `/` (`https://clob.polymarket.com/`).
    pub host: String,
    /// Chain of the EIP-712 domains (137, Polygon).
    pub chain_id: u64,
    /// The worst price an entry may fill at (`risk.max_entry_price`).
    pub max_entry_price: Decimal,
    /// Timeout of one request to the CLOB.
    pub request_timeout: Duration,
    /// Attempts for 429/5xx answers, the first included (3).
    pub attempts: u32,
    /// Delay before the second attempt, doubled for each further one.
    pub backoff: Duration,
    /// The lifecycle step at which to crash (tests only).
    pub crash_at: Option<CrashPoint>,
}

impl LiveTradingConfig {
    /// Defaults for the CLOB at `clob_rest` (the `[live] clob_rest` URL).
    pub fn new(clob_rest: &str, max_entry_price: Decimal) -> LiveTradingConfig {
        let host = if clob_rest.ends_with('/') {
            clob_rest.to_string()
        } else {
            format!("{clob_rest}/")
        };
        LiveTradingConfig {
            host,
            chain_id: sdk::POLYGON,
            max_entry_price,
            request_timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(250),
            crash_at: None,
        }
    }
}

/// The wallet as the venue sees it, shown before the first order.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSnapshot {
    /// The orders' maker (funder, or the signer for an EOA).
    pub wallet: String,
    /// The signing key's address.
    pub signer: String,
    /// How orders are signed.
    pub kind: WalletKind,
    /// pUSD balance.
    pub balance: Decimal,
    /// Whether any exchange allowance is set.
    pub allowance_ok: bool,
    /// Open orders of the wallet on the venue.
    pub open_orders: usize,
    /// What startup reconciliation found and did.
    pub notes: Vec<String>,
}

/// A failed CLOB call, classified for the error policy.
#[derive(Clone, Debug, PartialEq)]
enum CallError {
    /// An HTTP error answer.
    Status { code: u16, message: String },
    /// No answer in time, or the connection failed: the outcome is unknown.
    NoAnswer(String),
    /// Anything else (validation in the SDK, decoding).
    Other(String),
}

impl CallError {
    fn retryable(&self) -> bool {
        matches!(self, CallError::Status { code, .. } if *code == 429 || *code >= 500)
    }

    fn not_found(&self) -> bool {
        matches!(self, CallError::Status { code: 404, .. })
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            CallError::NoAnswer(m) => write!(f, "no answer: {m}"),
            CallError::Other(m) => write!(f, "{m}"),
        }
    }
}

fn classify(e: &sdk::error::Error) -> CallError {
    if let Some(s) = e.downcast_ref::<sdk::error::Status>() {
        return CallError::Status {
            code: s.status_code.as_u16(),
            message: s.message.chars().take(300).collect(),
        };
    }
    if let Some(r) = e.downcast_ref::<reqwest::Error>() {
        if r.is_timeout() || r.is_connect() || r.is_request() || r.is_body() {
            return CallError::NoAnswer(r.to_string());
        }
        if r.is_decode() {
            return CallError::Other(format!("unreadable answer: {r}"));
        }
        return CallError::NoAnswer(r.to_string());
    }
    CallError::Other(e.to_string())
}

/// What the venue's error text means for people, and whether it halts trading.
fn explain(message: &str) -> Option<(&'static str, String)> {
    let m = message.to_ascii_lowercase();
    if m.contains("not enough balance") || m.contains("allowance") {
        Some((
            "venue_balance",
            format!(
                "the venue says the wallet lacks pUSD or its allowance ({message}): fund the \
                 wallet with pUSD and approve it to the V2 exchange, then call \
                 /balance-allowance/update; trading halted"
            ),
        ))
    } else if m.contains("order_version_mismatch") || m.contains("invalid order version") {
        Some((
            "order_version",
            format!(
                "the CLOB's order protocol version changed (order_version_mismatch): the order \
                 was signed for an older exchange version and refused, nothing was placed; the \
                 SDK re-reads the version for the next order — if this repeats, update updown \
                 ({message})"
            ),
        ))
    } else {
        None
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

type Client = sdk::clob::Client<Authenticated<Normal>>;

/// The authenticated CLOB connection; cheap to clone (the halt path keeps one).
#[derive(Clone)]
pub struct Trader {
    rt: Arc<tokio::runtime::Runtime>,
    client: Client,
    signer: PrivateKeySigner,
    cfg: LiveTradingConfig,
    wallet: String,
    kind: WalletKind,
    funder: Option<Address>,
}

impl std::fmt::Debug for Trader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trader")
            .field("wallet", &self.wallet)
            .field("host", &self.cfg.host)
            .finish()
    }
}

impl Trader {
    /// Derive the API key (L1) and authenticate (L2).
    pub fn connect(creds: &Credentials, cfg: LiveTradingConfig) -> Result<Trader, LiveVenueError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("clob-orders")
            .enable_all()
            .build()
            .map_err(|e| LiveVenueError::Setup(format!("cannot start the order runtime: {e}")))?;
        let signer = PrivateKeySigner::from_str(&creds.private_key)
            .map_err(|_| {
                LiveVenueError::Credentials(format!("{PRIVATE_KEY_VAR} is not a valid key"))
            })?
            .with_chain_id(Some(cfg.chain_id));
        let funder = match &creds.funder {
            Some(f) => Some(Address::from_str(f).map_err(|_| {
                LiveVenueError::Credentials(format!("{FUNDER_VAR} is not an address"))
            })?),
            None => None,
        };
        let client = sdk::clob::Client::new(&cfg.host, sdk::clob::Config::default())
            .map_err(|e| LiveVenueError::Setup(format!("CLOB client for {}: {e}", cfg.host)))?;
        let timeout = cfg.request_timeout * 3;
        let signer_ref = signer.clone();
        let kind = creds.kind;
        let client = rt
            .block_on(async move {
                let mut b = client
                    .authentication_builder(&signer_ref)
                    .signature_type(kind.sdk());
                if let Some(f) = funder {
                    b = b.funder(f);
                }
                tokio::time::timeout(timeout, b.authenticate()).await
            })
            .map_err(|_| LiveVenueError::Auth(format!("no answer within {timeout:?}")))?
            .map_err(|e| LiveVenueError::Auth(classify(&e).to_string()))?;
        let wallet = format!("{:#x}", funder.unwrap_or(signer.address()));
        Ok(Trader {
            rt: Arc::new(rt),
            client,
            signer,
            cfg,
            wallet,
            kind,
            funder,
        })
    }

    /// A fresh SDK client with the same API key: its caches (the protocol version above
    /// all) are read again from the venue.
    fn refresh(&mut self) -> Result<(), CallError> {
        let client = sdk::clob::Client::new(&self.cfg.host, sdk::clob::Config::default())
            .map_err(|e| CallError::Other(e.to_string()))?;
        let mut b = client
            .authentication_builder(&self.signer)
            .credentials(self.client.credentials().clone())
            .signature_type(self.kind.sdk());
        if let Some(f) = self.funder {
            b = b.funder(f);
        }
        self.client = self.block(b.authenticate())?;
        Ok(())
    }

    /// The orders' maker, lower-case hex.
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    fn block<T>(
        &self,
        fut: impl Future<Output = Result<T, sdk::error::Error>>,
    ) -> Result<T, CallError> {
        let timeout = self.cfg.request_timeout;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(classify(&e)),
                Err(_) => Err(CallError::NoAnswer(format!("no answer within {timeout:?}"))),
            }
        })
    }

    /// `f` with the retry policy: 429 and 5xx retried with exponential backoff; reads are
    /// also retried when no answer came (they change nothing).
    fn retried<T, Fut>(&self, read: bool, mut f: impl FnMut() -> Fut) -> Result<T, CallError>
    where
        Fut: Future<Output = Result<T, sdk::error::Error>>,
    {
        let mut delay = self.cfg.backoff;
        let mut attempt = 1;
        loop {
            match self.block(f()) {
                Ok(v) => return Ok(v),
                Err(e)
                    if attempt < self.cfg.attempts
                        && (e.retryable() || (read && matches!(e, CallError::NoAnswer(_)))) =>
                {
                    tracing::warn!(
                        target: "updown::orders",
                        "CLOB call failed ({e}); attempt {} of {} in {delay:?}",
                        attempt + 1,
                        self.cfg.attempts
                    );
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// pUSD balance and whether an allowance is set.
    fn balance(&self) -> Result<(Decimal, bool), CallError> {
        let r = self.retried(true, || {
            self.client.balance_allowance(
                BalanceAllowanceRequest::builder()
                    .asset_type(AssetType::Collateral)
                    .build(),
            )
        })?;
        // The CLOB answers in 6-decimal base units.
        let balance = r.balance / Decimal::from(10u64.pow(UNIT_DP));
        let allowance_ok = r.allowances.is_empty()
            || r.allowances
                .values()
                .any(|a| a.trim() != "0" && !a.trim().is_empty());
        Ok((balance, allowance_ok))
    }

    /// Shares of `token` the wallet holds.
    fn position(&self, token: U256) -> Result<Decimal, CallError> {
        let r = self.retried(true, || {
            self.client.balance_allowance(
                BalanceAllowanceRequest::builder()
                    .asset_type(AssetType::Conditional)
                    .token_id(token)
                    .build(),
            )
        })?;
        Ok(r.balance / Decimal::from(10u64.pow(UNIT_DP)))
    }

    fn open_orders(&self, asset: Option<U256>) -> Result<Vec<OpenOrderResponse>, CallError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let req = match asset {
                Some(a) => OrdersRequest::builder().asset_id(a).build(),
                None => OrdersRequest::builder().build(),
            };
            let c = cursor.clone();
            let page = self.retried(true, || self.client.orders(&req, c.clone()))?;
            out.extend(page.data);
            if page.next_cursor.is_empty() || page.next_cursor == "LTE=" || out.len() > 10_000 {
                return Ok(out);
            }
            cursor = Some(page.next_cursor);
        }
    }

    fn trades(&self, asset: Option<U256>) -> Result<Vec<TradeResponse>, CallError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let req = match asset {
                Some(a) => TradesRequest::builder().asset_id(a).build(),
                None => TradesRequest::builder().build(),
            };
            let c = cursor.clone();
            let page = self.retried(true, || self.client.trades(&req, c.clone()))?;
            out.extend(page.data);
            if page.next_cursor.is_empty() || page.next_cursor == "LTE=" || out.len() > 10_000 {
                return Ok(out);
            }
            cursor = Some(page.next_cursor);
        }
    }

    /// The order `id`, `None` when the venue has no such order.
    fn order(&self, id: &str) -> Result<Option<OpenOrderResponse>, CallError> {
        match self.retried(true, || self.client.order(id)) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Cancel every open order of the wallet (a halt).
    pub fn cancel_all(&self) -> Result<usize, String> {
        self.retried(false, || self.client.cancel_all_orders())
            .map(|r| r.canceled.len())
            .map_err(|e| e.to_string())
    }

    /// Build and sign a marketable BUY of `usd` pUSD of `token` capped at `cap`.
    fn sign_buy(&self, token: U256, usd: Decimal, cap: Decimal) -> Result<SignedOrder, CallError> {
        let amount = Amount::usdc(usd).map_err(|e| CallError::Other(e.to_string()))?;
        let signable = self.block(
            self.client
                .market_order()
                .token_id(token)
                .side(sdk::clob::types::Side::Buy)
                .amount(amount)
                .price(cap)
                .order_type(OrderType::FAK)
                .build(),
        )?;
        self.block(self.client.sign(&self.signer, signable))
    }

    /// The order's hash in the V2 exchange domain it was signed for (the neg-risk exchange
    /// for a neg-risk market, as the SDK chose): the id the venue gives the order.
    fn order_hash(&self, order: &SignedOrder) -> Option<String> {
        let sdk::clob::types::OrderPayload::V2(p) = &order.payload else {
            return None;
        };
        // Cached by the SDK when it signed; no request.
        let neg_risk = self
            .block(self.client.neg_risk(p.order.tokenId))
            .ok()?
            .neg_risk;
        let exchange = sdk::contract_config(self.cfg.chain_id, neg_risk)?.exchange_v2?;
        let domain = Eip712Domain {
            name: Some(Cow::Borrowed("Polymarket CTF Exchange")),
            version: Some(Cow::Borrowed("2")),
            chain_id: Some(U256::from(self.cfg.chain_id)),
            verifying_contract: Some(exchange),
            salt: None,
        };
        Some(format!("{:#x}", p.order.eip712_signing_hash(&domain)))
    }

    /// Post `order`, retrying 429/5xx with the same signed order.
    fn post(
        &self,
        order: &SignedOrder,
    ) -> Result<sdk::clob::types::response::PostOrderResponse, CallError> {
        self.retried(false, || self.client.post_order(resend(order)))
    }
}

/// A copy of a signed order for a retry: the same salt, hash and signature.
fn resend(o: &SignedOrder) -> SignedOrder {
    SignedOrder::builder()
        .payload(o.payload.clone())
        .signature(o.signature.clone())
        .order_type(o.order_type.clone())
        .owner(o.owner)
        .maybe_post_only(o.post_only)
        .maybe_defer_exec(o.defer_exec)
        .build()
}

/// The live venue: the paper venue's quotes and settlement, real orders.
pub struct LiveVenue {
    paper: PaperVenue,
    trader: Trader,
    store: Box<dyn OrderJournal>,
    crash_at: Option<CrashPoint>,
}

impl std::fmt::Debug for LiveVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveVenue")
            .field("trader", &self.trader)
            .field("store", &self.store)
            .finish()
    }
}

impl LiveVenue {
    /// Authenticate, load the wallet's state from the venue, and reconcile the orders in
    /// `store` (the ledger's order tables) with it. Fails (and nothing is traded) when the
    /// venue's state cannot be loaded.
    pub fn connect(
        paper: PaperVenue,
        creds: &Credentials,
        cfg: LiveTradingConfig,
        store: Box<dyn OrderJournal>,
    ) -> Result<(LiveVenue, AccountSnapshot), LiveVenueError> {
        let crash_at = cfg.crash_at;
        let trader = Trader::connect(creds, cfg)?;
        let venue = LiveVenue {
            paper,
            trader,
            store,
            crash_at,
        };
        let snapshot = venue.reconcile()?;
        Ok((venue, snapshot))
    }

    /// Orders that filled on the venue for windows in `decided` that the session did not
    /// book (`booked`): their answer was lost and the session moved on. They are reported,
    /// never booked late; the trader has to look at the wallet.
    pub fn unbooked(
        &self,
        decided: &[i64],
        booked: &std::collections::HashSet<i64>,
    ) -> Result<Vec<String>, LiveVenueError> {
        let mut out = Vec::new();
        for row in self.store.all(self.trader.wallet())? {
            let w = row.intent.window_start;
            if !decided.contains(&w) || booked.contains(&w) {
                continue;
            }
            let fills = self.store.fills(&row.intent.key())?;
            if let Some(f) = fill_from(&fills, w, Side::Up) {
                out.push(format!(
                    "{}: order {} filled {} shares for ${} on the venue, but this session \
                     booked no position for the window (the order's answer was lost); it is \
                     not in the session's P&L — check the wallet",
                    row.intent.slug,
                    short(&row.intent.order_hash),
                    f.shares,
                    f.stake
                ));
            }
        }
        Ok(out)
    }

    /// A handle that can cancel the wallet's orders after the session ends (halts).
    pub fn trader(&self) -> Trader {
        self.trader.clone()
    }

    fn crash(&self, at: CrashPoint) {
        if self.crash_at == Some(at) {
            tracing::warn!(target: "updown::orders", "crash point {at:?} reached: killing the process (test)");
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            // SIGKILL cannot be caught; this is never reached.
            std::process::abort();
        }
    }

    /// Startup reconciliation: the venue's snapshot first (failing is fatal), then every
    /// unfinished order in the ledger brought to what the venue says.
    fn reconcile(&self) -> Result<AccountSnapshot, LiveVenueError> {
        let snap = |e: CallError| LiveVenueError::Snapshot(e.to_string());
        let (balance, allowance_ok) = self.trader.balance().map_err(snap)?;
        let open = self.trader.open_orders(None).map_err(snap)?;
        // Loaded so that a venue that cannot list trades refuses trading now rather than
        // at the first fill.
        let trades = self.trader.trades(None).map_err(snap)?;
        let mut notes = Vec::new();
        let wallet = self.trader.wallet().to_string();
        // `not_sent` orders of the last day are looked up again (see `unresolved`).
        for row in self
            .store
            .unresolved(&wallet, now_ms() - RECHECK_NOT_SENT_MS)?
        {
            let before = row.state;
            let after = self.settle_order(&row).map_err(|e| match e {
                VenueError::Unavailable(m) | VenueError::Rejected(m) | VenueError::NoOutcome(m) => {
                    LiveVenueError::Snapshot(m)
                }
            })?;
            if before == OrderState::NotSent && after == OrderState::NotSent {
                continue;
            }
            notes.push(format!(
                "{}: order {} was {} in the ledger, the venue says {}",
                row.intent.slug,
                short(&row.intent.order_hash),
                before.code(),
                after.code()
            ));
        }
        // Positions: the shares the wallet holds of the tokens our recent fills bought
        // (they stay until redeemed), against what the ledger recorded.
        let recent: Vec<OrderRow> = self
            .store
            .all(&wallet)?
            .into_iter()
            .filter(|r| r.state == OrderState::Filled)
            .rev()
            .take(RECENT_POSITIONS)
            .collect();
        for row in &recent {
            let Ok(token) = U256::from_str(&row.intent.token_id) else {
                continue;
            };
            let held = self.trader.position(token).map_err(snap)?;
            let fills = self.store.fills(&row.intent.key())?;
            let booked = fill_from(&fills, row.intent.window_start, Side::Up)
                .map_or(Decimal::ZERO, |f| f.shares);
            notes.push(format!(
                "{} {}: the wallet holds {held} shares, the ledger bought {booked}{}",
                row.intent.slug,
                row.intent.side,
                if held < booked {
                    " (fewer: redeemed, sold or failed on chain)"
                } else {
                    ""
                }
            ));
        }
        // Our own orders still resting on the venue belong to windows that are over or
        // being decided; an entry is a FAK, so one resting means something unexpected:
        // cancel it rather than leave it to fill later unseen.
        let ours: Vec<String> = self
            .store
            .all(&wallet)?
            .into_iter()
            .map(|r| r.intent.order_hash.to_ascii_lowercase())
            .collect();
        for o in &open {
            if ours.contains(&o.id.to_ascii_lowercase()) {
                match self.trader.block(self.trader.client.cancel_order(&o.id)) {
                    Ok(_) => notes.push(format!("cancelled our resting order {}", short(&o.id))),
                    Err(e) => {
                        return Err(LiveVenueError::Snapshot(format!(
                            "cannot cancel our resting order {}: {e}",
                            short(&o.id)
                        )));
                    }
                }
            } else {
                notes.push(format!(
                    "open order {} on the wallet was not placed by updown; left alone",
                    short(&o.id)
                ));
            }
        }
        tracing::info!(
            target: "updown::orders",
            "venue snapshot: wallet {wallet}, {balance} pUSD, {} open order(s), {} trade(s)",
            open.len(),
            trades.len()
        );
        Ok(AccountSnapshot {
            wallet,
            signer: format!("{:#x}", self.trader.signer.address()),
            kind: self.trader.kind,
            balance,
            allowance_ok,
            open_orders: open.len(),
            notes,
        })
    }

    /// Bring one recorded order to the venue's truth: find it by its hash (and its trades),
    /// record fills and state. An order the venue does not have is `not_sent`.
    fn settle_order(&self, row: &OrderRow) -> Result<OrderState, VenueError> {
        let key = row.intent.key();
        let id = row
            .venue_order_id
            .clone()
            .unwrap_or_else(|| row.intent.order_hash.clone());
        let order = self.trader.order(&id).map_err(unavailable)?;
        let fills = self.load_fills(&row.intent, &id)?;
        let state = match (&order, fills.is_empty()) {
            (_, false) => OrderState::Filled,
            (Some(o), true) => {
                // Matched but its trades not listed yet, or still resting: ask again.
                if is_live(&o.status) || o.size_matched > Decimal::ZERO {
                    OrderState::Submitted
                } else {
                    OrderState::Unfilled
                }
            }
            (None, true) => match row.state {
                // Already known to the venue once: keep what it last said.
                OrderState::Filled | OrderState::Unfilled | OrderState::Rejected => row.state,
                _ => OrderState::NotSent,
            },
        };
        let status = order.as_ref().map(|o| format!("{:?}", o.status));
        let detail = match state {
            OrderState::NotSent => Some(
                "the venue has no order with this hash and no trades for it: nothing was placed; the window is not traded again",
            ),
            _ => None,
        };
        let venue_id = order.as_ref().map(|o| o.id.as_str());
        self.store
            .set_state(&key, state, venue_id, status.as_deref(), detail, now_ms())
            .map_err(ledger_err)?;
        for f in &fills {
            self.store.upsert_fill(&key, f).map_err(ledger_err)?;
        }
        Ok(state)
    }

    /// The venue's trades of order `id` (as taker) on the intent's token.
    fn load_fills(&self, intent: &Intent, id: &str) -> Result<Vec<FillRow>, VenueError> {
        let token = U256::from_str(&intent.token_id)
            .map_err(|_| VenueError::Rejected(format!("bad token id {}", intent.token_id)))?;
        let trades = self.trader.trades(Some(token)).map_err(unavailable)?;
        Ok(trades
            .iter()
            .filter(|t| t.taker_order_id.eq_ignore_ascii_case(id))
            .map(|t| {
                let rate = t.fee_rate_bps / Decimal::from(10_000);
                FillRow {
                    trade_id: t.id.clone(),
                    price: t.price,
                    shares: t.size,
                    fee: super::fee(t.size, t.price, rate),
                    status: FillStatus::parse(&format!("{:?}", t.status)),
                }
            })
            .collect())
    }

    /// The session's [`Fill`] for the order of `row`: pUSD out (cost + fee), the average
    /// price, the shares held; `None` when nothing (or nothing that did not fail) matched.
    fn fill_of(&self, row: &OrderRow, side: Side) -> Result<Option<Fill>, VenueError> {
        let fills = self.store.fills(&row.intent.key()).map_err(ledger_err)?;
        Ok(fill_from(&fills, row.intent.window_start, side))
    }

    fn halt(&self, reason: HaltReason, detail: &str) {
        let h = Halt {
            reason,
            detail: detail.into(),
            at: now_ms() / 1000,
        };
        if let Err(e) = self.store.latch_halt(&h) {
            tracing::error!(target: "updown::orders", "cannot latch the halt: {e}");
        }
        tracing::error!(target: "updown::orders", "trading halted ({reason}): {detail}");
        match self.trader.cancel_all() {
            Ok(n) => tracing::warn!(target: "updown::orders", "halt: {n} open order(s) cancelled"),
            Err(e) => {
                tracing::error!(target: "updown::orders", "halt: cancelling open orders failed: {e}")
            }
        }
    }

    /// The order for `window` already on record: brought up to date, its fill returned if
    /// it has one; never sent again.
    fn existing(&self, row: OrderRow, side: Side) -> Result<Fill, VenueError> {
        let state = if row.state.needs_venue() {
            self.settle_order(&row)?
        } else {
            row.state
        };
        if let Some(f) = self.fill_of(&row, side)? {
            return Ok(f);
        }
        Err(VenueError::Rejected(format!(
            "{}: this window already has an order (state {}); a second one is never sent",
            row.intent.slug,
            state.code()
        )))
    }

    fn place(&mut self, window: &Window, stake: &Stake, quote: &Quote) -> Result<Fill, VenueError> {
        let wallet = self.trader.wallet().to_string();
        let side = stake.side();
        if let Some(row) = self
            .store
            .order(&wallet, window.start)
            .map_err(ledger_err)?
        {
            return self.existing(row, side);
        }
        self.crash(CrashPoint::BeforeIntent);
        let info = self.paper.market(window)?;
        let token_id = info.token(side).to_string();
        let token = U256::from_str(&token_id)
            .map_err(|_| VenueError::Rejected(format!("{}: bad token id", info.slug)))?;
        let tick = if quote.tick_size > Decimal::ZERO {
            quote.tick_size
        } else {
            Decimal::new(1, 2)
        };
        let cap_limit = self.trader.cfg.max_entry_price.min(Decimal::ONE - tick);
        let cap = (cap_limit / tick).floor() * tick;
        if cap < tick || stake.price() > cap {
            return Err(VenueError::Rejected(format!(
                "{} {side}: ask {} is above the price cap {cap} (risk.max_entry_price); not sent",
                info.slug,
                stake.price()
            )));
        }
        // Fee-aware sizing: fee per pUSD spent is rate × (1 − p), largest at the lowest
        // price that can fill (the ask), so stake × (1 + rate × (1 − ask)) ≤ balance
        // keeps stake + fee within the wallet.
        let (balance, _) = self.trader.balance().map_err(|e| self.call_failed(e))?;
        let low = stake.price().min(cap);
        let room = balance / (Decimal::ONE + quote.fee_rate * (Decimal::ONE - low));
        let usd = stake
            .usd()
            .min(room)
            .round_dp_with_strategy(2, RoundingStrategy::ToZero);
        if usd <= Decimal::ZERO || usd / cap < quote.min_order_shares {
            return Err(VenueError::Rejected(format!(
                "{} {side}: ${usd} (stake ${}, wallet {balance} pUSD) buys under the market's \
                 minimum of {} shares at the cap {cap}; not sent",
                info.slug,
                stake.usd(),
                quote.min_order_shares
            )));
        }
        let signed = self.trader.sign_buy(token, usd, cap).map_err(|e| {
            VenueError::Rejected(format!("{} {side}: order not built: {e}", info.slug))
        })?;
        let v2 = matches!(signed.payload, sdk::clob::types::OrderPayload::V2(_));
        let hash = if v2 {
            self.trader.order_hash(&signed)
        } else {
            None
        };
        if v2 && hash.is_none() {
            return Err(VenueError::Rejected(format!(
                "{} {side}: the order's hash (its venue id) cannot be computed, so it could \
                 not be found after a crash; not sent",
                info.slug
            )));
        }
        let Some(hash) = hash else {
            // The SDK signs for the version `/version` reports: anything but V2 would be
            // refused (order_version_mismatch), so it is not sent, and the version is read
            // again for the next order.
            if let Err(e) = self.trader.refresh() {
                tracing::warn!(target: "updown::orders", "CLOB client not refreshed: {e}");
            }
            let version = match &signed.payload {
                sdk::clob::types::OrderPayload::V1(_) => "1",
                _ => "3",
            };
            return Err(VenueError::Rejected(format!(
                "{} {side}: the CLOB reports order protocol version {version}, not 2: an order \
                 signed for it would be refused (order_version_mismatch) or is not the V2 \
                 exchange this bot trades; not sent, the version is read again for the next order",
                info.slug
            )));
        };
        let salt = match &signed.payload {
            sdk::clob::types::OrderPayload::V2(p) => p.order.salt.to_string(),
            _ => String::new(),
        };
        let intent = Intent {
            wallet: wallet.clone(),
            window_start: window.start,
            slug: info.slug.clone(),
            side: side.as_str().into(),
            token_id,
            usd,
            price_cap: cap,
            order_hash: hash.clone(),
            salt,
            created_ms: now_ms(),
        };
        if !self.store.record_intent(&intent).map_err(ledger_err)? {
            let row = self
                .store
                .order(&wallet, window.start)
                .map_err(ledger_err)?;
            return match row {
                Some(r) => self.existing(r, side),
                None => Err(VenueError::Unavailable("the order record vanished".into())),
            };
        }
        let key = intent.key();
        self.crash(CrashPoint::AfterIntent);
        tracing::info!(
            target: "updown::orders",
            "{} BUY {side}: ${usd} pUSD capped at {cap} (order {})",
            info.slug,
            short(&hash)
        );
        let answer = self.trader.post(&signed);
        if answer.is_ok() {
            self.crash(CrashPoint::AfterSend);
        }
        let row = |s: &Self| -> Result<OrderRow, VenueError> {
            s.store
                .order(&wallet, window.start)
                .map_err(ledger_err)?
                .ok_or_else(|| VenueError::Unavailable("the order record vanished".into()))
        };
        match answer {
            Ok(r) if r.success && r.error_msg.as_deref().unwrap_or("").is_empty() => {
                self.store
                    .set_state(
                        &key,
                        OrderState::Submitted,
                        Some(&r.order_id),
                        Some(&format!("{:?}", r.status)),
                        None,
                        now_ms(),
                    )
                    .map_err(ledger_err)?;
                if !r.order_id.eq_ignore_ascii_case(&hash) {
                    tracing::warn!(
                        target: "updown::orders",
                        "venue order id {} differs from the signed order's hash {}",
                        short(&r.order_id),
                        short(&hash)
                    );
                }
                // Its trades may be listed a moment after the answer: ask a few times.
                let mut delay = self.trader.cfg.backoff;
                let mut state = self.settle_order(&row(self)?);
                for _ in 1..self.trader.cfg.attempts {
                    if !matches!(state, Ok(OrderState::Submitted) | Err(_)) {
                        break;
                    }
                    std::thread::sleep(delay);
                    delay *= 2;
                    state = self.settle_order(&row(self)?);
                }
                match state {
                    Ok(OrderState::Submitted) | Err(_) => {
                        // Placed, but what matched cannot be known now: booking nothing
                        // could lose a position, so trading stops until a restart reconciles.
                        let why = match state {
                            Err(e) => e.to_string(),
                            _ => "matched but its trades are not listed".into(),
                        };
                        let detail = format!(
                            "{}: order {} was placed but its fills cannot be read ({why}); restart to reconcile",
                            info.slug,
                            short(&hash)
                        );
                        self.halt(HaltReason::OrderUnknown, &detail);
                        Err(VenueError::Unavailable(detail))
                    }
                    Ok(state) => self.after_settle_order(&row(self)?, state, side),
                }
            }
            Ok(r) => {
                let msg = r.error_msg.unwrap_or_else(|| format!("{:?}", r.status));
                self.refused(&key, &info.slug, side, 400, &msg)
            }
            Err(CallError::Status { code, message })
                if !(code == 429 || code >= 500 || message.contains("already exists")) =>
            {
                self.refused(&key, &info.slug, side, code, &message)
            }
            Err(e) => {
                // No answer, a duplicate, or 429/5xx after every attempt: the venue may have
                // the order. Never read as "not filled": look it up.
                tracing::warn!(
                    target: "updown::orders",
                    "{} order {}: {e}; looking it up on the venue",
                    info.slug,
                    short(&hash)
                );
                self.store
                    .set_state(
                        &key,
                        OrderState::Unknown,
                        None,
                        None,
                        Some(&e.to_string()),
                        now_ms(),
                    )
                    .map_err(ledger_err)?;
                let mut delay = self.trader.cfg.backoff;
                let mut last = OrderState::Unknown;
                for _ in 0..self.trader.cfg.attempts {
                    match self.settle_order(&row(self)?) {
                        Ok(OrderState::NotSent) => {
                            // Give an order still in flight time to land before the next look.
                            last = OrderState::NotSent;
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                        Ok(s) => return self.after_settle_order(&row(self)?, s, side),
                        Err(err) => {
                            tracing::warn!(target: "updown::orders", "lookup failed: {err}");
                            last = OrderState::Unknown;
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                    }
                }
                if last == OrderState::NotSent {
                    Err(VenueError::Rejected(format!(
                        "{} {side}: {e}; the venue has no such order after {} checks: nothing \
                         placed, the window is not retried",
                        info.slug, self.trader.cfg.attempts
                    )))
                } else {
                    // Still unknown: stop trading until a restart's reconciliation knows.
                    self.store
                        .set_state(&key, OrderState::Unknown, None, None, None, now_ms())
                        .map_err(ledger_err)?;
                    let detail = format!(
                        "{}: order {} sent but its fate is unknown ({e}); restart to reconcile",
                        info.slug,
                        short(&hash)
                    );
                    self.halt(HaltReason::OrderUnknown, &detail);
                    Err(VenueError::Unavailable(detail))
                }
            }
        }
    }

    /// A failed read before sending: 401/403 halt (the credentials are refused), anything
    /// else leaves the window untraded.
    fn call_failed(&self, e: CallError) -> VenueError {
        if let CallError::Status {
            code: 401 | 403,
            message,
        } = &e
        {
            self.halt(
                HaltReason::Auth,
                &format!(
                    "the CLOB refused the wallet's credentials ({e}); check the key, the wallet \
                     kind and funder, and the region ({message})"
                ),
            );
        }
        unavailable(e)
    }

    fn after_settle_order(
        &self,
        row: &OrderRow,
        state: OrderState,
        side: Side,
    ) -> Result<Fill, VenueError> {
        match self.fill_of(row, side)? {
            Some(f) => {
                tracing::info!(
                    target: "updown::orders",
                    "{} filled {} shares at avg {} for ${} incl. fee ${} (order {}, provisional until CONFIRMED)",
                    row.intent.slug,
                    f.shares,
                    f.price,
                    f.stake,
                    f.fee,
                    short(&row.intent.order_hash)
                );
                self.crash(CrashPoint::AfterFill);
                Ok(f)
            }
            None => Err(VenueError::Rejected(format!(
                "{}: order {} matched nothing under the cap {} ({}); no position",
                row.intent.slug,
                short(&row.intent.order_hash),
                row.intent.price_cap,
                state.code()
            ))),
        }
    }

    fn refused(
        &self,
        key: &str,
        slug: &str,
        side: Side,
        code: u16,
        message: &str,
    ) -> Result<Fill, VenueError> {
        let explained = explain(message);
        let detail = explained
            .as_ref()
            .map_or_else(|| format!("HTTP {code}: {message}"), |(_, d)| d.clone());
        self.store
            .set_state(
                key,
                OrderState::Rejected,
                None,
                None,
                Some(&detail),
                now_ms(),
            )
            .map_err(ledger_err)?;
        if code == 401 || code == 403 {
            self.halt(
                HaltReason::Auth,
                &format!(
                    "the CLOB refused the wallet's credentials (HTTP {code}: {message}); check the \
                     key, the wallet kind and funder, and the region"
                ),
            );
        } else if let Some(("venue_balance", d)) = &explained {
            self.halt(HaltReason::VenueBalance, d);
        }
        Err(VenueError::Rejected(format!(
            "{slug} {side}: the venue refused the order, nothing placed: {detail}"
        )))
    }
}

/// The session's [`Fill`] from an order's trades: what matched and did not fail, partial
/// fills included. `None` when nothing counts.
fn fill_from(fills: &[FillRow], window_start: i64, side: Side) -> Option<Fill> {
    let live: Vec<&FillRow> = fills
        .iter()
        .filter(|f| f.status != FillStatus::Failed)
        .collect();
    let shares: Decimal = live.iter().map(|f| f.shares).sum();
    if shares <= Decimal::ZERO {
        return None;
    }
    let cost: Decimal = live.iter().map(|f| f.shares * f.price).sum();
    let fee: Decimal = live.iter().map(|f| f.fee).sum();
    Some(Fill {
        window_start,
        side,
        // The taker fee is paid in pUSD on top of the cost: the stake is what left the
        // wallet, so a settlement's P&L (payout − stake) is the wallet's.
        stake: (cost + fee).round_dp_with_strategy(UNIT_DP, RoundingStrategy::AwayFromZero),
        price: (cost / shares)
            .round_dp_with_strategy(UNIT_DP, RoundingStrategy::MidpointAwayFromZero),
        shares: shares.round_dp_with_strategy(UNIT_DP, RoundingStrategy::ToZero),
        fee,
    })
}

fn is_live(status: &sdk::clob::types::OrderStatusType) -> bool {
    matches!(
        status,
        sdk::clob::types::OrderStatusType::Live | sdk::clob::types::OrderStatusType::Delayed
    )
}

fn short(id: &str) -> String {
    if id.len() > 14 {
        format!("{}…{}", &id[..10], &id[id.len() - 4..])
    } else {
        id.to_string()
    }
}

fn unavailable(e: CallError) -> VenueError {
    VenueError::Unavailable(e.to_string())
}

fn ledger_err(e: JournalError) -> VenueError {
    VenueError::Unavailable(format!("order ledger: {e}"))
}

impl Venue for LiveVenue {
    fn quote(&mut self, window: &Window) -> Result<Quote, VenueError> {
        self.paper.quote(window)
    }

    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        quote: &Quote,
    ) -> Result<Fill, VenueError> {
        self.place(window, stake, quote)
    }

    fn resolve(
        &mut self,
        window: &Window,
        history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError> {
        let wallet = self.trader.wallet().to_string();
        if let Some(row) = self
            .store
            .order(&wallet, window.start)
            .map_err(ledger_err)?
        {
            self.crash(CrashPoint::BeforeSettle);
            let mut fills = self.store.fills(&row.intent.key()).map_err(ledger_err)?;
            if fills.iter().any(|f| f.status.provisional()) {
                // Ask the venue how the trades settled on chain.
                match self.load_fills(
                    &row.intent,
                    &row.venue_order_id
                        .clone()
                        .unwrap_or(row.intent.order_hash.clone()),
                ) {
                    Ok(fresh) => {
                        for f in &fresh {
                            self.store
                                .upsert_fill(&row.intent.key(), f)
                                .map_err(ledger_err)?;
                        }
                        fills = self.store.fills(&row.intent.key()).map_err(ledger_err)?;
                    }
                    Err(e) => {
                        tracing::warn!(target: "updown::orders", "{}: trades not refreshed: {e}", window.slug)
                    }
                }
            }
            if !fills.is_empty() && fills.iter().all(|f| f.status == FillStatus::Failed) {
                return Err(VenueError::NoOutcome(format!(
                    "{}: the order's trades FAILED on chain; the fill is void and its pUSD returned",
                    window.slug
                )));
            }
            if fills.iter().any(|f| f.status.provisional()) {
                // Not settled on chain yet: the position is not settled either.
                return Ok(None);
            }
        }
        self.paper.resolve(window, history)
    }

    fn pending_resolution(&self) -> PendingResolution {
        self.paper.pending_resolution()
    }

    fn recovered_fill(&mut self, window: &Window) -> Result<Option<Fill>, VenueError> {
        let wallet = self.trader.wallet().to_string();
        let Some(row) = self
            .store
            .order(&wallet, window.start)
            .map_err(ledger_err)?
        else {
            return Ok(None);
        };
        if row.state.needs_venue() {
            self.settle_order(&row)?;
        }
        let side = if row.intent.side == Side::Down.as_str() {
            Side::Down
        } else {
            Side::Up
        };
        self.fill_of(&row, side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anvil's public account 0: a well-known test key, never a real secret.
    const ANVIL_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn wallet_kinds_parse_names_and_numbers() {
        assert_eq!(WalletKind::parse("EOA"), Some(WalletKind::Eoa));
        assert_eq!(WalletKind::parse("1"), Some(WalletKind::Proxy));
        assert_eq!(
            WalletKind::parse("gnosis_safe"),
            Some(WalletKind::GnosisSafe)
        );
        assert_eq!(
            WalletKind::parse("deposit-wallet"),
            Some(WalletKind::DepositWallet)
        );
        assert_eq!(WalletKind::parse("4"), None);
        assert_eq!(WalletKind::DepositWallet.sdk(), SignatureType::Poly1271);
    }

    #[test]
    fn credentials_are_checked_and_never_shown() {
        let c = Credentials::new(ANVIL_KEY.into(), None, WalletKind::Eoa).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("ac0974bec39a17e36ba4"), "{shown}");
        let bad = Credentials::new("0xnot-a-key".into(), None, WalletKind::Eoa).unwrap_err();
        assert!(!bad.to_string().contains("not-a-key"), "{bad}");
        assert!(Credentials::new(ANVIL_KEY.into(), None, WalletKind::DepositWallet).is_err());
        assert!(
            Credentials::new(
                ANVIL_KEY.into(),
                Some("0x995c9b1f779c04e65AF8ea3360F96c43b5e62316".into()),
                WalletKind::Eoa
            )
            .is_err()
        );
    }

    #[test]
    fn dotenv_lines_are_read_with_quotes_and_exports() {
        let text =
            "# c\nexport POLYMARKET_FUNDER=\"0xabc\"\nPOLYMARKET_SIGNATURE_TYPE='proxy'\nX=1";
        assert_eq!(dotenv_value(text, FUNDER_VAR).as_deref(), Some("0xabc"));
        assert_eq!(
            dotenv_value(text, SIGNATURE_TYPE_VAR).as_deref(),
            Some("proxy")
        );
        assert_eq!(dotenv_value(text, PRIVATE_KEY_VAR), None);
    }

    #[test]
    fn venue_errors_are_explained() {
        let (code, d) =
            explain("not enough balance / allowance: the balance is not enough").unwrap();
        assert_eq!(code, "venue_balance");
        assert!(d.contains("approve"));
        let (code, d) = explain("order_version_mismatch").unwrap();
        assert_eq!(code, "order_version");
        assert!(d.contains("nothing was placed"));
        assert!(explain("invalid signature").is_none());
        assert!(
            CallError::Status {
                code: 429,
                message: String::new()
            }
            .retryable()
        );
        assert!(
            CallError::Status {
                code: 503,
                message: String::new()
            }
            .retryable()
        );
        assert!(
            !CallError::Status {
                code: 401,
                message: String::new()
            }
            .retryable()
        );
        assert!(!CallError::NoAnswer(String::new()).retryable());
    }

    fn fr(id: &str, price: Decimal, shares: Decimal, fee: Decimal, status: FillStatus) -> FillRow {
        FillRow {
            trade_id: id.into(),
            price,
            shares,
            fee,
            status,
        }
    }

    #[test]
    fn a_partial_fill_over_two_levels_is_what_matched_and_failed_trades_do_not_count() {
        use rust_decimal_macros::dec;
        let fills = [
            fr("a", dec!(0.50), dec!(4), dec!(0.07), FillStatus::Matched),
            fr(
                "b",
                dec!(0.52),
                dec!(2.5),
                dec!(0.04368),
                FillStatus::Confirmed,
            ),
            fr("c", dec!(0.53), dec!(3), dec!(0.05), FillStatus::Failed),
        ];
        let f = fill_from(&fills, 300, Side::Up).unwrap();
        assert_eq!(f.shares, dec!(6.5));
        // cost 2.00 + 1.30, plus the fees, is what left the wallet.
        assert_eq!(f.stake, dec!(3.41368));
        assert_eq!(f.fee, dec!(0.11368));
        assert_eq!(f.price, dec!(0.507692));
        assert_eq!(f.side, Side::Up);
        // Everything failed: no position.
        let failed = [fr("c", dec!(0.53), dec!(3), dec!(0.05), FillStatus::Failed)];
        assert!(fill_from(&failed, 300, Side::Up).is_none());
        assert!(fill_from(&[], 300, Side::Up).is_none());
    }

    #[test]
    fn crash_points_parse() {
        assert_eq!(
            CrashPoint::parse("after_intent"),
            Some(CrashPoint::AfterIntent)
        );
        assert_eq!(
            CrashPoint::parse("before_settle"),
            Some(CrashPoint::BeforeSettle)
        );
        assert_eq!(CrashPoint::parse("later"), None);
    }

    #[test]
    fn trading_host_ends_in_a_slash() {
        let c = LiveTradingConfig::new("http://127.0.0.1:9/clob", Decimal::new(65, 2));
        assert_eq!(c.host, "http://127.0.0.1:9/clob/");
        assert_eq!(c.chain_id, 137);
        assert_eq!(c.attempts, 3);
    }
}
