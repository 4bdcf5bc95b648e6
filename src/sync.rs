//! The drain: plan the next request, pass the pace ledger, send it, record
//! the outcome in one transaction, and stop when the work, the limit, a
//! signal or a failing forge says so.
//!
//! Planning: where pending numbers are dense, the newest-first listing
//! settles up to 100 per request; it is followed (from the cursor kept in
//! SQLite) only while reaching the next pending refs that way costs fewer
//! requests than asking for them one by one. Everything else gets one
//! `GET /issues/{n}`, which answers for issues and PRs alike: newest
//! mentioning commit first, then the range from the top down.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use reqwest::Url;

use crate::forge::github::{Answer, Fetched, GitHub, Limit, PER_PAGE};
use crate::forge::{Item, Kind, MergedAt};
use crate::pace::{Pace, Turn};
use crate::report::{Progress, count, thousands};
use crate::signals;
use crate::store::{Candidate, Rate, RunState, Store};

/// Transient failures in a row after which the drain stops and leaves the
/// rest pending for a later run.
const MAX_FAILURES_IN_A_ROW: u32 = 5;
/// Tries of one ref within one run.
const MAX_TRIES_PER_RUN: u32 = 3;
/// A ref that failed for now is asked again after this, doubling per try.
const RETRY_BASE: Duration = Duration::from_secs(30);
/// Waiting longer than this for a deferred ref ends the run instead.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10 * 60);

pub struct Options {
    /// At most this many refs settled; `None` drains everything.
    pub limit: Option<u64>,
    /// `limit`, `resume` or `sync`, recorded with the run.
    pub mode: &'static str,
    /// After the backlog is drained, bring in what changed on the forge.
    pub refresh: Refresh,
}

/// Whether a drain ends with a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    No,
    /// What changed since the high-water mark.
    Changed,
    /// Everything again (`--full`), still paced.
    Full,
}

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Nothing left that can be asked now.
    Done,
    LimitReached,
    Interrupted,
    /// The forge kept failing; the rest stays pending.
    GaveUp(String),
}

#[derive(Debug, Default)]
pub struct Summary {
    pub requests: u64,
    pub issues: u64,
    pub prs: u64,
    /// Settled for good as not found (404) or deleted (410).
    pub failed: u64,
    pub pending: u64,
    pub end: Option<End>,
    /// Items a refresh found new or changed, when one ran to its end.
    pub refreshed: Option<u64>,
}

impl Summary {
    fn settled(&self) -> u64 {
        self.issues + self.prs + self.failed
    }
}

/// What one ref's answer settled.
enum Outcome<'a> {
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

/// What asking for one listing page came to.
enum Listed {
    /// A stop was asked for.
    Stopped,
    /// A limit or a transient failure, dealt with: ask again.
    Again,
    /// The answer (2xx, 301 or 304) and its items, decoded and complete.
    Page(Box<Fetched>, Vec<Item>),
}

enum Step {
    Page(Url),
    Single(u32),
    Wait(SystemTime),
    Done,
}

pub struct Drain<'a> {
    store: &'a mut Store,
    forge: &'a GitHub,
    pace: &'a Pace,
    progress: &'a mut Progress,
    repo: String,
    run: i64,
    limit: Option<u64>,
    summary: Summary,
    /// Pending numbers (a cache of the database, updated as outcomes land).
    pending: BTreeSet<u32>,
    /// Single-request order: newest mentioning commit first, then the range
    /// from the top down.
    order: Vec<Candidate>,
    tries: HashMap<u32, u32>,
    not_before: HashMap<u32, SystemTime>,
    failures_in_a_row: u32,
    last_failure: Option<String>,
    repo_confirmed: bool,
    limited: bool,
}

pub fn drain(
    store: &mut Store,
    forge: &GitHub,
    pace: &Pace,
    progress: &mut Progress,
    repo: &str,
    options: Options,
) -> Result<Summary> {
    let run = store.start_run(repo, std::process::id(), options.mode)?;
    let mut order = store.candidates(repo)?;
    let pending: BTreeSet<u32> = order.iter().map(|c| c.number).collect();
    order.sort_unstable_by_key(|c| {
        (
            std::cmp::Reverse(c.commit_time.is_some()),
            std::cmp::Reverse(c.commit_time),
            std::cmp::Reverse(c.number),
        )
    });
    let now = unix_now();
    let not_before = order
        .iter()
        .filter_map(|c| {
            let at = c.next_attempt?;
            (at > now).then(|| (c.number, UNIX_EPOCH + Duration::from_secs(at as u64)))
        })
        .collect();
    progress.start(
        options
            .limit
            .unwrap_or(pending.len() as u64)
            .min(pending.len() as u64),
    );
    let mut drain = Drain {
        store,
        forge,
        pace,
        progress,
        repo: repo.to_owned(),
        run,
        limit: options.limit,
        summary: Summary::default(),
        pending,
        order,
        tries: HashMap::new(),
        not_before,
        failures_in_a_row: 0,
        last_failure: None,
        repo_confirmed: false,
        limited: false,
    };
    let mut outcome = drain.run();
    if let (Ok(End::Done), Refresh::Changed | Refresh::Full) = (&outcome, options.refresh) {
        outcome = drain.refresh(options.refresh == Refresh::Full);
    }
    let (state, error) = match &outcome {
        Ok(End::Done | End::LimitReached) => (RunState::Finished, None),
        Ok(End::Interrupted) => (RunState::Interrupted, None),
        Ok(End::GaveUp(why)) => (RunState::Failed, Some(why.clone())),
        Err(e) => (RunState::Failed, Some(format!("{e:#}"))),
    };
    drain.store.finish_run(run, state, error.as_deref())?;
    drain.progress.finish();
    let mut summary = drain.summary;
    summary.pending = drain.store.pending(repo)?;
    summary.end = Some(outcome?);
    Ok(summary)
}

impl Drain<'_> {
    fn run(&mut self) -> Result<End> {
        loop {
            if signals::stop_requested() {
                return Ok(End::Interrupted);
            }
            if self.budget() == 0 {
                return Ok(End::LimitReached);
            }
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                return Ok(End::GaveUp(format!(
                    "the forge failed {MAX_FAILURES_IN_A_ROW} times in a row (last: {}); {} left \
                     pending for the next run",
                    self.last_failure.as_deref().unwrap_or("unknown"),
                    count(self.pending.len() as u64, "ref", "refs")
                )));
            }
            match self.plan()? {
                Step::Page(url) => {
                    if !self.page(url)? {
                        return Ok(End::Interrupted);
                    }
                }
                Step::Single(number) => {
                    if !self.single(number)? {
                        return Ok(End::Interrupted);
                    }
                }
                Step::Wait(until) => {
                    let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
                    self.progress.log(&format!(
                        "waiting {} to retry refs that failed for now",
                        humantime::format_duration(round_secs(wait))
                    ));
                    if !sleep_until(until) {
                        return Ok(End::Interrupted);
                    }
                }
                Step::Done => return Ok(End::Done),
            }
        }
    }

    fn budget(&self) -> u64 {
        match self.limit {
            Some(limit) => limit.saturating_sub(self.summary.settled()),
            None => u64::MAX,
        }
    }

    fn plan(&mut self) -> Result<Step> {
        if self.pending.is_empty() {
            return Ok(Step::Done);
        }
        if self.budget() >= u64::from(PER_PAGE)
            && let Some(url) = self.next_page()?
        {
            return Ok(Step::Page(url));
        }
        let now = SystemTime::now();
        let mut soonest: Option<SystemTime> = None;
        for c in &self.order {
            if !self.pending.contains(&c.number)
                || self.tries.get(&c.number).copied().unwrap_or(0) >= MAX_TRIES_PER_RUN
            {
                continue;
            }
            match self.not_before.get(&c.number) {
                Some(&at) if at > now => soonest = Some(soonest.map_or(at, |s| s.min(at))),
                _ => return Ok(Step::Single(c.number)),
            }
        }
        Ok(match soonest {
            Some(at) if at.duration_since(now).unwrap_or_default() <= MAX_RETRY_WAIT => {
                Step::Wait(at)
            }
            _ => Step::Done,
        })
    }

    /// The listing page worth asking for next, if any. A listing under way
    /// goes on while the pending refs below it make it pay; a new one starts
    /// from the top when the refs newer than the last finished listing do.
    /// Refs a finished listing passed without returning are not listed again:
    /// they are gaps (deleted, transferred) for single requests.
    fn next_page(&mut self) -> Result<Option<Url>> {
        let state = self.store.sync_state(&self.repo)?;
        let covered = state.list_covered.unwrap_or(0);
        if let Some(next) = &state.list_next {
            let floor = state.list_floor.unwrap_or(u32::MAX);
            let below = pending_between(&self.pending, covered, floor);
            if listing_pays(&below, floor)
                && let Ok(url) = Url::parse(next)
                && self.forge.may_follow(&url)
            {
                return Ok(Some(url));
            }
            return Ok(None);
        }
        let top = state
            .newest_number
            .unwrap_or(0)
            .max(self.pending.last().copied().unwrap_or(0));
        let newer = pending_between(&self.pending, covered, u32::MAX);
        if listing_pays(&newer, top.saturating_add(1)) {
            let first = self.forge.first_page_url();
            let repo = self.repo.clone();
            self.store
                .write(|w| w.start_listing(&repo, first.as_str(), top))?;
            return Ok(Some(first));
        }
        Ok(None)
    }

    /// Waits for a turn and sends one request (conditional when `etag` is
    /// given); `None` when a stop came first.
    fn send(&mut self, url: &Url, etag: Option<&str>) -> Result<Option<Fetched>> {
        let progress = &mut *self.progress;
        let turn = self.pace.wait_turn(None, &mut |wait, reason| {
            progress.log(&format!(
                "waiting {}: {reason}",
                humantime::format_duration(round_secs(wait))
            ));
        })?;
        if turn != Turn::Go {
            return Ok(None);
        }
        self.summary.requests += 1;
        match self.forge.fetch(url, etag) {
            Ok(fetched) => {
                if let Some(rate) = fetched.rate {
                    self.pace.budget(rate.remaining, rate.reset)?;
                }
                Ok(Some(fetched))
            }
            Err(e) => Ok(Some(Fetched {
                answer: Answer::Transient(format!("{e:#}")),
                body: Vec::new(),
                etag: None,
                rate: None,
                next: None,
            })),
        }
    }

    /// Handles what any answer may be besides the expected ones. `Ok(true)`
    /// when the answer was dealt with here (a limit, a transient failure).
    fn common(&mut self, answer: &Answer, number: Option<u32>) -> Result<bool> {
        match answer {
            Answer::Limited(limit) => {
                let waited = match limit {
                    Limit::Primary { reset } => self.pace.hold_until(
                        *reset + Duration::from_secs(1),
                        "the rate limit is used up until its reset",
                    )?,
                    Limit::Secondary { retry_after } => self.pace.secondary_limit(
                        *retry_after,
                        if retry_after.is_some() {
                            "secondary rate limit (retry-after)"
                        } else {
                            "secondary rate limit"
                        },
                    )?,
                };
                self.limited = true;
                self.record_requests(None)?;
                self.progress.log(&format!(
                    "rate limited: no request for {}",
                    humantime::format_duration(round_secs(waited))
                ));
                Ok(true)
            }
            Answer::Denied(why) => {
                self.record_requests(Some(why))?;
                bail!("{why}")
            }
            Answer::Transient(why) => {
                self.failures_in_a_row += 1;
                self.last_failure = Some(why.clone());
                let why = why.clone();
                let requests = self.summary.requests;
                self.store.write(|w| {
                    if let Some(n) = number {
                        let tries = self.tries.get(&n).copied().unwrap_or(0);
                        let retry = RETRY_BASE.saturating_mul(1 << tries.min(6));
                        w.defer_ref(&self.repo, n, &why, unix_now() + retry.as_secs() as i64)?;
                    }
                    w.count(self.run, requests, 0, 0, Some(&why))
                })?;
                if let Some(n) = number {
                    let tries = self.tries.entry(n).or_default();
                    *tries += 1;
                    let retry = RETRY_BASE.saturating_mul(1 << (*tries - 1).min(6));
                    self.not_before.insert(n, SystemTime::now() + retry);
                }
                // The forge is struggling: slow down for everyone.
                let backoff = Duration::from_secs(1 << self.failures_in_a_row.min(6));
                self.pace
                    .hold_until(SystemTime::now() + backoff, "backing off after a failure")?;
                let what = number.map_or("listing".to_owned(), |n| format!("#{n}"));
                self.progress.log(&format!("{what}: {why} (will retry)"));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// An answer was understood and recorded: the run of failures is over,
    /// and so is any secondary-limit backoff. Only here: a 200 whose body
    /// does not decode is a failure, not a success.
    fn succeeded(&mut self) -> Result<()> {
        self.failures_in_a_row = 0;
        self.last_failure = None;
        if self.limited {
            self.pace.success()?;
            self.limited = false;
        }
        Ok(())
    }

    /// Brings the run's request count up to date (with an error to keep).
    fn record_requests(&mut self, error: Option<&str>) -> Result<()> {
        let requests = self.summary.requests;
        self.store
            .write(|w| w.count(self.run, requests, 0, 0, error))
    }

    /// Asks for one page of a listing (conditionally when `etag` is given)
    /// and decodes it, its PRs completed. Limits and transient failures are
    /// dealt with here and come back as [`Listed::Again`].
    fn list(&mut self, url: &Url, etag: Option<&str>) -> Result<Listed> {
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
            if !self.complete(item)? {
                return Ok(Listed::Stopped);
            }
        }
        Ok(Listed::Page(Box::new(fetched), items))
    }

    /// One page of the listing. Returns false when interrupted.
    fn page(&mut self, url: Url) -> Result<bool> {
        let (fetched, items) = match self.list(&url, None)? {
            Listed::Stopped => return Ok(false),
            Listed::Again => return Ok(true),
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
        let repo = self.repo.clone();
        let requests = self.summary.requests;
        let (settled_issues, settled_prs) = self.store.write(|w| {
            let (mut issues, mut prs) = (0, 0);
            for item in &items {
                w.store_item(item.number, item, None)?;
                if w.resolve_ref(&repo, item.number, kind_of(item), None)? {
                    if item.is_pr() {
                        prs += 1;
                    } else {
                        issues += 1;
                    }
                }
            }
            match (&next, end_of_listing) {
                (Some(next), false) => w.advance_listing(&repo, next.as_str(), floor)?,
                _ => w.finish_listing(&repo)?,
            }
            if let Some(rate) = fetched.rate {
                w.set_rate(&repo, to_rate(rate))?;
            }
            w.count(self.run, requests, issues + prs, 0, None)?;
            Ok((issues, prs))
        })?;
        for item in &items {
            self.pending.remove(&item.number);
        }
        self.summary.issues += settled_issues;
        self.summary.prs += settled_prs;
        self.progress.set(self.summary.settled());
        self.succeeded()?;
        Ok(true)
    }

    /// Brings in what changed on the forge since the high-water mark: the
    /// changed-since listing, oldest change first, page by page, the mark
    /// moving only with a committed page. The first page is asked
    /// conditionally, so an unchanged repository costs one uncounted request.
    fn refresh(&mut self, full: bool) -> Result<End> {
        let state = self.store.refresh_state(&self.repo)?;
        // The first page keeps one base (`since`) from refresh to refresh, so
        // that its ETag is known and an unchanged repository answers 304; the
        // base moves up to the mark once the changes since it fill a page.
        let kept = state
            .first_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| !full && self.forge.may_follow(u));
        let first = match kept {
            Some(url) => url,
            None => self
                .forge
                .updated_url(if full { None } else { state.mark.as_deref() }),
        };
        let mut etag = (state.first_url.as_deref() == Some(first.as_str()))
            .then(|| state.first_etag.clone())
            .flatten();
        let mut url = first.clone();
        let mut pages = 0;
        let mut changed = 0;
        loop {
            if signals::stop_requested() {
                return Ok(End::Interrupted);
            }
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                return Ok(End::GaveUp(format!(
                    "the forge failed {MAX_FAILURES_IN_A_ROW} times in a row while refreshing (last: {})",
                    self.last_failure.as_deref().unwrap_or("unknown")
                )));
            }
            let (fetched, items) = match self.list(&url, etag.as_deref())? {
                Listed::Stopped => return Ok(End::Interrupted),
                Listed::Again => continue,
                Listed::Page(fetched, items) => (*fetched, items),
            };
            if let Answer::Moved(_) = fetched.answer {
                bail!("unexpected answer while refreshing: {:?}", fetched.answer);
            }
            let newest = items
                .iter()
                .map(|i| i.updated_at.as_str())
                .max()
                .map(str::to_owned);
            let repo = self.repo.clone();
            let requests = self.summary.requests;
            let is_first = url == first;
            let page_changed = self.store.write(|w| {
                let mut page_changed = 0;
                for item in &items {
                    if w.store_item(item.number, item, None)? {
                        page_changed += 1;
                    }
                    w.resolve_ref(&repo, item.number, kind_of(item), None)?;
                }
                if let Some(newest) = &newest {
                    w.advance_mark(newest)?;
                }
                if is_first && fetched.answer == Answer::Ok {
                    w.set_refresh_page(&repo, first.as_str(), fetched.etag.as_deref())?;
                }
                if let Some(rate) = fetched.rate {
                    w.set_rate(&repo, to_rate(rate))?;
                }
                w.count(self.run, requests, 0, 0, None)?;
                Ok(page_changed)
            })?;
            for item in &items {
                self.pending.remove(&item.number);
            }
            changed += page_changed;
            pages += 1;
            self.succeeded()?;
            match fetched.next.filter(|next| self.forge.may_follow(next)) {
                Some(next) if fetched.answer == Answer::Ok && !items.is_empty() => {
                    url = next;
                    etag = None;
                }
                _ => break,
            }
        }
        let repo = self.repo.clone();
        let rebase = (pages > 1)
            .then(|| self.store.refresh_state(&repo))
            .transpose()?
            .map(|state| self.forge.updated_url(state.mark.as_deref()));
        self.store.write(|w| {
            if let Some(base) = &rebase {
                w.set_refresh_page(&repo, base.as_str(), None)?;
            }
            w.finish_refresh(&repo, changed)
        })?;
        self.summary.refreshed = Some(changed);
        if changed > 0 {
            self.progress.log(&format!(
                "refresh: {} new or changed on the forge",
                count(changed, "item", "items")
            ));
        }
        Ok(End::Done)
    }

    /// One ref by itself. Returns false when interrupted.
    fn single(&mut self, number: u32) -> Result<bool> {
        let url = self.forge.issue_url(number);
        // What we hold already is asked for conditionally: a 304 costs
        // nothing against the primary limit.
        let known = self.store.known_item(number)?;
        let etag = known.as_ref().and_then(|(_, etag)| etag.clone());
        let Some(fetched) = self.send(&url, etag.as_deref())? else {
            return Ok(false);
        };
        if self.common(&fetched.answer, Some(number))? {
            return Ok(true);
        }
        match fetched.answer.clone() {
            Answer::Ok => {
                let mut item = match Item::from_github(&fetched.body) {
                    Ok(item) => item,
                    Err(why) => {
                        self.common(&Answer::Transient(why), Some(number))?;
                        return Ok(true);
                    }
                };
                if !self.complete(&mut item)? {
                    return Ok(false);
                }
                self.record(
                    number,
                    Outcome::Found {
                        item: &item,
                        etag: fetched.etag.as_deref(),
                        moved_to: None,
                    },
                    &fetched,
                )?;
            }
            Answer::Moved(to) => {
                if !self.forge.may_follow(&to) {
                    let why = format!(
                        "moved to another host ({}): not followed",
                        to.host_str().unwrap_or("?")
                    );
                    self.common(&Answer::Transient(why), Some(number))?;
                    return Ok(true);
                }
                let Some(moved) = self.send(&to, None)? else {
                    return Ok(false);
                };
                if self.common(&moved.answer, Some(number))? {
                    return Ok(true);
                }
                match moved.answer {
                    Answer::Ok => match Item::from_github(&moved.body) {
                        Ok(mut item) => {
                            if !self.complete(&mut item)? {
                                return Ok(false);
                            }
                            let at = item.url.clone();
                            self.record(
                                number,
                                Outcome::Found {
                                    item: &item,
                                    etag: None,
                                    moved_to: Some(&at),
                                },
                                &moved,
                            )?;
                        }
                        Err(why) => {
                            self.common(&Answer::Transient(why), Some(number))?;
                        }
                    },
                    Answer::NotFound | Answer::Gone => self.record(
                        number,
                        Outcome::Settled {
                            why: "moved, and gone where it went",
                        },
                        &moved,
                    )?,
                    other => {
                        let why = format!("unexpected answer after a transfer: {other:?}");
                        self.common(&Answer::Transient(why), Some(number))?;
                    }
                }
            }
            Answer::NotFound => {
                if !self.repo_confirmed && !self.confirm_repository()? {
                    return Ok(false);
                }
                self.record(
                    number,
                    Outcome::Settled {
                        why: "not found (404)",
                    },
                    &fetched,
                )?;
            }
            Answer::Gone => self.record(
                number,
                Outcome::Settled {
                    why: "deleted (410)",
                },
                &fetched,
            )?,
            Answer::NotModified if known.is_some() => {
                let kind = known.map_or("issue", |(kind, _)| kind);
                self.record(number, Outcome::Unchanged { kind }, &fetched)?;
            }
            other => {
                let why = format!("unexpected answer: {other:?}");
                self.common(&Answer::Transient(why), Some(number))?;
            }
        }
        Ok(true)
    }

    /// Records the outcome of one ref's request in one transaction, with the
    /// budget the answer announced and the run's counters.
    fn record(&mut self, number: u32, outcome: Outcome<'_>, fetched: &Fetched) -> Result<()> {
        let repo = self.repo.clone();
        let requests = self.summary.requests;
        let settled = self.store.write(|w| {
            let settled = match &outcome {
                Outcome::Found {
                    item,
                    etag,
                    moved_to,
                } => {
                    w.store_item(number, item, *etag)?;
                    w.resolve_ref(&repo, number, kind_of(item), *moved_to)?
                }
                Outcome::Unchanged { kind } => w.resolve_ref(&repo, number, kind, None)?,
                Outcome::Settled { why } => w.settle_ref(&repo, number, why)?,
            };
            if let Some(rate) = fetched.rate {
                w.set_rate(&repo, to_rate(rate))?;
            }
            let failed = matches!(outcome, Outcome::Settled { .. });
            w.count(
                self.run,
                requests,
                u64::from(settled && !failed),
                u64::from(settled && failed),
                None,
            )?;
            Ok(settled)
        })?;
        self.pending.remove(&number);
        if settled {
            match outcome {
                Outcome::Settled { .. } => self.summary.failed += 1,
                Outcome::Found { item, .. } if item.is_pr() => self.summary.prs += 1,
                Outcome::Unchanged { kind: "pr" } => self.summary.prs += 1,
                _ => self.summary.issues += 1,
            }
        }
        self.progress.set(self.summary.settled());
        self.succeeded()
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
                if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
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

    fn repository_missing(&self) -> anyhow::Error {
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

    /// A closed PR whose answer left `merged_at` out needs its own request
    /// to tell merged from closed. Returns false when interrupted.
    fn complete(&mut self, item: &mut Item) -> Result<bool> {
        let Kind::Pr { merged_at } = &item.kind else {
            return Ok(true);
        };
        if *merged_at != MergedAt::Unknown {
            return Ok(true);
        }
        if item.open {
            item.kind = Kind::Pr {
                merged_at: MergedAt::Known(None),
            };
            return Ok(true);
        }
        let url = self.forge.pull_url(item.number);
        loop {
            let Some(fetched) = self.send(&url, None)? else {
                return Ok(false);
            };
            if self.common(&fetched.answer, None)? {
                if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                    bail!(
                        "cannot tell whether PR #{} was merged: the forge keeps failing",
                        item.number
                    );
                }
                continue;
            }
            let merged_at = match fetched.answer {
                Answer::Ok => {
                    crate::forge::merged_at_from_pull(&fetched.body).map_err(|e| anyhow!(e))?
                }
                _ => None,
            };
            item.kind = Kind::Pr {
                merged_at: MergedAt::Known(merged_at),
            };
            return Ok(true);
        }
    }
}

/// Pending numbers above `low` and below `high`.
fn pending_between(pending: &BTreeSet<u32>, low: u32, high: u32) -> BTreeSet<u32> {
    if low.saturating_add(1) >= high {
        return BTreeSet::new();
    }
    pending.range(low + 1..high).copied().collect()
}

/// Whether following the listing below `floor` reaches pending refs for
/// fewer requests than asking for them one by one: some depth of `d` pages
/// (about 100 numbers each) holds more than `d` pending refs.
pub fn listing_pays(pending: &BTreeSet<u32>, floor: u32) -> bool {
    let per_page = PER_PAGE as u64;
    pending
        .range(..floor)
        .rev()
        .enumerate()
        .any(|(i, &n)| (i as u64 + 1) > u64::from(floor - n).div_ceil(per_page).max(1))
}

fn kind_of(item: &Item) -> &'static str {
    if item.is_pr() { "pr" } else { "issue" }
}

fn to_rate(rate: crate::forge::github::RateInfo) -> Rate {
    Rate {
        remaining: rate.remaining,
        limit: rate.limit,
        reset: rate
            .reset
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// Sleeps until `until` in short naps; false when a stop was asked for.
fn sleep_until(until: SystemTime) -> bool {
    loop {
        if signals::stop_requested() {
            return false;
        }
        let Ok(left) = until.duration_since(SystemTime::now()) else {
            return true;
        };
        std::thread::sleep(left.min(Duration::from_millis(100)));
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
    writeln!(out, "Requests: {}", thousands(summary.requests))?;
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

    fn set(numbers: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        numbers.into_iter().collect()
    }

    #[test]
    fn dense_ranges_are_listed() {
        assert!(listing_pays(&set(1..=17_488), 17_489));
        // 51 per 100 numbers, like a real project's commit refs.
        assert!(listing_pays(&set((1..=17_385).step_by(2)), 17_386));
    }

    #[test]
    fn sparse_refs_are_asked_one_by_one() {
        assert!(!listing_pays(&set([5_000]), 17_489));
        assert!(!listing_pays(&set([17_000, 12_000, 400]), 17_489));
        // One ref a page: listing costs as much as asking.
        assert!(!listing_pays(&set((1..=10_000).step_by(100)), 10_001));
        assert!(!listing_pays(&set([]), 10));
    }

    #[test]
    fn a_dense_pocket_deep_down_still_pays() {
        let mut pending = set([9_000]);
        pending.extend(1..=500);
        assert!(listing_pays(&pending, 9_001));
        // Below the floor only: what is above it was listed already.
        assert!(!listing_pays(&set(9_500..=9_900), 9_001));
    }
}
