//! `updown api`: the script API reference, and Rhai definition files for editors.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use updown::script::api;

/// Definition file name written by `--definitions`.
const DEFINITIONS_FILE: &str = "updown.d.rhai";

/// Flags of `updown api`.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Also write Rhai definition files into DIR (`updown.d.rhai` for the script API, plus
    /// the standard library's), so an editor with a Rhai language server autocompletes it.
    #[arg(long, value_name = "DIR")]
    definitions: Option<PathBuf>,
}

/// Run `updown api`.
pub fn api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.definitions {
        None => write!(out, "{}", api::reference())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = dir.join(DEFINITIONS_FILE);
            std::fs::write(&file, api::definitions())
                .with_context(|| format!("writing {}", file.display()))?;
            // The standard library (strings, arrays, maths) as the script engine has it.
            rhai::Engine::new()
                .definitions()
                .include_standard_packages(true)
                .write_to_dir(&dir)
                .with_context(|| {
                    format!(
                        "writing the standard library definitions into {}",
                        dir.display()
                    )
                })?;
            writeln!(
                out,
                "wrote {} and the standard library definitions in {}",
                file.display(),
                dir.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
