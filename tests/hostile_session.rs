//! Every hostile script in `tests/scripts/hostile/` through a real session of the real
//! binary: `updown run --strategy <file> --replay <bundled data> --intervals 8` with a
//! temporary config (`risk.max_consecutive_script_failures = 3`, small sandbox limits).
//!
//! - A script that cannot load (syntax error, no `predict`, wrong `size` arity, `eval`, an
//!   import outside its folder, an endless top level) is refused before the session starts:
//!   exit 2, the message names the file (and the line and column where there is one), and
//!   nothing is recorded.
//! - A script whose calls fail (endless loop, recursion, huge data, throw, bad return, writes
//!   to `ctx`, memory abuse, deadline) costs each window a SKIP journaled with the failure's
//!   `script_*` code and a reason naming the file; after exactly 3 such windows the session
//!   halts with `script_failures` (exit 3), `updown status` shows it, and the journals hold
//!   one line per decided window and no trade, the same lines as the ledger.
//! - A stake that is NaN, infinite, negative or not a number is refused as `invalid_stake` and
//!   counts as a failure (halt after 3); a billion-dollar stake is approved at exactly
//!   `risk.max_stake` (25) with `clamped_to_max_stake`, whatever the script calls its own
//!   limit.
//! - A script that fails only every other window never halts: the counter resets on each
//!   good call, and the session completes.
//!
//! Cases are tables; every mismatch is collected with the script's name, so one run says
//! which scripts misbehaved and how.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use updown::ledger::records::{PredictionRecord, TradeRecord};
use updown::ledger::{LEDGER_FILE, Ledger};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";
const HOSTILE: &str = "tests/scripts/hostile";

/// Windows asked for with `--intervals`.
const INTERVALS: usize = 8;
/// `risk.max_consecutive_script_failures` in the temporary config.
const LIMIT: usize = 3;
/// `risk.max_stake` (the default).
const MAX_STAKE: &str = "25";
/// No run may take longer than this (the sandbox stops every call long before).
const RUN_BOUND: Duration = Duration::from_secs(60);

/// What a hostile script must lead to.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused at load: exit 2, these pieces in the message, nothing recorded.
    Refused(&'static [&'static str]),
    /// Every window is a SKIP with this `script_*` code and these pieces in the reason; the
    /// session halts on `script_failures` after [`LIMIT`] windows.
    Fails(&'static str, &'static [&'static str]),
    /// `size` asks for this invalid stake (as journaled): refused `invalid_stake` in every
    /// window, counted as a failure, halt after [`LIMIT`] windows.
    InvalidStake(&'static str),
    /// A huge stake: approved at most at [`MAX_STAKE`], the first window exactly at it, each
    /// with `clamped_to_max_stake`.
    Clamped,
    /// Never fails [`LIMIT`] times in a row: the session completes every window.
    Completes,
}

struct Case {
    /// File name in `tests/scripts/hostile/`.
    script: &'static str,
    /// `[sandbox]` settings on top of the test's defaults.
    sandbox: &'static [(&'static str, &'static str)],
    /// `--param k=v` flags.
    params: &'static [&'static str],
    expect: Expect,
}

const fn case(script: &'static str, expect: Expect) -> Case {
    Case {
        script,
        sandbox: &[],
        params: &[],
        expect,
    }
}

use Expect::{Clamped, Completes, Fails, InvalidStake, Refused};

const LOAD_TIME: &[Case] = &[
    case(
        "syntax_error.rhai",
        Refused(&["syntax error at line 4, column 19"]),
    ),
    case("no_predict.rhai", Refused(&["no `fn predict(ctx)`"])),
    case(
        "size_wrong_arity.rhai",
        Refused(&["`size` must take two parameters `(ctx, decision)`"]),
    ),
    case(
        "eval.rhai",
        Refused(&["line 4, column 13", "reserved keyword 'eval' is disabled"]),
    ),
    case(
        "import_parent.rhai",
        Refused(&[
            "import \"../ok/lib_math\" refused",
            "`..` are not allowed",
            "line 3, position 8",
        ]),
    ),
    case(
        "import_absolute.rhai",
        Refused(&[
            "import \"/etc/passwd\" refused",
            "absolute paths",
            "line 3, position 8",
        ]),
    ),
    case(
        "top_level_loop.rhai",
        Refused(&["top-level code failed", "Too many operations", "(line 5, "]),
    ),
];

const PER_CALL: &[Case] = &[
    case(
        "infinite_loop.rhai",
        Fails("script_operation_budget", &["Too many operations"]),
    ),
    Case {
        sandbox: &[("max_map_size", "100")],
        ..case(
            "huge_map_index.rhai",
            Fails("script_operation_budget", &["Too many operations"]),
        )
    },
    Case {
        // Only the wall clock can stop it: an operation budget it never reaches.
        sandbox: &[("max_operations", "100000000"), ("call_timeout_ms", "20")],
        ..case(
            "busy_wait.rhai",
            Fails(
                "script_timeout",
                &["wall-clock deadline (sandbox.call_timeout_ms)"],
            ),
        )
    },
    case(
        "deep_recursion.rhai",
        Fails("script_call_depth", &["Stack overflow"]),
    ),
    case(
        "huge_string.rhai",
        Fails("script_data_too_large", &["Length of string too large"]),
    ),
    case(
        "huge_array.rhai",
        Fails("script_data_too_large", &["array", "too large"]),
    ),
    Case {
        sandbox: &[("max_map_size", "100")],
        ..case(
            "huge_map.rhai",
            Fails("script_data_too_large", &["object map too large"]),
        )
    },
    case(
        "throw.rhai",
        Fails("script_runtime_error", &["boom", "(line 4, position 5)"]),
    ),
    case(
        "undefined_fn.rhai",
        Fails(
            "script_runtime_error",
            &["Function not found: no_such_function"],
        ),
    ),
    case(
        "period_zero.rhai",
        Fails(
            "script_runtime_error",
            &["rsi: period must be between 1 and 10000, got 0"],
        ),
    ),
    case(
        "period_negative.rhai",
        Fails(
            "script_runtime_error",
            &["ema: period must be between 1 and 10000, got -9"],
        ),
    ),
    Case {
        params: &["fail=true"],
        ..case(
            "fail_after_memory_write.rhai",
            Fails("script_runtime_error", &["failing after a memory write"]),
        )
    },
    case(
        "not_a_map.rhai",
        Fails(
            "script_bad_return",
            &[
                "predict must return up(..), down(..) or skip(..)",
                "got string",
            ],
        ),
    ),
    case(
        "typo_key.rhai",
        Fails("script_bad_return", &["unknown key `sied` in the decision"]),
    ),
    case(
        "confidence_nan.rhai",
        Fails(
            "script_bad_return",
            &["decision `confidence` must be between 0 and 1, got NaN"],
        ),
    ),
    case(
        "confidence_negative.rhai",
        Fails(
            "script_bad_return",
            &["decision `confidence` must be between 0 and 1, got -0.1"],
        ),
    ),
    case(
        "confidence_too_high.rhai",
        Fails(
            "script_bad_return",
            &["decision `confidence` must be between 0 and 1, got 1.5"],
        ),
    ),
    case(
        "prob_out_of_range.rhai",
        Fails(
            "script_bad_return",
            &["decision `prob` must be between 0 and 1, got 1.2"],
        ),
    ),
    case(
        "ctx_write_now.rhai",
        Fails("script_runtime_error", &["No writable property 'now'"]),
    ),
    case(
        "ctx_write_params.rhai",
        Fails(
            "script_runtime_error",
            &["ctx is read-only: cannot assign to ctx.params"],
        ),
    ),
    case(
        "ctx_write_market.rhai",
        Fails(
            "script_runtime_error",
            &["ctx is read-only: cannot assign to ctx.market"],
        ),
    ),
    case(
        "risk_write_account.rhai",
        Fails(
            "script_runtime_error",
            &[
                "ctx is read-only: cannot assign to ctx.account",
                "(line 5, position 9)",
            ],
        ),
    ),
    case(
        "risk_set_max_stake.rhai",
        Fails(
            "script_runtime_error",
            &["Function not found: set_max_stake"],
        ),
    ),
    case(
        "risk_via_ctx.rhai",
        Fails("script_runtime_error", &["Unknown property 'risk'"]),
    ),
    Case {
        sandbox: &[("max_memory_bytes", "1000")],
        params: &["grow=true"],
        ..case(
            "memory_too_big.rhai",
            Fails(
                "script_memory",
                &["over the limit of 1000 (sandbox.max_memory_bytes)"],
            ),
        )
    },
    Case {
        params: &["clobber=true"],
        ..case(
            "memory_not_map.rhai",
            Fails("script_memory", &["`this` must stay a map"]),
        )
    },
    Case {
        // The case that broke only after a resume: a closure over ctx kept in memory.
        params: &["keep=closure"],
        ..case(
            "memory_not_data.rhai",
            Fails(
                "script_memory",
                &["this.nested.list[6] holds a function pointer or closure"],
            ),
        )
    },
];

const STAKES: &[Case] = &[
    case("stake_nan.rhai", InvalidStake("NaN")),
    case("stake_infinite.rhai", InvalidStake("inf")),
    case("stake_negative.rhai", InvalidStake("-5")),
    case("stake_string.rhai", InvalidStake("<string>")),
    case("stake_huge.rhai", Clamped),
    case("risk_const_max_stake.rhai", Clamped),
];

const SURVIVORS: &[Case] = &[
    case("fail_every_other.rhai", Completes),
    Case {
        // The flood must be capped, not fail the call: a budget it fits in.
        sandbox: &[
            ("max_operations", "500000"),
            ("max_log_lines_per_call", "5"),
        ],
        ..case("log_flood.rhai", Completes)
    },
];

/// Scripts the session table does not run, with the test that covers them instead.
const ELSEWHERE: &[(&str, &str)] = &[(
    "import_symlink.rhai",
    "import_through_a_symlink_leading_outside_refuses_the_run (needs a symlink made by the test)",
)];

// ---------------------------------------------------------------------------------------
// Running the binary.

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `updown <args>` from the repository root, output to files, killed after [`RUN_BOUND`].
fn updown(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().expect("temp dir");
    let (o, e) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(REPO)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&o).expect("stdout file"))
        .stderr(fs::File::create(&e).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("updown {args:?} did not finish within {RUN_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        code: status.code(),
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
    }
}

/// A temporary config: the kill switch at [`LIMIT`], small sandbox limits, `extra` on top.
fn write_config(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let mut sandbox: BTreeMap<&str, &str> =
        [("max_operations", "20000"), ("call_timeout_ms", "5000")].into();
    sandbox.extend(extra.iter().copied());
    let mut text = format!("[risk]\nmax_consecutive_script_failures = {LIMIT}\n\n[sandbox]\n");
    for (k, v) in sandbox {
        let _ = writeln!(text, "{k} = {v}");
    }
    let path = dir.join("config.toml");
    fs::write(&path, text).expect("write config");
    path
}

/// One finished run of a case: the process and what it left in its output folder.
struct Session {
    script: String,
    config: PathBuf,
    out: PathBuf,
    ran: Ran,
    _dir: tempfile::TempDir,
}

fn run_session(script: &str, sandbox: &[(&str, &str)], params: &[&str]) -> Session {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), sandbox);
    let out = dir.path().join("out");
    let intervals = INTERVALS.to_string();
    let mut args = vec![
        "run",
        "--strategy",
        script,
        "--replay",
        DATA,
        "--out",
        out.to_str().expect("UTF-8 temp path"),
        "--intervals",
        &intervals,
        "--config",
        config.to_str().expect("UTF-8 temp path"),
    ];
    for p in params {
        args.extend(["--param", p]);
    }
    let ran = updown(&args);
    Session {
        script: script.to_string(),
        config,
        out,
        ran,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// Reading what a run left.

fn lines(path: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

impl Session {
    fn prediction_lines(&self) -> Vec<String> {
        lines(&self.out.join("predictions.jsonl")).unwrap_or_default()
    }
    fn predictions(&self) -> Result<Vec<PredictionRecord>, String> {
        self.prediction_lines()
            .iter()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("bad prediction line {l}: {e}")))
            .collect()
    }
    fn trade_lines(&self) -> Vec<String> {
        lines(&self.out.join("trades.jsonl")).unwrap_or_default()
    }
    fn trades(&self) -> Result<Vec<TradeRecord>, String> {
        self.trade_lines()
            .iter()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("bad trade line {l}: {e}")))
            .collect()
    }
    /// The ledger's prediction and trade lines for the latest session, if there is a ledger.
    fn ledger(&self) -> Option<(Vec<String>, Vec<String>, Option<String>)> {
        let path = self.out.join(LEDGER_FILE);
        if !path.exists() {
            return None;
        }
        let ledger = Ledger::open(&path).expect("the ledger opens");
        let session = ledger.latest_session().expect("read")?;
        Some((
            ledger.predictions(session.id).expect("predictions"),
            ledger.trades(session.id).expect("trades"),
            session.memory,
        ))
    }
    fn status(&self) -> Ran {
        updown(&[
            "status",
            "--config",
            self.config.to_str().expect("UTF-8"),
            "--out",
            self.out.to_str().expect("UTF-8"),
        ])
    }
    /// The first window's slug from the summary line `8 windows from <slug> · ...`.
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
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.ran.code,
            self.ran.stdout.trim_end(),
            tail(&self.ran.stderr, 40)
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Mismatches for one script.
struct Findings {
    script: String,
    problems: Vec<String>,
}

impl Findings {
    fn new(script: &str) -> Self {
        Findings {
            script: script.to_string(),
            problems: Vec::new(),
        }
    }
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(what());
        }
    }
}

/// Panic with every script that was not contained as expected, if any.
fn report(all: Vec<(Findings, String)>) {
    let mut text = String::new();
    for (f, context) in &all {
        if f.problems.is_empty() {
            continue;
        }
        let _ = writeln!(text, "\n=== {} misbehaved:", f.script);
        for p in &f.problems {
            let _ = writeln!(text, "  - {p}");
        }
        let _ = writeln!(text, "{context}");
    }
    assert!(
        text.is_empty(),
        "hostile scripts not contained as expected:{text}"
    );
}

// ---------------------------------------------------------------------------------------
// The checks per kind.

/// Refused before the session started: exit 2, the file and the pieces named, nothing
/// recorded.
fn check_refused(s: &Session, pieces: &[&str], f: &mut Findings) {
    f.check(s.ran.code == Some(2), || {
        format!("exit code {:?}, expected 2 (refused)", s.ran.code)
    });
    let err = &s.ran.stderr;
    f.check(err.contains("error:"), || "no `error:` on stderr".into());
    f.check(err.contains(&s.script), || {
        format!("the message does not name the file {}", s.script)
    });
    for p in pieces {
        f.check(err.contains(p), || format!("the message lacks {p:?}"));
    }
    f.check(s.prediction_lines().is_empty(), || {
        format!("predictions were journaled: {:?}", s.prediction_lines())
    });
    f.check(s.trade_lines().is_empty(), || {
        "trades were journaled".into()
    });
    f.check(!s.out.join(LEDGER_FILE).exists(), || {
        "a ledger (a session) was created".into()
    });
    f.check(!s.ran.stdout.contains("Session"), || {
        "a session summary was printed".into()
    });
}

/// Windows are consecutive, aligned, start at the run's first window, and each appears once.
fn check_windows(s: &Session, preds: &[PredictionRecord], f: &mut Findings) {
    let Some(first) = preds.first() else {
        f.check(false, || "no prediction lines".into());
        return;
    };
    f.check(Some(first.slug.as_str()) == s.first_slug(), || {
        format!(
            "first journaled window {} is not the run's first window {:?}",
            first.slug,
            s.first_slug()
        )
    });
    for (i, p) in preds.iter().enumerate() {
        let want = first.interval_start + 300 * i as i64;
        f.check(
            p.interval_start == want && p.slug == format!("btc-updown-5m-{want}"),
            || format!("line {} is window {}, expected {want}", i + 1, p.slug),
        );
    }
}

/// The journals hold exactly what the ledger holds.
fn check_ledger_matches(s: &Session, f: &mut Findings) {
    match s.ledger() {
        None => f.check(false, || "no ledger or no session in it".into()),
        Some((preds, trades, _)) => {
            f.check(preds == s.prediction_lines(), || {
                format!(
                    "predictions.jsonl ({} lines) differs from the ledger ({} records)",
                    s.prediction_lines().len(),
                    preds.len()
                )
            });
            f.check(trades == s.trade_lines(), || {
                "trades.jsonl differs from the ledger".into()
            });
        }
    }
}

/// Halted by the kill switch after exactly [`LIMIT`] windows, shown by `status`, no trade.
fn check_halted_on_failures(s: &Session, f: &mut Findings) {
    f.check(s.ran.code == Some(3), || {
        format!("exit code {:?}, expected 3 (halted)", s.ran.code)
    });
    f.check(
        s.ran.stdout.contains(&format!(
            "Session HALTED: script_failures — {LIMIT} consecutive script failures (risk.max_consecutive_script_failures = {LIMIT})"
        )),
        || "the summary does not report the script_failures halt".into(),
    );
    f.check(s.prediction_lines().len() == LIMIT, || {
        format!(
            "{} prediction lines, expected exactly {LIMIT} (one per decided window until the halt)",
            s.prediction_lines().len()
        )
    });
    f.check(s.trade_lines().is_empty(), || {
        format!("trades were recorded: {:?}", s.trade_lines())
    });
    match lines(&s.out.join("equity_curve.csv")) {
        None => f.check(false, || "no equity_curve.csv".into()),
        Some(eq) => f.check(eq.iter().skip(1).all(|l| l.ends_with(",100")), || {
            format!("equity moved: {eq:?}")
        }),
    }
    check_ledger_matches(s, f);
    let status = s.status();
    f.check(status.code == Some(0), || {
        format!("status exited {:?}: {}", status.code, status.stderr)
    });
    f.check(
        status.stdout.contains("HALTED") && status.stdout.contains("script_failures"),
        || format!("`updown status` does not show the halt:\n{}", status.stdout),
    );
}

fn check_fails(s: &Session, code: &str, pieces: &[&str], f: &mut Findings) {
    let preds = match s.predictions() {
        Ok(p) => p,
        Err(e) => return f.check(false, || e),
    };
    check_windows(s, &preds, f);
    for (i, p) in preds.iter().enumerate() {
        let n = i + 1;
        f.check(p.verdict == "skipped" && p.side == "skip", || {
            format!("window {n}: {} {}, expected a SKIP", p.verdict, p.side)
        });
        f.check(p.reason_code.as_deref() == Some(code), || {
            format!(
                "window {n}: reason_code {:?}, expected {code}",
                p.reason_code
            )
        });
        f.check(p.reason.contains(&s.script), || {
            format!(
                "window {n}: the reason does not name the file: {:?}",
                p.reason
            )
        });
        for piece in pieces {
            f.check(p.reason.contains(piece), || {
                format!("window {n}: the reason lacks {piece:?}: {:?}", p.reason)
            });
        }
        f.check(
            p.stake_asked.is_none() && p.stake_approved.is_none(),
            || format!("window {n}: a stake was asked or approved"),
        );
    }
    check_halted_on_failures(s, f);
}

fn check_invalid_stake(s: &Session, asked: &str, f: &mut Findings) {
    let preds = match s.predictions() {
        Ok(p) => p,
        Err(e) => return f.check(false, || e),
    };
    check_windows(s, &preds, f);
    for (i, p) in preds.iter().enumerate() {
        let n = i + 1;
        f.check(p.verdict == "refused" && p.side == "up", || {
            format!(
                "window {n}: {} {}, expected a refused UP",
                p.verdict, p.side
            )
        });
        f.check(p.reason_code.as_deref() == Some("invalid_stake"), || {
            format!(
                "window {n}: reason_code {:?}, expected invalid_stake",
                p.reason_code
            )
        });
        f.check(p.stake_asked.as_deref() == Some(asked), || {
            format!(
                "window {n}: stake_asked {:?}, expected {asked:?}",
                p.stake_asked
            )
        });
        f.check(p.stake_approved.is_none(), || {
            format!("window {n}: approved {:?}", p.stake_approved)
        });
    }
    check_halted_on_failures(s, f);
}

fn check_clamped(s: &Session, f: &mut Findings) {
    let preds = match s.predictions() {
        Ok(p) => p,
        Err(e) => return f.check(false, || e),
    };
    check_windows(s, &preds, f);
    let cap: rust_decimal::Decimal = MAX_STAKE.parse().expect("decimal");
    let first = preds.first();
    f.check(
        first.is_some_and(|p| {
            p.verdict == "approved"
                && p.stake_approved == Some(cap)
                && p.stake_asked.as_deref() == Some("1000000000")
                && p.detail.as_deref().is_some_and(|d| d.contains("clamped_to_max_stake"))
        }),
        || format!("the first window is not approved at exactly {MAX_STAKE} with clamped_to_max_stake: {first:?}"),
    );
    for (i, p) in preds.iter().enumerate() {
        let n = i + 1;
        if let Some(x) = p.stake_approved {
            f.check(x <= cap, || {
                format!("window {n}: approved {x} > {MAX_STAKE}")
            });
            f.check(
                p.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("clamped_to_max_stake")),
                || {
                    format!(
                        "window {n}: approved without clamped_to_max_stake: {:?}",
                        p.detail
                    )
                },
            );
        }
        f.check(
            !p.reason_code
                .as_deref()
                .is_some_and(|c| c.starts_with("script_") || c == "invalid_stake"),
            || {
                format!(
                    "window {n}: counted as a script failure: {:?}",
                    p.reason_code
                )
            },
        );
    }
    match s.trades() {
        Err(e) => f.check(false, || e),
        Ok(trades) => {
            f.check(!trades.is_empty(), || "nothing was traded".into());
            f.check(trades.first().is_some_and(|t| t.stake == cap), || {
                format!(
                    "the first trade's stake is not {MAX_STAKE}: {:?}",
                    trades.first()
                )
            });
            f.check(trades.iter().all(|t| t.stake <= cap), || {
                "a trade staked more than the cap".into()
            });
        }
    }
    // The session may end on the drawdown limit (losing $25 stakes), never on script failures.
    f.check(
        s.ran.code == Some(0)
            || (s.ran.code == Some(3) && s.ran.stdout.contains("Session HALTED: max_drawdown")),
        || {
            format!(
                "exit {:?}: neither complete nor a drawdown halt",
                s.ran.code
            )
        },
    );
    f.check(!s.ran.stdout.contains("script_failures"), || {
        "halted on script failures".into()
    });
    check_ledger_matches(s, f);
}

fn check_completes(s: &Session, f: &mut Findings) {
    f.check(s.ran.code == Some(0), || {
        format!("exit code {:?}, expected 0 (complete)", s.ran.code)
    });
    f.check(s.ran.stdout.contains("Session complete."), || {
        "no `Session complete.`".into()
    });
    let preds = match s.predictions() {
        Ok(p) => p,
        Err(e) => return f.check(false, || e),
    };
    check_windows(s, &preds, f);
    f.check(preds.len() == INTERVALS, || {
        format!("{} prediction lines, expected {INTERVALS}", preds.len())
    });
    let mut in_a_row = 0;
    for p in &preds {
        let failed = p
            .reason_code
            .as_deref()
            .is_some_and(|c| c.starts_with("script_") && c != "script_skip");
        in_a_row = if failed { in_a_row + 1 } else { 0 };
        f.check(in_a_row < LIMIT, || {
            format!("{LIMIT} failures in a row by {}", p.slug)
        });
    }
    check_ledger_matches(s, f);
    let status = s.status();
    f.check(status.stdout.contains("not halted"), || {
        format!("`updown status` shows a halt:\n{}", status.stdout)
    });
}

fn run_table(cases: &[Case]) {
    let mut all = Vec::new();
    for c in cases {
        let script = format!("{HOSTILE}/{}", c.script);
        let s = run_session(&script, c.sandbox, c.params);
        let mut f = Findings::new(c.script);
        match c.expect {
            Refused(pieces) => check_refused(&s, pieces, &mut f),
            Fails(code, pieces) => check_fails(&s, code, pieces, &mut f),
            InvalidStake(asked) => check_invalid_stake(&s, asked, &mut f),
            Clamped => check_clamped(&s, &mut f),
            Completes => check_completes(&s, &mut f),
        }
        if c.script == "fail_every_other.rhai" {
            check_alternation(&s, &mut f);
        }
        if c.script == "log_flood.rhai" {
            let log = fs::read_to_string(s.out.join("updown.log")).unwrap_or_default();
            f.check(
                log.contains("4995 log lines dropped (sandbox.max_log_lines_per_call)"),
                || "the log does not say the flood was capped".into(),
            );
        }
        all.push((f, s.context()));
    }
    report(all);
}

/// `fail_every_other`: odd windows trade, even windows fail in `size`; the memory count
/// survives the failures (it is written by `predict`, which succeeded).
fn check_alternation(s: &Session, f: &mut Findings) {
    let Ok(preds) = s.predictions() else { return };
    for (i, p) in preds.iter().enumerate() {
        let n = i + 1;
        if n % 2 == 1 {
            f.check(
                p.verdict == "approved" && p.reason == format!("call {n}"),
                || {
                    format!(
                        "window {n}: expected an approved trade, got {} {:?}",
                        p.verdict, p.reason
                    )
                },
            );
        } else {
            f.check(
                p.reason_code.as_deref() == Some("script_runtime_error")
                    && p.reason
                        .contains(&format!("even call {n}: failing on purpose"))
                    && p.reason.contains(&s.script),
                || {
                    format!(
                        "window {n}: expected a size failure, got {:?} {:?}",
                        p.reason_code, p.reason
                    )
                },
            );
        }
    }
    match s.ledger() {
        Some((_, _, Some(memory))) => f.check(
            serde_json::from_str::<serde_json::Value>(&memory).ok()
                == Some(serde_json::json!({ "n": INTERVALS })),
            || format!("the script's memory is {memory}, expected n = {INTERVALS}"),
        ),
        _ => f.check(false, || "no script memory in the ledger".into()),
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn load_time_problems_refuse_the_run_before_anything_is_recorded() {
    run_table(LOAD_TIME);
}

#[test]
fn failing_calls_skip_each_window_and_halt_after_three_in_a_row() {
    run_table(PER_CALL);
}

#[test]
fn invalid_stakes_are_refused_and_halt_while_huge_stakes_are_clamped() {
    run_table(STAKES);
}

#[test]
fn a_script_failing_every_other_window_and_a_log_flood_never_halt() {
    run_table(SURVIVORS);
}

#[test]
fn import_through_a_symlink_leading_outside_refuses_the_run() {
    let inside = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("temp dir");
    let script = inside.path().join("import_symlink.rhai");
    fs::copy(
        Path::new(REPO).join(HOSTILE).join("import_symlink.rhai"),
        &script,
    )
    .expect("copy script");
    let target = outside.path().join("lib_math.rhai");
    fs::copy(
        Path::new(REPO).join("tests/scripts/ok/lib_math.rhai"),
        &target,
    )
    .expect("copy module");
    std::os::unix::fs::symlink(&target, inside.path().join("escape.rhai")).expect("symlink");
    let s = run_session(script.to_str().expect("UTF-8"), &[], &[]);
    let mut f = Findings::new("import_symlink.rhai");
    check_refused(
        &s,
        &[
            "import \"escape\" refused: it resolves outside the strategies folder",
            "line 3, position 8",
        ],
        &mut f,
    );
    report(vec![(f, s.context())]);
}

#[test]
fn every_hostile_script_has_a_session_case() {
    let mut known: Vec<&str> = [LOAD_TIME, PER_CALL, STAKES, SURVIVORS]
        .iter()
        .flat_map(|t| t.iter().map(|c| c.script))
        .chain(ELSEWHERE.iter().map(|(s, _)| *s))
        .collect();
    known.sort_unstable();
    let before = known.len();
    known.dedup();
    assert_eq!(before, known.len(), "a script has two cases");
    let mut files: Vec<String> = fs::read_dir(Path::new(REPO).join(HOSTILE))
        .expect("hostile folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    files.sort();
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !known.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "hostile scripts without a session case: {missing:?}"
    );
    let stale: Vec<&&str> = known
        .iter()
        .filter(|k| !files.iter().any(|f| f == *k))
        .collect();
    assert!(
        stale.is_empty(),
        "cases for scripts that do not exist: {stale:?}"
    );
}
