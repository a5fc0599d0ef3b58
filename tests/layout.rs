//! The crate's layout as `src/lib.rs` states it: each top-level module depends only on the
//! modules before it in the data flow, so there is no cycle and no arrow back up. Read from
//! the sources (`crate::<module>` paths outside `#[cfg(test)]` code), so a change that adds
//! an upward dependency fails here, naming the file.

use std::path::Path;

/// The order of `src/lib.rs`: a module may use only modules to its left.
const ORDER: &[&str] = &[
    "clock",
    "config",
    "domain",
    "account",
    "feed",
    "indicators",
    "script",
    "risk",
    "native",
    "venue",
    "ledger",
    "report",
    "session",
    "validate",
    "loopback",
];

fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            sources(&e.path(), out);
        }
    }
}

#[test]
fn every_module_depends_only_on_the_modules_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (rank, module) in ORDER.iter().enumerate() {
        let mut files = Vec::new();
        sources(&src.join(format!("{module}.rs")), &mut files);
        sources(&src.join(module), &mut files);
        assert!(!files.is_empty(), "no sources for module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if let Some(used_rank) = ORDER.iter().position(|m| *m == used)
                    && used_rank > rank
                {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "arrows up the layout:\n{}",
        wrong.join("\n")
    );
    // Every top-level module is placed.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(ORDER.contains(&name), "{name} is not in the layout order");
        }
    }
}
