//! patina's objects, exactly as patina creates them, and our own additions as
//! numbered migrations recorded in `PRAGMA user_version`.

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// patina's DDL, verbatim: its tables, columns and indexes as patina creates
/// them, so that patina reads the file as its own. `IF NOT EXISTS`
/// everywhere: patina may have created these first, and then its
/// definitions stand.
const PATINA_DDL: &str = "
CREATE TABLE IF NOT EXISTS eventlog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_file TEXT,
    data TEXT NOT NULL,
    CHECK(json_valid(data))
);
CREATE INDEX IF NOT EXISTS idx_eventlog_type ON eventlog(event_type);
CREATE INDEX IF NOT EXISTS idx_eventlog_timestamp ON eventlog(timestamp);
CREATE INDEX IF NOT EXISTS idx_eventlog_source ON eventlog(source_id);
CREATE INDEX IF NOT EXISTS idx_eventlog_type_time ON eventlog(event_type, timestamp);

CREATE TABLE IF NOT EXISTS scrape_meta (
    key TEXT PRIMARY KEY,
    value TEXT
);

CREATE TABLE IF NOT EXISTS forge_issues (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL,
    labels TEXT,
    author TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    url TEXT NOT NULL,
    event_seq INTEGER,
    FOREIGN KEY (event_seq) REFERENCES eventlog(seq)
);
CREATE TABLE IF NOT EXISTS forge_prs (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL,
    labels TEXT,
    author TEXT,
    created_at TEXT NOT NULL,
    merged_at TEXT,
    url TEXT NOT NULL,
    linked_issues TEXT,
    approvals INTEGER DEFAULT 0,
    event_seq INTEGER,
    FOREIGN KEY (event_seq) REFERENCES eventlog(seq)
);
CREATE INDEX IF NOT EXISTS idx_forge_issues_state ON forge_issues(state);
CREATE INDEX IF NOT EXISTS idx_forge_issues_updated ON forge_issues(updated_at);
CREATE INDEX IF NOT EXISTS idx_forge_prs_state ON forge_prs(state);
CREATE INDEX IF NOT EXISTS idx_forge_prs_merged ON forge_prs(merged_at);

CREATE TABLE IF NOT EXISTS forge_refs (
    repo        TEXT NOT NULL,
    ref_number  INTEGER NOT NULL,
    ref_kind    TEXT DEFAULT 'unknown',
    discovered  TEXT NOT NULL,
    source      TEXT,
    resolved    TEXT,
    error       TEXT,
    PRIMARY KEY (repo, ref_number)
);
CREATE INDEX IF NOT EXISTS idx_forge_refs_pending
    ON forge_refs(repo, discovered DESC) WHERE resolved IS NULL;
";

type Migration = fn(&Transaction) -> rusqlite::Result<()>;

/// Ours, in order; migration `i` brings `user_version` from `i` to `i + 1`.
/// Append only: a shipped migration never changes.
const MIGRATIONS: &[Migration] = &[
    backlog_order_and_scanned_tips,
    resolution,
    refresh,
    discussion,
    forge_identity,
];

/// 1: what discovery needs. `commit_time` (unix seconds of the newest commit
/// that mentions the ref) lets the backlog drain newest first; `pattern` keeps
/// a hint of what found it; `forge_scanned_tips` makes discovery incremental.
fn backlog_order_and_scanned_tips(tx: &Transaction) -> rusqlite::Result<()> {
    add_column_if_missing(tx, "forge_refs", "commit_time", "INTEGER")?;
    add_column_if_missing(tx, "forge_refs", "pattern", "TEXT")?;
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS idx_forge_refs_backlog
             ON forge_refs(repo, commit_time DESC, ref_number DESC) WHERE resolved IS NULL;
         CREATE TABLE IF NOT EXISTS forge_scanned_tips (
             repo       TEXT NOT NULL,
             commit_id  TEXT NOT NULL,
             scanned_at TEXT NOT NULL,
             PRIMARY KEY (repo, commit_id)
         );",
    )
}

/// 2: what resolving needs. On `forge_refs`, the bookkeeping of transient
/// failures (a ref that failed for now stays pending, never "failed") and
/// where a transferred issue went; ETags for conditional requests; the
/// `updated_at` that patina's `forge_prs` lacks, so a PR's event is appended
/// only when it changed; the listing cursor and the last rate-limit budget
/// seen; and one row per drain.
fn resolution(tx: &Transaction) -> rusqlite::Result<()> {
    add_column_if_missing(tx, "forge_refs", "attempts", "INTEGER NOT NULL DEFAULT 0")?;
    add_column_if_missing(tx, "forge_refs", "last_error", "TEXT")?;
    add_column_if_missing(tx, "forge_refs", "next_attempt", "INTEGER")?;
    add_column_if_missing(tx, "forge_refs", "moved_to", "TEXT")?;
    add_column_if_missing(tx, "forge_issues", "etag", "TEXT")?;
    add_column_if_missing(tx, "forge_prs", "etag", "TEXT")?;
    add_column_if_missing(tx, "forge_prs", "updated_at", "TEXT")?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS forge_sync_state (
             repo           TEXT PRIMARY KEY,
             newest_number  INTEGER,
             list_next      TEXT,
             list_floor     INTEGER,
             list_top       INTEGER,
             list_covered   INTEGER,
             list_started   TEXT,
             rate_remaining INTEGER,
             rate_limit     INTEGER,
             rate_reset     INTEGER,
             rate_seen      TEXT
         );
         CREATE TABLE IF NOT EXISTS forge_runs (
             id         INTEGER PRIMARY KEY AUTOINCREMENT,
             repo       TEXT NOT NULL,
             pid        INTEGER NOT NULL,
             mode       TEXT NOT NULL,
             started    TEXT NOT NULL,
             ended      TEXT,
             state      TEXT NOT NULL,
             requests   INTEGER NOT NULL DEFAULT 0,
             resolved   INTEGER NOT NULL DEFAULT 0,
             failed     INTEGER NOT NULL DEFAULT 0,
             last_error TEXT
         );
         CREATE INDEX IF NOT EXISTS idx_forge_runs_repo ON forge_runs(repo, id DESC);",
    )
}

/// 3: the refresh. The first listing page of the last refresh and its ETag
/// (asked conditionally next time: an unchanged repository costs one request
/// GitHub does not count), and when it ran and what it brought.
fn refresh(tx: &Transaction) -> rusqlite::Result<()> {
    add_column_if_missing(tx, "forge_sync_state", "refresh_url", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "refresh_etag", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "refresh_at", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "refresh_changed", "INTEGER")?;
    Ok(())
}

/// 4: what GraphQL brings. The first comments of each item in a table of
/// our own (patina's PR event flattens them into one string; nothing is lost
/// here), the count of all of them (`NULL`: never fetched with comments),
/// when an item was closed, and which API the last drain used, for status.
fn discussion(tx: &Transaction) -> rusqlite::Result<()> {
    add_column_if_missing(tx, "forge_issues", "comment_count", "INTEGER")?;
    add_column_if_missing(tx, "forge_prs", "comment_count", "INTEGER")?;
    add_column_if_missing(tx, "forge_issues", "closed_at", "TEXT")?;
    add_column_if_missing(tx, "forge_prs", "closed_at", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "api", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "api_note", "TEXT")?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS forge_comments (
             number     INTEGER NOT NULL,
             id         TEXT NOT NULL,
             position   INTEGER NOT NULL,
             author     TEXT,
             body       TEXT NOT NULL,
             created_at TEXT NOT NULL,
             PRIMARY KEY (number, id)
         );",
    )
}

/// 5: what the forge is (`github`, `github-enterprise`, `gitea`) and where
/// its API answered, learned once per repository.
fn forge_identity(tx: &Transaction) -> rusqlite::Result<()> {
    add_column_if_missing(tx, "forge_sync_state", "forge_kind", "TEXT")?;
    add_column_if_missing(tx, "forge_sync_state", "api_base", "TEXT")
}

/// `ALTER TABLE … ADD COLUMN` fails on a column that exists; a database that
/// patina or an older build touched in between must not stop the upgrade.
fn add_column_if_missing(
    tx: &Transaction,
    table: &str,
    column: &str,
    decl: &str,
) -> rusqlite::Result<()> {
    let exists: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )?;
    if !exists {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
    }
    Ok(())
}

/// The newest schema this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Creates patina's objects and applies our pending migrations in one
/// transaction, so a crash leaves either the old schema or the new one.
pub fn upgrade(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(PATINA_DDL)
        .context("cannot create patina's tables")?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > VERSION {
        bail!(
            "the database's schema is version {current}, newer than this patina-forge knows \
             ({VERSION}): upgrade patina-forge"
        );
    }
    for (version, migrate) in MIGRATIONS.iter().enumerate().skip(current) {
        migrate(&tx).with_context(|| format!("cannot apply migration {}", version + 1))?;
    }
    if current < VERSION {
        tx.pragma_update(None, "user_version", i64::try_from(VERSION)?)?;
    }
    tx.commit()?;
    Ok(())
}
