//! `updown-loopback`: runs the loopback test venue (`updown::loopback`) by hand.
//!
//! It serves recorded Binance and Polymarket data on 127.0.0.1 on a virtual clock, prints
//! the `[live]` section of `config.toml` that points the bot at it, then logs every request
//! and fault until interrupted (or for `--run-secs`). Faults are injected while it runs by
//! POSTing JSON to the control endpoint, e.g.
//! `curl -d '{"kind":"stall","service":"clob_ws","millis":5000}' http://127.0.0.1:P/control/fault`.
//!
//! The CLOB V2 trading endpoints trade for one wallet: by default the public Anvil test
//! account 0 as an EOA with 100 pUSD (`--wallet-key`, `--signature-type`, `--funder`,
//! `--balance` change it). Order faults go to `/control/order-fault`
//! (`{"kind":"delay_response","count":1,"millis":10000}`), and `/control/orders` lists
//! every order received.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use updown::loopback::auth::ANVIL_PRIVATE_KEY;
use updown::loopback::{
    DEFAULT_START_WINDOW, DEFAULT_WARMUP_SECS, ExchangeConfig, LoopbackConfig, LoopbackVenue,
    Service, WalletConfig,
};

/// Serve recorded Binance + Polymarket data on 127.0.0.1 for the bot's live code.
#[derive(Debug, Parser)]
#[command(name = "updown-loopback", version)]
struct Args {
    /// Virtual seconds per real second (1 = real time, 600 = a 5-minute window per 0.5 s).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Virtual seconds from a window's end to its resolution.
    #[arg(long, default_value_t = 60)]
    resolution_delay_secs: i64,
    /// First window to trade, Unix seconds (a multiple of 300 inside the recorded week
    /// 1771684200..1772289000).
    #[arg(long, default_value_t = DEFAULT_START_WINDOW)]
    start_window: i64,
    /// Virtual seconds the clock starts before that window.
    #[arg(long, default_value_t = DEFAULT_WARMUP_SECS)]
    warmup_secs: i64,
    /// The shared data folder (default: ../shared/data next to the repository, or
    /// $UPDOWN_SHARED_DATA).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed of book sizes, spreads and trades.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Include the bar still forming as the last kline row, as Binance does.
    #[arg(long)]
    forming_bar: bool,
    /// Give Gamma markets the live `feeSchedule` block (crypto_fees_v2, rate 0.07).
    #[arg(long)]
    fee_schedule: bool,
    /// Real seconds a CLOB market-channel client may stay silent before it is dropped.
    #[arg(long, default_value_t = 30)]
    clob_idle_timeout_secs: u64,
    /// Stop after this many real seconds (default: run until interrupted).
    #[arg(long)]
    run_secs: Option<u64>,
    /// Log only faults and status lines, not every request.
    #[arg(long)]
    quiet: bool,
    /// Private key of the wallet that trades (only its address is used). Default: the
    /// public Anvil/Hardhat test key; never give a key that holds real money.
    #[arg(long, default_value = ANVIL_PRIVATE_KEY)]
    wallet_key: String,
    /// Signature type: 0 EOA, 1 POLY_PROXY, 2 POLY_GNOSIS_SAFE, 3 POLY_1271.
    #[arg(long, default_value_t = 0)]
    signature_type: u8,
    /// The funder (proxy, Safe or deposit wallet) for signature types 1-3.
    #[arg(long)]
    funder: Option<String>,
    /// Starting pUSD balance of the wallet.
    #[arg(long, default_value = "100")]
    balance: rust_decimal::Decimal,
    /// Real milliseconds from a trade's MATCHED to CONFIRMED.
    #[arg(long, default_value_t = 1_000)]
    settle_ms: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let level = if args.quiet { "info" } else { "debug" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("updown::loopback={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let funder = match args.funder.as_deref().map(str::parse) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            eprintln!("error: --funder is not an address");
            return std::process::ExitCode::FAILURE;
        }
    };
    let wallet = match WalletConfig::from_private_key(
        &args.wallet_key,
        args.signature_type,
        funder,
        args.balance,
    ) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut cfg = LoopbackConfig {
        exchange: ExchangeConfig {
            wallet,
            settle_after: Duration::from_millis(args.settle_ms),
            ..ExchangeConfig::default()
        },
        port: args.port,
        speed: args.speed,
        resolution_delay_secs: args.resolution_delay_secs,
        seed: args.seed,
        forming_bar: args.forming_bar,
        fee_schedule: args.fee_schedule,
        clob_idle_timeout: Duration::from_secs(args.clob_idle_timeout_secs),
        ..LoopbackConfig::default()
    }
    .at_window(args.start_window, args.warmup_secs);
    if let Some(dir) = args.data_dir {
        cfg.data_dir = dir;
    }
    let venue = match LoopbackVenue::start(cfg) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let urls = venue.urls();
    println!("# updown loopback venue: paste into config.toml");
    print!("{}", urls.config_toml());
    println!();
    println!(
        "# virtual start {} (speed {}x); first window {}",
        fmt_ms(venue.now_ms()),
        args.speed,
        venue
            .window(args.start_window)
            .map_or_else(|| "(not in the data)".to_string(), |w| w.slug)
    );
    println!(
        "# faults: curl -d '{{\"kind\":\"stall\",\"service\":\"clob_ws\",\"millis\":5000}}' {}/fault",
        urls.control
    );
    println!("# stats:  curl {}/stats", urls.control);
    let wallet = &venue.config().exchange.wallet;
    println!(
        "# CLOB V2 trading: SDK host {} ; wallet {} (signature type {}, maker {}) with {} pUSD",
        urls.clob_sdk_host(),
        wallet.signer,
        wallet.signature_type,
        wallet.maker(),
        wallet.balance
    );
    println!(
        "# orders: curl {}/orders ; order faults: curl -d '{{\"kind\":\"delay_response\",\"count\":1,\"millis\":10000}}' {}/order-fault",
        urls.control, urls.control
    );

    let started = Instant::now();
    let mut last_status = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if args
            .run_secs
            .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
        if last_status.elapsed() >= Duration::from_secs(10) {
            last_status = Instant::now();
            let now = venue.now_ms();
            let stats = venue.stats();
            let window = venue
                .window_at(now)
                .map_or_else(|| "-".to_string(), |w| w.slug);
            let ws: Vec<String> = [Service::BinanceWs, Service::ClobWs]
                .iter()
                .map(|s| format!("{s} {} open", stats.ws_open_to(*s)))
                .collect();
            tracing::info!(
                target: "updown::loopback",
                "virtual {} window {window}; {} requests; {}",
                fmt_ms(now),
                stats.requests.values().sum::<u64>(),
                ws.join(", ")
            );
        }
    }
    std::process::ExitCode::SUCCESS
}

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
    )
}
