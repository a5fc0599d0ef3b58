//! Fault injection through full live paper sessions: the real binary (`updown run`) against
//! the loopback venue over real sockets at 300× (a 5-minute window passes in one real
//! second), one session per fault, each fault injected mid-session on the service it
//! concerns. For every fault the session must survive, never trade on stale data, and lose
//! nothing:
//!
//! - it completes (exit 0), or is stopped cleanly by a halt that names its reason (exit 3,
//!   the same halt in `updown status`);
//! - `predictions.jsonl` has one line per window, consecutive from the run's first window,
//!   none twice; every decision saw only bars closed by its time, each bar once and none
//!   lost (the bar count grows by exactly the minutes the newest bar advanced) with the
//!   recorded closes;
//! - every approved trade is settled in `trades.jsonl` exactly once, or still open in the
//!   ledger (`updown status`); settled trades only for approved windows; the equity chain
//!   adds up; the journals hold the ledger's records (predictions line for line, trades
//!   the same lines: the ledger lists them by window, the journal as they settled);
//! - no window is approved on a price older than `risk.max_price_age_secs`, nor while the
//!   feed was known to be stale (for the Binance stall and the REST bursts during a
//!   backfill, every window decided inside the stale stretch is refused `stale_data`, and
//!   trading resumes after it), nor journaled as approved later than
//!   `live.max_decision_delay_secs` after its decision time;
//! - a trade settled by the venue is settled no earlier than the venue resolved it, with
//!   the real outcome; a resolution that never comes is settled from price data after the
//!   paper venue's resolution timeout.
//!
//! The paper venue's resolution timeout (`live.resolution_timeout_secs`, 900 session seconds
//! by default, left so here) is three real seconds at 300×, so a never-resolved window is
//! settled by the fallback within the session, which the `resolution_never` case asserts.
//!
//! Two bugs found this way are fixed and pinned: bars missed during an outage must reach
//! the strategy even when their backfill finishes after a decision (the REST-burst cases,
//! whose backfill fails past a decision, check every bar count), and trades settled out of
//! window order must be listed, rebuilt and reported in the order they settled
//! (`trades_are_recorded_and_reported_in_the_order_they_settled`).
//!
//! Each case also checks that its fault reached the bot (the venue's applied-fault counts,
//! reconnects, backfills, log lines), so a fault that silently missed fails the case.
//!
//! The sessions are heavy for a 2-core machine, so they take turns (one global lock), and
//! every wait is bounded.

mod common;

use common::{Ran, lines};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use updown::domain::Side;
use updown::feed::{Candle, load_csv};
use updown::ledger::records::{PredictionRecord, TradeRecord};
use updown::ledger::{LEDGER_FILE, Ledger};
use updown::loopback::{
    FaultSpec, LoopbackConfig, LoopbackVenue, ResolutionFault, Running, Service, Stats, data,
};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const STRATEGY: &str = "tests/scripts/live/always_up.rhai";
/// Session (and venue) seconds per real second.
const SPEED: f64 = 300.0;
/// Window length, seconds.
const WINDOW: i64 = 300;
/// The venue resolves a window this many virtual seconds after its end.
const RESOLUTION_DELAY: i64 = 10;
/// `live.stall_timeout_ms` in the temporary config.
const STALL_TIMEOUT_MS: i64 = 400;
/// `live.max_decision_delay_secs` in the temporary config.
const MAX_DECISION_DELAY: i64 = 240;
/// `account.starting_capital` (the default), USD.
const STARTING_CAPITAL: i64 = 100;
/// `risk.max_price_age_secs` (the default).
const MAX_PRICE_AGE: i64 = 90;
/// `PaperConfig::resolution_timeout_secs` (the default; not configurable).
const RESOLUTION_TIMEOUT: i64 = 900;
/// Virtual seconds of slack for "journaled by" bounds: the test polls the journals every
/// [`POLL`], and a busy machine delays the session a little.
const SLACK: i64 = 90;
/// How often the test looks at the journals and the venue while a session runs.
const POLL: Duration = Duration::from_millis(20);
/// No session may take longer than this.
const RUN_BOUND: Duration = Duration::from_secs(120);
/// Waiting for the windows before the fault.
const INJECT_BOUND: Duration = Duration::from_secs(40);

/// One heavy session at a time.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// The table.

/// One session with one fault.
struct Case {
    /// Windows (`--intervals`).
    intervals: u32,
    /// Predictions journaled before the fault is injected.
    after: usize,
    /// Faults injected at once, in this order.
    faults: &'static [FaultSpec],
    /// A resolution fault on these window indexes of the session.
    resolution: Option<(&'static [i64], ResolutionFault)>,
    /// What this fault must visibly lead to, on top of the checks every session gets.
    checks: &'static [Check],
}

/// A case-specific expectation.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// The venue applied at least this many faults whose key (`service/kind…`, see
    /// `Faults::applied_counts`) starts with this text: the fault met the bot's traffic.
    Applied(&'static str, u64),
    /// The bot opened a new WebSocket to this service after the fault.
    Reconnected(Service),
    /// The bot fetched klines over REST after the fault (a backfill).
    Backfilled,
    /// The stall was in force: the venue sent the service's sockets no data while it lasted
    /// (a heartbeat or two at most).
    Stalled(Service),
    /// The session's log (console or `updown.log`) says this.
    Logged(&'static str),
    /// The Binance feed was stale from `after` virtual seconds past the injection until
    /// `before_end` virtual seconds before the fault ended (a stall's end, or the moment the
    /// venue served the burst's last error): at least one window was decided in there, and
    /// every one of them was refused `stale_data` (`feed stale: …`).
    StaleWhile { after: i64, before_end: i64 },
    /// Trading resumed: a window decided more than 150 virtual seconds after the fault
    /// ended was approved.
    Resumed,
    /// Every approved window hit by the resolution fault was settled by this source
    /// (`venue` or `price_data_fallback`), no earlier than `not_before` virtual seconds
    /// after its window's end.
    SettledBy { by: &'static str, not_before: i64 },
}

use Check::*;

const fn case(faults: &'static [FaultSpec], checks: &'static [Check]) -> Case {
    Case {
        intervals: 5,
        after: 2,
        faults,
        resolution: None,
        checks,
    }
}

const fn longer(intervals: u32, c: Case) -> Case {
    Case { intervals, ..c }
}

const BWS: Service = Service::BinanceWs;
const CWS: Service = Service::ClobWs;

/// Injected with a Binance disconnect: the next 5 WebSocket upgrades answer 503, so the bot
/// stays away at least 0.6 real s (its reconnect backoff, 50 ms doubling to 300 ms, with
/// jitter), three virtual minutes, and must backfill the bars it missed over REST.
const REFUSE_BWS_RECONNECTS: FaultSpec = FaultSpec::HttpStatus {
    service: BWS,
    count: 5,
    status: 503,
    retry_after_secs: None,
};

macro_rules! cases {
    ($($name:ident => $case:expr,)*) => {
        const CASES: &[(&str, Case)] = &[$((stringify!($name), $case)),*];
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
    };
}

cases! {
    // The bot stays away long enough (REFUSE_BWS_RECONNECTS) to miss bars it must backfill.
    binance_ws_disconnect => case(
        &[REFUSE_BWS_RECONNECTS, FaultSpec::Disconnect { service: BWS }],
        &[
            Applied("binance_ws/http/Status { status: 503", 5),
            Reconnected(BWS),
            Backfilled,
            Logged("Binance stream closed (closed by the server: 1001"),
            Logged("Binance stream reconnected"),
        ],
    ),
    binance_ws_kill => case(
        &[REFUSE_BWS_RECONNECTS, FaultSpec::Kill { service: BWS }],
        &[
            Applied("binance_ws/http/Status { status: 503", 5),
            Reconnected(BWS),
            Backfilled,
            Logged("Binance stream reconnected"),
        ],
    ),
    // 2.6 real s of silence with the socket open: 13 virtual minutes, two decisions.
    binance_ws_stall => longer(7, case(
        &[FaultSpec::Stall { service: BWS, millis: 2_600 }],
        &[
            Stalled(BWS),
            StaleWhile { after: STALL_TIMEOUT_MS * SPEED as i64 / 1000 + 45, before_end: 0 },
            Reconnected(BWS),
            Backfilled,
            Logged("marked stale"),
            Resumed,
        ],
    )),
    // The backfill after the reconnect meets 9 × 429 (three failed backfills, `Retry-After`
    // capped at reconnect_max_ms), or 30 × 500 (ten): the feed stays stale meanwhile.
    binance_rest_429_during_backfill => longer(7, case(
            &[
                FaultSpec::HttpStatus {
                    service: Service::BinanceRest,
                    count: 9,
                    status: 429,
                    retry_after_secs: Some(1),
                },
                REFUSE_BWS_RECONNECTS,
                FaultSpec::Disconnect { service: BWS },
            ],
            &[
                Applied("binance_rest/http/Status { status: 429", 9),
                Reconnected(BWS),
                StaleWhile { after: 165, before_end: 180 },
                Logged("backfill after reconnect failed"),
                Resumed,
            ],
        )),
    binance_rest_5xx_during_backfill => longer(7, case(
            &[
                FaultSpec::HttpStatus {
                    service: Service::BinanceRest,
                    count: 30,
                    status: 500,
                    retry_after_secs: None,
                },
                REFUSE_BWS_RECONNECTS,
                FaultSpec::Kill { service: BWS },
            ],
            &[
                Applied("binance_rest/http/Status { status: 500", 30),
                Reconnected(BWS),
                StaleWhile { after: 165, before_end: 180 },
                Logged("backfill after reconnect failed"),
                Resumed,
            ],
        )),
    // 25 frames (~0.3 real s) cover at least one closed bar: it must come back by backfill.
    binance_ws_malformed => case(
        &[FaultSpec::Malformed { service: BWS, count: 25 }],
        &[
            Applied("binance_ws/malformed", 25),
            Logged("skipping an undecodable Binance frame"),
        ],
    ),
    binance_ws_truncated => case(
        &[FaultSpec::Truncated { service: BWS, count: 25 }],
        &[
            Applied("binance_ws/truncated", 25),
            Logged("skipping an undecodable Binance frame"),
        ],
    ),
    binance_ws_broken_frame => case(
        &[FaultSpec::BrokenFrame { service: BWS }],
        &[
            Applied("binance_ws/broken_frame", 1),
            Reconnected(BWS),
            Logged("Binance stream closed ("),
        ],
    ),
    // A closed bar taken twice would show in the bar count (checked for every case).
    binance_ws_duplicate => case(
        &[FaultSpec::Duplicate { service: BWS, count: 60 }],
        &[Applied("binance_ws/duplicate", 60)],
    ),
    binance_ws_stale_frames => case(
        &[FaultSpec::Stale { service: BWS, count: 60 }],
        &[Applied("binance_ws/stale", 60)],
    ),
    clob_ws_malformed => case(
        &[FaultSpec::Malformed { service: CWS, count: 10 }],
        &[
            Applied("clob_ws/malformed", 10),
            Logged("market channel: frame skipped, resynchronising"),
        ],
    ),
    clob_ws_truncated => case(
        &[FaultSpec::Truncated { service: CWS, count: 10 }],
        &[
            Applied("clob_ws/truncated", 10),
            Logged("market channel: frame skipped, resynchronising"),
        ],
    ),
    clob_ws_broken_frame => case(
        &[FaultSpec::BrokenFrame { service: CWS }],
        &[
            Applied("clob_ws/broken_frame", 1),
            Reconnected(CWS),
            Logged("market channel: read failed"),
        ],
    ),
    clob_ws_duplicate => case(
        &[FaultSpec::Duplicate { service: CWS, count: 60 }],
        &[Applied("clob_ws/duplicate", 60)],
    ),
    clob_ws_stale_frames => case(
        &[FaultSpec::Stale { service: CWS, count: 30 }],
        &[Applied("clob_ws/stale", 30)],
    ),
    clob_ws_disconnect => case(
        &[FaultSpec::Disconnect { service: CWS }],
        &[Reconnected(CWS), Logged("market channel: the venue closed the connection")],
    ),
    // Longer than the stream's gap_resync (3 s): books are refreshed over REST when data
    // resumes. `market_resolved` events sent meanwhile are lost; those trades must still
    // settle (from Gamma, or from price data after the timeout).
    clob_ws_stall => case(
        &[FaultSpec::Stall { service: CWS, millis: 3_500 }],
        &[Stalled(CWS)],
    ),
    // Discovery and resolution polls meet 503s with `Retry-After: 1` (a whole window at
    // 300×): a window may be skipped `no_quote`, never traded late.
    gamma_5xx_burst => case(
        &[FaultSpec::HttpStatus {
            service: Service::Gamma,
            count: 4,
            status: 503,
            retry_after_secs: Some(1),
        }],
        &[Applied("gamma/http/Status { status: 503", 4)],
    ),
    // Resolved after the next window's decision, before the paper venue's 900 s timeout.
    resolution_late => Case {
        after: 1,
        resolution: Some((&[1, 2, 3], ResolutionFault::Late { extra_secs: 450 })),
        ..case(&[], &[SettledBy { by: "venue", not_before: RESOLUTION_DELAY + 450 }])
    },
    // Pending until the timeout (900 session s, not configurable), then from price data.
    resolution_never => Case {
        after: 1,
        resolution: Some((&[1, 2, 3], ResolutionFault::Never)),
        ..case(
            &[],
            &[
                SettledBy { by: "price_data_fallback", not_before: RESOLUTION_TIMEOUT },
                Logged("no resolution from Polymarket"),
            ],
        )
    },
}

fn run_case(name: &str) {
    let (_, case) = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a case of the table");
    let _turn = turn();
    let s = Session::run(case);
    let mut f = Findings::default();
    check_common(&s, &mut f);
    for c in case.checks {
        check_case(&s, case, *c, &mut f);
    }
    if std::env::var_os("LIVE_FAULTS_VERBOSE").is_some() {
        eprintln!("=== {name}\n{}", s.context());
    }
    if !f.0.is_empty() {
        let mut text = format!("fault case `{name}` failed:\n");
        for p in &f.0 {
            let _ = writeln!(text, "  - {p}");
        }
        panic!("{text}{}", s.context());
    }
}

/// When a window resolves after a later one (a late resolution here), `trades.jsonl` is
/// written in the order trades settled, each `equity_after` following the previous line,
/// while the ledger lists trades by window: a resume rebuilds the journal in another order,
/// and the report, which reads the ledger, takes the equity after the latest *window*'s
/// trade as the final equity (its return and drawdown disagree with its own P&L).
#[test]
fn trades_are_recorded_and_reported_in_the_order_they_settled() {
    let (_, case) = CASES
        .iter()
        .find(|(n, _)| *n == "resolution_late")
        .expect("the late-resolution case");
    let _turn = turn();
    let s = Session::run(case);
    let ledger = Ledger::open(&s.out.join(LEDGER_FILE)).expect("the ledger opens");
    let session = ledger
        .latest_session()
        .expect("the ledger reads")
        .expect("a session");
    let journal = s.trade_lines();
    let starts: Vec<i64> = journal
        .iter()
        .filter_map(|l| serde_json::from_str::<TradeRecord>(l).ok())
        .map(|t| t.interval_start)
        .collect();
    assert!(
        starts.windows(2).any(|w| w[1] < w[0]),
        "the late resolution did not reorder settlements: {starts:?}\n{}",
        s.context()
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.out.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let reported = report["money"]["final_equity"].to_string();
    let equity = session.account.equity();
    assert!(
        reported
            .trim_matches('"')
            .parse::<rust_decimal::Decimal>()
            .ok()
            == Some(equity),
        "report.json money.final_equity {reported}, the ledger's equity {equity}"
    );
    assert_eq!(
        ledger.trades(session.id).expect("trades"),
        journal,
        "the ledger's trades in another order than trades.jsonl"
    );
    // The equity curve ends on the equity after the last settlement, not on that of the
    // latest window's trade.
    let curve = ledger.equity(session.id).expect("the equity curve");
    assert_eq!(
        curve
            .last()
            .and_then(|(_, e)| e.parse::<rust_decimal::Decimal>().ok()),
        Some(equity),
        "the equity curve ends elsewhere than the ledger's equity: {curve:?}"
    );
}

#[test]
fn the_table_injects_every_fault_kind_on_the_services_it_concerns() {
    let mut seen = BTreeSet::new();
    for (_, c) in CASES {
        for f in c.faults {
            let key = match f {
                FaultSpec::Disconnect { service } => format!("disconnect {service}"),
                FaultSpec::Kill { service } => format!("kill {service}"),
                FaultSpec::Stall { service, .. } => format!("stall {service}"),
                FaultSpec::HttpStatus {
                    service, status, ..
                } => format!("http {} {service}", status / 100),
                FaultSpec::Malformed { service, .. } => format!("malformed {service}"),
                FaultSpec::Truncated { service, .. } => format!("truncated {service}"),
                FaultSpec::BrokenFrame { service } => format!("broken {service}"),
                FaultSpec::Duplicate { service, .. } => format!("duplicate {service}"),
                FaultSpec::Stale { service, .. } => format!("stale {service}"),
                other => format!("{other:?}"),
            };
            seen.insert(key);
        }
        if let Some((_, r)) = &c.resolution {
            seen.insert(match r {
                ResolutionFault::Late { .. } => "resolution late".to_string(),
                ResolutionFault::Never => "resolution never".to_string(),
            });
        }
    }
    let mut want: Vec<String> = [
        "disconnect binance_ws",
        "kill binance_ws",
        "stall binance_ws",
        "http 4 binance_rest",
        "http 5 binance_rest",
        "disconnect clob_ws",
        "stall clob_ws",
        "http 5 gamma",
        "resolution late",
        "resolution never",
    ]
    .map(str::to_string)
    .to_vec();
    for kind in ["malformed", "truncated", "broken", "duplicate", "stale"] {
        for service in ["binance_ws", "clob_ws"] {
            want.push(format!("{kind} {service}"));
        }
    }
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "no case for {missing:?}");
}

// ---------------------------------------------------------------------------------------
// Running one session.

/// What the test saw while the fault was in force, in the venue's (= the session's)
/// virtual time, seconds.
#[derive(Debug, Default)]
struct Timeline {
    /// When the faults were injected.
    injected: Option<i64>,
    /// When the fault ended: a stall's end, or when the venue served the last of an HTTP
    /// burst (`None`: not seen).
    ended: Option<i64>,
    /// The venue's counters just before the injection.
    before: Stats,
    /// The venue's counters at the last look before a stall ended, and when (virtual s).
    in_stall: Option<(i64, Stats)>,
    /// Window starts hit by the resolution fault.
    resolution_windows: Vec<i64>,
    /// When each prediction line (by window start) was first seen in the journal.
    predicted_at: BTreeMap<i64, i64>,
    /// When each trade line (by window start) was first seen in the journal.
    settled_at: BTreeMap<i64, i64>,
}

struct Session {
    v: Running,
    config: PathBuf,
    out: PathBuf,
    intervals: u32,
    ran: Ran,
    timeline: Timeline,
    after: Stats,
    applied: BTreeMap<String, u64>,
    _dir: tempfile::TempDir,
}

/// A config pointing the bot at `v`: its `[live]` section, the fast clock, short network
/// timings and a warm-up of 60 bars (as `tests/live_session.rs`).
fn write_config(dir: &Path, v: &Running) -> PathBuf {
    let live = v.urls().config_toml();
    let text = format!(
        "[session]\nwarmup_candles = 60\n\n{live}clock_speed = {SPEED}\n\
         stall_timeout_ms = {STALL_TIMEOUT_MS}\nbar_grace_ms = 500\nreconnect_min_ms = 50\n\
         reconnect_max_ms = 300\nhttp_timeout_ms = 3000\nfallback_poll_ms = 200\n\
         max_decision_delay_secs = {MAX_DECISION_DELAY}\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("writing the config");
    path
}

/// Window starts of the complete journal lines in `path` (a line still being written is
/// not JSON yet and is skipped).
fn journaled_starts(path: &Path) -> Vec<i64> {
    lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("interval_start").and_then(serde_json::Value::as_i64))
        .collect()
}

/// Sum of the venue's applied-fault counts whose key starts with `prefix`.
fn applied(counts: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

/// The key prefix and count of the case's HTTP burst, if it has one.
fn burst(case: &Case) -> Option<(String, u64)> {
    case.faults.iter().find_map(|f| match f {
        FaultSpec::HttpStatus {
            service,
            count,
            status,
            ..
        } => Some((
            format!("{service}/http/Status {{ status: {status}"),
            u64::from(*count),
        )),
        _ => None,
    })
}

impl Session {
    fn run(case: &Case) -> Session {
        let v = LoopbackVenue::start(LoopbackConfig {
            resolution_delay_secs: RESOLUTION_DELAY,
            ..LoopbackConfig::default().with_speed(SPEED)
        })
        .expect("the loopback venue starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("out");
        let config = write_config(dir.path(), &v);
        let (so, se) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = Command::new(BIN)
            .args(["run", "--strategy", STRATEGY, "--no-reload", "--intervals"])
            .arg(case.intervals.to_string())
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .current_dir(REPO)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&so).expect("a stdout file"))
            .stderr(File::create(&se).expect("a stderr file"))
            .spawn()
            .expect("updown starts");

        let secs = |v: &Running| v.now_ms().div_euclid(1000);
        let burst = burst(case);
        let stall_ms = case.faults.iter().find_map(|f| match f {
            FaultSpec::Stall { millis, .. } => Some(*millis as i64),
            _ => None,
        });
        let (predictions, trades) = (out.join("predictions.jsonl"), out.join("trades.jsonl"));
        let mut t = Timeline::default();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for updown") {
                break status;
            }
            // Read first, then the time: a line is never dated before it was written.
            let (decided, settled) = (journaled_starts(&predictions), journaled_starts(&trades));
            let now = secs(&v);
            for s in decided {
                t.predicted_at.entry(s).or_insert(now);
            }
            for s in settled {
                t.settled_at.entry(s).or_insert(now);
            }
            if t.injected.is_none() && t.predicted_at.len() >= case.after {
                t.before = v.stats();
                let faults = v.faults();
                for f in case.faults {
                    faults.inject(f.clone()).expect("the fault is injected");
                }
                if let Some((idx, fault)) = case.resolution {
                    let first = *t.predicted_at.keys().next().expect("a first window");
                    for i in idx {
                        let w = first + i * WINDOW;
                        t.resolution_windows.push(w);
                        faults
                            .inject(FaultSpec::Resolution {
                                window_start: w,
                                fault,
                            })
                            .expect("the resolution fault is injected");
                    }
                }
                let at = secs(&v);
                t.injected = Some(at);
                t.ended = stall_ms.map(|ms| at + ms * SPEED as i64 / 1000);
            }
            if let (Some((prefix, count)), None) = (&burst, t.ended)
                && applied(&v.faults().applied_counts(), prefix) >= *count
            {
                t.ended = Some(now);
            }
            if let (Some(_), Some(end)) = (stall_ms, t.ended) {
                let stats = v.stats();
                let at = secs(&v);
                if at < end {
                    t.in_stall = Some((at, stats));
                }
            }
            let waited = started.elapsed();
            if waited > RUN_BOUND || (t.injected.is_none() && waited > INJECT_BOUND) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "updown did not {} within {waited:?}\n--- stdout\n{}\n--- stderr\n{}",
                    if t.injected.is_none() {
                        format!("decide {} windows", case.after)
                    } else {
                        "finish".to_string()
                    },
                    std::fs::read_to_string(&so).unwrap_or_default(),
                    tail(&std::fs::read_to_string(&se).unwrap_or_default(), 60)
                );
            }
            std::thread::sleep(POLL);
        };
        let now = secs(&v);
        for s in journaled_starts(&trades) {
            t.settled_at.entry(s).or_insert(now);
        }
        for s in journaled_starts(&predictions) {
            t.predicted_at.entry(s).or_insert(now);
        }
        let ran = Ran {
            status,
            stdout: std::fs::read_to_string(&so).unwrap_or_default(),
            stderr: std::fs::read_to_string(&se).unwrap_or_default(),
        };
        Session {
            after: v.stats(),
            applied: v.faults().applied_counts(),
            v,
            config,
            out,
            intervals: case.intervals,
            ran,
            timeline: t,
            _dir: dir,
        }
    }

    fn prediction_lines(&self) -> Vec<String> {
        lines(&self.out.join("predictions.jsonl"))
    }

    fn trade_lines(&self) -> Vec<String> {
        lines(&self.out.join("trades.jsonl"))
    }

    /// The session's log: what the console showed and the complete log file.
    fn log(&self) -> String {
        let file = std::fs::read_to_string(self.out.join("updown.log")).unwrap_or_default();
        format!("{}\n{file}", self.ran.stderr)
    }

    /// `updown status` for this output folder.
    fn status(&self) -> Ran {
        let out = Command::new(BIN)
            .arg("status")
            .arg("--config")
            .arg(&self.config)
            .arg("--out")
            .arg(&self.out)
            .current_dir(REPO)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("updown status runs");
        Ran {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The first window's slug from the summary line `N windows from <slug> · ...`.
    fn first_slug(&self) -> Option<&str> {
        let line = self
            .ran
            .stdout
            .lines()
            .find(|l| l.contains(" windows from "))?;
        line.split(" windows from ")
            .nth(1)?
            .split_whitespace()
            .next()
    }

    fn context(&self) -> String {
        format!(
            "timeline: injected {:?}, fault ended {:?}, resolution faults on {:?}\n\
             predictions first seen at {:?}\ntrades first seen at {:?}\napplied faults {:?}\n\
             exit {:?}\n--- predictions.jsonl\n{}\n--- trades.jsonl\n{}\n--- stdout\n{}\n--- stderr (tail)\n{}",
            self.timeline.injected,
            self.timeline.ended,
            self.timeline.resolution_windows,
            self.timeline.predicted_at,
            self.timeline.settled_at,
            self.applied,
            self.ran.status.code(),
            self.prediction_lines().join("\n"),
            self.trade_lines().join("\n"),
            tail(&self.ran.stdout, 30),
            tail(&self.ran.stderr, 60)
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Checks.

/// Every mismatch of one session.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

fn recorded() -> &'static [Candle] {
    static ALL: std::sync::OnceLock<Vec<Candle>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let path = Path::new(REPO)
            .join("../shared/data")
            .join(data::KLINES_FILE);
        load_csv(&path).expect("the recorded week loads").candles
    })
}

fn feature(p: &PredictionRecord, key: &str) -> Option<f64> {
    p.features.get(key).and_then(serde_json::Value::as_f64)
}

/// Open time of the newest bar the decision saw, and how many bars it had.
fn seen(p: &PredictionRecord) -> Option<(i64, i64)> {
    Some((feature(p, "last_t")? as i64, feature(p, "bars")? as i64))
}

fn check_common(s: &Session, f: &mut Findings) {
    // The session ended cleanly: complete, or halted with its reason.
    let code = s.ran.status.code();
    let halted = code == Some(3);
    match code {
        Some(0) => f.check(s.ran.stdout.contains("Session complete."), || {
            "exit 0 without `Session complete.`".into()
        }),
        Some(3) => {
            let line = s
                .ran
                .stdout
                .lines()
                .find(|l| l.starts_with("Session HALTED: "))
                .unwrap_or("");
            let reason = line
                .trim_start_matches("Session HALTED: ")
                .split(" — ")
                .next()
                .unwrap_or("");
            f.check(!reason.is_empty(), || {
                "exit 3 without `Session HALTED: <reason> — …`".into()
            });
            let status = s.status();
            f.check(
                status.stdout.contains(&format!(" — {reason}:")) && !reason.is_empty(),
                || {
                    format!(
                        "`updown status` does not show the halt {reason:?}:\n{}",
                        status.stdout
                    )
                },
            );
        }
        other => f.check(false, || {
            format!("the session neither completed nor halted: exit {other:?}")
        }),
    }

    let prediction_lines = s.prediction_lines();
    let ps: Vec<PredictionRecord> = match prediction_lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect()
    {
        Ok(ps) => ps,
        Err(e) => {
            f.check(false, || format!("a prediction line is not a record: {e}"));
            return;
        }
    };
    let ts: Vec<TradeRecord> = match s
        .trade_lines()
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect()
    {
        Ok(ts) => ts,
        Err(e) => {
            f.check(false, || format!("a trade line is not a record: {e}"));
            return;
        }
    };

    // One line per window, consecutive from the run's first window, none twice.
    if halted {
        f.check(!ps.is_empty() && ps.len() <= s.intervals as usize, || {
            format!("{} prediction lines for {} windows", ps.len(), s.intervals)
        });
    } else {
        f.check(ps.len() == s.intervals as usize, || {
            format!("{} prediction lines for {} windows", ps.len(), s.intervals)
        });
    }
    if let Some(first) = ps.first() {
        f.check(Some(first.slug.as_str()) == s.first_slug(), || {
            format!(
                "the first line is {}, the run's first window {:?}",
                first.slug,
                s.first_slug()
            )
        });
    }
    for (i, p) in ps.iter().enumerate() {
        let want = ps[0].interval_start + WINDOW * i as i64;
        f.check(
            p.interval_start == want
                && p.slug == format!("btc-updown-5m-{want}")
                && p.interval_start % WINDOW == 0,
            || format!("line {} is window {}, expected {want}", i + 1, p.slug),
        );
    }

    // Bars closed by the decision time, as recorded, each once, none lost.
    let all = recorded();
    let mut previous: Option<(i64, i64)> = None;
    for p in &ps {
        let Some((last_t, bars)) = seen(p) else {
            f.check(p.verdict != "approved", || {
                format!("{} approved without the script seeing a bar", p.slug)
            });
            continue;
        };
        f.check(last_t + 60 <= p.decision_time, || {
            format!(
                "{}: saw the bar opened at {last_t}, closing after the decision at {}",
                p.slug, p.decision_time
            )
        });
        let i = all.partition_point(|c| c.open_time < last_t);
        let close = feature(p, "last_c").unwrap_or(f64::NAN);
        f.check(
            all.get(i)
                .is_some_and(|c| c.open_time == last_t && (c.close - close).abs() < 1e-6),
            || {
                format!(
                    "{}: the bar at {last_t} closed at {close}, not as recorded",
                    p.slug
                )
            },
        );
        if let Some((t0, n0)) = previous {
            let minutes = (last_t - t0) / 60;
            f.check(bars - n0 == minutes, || {
                format!(
                    "{}: {} bars more for {} minutes more (a bar taken twice or lost)",
                    p.slug,
                    bars - n0,
                    (last_t - t0) / 60
                )
            });
        }
        previous = Some((last_t, bars));
        if p.verdict == "approved" {
            let age = p.decision_time - (last_t + 60);
            f.check(age <= MAX_PRICE_AGE, || {
                format!("{} approved on a price {age} s old", p.slug)
            });
        }
    }

    // Never traded late.
    for p in ps.iter().filter(|p| p.verdict == "approved") {
        let at = s.timeline.predicted_at.get(&p.interval_start).copied();
        f.check(
            at.is_some_and(|at| at <= p.decision_time + MAX_DECISION_DELAY + SLACK),
            || {
                format!(
                    "{} approved for {} but journaled at {at:?} \
                     (max_decision_delay_secs {MAX_DECISION_DELAY})",
                    p.slug, p.decision_time
                )
            },
        );
    }

    // Nothing lost: approved = settled + still open, each once; money adds up.
    let approved: BTreeMap<i64, &PredictionRecord> = ps
        .iter()
        .filter(|p| p.verdict == "approved")
        .map(|p| (p.interval_start, p))
        .collect();
    let settled: BTreeSet<i64> = ts.iter().map(|t| t.interval_start).collect();
    f.check(settled.len() == ts.len(), || {
        "a trade was settled twice".into()
    });
    for t in &ts {
        match approved.get(&t.interval_start) {
            None => f.check(false, || format!("{} settled but never approved", t.slug)),
            Some(p) => f.check(p.stake_approved.is_some_and(|a| t.stake <= a), || {
                format!(
                    "{} spent {} for {:?} approved",
                    t.slug, t.stake, p.stake_approved
                )
            }),
        }
        f.check(
            matches!(t.settled_by.as_str(), "venue" | "price_data_fallback"),
            || format!("{} settled by {}", t.slug, t.settled_by),
        );
        if t.settled_by == "venue" {
            let real = s.v.window(t.interval_start).and_then(|w| w.outcome);
            f.check(t.outcome.as_deref() == real.map(Side::as_str), || {
                format!(
                    "{} settled {:?}, the venue said {real:?}",
                    t.slug, t.outcome
                )
            });
            let end = t.interval_start + WINDOW;
            let at = s.timeline.settled_at.get(&t.interval_start).copied();
            f.check(at.is_some_and(|at| at >= end + RESOLUTION_DELAY), || {
                format!(
                    "{} settled by the venue at {at:?}, before it resolved at {}",
                    t.slug,
                    end + RESOLUTION_DELAY
                )
            });
        }
    }
    let mut equity = rust_decimal::Decimal::from(STARTING_CAPITAL);
    for t in &ts {
        equity += t.pnl;
        f.check(t.equity_after == equity, || {
            format!(
                "{}: equity after {} ≠ {} (the previous equity plus its P&L)",
                t.slug, t.equity_after, equity
            )
        });
    }

    // The ledger: same records as the journals; what is not settled is still open there.
    let ledger = Ledger::open(&s.out.join(LEDGER_FILE));
    let Ok(ledger) = ledger else {
        f.check(false, || "the ledger does not open".into());
        return;
    };
    let Ok(Some(session)) = ledger.latest_session() else {
        f.check(false, || "no session in the ledger".into());
        return;
    };
    f.check(
        ledger.predictions(session.id).ok().as_ref() == Some(&prediction_lines),
        || "predictions.jsonl differs from the ledger's records".into(),
    );
    // trades.jsonl is written as trades settle, and the ledger lists them in that order.
    f.check(
        ledger.trades(session.id).ok().as_ref() == Some(&s.trade_lines()),
        || "trades.jsonl holds other lines than the ledger's records".into(),
    );
    let open: BTreeSet<i64> = ledger
        .open_positions(session.id)
        .unwrap_or_default()
        .iter()
        .map(|p| p.fill.window_start)
        .collect();
    let accounted: BTreeSet<i64> = settled.union(&open).copied().collect();
    let wanted: BTreeSet<i64> = approved.keys().copied().collect();
    f.check(accounted == wanted && settled.is_disjoint(&open), || {
        format!("approved {wanted:?}, settled {settled:?}, still open {open:?}: a trade was lost")
    });
    let equity_lines = lines_of(&s.out.join("equity_curve.csv"));
    f.check(equity_lines == 2 + ts.len(), || {
        format!(
            "equity_curve.csv has {equity_lines} lines for {} trades (header, start, one each)",
            ts.len()
        )
    });
    let status = s.status();
    f.check(status.status.success(), || {
        format!("`updown status` failed: {}", status.stderr)
    });
    if open.is_empty() {
        f.check(status.stdout.contains("open       no position"), || {
            format!("`updown status` shows an open position:\n{}", status.stdout)
        });
        f.check(
            status
                .stdout
                .contains(&format!("equity     ${} ", session.account.equity())),
            || format!("`updown status` equity:\n{}", status.stdout),
        );
        f.check(session.account.equity() == equity, || {
            format!(
                "the ledger's equity {} ≠ the trades' {equity}",
                session.account.equity()
            )
        });
    } else {
        for w in &open {
            f.check(
                status.stdout.contains(&format!("in window starting {w}")),
                || {
                    format!(
                        "`updown status` does not show the open position of {w}:\n{}",
                        status.stdout
                    )
                },
            );
        }
    }
}

fn lines_of(path: &Path) -> usize {
    lines(path).len()
}

fn check_case(s: &Session, case: &Case, c: Check, f: &mut Findings) {
    let ps: Vec<PredictionRecord> = s
        .prediction_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ts: Vec<TradeRecord> = s
        .trade_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let t = &s.timeline;
    match c {
        Applied(prefix, n) => {
            let got = applied(&s.applied, prefix);
            f.check(got >= n, || {
                format!("the venue applied {got} faults `{prefix}…`, expected {n}")
            });
        }
        Reconnected(service) => {
            let (before, after) = (
                t.before.ws_connections_to(service),
                s.after.ws_connections_to(service),
            );
            f.check(before >= 1 && after > before, || {
                format!(
                    "{service}: {before} connections before the fault, {after} at the end: \
                     no reconnect"
                )
            });
        }
        Backfilled => {
            let path = "/binance/api/v3/klines";
            let (before, after) = (t.before.requests_to(path), s.after.requests_to(path));
            f.check(after > before, || {
                format!("no klines fetched after the fault ({before} before, {after} at the end)")
            });
        }
        Stalled(service) => {
            let (Some(start), Some(end), Some((seen, stats))) = (t.injected, t.ended, &t.in_stall)
            else {
                f.check(false, || "the stall was not watched".into());
                return;
            };
            f.check(*seen >= start + (end - start) / 2, || {
                format!("the stall ({start}..{end}) was last watched at {seen}, too early")
            });
            let sent = |s: &Stats| s.ws_frames_sent.get(&service).copied().unwrap_or(0);
            let during = sent(stats) - sent(&t.before);
            f.check(during <= 4, || {
                format!("{service}: the venue sent {during} frames during the stall")
            });
        }
        Logged(text) => f.check(s.log().contains(text), || {
            format!("the log never says {text:?}")
        }),
        StaleWhile { after, before_end } => {
            let (Some(start), Some(end)) = (t.injected, t.ended) else {
                f.check(false, || format!("the fault's stretch was not seen: {t:?}"));
                return;
            };
            let (from, to) = (start + after, end - before_end);
            let inside: Vec<&PredictionRecord> = ps
                .iter()
                .filter(|p| (from..=to).contains(&p.decision_time))
                .collect();
            f.check(!inside.is_empty(), || {
                format!("no window was decided while the feed was stale ({from}..={to})")
            });
            for p in inside {
                f.check(
                    p.verdict == "refused"
                        && p.reason_code.as_deref() == Some("stale_data")
                        && p.detail.as_deref().unwrap_or("").contains("feed stale"),
                    || {
                        format!(
                            "{} decided at {} while the feed was stale ({from}..={to}): \
                             {} {:?} {:?}",
                            p.slug, p.decision_time, p.verdict, p.reason_code, p.detail
                        )
                    },
                );
            }
        }
        Resumed => {
            let Some(end) = t.ended else {
                f.check(false, || "the fault's end was not seen".into());
                return;
            };
            let later: Vec<&PredictionRecord> =
                ps.iter().filter(|p| p.decision_time > end + 150).collect();
            f.check(later.iter().any(|p| p.verdict == "approved"), || {
                format!(
                    "no window approved after the fault ended at {end} ({} decided after it)",
                    later.len()
                )
            });
        }
        SettledBy { by, not_before } => {
            let hit: Vec<i64> = ps
                .iter()
                .filter(|p| {
                    p.verdict == "approved" && t.resolution_windows.contains(&p.interval_start)
                })
                .map(|p| p.interval_start)
                .collect();
            f.check(!hit.is_empty(), || {
                format!(
                    "no approved window among those with the resolution fault {:?}",
                    case.resolution.map(|r| r.1)
                )
            });
            for w in hit {
                let trade = ts.iter().find(|t| t.interval_start == w);
                f.check(trade.is_some_and(|t| t.settled_by == by), || {
                    format!("window {w}: settled {trade:?}, expected by {by}")
                });
                let at = t.settled_at.get(&w).copied();
                f.check(at.is_some_and(|at| at >= w + WINDOW + not_before), || {
                    format!(
                        "window {w} settled at {at:?}, before {} (its end + {not_before} s)",
                        w + WINDOW + not_before
                    )
                });
            }
        }
    }
}
