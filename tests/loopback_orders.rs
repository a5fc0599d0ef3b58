//! The loopback venue's CLOB V2 trading endpoints, driven over a real socket by the official
//! SDK (`polymarket_client_sdk_v2` 0.9, `clob` feature) pointed at the loopback host: API key
//! creation and derivation (L1), L2 HMAC on every call, V2 EIP-712 orders for EOA, Safe and
//! deposit-wallet signers, marketable buys that match the served book, settlement, partial
//! fills, cancels, queries, and the refusals and faults a live venue must survive.
//!
//! Every key here is the public Anvil/Hardhat test key; nothing leaves 127.0.0.1.

use alloy::signers::Signer as _;
use alloy::signers::local::PrivateKeySigner;
use polymarket_client_sdk_v2::POLYGON;
use polymarket_client_sdk_v2::auth::state::Authenticated;
use polymarket_client_sdk_v2::auth::{Credentials, Normal, Uuid};
use polymarket_client_sdk_v2::clob::types::request::{
    BalanceAllowanceRequest, OrderBookSummaryRequest, OrdersRequest, TradesRequest,
};
use polymarket_client_sdk_v2::clob::types::{
    Amount, AssetType, OrderPayload, OrderStatusType, OrderType, Side, SignatureType, SignedOrder,
    TickSize, TradeStatusType,
};
use polymarket_client_sdk_v2::clob::{Client, Config};
use polymarket_client_sdk_v2::error::Status;
use polymarket_client_sdk_v2::types::{Address, Decimal, U256, dec};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;
use updown::loopback::auth::{ANVIL_ADDRESS, ANVIL_PRIVATE_KEY};
use updown::loopback::{
    DEFAULT_START_WINDOW, ExchangeConfig, LoopbackConfig, LoopbackVenue, OrderFault, Running,
    WalletConfig,
};

type Sdk = Client<Authenticated<Normal>>;

/// MATCHED → MINED at half, CONFIRMED (or FAILED) at the end; real time.
const SETTLE: Duration = Duration::from_millis(1_000);

fn venue_with(wallet: WalletConfig) -> Running {
    LoopbackVenue::start(LoopbackConfig {
        exchange: ExchangeConfig {
            wallet,
            settle_after: SETTLE,
            ..ExchangeConfig::default()
        },
        ..LoopbackConfig::default()
    })
    .expect("the loopback venue starts")
}

fn venue() -> Running {
    venue_with(WalletConfig::anvil(dec!(100)))
}

fn signer() -> PrivateKeySigner {
    PrivateKeySigner::from_str(ANVIL_PRIVATE_KEY)
        .expect("the Anvil key parses")
        .with_chain_id(Some(POLYGON))
}

/// The Up token of the first window (listed, not started: accepting orders).
fn up_token(v: &Running) -> U256 {
    let w = v.window(DEFAULT_START_WINDOW).expect("the first window");
    U256::from_str_radix(&w.up_token, 10).expect("a token id fits in U256")
}

async fn sdk(v: &Running, signer: &PrivateKeySigner) -> Sdk {
    Client::new(&v.urls().clob_sdk_host(), Config::default())
        .expect("a client for the loopback host")
        .authentication_builder(signer)
        .authenticate()
        .await
        .expect("L1 key creation and authentication")
}

/// The HTTP status and body of an SDK error.
fn status_of(e: &polymarket_client_sdk_v2::error::Error) -> (u16, String) {
    let s = e
        .downcast_ref::<Status>()
        .unwrap_or_else(|| panic!("not an HTTP status error: {e}"));
    (s.status_code.as_u16(), s.message.clone())
}

async fn market_buy(
    c: &Sdk,
    s: &PrivateKeySigner,
    token: U256,
    usdc: Decimal,
    cap: Decimal,
    kind: OrderType,
) -> polymarket_client_sdk_v2::Result<
    polymarket_client_sdk_v2::clob::types::response::PostOrderResponse,
> {
    let order = c
        .market_order()
        .token_id(token)
        .side(Side::Buy)
        .amount(Amount::usdc(usdc)?)
        .price(cap)
        .order_type(kind)
        .build()
        .await?;
    let signed = c.sign(s, order).await?;
    c.post_order(signed).await
}

async fn trade_statuses(c: &Sdk) -> Vec<TradeStatusType> {
    c.trades(&TradesRequest::default(), None)
        .await
        .expect("trades")
        .data
        .into_iter()
        .map(|t| t.status)
        .collect()
}

/// Orders the venue placed, per window: a live session must never have two in one.
fn placed_per_window(v: &Running) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for r in v.exchange().received().iter().filter(|r| r.placed) {
        *m.entry(r.window_start.expect("a served token"))
            .or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_then_derived_and_a_market_buy_settles() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    // A second authentication finds the key taken and derives the same one.
    let again = sdk(&v, &s).await;
    assert_eq!(c.credentials().key(), again.credentials().key());
    assert_eq!(c.address(), ANVIL_ADDRESS);

    let token = up_token(&v);
    let r = market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("a marketable FOK buy is accepted");
    assert!(r.success, "{r:?}");
    assert_eq!(r.status, OrderStatusType::Matched);
    assert!(
        r.making_amount <= dec!(5) && r.making_amount > dec!(4.99),
        "{r:?}"
    );
    assert!(r.taking_amount > dec!(9), "{r:?}");
    assert!(!r.trade_ids.is_empty() && r.transaction_hashes.len() == r.trade_ids.len());

    let order = c.order(&r.order_id).await.expect("the order by id");
    assert_eq!(order.status, OrderStatusType::Matched);
    assert_eq!(order.size_matched, r.taking_amount);
    assert_eq!(order.asset_id, token);

    let first = trade_statuses(&c).await;
    assert!(
        first.iter().all(|t| *t == TradeStatusType::Matched),
        "{first:?}"
    );
    tokio::time::sleep(SETTLE + Duration::from_millis(300)).await;
    let later = trade_statuses(&c).await;
    assert!(
        later.iter().all(|t| *t == TradeStatusType::Confirmed),
        "{later:?}"
    );

    // Balance: 100 − cost − fee (0.07 · p(1−p) per share), in 6-decimal base units.
    let trades = v.exchange().trades();
    let fees: Decimal = trades.iter().map(|t| t.fee).sum();
    assert!(fees > Decimal::ZERO);
    let expected = dec!(100) - r.making_amount - fees;
    assert_eq!(v.exchange().balance(), expected);
    let bal = c
        .balance_allowance(
            BalanceAllowanceRequest::builder()
                .asset_type(AssetType::Collateral)
                .build(),
        )
        .await
        .expect("balance");
    assert_eq!(bal.balance, expected * dec!(1000000));
    let shares = c
        .balance_allowance(
            BalanceAllowanceRequest::builder()
                .asset_type(AssetType::Conditional)
                .token_id(token)
                .build(),
        )
        .await
        .expect("shares");
    assert_eq!(shares.balance, r.taking_amount * dec!(1000000));
    assert_eq!(placed_per_window(&v).values().copied().max(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_buy_without_a_price_walks_the_served_book() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    let book = c
        .order_book(&OrderBookSummaryRequest::builder().token_id(token).build())
        .await
        .expect("the SDK reads the served book");
    assert!(!book.asks.is_empty());
    let order = c
        .market_order()
        .token_id(token)
        .side(Side::Buy)
        .amount(Amount::usdc(dec!(3)).expect("an amount"))
        .order_type(OrderType::FAK)
        .build()
        .await
        .expect("the SDK prices a market order from /book");
    let r = c
        .post_order(c.sign(&s, order).await.expect("signed"))
        .await
        .expect("accepted");
    assert_eq!(r.status, OrderStatusType::Matched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fak_fills_what_the_book_has_and_fok_is_killed() {
    let v = venue_with(WalletConfig::anvil(dec!(20000)));
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    // Far more than the one or two levels at or under the cap hold (at most ~6000 pUSD).
    let r = market_buy(&c, &s, token, dec!(9000), dec!(0.52), OrderType::FAK)
        .await
        .expect("a FAK with short depth is partly filled");
    assert_eq!(r.status, OrderStatusType::Matched);
    assert!(
        r.making_amount > Decimal::ZERO && r.making_amount < dec!(9000),
        "{r:?}"
    );
    let e = market_buy(&c, &s, token, dec!(9000), dec!(0.52), OrderType::FOK)
        .await
        .expect_err("a FOK with short depth is killed");
    assert_eq!(
        status_of(&e),
        (
            400,
            r#"{"error":"order couldn't be fully filled. FOK orders are fully filled or killed."}"#
                .into()
        )
    );
    // Depth taken stays taken within the book bucket: a second FAK at once finds less or
    // nothing.
    let received = v.exchange().received();
    assert_eq!(received.len(), 2);
    assert!(received[0].placed && !received[1].placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_limit_order_is_listed_and_canceled() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    let order = c
        .limit_order()
        .token_id(token)
        .side(Side::Buy)
        .price(dec!(0.30))
        .size(dec!(10))
        .build()
        .await
        .expect("a GTC limit order");
    let r = c
        .post_order(c.sign(&s, order).await.expect("signed"))
        .await
        .expect("accepted");
    assert_eq!(r.status, OrderStatusType::Live);
    let open = c
        .orders(&OrdersRequest::default(), None)
        .await
        .expect("open orders");
    assert_eq!(open.data.len(), 1);
    assert_eq!(open.data[0].id, r.order_id);
    assert_eq!(open.data[0].price, dec!(0.3));
    assert_eq!(open.data[0].original_size, dec!(10));

    let gone = c.cancel_order(&r.order_id).await.expect("cancel");
    assert_eq!(gone.canceled, vec![r.order_id.clone()]);
    let again = c.cancel_order(&r.order_id).await.expect("cancel again");
    assert!(again.canceled.is_empty());
    assert_eq!(
        again.not_canceled.get(&r.order_id).map(String::as_str),
        Some("the order is already canceled")
    );
    assert!(
        c.orders(&OrdersRequest::default(), None)
            .await
            .expect("open orders")
            .data
            .is_empty()
    );
    let all = c.cancel_all_orders().await.expect("cancel-all");
    assert!(all.canceled.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_order_is_refused_as_an_invalid_signature() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let order = c
        .market_order()
        .token_id(up_token(&v))
        .side(Side::Buy)
        .amount(Amount::usdc(dec!(5)).expect("an amount"))
        .price(dec!(0.55))
        .order_type(OrderType::FOK)
        .build()
        .await
        .expect("built");
    let mut signed = c.sign(&s, order).await.expect("signed");
    match &mut signed.payload {
        OrderPayload::V2(p) => p.order.makerAmount = U256::from(6_000_000u64),
        other => panic!("expected a V2 order, got {other:?}"),
    }
    let e = c.post_order(signed).await.expect_err("refused");
    assert_eq!(
        status_of(&e),
        (400, r#"{"error":"invalid signature"}"#.into())
    );
    assert_eq!(v.exchange().balance(), dec!(100));
    assert!(v.exchange().trades().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_hmac_is_401() {
    let v = venue();
    let real = v.exchange().credentials(ANVIL_ADDRESS, 0);
    let key = Uuid::parse_str(&real.key).expect("a UUID");
    let wrong = Credentials::new(
        key,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        real.passphrase.clone(),
    );
    let s = signer();
    let c = Client::new(&v.urls().clob_sdk_host(), Config::default())
        .expect("client")
        .authentication_builder(&s)
        .credentials(wrong)
        .authenticate()
        .await
        .expect("authenticated with given credentials (nothing checked yet)");
    let e = c
        .balance_allowance(BalanceAllowanceRequest::default())
        .await
        .expect_err("a wrong secret is refused");
    assert_eq!(
        status_of(&e),
        (401, r#"{"error":"Unauthorized/Invalid api key"}"#.into())
    );
    // The right secret works with the same key.
    let right = Credentials::new(key, real.secret.clone(), real.passphrase.clone());
    let c = Client::new(&v.urls().clob_sdk_host(), Config::default())
        .expect("client")
        .authentication_builder(&s)
        .credentials(right)
        .authenticate()
        .await
        .expect("authenticated");
    let b = c
        .balance_allowance(BalanceAllowanceRequest::default())
        .await
        .expect("balance");
    assert_eq!(b.balance, dec!(100000000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_l1_signature_is_401() {
    let v = venue();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}auth/api-key", v.urls().clob_sdk_host()))
        .header("POLY_ADDRESS", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        .header("POLY_SIGNATURE", "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b70c25ae232aff0ab2331e2b164a1aedc1b")
        .header("POLY_TIMESTAMP", "10000000")
        .header("POLY_NONCE", "23")
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.text().await.expect("a body"),
        r#"{"error":"Invalid L1 Request headers"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_tick_price_is_refused() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    // Make the SDK believe in a finer tick than the market's 0.01.
    c.set_tick_size(token, TickSize::Thousandth);
    let order = c
        .limit_order()
        .token_id(token)
        .side(Side::Buy)
        .price(dec!(0.305))
        .size(dec!(10))
        .build()
        .await
        .expect("built");
    let e = c
        .post_order(c.sign(&s, order).await.expect("signed"))
        .await
        .expect_err("refused");
    assert_eq!(
        status_of(&e),
        (
            400,
            r#"{"error":"Price (0.305) breaks minimum tick size rule: 0.01"}"#.into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_pusd_is_refused_with_the_real_message() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    v.exchange()
        .inject(OrderFault::SetBalance { pusd: dec!(1) })
        .expect("fault");
    let e = market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("refused");
    let (code, body) = status_of(&e);
    assert_eq!(code, 400);
    assert!(
        body.starts_with(
            r#"{"error":"not enough balance / allowance: the balance is not enough -> balance: 1000000, order amount: 5"#
        ),
        "{body}"
    );
    // Too small an order is refused before balance is looked at.
    let e = market_buy(&c, &s, up_token(&v), dec!(1), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("refused");
    assert!(status_of(&e).1.contains("lower than the minimum: 5"), "{e}");
    v.exchange()
        .inject(OrderFault::SetAllowance { approved: false })
        .expect("fault");
    v.exchange()
        .inject(OrderFault::SetBalance { pusd: dec!(50) })
        .expect("fault");
    let e = market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("refused");
    assert!(
        status_of(&e).1.contains("the allowance is not enough"),
        "{e}"
    );
    assert!(v.exchange().received().iter().all(|r| !r.placed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_order_gets_order_version_mismatch_and_the_sdk_retries_in_v2() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    v.exchange()
        .inject(OrderFault::ReportVersion {
            count: 1,
            version: 1,
        })
        .expect("fault");
    let r = c
        .market_order()
        .token_id(up_token(&v))
        .side(Side::Buy)
        .amount(Amount::usdc(dec!(5)).expect("an amount"))
        .price(dec!(0.55))
        .order_type(OrderType::FOK)
        .build_sign_and_post(&s)
        .await
        .expect("the SDK re-reads /version and retries once");
    assert_eq!(r.status, OrderStatusType::Matched);
    let rec = v.exchange().received();
    assert_eq!(rec.len(), 2, "{rec:?}");
    assert_eq!(rec[0].outcome, "order_version_mismatch");
    assert!(!rec[0].placed && rec[1].placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_does_not_mean_not_filled() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    v.exchange()
        .inject(OrderFault::DelayResponse {
            count: 1,
            millis: 5_000,
        })
        .expect("fault");
    let sent = tokio::time::timeout(
        Duration::from_millis(1_000),
        market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK),
    )
    .await;
    assert!(sent.is_err(), "the client gave up before the answer");
    // The order exists and filled all the same.
    let trades = c
        .trades(&TradesRequest::default(), None)
        .await
        .expect("trades");
    assert!(!trades.data.is_empty());
    let rec = v.exchange().received();
    assert!(rec[0].placed);
    assert_eq!(rec[0].fault.as_deref(), Some("delay_response 5000 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_after_accept_still_places_the_order() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    v.exchange()
        .inject(OrderFault::DropAfterAccept { count: 1 })
        .expect("fault");
    let e = market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("no answer");
    assert!(
        e.downcast_ref::<Status>().is_none(),
        "a transport error: {e}"
    );
    assert_eq!(v.exchange().orders().len(), 1);
    assert!(v.exchange().received()[0].placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trade_gives_the_money_back() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    v.exchange()
        .inject(OrderFault::TradesFail { count: 1 })
        .expect("fault");
    let token = up_token(&v);
    let r = market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("matched");
    assert_eq!(r.status, OrderStatusType::Matched);
    assert!(v.exchange().balance() < dec!(95));
    tokio::time::sleep(SETTLE + Duration::from_millis(300)).await;
    let statuses = trade_statuses(&c).await;
    assert!(
        statuses.iter().all(|t| *t == TradeStatusType::Failed),
        "{statuses:?}"
    );
    assert_eq!(v.exchange().balance(), dec!(100));
    assert_eq!(v.exchange().position(&token.to_string()), Decimal::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_401_faults_place_nothing() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let x = v.exchange();
    x.inject(OrderFault::Status {
        count: 1,
        status: 429,
    })
    .expect("fault");
    x.inject(OrderFault::Status {
        count: 1,
        status: 503,
    })
    .expect("fault");
    let token = up_token(&v);
    let e = market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("429");
    assert_eq!(status_of(&e).0, 429);
    let e = market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("503");
    assert_eq!(
        status_of(&e),
        (
            503,
            r#"{"error":"Trading is currently disabled. Check polymarket.com for updates"}"#.into()
        )
    );
    x.inject(OrderFault::Unauthorized { count: 1 })
        .expect("fault");
    let e = market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("401");
    assert_eq!(status_of(&e).0, 401);
    market_buy(&c, &s, token, dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("then accepted");
    let rec = x.received();
    assert_eq!(
        rec.iter()
            .map(|r| (r.http_status, r.placed))
            .collect::<Vec<_>>(),
        vec![(429, false), (503, false), (401, false), (200, true)],
        "{rec:?}"
    );
    assert_eq!(placed_per_window(&v).get(&DEFAULT_START_WINDOW), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_and_deposit_wallet_signers_are_accepted_and_a_wrong_type_is_not() {
    // Gnosis Safe (type 2): the SDK derives the Safe address from the signer.
    let safe = polymarket_client_sdk_v2::derive_safe_wallet(ANVIL_ADDRESS, POLYGON)
        .expect("a Safe address");
    let v = venue_with(WalletConfig {
        signature_type: 2,
        funder: Some(safe),
        ..WalletConfig::anvil(dec!(100))
    });
    let s = signer();
    let c = Client::new(&v.urls().clob_sdk_host(), Config::default())
        .expect("client")
        .authentication_builder(&s)
        .signature_type(SignatureType::GnosisSafe)
        .authenticate()
        .await
        .expect("authenticated");
    market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("a Safe order is accepted");
    // The same wallet signing as a plain EOA is refused.
    let eoa = sdk(&v, &s).await;
    let e = market_buy(&eoa, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("wrong signature type");
    assert_eq!(
        status_of(&e),
        (400, r#"{"error":"invalid signature"}"#.into())
    );

    // Deposit wallet (POLY_1271): the wrapped ERC-7739 signature.
    let deposit =
        Address::from_str("0x1234567890123456789012345678901234567890").expect("an address");
    let v = venue_with(WalletConfig {
        signature_type: 3,
        funder: Some(deposit),
        ..WalletConfig::anvil(dec!(100))
    });
    let c = Client::new(&v.urls().clob_sdk_host(), Config::default())
        .expect("client")
        .authentication_builder(&s)
        .signature_type(SignatureType::Poly1271)
        .funder(deposit)
        .authenticate()
        .await
        .expect("authenticated");
    let r = market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("a deposit-wallet order is accepted");
    assert_eq!(r.status, OrderStatusType::Matched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_order_sent_twice_fills_once() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let order = c
        .market_order()
        .token_id(up_token(&v))
        .side(Side::Buy)
        .amount(Amount::usdc(dec!(5)).expect("an amount"))
        .price(dec!(0.55))
        .order_type(OrderType::FOK)
        .build()
        .await
        .expect("built");
    let signed = c.sign(&s, order).await.expect("signed");
    let resend = SignedOrder::builder()
        .payload(signed.payload.clone())
        .signature(signed.signature.clone())
        .order_type(signed.order_type.clone())
        .owner(signed.owner)
        .maybe_post_only(signed.post_only)
        .maybe_defer_exec(signed.defer_exec)
        .build();
    c.post_order(signed).await.expect("accepted once");
    let e = c.post_order(resend).await.expect_err("a resend is refused");
    assert_eq!(
        status_of(&e),
        (400, r#"{"error":"order already exists"}"#.into())
    );
    assert_eq!(v.exchange().orders().len(), 1);
    assert_eq!(placed_per_window(&v).get(&DEFAULT_START_WINDOW), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_endpoints_take_order_faults_and_show_the_record() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let http = reqwest::Client::new();
    let control = v.urls().control;
    let r = http
        .post(format!("{control}/order-fault"))
        .body(r#"{"kind":"trades_fail","count":1}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{control}/order-fault"))
        .body(r#"{"kind":"status","count":1,"status":200}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 400, "a 200 is not a fault");
    market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect("matched");
    let body: serde_json::Value = http
        .get(format!("{control}/orders"))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["received"][0]["placed"], true);
    assert_eq!(body["received"][0]["window_start"], DEFAULT_START_WINDOW);
    assert_eq!(body["received"][0]["order_type"], "FOK");
    assert_eq!(body["orders"][0]["status"], "MATCHED");
    assert_eq!(body["faults_applied"]["trades_fail"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_market_takes_no_orders_and_its_clob_market_names_the_winner() {
    let v = LoopbackVenue::start(LoopbackConfig {
        resolution_delay_secs: 10,
        ..LoopbackConfig::default().with_speed(600.0)
    })
    .expect("the loopback venue starts");
    let s = signer();
    let c = sdk(&v, &s).await;
    let w = v.window(DEFAULT_START_WINDOW).expect("the first window");
    let m = c.market(&w.condition_id).await.expect("the CLOB market");
    assert!(m.accepting_orders && !m.closed);
    assert!(m.tokens.iter().all(|t| !t.winner));
    // 30 s warm-up + 300 s window + 10 s to resolution, at 600×: about 0.6 s.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let m = c.market(&w.condition_id).await.expect("the CLOB market");
    assert!(m.closed && !m.accepting_orders);
    let winner: Vec<_> = m.tokens.iter().filter(|t| t.winner).collect();
    assert_eq!(winner.len(), 1);
    let expected = match w.outcome.expect("a resolved window") {
        updown::domain::Side::Up => "Up",
        updown::domain::Side::Down => "Down",
    };
    assert_eq!(winner[0].outcome, expected);
    // The SDK has the tick cached from before, so the order reaches the venue.
    c.set_tick_size(up_token(&v), TickSize::Hundredth);
    c.set_neg_risk(up_token(&v), false);
    let e = market_buy(&c, &s, up_token(&v), dec!(5), dec!(0.55), OrderType::FOK)
        .await
        .expect_err("refused");
    assert_eq!(
        status_of(&e),
        (
            400,
            r#"{"error":"the market is not accepting orders"}"#.into()
        )
    );
}

/// The SDK's fee-aware sizing (`user_usdc_balance`) reads `fd` from `/clob-markets` (via
/// `/markets-by-token`) and shrinks the amount so amount + fee fit the balance, but leaves it
/// with up to 6 decimals; the CLOB takes at most 2 on a market buy's maker amount, so such an
/// order is refused. A caller must round the amount down to cents itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_fee_adjusted_amount_needs_rounding_to_cents() {
    let v = venue_with(WalletConfig::anvil(dec!(5)));
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    let order = c
        .market_order()
        .token_id(token)
        .side(Side::Buy)
        .amount(Amount::usdc(dec!(5)).expect("an amount"))
        .price(dec!(0.55))
        .user_usdc_balance(dec!(5))
        .order_type(OrderType::FOK)
        .build()
        .await
        .expect("the SDK reads the fee parameters from the venue");
    let maker = match &order.payload {
        OrderPayload::V2(p) => p.order.makerAmount,
        other => panic!("expected V2, got {other:?}"),
    };
    assert!(
        maker < U256::from(5_000_000u64),
        "shrunk for the fee: {maker}"
    );
    assert_eq!(c.fee_exponent(token).await.expect("fee exponent"), 1);
    let e = c
        .post_order(c.sign(&s, order).await.expect("signed"))
        .await
        .expect_err("refused");
    assert_eq!(
        status_of(&e),
        (
            400,
            r#"{"error":"invalid amounts, the market buy orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals"}"#
                .into()
        )
    );
    // Rounded down to cents it is well-formed, but the SDK sized the fee at the cap (0.55)
    // and the fill comes cheaper (0.51 or 0.52): more shares, more fee, over the balance.
    let cents = (Decimal::from(maker.to::<u64>()) / dec!(1000000)).trunc_with_scale(2);
    let e = market_buy(&c, &s, token, cents, dec!(0.55), OrderType::FOK)
        .await
        .expect_err("refused");
    assert!(status_of(&e).1.contains("the balance is not enough"), "{e}");
    // With a margin for the fee at the best price, it fits; the wallet never goes negative.
    let r = market_buy(
        &c,
        &s,
        token,
        cents - dec!(0.05),
        dec!(0.55),
        OrderType::FOK,
    )
    .await
    .expect("accepted");
    assert_eq!(r.status, OrderStatusType::Matched);
    let left = v.exchange().balance();
    assert!(left >= Decimal::ZERO && left < dec!(0.10), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_places_each_order_on_its_own() {
    let v = venue();
    let s = signer();
    let c = sdk(&v, &s).await;
    let token = up_token(&v);
    let mut batch = Vec::new();
    for price in [dec!(0.30), dec!(0.305)] {
        c.set_tick_size(token, TickSize::Thousandth);
        let order = c
            .limit_order()
            .token_id(token)
            .side(Side::Buy)
            .price(price)
            .size(dec!(10))
            .build()
            .await
            .expect("built");
        batch.push(c.sign(&s, order).await.expect("signed"));
    }
    let answers = c.post_orders(batch).await.expect("a batch answer");
    assert_eq!(answers.len(), 2);
    assert!(answers[0].success && answers[0].status == OrderStatusType::Live);
    assert!(!answers[1].success);
    assert_eq!(
        answers[1].error_msg.as_deref(),
        Some("Price (0.305) breaks minimum tick size rule: 0.01")
    );
    assert_eq!(v.exchange().received().len(), 2);
}
