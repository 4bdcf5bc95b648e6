//! Our store and patina's `patina.db`. Everything patina-forge learns lives
//! in our own SQLite file beside `patina.db` ([`store_path`]); `patina.db`
//! gets a projection of it with patina's schema alone (`project.rs`), which
//! can always be rebuilt from the store without a request. One connection:
//! our store is `main`, patina's file is attached as `patina`, so one
//! transaction covers an outcome in both.

mod backlog;
mod project;
mod resolve;
mod schema;
mod writer;

use std::ffi::{CString, c_int};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};

pub use backlog::{Counts, Mention, Recorded};
pub use project::Repaired;
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

/// Our store's file for the database at `db`: beside it, named after it
/// (`patina.db` → `patina-forge.db`), so that two databases in one folder
/// never share a store.
pub fn store_path(db: &Path) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "patina".to_owned());
    db.with_file_name(format!("{stem}-forge.db"))
}

/// Which file a path names now: patina deletes and recreates `patina.db`,
/// and a connection keeps writing into the file it opened.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// patina's file as attached, and which file that was.
struct Attached {
    path: PathBuf,
    id: Option<FileId>,
}

/// Our store, open for writing (its schema upgraded, patina's file attached
/// and its projection made whole) or for reading only.
pub struct Store {
    conn: Connection,
    /// patina's file, for writers.
    patina: Option<Attached>,
    /// What the projection checks of this store found missing and wrote
    /// again, added up.
    repaired: Repaired,
    /// How often patina's file was found replaced before a write.
    followed: u32,
    /// Whether opening moved a database of the former layout into the store.
    adopted: bool,
    /// A reader's: the `-wal` whose absence let it read the file as
    /// immutable (see [`open_for_reading`]).
    absent_wal: Option<PathBuf>,
}

impl Drop for Store {
    fn drop(&mut self) {
        let Some(patina) = &self.patina else { return };
        // Whole files after every run: a copy of `patina.db` alone (or of our
        // store) holds everything, and the next opener has no WAL to read.
        // PASSIVE never waits for a reader; closing then checkpoints again
        // and removes the WAL when no one else has the file open.
        let _ = self
            .conn
            .query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if file_id(&patina.path) == patina.id {
            let _ = self
                .conn
                .query_row("PRAGMA patina.wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        } else {
            keep_wal(&self.conn, "patina");
        }
    }
}

/// Closing the last connection to a WAL database deletes its `-wal` and
/// `-shm` by name. When patina has replaced the file since we attached it,
/// those names are the new file's: they must survive our close.
fn keep_wal(conn: &Connection, schema: &str) {
    let Ok(name) = CString::new(schema) else {
        return;
    };
    let mut on: c_int = 1;
    // SAFETY: the handle is this live connection's; SQLITE_FCNTL_PERSIST_WAL
    // takes a pointer to an int, which outlives the call.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            name.as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        );
    }
}

/// Opens `path` for writing in WAL mode.
fn open_writer(path: &Path) -> Result<Connection> {
    refuse_foreign_file(path)?;
    let conn = Connection::open(path)
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
    Ok(conn)
}

/// Creates patina's objects in its file (alone on its own connection, so
/// that patina's DDL stays verbatim) and returns the former layout's version
/// found there (0: none).
fn prepare_patina(path: &Path) -> Result<usize> {
    let mut conn = open_writer(path)?;
    schema::prepare_patina(&mut conn).with_context(|| format!("database {}", path.display()))
}

impl Store {
    /// Opens (or creates) our store for the database at `path` and the
    /// database itself, upgrades both, moves a database of the former layout
    /// into the store, and makes the projection whole.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, true)
    }

    /// [`Store::open`] without the projection check, which the next writing
    /// run makes: for `--sync`'s parent, which must return at once (its
    /// child checks).
    pub fn open_unchecked(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, check: bool) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the database folder {}", parent.display())
            })?;
        }
        let own = store_path(path);
        refuse_foreign_file(path)?;
        let mut conn = open_writer(&own)?;
        let found =
            schema::upgrade(&mut conn).with_context(|| format!("database {}", own.display()))?;
        let mut store = Self {
            conn,
            patina: None,
            repaired: Repaired::default(),
            followed: 0,
            adopted: false,
            absent_wal: None,
        };
        store.attach(path, found == 0, check)?;
        Ok(store)
    }

    /// Attaches patina's file at `path` (creating it, with patina's objects),
    /// moves the former layout's contents when it has them (copying them only
    /// into a `new_store`), and, with `check`, projects whatever is missing.
    fn attach(&mut self, path: &Path, new_store: bool, check: bool) -> Result<()> {
        let legacy = prepare_patina(path)?;
        let name = path
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
        let before = file_id(path);
        self.conn
            .execute("ATTACH DATABASE ?1 AS patina", [name])
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        self.conn
            .execute_batch("PRAGMA patina.synchronous = NORMAL")?;
        // A file replaced between the look and the attach is caught by the
        // next write's look.
        self.patina = Some(Attached {
            path: path.to_owned(),
            id: before,
        });
        if legacy > 0 {
            schema::adopt_legacy(&mut self.conn, new_store)
                .with_context(|| format!("database {}", path.display()))?;
            self.adopted |= new_store;
        }
        if check {
            let repaired = self.write_raw(project::reconcile)?;
            self.repaired.add(repaired);
        }
        Ok(())
    }

    /// Before a write: when `patina.db` is not the file we attached (patina
    /// deleted or replaced it), moves to the file there now and projects
    /// everything into it. Nothing of ours is lost: it is all in our store.
    fn follow_patina(&mut self) -> Result<()> {
        let Some(patina) = &self.patina else {
            return Ok(());
        };
        if patina.id.is_some() && file_id(&patina.path) == patina.id {
            return Ok(());
        }
        let path = patina.path.clone();
        // Our WAL of the old file is emptied into it, and kept by name, so
        // that neither a new file at the path reads our old frames nor our
        // detach removes the new file's WAL.
        let _ = self
            .conn
            .query_row("PRAGMA patina.wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        keep_wal(&self.conn, "patina");
        self.conn.flush_prepared_statement_cache();
        self.conn
            .execute_batch("DETACH DATABASE patina")
            .context("cannot let go of the replaced patina.db")?;
        self.patina = None;
        self.followed += 1;
        self.attach(&path, false, true)
    }

    /// Runs `f` in one immediate transaction over both files and commits it
    /// (our store first: SQLite commits the files of a transaction in WAL
    /// mode one by one, in the order they were attached).
    fn write_raw<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// What the projection checks so far found missing in `patina.db` and
    /// wrote again.
    pub fn repaired(&self) -> Repaired {
        self.repaired
    }

    /// Whether opening moved a database of the former layout (our tables
    /// inside patina's file) into the store.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// How often `patina.db` was found deleted or replaced before a write,
    /// and followed.
    pub fn followed(&self) -> u32 {
        self.followed
    }

    /// Opens our store for reading only; `None` when neither it nor the
    /// database exists yet. A database patina-forge has not opened since the
    /// former layout (our tables inside patina's file) is read as it is.
    /// Never creates, migrates or writes anything.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>> {
        let own = store_path(path);
        let path = if own.exists() {
            own
        } else if path.exists() {
            path.to_owned()
        } else {
            return Ok(None);
        };
        refuse_foreign_file(&path)?;
        let (conn, absent_wal) = open_for_reading(&path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        Ok(Some(Self {
            conn,
            patina: None,
            repaired: Repaired::default(),
            followed: 0,
            adopted: false,
            absent_wal,
        }))
    }

    /// Whether a writer may have started while this reader read the file
    /// as immutable (its `-wal` is there now): what was read may then miss
    /// its commits, or meet a checkpoint halfway, and should be read again
    /// (the next opening reads through the WAL).
    pub fn wal_appeared(&self) -> bool {
        self.absent_wal.as_ref().is_some_and(|wal| wal.exists())
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

/// A read-only connection to `path` that creates nothing. SQLite makes
/// the `-wal` and `-shm` of a WAL database for a reader too, and a reader
/// cannot remove them. Without a `-wal` no writer has the file open (the
/// last to close removes it) and the file alone holds every commit: it is
/// read as immutable, and the `-wal` returned, for
/// [`Store::wal_appeared`] to look at after the reading. A database in a
/// rollback journal mode (patina's file before our first run) creates
/// nothing for a reader, and is read with its locks.
fn open_for_reading(path: &Path) -> Result<(Connection, Option<PathBuf>)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if !is_wal_mode(path) || wal.exists() {
        return Ok((Connection::open_with_flags(path, flags)?, None));
    }
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let conn = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?;
    Ok((conn, Some(wal)))
}

/// Whether the database file's header says WAL (read and write versions 2).
fn is_wal_mode(path: &Path) -> bool {
    let mut header = [0u8; 20];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok()
        && header[18] == 2
        && header[19] == 2
}

/// `path` for a `file:` URI: every byte but unreserved ones and `/`
/// percent-encoded, so that `?`, `#` and `%` in a folder's name stay its.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._~-".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the files in `dir`, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The store beside `dir/patina.db`, opened read-only, and the rows of
    /// its table `t`.
    fn read_t(dir: &Path) -> (Store, i64) {
        let store = Store::open_read_only(&dir.join("patina.db"))
            .unwrap()
            .expect("the store");
        let n = store
            .conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        (store, n)
    }

    #[test]
    fn reading_a_wal_database_creates_nothing_whatever_its_folder_is_called() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("a?b#c%d e");
        fs::create_dir(&dir).unwrap();
        let own = dir.join("patina-forge.db");
        {
            let conn = open_writer(&own).unwrap();
            conn.execute_batch("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2);")
                .unwrap();
        }
        assert_eq!(files(&dir), ["patina-forge.db"]);

        let (store, n) = read_t(&dir);
        assert_eq!(n, 2);
        assert!(!store.wal_appeared());
        drop(store);
        assert_eq!(files(&dir), ["patina-forge.db"]);

        // While a writer has it open, a reader reads through its WAL.
        let writer = open_writer(&own).unwrap();
        writer.execute_batch("INSERT INTO t VALUES (3);").unwrap();
        let (store, n) = read_t(&dir);
        assert_eq!(n, 3);
        assert!(!store.wal_appeared());
    }

    #[test]
    fn a_writer_starting_during_an_immutable_read_is_noticed() {
        let temp = tempfile::tempdir().unwrap();
        let own = temp.path().join("patina-forge.db");
        drop(open_writer(&own).unwrap());
        let store = Store::open_read_only(&temp.path().join("patina.db"))
            .unwrap()
            .expect("the store");
        assert!(!store.wal_appeared());
        let writer = open_writer(&own).unwrap();
        writer.execute_batch("CREATE TABLE t (a);").unwrap();
        assert!(store.wal_appeared());
    }
}
