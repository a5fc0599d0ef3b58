//! Hot reload: watch a strategy and its modules, check each saved version off the session
//! thread, and offer good versions to the session, which swaps them in between windows.
//!
//! The watcher observes the script's folder rather than the file, because editors often
//! save by writing a temporary file and renaming it over the original (the file watched
//! would vanish). Only changes count: opening or reading a file (as the checker itself does)
//! is not an edit, or each check would trigger the next. Changes are debounced (a version is
//! checked once no `.rhai` file has changed for [`DEBOUNCE`]), and a version is offered only
//! when its content hash (script plus imported modules) differs from the last one seen, so a
//! save without changes is a no-op. A version that fails to compile or load is reported with
//! its file, line and column and never replaces the running one.

use super::host::{ScriptError, ScriptStrategy, script_folder};
use super::{Reload, Reloader, Strategy};
use crate::config::SandboxConfig;
use notify_debouncer_mini::notify::{self, EventKind, RecommendedWatcher, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Quiet time after the last change to a `.rhai` file before a version is checked: long
/// enough for an editor's save (a truncate and a write, or a temporary file renamed over
/// the script, a few milliseconds apart) to be complete, so a half-written file is not
/// compiled and reported as broken; short enough that a save is live well within 200 ms.
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
    _watcher: RecommendedWatcher,
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
        let (events_tx, events_rx) = channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(move |e| {
            // The checker is gone when this fails: nothing left to tell.
            let _ = events_tx.send(e);
        })
        .map_err(|source| WatchError {
            path: path.to_path_buf(),
            source,
        })?;
        watcher
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
                while next_change(&events_rx, &script) {
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
            _watcher: watcher,
        })
    }
}

/// Whether `event` changed a `.rhai` file (opening or reading one changes nothing).
fn changes_a_script(event: &notify::Event) -> bool {
    !matches!(event.kind, EventKind::Access(_))
        && event
            .paths
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "rhai"))
}

/// Wait for a change to a `.rhai` file, then until none has changed for [`DEBOUNCE`].
/// `false` when the watcher is gone (the session ended).
fn next_change(events: &Receiver<notify::Result<notify::Event>>, script: &Path) -> bool {
    let mut quiet_from: Option<Instant> = None;
    loop {
        let event = match quiet_from {
            None => match events.recv() {
                Ok(e) => e,
                Err(_) => return false,
            },
            Some(t) => {
                match events.recv_timeout((t + DEBOUNCE).saturating_duration_since(Instant::now()))
                {
                    Ok(e) => e,
                    Err(RecvTimeoutError::Timeout) => return true,
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            }
        };
        match event {
            Ok(e) if changes_a_script(&e) => quiet_from = Some(Instant::now()),
            Ok(_) => {}
            Err(e) => tracing::warn!("watching {}: {e}", script.display()),
        }
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
