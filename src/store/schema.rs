//! Two schemas. patina's objects, exactly as patina creates them, in
//! `patina.db` (the projection); ours, numbered in our own file's
//! `PRAGMA user_version` (the store). And the one-time move of a database of
//! the former layout, where our columns and tables lived inside patina's file.

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

CREATE VIRTUAL TABLE IF NOT EXISTS code_fts USING fts5(
    symbol_name,
    file_path,
    content,
    event_type,
    tokenize='porter unicode61'
);
";

type Migration = fn(&Transaction) -> rusqlite::Result<()>;

/// The former layout's migrations, inside patina's file; migration `i`
/// brought its `user_version` from `i` to `i + 1`. Kept only to bring an old
/// database to the last of them before its contents move to our store.
const LEGACY_MIGRATIONS: &[Migration] = &[
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

/// The last schema of the former layout.
const LEGACY_VERSION: usize = LEGACY_MIGRATIONS.len();

/// Creates patina's objects in `patina.db` (`conn` opened on it alone) and
/// returns the former layout's schema version found there: 0 for a file
/// patina-forge never wrote in that layout (patina does not use
/// `user_version`). A file of the former layout is brought to its last
/// version, so that its move to our store knows every column.
pub fn prepare_patina(conn: &mut Connection) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(PATINA_DDL)
        .context("cannot create patina's tables")?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > LEGACY_VERSION {
        bail!(
            "its PRAGMA user_version is {current}: patina-forge never wrote that; \
             is it patina's database?"
        );
    }
    if current > 0 {
        for (version, migrate) in LEGACY_MIGRATIONS.iter().enumerate().skip(current) {
            migrate(&tx).with_context(|| format!("cannot apply migration {}", version + 1))?;
        }
        tx.pragma_update(None, "user_version", i64::try_from(LEGACY_VERSION)?)?;
    }
    tx.commit()?;
    Ok(current)
}

/// Our store, version 1: the backlog, the items with what patina's tables
/// do not hold (ETags, comment counts, when closed, a PR's `updated_at`),
/// their comments, the scanned tips, the drain's state, the runs, and the
/// refresh mark. Table and column names are those patina's file had in the
/// former layout, so that one query reads either. `event_seq` is where the
/// item's version sits in the current projection, rewritten whenever it is
/// projected again.
fn store_v1(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS forge_refs (
             repo         TEXT NOT NULL,
             ref_number   INTEGER NOT NULL,
             ref_kind     TEXT DEFAULT 'unknown',
             discovered   TEXT NOT NULL,
             source       TEXT,
             resolved     TEXT,
             error        TEXT,
             commit_time  INTEGER,
             pattern      TEXT,
             attempts     INTEGER NOT NULL DEFAULT 0,
             last_error   TEXT,
             next_attempt INTEGER,
             moved_to     TEXT,
             PRIMARY KEY (repo, ref_number)
         );
         CREATE INDEX IF NOT EXISTS idx_forge_refs_pending
             ON forge_refs(repo, discovered DESC) WHERE resolved IS NULL;
         CREATE INDEX IF NOT EXISTS idx_forge_refs_backlog
             ON forge_refs(repo, commit_time DESC, ref_number DESC) WHERE resolved IS NULL;
         CREATE TABLE IF NOT EXISTS forge_scanned_tips (
             repo       TEXT NOT NULL,
             commit_id  TEXT NOT NULL,
             scanned_at TEXT NOT NULL,
             PRIMARY KEY (repo, commit_id)
         );
         CREATE TABLE IF NOT EXISTS forge_issues (
             number        INTEGER PRIMARY KEY,
             title         TEXT NOT NULL,
             body          TEXT,
             state         TEXT NOT NULL,
             labels        TEXT,
             author        TEXT,
             created_at    TEXT NOT NULL,
             updated_at    TEXT NOT NULL,
             url           TEXT NOT NULL,
             event_seq     INTEGER,
             etag          TEXT,
             comment_count INTEGER,
             closed_at     TEXT
         );
         CREATE TABLE IF NOT EXISTS forge_prs (
             number        INTEGER PRIMARY KEY,
             title         TEXT NOT NULL,
             body          TEXT,
             state         TEXT NOT NULL,
             labels        TEXT,
             author        TEXT,
             created_at    TEXT NOT NULL,
             merged_at     TEXT,
             url           TEXT NOT NULL,
             linked_issues TEXT,
             approvals     INTEGER DEFAULT 0,
             event_seq     INTEGER,
             etag          TEXT,
             updated_at    TEXT,
             comment_count INTEGER,
             closed_at     TEXT
         );
         CREATE TABLE IF NOT EXISTS forge_comments (
             number     INTEGER NOT NULL,
             id         TEXT NOT NULL,
             position   INTEGER NOT NULL,
             author     TEXT,
             body       TEXT NOT NULL,
             created_at TEXT NOT NULL,
             PRIMARY KEY (number, id)
         );
         CREATE TABLE IF NOT EXISTS forge_sync_state (
             repo            TEXT PRIMARY KEY,
             newest_number   INTEGER,
             list_next       TEXT,
             list_floor      INTEGER,
             list_top        INTEGER,
             list_covered    INTEGER,
             list_started    TEXT,
             rate_remaining  INTEGER,
             rate_limit      INTEGER,
             rate_reset      INTEGER,
             rate_seen       TEXT,
             refresh_url     TEXT,
             refresh_etag    TEXT,
             refresh_at      TEXT,
             refresh_changed INTEGER,
             api             TEXT,
             api_note        TEXT,
             forge_kind      TEXT,
             api_base        TEXT
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
         CREATE INDEX IF NOT EXISTS idx_forge_runs_repo ON forge_runs(repo, id DESC);
         CREATE TABLE IF NOT EXISTS scrape_meta (
             key   TEXT PRIMARY KEY,
             value TEXT
         );",
    )
}

/// Our store's migrations, in order; migration `i` brings our file's
/// `user_version` from `i` to `i + 1`. Append only: a shipped migration
/// never changes.
const MIGRATIONS: &[Migration] = &[store_v1];

/// The newest schema of our store this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Applies our store's pending migrations in one transaction, so a crash
/// leaves either the old schema or the new one. Returns the version found
/// (0: a new store).
pub fn upgrade(conn: &mut Connection) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > VERSION {
        bail!(
            "its schema is version {current}, newer than this patina-forge knows \
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
    Ok(current)
}

/// What the former layout added to patina's file: tables, then columns.
/// Indexes on our columns go with `DROP INDEX` first (a column under an
/// index cannot be dropped).
const LEGACY_TABLES: &[&str] = &[
    "forge_scanned_tips",
    "forge_sync_state",
    "forge_runs",
    "forge_comments",
];
const LEGACY_INDEXES: &[&str] = &["idx_forge_refs_backlog", "idx_forge_runs_repo"];
const LEGACY_COLUMNS: &[(&str, &str)] = &[
    ("forge_refs", "commit_time"),
    ("forge_refs", "pattern"),
    ("forge_refs", "attempts"),
    ("forge_refs", "last_error"),
    ("forge_refs", "next_attempt"),
    ("forge_refs", "moved_to"),
    ("forge_issues", "etag"),
    ("forge_issues", "comment_count"),
    ("forge_issues", "closed_at"),
    ("forge_prs", "etag"),
    ("forge_prs", "updated_at"),
    ("forge_prs", "comment_count"),
    ("forge_prs", "closed_at"),
];

/// Moves a database of the former layout (attached as `patina`, at its last
/// version) into our store, then gives patina's file back patina's schema
/// alone. `copy` is false when our store already holds the data (a crash
/// came between the two commits last time): then only the strip is left.
/// One transaction over both files; our store commits first.
pub fn adopt_legacy(conn: &mut Connection, copy: bool) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if copy {
        tx.execute_batch(
            "INSERT OR IGNORE INTO main.forge_refs
                 (repo, ref_number, ref_kind, discovered, source, resolved, error, commit_time,
                  pattern, attempts, last_error, next_attempt, moved_to)
             SELECT repo, ref_number, ref_kind, discovered, source, resolved, error, commit_time,
                    pattern, attempts, last_error, next_attempt, moved_to
             FROM patina.forge_refs;
             INSERT OR IGNORE INTO main.forge_scanned_tips SELECT repo, commit_id, scanned_at
                 FROM patina.forge_scanned_tips;
             INSERT OR IGNORE INTO main.forge_issues
                 (number, title, body, state, labels, author, created_at, updated_at, url,
                  event_seq, etag, comment_count, closed_at)
             SELECT number, title, body, state, labels, author, created_at, updated_at, url,
                    event_seq, etag, comment_count, closed_at
             FROM patina.forge_issues;
             INSERT OR IGNORE INTO main.forge_prs
                 (number, title, body, state, labels, author, created_at, merged_at, url,
                  linked_issues, approvals, event_seq, etag, updated_at, comment_count, closed_at)
             SELECT number, title, body, state, labels, author, created_at, merged_at, url,
                    linked_issues, approvals, event_seq, etag, updated_at, comment_count,
                    closed_at
             FROM patina.forge_prs;
             INSERT OR IGNORE INTO main.forge_comments
                 (number, id, position, author, body, created_at)
             SELECT number, id, position, author, body, created_at FROM patina.forge_comments;
             INSERT OR IGNORE INTO main.forge_sync_state
                 (repo, newest_number, list_next, list_floor, list_top, list_covered,
                  list_started, rate_remaining, rate_limit, rate_reset, rate_seen, refresh_url,
                  refresh_etag, refresh_at, refresh_changed, api, api_note, forge_kind, api_base)
             SELECT repo, newest_number, list_next, list_floor, list_top, list_covered,
                    list_started, rate_remaining, rate_limit, rate_reset, rate_seen, refresh_url,
                    refresh_etag, refresh_at, refresh_changed, api, api_note, forge_kind,
                    api_base
             FROM patina.forge_sync_state;
             INSERT OR IGNORE INTO main.forge_runs
                 (id, repo, pid, mode, started, ended, state, requests, resolved, failed,
                  last_error)
             SELECT id, repo, pid, mode, started, ended, state, requests, resolved, failed,
                    last_error
             FROM patina.forge_runs;
             INSERT OR IGNORE INTO main.scrape_meta (key, value)
             SELECT key, value FROM patina.scrape_meta WHERE key = 'last_processed_forge';",
        )
        .context("cannot copy the former layout into the store")?;
    }
    for index in LEGACY_INDEXES {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS patina.{index}"))?;
    }
    for table in LEGACY_TABLES {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS patina.{table}"))?;
    }
    for (table, column) in LEGACY_COLUMNS {
        let exists: bool = tx.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1, 'patina') WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?;
        if exists {
            tx.execute_batch(&format!("ALTER TABLE patina.{table} DROP COLUMN {column}"))?;
        }
    }
    tx.pragma_update(Some("patina"), "user_version", 0)?;
    tx.commit()
        .context("cannot give patina's database back its own schema")?;
    Ok(())
}
