//! The backlog of refs (`forge_refs`) and the tips discovery has scanned.

use anyhow::Result;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::Store;

/// The newest commit that mentions a ref, as discovery saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The issue or PR number.
    pub number: u32,
    /// Committer time, unix seconds.
    pub commit_time: i64,
    /// The commit id in hex: inline, as 100,000 of these are held at once.
    pub commit: [u8; 40],
    /// Hint of the pattern that found it in that commit.
    pub pattern: &'static str,
    /// Whether any mention was a subject-line PR pattern (for the summary only).
    pub as_pr: bool,
}

/// What one discovery added, split as the summary reports it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// PR refs new to the backlog.
    pub pr_new: u64,
    /// PR refs the backlog held already.
    pub pr_known: u64,
    /// Issue refs new to the backlog.
    pub issue_new: u64,
    /// Issue refs the backlog held already.
    pub issue_known: u64,
}

/// The backlog counted as patina counts it, so that both tell the same
/// numbers. A ref that failed for good has `resolved` and `error` both set:
/// it counts as failed, and no longer as pending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Every ref of the repository.
    pub total: u64,
    /// Found on the forge: `resolved IS NOT NULL AND error IS NULL`.
    pub resolved: u64,
    /// Not settled yet, refs that failed for now included: `resolved IS NULL`.
    pub pending: u64,
    /// Settled for good as not found or deleted: `error IS NOT NULL`.
    pub failed: u64,
}

impl Store {
    /// The commits whose whole history an earlier discovery has scanned, most
    /// recent first.
    pub fn scanned_tips(&self, repo: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT commit_id FROM forge_scanned_tips WHERE repo = ?1 ORDER BY rowid")?;
        let tips = stmt
            .query_map([repo], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(tips)
    }

    /// Adds new refs as pending, moves known ones to a newer mentioning commit,
    /// and replaces the scanned tips — all in one transaction, so a crash
    /// leaves the previous discovery intact and the next one rescans.
    pub fn record_discovery(
        &mut self,
        repo: &str,
        mentions: impl IntoIterator<Item = Mention>,
        tips: &[String],
    ) -> Result<Recorded> {
        self.follow_patina()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut recorded = Recorded::default();
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO forge_refs
                     (repo, ref_number, ref_kind, discovered, source, commit_time, pattern)
                 VALUES (?1, ?2, 'unknown', datetime('now'), ?3, ?4, ?5)",
            )?;
            // patina's own rows (and the number range) carry no commit time:
            // any mentioning commit is newer than none.
            let mut move_to_newer = tx.prepare(
                "UPDATE forge_refs SET source = ?3, commit_time = ?4, pattern = ?5
                 WHERE repo = ?1 AND ref_number = ?2
                   AND (commit_time IS NULL OR commit_time < ?4)",
            )?;
            for m in mentions {
                let commit = std::str::from_utf8(&m.commit).unwrap_or_default();
                let args = params![repo, m.number, commit, m.commit_time, m.pattern];
                let new = insert.execute(args)? == 1;
                if !new {
                    move_to_newer.execute(args)?;
                }
                match (m.as_pr, new) {
                    (true, true) => recorded.pr_new += 1,
                    (true, false) => recorded.pr_known += 1,
                    (false, true) => recorded.issue_new += 1,
                    (false, false) => recorded.issue_known += 1,
                }
            }
            tx.execute("DELETE FROM forge_scanned_tips WHERE repo = ?1", [repo])?;
            let mut add_tip = tx.prepare(
                "INSERT OR IGNORE INTO forge_scanned_tips (repo, commit_id, scanned_at)
                 VALUES (?1, ?2, datetime('now'))",
            )?;
            for tip in tips {
                add_tip.execute(params![repo, tip])?;
            }
            super::project::repo_refs(&tx, repo)?;
        }
        tx.commit()?;
        Ok(recorded)
    }

    /// Pending refs of `repo`: a count over the partial index of pending refs
    /// alone, cheaper than [`Store::counts`] on a large, mostly resolved backlog.
    pub fn pending(&self, repo: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM forge_refs WHERE repo = ?1 AND resolved IS NULL",
            [repo],
            |row| row.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Refs of `repo` settled at or after `since` (SQLite's `YYYY-MM-DD
    /// HH:MM:SS`, UTC): the recent pace of a running sync.
    pub fn settled_since(&self, repo: &str, since: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM forge_refs WHERE repo = ?1 AND resolved >= ?2",
            [repo, since],
            |row| row.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// The backlog of `repo`; zeros when the table does not exist yet.
    pub fn counts(&self, repo: &str) -> Result<Counts> {
        if !self.has_table("forge_refs")? {
            return Ok(Counts::default());
        }
        let counts = self
            .conn
            .query_row(
                "SELECT count(*),
                        coalesce(sum(resolved IS NOT NULL AND error IS NULL), 0),
                        coalesce(sum(resolved IS NULL), 0),
                        coalesce(sum(error IS NOT NULL), 0)
                 FROM forge_refs WHERE repo = ?1",
                [repo],
                |row| {
                    // SQLite counts in i64; a count is never negative.
                    let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                    Ok(Counts {
                        total: count(0)?,
                        resolved: count(1)?,
                        pending: count(2)?,
                        failed: count(3)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        Ok(counts)
    }
}
