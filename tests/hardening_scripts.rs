//! The real `updown` binary against what a hostile but realistic script does (issue 16):
//! every case here aborted the process, broke a resumed run, depended on the machine or
//! changed a result without a word before it was fixed.
//!
//! - A cyclic `import` is refused with its chain in `validate`, and on hot reload the
//!   session refuses that version and goes on; the module limit counts every module loaded.
//! - A script's text (reason, log lines, thrown errors) cannot write lines of its own into
//!   the console, the log or the journals, nor hide in bidi controls.
//! - In a backtest the operation budget decides, not the wall clock: a script far over
//!   `call_timeout_ms` gives the same fingerprint every time, and a result where the
//!   wall-clock safety net fired says it is machine-dependent; `validate` flags slow calls.
//! - Parameters the script never reads, or gives another type by default, are warned about;
//!   a whole float serves as a period.

mod common;

use common::{Ran, finish, predictions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";
const LIMIT: Duration = Duration::from_secs(180);

fn updown(args: &[&str]) -> Ran {
    common::updown_within(args, LIMIT)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn fingerprint(r: &Ran) -> String {
    r.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint in:\n{}\n{}", r.stdout, r.stderr))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A backtest over six hours of the bundled candles (72 windows).
fn backtest(script: &Path, config: &Path, out: &Path, extra: &[&str]) -> Ran {
    let (script, config, out) = (s(script), s(config), s(out));
    let mut args = vec![
        "backtest",
        "--strategy",
        &script,
        "--data",
        DATA,
        "--config",
        &config,
        "--out",
        &out,
        "--from",
        "2025-10-30T00:00",
        "--to",
        "2025-10-30T06:00",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    updown(&args)
}

#[test]
fn a_cyclic_import_is_refused_with_its_chain_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "selfmod.rhai",
        "import \"selfmod\" as me;\nfn f() { 1 }\n",
    );
    let direct = write(
        d,
        "s.rhai",
        "import \"selfmod\" as m;\nfn predict(ctx) { skip(\"x\") }\n",
    );
    write(d, "a.rhai", "import \"b\" as b;\nfn f() { 1 }\n");
    write(d, "b.rhai", "import \"a\" as a;\nfn f() { 2 }\n");
    let through = write(
        d,
        "s2.rhai",
        "import \"a\" as m;\nfn predict(ctx) { skip(\"x\") }\n",
    );
    for (script, chain) in [
        (&direct, "import cycle selfmod → selfmod"),
        (&through, "import cycle a → b → a"),
    ] {
        let r = updown(&["validate", &s(script), "--smoke-windows", "0"]);
        assert_eq!(r.status.code(), Some(1), "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(chain), "{}", r.stdout);
        assert!(r.stdout.contains("import_cycle"), "{}", r.stdout);
    }
}

#[test]
fn the_module_limit_counts_every_module_a_script_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // m0 imports m1, …, m19 imports nothing: twenty modules, one import each.
    for i in 0..20 {
        let import = if i < 19 {
            format!("import \"m{}\" as next;\n", i + 1)
        } else {
            String::new()
        };
        write(
            d,
            &format!("m{i}.rhai"),
            &format!("{import}fn f() {{ {i} }}\n"),
        );
    }
    let script = write(
        d,
        "chain.rhai",
        "import \"m0\" as m;\nfn predict(ctx) { skip(\"x\") }\n",
    );
    let one = write(d, "one.toml", "[sandbox]\nmax_modules = 1\n");
    let enough = write(d, "enough.toml", "[sandbox]\nmax_modules = 20\n");
    let r = updown(&[
        "validate",
        &s(&script),
        "--smoke-windows",
        "0",
        "--config",
        &s(&one),
    ]);
    assert_eq!(r.status.code(), Some(1), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("too_many_modules"), "{}", r.stdout);
    assert!(r.stdout.contains("more than 1 modules"), "{}", r.stdout);
    // The default (16) is too few for twenty as well; twenty are enough.
    let r = updown(&["validate", &s(&script), "--smoke-windows", "0"]);
    assert!(r.stdout.contains("more than 16 modules"), "{}", r.stdout);
    let r = updown(&[
        "validate",
        &s(&script),
        "--smoke-windows",
        "0",
        "--config",
        &s(&enough),
    ]);
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_cycle_saved_mid_session_is_refused_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let script = write(d, "live.rhai", "fn predict(ctx) { skip(\"v1\") }\n");
    write(
        d,
        "selfmod.rhai",
        "import \"selfmod\" as me;\nfn f() { 1 }\n",
    );
    let out = d.join("out");
    // Journals flushed every window, so the edit can wait for the session's third window.
    let config = write(d, "follow.toml", "[session]\njournal_flush_windows = 1\n");
    // 300 s windows at 1200× real time: a window every 0.25 s, 12 windows in about 3 s.
    let child = Command::new(BIN)
        .current_dir(REPO)
        .args(["run", "--strategy", &s(&script), "--replay", DATA])
        .args(["--config", &s(&config)])
        .args(["--speed", "1200", "--intervals", "12", "--out", &s(&out)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while common::lines(&out.join("predictions.jsonl")).len() < 3 {
        assert!(
            Instant::now() < until,
            "the session never decided three windows"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(
        &script,
        "import \"selfmod\" as m;\nfn predict(ctx) { skip(\"v2\") }\n",
    )
    .unwrap();
    let r = finish(child, LIMIT);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let decided = predictions(&out);
    assert_eq!(decided.len(), 12);
    assert!(decided.iter().all(|p| p.reason == "v1"));
    let reloads = std::fs::read_to_string(out.join("script_reloads.jsonl")).unwrap();
    assert!(reloads.contains("\"rejected\""), "{reloads}");
    assert!(
        reloads.contains("import cycle selfmod → selfmod"),
        "{reloads}"
    );
}

#[test]
fn a_script_cannot_write_lines_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let forged = "settled: UP won, P&L +999.00";
    let script = write(
        d,
        "forger.rhai",
        &format!(
            "fn predict(ctx) {{\n\
             log(\"note\\n{forged}\\r\\u202E\");\n\
             print(\"\\x1b[2J{forged}\");\n\
             if ctx.now % 600 == 0 {{ throw \"boom\\n{forged}\"; }}\n\
             skip(\"calm\\n{forged}\\u202E\")\n}}\n"
        ),
    );
    let out = d.join("out");
    let r = updown(&[
        "run",
        "--strategy",
        &s(&script),
        "--replay",
        DATA,
        "--intervals",
        "6",
        "--out",
        &s(&out),
        "--no-reload",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let log = std::fs::read_to_string(out.join("updown.log")).unwrap();
    let journal = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    for (what, text) in [
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
        ("updown.log", &log),
        ("predictions.jsonl", &journal),
    ] {
        for line in text.lines() {
            assert!(!line.trim_start().starts_with(forged), "{what}: {line}");
        }
        assert!(!text.contains('\r') && !text.contains('\u{202e}'), "{what}");
        assert!(!text.contains('\u{1b}'), "{what}");
    }
    // What the script wrote is still there, spelled out.
    assert!(
        log.contains(&format!("note\\n{forged}\\r\\u{{202e}}")),
        "{log}"
    );
    assert!(log.contains(&format!("boom\\n{forged}")), "{log}");
    let decided = predictions(&out);
    assert!(
        decided
            .iter()
            .any(|p| p.reason == format!("calm\\n{forged}\\u{{202e}}")),
        "{journal}"
    );
}

/// About 100,000 Rhai operations per call: far over a 1 ms deadline on any machine, well
/// inside the default operation budget of 500,000.
const HEAVY: &str = "fn predict(ctx) {\n\
    let x = 0;\n\
    for i in 0..25000 { x += i % 7; }\n\
    if ctx.now % 900 < 300 { up(0.6, `heavy ${x}`) } else { skip(\"rest\") }\n}\n";

#[test]
fn in_a_backtest_the_operation_budget_decides_not_the_wall_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let script = write(d, "heavy.rhai", HEAVY);
    // Sessions give a call 1 ms, backtests keep the default safety net (5 s).
    let config = write(
        d,
        "tight.toml",
        "[account]\nstarting_capital = 1000000\n[sandbox]\ncall_timeout_ms = 1\n",
    );
    let mut prints = Vec::new();
    for i in 0..2 {
        let out = d.join(format!("bt{i}"));
        let r = backtest(&script, &config, &out, &[]);
        assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
        let decided = predictions(&out);
        assert_eq!(decided.len(), 72);
        assert!(
            decided
                .iter()
                .all(|p| p.reason_code.as_deref() != Some("script_timeout")),
            "no call timed out"
        );
        assert!(decided.iter().any(|p| p.verdict == "approved"));
        assert!(!r.stdout.contains("machine-dependent"), "{}", r.stdout);
        prints.push(fingerprint(&r));
    }
    assert_eq!(prints[0], prints[1]);

    // When the safety net itself fires, the result says so.
    let net = write(
        d,
        "net.toml",
        "[sandbox]\ncall_timeout_ms = 1\nbacktest_call_timeout_ms = 1\n",
    );
    let out = d.join("net");
    let r = backtest(&script, &net, &out, &[]);
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        predictions(&out)
            .iter()
            .any(|p| p.reason_code.as_deref() == Some("script_timeout"))
    );
    assert!(r.stdout.contains("(machine-dependent:"), "{}", r.stdout);
    assert!(
        r.stdout.contains("sandbox.backtest_call_timeout_ms"),
        "{}",
        r.stdout
    );

    // A session keeps its deadline, and `validate` says the calls use over half of it.
    let r = updown(&["validate", &s(&script), "--config", &s(&config)]);
    assert!(r.stdout.contains("slow_call"), "{}", r.stdout);
    assert!(
        r.stdout.contains("over half of sandbox.call_timeout_ms"),
        "{}",
        r.stdout
    );
}

#[test]
fn parameters_the_script_never_reads_or_gets_mistyped_are_warned() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let config = write(d, "rich.toml", "[account]\nstarting_capital = 1000000\n");
    let script = Path::new(REPO).join("strategies/rsi_ema.rhai");
    let run = |name: &str, params: &[&str]| {
        let mut extra = Vec::new();
        for p in params {
            extra.extend(["--param", p]);
        }
        backtest(&script, &config, &d.join(name), &extra)
    };
    let plain = run("plain", &[]);
    assert_eq!(plain.status.code(), Some(0), "{}", plain.stderr);
    assert!(!plain.stderr.contains("never reads"), "{}", plain.stderr);

    let typo = run("typo", &["rsi_lwo=25"]);
    assert!(
        typo.stderr.contains("--param rsi_lwo: ")
            && typo
                .stderr
                .contains("never reads a parameter named `rsi_lwo`"),
        "{}",
        typo.stderr
    );
    assert!(
        typo.stderr.contains(
            "(it reads ema_fast, ema_slow, rsi_high, rsi_low, rsi_period, stake_base, stake_cap, \
             stake_growth)"
        ),
        "lists what it reads: {}",
        typo.stderr
    );

    let word = run("word", &["rsi_low=thirty"]);
    assert!(
        word.stderr
            .contains("`rsi_low` = \"thirty\" is a string, but")
            && word.stderr.contains("the default 30, which is an integer"),
        "{}",
        word.stderr
    );

    // A whole float is the integer it says; the run is the one with the integer.
    let float = run("float", &["rsi_period=14.0"]);
    assert_eq!(float.status.code(), Some(0), "{}", float.stderr);
    assert!(!float.stderr.contains("rsi_period"), "{}", float.stderr);
    assert_eq!(fingerprint(&float), fingerprint(&plain));
    assert!(predictions(&d.join("float")).iter().all(|p| {
        !p.reason_code
            .as_deref()
            .unwrap_or("")
            .starts_with("script_")
    }));
    let half = run("half", &["rsi_period=14.5"]);
    assert!(
        half.stderr.contains("must be a whole number"),
        "{}",
        half.stderr
    );
    let decided = predictions(&d.join("half"));
    assert!(
        decided.iter().any(|p| p
            .reason
            .contains("rsi: period must be a whole number, got 14.5")),
        "the indicator says what is wrong"
    );
}
