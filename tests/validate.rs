//! `updown validate` seen from outside: the real binary on the shipped strategies and their
//! fixtures, and on small scripts and fixtures written to a temporary folder for each way a
//! strategy can fail (syntax error, wrong expectation, memory-dependent answers, an endless
//! loop) and each way a fixture can be wrong.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHIPPED: [&str; 3] = [
    "strategies/rsi_ema.rhai",
    "strategies/rsi_macd_imbalance.rhai",
    "strategies/edge_kelly.rhai",
];

/// No validate run here may take longer than this, even the endless loop.
const RUN_BOUND: Duration = Duration::from_secs(120);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Run `updown <args>` in `cwd` with output to files (no pipe can fill up), killing it if it
/// outlives [`RUN_BOUND`].
fn updown(cwd: &Path, args: &[&str]) -> Run {
    let out = tempfile::tempdir().expect("temp dir");
    let (o, e) = (out.path().join("stdout"), out.path().join("stderr"));
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
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
        took: started.elapsed(),
    }
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    })
}

fn fixture_files(stem: &str) -> Vec<PathBuf> {
    let dir = manifest().join("strategies/fixtures").join(stem);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A folder with scripts and `fixtures/<stem>/<name>.toml` files.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn script(&self, name: &str, text: &str) -> String {
        let p = self.path().join(name);
        fs::write(&p, text).expect("write script");
        p.display().to_string()
    }
    fn fixture(&self, stem: &str, name: &str, text: &str) -> PathBuf {
        let dir = self.path().join("fixtures").join(stem);
        fs::create_dir_all(&dir).expect("fixture dir");
        let p = dir.join(format!("{name}.toml"));
        fs::write(&p, text).expect("write fixture");
        p
    }
    /// A config whose per-call deadline is as generous as the config allows, so that
    /// operation-budget tests cannot turn into timeouts on a slow or busy machine.
    fn slow_machine_config(&self) -> String {
        let p = self.path().join("config.toml");
        fs::write(&p, "[sandbox]\ncall_timeout_ms = 10000\n").expect("write config");
        p.display().to_string()
    }
}

/// Five flat closes ending on a window start: enough for a script that ignores indicators.
const FLAT: &str = "[candles]\ncloses = [100.0, 100.0, 100.0, 100.0, 100.0]\n";

fn row<'a>(stdout: &'a str, strategy: &str, fixture: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            let mut cells = l.split_whitespace();
            cells.next() == Some(strategy) && cells.next() == Some(fixture)
        })
        .unwrap_or_else(|| panic!("no table row for {strategy} / {fixture} in:\n{stdout}"))
}

// ---------------------------------------------------------------------------------------
// The shipped strategies
// ---------------------------------------------------------------------------------------

#[test]
fn shipped_strategies_pass_every_fixture() {
    let run = updown(manifest(), &[&["validate"][..], &SHIPPED[..]].concat());
    assert_eq!(
        run.code, 0,
        "validate failed:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for (script, stem) in SHIPPED
        .iter()
        .zip(["rsi_ema", "rsi_macd_imbalance", "edge_kelly"])
    {
        let files = fixture_files(stem);
        assert!(
            files.len() >= 5,
            "{script} must ship with fixtures, found {}",
            files.len()
        );
        for f in files {
            let name = f.file_stem().expect("stem").to_string_lossy().into_owned();
            let line = row(&run.stdout, stem, &name);
            assert!(line.trim_end().ends_with("PASS"), "not a PASS: {line}");
        }
    }
    let total = run
        .stdout
        .lines()
        .find(|l| l.starts_with("TOTAL:"))
        .expect("a totals line");
    assert!(total.contains("0 failed to compile"), "{total}");
    assert!(total.contains(", 0 failed → PASS"), "{total}");
}

#[test]
fn json_report_has_the_counts_and_every_check() {
    let run = updown(
        manifest(),
        &[&["validate", "--json"][..], &SHIPPED[..]].concat(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let report = json(&run);
    let expected: usize = ["rsi_ema", "rsi_macd_imbalance", "edge_kelly"]
        .iter()
        .map(|s| fixture_files(s).len())
        .sum();
    let t = &report["totals"];
    assert_eq!(report["ok"], true);
    assert_eq!(t["strategies"], 3);
    assert_eq!(t["compiled"], 3);
    assert_eq!(t["compile_errors"], 0);
    assert_eq!(t["fixtures"], expected as u64);
    assert_eq!(t["passed"], expected as u64);
    assert_eq!(t["failed"], 0);
    assert_eq!(report["limits"]["max_operations"], 500_000);
    assert_eq!(report["limits"]["call_timeout_ms"], 250);
    for s in report["strategies"].as_array().expect("strategies") {
        assert!(s["max_operations"].as_u64().expect("ops measured") > 0);
        assert!(s["max_operations"].as_u64().expect("ops") < 500_000);
        assert!(s["max_call_us"].as_u64().is_some());
        for f in s["fixtures"].as_array().expect("fixtures") {
            assert_eq!(f["passed"], true, "{f:#}");
            assert_eq!(f["deterministic"]["fresh_instances"], true, "{f:#}");
            assert_eq!(f["deterministic"]["same_instance"], true, "{f:#}");
            assert!(f["operations"].as_u64().expect("ops") > 0, "{f:#}");
        }
    }
    // A pinned gate verdict is reported exactly: win streak 2 → 11.25 approved.
    let rsi_ema = &report["strategies"][0]["fixtures"];
    let streak = rsi_ema
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == "win_streak_2"))
        .expect("win_streak_2 fixture");
    assert_eq!(streak["got"]["stake"], 11.25);
    assert_eq!(streak["got"]["gate"]["approved"], "11.25");
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

#[test]
fn syntax_error_is_reported_with_file_line_and_column() {
    let s = Scratch::new();
    let script = s.script(
        "broken.rhai",
        "// an unclosed parenthesis on line 3\nfn predict(ctx) {\n    let x = (1 + 2;\n    up(0.5, \"never\")\n}\n",
    );
    let run = updown(s.path(), &["validate", &script]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&script), "{}", run.stdout);
    assert!(
        run.stdout.contains("line 3, column 19"),
        "no position in:\n{}",
        run.stdout
    );
    let report = json(&updown(s.path(), &["validate", "--json", &script]));
    assert_eq!(report["ok"], false);
    assert_eq!(report["totals"]["compile_errors"], 1);
    let err = report["strategies"][0]["compile_error"]
        .as_str()
        .expect("a compile error");
    assert!(
        err.contains("broken.rhai") && err.contains("line 3, column 19"),
        "{err}"
    );
}

#[test]
fn a_wrong_expectation_fails_with_exit_1() {
    let s = Scratch::new();
    let script = s.script(
        "always_up.rhai",
        "fn predict(ctx) { up(0.6, \"always\") }\n",
    );
    s.fixture(
        "always_up",
        "claims_down",
        &format!("description = \"wrong on purpose\"\n{FLAT}[expect]\nside = \"down\"\n"),
    );
    s.fixture(
        "always_up",
        "right",
        &format!("{FLAT}[expect]\nside = \"up\"\nconfidence = 0.6\nstake = 5\napproved = 5\n"),
    );
    let run = updown(s.path(), &["validate", &script]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let bad = row(&run.stdout, "always_up", "claims_down");
    assert!(bad.contains("FAIL side: expected down, got up"), "{bad}");
    let good = row(&run.stdout, "always_up", "right");
    assert!(good.trim_end().ends_with("PASS"), "{good}");
    assert!(
        run.stdout.contains("1 passed, 1 failed → FAIL"),
        "{}",
        run.stdout
    );
}

#[test]
fn memory_dependent_answers_are_non_deterministic_on_one_instance_only() {
    let s = Scratch::new();
    let script = s.script(
        "alternate.rhai",
        r#"// Alternates UP and DOWN using its memory.
fn predict(ctx) {
    let n = if "n" in this { this.n } else { 0 };
    this.n = n + 1;
    if n % 2 == 0 { up(0.5, "even call") } else { down(0.5, "odd call") }
}
"#,
    );
    s.fixture(
        "alternate",
        "first_call",
        &format!("{FLAT}[expect]\nside = \"up\"\n"),
    );
    // The same rule pinned on purpose: start from memory n = 1, accept the alternation.
    s.fixture(
        "alternate",
        "pinned",
        &format!("{FLAT}[memory]\nn = 1\n[expect]\nside = \"down\"\nrepeatable = false\n"),
    );
    let run = updown(s.path(), &["validate", "--json", &script]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run);
    let fixtures = report["strategies"][0]["fixtures"]
        .as_array()
        .expect("fixtures");
    let first = &fixtures[0];
    assert_eq!(first["name"], "first_call");
    assert_eq!(first["passed"], false);
    assert_eq!(first["got"]["side"], "up", "the first call is the answer");
    assert_eq!(first["deterministic"]["fresh_instances"], true);
    assert_eq!(first["deterministic"]["same_instance"], false);
    assert_eq!(first["problems"][0]["kind"], "not_repeatable");
    let message = first["problems"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("non-deterministic across two calls on one instance"),
        "{message}"
    );
    let pinned = &fixtures[1];
    assert_eq!(pinned["name"], "pinned");
    assert_eq!(pinned["passed"], true, "{pinned:#}");
    assert_eq!(pinned["got"]["side"], "down");
    assert_eq!(pinned["deterministic"]["same_instance"], false);
    assert_eq!(pinned["notes"].as_array().map(Vec::len), Some(1));

    let table = updown(s.path(), &["validate", &script]);
    assert!(
        row(&table.stdout, "alternate", "first_call").contains("FAIL not_repeatable"),
        "{}",
        table.stdout
    );
    assert!(row(&table.stdout, "alternate", "pinned").contains("PASS"));
}

#[test]
fn an_endless_loop_fails_its_fixture_on_the_operation_budget_and_validate_finishes() {
    let s = Scratch::new();
    let config = s.slow_machine_config();
    let script = s.script(
        "spin.rhai",
        "fn predict(ctx) {\n    let i = 0;\n    loop { i += 1; }\n}\n",
    );
    s.fixture("spin", "any", &format!("{FLAT}[expect]\nside = \"up\"\n"));
    let run = updown(
        s.path(),
        &["validate", "--config", &config, "--json", &script],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run);
    let f = &report["strategies"][0]["fixtures"][0];
    assert_eq!(f["passed"], false);
    assert_eq!(f["problems"][0]["kind"], "script_operation_budget", "{f:#}");
    assert!(
        f["problems"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spin.rhai")),
        "{f:#}"
    );
    assert!(f["operations"].as_u64().expect("ops") >= 500_000, "{f:#}");
    assert!(run.took < RUN_BOUND);

    let table = updown(s.path(), &["validate", "--config", &config, &script]);
    assert_eq!(table.code, 1);
    assert!(
        row(&table.stdout, "spin", "any").contains("FAIL script_operation_budget"),
        "{}",
        table.stdout
    );
}

#[test]
fn a_bad_fixture_names_its_file_key_and_line() {
    let s = Scratch::new();
    let script = s.script("ok.rhai", "fn predict(ctx) { skip(\"never trades\") }\n");
    let file = s.fixture(
        "ok",
        "typo",
        "[candles]\ncloses = [1.0]\n\n[expect]\nside = \"skip\"\nreason_contain = \"never\"\n",
    );
    let run = updown(s.path(), &["validate", &script]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(row(&run.stdout, "ok", "typo").contains("FAIL fixture error"));
    assert!(
        run.stdout.contains(&file.display().to_string()),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("reason_contain"), "{}", run.stdout);
    assert!(run.stdout.contains("line 6"), "{}", run.stdout);

    // A value that parses but cannot be right is refused with its line and column too.
    fs::write(
        &file,
        "[candles]\ncloses = [1.0]\nstart = 1761717660\n[expect]\nside = \"skip\"\n",
    )
    .expect("rewrite fixture");
    let run = updown(s.path(), &["validate", &script]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("typo.toml:3:9: `candles.start`"),
        "{}",
        run.stdout
    );
}

#[test]
fn no_fixtures_is_a_note_and_fixtures_can_live_elsewhere() {
    let s = Scratch::new();
    let script = s.script(
        "lonely.rhai",
        "fn predict(ctx) { skip(\"never trades\") }\n",
    );
    let run = updown(s.path(), &["validate", &script]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("no fixtures"), "{}", run.stdout);

    let elsewhere = tempfile::tempdir().expect("temp dir");
    let dir = elsewhere.path().join("lonely");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("skips.toml"),
        format!("{FLAT}[expect]\nside = \"skip\"\n"),
    )
    .expect("fixture");
    let root = elsewhere.path().display().to_string();
    let run = updown(s.path(), &["validate", "--fixtures", &root, &script]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        row(&run.stdout, "lonely", "skips")
            .trim_end()
            .ends_with("PASS")
    );
}

#[test]
fn usage_and_config_errors_exit_2() {
    let s = Scratch::new();
    let run = updown(s.path(), &["validate", "missing.rhai"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("missing.rhai"), "{}", run.stderr);

    let script = s.script("ok.rhai", "fn predict(ctx) { skip(\"x\") }\n");
    let bad = s.path().join("bad.toml");
    fs::write(&bad, "[sandbox]\nmax_operations = 1\n").expect("config");
    let run = updown(
        s.path(),
        &["validate", "--config", &bad.display().to_string(), &script],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("sandbox.max_operations"),
        "{}",
        run.stderr
    );

    let run = updown(s.path(), &["validate"]);
    assert_eq!(run.code, 2, "no strategy given is a usage error");
}
