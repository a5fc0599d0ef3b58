//! Hot reload: watch a strategy and its modules, check each saved version off the session
//! thread, and offer good versions to the session, which swaps them in between windows.
//!
//! The watcher observes the script's folder rather than the file, because editors often
//! save by writing a temporary file and renaming it over the original (the file watched
//! would vanish). Events are debounced, and a version is offered only when its content hash
//! (script plus imported modules) differs from the last one seen, so a save without changes
//! is a no-op. A version that fails to compile or load is reported with its file, line and
//! column and never replaces the running one.

use super::host::{ScriptError, ScriptStrategy, script_folder};
use super::{Reload, Reloader, Strategy};
use crate::config::SandboxConfig;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer, notify};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Quiet time after the last file event before a version is checked.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What the checker thread found in a saved version.
#[derive(Debug)]
enum Checked {
    /// The version compiled and loaded; the session may build it.
    Good { hash: String },
    /// The version is broken; the old one stays.
    Broken { error: String },
}

/// Watches one strategy script. Owned by the session; dropping it stops the watching.
pub struct ScriptWatcher {
    path: PathBuf,
    limits: SandboxConfig,
    rx: Receiver<Checked>,
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for ScriptWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for changes: {source}")]
pub struct WatchError {
    path: PathBuf,
    source: notify::Error,
}

impl ScriptWatcher {
    /// Start watching the script at `path`, whose running version has content hash
    /// `current_hash`.
    pub fn start(
        path: &Path,
        current_hash: &str,
        limits: &SandboxConfig,
    ) -> Result<Self, WatchError> {
        let folder = script_folder(path).to_path_buf();
        let (events_tx, events_rx) = channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(DEBOUNCE, events_tx).map_err(|source| WatchError {
            path: path.to_path_buf(),
            source,
        })?;
        debouncer
            .watcher()
            .watch(&folder, notify::RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: folder.clone(),
                source,
            })?;

        let (checked_tx, checked_rx) = channel();
        let script = path.to_path_buf();
        let thread_limits = limits.clone();
        let mut last_hash = current_hash.to_string();
        let mut last_error = String::new();
        // The checker compiles each version on its own thread (Rhai values are not `Send`,
        // so the version is rebuilt by the session; this thread only vouches for it).
        std::thread::Builder::new()
            .name("script-watcher".into())
            .spawn(move || {
                for batch in events_rx {
                    let touched_rhai = match batch {
                        Ok(events) => events
                            .iter()
                            .any(|e| e.path.extension().is_some_and(|x| x == "rhai")),
                        Err(e) => {
                            tracing::warn!("watching {}: {e}", script.display());
                            false
                        }
                    };
                    if !touched_rhai {
                        continue;
                    }
                    let found = match ScriptStrategy::load(&script, &thread_limits) {
                        Ok(s) if s.content_hash() == last_hash => continue,
                        Ok(s) => {
                            last_hash = s.content_hash().to_string();
                            last_error.clear();
                            Checked::Good {
                                hash: last_hash.clone(),
                            }
                        }
                        Err(ScriptError::Read { .. }) => continue, // mid-rename; the next event has it
                        Err(e) => {
                            let error = e.to_string();
                            if error == last_error {
                                continue;
                            }
                            last_error = error.clone();
                            Checked::Broken { error }
                        }
                    };
                    if checked_tx.send(found).is_err() {
                        break; // the session is gone
                    }
                }
            })
            .map_err(|e| WatchError {
                path: path.to_path_buf(),
                source: notify::Error::io(e),
            })?;

        Ok(ScriptWatcher {
            path: path.to_path_buf(),
            limits: limits.clone(),
            rx: checked_rx,
            _debouncer: debouncer,
        })
    }
}

impl Reloader for ScriptWatcher {
    fn poll(&mut self, current: &dyn Strategy) -> Option<Reload> {
        // Only the newest verdict matters: two saves within one window swap once.
        let latest = self.rx.try_iter().last()?;
        match latest {
            Checked::Broken { error } => Some(Reload::Rejected { error }),
            Checked::Good { hash } => {
                let mut next = match ScriptStrategy::load(&self.path, &self.limits) {
                    Ok(next) => next,
                    // Changed again since it was checked, and broken now: keep the old one.
                    Err(e) => {
                        return Some(Reload::Rejected {
                            error: e.to_string(),
                        });
                    }
                };
                if next.content_hash() == current.content_hash() {
                    return None;
                }
                if let Some(memory) = current.memory_json()
                    && let Err(e) = next.restore_memory(&memory)
                {
                    return Some(Reload::Rejected {
                        error: format!(
                            "{}: cannot carry the script memory over: {e}",
                            self.path.display()
                        ),
                    });
                }
                tracing::debug!(checked = %hash, loaded = %next.content_hash(), "new script version ready");
                Some(Reload::Swap(Box::new(next)))
            }
        }
    }
}
