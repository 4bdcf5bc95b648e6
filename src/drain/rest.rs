//! Asking through REST, as GitHub, GitHub Enterprise and Gitea all answer
//! it: where pending numbers are dense, the newest-first listing settles a
//! page of them per request (followed from the cursor kept in SQLite, so an
//! interrupted listing continues where it stopped); everything else gets one
//! `GET /issues/{n}`, which answers for issues and PRs alike and follows a
//! transfer's 301. A 404 is checked against the repository itself, once.
//!
//! GitHub's listing does not say whether a closed PR was merged: that takes
//! `GET /pulls/{n}` ([`MergeState`]).

use anyhow::{Result, anyhow, bail};
use reqwest::Url;

use super::plan::{self, Choice, Listing, ListingState};
use super::record::Outcome;
use super::{Completion, Drain, Flow, Way};
use crate::forge::github::{Answer, Fetched};
use crate::item::{Item, Kind, MergedAt};

/// Pending refs through REST: listing pages where they pay, else one by one.
pub(super) struct Rest;

impl Way for Rest {
    fn api(&self) -> &'static str {
        "rest"
    }

    fn step(&mut self, drain: &mut Drain<'_>) -> Result<Flow> {
        // Counted as one ref a request: a listing that settles more only
        // makes the budget last longer than planned.
        drain.refs_per_request = 1;
        if drain.budget() >= u64::from(drain.forge.per_page())
            && let Some(url) = drain.next_page()?
        {
            return drain.page(url);
        }
        match drain.choose(1) {
            Choice::Ask(numbers) => drain.single(numbers[0]),
            Choice::Wait(at) => Ok(Flow::Wait(at)),
            Choice::Done => Ok(Flow::Done),
        }
    }
}

/// GitHub's answers leave out whether a closed PR was merged, unless they
/// come from `/pulls`: one request more tells.
pub(super) struct MergeState;

impl Completion for MergeState {
    fn needs(&self, item: &Item) -> bool {
        item.merged_unknown()
    }

    fn complete(&self, drain: &mut Drain<'_>, item: &mut Item) -> Result<bool> {
        if !item.merged_unknown() {
            return Ok(true);
        }
        if item.open {
            item.kind = Kind::Pr {
                merged_at: MergedAt::Known(None),
            };
            return Ok(true);
        }
        let url = drain.forge.pull_url(item.number);
        let what = format!("tell whether PR #{} was merged", item.number);
        let merged_at = drain.ask_until_answered(&url, &what, |answer, body| match answer {
            Answer::Ok => crate::forge::merged_at_from_pull(body),
            _ => Ok(None),
        })?;
        let Some(merged_at) = merged_at else {
            return Ok(false);
        };
        item.kind = Kind::Pr {
            merged_at: MergedAt::Known(merged_at),
        };
        Ok(true)
    }
}

/// What asking for one listing page came to.
pub(super) enum Listed {
    /// A stop was asked for.
    Stopped,
    /// A limit or a transient failure, dealt with: ask again.
    Again,
    /// The answer (2xx, 301 or 304) and its items, decoded and complete.
    Page(Box<Fetched>, Vec<Item>),
}

impl Drain<'_> {
    /// The listing page worth asking for next, if any (see [`plan::listing`]);
    /// a new listing's start is kept before it is asked for.
    fn next_page(&mut self) -> Result<Option<Url>> {
        let state = self.store.sync_state(&self.repo)?;
        let listing = plan::listing(
            self.backlog.pending(),
            ListingState {
                covered: state.list_covered,
                next: state.list_next.as_deref(),
                floor: state.list_floor,
                newest: state.newest_number,
            },
            self.forge.per_page(),
        );
        Ok(match listing {
            Listing::Follow(next) => Url::parse(next).ok().filter(|u| self.forge.may_follow(u)),
            Listing::Start { top } => {
                let first = self.forge.first_page_url();
                let repo = &self.repo;
                self.store
                    .write(|w| w.start_listing(repo, first.as_str(), top))?;
                Some(first)
            }
            Listing::No => None,
        })
    }

    /// Asks for one page of a listing (conditionally when `etag` is given)
    /// and decodes it; items that need requests of their own are the
    /// caller's to complete, after the rest of the page is committed. Limits
    /// and transient failures are dealt with here and come back as
    /// [`Listed::Again`].
    pub(super) fn list(&mut self, url: &Url, etag: Option<&str>) -> Result<Listed> {
        let Some(fetched) = self.send(url, etag)? else {
            return Ok(Listed::Stopped);
        };
        if self.common(&fetched.answer, None)? {
            return Ok(Listed::Again);
        }
        let mut items = match &fetched.answer {
            Answer::Ok => match Item::list_from_github(&fetched.body) {
                Ok(items) => items,
                Err(why) => {
                    self.common(&Answer::Transient(why), None)?;
                    return Ok(Listed::Again);
                }
            },
            Answer::Moved(_) | Answer::NotModified => Vec::new(),
            Answer::NotFound | Answer::Gone => return Err(self.repository_missing()),
            other => bail!("unexpected answer to a listing: {other:?}"),
        };
        for item in &mut items {
            // An open PR is not merged: no request needed to say so.
            if item.open && item.merged_unknown() {
                item.kind = Kind::Pr {
                    merged_at: MergedAt::Known(None),
                };
            }
        }
        Ok(Listed::Page(Box::new(fetched), items))
    }

    /// Splits a page into the items that can be recorded as they are and
    /// those that need the forge's completion first.
    pub(super) fn needing_completion(&self, items: Vec<Item>) -> (Vec<Item>, Vec<Item>) {
        let completion = self.completion;
        items.into_iter().partition(|i| !completion.needs(i))
    }

    /// Completes `item` as its forge needs; false when a stop came first.
    pub(super) fn complete(&mut self, item: &mut Item) -> Result<bool> {
        let completion = self.completion;
        completion.complete(self, item)
    }

    /// One page of the listing.
    fn page(&mut self, url: Url) -> Result<Flow> {
        let (fetched, items) = match self.list(&url, None)? {
            Listed::Stopped => return Ok(Flow::Stopped),
            Listed::Again => return Ok(Flow::Next),
            Listed::Page(fetched, items) => (*fetched, items),
        };
        let next = match &fetched.answer {
            Answer::Ok => fetched.next.clone(),
            // A renamed repository: its listing lives on under the new name.
            Answer::Moved(to) => Some(to.clone()),
            other => bail!("unexpected answer to the listing: {other:?}"),
        };
        let floor = items.iter().map(|i| i.number).min();
        let next = next.filter(|url| {
            let ok = self.forge.may_follow(url);
            if !ok {
                self.progress
                    .log("the listing's next page is on another host: not followed");
            }
            ok
        });
        let end_of_listing = next.is_none() || (fetched.answer == Answer::Ok && items.is_empty());
        let (items, later) = self.needing_completion(items);
        let (repo, run, requests) = (self.repo.clone(), self.run, self.summary.requests);
        let stored = self.record_items(&items, |w, stored| {
            match (&next, end_of_listing) {
                (Some(next), false) => w.advance_listing(&repo, next.as_str(), floor)?,
                _ => w.finish_listing(&repo)?,
            }
            if let Some(rate) = fetched.rate {
                w.set_rate(&repo, super::record::to_rate(rate))?;
            }
            w.count(run, requests, stored.issues + stored.prs, 0, None)
        })?;
        self.summary.issues += stored.issues;
        self.summary.prs += stored.prs;
        self.progress.set(self.summary.settled());
        self.succeeded()?;
        // The page is committed; each item that needs a request of its own
        // is committed after its answer. One cut short stays pending, a gap
        // below the listing for a single request later.
        for mut item in later {
            if !self.complete(&mut item)? {
                return Ok(Flow::Stopped);
            }
            self.record(item.number, Outcome::found(&item), None)?;
        }
        Ok(Flow::Next)
    }

    /// One ref by itself.
    pub(super) fn single(&mut self, number: u32) -> Result<Flow> {
        // A transfer learned before a stop: ask where it went, not again
        // where it was.
        if let Some(to) = self
            .store
            .pending_move(&self.repo, number)?
            .and_then(|to| Url::parse(&to).ok())
            .filter(|to| self.forge.may_follow(to))
        {
            return self.follow_move(number, &to);
        }
        let url = self.forge.issue_url(number);
        // What we hold already is asked for conditionally: a 304 costs
        // nothing against the primary limit.
        let known = self.store.known_item(number)?;
        let etag = known.as_ref().and_then(|(_, etag)| etag.clone());
        let Some(fetched) = self.send(&url, etag.as_deref())? else {
            return Ok(Flow::Stopped);
        };
        if self.common(&fetched.answer, Some(number))? {
            return Ok(Flow::Next);
        }
        match fetched.answer.clone() {
            Answer::Ok => {
                let mut item = match Item::from_github(&fetched.body) {
                    Ok(item) => item,
                    Err(why) => {
                        self.common(&Answer::Transient(why), Some(number))?;
                        return Ok(Flow::Next);
                    }
                };
                if !self.complete(&mut item)? {
                    return Ok(Flow::Stopped);
                }
                let found = Outcome::Found {
                    item: &item,
                    etag: fetched.etag.as_deref(),
                    moved_to: None,
                };
                self.record(number, found, fetched.rate)?;
            }
            Answer::Moved(to) => {
                if !self.forge.may_follow(&to) {
                    let why = format!(
                        "moved to another host ({}): not followed",
                        to.host_str().unwrap_or("?")
                    );
                    self.common(&Answer::Transient(why), Some(number))?;
                    return Ok(Flow::Next);
                }
                // Kept before the next request: a stop or a kill before the
                // second hop does not cost the first one again.
                let repo = &self.repo;
                self.store
                    .write(|w| w.note_move(repo, number, to.as_str()))?;
                return self.follow_move(number, &to);
            }
            Answer::NotFound => {
                if !self.repo_confirmed && !self.confirm_repository()? {
                    return Ok(Flow::Stopped);
                }
                let why = "not found (404)";
                self.record(number, Outcome::Settled { why }, fetched.rate)?;
            }
            Answer::Gone => {
                let why = "deleted (410)";
                self.record(number, Outcome::Settled { why }, fetched.rate)?;
            }
            Answer::NotModified if known.is_some() => {
                let kind = known.map_or("issue", |(kind, _)| kind);
                self.record(number, Outcome::Unchanged { kind }, fetched.rate)?;
            }
            other => {
                let why = format!("unexpected answer: {other:?}");
                self.common(&Answer::Transient(why), Some(number))?;
            }
        }
        Ok(Flow::Next)
    }

    /// The second hop of a transfer: the item where it went now.
    fn follow_move(&mut self, number: u32, to: &Url) -> Result<Flow> {
        let Some(moved) = self.send(to, None)? else {
            return Ok(Flow::Stopped);
        };
        if self.common(&moved.answer, Some(number))? {
            return Ok(Flow::Next);
        }
        match moved.answer {
            Answer::Ok => match Item::from_github(&moved.body) {
                Ok(mut item) => {
                    if !self.complete(&mut item)? {
                        return Ok(Flow::Stopped);
                    }
                    let at = item.url.clone();
                    let found = Outcome::Found {
                        item: &item,
                        etag: None,
                        moved_to: Some(&at),
                    };
                    self.record(number, found, moved.rate)?;
                }
                Err(why) => {
                    self.common(&Answer::Transient(why), Some(number))?;
                }
            },
            Answer::NotFound | Answer::Gone => {
                let why = "moved, and gone where it went";
                self.record(number, Outcome::Settled { why }, moved.rate)?;
            }
            other => {
                let why = format!("unexpected answer after a transfer: {other:?}");
                self.common(&Answer::Transient(why), Some(number))?;
            }
        }
        Ok(Flow::Next)
    }

    /// A 404 may mean the number, or the whole repository. One request
    /// tells, once per run; a missing repository marks nothing.
    /// Returns false when a stop came first.
    fn confirm_repository(&mut self) -> Result<bool> {
        loop {
            let url = self.forge.repo_url();
            let Some(fetched) = self.send(&url, None)? else {
                return Ok(false);
            };
            self.record_requests(None)?;
            if self.common(&fetched.answer, None)? {
                if self.given_up("").is_some() {
                    bail!("cannot confirm that the repository exists: the forge keeps failing");
                }
                continue;
            }
            return match fetched.answer {
                Answer::Ok | Answer::Moved(_) => {
                    self.repo_confirmed = true;
                    Ok(true)
                }
                Answer::NotFound | Answer::Gone => Err(self.repository_missing()),
                other => bail!("unexpected answer about the repository: {other:?}"),
            };
        }
    }

    pub(super) fn repository_missing(&self) -> anyhow::Error {
        let token_hint = if self.forge.has_token() {
            "or the token cannot see it"
        } else {
            "or it is private and no token is set (GITHUB_TOKEN)"
        };
        anyhow!(
            "{} does not exist on the forge, {token_hint}: check --forge or origin",
            self.repo
        )
    }
}
