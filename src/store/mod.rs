//! The project's `patina.db`, shared with patina: opening it safely, its
//! schema, and the queries over the backlog.

mod backlog;
mod resolve;
mod schema;
mod writer;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

pub use backlog::{Counts, Mention, Recorded};
pub use resolve::{Candidate, Rate, RefreshState, RunRow, RunState, SyncState};
pub use writer::Writer;

/// patina, a running sync and a status query share the file; a writer holds
/// the lock for one short transaction, so waiting beats failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Counting a backlog of 100,000 refs reads every page of an index; mapped,
/// those reads are memory loads instead of a `pread` and a copy each. Only
/// readers map: a writer's bulk insert would map (and keep resident) pages
/// it touches once.
const MMAP_SIZE: i64 = 256 * 1024 * 1024;

/// The database, open for writing (its schema upgraded first) or for
/// reading only.
pub struct Store {
    conn: Connection,
    /// The WAL, for writers; checked on drop.
    wal: Option<PathBuf>,
}

/// A WAL larger than this is emptied when the store closes: the next process
/// to open the database would otherwise read all of it to rebuild its index.
const WAL_KEEP_LIMIT: u64 = 4 * 1024 * 1024;

impl Drop for Store {
    fn drop(&mut self) {
        let Some(wal) = &self.wal else { return };
        if fs::metadata(wal).is_ok_and(|m| m.len() > WAL_KEEP_LIMIT) {
            // Best effort: a busy reader only delays it to a later run.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// Opens (or creates) the database for writing, with patina's objects and
    /// our migrations in place.
    pub fn open(path: &Path) -> Result<Self> {
        refuse_foreign_file(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the database folder {}", parent.display())
            })?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets patina read while a sync writes.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .with_context(|| format!("cannot use the database {}", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "cannot switch {} to WAL (journal mode stays {mode}): is it on a network file system?",
                path.display()
            );
        }
        // In WAL mode NORMAL is still crash-safe for the process (a kill -9
        // loses nothing committed); only a power cut may undo the last
        // commits. It saves an fsync per outcome; checkpoints still sync.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Closing would checkpoint the WAL into the database (two fsyncs)
        // even after a run that wrote one row; SQLite's automatic checkpoints
        // keep the WAL short, and `Drop` empties it after a bulk write.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        schema::upgrade(&mut conn).with_context(|| format!("database {}", path.display()))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self {
            conn,
            wal: Some(wal.into()),
        })
    }

    /// Opens the database for reading only; `None` when it does not exist yet.
    /// Never creates, migrates or writes anything.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        refuse_foreign_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the database {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        Ok(Some(Self { conn, wal: None }))
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?)
    }

    fn has_table(&self, name: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |row| row.get(0),
        )?)
    }
}

/// What to do when an error is SQLite's "busy" or "locked": the lock was
/// held by another process (patina, another sync) past our busy timeout.
pub fn locked_hint(err: &anyhow::Error) -> Option<String> {
    err.chain()
        .find_map(|cause| match cause.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                Some(format!(
                    "another process (patina, or another sync) held the database for over {} s; \
                 nothing was lost: run the same command again when it is done",
                    BUSY_TIMEOUT.as_secs()
                ))
            }
            _ => None,
        })
}

/// SQLite would take a non-database file for a corrupt database and fail
/// later, or, when it is empty, turn it into one. A file that is not ours to
/// touch is left exactly as it is.
fn refuse_foreign_file(path: &Path) -> Result<()> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if file.metadata()?.is_dir() {
        bail!("{} is a folder, not a database file", path.display());
    }
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..])? {
            0 => break,
            n => read += n,
        }
    }
    if read == 0 || &header == SQLITE_HEADER {
        return Ok(());
    }
    bail!(
        "{} is not a SQLite database; it was left untouched (move it away, or pass --db PATH)",
        path.display()
    )
}
