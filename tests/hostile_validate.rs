//! `updown validate` on the hostile corpus, without a single hand-written fixture: loading
//! problems are reported with a precise kind, file, line and column, and every other script
//! is caught by the built-in smoke check, which decides the first windows of the bundled
//! real data the way a session would and reports each failure with its kind, file, position
//! (where the engine gives one), call and windows. The shipped strategies still pass.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const HOSTILE: &str = "tests/scripts/hostile";
const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";
const SHIPPED: [&str; 3] = [
    "strategies/rsi_ema.rhai",
    "strategies/rsi_macd_imbalance.rhai",
    "strategies/edge_kelly.rhai",
];
/// Windows the smoke check decides by default.
const WINDOWS: usize = 5;
const RUN_BOUND: Duration = Duration::from_secs(60);

/// Small limits so every contained failure is quick; the memory-abusing scripts get the
/// parameters that turn their abuse on.
const CONFIG: &str = "\
[risk]
max_consecutive_script_failures = 3

[sandbox]
max_operations = 50000
call_timeout_ms = 5000
max_map_size = 100
max_memory_bytes = 1000
max_log_lines_per_call = 5

[params.fail_after_memory_write]
fail = true

[params.memory_too_big]
grow = true

[params.memory_not_map]
clobber = true

[params.memory_not_data]
keep = \"closure\"
";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn updown(cwd: &Path, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let (o, e) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_updown"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&o).expect("stdout file"))
        .stderr(fs::File::create(&e).expect("stderr file"))
        .spawn()
        .expect("the updown binary starts");
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
    Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
    }
}

fn repo() -> &'static Path {
    Path::new(REPO)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    })
}

fn write_config(dir: &Path, text: &str) -> String {
    let p = dir.join("config.toml");
    fs::write(&p, text).expect("write config");
    p.display().to_string()
}

/// Every `.rhai` file of the corpus, as `tests/scripts/hostile/<name>`, sorted.
fn corpus() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(repo().join(HOSTILE))
        .expect("hostile folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .map(|n| format!("{HOSTILE}/{n}"))
        .collect();
    files.sort();
    files
}

/// What `validate` must say about a script.
#[derive(Clone, Copy, Debug)]
enum Says {
    /// Does not load: `load_error.kind`, pieces of its message, and the line and column
    /// (`Some((line, None))` when only the line is stable).
    Load(
        &'static str,
        &'static [&'static str],
        Option<(u64, Option<u64>)>,
    ),
    /// Loads, and the smoke check fails in every window with this kind, in this call, with
    /// these pieces in the message, at this line and column if the engine gives one.
    Smoke(
        &'static str,
        &'static str,
        &'static [&'static str],
        Option<(u64, u64)>,
    ),
    /// Passes the smoke check (the abuse is contained), with these warning kinds.
    Passes(&'static [&'static str]),
    /// Checked by its own code below.
    Special,
}

use Says::{Load, Passes, Smoke, Special};

fn expectations() -> BTreeMap<&'static str, Says> {
    const OPS: &str = "script_operation_budget";
    const RUNTIME: &str = "script_runtime_error";
    const BAD: &str = "script_bad_return";
    const LARGE: &str = "script_data_too_large";
    [
        // Loading.
        (
            "syntax_error.rhai",
            Load(
                "syntax_error",
                &["Expecting ')' for a matching ( in this expression"],
                Some((4, Some(19))),
            ),
        ),
        (
            "eval.rhai",
            Load(
                "eval_disabled",
                &["reserved keyword 'eval' is disabled"],
                Some((4, Some(13))),
            ),
        ),
        (
            "no_predict.rhai",
            Load("missing_predict", &["no `fn predict(ctx)`"], None),
        ),
        (
            "size_wrong_arity.rhai",
            Load(
                "size_signature",
                &["`size` must take two parameters `(ctx, decision)`, found one taking 1"],
                None,
            ),
        ),
        (
            "import_parent.rhai",
            Load(
                "import_refused",
                &["import \"../ok/lib_math\" refused: absolute paths and `..` are not allowed"],
                Some((3, Some(8))),
            ),
        ),
        (
            "import_absolute.rhai",
            Load(
                "import_refused",
                &["import \"/etc/passwd\" refused: absolute paths and `..` are not allowed"],
                Some((3, Some(8))),
            ),
        ),
        (
            // In the corpus folder `escape.rhai` does not exist; the symlink case is below.
            "import_symlink.rhai",
            Load(
                "import_refused",
                &["import \"escape\" refused: no such module"],
                Some((3, Some(8))),
            ),
        ),
        (
            "top_level_loop.rhai",
            Load(
                OPS,
                &["top-level code failed", "Too many operations"],
                Some((5, None)),
            ),
        ),
        // Limits (Rhai reports no position for a broken limit: the call is named instead).
        (
            "infinite_loop.rhai",
            Smoke(OPS, "predict", &["Too many operations"], None),
        ),
        (
            "huge_map_index.rhai",
            Smoke(OPS, "predict", &["Too many operations"], None),
        ),
        // Under this config's budget; its deadline case is a test of its own.
        (
            "busy_wait.rhai",
            Smoke(OPS, "predict", &["Too many operations"], None),
        ),
        (
            "deep_recursion.rhai",
            Smoke("script_call_depth", "predict", &["Stack overflow"], None),
        ),
        (
            "huge_string.rhai",
            Smoke(LARGE, "predict", &["Length of string too large"], None),
        ),
        (
            "huge_array.rhai",
            Smoke(LARGE, "predict", &["array", "too large"], None),
        ),
        (
            "huge_map.rhai",
            Smoke(LARGE, "predict", &["object map too large"], None),
        ),
        // Throwing and calling what is not there.
        (
            "throw.rhai",
            Smoke(RUNTIME, "predict", &["Runtime error: boom"], Some((4, 5))),
        ),
        (
            "undefined_fn.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["Function not found: no_such_function"],
                Some((4, 13)),
            ),
        ),
        (
            "period_zero.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["rsi: period must be between 1 and 10000, got 0"],
                Some((4, 17)),
            ),
        ),
        (
            "period_negative.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["ema: period must be between 1 and 10000, got -9"],
                Some((4, 17)),
            ),
        ),
        (
            "fail_after_memory_write.rhai",
            Smoke(RUNTIME, "predict", &["failing after a memory write"], None),
        ),
        // Wrong answers.
        (
            "not_a_map.rhai",
            Smoke(
                BAD,
                "predict",
                &[
                    "predict must return up(..), down(..) or skip(..)",
                    "got string",
                ],
                None,
            ),
        ),
        (
            "typo_key.rhai",
            Smoke(
                BAD,
                "predict",
                &["unknown key `sied` in the decision"],
                None,
            ),
        ),
        (
            "confidence_nan.rhai",
            Smoke(
                BAD,
                "predict",
                &["decision `confidence` must be between 0 and 1, got NaN"],
                None,
            ),
        ),
        (
            "confidence_negative.rhai",
            Smoke(
                BAD,
                "predict",
                &["decision `confidence` must be between 0 and 1, got -0.1"],
                None,
            ),
        ),
        (
            "confidence_too_high.rhai",
            Smoke(
                BAD,
                "predict",
                &["decision `confidence` must be between 0 and 1, got 1.5"],
                None,
            ),
        ),
        (
            "prob_out_of_range.rhai",
            Smoke(
                BAD,
                "predict",
                &["decision `prob` must be between 0 and 1, got 1.2"],
                None,
            ),
        ),
        // Writing to ctx, reaching for the risk settings.
        (
            "ctx_write_now.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["No writable property 'now'"],
                Some((4, 9)),
            ),
        ),
        (
            "ctx_write_params.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["ctx is read-only: cannot assign to ctx.params"],
                None,
            ),
        ),
        (
            "ctx_write_market.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["ctx is read-only: cannot assign to ctx.market"],
                None,
            ),
        ),
        (
            "risk_write_account.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["ctx is read-only: cannot assign to ctx.account"],
                Some((5, 9)),
            ),
        ),
        (
            "risk_set_max_stake.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["Function not found: set_max_stake"],
                Some((4, 5)),
            ),
        ),
        (
            "risk_via_ctx.rhai",
            Smoke(
                RUNTIME,
                "predict",
                &["Unknown property 'risk'"],
                Some((4, 9)),
            ),
        ),
        // Memory.
        (
            "memory_too_big.rhai",
            Smoke(
                "script_memory",
                "predict",
                &[
                    "over the limit of 1000 (sandbox.max_memory_bytes)",
                    "previous memory was kept",
                ],
                None,
            ),
        ),
        (
            "memory_not_map.rhai",
            Smoke(
                "script_memory",
                "predict",
                &["`this` must stay a map"],
                None,
            ),
        ),
        (
            "memory_not_data.rhai",
            Smoke(
                "script_memory",
                "predict",
                &["this.nested.list[6] holds a function pointer or closure"],
                None,
            ),
        ),
        // Stakes.
        (
            "stake_nan.rhai",
            Smoke("invalid_stake", "size", &["size returned NaN"], None),
        ),
        (
            "stake_infinite.rhai",
            Smoke("invalid_stake", "size", &["size returned inf"], None),
        ),
        (
            "stake_negative.rhai",
            Smoke("invalid_stake", "size", &["size returned -5"], None),
        ),
        (
            "stake_string.rhai",
            Smoke(
                "invalid_stake",
                "size",
                &["size returned a string: a stake must be a number"],
                None,
            ),
        ),
        ("stake_huge.rhai", Passes(&["stake_clamped"])),
        ("risk_const_max_stake.rhai", Passes(&["stake_clamped"])),
        // Contained, not failures.
        ("log_flood.rhai", Passes(&[])),
        ("fail_every_other.rhai", Special),
    ]
    .into_iter()
    .collect()
}

fn strategies(report: &Value) -> BTreeMap<String, &Value> {
    report["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .map(|s| {
            let name = Path::new(s["path"].as_str().expect("path"))
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, s)
        })
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Check one script's entry; returns what is wrong.
fn judge(file: &str, says: Says, s: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    let path = format!("{HOSTILE}/{file}");
    match says {
        Load(kind, pieces, pos) => {
            let e = &s["load_error"];
            check(s["compiled"] == false, "it compiled".into());
            check(
                e["kind"] == kind,
                format!("load_error.kind {}, expected {kind}", e["kind"]),
            );
            check(
                e["file"] == path.as_str(),
                format!("load_error.file {}", e["file"]),
            );
            check(
                text(&s["compile_error"]).contains(&path),
                "compile_error does not name the file".into(),
            );
            for p in pieces {
                check(
                    text(&e["message"]).contains(p),
                    format!("the message lacks {p:?}"),
                );
            }
            if let Some((line, column)) = pos {
                check(
                    e["line"] == line,
                    format!("line {}, expected {line}", e["line"]),
                );
                if let Some(c) = column {
                    check(
                        e["column"] == c,
                        format!("column {}, expected {c}", e["column"]),
                    );
                }
            } else {
                check(
                    e["line"].is_null(),
                    format!("a line where none is known: {}", e["line"]),
                );
            }
            check(
                s["smoke"].is_null(),
                "a smoke check ran on a script that does not load".into(),
            );
        }
        Smoke(kind, function, pieces, pos) => {
            let smoke = &s["smoke"];
            check(
                s["compiled"] == true,
                format!("it did not load: {}", s["compile_error"]),
            );
            check(
                smoke["status"] == "failed",
                format!("smoke status {}", smoke["status"]),
            );
            let problems = smoke["problems"].as_array().cloned().unwrap_or_default();
            check(
                problems.len() == 1,
                format!("{} distinct problems, expected 1", problems.len()),
            );
            if let Some(p) = problems.first() {
                check(
                    p["kind"] == kind,
                    format!("kind {}, expected {kind}", p["kind"]),
                );
                check(
                    p["function"] == function,
                    format!("function {}, expected {function}", p["function"]),
                );
                check(p["file"] == path.as_str(), format!("file {}", p["file"]));
                check(
                    text(&p["message"]).contains(&path),
                    "the message does not name the file".into(),
                );
                for piece in pieces {
                    check(
                        text(&p["message"]).contains(piece),
                        format!("the message lacks {piece:?}: {}", p["message"]),
                    );
                }
                check(
                    p["windows"].as_array().map(Vec::len) == Some(WINDOWS),
                    format!("failed in {} windows, expected all {WINDOWS}", p["windows"]),
                );
                if let Some((l, c)) = pos {
                    check(
                        p["line"] == l && p["column"] == c,
                        format!("at {}:{}, expected {l}:{c}", p["line"], p["column"]),
                    );
                }
            }
            let windows = smoke["windows"].as_array().cloned().unwrap_or_default();
            check(
                windows.len() == WINDOWS,
                format!("{} windows decided", windows.len()),
            );
            check(
                windows.iter().all(|w| w["failure"] == kind),
                "a window without the failure".into(),
            );
            let warnings = smoke["warnings"].as_array().cloned().unwrap_or_default();
            check(
                warnings.iter().any(|w| {
                    w["kind"] == "would_halt"
                        && text(&w["message"]).contains(
                            "a session halts after 3 (risk.max_consecutive_script_failures)",
                        )
                }),
                "no would_halt warning".into(),
            );
        }
        Passes(warning_kinds) => {
            let smoke = &s["smoke"];
            check(
                smoke["status"] == "passed",
                format!("smoke status {}: {}", smoke["status"], smoke["problems"]),
            );
            let warnings: Vec<&str> = smoke["warnings"]
                .as_array()
                .map(|w| w.iter().map(|x| text(&x["kind"])).collect())
                .unwrap_or_default();
            check(
                warnings.iter().copied().eq(warning_kinds.iter().copied()),
                format!("warnings {warnings:?}, expected {warning_kinds:?}"),
            );
            if warning_kinds.contains(&"stake_clamped") {
                for w in smoke["windows"].as_array().expect("windows") {
                    check(
                        w["stake"] == 1e9
                            && w["gate"]["verdict"] == "approved"
                            && w["gate"]["approved"] == "25"
                            && w["gate"]["adjustments"]
                                .as_array()
                                .is_some_and(|a| a.iter().any(|x| x == "clamped_to_max_stake")),
                        format!(
                            "{}: not asked 1e9 and approved at exactly 25, clamped: {w}",
                            w["slug"]
                        ),
                    );
                }
                let w = &smoke["warnings"][0];
                check(
                    text(&w["message"]).contains("size asked 1000000000, more than risk.max_stake 25: the risk gate clamps it to 25"),
                    format!("stake_clamped message: {}", w["message"]),
                );
            }
        }
        Special => {}
    }
    wrong
}

#[test]
fn validate_names_the_precise_problem_of_every_hostile_script_without_fixtures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), CONFIG);
    let files = corpus();
    let mut args = vec!["validate", "--json", "--config", config.as_str()];
    args.extend(files.iter().map(String::as_str));
    let run = updown(repo(), &args);
    assert_eq!(
        run.code, 1,
        "any hostile script fails validation:\n{}",
        run.stderr
    );
    let report = json(&run);
    assert_eq!(report["ok"], false);
    let by_name = strategies(&report);
    let expect = expectations();

    // Every script of the corpus has an expectation, and no expectation is stale.
    let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
    let expected: Vec<&str> = expect.keys().copied().collect();
    assert_eq!(names, expected, "the corpus and the expectations differ");
    for s in by_name.values() {
        assert_eq!(
            s["fixtures"].as_array().map(Vec::len),
            Some(0),
            "no hand-written fixtures: {}",
            s["path"]
        );
    }

    let mut failures = String::new();
    for (name, says) in &expect {
        let wrong = judge(name, *says, by_name[*name]);
        if !wrong.is_empty() {
            failures.push_str(&format!(
                "\n=== {name}:\n  - {}\n{:#}\n",
                wrong.join("\n  - "),
                by_name[*name]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "validate did not report these scripts precisely:{failures}"
    );

    // The totals add up: every loading problem is a compile error, every smoke failure counted.
    let loads = expect.values().filter(|s| matches!(s, Load(..))).count();
    let t = &report["totals"];
    assert_eq!(t["compile_errors"], loads as u64);
    assert_eq!(t["strategies"], files.len() as u64);
    assert_eq!(
        t["smoke_passed"].as_u64().unwrap_or(0) + t["smoke_failed"].as_u64().unwrap_or(0),
        (files.len() - loads) as u64
    );
    assert_eq!(t["smoke_skipped"], 0);
}

#[test]
fn a_script_failing_every_other_window_is_reported_in_those_windows_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), CONFIG);
    let file = format!("{HOSTILE}/fail_every_other.rhai");
    let run = updown(repo(), &["validate", "--json", "--config", &config, &file]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run);
    let smoke = &report["strategies"][0]["smoke"];
    assert_eq!(smoke["status"], "failed", "{smoke:#}");
    let windows = smoke["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), WINDOWS);
    let problems = smoke["problems"].as_array().expect("problems");
    assert_eq!(
        problems.len(),
        2,
        "calls 2 and 4 fail with their own messages: {smoke:#}"
    );
    for (p, n) in problems.iter().zip([2, 4]) {
        assert_eq!(p["kind"], "script_runtime_error");
        assert_eq!(p["function"], "size");
        assert_eq!(
            (p["line"].as_u64(), p["column"].as_u64()),
            (Some(17), Some(9)),
            "{p:#}"
        );
        assert!(
            text(&p["message"]).contains(&format!("even call {n}: failing on purpose")),
            "{p:#}"
        );
        assert_eq!(
            p["windows"],
            serde_json::json!([windows[n - 1]["slug"]]),
            "{p:#}"
        );
    }
    for (i, w) in windows.iter().enumerate() {
        let n = i + 1;
        if n % 2 == 1 {
            assert!(w["failure"].is_null(), "{w:#}");
            assert_eq!(
                w["reason"],
                format!("call {n}"),
                "memory carries over: {w:#}"
            );
            assert_eq!(w["gate"]["approved"], "5", "{w:#}");
        } else {
            assert_eq!(w["failure"], "script_runtime_error", "{w:#}");
        }
    }
    // Never two failures in a row, so no session would halt on it.
    assert!(
        smoke["warnings"].as_array().is_some_and(Vec::is_empty),
        "{smoke:#}"
    );
}

#[test]
fn a_loop_only_the_deadline_stops_is_reported_as_a_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        "[sandbox]\nmax_operations = 100000000\ncall_timeout_ms = 20\n",
    );
    let file = format!("{HOSTILE}/busy_wait.rhai");
    let run = updown(repo(), &["validate", "--json", "--config", &config, &file]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run);
    let p = &report["strategies"][0]["smoke"]["problems"][0];
    assert_eq!(p["kind"], "script_timeout", "{p:#}");
    assert_eq!(p["function"], "predict", "{p:#}");
    assert!(
        text(&p["message"]).contains(
            "busy_wait.rhai: call exceeded its wall-clock deadline (sandbox.call_timeout_ms)"
        ),
        "{p:#}"
    );
    // Rhai reports a broken limit at the host's call, so no line is claimed.
    assert!(p["line"].is_null(), "{p:#}");
    assert_eq!(
        p["windows"].as_array().map(Vec::len),
        Some(WINDOWS),
        "{p:#}"
    );
}

#[test]
fn an_import_through_a_symlink_leading_outside_is_reported_as_refused() {
    let inside = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("temp dir");
    let script = inside.path().join("import_symlink.rhai");
    fs::copy(repo().join(HOSTILE).join("import_symlink.rhai"), &script).expect("copy");
    let target = outside.path().join("lib_math.rhai");
    fs::copy(repo().join("tests/scripts/ok/lib_math.rhai"), &target).expect("copy module");
    std::os::unix::fs::symlink(&target, inside.path().join("escape.rhai")).expect("symlink");
    let script = script.display().to_string();
    let run = updown(repo(), &["validate", "--json", &script]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let e = &json(&run)["strategies"][0]["load_error"];
    assert_eq!(e["kind"], "import_refused", "{e:#}");
    assert!(
        text(&e["message"])
            .contains("import \"escape\" refused: it resolves outside the strategies folder"),
        "{e:#}"
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(3), Some(8))
    );
}

#[test]
fn the_table_shows_each_smoke_failure_with_its_kind_call_and_windows() {
    let run = updown(
        repo(),
        &[
            "validate",
            "tests/scripts/hostile/throw.rhai",
            "tests/scripts/hostile/syntax_error.rhai",
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    let row = |strategy: &str, fixture: &str| -> String {
        out.lines()
            .find(|l| {
                let mut cells = l.split_whitespace();
                cells.next() == Some(strategy) && cells.next() == Some(fixture)
            })
            .unwrap_or_else(|| panic!("no row {strategy} / {fixture} in:\n{out}"))
            .to_string()
    };
    assert!(
        row("throw", "(smoke)").ends_with("FAIL script_runtime_error (5 of 5 windows)"),
        "{out}"
    );
    assert!(
        row("syntax_error", "-").ends_with("FAIL syntax_error at line 4, column 19"),
        "{out}"
    );
    assert!(
        out.contains("    - script_runtime_error in predict at line 4, column 5 (5 of 5 windows, first btc-updown-5m-"),
        "{out}"
    );
    assert!(
        out.contains("tests/scripts/hostile/throw.rhai: Runtime error: boom (line 4, position 5)"),
        "{out}"
    );
    assert!(out.contains("    - syntax_error: tests/scripts/hostile/syntax_error.rhai: syntax error at line 4, column 19"), "{out}");
    assert!(
        out.contains(
            "smoke checks: 0 passed, 1 failed, 0 skipped; 0 fixtures: 0 passed, 0 failed → FAIL"
        ),
        "{out}"
    );
}

#[test]
fn shipped_strategies_pass_the_smoke_check_and_validate() {
    let mut args = vec!["validate", "--json"];
    args.extend(SHIPPED);
    let run = updown(repo(), &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run);
    assert_eq!(report["ok"], true);
    assert_eq!(report["totals"]["smoke_passed"], 3);
    for s in report["strategies"].as_array().expect("strategies") {
        let smoke = &s["smoke"];
        assert_eq!(smoke["status"], "passed", "{}: {smoke:#}", s["path"]);
        assert_eq!(smoke["data"], DATA);
        assert_eq!(smoke["windows"].as_array().map(Vec::len), Some(WINDOWS));
        assert!(smoke["problems"].as_array().is_some_and(Vec::is_empty));
        assert!(
            smoke["max_operations"]
                .as_u64()
                .is_some_and(|o| o > 0 && o < 500_000)
        );
    }
    let table = updown(repo(), &[&["validate"][..], &SHIPPED[..]].concat());
    assert_eq!(table.code, 0);
    assert!(
        table
            .stdout
            .contains("smoke checks: 3 passed, 0 failed, 0 skipped; "),
        "{}",
        table.stdout
    );
}

#[test]
fn without_data_the_smoke_check_says_so_and_data_can_be_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = repo()
        .join(HOSTILE)
        .join("throw.rhai")
        .display()
        .to_string();
    // No data/ here: the check is skipped (not failed), and said so.
    let run = updown(dir.path(), &["validate", &script]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("smoke check skipped: no data"),
        "{}",
        run.stdout
    );
    let report = json(&updown(dir.path(), &["validate", "--json", &script]));
    assert_eq!(report["strategies"][0]["smoke"]["status"], "skipped");
    assert_eq!(report["totals"]["smoke_skipped"], 1);

    // --data from anywhere finds the failure.
    let data: PathBuf = repo().join(DATA);
    let data = data.display().to_string();
    let run = updown(
        dir.path(),
        &["validate", "--json", "--data", &data, &script],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let smoke = &json(&run)["strategies"][0]["smoke"];
    assert_eq!(
        smoke["problems"][0]["kind"], "script_runtime_error",
        "{smoke:#}"
    );

    // --smoke-windows 0 turns it off; a missing --data file is a usage error.
    let run = updown(repo(), &["validate", "--smoke-windows", "0", &script]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("smoke check skipped: --smoke-windows 0"),
        "{}",
        run.stdout
    );
    let run = updown(repo(), &["validate", "--data", "no/such.csv", &script]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no/such.csv"), "{}", run.stderr);
}
