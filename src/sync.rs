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
//!
//! With a token, GraphQL replaces both: one query asks for up to 100 numbers
//! (any mix of issues, PRs and missing numbers) with their comments,
//! approvals and linked issues. The batch shrinks when answers are slow or
//! the forge gives up on them (502, 504, a timeout), and grows back while
//! they are fast. A host without GraphQL (404) falls back to REST.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use reqwest::Url;

use crate::forge::github::{Answer, Fetched, GitHub, Limit, RateInfo};
use crate::forge::graphql::{self, MAX_BATCH, Node};
use crate::forge::kind::ForgeKind;
use crate::forge::{Details, Item, Kind, MergedAt};
use crate::pace::{Pace, Turn};
use crate::report::{Progress, count, thousands};
use crate::signals;
use crate::store::{Candidate, Rate, RunState, Store, Writer};

/// Transient failures in a row after which the drain stops and leaves the
/// rest pending for a later run.
const MAX_FAILURES_IN_A_ROW: u32 = 5;
/// Tries of one ref within one run.
const MAX_TRIES_PER_RUN: u32 = 3;
/// A ref that failed for now is asked again after this, doubling per try.
const RETRY_BASE: Duration = Duration::from_secs(30);
/// Waiting longer than this for a deferred ref ends the run instead.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10 * 60);
/// The first GraphQL batch of a run; it doubles while answers are fast.
const BATCH_START: usize = 50;
/// An answer faster than this lets the batch grow…
const FAST: Duration = Duration::from_secs(2);
/// … and one slower than this makes it shrink: GitHub gives up at 10 s.
const SLOW: Duration = Duration::from_secs(5);

pub struct Options {
    /// At most this many refs settled; `None` drains everything.
    pub limit: Option<u64>,
    /// `limit`, `resume` or `sync`, recorded with the run.
    pub mode: &'static str,
    /// After the backlog is drained, bring in what changed on the forge.
    pub refresh: Refresh,
    /// Resolve in GraphQL batches (a token is set); else REST.
    pub graphql: bool,
    /// Why REST, when it is: shown by status.
    pub api_note: Option<String>,
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
    /// GraphQL points spent (`rateLimit.cost`), when GraphQL was used.
    pub points: Option<u64>,
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

/// What asking for one GraphQL batch came to.
enum Asked {
    Stopped,
    /// Dealt with (a limit, a failure, a smaller batch, REST from now on):
    /// ask again.
    Again,
    Answer(Box<Fetched>, graphql::Batch),
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
    Batch(Vec<u32>),
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
    /// The GraphQL batch size; `None` is REST.
    batch: Option<usize>,
    /// Refs a commit mentions that GraphQL did not find: GraphQL does not
    /// follow a transfer, REST answers it with a 301. Asked one by one.
    confirm: BTreeSet<u32>,
    /// Refs some commit mentions (the others come from the number range).
    mentioned: BTreeSet<u32>,
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
            (at > now).then(|| {
                (
                    c.number,
                    UNIX_EPOCH
                        .checked_add(Duration::from_secs(at as u64))
                        .unwrap_or(UNIX_EPOCH),
                )
            })
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
        batch: options.graphql.then_some(BATCH_START),
        confirm: BTreeSet::new(),
        mentioned: BTreeSet::new(),
    };
    drain.mentioned = drain
        .order
        .iter()
        .filter(|c| c.commit_time.is_some())
        .map(|c| c.number)
        .collect();
    let api = if options.graphql { "graphql" } else { "rest" };
    let repo = drain.repo.clone();
    drain
        .store
        .write(|w| w.set_api(&repo, api, options.api_note.as_deref()))?;
    if options.graphql {
        drain.summary.points = Some(0);
    }
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
    summary.pending = drain.store.pending(&repo)?;
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
                Step::Batch(numbers) => {
                    if !self.batch(&numbers)? {
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
        while let Some(number) = self.confirm.pop_last() {
            if self.pending.contains(&number) {
                return Ok(Step::Single(number));
            }
        }
        if self.batch.is_none()
            && self.budget() >= u64::from(self.forge.per_page())
            && let Some(url) = self.next_page()?
        {
            return Ok(Step::Page(url));
        }
        let room = match self.batch {
            Some(size) => size.min(usize::try_from(self.budget()).unwrap_or(usize::MAX)),
            None => 1,
        };
        let now = SystemTime::now();
        let mut soonest: Option<SystemTime> = None;
        let mut chosen = Vec::new();
        for c in &self.order {
            if !self.pending.contains(&c.number)
                || self.tries.get(&c.number).copied().unwrap_or(0) >= MAX_TRIES_PER_RUN
            {
                continue;
            }
            match self.not_before.get(&c.number) {
                Some(&at) if at > now => soonest = Some(soonest.map_or(at, |s| s.min(at))),
                _ => {
                    chosen.push(c.number);
                    if chosen.len() >= room {
                        break;
                    }
                }
            }
        }
        match (self.batch, chosen.as_slice()) {
            (_, []) => {}
            (None, [number]) => return Ok(Step::Single(*number)),
            _ => return Ok(Step::Batch(chosen)),
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
            if listing_pays(&below, floor, self.forge.per_page())
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
        if listing_pays(&newer, top.saturating_add(1), self.forge.per_page()) {
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
        self.send_with(|forge| forge.fetch(url, etag), true)
    }

    /// Waits for a turn and sends what `request` sends; `budget`: feed the
    /// answer's rate-limit headers to the ledger (GraphQL's are points,
    /// fed by the caller as requests).
    fn send_with(
        &mut self,
        request: impl FnOnce(&GitHub) -> Result<Fetched>,
        budget: bool,
    ) -> Result<Option<Fetched>> {
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
        match request(self.forge) {
            Ok(fetched) => {
                if let (Some(rate), true) = (fetched.rate, budget) {
                    self.pace.budget(rate.remaining, rate.reset)?;
                }
                Ok(Some(fetched))
            }
            Err(e) => Ok(Some(Fetched {
                answer: Answer::Transient(format!("{e:#}")),
                status: 0,
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
                        let retry = retry_delay(tries);
                        w.defer_ref(&self.repo, n, &why, unix_now() + retry.as_secs() as i64)?;
                    }
                    w.count(self.run, requests, 0, 0, Some(&why))
                })?;
                if let Some(n) = number {
                    let tries = self.tries.entry(n).or_default();
                    *tries += 1;
                    let retry = retry_delay(*tries - 1);
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
    /// and decodes it; closed PRs whose answer left `merged_at` out are the
    /// caller's to complete, after the rest of the page is committed. Limits and transient failures are
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
            // An open PR is not merged: no request needed to say so.
            if item.open && item.merged_unknown() {
                item.kind = Kind::Pr {
                    merged_at: MergedAt::Known(None),
                };
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
        let kind = self.forge.kind();
        let (items, later): (Vec<Item>, Vec<Item>) =
            items.into_iter().partition(|i| !needs_completion(i, kind));
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
        // The page is committed; each PR that needs a request of its own is
        // committed after its answer. One cut short stays pending, a gap
        // below the listing for a single request later.
        for mut item in later {
            if !self.complete(&mut item)? {
                return Ok(false);
            }
            let found = Outcome::Found {
                item: &item,
                etag: None,
                moved_to: None,
            };
            self.record(item.number, found, None)?;
        }
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
        // A listing newest first (Gitea) moves the mark only at its end: a
        // later page may hold older changes.
        let ascending = self.forge.kind().updates_ascending();
        let mut newest_seen: Option<String> = None;
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
            // REST tells what changed; GraphQL brings the changed items'
            // discussion, before the page (and the mark) is committed.
            let mut items = items;
            if self.batch.is_some() {
                let stale = items
                    .iter()
                    .filter(|i| {
                        self.store
                            .stored_updated_at(i.number, i.is_pr())
                            .map_or(true, |at| at.as_deref() != Some(i.updated_at.as_str()))
                    })
                    .map(|i| i.number)
                    .collect::<Vec<_>>();
                let Some(mut richer) = self.details(&stale)? else {
                    return Ok(End::Interrupted);
                };
                for item in &mut items {
                    if let Some(rich) = richer.remove(&item.number)
                        && rich.updated_at >= item.updated_at
                        && rich.number == item.number
                    {
                        *item = rich;
                    }
                }
            }
            let newest = items
                .iter()
                .map(|i| i.updated_at.as_str())
                .max()
                .map(str::to_owned);
            let repo = self.repo.clone();
            let requests = self.summary.requests;
            let is_first = url == first;
            let run = self.run;
            // The mark moves with the last of the page's items committed.
            if let Some(newest) = &newest
                && newest_seen.as_ref().is_none_or(|seen| newest > seen)
            {
                newest_seen = Some(newest.clone());
            }
            let mark = |w: &Writer<'_>| -> Result<()> {
                if let (Some(newest), true) = (&newest, ascending) {
                    w.advance_mark(newest)?;
                }
                if is_first && fetched.answer == Answer::Ok {
                    w.set_refresh_page(&repo, first.as_str(), fetched.etag.as_deref())?;
                }
                if let Some(rate) = fetched.rate {
                    w.set_rate(&repo, to_rate(rate))?;
                }
                w.count(run, requests, 0, 0, None)
            };
            let listed = items.len();
            let kind = self.forge.kind();
            let (items, later): (Vec<Item>, Vec<Item>) =
                items.into_iter().partition(|i| !needs_completion(i, kind));
            let mut page_changed = self.store.write(|w| {
                let mut page_changed = 0;
                for item in &items {
                    if w.store_item(item.number, item, None)? {
                        page_changed += 1;
                    }
                    w.resolve_ref(&repo, item.number, kind_of(item), None)?;
                }
                if later.is_empty() {
                    mark(w)?;
                }
                Ok(page_changed)
            })?;
            for item in &items {
                self.pending.remove(&item.number);
            }
            if !later.is_empty() {
                for mut item in later {
                    if !self.complete(&mut item)? {
                        return Ok(End::Interrupted);
                    }
                    let found = Outcome::Found {
                        item: &item,
                        etag: None,
                        moved_to: None,
                    };
                    page_changed += u64::from(self.record(item.number, found, None)?);
                }
                self.store.write(mark)?;
            }
            changed += page_changed;
            pages += 1;
            self.succeeded()?;
            match fetched.next.filter(|next| self.forge.may_follow(next)) {
                Some(next) if fetched.answer == Answer::Ok && listed > 0 => {
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
            if let (Some(newest), false) = (&newest_seen, ascending) {
                w.advance_mark(newest)?;
            }
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

    /// Asks for `numbers` in one GraphQL query. Limits, failures, a
    /// smaller batch and the fall-back to REST are dealt with here and come
    /// back as [`Asked::Again`].
    fn ask(&mut self, numbers: &[u32]) -> Result<Asked> {
        let started = Instant::now();
        let Some(fetched) = self.send_with(|forge| forge.fetch_batch(numbers), false)? else {
            return Ok(Asked::Stopped);
        };
        let took = started.elapsed();
        let size = self.batch.unwrap_or(1);
        if matches!(fetched.answer, Answer::NotFound | Answer::Gone) {
            // GraphQL is switched off on this host (GitHub Enterprise can).
            let note = format!("the host answers {} to GraphQL", fetched.status);
            self.progress
                .log(&format!("{note}: resolving through REST from now on"));
            self.batch = None;
            self.summary.points = None;
            let repo = self.repo.clone();
            self.store
                .write(|w| w.set_api(&repo, "rest", Some(&note)))?;
            self.record_requests(None)?;
            return Ok(Asked::Again);
        }
        // GitHub gave up on the query (502, 504) or we did (a timeout):
        // too much at once. Smaller, and again, before it counts as failing.
        let gave_up = matches!(fetched.status, 502 | 504)
            || (fetched.status == 0
                && matches!(&fetched.answer, Answer::Transient(why) if why.contains("timed out")));
        if gave_up && size > 1 {
            let smaller = (numbers.len().min(size) / 2).max(1);
            self.batch = Some(smaller);
            let why = match &fetched.answer {
                Answer::Transient(why) => why.clone(),
                other => format!("{other:?}"),
            };
            self.progress.log(&format!(
                "GraphQL batch of {} failed ({why}): asking {smaller} at a time",
                numbers.len()
            ));
            self.pace.hold_until(
                SystemTime::now() + Duration::from_secs(1),
                "backing off after a failure",
            )?;
            self.record_requests(Some(&why))?;
            return Ok(Asked::Again);
        }
        let only = match numbers {
            [n] => Some(*n),
            _ => None,
        };
        if self.common(&fetched.answer, only)? {
            return Ok(Asked::Again);
        }
        if fetched.answer != Answer::Ok {
            let why = format!("unexpected answer to GraphQL: {:?}", fetched.answer);
            self.common(&Answer::Transient(why), only)?;
            return Ok(Asked::Again);
        }
        let batch = match graphql::decode(&fetched.body, numbers, &self.repo) {
            Ok(batch) => batch,
            Err(why) => {
                self.common(&Answer::Transient(why), only)?;
                return Ok(Asked::Again);
            }
        };
        if let Some(points) = batch.rate {
            // The ledger counts requests: what is left, in queries like this one.
            self.pace
                .budget(points.remaining / points.cost.max(1), points.reset)?;
            if let Some(spent) = &mut self.summary.points {
                *spent += points.cost;
            }
        } else if let Some(rate) = fetched.rate {
            self.pace.budget(rate.remaining, rate.reset)?;
        }
        if batch.rate_limited {
            let reset = fetched
                .rate
                .map(|r| r.reset)
                .or(batch.rate.map(|p| p.reset))
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
            self.common(&Answer::Limited(Limit::Primary { reset }), None)?;
            return Ok(Asked::Again);
        }
        if batch.repository_missing {
            self.record_requests(None)?;
            return Err(self.repository_missing());
        }
        if let Some(why) = &batch.failure {
            self.common(&Answer::Transient(why.clone()), only)?;
            return Ok(Asked::Again);
        }
        // Fast answers let the batch grow back; slow ones shrink it before
        // GitHub starts giving up on it.
        if let Some(size) = &mut self.batch {
            if took > SLOW {
                *size = (numbers.len() / 2).max(1);
            } else if took < FAST && numbers.len() >= *size {
                *size = (*size * 2).min(MAX_BATCH);
            }
        }
        Ok(Asked::Answer(Box::new(fetched), batch))
    }

    /// One GraphQL batch of pending refs, recorded in one transaction.
    /// Returns false when interrupted.
    fn batch(&mut self, numbers: &[u32]) -> Result<bool> {
        let (fetched, batch) = match self.ask(numbers)? {
            Asked::Stopped => return Ok(false),
            Asked::Again => return Ok(true),
            Asked::Answer(fetched, batch) => (fetched, batch),
        };
        let repo = self.repo.clone();
        let requests = self.summary.requests;
        let now = unix_now();
        let tries = &self.tries;
        let mentioned = &self.mentioned;
        let (issues, prs, failed, deferred, confirm) = self.store.write(|w| {
            let (mut issues, mut prs, mut failed) = (0, 0, 0);
            let mut deferred = Vec::new();
            let mut confirm = Vec::new();
            for (number, node) in &batch.results {
                match node {
                    Node::Found(item) => {
                        // A number that answers with another: the issue moved.
                        let moved_to = (item.number != *number).then_some(item.url.as_str());
                        w.store_item(*number, item, None)?;
                        if w.resolve_ref(&repo, *number, kind_of(item), moved_to)? {
                            if item.is_pr() {
                                prs += 1;
                            } else {
                                issues += 1;
                            }
                        }
                    }
                    // A commit that names it says it existed: it may have
                    // moved, which only REST tells.
                    Node::NotFound if mentioned.contains(number) => confirm.push(*number),
                    Node::NotFound => {
                        if w.settle_ref(&repo, *number, "not found (GraphQL NOT_FOUND)")? {
                            failed += 1;
                        }
                    }
                    Node::Failed(why) => {
                        let tried = tries.get(number).copied().unwrap_or(0);
                        let retry = retry_delay(tried);
                        w.defer_ref(&repo, *number, why, now + retry.as_secs() as i64)?;
                        deferred.push((*number, why.clone(), retry));
                    }
                }
            }
            if let Some(rate) = fetched.rate {
                w.set_rate(&repo, to_rate(rate))?;
            } else if let Some(points) = batch.rate {
                w.set_rate(
                    &repo,
                    Rate {
                        remaining: points.remaining,
                        limit: points.limit,
                        reset: unix_secs(points.reset),
                    },
                )?;
            }
            w.count(self.run, requests, issues + prs, failed, None)?;
            Ok((issues, prs, failed, deferred, confirm))
        })?;
        for (number, node) in &batch.results {
            if !matches!(node, Node::Failed(_)) {
                self.pending.remove(number);
            }
        }
        for number in confirm {
            self.pending.insert(number);
            self.confirm.insert(number);
        }
        for (number, why, retry) in &deferred {
            *self.tries.entry(*number).or_default() += 1;
            self.not_before.insert(*number, SystemTime::now() + *retry);
            self.progress.log(&format!("#{number}: {why} (will retry)"));
        }
        self.summary.issues += issues;
        self.summary.prs += prs;
        self.summary.failed += failed;
        self.progress.set(self.summary.settled());
        if deferred.len() == batch.results.len() && !deferred.is_empty() {
            // Nothing in the batch came through: that is the forge failing.
            self.failures_in_a_row += 1;
            self.last_failure = deferred.first().map(|(_, why, _)| why.clone());
            Ok(true)
        } else {
            self.succeeded()?;
            Ok(true)
        }
    }

    /// The GraphQL versions of `numbers` (with their discussion), for a
    /// refresh page whose changed items REST listed. What cannot be had
    /// (REST only, the forge failing) is simply absent. `None` when a stop
    /// came first.
    fn details(&mut self, numbers: &[u32]) -> Result<Option<HashMap<u32, Item>>> {
        let mut found = HashMap::new();
        let mut rest: &[u32] = numbers;
        while !rest.is_empty() {
            let Some(size) = self.batch else { break };
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                break;
            }
            let chunk = &rest[..size.min(rest.len())];
            match self.ask(chunk)? {
                Asked::Stopped => return Ok(None),
                Asked::Again => continue,
                Asked::Answer(_, batch) => {
                    for (number, node) in batch.results {
                        if let Node::Found(item) = node {
                            found.insert(number, *item);
                        }
                    }
                    self.succeeded()?;
                    rest = &rest[chunk.len()..];
                }
            }
        }
        Ok(Some(found))
    }

    /// One ref by itself. Returns false when interrupted.
    fn single(&mut self, number: u32) -> Result<bool> {
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
                    fetched.rate,
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
                // Kept before the next request: a stop or a kill before the
                // second hop does not cost the first one again.
                let repo = self.repo.clone();
                self.store
                    .write(|w| w.note_move(&repo, number, to.as_str()))?;
                return self.follow_move(number, &to);
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
                    fetched.rate,
                )?;
            }
            Answer::Gone => {
                self.record(
                    number,
                    Outcome::Settled {
                        why: "deleted (410)",
                    },
                    fetched.rate,
                )?;
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
        Ok(true)
    }

    /// The second hop of a transfer: the item where it went now. Returns
    /// false when interrupted.
    fn follow_move(&mut self, number: u32, to: &Url) -> Result<bool> {
        let Some(moved) = self.send(to, None)? else {
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
                        moved.rate,
                    )?;
                }
                Err(why) => {
                    self.common(&Answer::Transient(why), Some(number))?;
                }
            },
            Answer::NotFound | Answer::Gone => {
                self.record(
                    number,
                    Outcome::Settled {
                        why: "moved, and gone where it went",
                    },
                    moved.rate,
                )?;
            }
            other => {
                let why = format!("unexpected answer after a transfer: {other:?}");
                self.common(&Answer::Transient(why), Some(number))?;
            }
        }
        Ok(true)
    }

    /// Records the outcome of one ref's request in one transaction, with the
    /// budget the answer announced and the run's counters.
    /// Returns whether an item was new or changed (an event was appended).
    fn record(
        &mut self,
        number: u32,
        outcome: Outcome<'_>,
        rate: Option<RateInfo>,
    ) -> Result<bool> {
        let repo = self.repo.clone();
        let requests = self.summary.requests;
        let (settled, changed) = self.store.write(|w| {
            let (settled, changed) = match &outcome {
                Outcome::Found {
                    item,
                    etag,
                    moved_to,
                } => {
                    let changed = w.store_item(number, item, *etag)?;
                    (
                        w.resolve_ref(&repo, number, kind_of(item), *moved_to)?,
                        changed,
                    )
                }
                Outcome::Unchanged { kind } => (w.resolve_ref(&repo, number, kind, None)?, false),
                Outcome::Settled { why } => (w.settle_ref(&repo, number, why)?, false),
            };
            if let Some(rate) = rate {
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
            Ok((settled, changed))
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
        self.succeeded()?;
        Ok(changed)
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
    /// to tell merged from closed. Returns false when interrupted. An answer
    /// that does not decode is a failure like any other: asked again.
    fn complete(&mut self, item: &mut Item) -> Result<bool> {
        if self.forge.kind() == ForgeKind::Gitea {
            return self.discussion(item);
        }
        if !item.merged_unknown() {
            return Ok(true);
        }
        if item.open {
            item.kind = Kind::Pr {
                merged_at: MergedAt::Known(None),
            };
            return Ok(true);
        }
        let url = self.forge.pull_url(item.number);
        let what = format!("tell whether PR #{} was merged", item.number);
        let merged_at = self.ask_until_answered(&url, &what, |answer, body| match answer {
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

    /// Gitea's REST is all there is: an item's comments and a PR's reviews
    /// take a request each. Returns false when interrupted.
    fn discussion(&mut self, item: &mut Item) -> Result<bool> {
        let mut details = Details {
            comment_count: item.listed_comments.unwrap_or(0),
            comments: Vec::new(),
            approvals: None,
            linked_issues: None,
        };
        if item.listed_comments != Some(0) {
            let url = self.forge.comments_url(item.number);
            let what = format!("read the comments of #{}", item.number);
            let Some(comments) =
                self.ask_until_answered(&url, &what, |answer, body| match answer {
                    Answer::Ok => crate::forge::comments_from_gitea(body),
                    _ => Ok(Vec::new()),
                })?
            else {
                return Ok(false);
            };
            details.comment_count = details.comment_count.max(comments.len() as u64);
            details.comments = comments;
        }
        if item.is_pr() {
            let url = self.forge.reviews_url(item.number);
            let what = format!("read the reviews of PR #{}", item.number);
            let Some(approvals) =
                self.ask_until_answered(&url, &what, |answer, body| match answer {
                    Answer::Ok => crate::forge::approvals_from_gitea(body),
                    _ => Ok(0),
                })?
            else {
                return Ok(false);
            };
            details.approvals = Some(approvals);
        }
        item.details = Some(details);
        Ok(true)
    }

    /// Asks `url` until an answer comes that `decode` accepts: limits and
    /// failures are dealt with as anywhere, a body that does not decode is a
    /// failure too. `None` when a stop came first; an error after the forge
    /// failed too often in a row (`what` says what could not be done).
    fn ask_until_answered<T>(
        &mut self,
        url: &Url,
        what: &str,
        decode: impl Fn(&Answer, &[u8]) -> Result<T, String>,
    ) -> Result<Option<T>> {
        loop {
            let Some(fetched) = self.send(url, None)? else {
                return Ok(None);
            };
            let dealt_with = match self.common(&fetched.answer, None)? {
                true => true,
                false => match decode(&fetched.answer, &fetched.body) {
                    Ok(value) => {
                        self.succeeded()?;
                        return Ok(Some(value));
                    }
                    Err(why) => self.common(&Answer::Transient(why), None)?,
                },
            };
            if dealt_with && self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                bail!("cannot {what}: the forge keeps failing");
            }
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
/// (about `per_page` numbers each) holds more than `d` pending refs.
pub fn listing_pays(pending: &BTreeSet<u32>, floor: u32, per_page: u32) -> bool {
    let per_page = u64::from(per_page);
    pending
        .range(..floor)
        .rev()
        .enumerate()
        .any(|(i, &n)| (i as u64 + 1) > u64::from(floor - n).div_ceil(per_page).max(1))
}

/// An item that needs requests of its own after its answer: a closed PR
/// whose answer did not say whether it was merged; on Gitea, any PR (its
/// reviews) and any item with comments.
fn needs_completion(item: &Item, kind: ForgeKind) -> bool {
    match kind {
        ForgeKind::Gitea => item.is_pr() || item.listed_comments != Some(0),
        _ => item.merged_unknown(),
    }
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

/// How long a ref that failed for now waits after `tries` earlier tries.
fn retry_delay(tries: u32) -> Duration {
    RETRY_BASE.saturating_mul(1 << tries.min(6))
}

fn unix_secs(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

    fn set(numbers: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        numbers.into_iter().collect()
    }

    #[test]
    fn dense_ranges_are_listed() {
        assert!(listing_pays(&set(1..=17_488), 17_489, 100));
        // 51 per 100 numbers, like a real project's commit refs.
        assert!(listing_pays(&set((1..=17_385).step_by(2)), 17_386, 100));
    }

    #[test]
    fn sparse_refs_are_asked_one_by_one() {
        assert!(!listing_pays(&set([5_000]), 17_489, 100));
        assert!(!listing_pays(&set([17_000, 12_000, 400]), 17_489, 100));
        // One ref a page: listing costs as much as asking.
        assert!(!listing_pays(&set((1..=10_000).step_by(100)), 10_001, 100));
        assert!(!listing_pays(&set([]), 10, 100));
    }

    #[test]
    fn a_dense_pocket_deep_down_still_pays() {
        let mut pending = set([9_000]);
        pending.extend(1..=500);
        assert!(listing_pays(&pending, 9_001, 100));
        // Below the floor only: what is above it was listed already.
        assert!(!listing_pays(&set(9_500..=9_900), 9_001, 100));
    }
}
