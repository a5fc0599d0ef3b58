//! The output folder's lock: one updown process writes an output folder at a time.
//!
//! A folder's ledger and journals belong to one session at a time. Two processes writing the
//! same folder — a `backtest --out` pointed at a folder where `updown run` is trading, or the
//! same `run` started twice — would overwrite or collide with each other's records, so every
//! command that writes a folder first takes this lock and keeps it until the process exits.
//! It is an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on `updown.lock` inside
//! the folder: the OS drops it when the holder exits, even after `kill -9`, so a crash never
//! leaves a folder locked. Reading (`updown status`, `updown report --no-write`) needs no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside the output folder.
pub const LOCK_FILE: &str = "updown.lock";

/// Why the output folder could not be locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the folder.
    #[error(
        "output folder {dir} is in use by another updown process ({holder}); wait for it to finish or stop it, or pass --out to use another folder"
    )]
    Busy {
        /// The folder.
        dir: PathBuf,
        /// What the holder wrote into the lock file (its pid and command), for people.
        holder: String,
    },
    /// The folder or its lock file could not be created or locked.
    #[error("output folder {dir}: cannot create or lock {LOCK_FILE}: {source}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// An exclusive hold on an output folder, released when dropped (or when the process exits).
///
/// Owned by the command that writes the folder, for as long as it runs.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    dir: PathBuf,
}

impl FolderLock {
    /// Create `dir` if needed and lock it for this process, recording `what` (the command)
    /// and the pid in the lock file so that a second process can say who holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // Best effort: the holder may be rewriting it this very moment.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Busy {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.chars().take(200).collect()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "pid {}: {what}", std::process::id()).map_err(io)?;
        Ok(FolderLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let first = FolderLock::acquire(&dir, "updown run").unwrap();
        let err = FolderLock::acquire(&dir, "updown backtest").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Busy { .. }), "{msg}");
        assert!(msg.contains("updown run"), "names the holder: {msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("--out"), "says what to do: {msg}");
        drop(first);
        let again = FolderLock::acquire(&dir, "updown backtest").unwrap();
        assert_eq!(again.dir(), dir);
    }
}
