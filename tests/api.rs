//! `updown api` prints the whole script API and writes definition files an editor can load.

use std::process::Command;

fn updown(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_updown"))
        .args(args)
        .output()
        .expect("the updown binary runs")
}

#[test]
fn api_lists_every_ctx_member_and_helper() {
    let out = updown(&["api"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for item in updown::script::api::API {
        assert!(text.contains(item.signature), "missing {}", item.signature);
        assert!(text.contains(item.doc), "missing the doc of {}", item.name);
    }
    // The shipped strategies call these; a rename would break them silently otherwise.
    for used in [
        "ctx.rsi(n [, ago])",
        "ctx.ema(n [, ago])",
        "ctx.macd(fast, slow, signal [, ago])",
        "ctx.param(name, default)",
    ] {
        assert!(text.contains(used), "missing {used}");
    }
}

#[test]
fn definitions_are_written_for_the_api_and_the_standard_library() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = updown(&["api", "--definitions", &dir.path().display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours =
        std::fs::read_to_string(dir.path().join("updown.d.rhai")).expect("updown.d.rhai written");
    assert!(ours.starts_with("// updown script API"));
    assert!(ours.contains("fn macd(ctx: Ctx, fast: int, slow: int, signal: int, ago: int) -> ?;"));
    assert!(ours.contains("fn get account(ctx: Ctx) -> Map;"));
    let builtin = std::fs::read_to_string(dir.path().join("__builtin__.d.rhai"))
        .expect("standard library definitions");
    assert!(builtin.contains("fn print("));
}
