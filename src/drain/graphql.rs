//! Asking through GraphQL, with a token: one query asks for up to 100
//! numbers (any mix of issues, PRs and missing numbers) with their comments,
//! approvals and linked issues. The batch shrinks when answers are slow or
//! the forge gives up on them (502, 504, a timeout), and grows back while
//! they are fast. A `NOT_FOUND` for a number a commit mentions is asked of
//! REST, which follows a transfer; a host without GraphQL (404) switches the
//! run to REST.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use super::plan::Choice;
use super::rest::Rest;
use super::{Drain, Flow, Way};
use crate::forge::github::{Answer, Fetched, Limit};
use crate::forge::graphql::{self, MAX_BATCH, Node};
use crate::item::Item;
use crate::pace::Budget;

/// The first GraphQL batch of a run; it doubles while answers are fast.
const BATCH_START: usize = 50;
/// An answer faster than this lets the batch grow…
const FAST: Duration = Duration::from_secs(2);
/// … and one slower than this makes it shrink: GitHub gives up at 10 s.
const SLOW: Duration = Duration::from_secs(5);

/// Pending refs in GraphQL batches.
pub(super) struct Batches {
    /// Numbers per query, adapted to answer times.
    size: usize,
    /// Refs a commit mentions that GraphQL did not find: GraphQL does not
    /// follow a transfer, REST answers it with a 301. Asked one by one.
    confirm: BTreeSet<u32>,
    /// The host answered 404 to GraphQL: REST from now on.
    switched_off: bool,
}

/// What asking for one GraphQL batch came to.
enum Asked {
    Stopped,
    /// Dealt with (a limit, a failure, a smaller batch, REST from now on):
    /// ask again.
    Again,
    Answer(Box<Fetched>, graphql::Batch),
}

impl Batches {
    pub(super) fn new() -> Self {
        Batches {
            size: BATCH_START,
            confirm: BTreeSet::new(),
            switched_off: false,
        }
    }
}

impl Way for Batches {
    fn api(&self) -> &'static str {
        "graphql"
    }

    fn counts_points(&self) -> bool {
        true
    }

    fn step(&mut self, drain: &mut Drain<'_>) -> Result<Flow> {
        if self.switched_off {
            return Ok(Flow::Switch(Box::new(Rest)));
        }
        drain.refs_per_request = self.size as u64;
        while let Some(number) = self.confirm.pop_last() {
            if drain.backlog.contains(number) {
                return drain.single(number);
            }
        }
        match drain.choose(self.size) {
            Choice::Ask(numbers) => self.batch(drain, &numbers),
            Choice::Wait(at) => Ok(Flow::Wait(at)),
            Choice::Done => Ok(Flow::Done),
        }
    }

    /// The GraphQL versions of a refresh page's changed items (with their
    /// discussion). What cannot be had (REST only, the forge failing) is
    /// left as REST listed it.
    fn enrich(&mut self, drain: &mut Drain<'_>, items: &mut [Item]) -> Result<bool> {
        let stale = items
            .iter()
            .filter(|i| {
                drain
                    .store
                    .stored_updated_at(i.number, i.is_pr())
                    .map_or(true, |at| at.as_deref() != Some(i.updated_at.as_str()))
            })
            .map(|i| i.number)
            .collect::<Vec<_>>();
        let Some(mut richer) = self.details(drain, &stale)? else {
            return Ok(false);
        };
        for item in items {
            if let Some(rich) = richer.remove(&item.number)
                && rich.updated_at >= item.updated_at
                && rich.number == item.number
            {
                *item = rich;
            }
        }
        Ok(true)
    }
}

impl Batches {
    /// One GraphQL batch of pending refs, recorded in one transaction.
    fn batch(&mut self, drain: &mut Drain<'_>, numbers: &[u32]) -> Result<Flow> {
        let (fetched, batch) = match self.ask(drain, numbers)? {
            Asked::Stopped => return Ok(Flow::Stopped),
            Asked::Again => return Ok(Flow::Next),
            Asked::Answer(fetched, batch) => (fetched, batch),
        };
        let left = drain.record_batch(&batch, fetched.rate)?;
        self.confirm.extend(&left.confirm);
        match left.deferred.first() {
            // Nothing in the batch came through: that is the forge failing.
            Some((_, why)) if left.deferred.len() == batch.results.len() => drain.failed(why)?,
            _ => drain.succeeded()?,
        }
        Ok(Flow::Next)
    }

    /// Asks for `numbers` with their discussion, in batches. `None` when a
    /// stop came first.
    fn details(
        &mut self,
        drain: &mut Drain<'_>,
        numbers: &[u32],
    ) -> Result<Option<HashMap<u32, Item>>> {
        let mut found = HashMap::new();
        let mut rest: &[u32] = numbers;
        while !rest.is_empty() && !self.switched_off && drain.given_up("").is_none() {
            let chunk = &rest[..self.size.min(rest.len())];
            match self.ask(drain, chunk)? {
                Asked::Stopped => return Ok(None),
                Asked::Again => continue,
                Asked::Answer(_, batch) => {
                    for (number, node) in batch.results {
                        if let Node::Found(item) = node {
                            found.insert(number, *item);
                        }
                    }
                    drain.succeeded()?;
                    rest = &rest[chunk.len()..];
                }
            }
        }
        Ok(Some(found))
    }

    /// Asks for `numbers` in one query. Limits, failures, a smaller batch
    /// and the switch to REST are dealt with here and come back as
    /// [`Asked::Again`].
    fn ask(&mut self, drain: &mut Drain<'_>, numbers: &[u32]) -> Result<Asked> {
        // The answer's time alone: a wait for the turn (the spacing, a
        // limit, a backoff) says nothing about how hard the query was.
        let mut took = Duration::ZERO;
        let asked = drain.send_with(
            |forge| {
                let started = Instant::now();
                let fetched = forge.fetch_batch(numbers);
                took = started.elapsed();
                fetched
            },
            false,
        )?;
        let Some(fetched) = asked else {
            return Ok(Asked::Stopped);
        };
        if matches!(fetched.answer, Answer::NotFound | Answer::Gone) {
            // GraphQL is switched off on this host (GitHub Enterprise can).
            let note = format!("the host answers {} to GraphQL", fetched.status);
            drain
                .progress
                .log(&format!("{note}: resolving through REST from now on"));
            self.switched_off = true;
            drain.summary.points = None;
            let repo = &drain.repo;
            drain
                .store
                .write(|w| w.set_api(repo, "rest", Some(&note)))?;
            drain.record_requests(None)?;
            return Ok(Asked::Again);
        }
        // GitHub gave up on the query (502, 504) or we did (a timeout):
        // too much at once. Smaller, and again, before it counts as failing.
        let gave_up = matches!(fetched.status, 502 | 504)
            || (fetched.status == 0
                && matches!(&fetched.answer, Answer::Transient(why) if why.contains("timed out")));
        if gave_up && self.size > 1 {
            let smaller = (numbers.len().min(self.size) / 2).max(1);
            self.size = smaller;
            let why = match &fetched.answer {
                Answer::Transient(why) => why.clone(),
                other => format!("{other:?}"),
            };
            drain.progress.log(&format!(
                "GraphQL batch of {} failed ({why}): asking {smaller} at a time",
                numbers.len()
            ));
            drain.pace.hold_until(
                SystemTime::now() + Duration::from_secs(1),
                "backing off after a failure",
            )?;
            drain.record_requests(Some(&why))?;
            return Ok(Asked::Again);
        }
        let only = match numbers {
            [n] => Some(*n),
            _ => None,
        };
        if drain.common(&fetched.answer, only)? {
            return Ok(Asked::Again);
        }
        if fetched.answer != Answer::Ok {
            let why = format!("unexpected answer to GraphQL: {:?}", fetched.answer);
            drain.common(&Answer::Transient(why), only)?;
            return Ok(Asked::Again);
        }
        let batch = match graphql::decode(&fetched.body, numbers, &drain.repo) {
            Ok(batch) => batch,
            Err(why) => {
                drain.common(&Answer::Transient(why), only)?;
                return Ok(Asked::Again);
            }
        };
        if let Some(points) = batch.rate {
            drain.spend(Budget {
                remaining: points.remaining,
                limit: points.limit,
                reset: points.reset,
                cost: points.cost,
            })?;
            if let Some(spent) = &mut drain.summary.points {
                *spent += points.cost;
            }
        } else if let Some(rate) = fetched.rate {
            drain.spend(Budget::requests(rate.remaining, rate.limit, rate.reset))?;
        }
        if batch.rate_limited {
            let reset = fetched
                .rate
                .map(|r| r.reset)
                .or(batch.rate.map(|p| p.reset))
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
            drain.common(&Answer::Limited(Limit::Primary { reset }), None)?;
            return Ok(Asked::Again);
        }
        if batch.repository_missing {
            drain.record_requests(None)?;
            return Err(drain.repository_missing());
        }
        if let Some(why) = &batch.failure {
            drain.common(&Answer::Transient(why.clone()), only)?;
            return Ok(Asked::Again);
        }
        // Fast answers let the batch grow back; slow ones shrink it before
        // GitHub starts giving up on it.
        if took > SLOW {
            self.size = (numbers.len() / 2).max(1);
        } else if took < FAST && numbers.len() >= self.size {
            self.size = (self.size * 2).min(MAX_BATCH);
        }
        Ok(Asked::Answer(Box::new(fetched), batch))
    }
}
