//! Hot reload during `updown run`: a script rewritten mid-session (as editors save: a
//! temporary file renamed over the original) takes over at a window boundary, a changed
//! imported module is a new version too, a broken version is refused with its position while
//! the running one goes on, and the script's memory survives every swap.
//!
//! The replay is paced in wall-clock time (`--speed`), and each edit waits for an event of
//! the session — the journal line of a window, or the first decision of a new version —
//! rather than for a time, so the edits land mid-session however fast or busy the machine
//! is. The journals are flushed every window (`journal_flush_windows = 1`) for that.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";

/// Save as most editors do: write a temporary file, then rename it over the target.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("rhai.swp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename over the script");
}

fn hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// A script whose every decision carries its version tag and a counter kept in `this`.
fn version(tag_expr: &str, imports: &str) -> String {
    format!(
        "{imports}\nfn predict(ctx) {{\n    this.n = if \"n\" in this {{ this.n + 1 }} else {{ 1 }};\n    let d = down(0.6, {tag_expr});\n    d.features = #{{ n: this.n }};\n    d\n}}\n\n// Stake nothing: the test is about which version decides, not about money.\nfn size(ctx, d) {{ 0.0 }}\n"
    )
}

/// A config that flushes the journals after every window, so the test can follow them.
fn follow_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("follow.toml");
    std::fs::write(&path, "[session]\njournal_flush_windows = 1\n").expect("write the config");
    path
}

/// Wait until the prediction journal in `out` has a line for which `seen` holds (given the
/// lines so far); at most a minute, so a session that died fails the test instead of
/// hanging it.
fn wait_for(out: &Path, what: &str, seen: impl Fn(&[String]) -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(out.join("predictions.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if seen(&lines) {
            return;
        }
        assert!(Instant::now() < until, "waited a minute for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn decided_by(lines: &[String], tag: &str) -> bool {
    let needle = format!("\"reason\":\"{tag}\"");
    lines.iter().any(|l| l.contains(&needle))
}

#[test]
fn a_script_edited_mid_session_takes_over_at_a_window_boundary_and_keeps_its_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("live.rhai");
    let module = dir.path().join("tag.rhai");
    let out = dir.path().join("out");

    let v1 = version("\"v1\"", "");
    std::fs::write(&script, &v1).expect("write v1");
    let module_a = "fn tag() { \"v2\" }\n";
    let module_b = "fn tag() { \"v3\" }\n";
    std::fs::write(&module, module_a).expect("write the module");
    let v2 = version("tag::tag()", "import \"tag\" as tag;");
    let broken = "fn predict(ctx) {\n    up(0.6, \"never\"\n}\n";

    let manifest = env!("CARGO_MANIFEST_DIR");
    let config = follow_config(dir.path());
    // 300 s windows at 1200× real time: a window every 0.25 s, 40 windows in about 10 s.
    let child = Command::new(env!("CARGO_BIN_EXE_updown"))
        .current_dir(manifest)
        .args(["run", "--strategy"])
        .arg(&script)
        .arg("--config")
        .arg(&config)
        .args([
            "--replay",
            DATA,
            "--speed",
            "1200",
            "--intervals",
            "40",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start updown");

    wait_for(&out, "three windows of v1", |l| l.len() >= 3);
    save_by_rename(&script, &v2); // v2: the tag comes from the module ("v2")
    wait_for(&out, "a decision of v2", |l| decided_by(l, "v2"));
    save_by_rename(&module, module_b); // only the module changes: a new version ("v3")
    wait_for(&out, "a decision of v3", |l| decided_by(l, "v3"));
    std::fs::write(&script, broken).expect("write the broken version");

    let output = child.wait_with_output().expect("updown finishes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stderr}",
        output.status
    );

    let predictions: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("predictions.jsonl"))
            .expect("predictions journal")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
    assert_eq!(predictions.len(), 40);

    // Which version decided each window, in order: v1 first, then v2, then v3, never back.
    let tags: Vec<&str> = predictions
        .iter()
        .map(|p| p["reason"].as_str().unwrap_or("?"))
        .collect();
    let mut runs: Vec<&str> = tags.clone();
    runs.dedup();
    assert_eq!(runs, ["v1", "v2", "v3"], "versions in order: {tags:?}");

    // Each decision carries the hash of the version that made it: the script alone for v1,
    // the script plus its module afterwards.
    let canonical = module.canonicalize().expect("module path");
    let with_module = |main: &str, m: &str| hash(&format!("{main}\0{}\0{m}", canonical.display()));
    let expected = [
        ("v1", hash(&v1)),
        ("v2", with_module(&v2, module_a)),
        ("v3", with_module(&v2, module_b)),
    ];
    for p in &predictions {
        let tag = p["reason"].as_str().unwrap_or("?");
        let want = &expected
            .iter()
            .find(|(t, _)| *t == tag)
            .expect("a known tag")
            .1;
        assert_eq!(
            p["script_hash"].as_str(),
            Some(want.as_str()),
            "hash of {tag}"
        );
    }

    // The script's memory went on counting across both swaps.
    let counts: Vec<i64> = predictions
        .iter()
        .map(|p| p["features"]["n"].as_f64().unwrap_or(-1.0) as i64)
        .collect();
    assert_eq!(counts, (1..=40).collect::<Vec<i64>>());

    // The reload journal: two swaps with old and new hashes, then the refused broken version.
    let reloads: Vec<serde_json::Value> = std::fs::read_to_string(out.join("script_reloads.jsonl"))
        .expect("reload journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(reloads.len(), 3, "{reloads:?}");
    assert_eq!(reloads[0]["status"], "active");
    assert_eq!(
        reloads[0]["old_hash"].as_str(),
        Some(expected[0].1.as_str())
    );
    assert_eq!(
        reloads[0]["new_hash"].as_str(),
        Some(expected[1].1.as_str())
    );
    assert_eq!(reloads[1]["status"], "active");
    assert_eq!(
        reloads[1]["new_hash"].as_str(),
        Some(expected[2].1.as_str())
    );
    assert_eq!(reloads[2]["status"], "rejected");
    let error = reloads[2]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("live.rhai") && error.contains("line 3"),
        "{error}"
    );
    assert!(
        stderr.contains("refused") && stderr.contains("line 3"),
        "{stderr}"
    );

    // The swap happened at a window boundary: each reload's time is a decision time.
    for r in &reloads {
        let t = r["time"].as_i64().expect("time");
        assert!(
            predictions
                .iter()
                .any(|p| p["decision_time"].as_i64() == Some(t)),
            "reload at {t}"
        );
    }
}

#[test]
fn no_reload_keeps_the_version_the_session_started_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("fixed.rhai");
    let out = dir.path().join("out");
    let v1 = version("\"v1\"", "");
    std::fs::write(&script, &v1).expect("write v1");
    let config = follow_config(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_updown"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--no-reload", "--strategy"])
        .arg(&script)
        .arg("--config")
        .arg(&config)
        .args([
            "--replay",
            DATA,
            "--speed",
            "1200",
            "--intervals",
            "8",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start updown");
    wait_for(&out, "two windows", |l| l.len() >= 2);
    save_by_rename(&script, &version("\"v2\"", ""));
    let status = child.wait_with_output().expect("updown finishes").status;
    assert!(status.success());
    let text = std::fs::read_to_string(out.join("predictions.jsonl")).expect("journal");
    assert_eq!(text.lines().count(), 8);
    assert!(
        text.lines().all(|l| l.contains("\"reason\":\"v1\"")),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("script_reloads.jsonl")).expect("journal"),
        ""
    );
}
