//! The repository's sync lock: `$PATINA_HOME/run/forge-sync-<owner>-<repo>.pid`,
//! held with an exclusive `flock` for the whole life of the process that
//! drains. The lock, not the PID in the file, says whether a sync runs: a
//! PID can be reused, a lock dies with its holder.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::home::{self, PatinaHome};
use crate::target::ForgeName;

/// Another process holds the lock: exit status 75.
#[derive(Debug)]
pub struct Busy {
    pub pid: Option<u32>,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "Already syncing (PID {pid}). Check: --status"),
            None => write!(f, "Already syncing. Check: --status"),
        }
    }
}

impl std::error::Error for Busy {}

/// The held lock; dropping it (or dying) releases it. The file stays: removing
/// it would race with a process that has just opened it.
pub struct SyncLock {
    file: File,
    path: PathBuf,
}

impl SyncLock {
    /// Takes the lock without waiting. `Err` carries [`Busy`] when another
    /// process holds it.
    pub fn acquire(home: &PatinaHome, forge: &ForgeName) -> Result<Self> {
        let path = home.pid_file(&forge.owner, &forge.name)?;
        let mut file = home::open_private(&path)
            .with_context(|| format!("cannot open the PID file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Busy {
                    pid: read_pid(&mut file),
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let mut lock = Self { file, path };
        lock.write_pid(std::process::id())?;
        Ok(lock)
    }

    /// Records the PID of the process that now holds the lock (after a fork,
    /// the child's).
    pub fn write_pid(&mut self, pid: u32) -> Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.set_len(0)?;
        writeln!(self.file, "{pid}")
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock, if anyone. Reads only: opens an existing PID file
/// (never creating one), tries a shared lock and lets go at once.
pub fn holder(home: &PatinaHome, forge: &ForgeName) -> Result<Option<Busy>> {
    let path = home
        .dir()
        .join("run")
        .join(format!("forge-sync-{}-{}.pid", forge.owner, forge.name));
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(Busy {
            pid: read_pid(&mut file),
        })),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
