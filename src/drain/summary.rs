//! What a drain came to, and the closing lines that say so.

use crate::report::{count, thousands};

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Nothing left that can be asked now.
    Done,
    /// `--limit N`: N refs were settled.
    LimitReached,
    /// A stop was asked for (SIGINT, SIGTERM, `--stop`); what was settled
    /// is kept.
    Interrupted,
    /// The forge kept failing; the rest stays pending.
    GaveUp(String),
}

/// What a drain did, for its closing lines.
#[derive(Debug, Default)]
pub struct Summary {
    /// Requests sent, retries and checks included.
    pub requests: u64,
    /// Refs settled as issues.
    pub issues: u64,
    /// Refs settled as pull requests.
    pub prs: u64,
    /// Settled for good as not found (404) or deleted (410).
    pub failed: u64,
    /// Refs still pending at the end, as the database counts them.
    pub pending: u64,
    /// How it ended; set when it has.
    pub end: Option<End>,
    /// Items a refresh found new or changed, when one ran to its end.
    pub refreshed: Option<u64>,
    /// GraphQL points spent (`rateLimit.cost`), when GraphQL was used.
    pub points: Option<u64>,
}

impl Summary {
    pub(super) fn settled(&self) -> u64 {
        self.issues + self.prs + self.failed
    }
}

/// The closing lines of a drain, on stdout.
pub fn print_summary(out: &mut impl std::io::Write, summary: &Summary) -> std::io::Result<()> {
    let resolved = summary.issues + summary.prs;
    writeln!(
        out,
        "Resolved: {} ({}, {})",
        thousands(resolved),
        count(summary.issues, "issue", "issues"),
        count(summary.prs, "PR", "PRs")
    )?;
    writeln!(
        out,
        "Failed: {} (not found or deleted on the forge)",
        thousands(summary.failed)
    )?;
    writeln!(out, "Pending: {}", thousands(summary.pending))?;
    match summary.points {
        Some(points) => writeln!(
            out,
            "Requests: {} (GraphQL: {} spent)",
            thousands(summary.requests),
            count(points, "point", "points")
        )?,
        None => writeln!(out, "Requests: {}", thousands(summary.requests))?,
    }
    if let Some(changed) = summary.refreshed {
        writeln!(
            out,
            "Refreshed: {} new or changed on the forge",
            thousands(changed)
        )?;
    }
    match &summary.end {
        Some(End::Interrupted) => writeln!(
            out,
            "Interrupted: everything fetched so far is kept; --resume continues"
        ),
        Some(End::LimitReached) if summary.pending > 0 => {
            writeln!(out, "Limit reached. Run --sync to fetch the rest.")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(summary: &Summary) -> String {
        let mut out = Vec::new();
        print_summary(&mut out, summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn graphql_runs_say_their_points_and_limits_say_what_next() {
        let summary = Summary {
            requests: 1_204,
            issues: 1,
            prs: 2,
            failed: 3,
            pending: 10,
            end: Some(End::LimitReached),
            points: Some(1),
            ..Default::default()
        };
        assert_eq!(
            printed(&summary),
            "Resolved: 3 (1 issue, 2 PRs)\nFailed: 3 (not found or deleted on the forge)\n\
             Pending: 10\nRequests: 1,204 (GraphQL: 1 point spent)\n\
             Limit reached. Run --sync to fetch the rest.\n"
        );
        let done = Summary {
            pending: 0,
            points: None,
            refreshed: Some(4),
            end: Some(End::Done),
            ..summary
        };
        assert!(
            printed(&done).ends_with("Requests: 1,204\nRefreshed: 4 new or changed on the forge\n")
        );
    }
}
