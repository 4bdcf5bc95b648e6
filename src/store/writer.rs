//! The writes of one outcome, inside its transaction: an item, the ref's
//! state, the run's counters, the listing cursor, the refresh mark, and what
//! is known of the forge, into our store; then what of it patina reads into
//! `patina.db` (`project.rs`): the item's row, event and search row, the
//! ref's row, the mark. [`Store::write`] runs them.
//!
//! [`Store::write`]: super::Store::write

use anyhow::Result;
use rusqlite::{OptionalExtension, ToSql, Transaction, params};
use serde_json::json;

use super::project;
use super::resolve::{MARK, Rate, sql_int};
use crate::item::{Comment, Item};

/// The writes of one outcome, inside its transaction.
pub struct Writer<'a> {
    pub(super) tx: &'a Transaction<'a>,
}

impl Writer<'_> {
    /// Stores an issue or PR (as ref `number`, which differs from the item's
    /// own number only after a transfer) and projects it, appending its event
    /// when it is new, its `updated_at` changed or its discussion is known
    /// for the first time. Returns whether an event was appended.
    pub fn store_item(&self, number: u32, item: &Item, etag: Option<&str>) -> Result<bool> {
        let labels = serde_json::to_string(&item.labels)?;
        // What an answer without the discussion (REST) does not carry is
        // kept as stored, not reset: linked issues, approvals, comments.
        let known: Option<Stored> = self
            .tx
            .query_row(
                if item.is_pr() {
                    "SELECT updated_at, linked_issues, approvals, comment_count
                     FROM forge_prs WHERE number = ?1"
                } else {
                    "SELECT updated_at, NULL, NULL, comment_count FROM forge_issues WHERE number = ?1"
                },
                [number],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let had_details = known.as_ref().is_some_and(|k| k.3.is_some());
        let (known_updated, linked, approvals, comment_count) = known.unwrap_or_default();
        let stored_linked = linked
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_else(|| json!([]));
        let stored_approvals = approvals.unwrap_or(0);
        // Each part the source did not carry (Gitea has no linked issues)
        // stays as stored.
        let (linked, approvals, comment_count) = match &item.details {
            Some(details) => {
                self.replace_comments(number, &details.comments)?;
                (
                    details
                        .linked_issues
                        .as_ref()
                        .map_or(stored_linked, |l| json!(l)),
                    details.approvals.map_or(stored_approvals, sql_int),
                    Some(sql_int(details.comment_count)),
                )
            }
            None => (stored_linked, stored_approvals, comment_count),
        };

        // A new version, or the first time its discussion is known.
        let changed = known_updated.as_deref() != Some(item.updated_at.as_str())
            || (item.details.is_some() && !had_details);

        if item.is_pr() {
            self.tx.execute(
                "INSERT INTO forge_prs (number, title, body, state, labels, author, created_at,
                                        merged_at, url, linked_issues, approvals, event_seq,
                                        etag, updated_at, comment_count, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (number) DO UPDATE SET
                     title = excluded.title, body = excluded.body, state = excluded.state,
                     labels = excluded.labels, author = excluded.author,
                     created_at = excluded.created_at, merged_at = excluded.merged_at,
                     url = excluded.url, updated_at = excluded.updated_at,
                     linked_issues = excluded.linked_issues, approvals = excluded.approvals,
                     comment_count = excluded.comment_count, closed_at = excluded.closed_at,
                     etag = coalesce(excluded.etag, forge_prs.etag)",
                params![
                    number,
                    item.title,
                    item.body,
                    item.state(),
                    labels,
                    item.author,
                    item.created_at,
                    item.merged_at(),
                    item.url,
                    linked.to_string(),
                    approvals,
                    None::<i64>,
                    etag,
                    item.updated_at,
                    comment_count,
                    item.closed_at,
                ],
            )?;
        } else {
            self.tx.execute(
                "INSERT INTO forge_issues (number, title, body, state, labels, author, created_at,
                                           updated_at, url, event_seq, etag, comment_count,
                                           closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (number) DO UPDATE SET
                     title = excluded.title, body = excluded.body, state = excluded.state,
                     labels = excluded.labels, author = excluded.author,
                     created_at = excluded.created_at, updated_at = excluded.updated_at,
                     url = excluded.url, comment_count = excluded.comment_count,
                     closed_at = excluded.closed_at,
                     etag = coalesce(excluded.etag, forge_issues.etag)",
                params![
                    number,
                    item.title,
                    item.body,
                    item.state(),
                    labels,
                    item.author,
                    item.created_at,
                    item.updated_at,
                    item.url,
                    None::<i64>,
                    etag,
                    comment_count,
                    item.closed_at,
                ],
            )?;
        }
        // The projection in the same transaction: patina's row, the event
        // (a new one only for a new version), the search row.
        project::item(self.tx, number, item.is_pr(), changed, true)?;
        Ok(changed)
    }

    /// The first comments of `number`, as fetched: the old ones go (edited
    /// or deleted on the forge), the new ones come in the forge's order.
    fn replace_comments(&self, number: u32, comments: &[Comment]) -> Result<()> {
        self.tx
            .execute("DELETE FROM forge_comments WHERE number = ?1", [number])?;
        let mut insert = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO forge_comments (number, id, position, author, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (position, c) in (0_i64..).zip(comments) {
            insert.execute(params![
                number,
                c.id,
                position,
                c.author,
                c.body,
                c.created_at
            ])?;
        }
        Ok(())
    }

    /// Marks ref `number` resolved as `kind` (adding it when the forge
    /// showed us a number we had not discovered). Returns whether it was
    /// pending before, i.e. whether this settled a ref of the backlog.
    pub fn resolve_ref(
        &self,
        repo: &str,
        number: u32,
        kind: &str,
        moved_to: Option<&str>,
    ) -> Result<bool> {
        let was_pending: Option<bool> = self
            .tx
            .query_row(
                "SELECT resolved IS NULL FROM forge_refs WHERE repo = ?1 AND ref_number = ?2",
                params![repo, number],
                |row| row.get(0),
            )
            .optional()?;
        self.tx.execute(
            "INSERT INTO forge_refs (repo, ref_number, ref_kind, discovered, resolved, pattern, moved_to)
             VALUES (?1, ?2, ?3, datetime('now'), datetime('now'), 'forge', ?4)
             ON CONFLICT (repo, ref_number) DO UPDATE SET
                 ref_kind = excluded.ref_kind, resolved = excluded.resolved, error = NULL,
                 last_error = NULL, next_attempt = NULL, moved_to = excluded.moved_to",
            params![repo, number, kind, moved_to],
        )?;
        project::one_ref(self.tx, repo, number)?;
        Ok(was_pending.unwrap_or(false))
    }

    /// Settles ref `number` for good (404, 410): resolved and failed, so it
    /// is no longer pending. Returns whether it was pending.
    pub fn settle_ref(&self, repo: &str, number: u32, error: &str) -> Result<bool> {
        let changed = self.tx.execute(
            "UPDATE forge_refs SET resolved = datetime('now'), error = ?3, last_error = ?3,
                    next_attempt = NULL, attempts = attempts + 1
             WHERE repo = ?1 AND ref_number = ?2 AND resolved IS NULL",
            params![repo, number, error],
        )?;
        if changed == 1 {
            project::one_ref(self.tx, repo, number)?;
        }
        Ok(changed == 1)
    }

    /// A transfer answered (301) for a pending ref: where it went, so that the
    /// next request asks there.
    pub fn note_move(&self, repo: &str, number: u32, to: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE forge_refs SET moved_to = ?3
             WHERE repo = ?1 AND ref_number = ?2 AND resolved IS NULL",
            params![repo, number, to],
        )?;
        Ok(())
    }

    /// A transient failure: the ref stays pending, not before `next_attempt`.
    pub fn defer_ref(&self, repo: &str, number: u32, error: &str, next_attempt: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE forge_refs SET attempts = attempts + 1, last_error = ?3, next_attempt = ?4
             WHERE repo = ?1 AND ref_number = ?2 AND resolved IS NULL",
            params![repo, number, error, next_attempt],
        )?;
        Ok(())
    }

    /// Updates the run: requests sent so far, refs resolved and failed by
    /// this outcome, and its last error, when given.
    pub fn count(
        &self,
        run: i64,
        requests: u64,
        resolved: u64,
        failed: u64,
        error: Option<&str>,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE forge_runs SET requests = max(requests, ?2), resolved = resolved + ?3,
                    failed = failed + ?4, last_error = coalesce(?5, last_error)
             WHERE id = ?1",
            params![
                run,
                sql_int(requests),
                sql_int(resolved),
                sql_int(failed),
                error
            ],
        )?;
        Ok(())
    }

    /// `UPDATE forge_sync_state SET {set} WHERE repo = ?1` on `repo`'s row,
    /// made first if missing; `values` bind from `?2` on.
    fn update_state(&self, repo: &str, set: &str, values: &[&dyn ToSql]) -> Result<()> {
        self.ensure_state(repo)?;
        let mut bound: Vec<&dyn ToSql> = vec![&repo];
        bound.extend_from_slice(values);
        self.tx.execute(
            &format!("UPDATE forge_sync_state SET {set} WHERE repo = ?1"),
            bound.as_slice(),
        )?;
        Ok(())
    }

    pub(super) fn ensure_state(&self, repo: &str) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO forge_sync_state (repo) VALUES (?1)",
            [repo],
        )?;
        Ok(())
    }

    /// Starts a listing at `first` (its first page), `top` being the newest
    /// number known: nothing below it has been reached yet.
    pub fn start_listing(&self, repo: &str, first: &str, top: u32) -> Result<()> {
        self.update_state(
            repo,
            "list_next = ?2, list_floor = ?3 + 1, list_top = ?3, list_started = datetime('now')",
            params![first, top],
        )
    }

    /// Moves the listing on: the next page to ask for and the lowest number
    /// reached so far.
    pub fn advance_listing(&self, repo: &str, next: &str, floor: Option<u32>) -> Result<()> {
        self.update_state(
            repo,
            "list_next = ?2,
             list_floor = min(coalesce(list_floor, ?3), coalesce(?3, list_floor))",
            params![next, floor],
        )
    }

    /// The listing reached its end: everything up to its top was listed.
    pub fn finish_listing(&self, repo: &str) -> Result<()> {
        self.update_state(
            repo,
            "list_next = NULL, list_floor = NULL,
             list_covered = max(coalesce(list_covered, 0), coalesce(list_top, 0)),
             list_top = NULL, list_started = NULL",
            params![],
        )
    }

    /// Moves patina's high-water mark forward (never back) to `updated_at`.
    pub fn advance_mark(&self, updated_at: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO scrape_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = max(coalesce(value, ''), excluded.value)",
            params![MARK, updated_at],
        )?;
        project::mark(self.tx)
    }

    /// Remembers the first page of a refresh and its ETag.
    pub fn set_refresh_page(&self, repo: &str, url: &str, etag: Option<&str>) -> Result<()> {
        self.update_state(
            repo,
            "refresh_url = ?2, refresh_etag = ?3",
            params![url, etag],
        )
    }

    /// Records a finished refresh and how many items it brought.
    pub fn finish_refresh(&self, repo: &str, changed: u64) -> Result<()> {
        self.update_state(
            repo,
            "refresh_at = datetime('now'), refresh_changed = ?2",
            params![sql_int(changed)],
        )
    }

    /// What the forge of `repo` is, and where its API answered.
    pub fn set_forge(&self, repo: &str, kind: &str, api_base: &str) -> Result<()> {
        self.update_state(
            repo,
            "forge_kind = ?2, api_base = ?3",
            params![kind, api_base],
        )
    }

    /// Which API resolves the backlog (`graphql`, `rest`), and why REST.
    pub fn set_api(&self, repo: &str, api: &str, note: Option<&str>) -> Result<()> {
        self.update_state(repo, "api = ?2, api_note = ?3", params![api, note])
    }

    /// Keeps the budget an answer announced, for status.
    pub fn set_rate(&self, repo: &str, rate: Rate) -> Result<()> {
        self.update_state(
            repo,
            "rate_remaining = ?2, rate_limit = ?3, rate_reset = ?4, rate_seen = datetime('now')",
            params![sql_int(rate.remaining), sql_int(rate.limit), rate.reset],
        )
    }
}

/// What a stored item holds beyond the answer: its `updated_at`, linked
/// issues, approvals and comment count (`NULL`: never fetched with comments).
type Stored = (Option<String>, Option<String>, Option<i64>, Option<i64>);
