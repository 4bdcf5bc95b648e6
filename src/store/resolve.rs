//! What the drain reads: pending refs, items it holds, the listing cursor,
//! the refresh mark, the rate-limit budget, and runs. Every outcome is
//! written in one transaction through [`Writer`] (`writer.rs`), committed
//! before the next request leaves.

use anyhow::Result;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::writer::Writer;
use super::{Store, project};

/// A pending ref as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The issue or PR number.
    pub number: u32,
    /// Newest mentioning commit, unix seconds; `None` for refs of the range.
    pub commit_time: Option<i64>,
    /// Not before this (unix seconds), after a transient failure.
    pub next_attempt: Option<i64>,
}

/// The per-repository state of the drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The newest number discovery learned: the top of the range.
    pub newest_number: Option<u32>,
    /// The listing under way: its next page, exactly as the forge gave it.
    pub list_next: Option<String>,
    /// The lowest number the listing under way has reached.
    pub list_floor: Option<u32>,
    /// The newest number when the listing under way started.
    pub list_top: Option<u32>,
    /// Every number up to this was on a finished listing: what is still
    /// pending there is not on the list (deleted, transferred, hidden).
    pub list_covered: Option<u32>,
    /// The rate-limit budget last seen.
    pub rate: Option<Rate>,
    /// The API the latest drain used (`graphql`, `rest`), and why REST.
    pub api: Option<String>,
    /// Why REST, when it is.
    pub api_note: Option<String>,
    /// What the forge is and where its API is, once learned.
    pub forge_kind: Option<String>,
    /// The API base that answered, without the trailing `/`.
    pub api_base: Option<String>,
}

/// The rate-limit budget as the last answer announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests (or GraphQL points) left until `reset`.
    pub remaining: u64,
    /// The window's whole budget.
    pub limit: u64,
    /// Unix seconds.
    pub reset: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Under way, or killed: the lock tells which.
    Running,
    /// Nothing left that could be asked, or the limit reached.
    Finished,
    /// A stop was asked for, or a later run found it killed.
    Interrupted,
    /// The forge kept failing, or an error ended it.
    Failed,
}

impl RunState {
    /// As `forge_runs.state` stores it and status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Interrupted => "interrupted",
            RunState::Failed => "failed",
        }
    }
}

/// The high-water mark in `scrape_meta` (ours, projected into patina's): the
/// newest `updated_at` a refresh has stored.
pub(super) const MARK: &str = "last_processed_forge";

/// The last refresh, for the planner and for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshState {
    /// Where the next refresh starts (GitHub's `since`, RFC 3339).
    pub mark: Option<String>,
    /// The first page of the last refresh: asked again, conditionally.
    pub first_url: Option<String>,
    /// Its ETag: an unchanged page answers 304, which GitHub does not count.
    pub first_etag: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub at: Option<String>,
    /// Items the last refresh found new or changed.
    pub changed: Option<u64>,
}

/// A drain as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The process that drained.
    pub pid: u32,
    /// `limit`, `resume` or `sync`.
    pub mode: String,
    /// As [`RunState::as_str`] writes it.
    pub state: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub started: String,
    /// Same format; `None` while it runs, or until a later run finds it
    /// killed.
    pub ended: Option<String>,
    /// Requests it sent.
    pub requests: u64,
    /// Refs it settled as found.
    pub resolved: u64,
    /// Refs it settled as not found or deleted.
    pub failed: u64,
    /// The last failure it met, transient ones included.
    pub last_error: Option<String>,
}

impl Store {
    /// The newest run of `repo`, if any ran.
    pub fn latest_run(&self, repo: &str) -> Result<Option<RunRow>> {
        if !self.has_table("forge_runs")? {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT pid, mode, state, started, ended, requests, resolved, failed, last_error
                 FROM forge_runs WHERE repo = ?1 ORDER BY id DESC LIMIT 1",
                [repo],
                |row| {
                    let n = |i| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
                    Ok(RunRow {
                        pid: row.get(0)?,
                        mode: row.get(1)?,
                        state: row.get(2)?,
                        started: row.get(3)?,
                        ended: row.get(4)?,
                        requests: n(5)?,
                        resolved: n(6)?,
                        failed: n(7)?,
                        last_error: row.get(8)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Where refreshing stands. Without a mark yet, the refresh starts from
    /// when the first drain of `repo` started: anything that changed since
    /// may have changed after it was fetched.
    pub fn refresh_state(&self, repo: &str) -> Result<RefreshState> {
        if !self.has_table("forge_sync_state")? {
            return Ok(RefreshState::default());
        }
        let mark: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM scrape_meta WHERE key = ?1",
                [MARK],
                |row| row.get(0),
            )
            .optional()?
            .flatten();
        let mark = match mark {
            Some(mark) => Some(mark),
            None => self
                .conn
                .query_row(
                    "SELECT replace(min(started), ' ', 'T') || 'Z' FROM forge_runs WHERE repo = ?1",
                    [repo],
                    |row| row.get(0),
                )
                .optional()?
                .flatten(),
        };
        let state = self
            .conn
            .query_row(
                "SELECT refresh_url, refresh_etag, refresh_at, refresh_changed
                 FROM forge_sync_state WHERE repo = ?1",
                [repo],
                |row| {
                    Ok(RefreshState {
                        mark: None,
                        first_url: row.get(0)?,
                        first_etag: row.get(1)?,
                        at: row.get(2)?,
                        changed: row.get::<_, Option<i64>>(3)?.map(|n| n.max(0) as u64),
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        Ok(RefreshState { mark, ..state })
    }

    /// The ETag and kind of an item already stored as `number`.
    pub fn known_item(&self, number: u32) -> Result<Option<(&'static str, Option<String>)>> {
        if let Some(etag) = self
            .conn
            .query_row(
                "SELECT etag FROM forge_issues WHERE number = ?1",
                [number],
                |row| row.get(0),
            )
            .optional()?
        {
            return Ok(Some(("issue", etag)));
        }
        let pr = self
            .conn
            .query_row(
                "SELECT etag FROM forge_prs WHERE number = ?1",
                [number],
                |row| row.get(0),
            )
            .optional()?;
        Ok(pr.map(|etag| ("pr", etag)))
    }

    /// Where a pending ref's transfer pointed, when a 301 was answered for it
    /// and the item there not fetched yet.
    pub fn pending_move(&self, repo: &str, number: u32) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT moved_to FROM forge_refs
                 WHERE repo = ?1 AND ref_number = ?2 AND resolved IS NULL",
                params![repo, number],
                |row| row.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The `updated_at` of the item stored as `number`, if any.
    pub fn stored_updated_at(&self, number: u32, pr: bool) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                if pr {
                    "SELECT updated_at FROM forge_prs WHERE number = ?1"
                } else {
                    "SELECT updated_at FROM forge_issues WHERE number = ?1"
                },
                [number],
                |row| row.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Pending refs of `repo`, in no particular order.
    pub fn candidates(&self, repo: &str) -> Result<Vec<Candidate>> {
        let mut stmt = self.conn.prepare(
            "SELECT ref_number, commit_time, next_attempt FROM forge_refs
             WHERE repo = ?1 AND resolved IS NULL",
        )?;
        let rows = stmt.query_map([repo], |row| {
            Ok(Candidate {
                number: row.get(0)?,
                commit_time: row.get(1)?,
                next_attempt: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What is kept of `repo`'s drains; the defaults before the first. Reads
    /// only the columns that exist: status may meet a database no drain has
    /// upgraded yet.
    pub fn sync_state(&self, repo: &str) -> Result<SyncState> {
        if !self.has_table("forge_sync_state")? {
            return Ok(SyncState::default());
        }
        // A reader may meet a database that a sync has not upgraded yet.
        let api = if self.has_column("forge_sync_state", "api")? {
            "api, api_note"
        } else {
            "NULL, NULL"
        };
        let identity = if self.has_column("forge_sync_state", "forge_kind")? {
            "forge_kind, api_base"
        } else {
            "NULL, NULL"
        };
        let state = self
            .conn
            .query_row(
                &format!(
                    "SELECT newest_number, list_next, list_floor, rate_remaining, rate_limit,
                            rate_reset, list_top, list_covered, {api}, {identity}
                     FROM forge_sync_state WHERE repo = ?1"
                ),
                [repo],
                |row| {
                    let rate: (Option<i64>, Option<i64>, Option<i64>) =
                        (row.get(3)?, row.get(4)?, row.get(5)?);
                    let rate = match rate {
                        (Some(remaining), Some(limit), Some(reset)) => Some(Rate {
                            remaining: u64::try_from(remaining).unwrap_or(0),
                            limit: u64::try_from(limit).unwrap_or(0),
                            reset,
                        }),
                        _ => None,
                    };
                    Ok(SyncState {
                        newest_number: row.get(0)?,
                        list_next: row.get(1)?,
                        list_floor: row.get(2)?,
                        list_top: row.get(6)?,
                        list_covered: row.get(7)?,
                        rate,
                        api: row.get(8)?,
                        api_note: row.get(9)?,
                        forge_kind: row.get(10)?,
                        api_base: row.get(11)?,
                    })
                },
            )
            .optional()?;
        Ok(state.unwrap_or_default())
    }

    /// Adds refs `1..=newest` as pending (those not known yet) and remembers
    /// `newest`. Returns how many were new.
    pub fn add_range(&mut self, repo: &str, newest: u32) -> Result<u64> {
        self.write(|w| {
            let added = w.tx.execute(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?2)
                 INSERT OR IGNORE INTO forge_refs (repo, ref_number, ref_kind, discovered, pattern)
                 SELECT ?1, x, 'unknown', datetime('now'), 'range' FROM n",
                params![repo, newest],
            )?;
            project::repo_refs(w.tx, repo)?;
            w.ensure_state(repo)?;
            w.tx.execute(
                "UPDATE forge_sync_state SET newest_number = max(coalesce(newest_number, 0), ?2)
                 WHERE repo = ?1",
                params![repo, newest],
            )?;
            Ok(added as u64)
        })
    }

    /// Records the start of a drain.
    pub fn start_run(&mut self, repo: &str, pid: u32, mode: &str) -> Result<i64> {
        self.write(|w| {
            // A run still marked running holds no lock any more (we hold it
            // now): it was killed.
            w.tx.execute(
                "UPDATE forge_runs SET state = 'interrupted', ended = coalesce(ended, datetime('now'))
                 WHERE repo = ?1 AND state = 'running'",
                [repo],
            )?;
            w.tx.execute(
                "INSERT INTO forge_runs (repo, pid, mode, started, state)
                 VALUES (?1, ?2, ?3, datetime('now'), 'running')",
                params![repo, pid, mode],
            )?;
            Ok(w.tx.last_insert_rowid())
        })
    }

    /// Records how the run ended; `error`, when given, becomes its last error.
    pub fn finish_run(&mut self, run: i64, state: RunState, error: Option<&str>) -> Result<()> {
        self.write(|w| {
            w.tx.execute(
                "UPDATE forge_runs SET state = ?2, ended = datetime('now'),
                        last_error = coalesce(?3, last_error)
                 WHERE id = ?1",
                params![run, state.as_str(), error],
            )?;
            Ok(())
        })
    }

    /// Runs `f` in one immediate transaction and commits it. patina's file
    /// is looked at first: when patina replaced it, the write goes to the
    /// new file, after the whole projection.
    pub fn write<T>(&mut self, f: impl FnOnce(&Writer<'_>) -> Result<T>) -> Result<T> {
        self.follow_patina()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&Writer { tx: &tx })?;
        tx.commit()?;
        Ok(value)
    }
}

/// SQLite integers are i64; our counters never come near the limit.
pub(super) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
