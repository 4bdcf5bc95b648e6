//! Recording what the forge answered: every outcome is one transaction (the
//! item, its event, the ref's state, the run's counters, the budget the
//! answer announced) committed before the next request leaves, and the
//! backlog and the summary follow the commit.

use std::time::SystemTime;

use anyhow::Result;

use super::{Drain, unix_now, unix_secs};
use crate::forge::github::RateInfo;
use crate::forge::graphql::{Batch, Node};
use crate::item::Item;
use crate::store::{Rate, Writer};

/// What one ref's answer settled.
pub(super) enum Outcome<'a> {
    /// Stored (under the ref's number; `moved_to` after a transfer).
    Found {
        item: &'a Item,
        etag: Option<&'a str>,
        moved_to: Option<&'a str>,
    },
    /// A 304: what we hold is current.
    Unchanged { kind: &'a str },
    /// Settled for good as failed (404, 410).
    Settled { why: &'a str },
}

impl<'a> Outcome<'a> {
    /// Found where it was asked for.
    pub(super) fn found(item: &'a Item) -> Self {
        Outcome::Found {
            item,
            etag: None,
            moved_to: None,
        }
    }
}

/// What storing a set of items came to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Stored {
    /// Refs settled as issues and as PRs.
    pub issues: u64,
    pub prs: u64,
    /// Items new or changed (an event was appended).
    pub changed: u64,
}

/// What a GraphQL batch left for later.
#[derive(Debug, Default)]
pub(super) struct BatchLeft {
    /// Refs that failed for now, with why.
    pub deferred: Vec<(u32, String)>,
    /// Refs a commit mentions that GraphQL did not find: for REST to check.
    pub confirm: Vec<u32>,
}

impl Drain<'_> {
    /// Records the outcome of one ref's request in one transaction, with the
    /// budget the answer announced and the run's counters.
    /// Returns whether an item was new or changed (an event was appended).
    pub(super) fn record(
        &mut self,
        number: u32,
        outcome: Outcome<'_>,
        rate: Option<RateInfo>,
    ) -> Result<bool> {
        let (repo, run, requests) = (&self.repo, self.run, self.summary.requests);
        let (settled, changed) = self.store.write(|w| {
            let (settled, changed) = match &outcome {
                Outcome::Found {
                    item,
                    etag,
                    moved_to,
                } => {
                    let changed = w.store_item(number, item, *etag)?;
                    (
                        w.resolve_ref(repo, number, kind_of(item), *moved_to)?,
                        changed,
                    )
                }
                Outcome::Unchanged { kind } => (w.resolve_ref(repo, number, kind, None)?, false),
                Outcome::Settled { why } => (w.settle_ref(repo, number, why)?, false),
            };
            if let Some(rate) = rate {
                w.set_rate(repo, to_rate(rate))?;
            }
            let failed = matches!(outcome, Outcome::Settled { .. });
            w.count(
                run,
                requests,
                u64::from(settled && !failed),
                u64::from(settled && failed),
                None,
            )?;
            Ok((settled, changed))
        })?;
        self.backlog.settle(number);
        if settled {
            match outcome {
                Outcome::Settled { .. } => self.summary.failed += 1,
                Outcome::Found { item, .. } if item.is_pr() => self.summary.prs += 1,
                Outcome::Unchanged { kind: "pr" } => self.summary.prs += 1,
                _ => self.summary.issues += 1,
            }
        }
        self.progress.set(self.summary.settled());
        self.succeeded()?;
        Ok(changed)
    }

    /// Stores items that answer for their own numbers (a listing page) and
    /// resolves their refs, in one transaction with what `then` writes (the
    /// listing's or the mark's move), which sees what was stored.
    pub(super) fn record_items(
        &mut self,
        items: &[Item],
        then: impl FnOnce(&Writer<'_>, &Stored) -> Result<()>,
    ) -> Result<Stored> {
        let repo = &self.repo;
        let stored = self.store.write(|w| {
            let mut stored = Stored::default();
            for item in items {
                stored.changed += u64::from(w.store_item(item.number, item, None)?);
                if w.resolve_ref(repo, item.number, kind_of(item), None)? {
                    match item.is_pr() {
                        true => stored.prs += 1,
                        false => stored.issues += 1,
                    }
                }
            }
            then(w, &stored)?;
            Ok(stored)
        })?;
        for item in items {
            self.backlog.settle(item.number);
        }
        Ok(stored)
    }

    /// Records a GraphQL batch's nodes in one transaction: found items,
    /// `NOT_FOUND`s settled (or left for REST to check, when a commit names
    /// them), nodes that failed deferred.
    pub(super) fn record_batch(
        &mut self,
        batch: &Batch,
        rate: Option<RateInfo>,
    ) -> Result<BatchLeft> {
        let (repo, run, requests) = (&self.repo, self.run, self.summary.requests);
        let now = unix_now();
        let backlog = &self.backlog;
        let (stored, failed, left) = self.store.write(|w| {
            let (mut stored, mut failed) = (Stored::default(), 0);
            let mut left = BatchLeft::default();
            for (number, node) in &batch.results {
                match node {
                    Node::Found(item) => {
                        // A number that answers with another: the issue moved.
                        let moved_to = (item.number != *number).then_some(item.url.as_str());
                        w.store_item(*number, item, None)?;
                        if w.resolve_ref(repo, *number, kind_of(item), moved_to)? {
                            match item.is_pr() {
                                true => stored.prs += 1,
                                false => stored.issues += 1,
                            }
                        }
                    }
                    // A commit that names it says it existed: it may have
                    // moved, which only REST tells.
                    Node::NotFound if backlog.is_mentioned(*number) => left.confirm.push(*number),
                    Node::NotFound => {
                        if w.settle_ref(repo, *number, "not found (GraphQL NOT_FOUND)")? {
                            failed += 1;
                        }
                    }
                    Node::Failed(why) => {
                        let retry = backlog.next_retry(*number);
                        w.defer_ref(repo, *number, why, now + retry.as_secs() as i64)?;
                        left.deferred.push((*number, why.clone()));
                    }
                }
            }
            if let Some(rate) = rate {
                w.set_rate(repo, to_rate(rate))?;
            } else if let Some(points) = batch.rate {
                w.set_rate(
                    repo,
                    Rate {
                        remaining: points.remaining,
                        limit: points.limit,
                        reset: unix_secs(points.reset),
                    },
                )?;
            }
            w.count(run, requests, stored.issues + stored.prs, failed, None)?;
            Ok((stored, failed, left))
        })?;
        for (number, node) in &batch.results {
            if !matches!(node, Node::Failed(_)) {
                self.backlog.settle(*number);
            }
        }
        for &number in &left.confirm {
            self.backlog.reopen(number);
        }
        for (number, why) in &left.deferred {
            let retry = self.backlog.next_retry(*number);
            self.backlog.defer(*number, SystemTime::now() + retry);
            self.progress.log(&format!("#{number}: {why} (will retry)"));
        }
        self.summary.issues += stored.issues;
        self.summary.prs += stored.prs;
        self.summary.failed += failed;
        self.progress.set(self.summary.settled());
        Ok(left)
    }

    /// A ref (or, with `None`, a listing) failed for now: the failure is kept
    /// with the run, and the ref with when it may be asked again.
    pub(super) fn record_failure(&mut self, number: Option<u32>, why: &str) -> Result<()> {
        let retry = number.map(|n| self.backlog.next_retry(n));
        let (repo, run, requests) = (&self.repo, self.run, self.summary.requests);
        self.store.write(|w| {
            if let (Some(n), Some(retry)) = (number, retry) {
                w.defer_ref(repo, n, why, unix_now() + retry.as_secs() as i64)?;
            }
            w.count(run, requests, 0, 0, Some(why))
        })?;
        if let (Some(n), Some(retry)) = (number, retry) {
            self.backlog.defer(n, SystemTime::now() + retry);
        }
        Ok(())
    }

    /// Brings the run's request count up to date (with an error to keep).
    pub(super) fn record_requests(&mut self, error: Option<&str>) -> Result<()> {
        let (run, requests) = (self.run, self.summary.requests);
        self.store.write(|w| w.count(run, requests, 0, 0, error))
    }
}

pub(super) fn kind_of(item: &Item) -> &'static str {
    if item.is_pr() { "pr" } else { "issue" }
}

pub(super) fn to_rate(rate: RateInfo) -> Rate {
    Rate {
        remaining: rate.remaining,
        limit: rate.limit,
        reset: unix_secs(rate.reset),
    }
}
