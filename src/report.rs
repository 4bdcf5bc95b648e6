//! What a person or a script reads: the discovery summary and the status.

use std::io::{self, Write};

use anyhow::Result;
use serde::Serialize;

use crate::discover::Outcome;
use crate::store::Counts;

/// `1 commit`, `18,335 commits`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { singular } else { plural }
    )
}

/// `18335` → `18,335`, as the spec writes counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn discovery(out: &mut impl Write, outcome: &Outcome, pending: u64) -> io::Result<()> {
    if outcome.unborn {
        writeln!(out, "No commits yet: nothing to discover")?;
    } else if outcome.commits == 0 {
        writeln!(out, "No new commits since the last discovery")?;
    } else if outcome.incremental {
        let commits = count(outcome.commits, "new commit", "new commits");
        writeln!(out, "Scanned {commits}")?;
    } else {
        let commits = count(outcome.commits, "commit", "commits");
        writeln!(out, "Scanned {commits}")?;
    }
    let r = &outcome.recorded;
    if !outcome.unborn && outcome.commits > 0 {
        let prs = count(r.pr_new, "PR ref", "PR refs");
        writeln!(
            out,
            "Discovered {prs} from commits{}",
            already_known(r.pr_known)
        )?;
        let issues = count(r.issue_new, "issue ref", "issue refs");
        writeln!(
            out,
            "Discovered {issues} from commits{}",
            already_known(r.issue_known)
        )?;
    }
    match pending {
        0 => writeln!(out, "Total: 0 pending. Nothing to fetch."),
        n => writeln!(out, "Total: {} pending. Run --sync to fetch.", thousands(n)),
    }
}

fn already_known(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({} already known)", thousands(n)),
    }
}

/// `--status --json`: the field names are a contract (DESIGN.md); add, never rename.
#[derive(Debug, Serialize)]
pub struct Status {
    pub repo: String,
    pub running: bool,
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub counts: Counts,
    pub percent: u64,
    pub rate_per_min: Option<f64>,
    pub eta_seconds: Option<u64>,
    pub last_error: Option<String>,
    pub rate_limit: Option<RateLimit>,
    pub last_run: Option<LastRun>,
}

#[derive(Debug, Serialize)]
pub struct RateLimit {
    pub remaining: u64,
    pub limit: u64,
    /// RFC 3339.
    pub reset: String,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub state: String,
    pub started: String,
    pub ended: Option<String>,
}

impl Status {
    pub fn new(repo: String, counts: Counts) -> Self {
        let settled = counts.resolved + counts.failed;
        let percent = (settled.min(counts.total) * 100)
            .checked_div(counts.total)
            .unwrap_or(0);
        Self {
            repo,
            running: false,
            pid: None,
            counts,
            percent,
            rate_per_min: None,
            eta_seconds: None,
            last_error: None,
            rate_limit: None,
            last_run: None,
        }
    }

    pub fn write_json(&self, out: &mut impl Write) -> Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)?;
        Ok(())
    }

    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let c = &self.counts;
        writeln!(out, "Forge: {}", self.repo)?;
        writeln!(out, "Syncing: not running")?;
        writeln!(
            out,
            "Progress: {} / {} ({}%)",
            thousands(c.resolved + c.failed),
            thousands(c.total),
            self.percent
        )?;
        writeln!(out, "Resolved: {}", thousands(c.resolved))?;
        writeln!(out, "Pending: {}", thousands(c.pending))?;
        writeln!(out, "Failed: {}", thousands(c.failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_by_three() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (18335, "18,335"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn percent_counts_settled_refs() {
        let status = Status::new(
            "o/r".into(),
            Counts {
                total: 18335,
                resolved: 4000,
                pending: 13814,
                failed: 521,
            },
        );
        assert_eq!(status.percent, 24);
        assert_eq!(Status::new("o/r".into(), Counts::default()).percent, 0);
    }
}
