//! The drain: plan the next request, pass the pace ledger, send it, record
//! the outcome in one transaction, and stop when the work, the limit, a
//! signal or a failing forge says so.
//!
//! The core here knows no forge. It runs a `Way` of asking until the
//! backlog is done, then the refresh; what a forge's items need after a REST
//! answer is its `Completion`:
//!
//! | file | what it owns |
//! | --- | --- |
//! | `plan.rs` | the pure choices: which refs next, retries, whether listing pays |
//! | `exchange.rs` | one request through the pace ledger; limits, failures and backoff |
//! | `record.rs` | every outcome's transaction |
//! | `rest.rs` | REST: the newest-first listing, single GETs, 301s; GitHub's merge state |
//! | `graphql.rs` | GraphQL batches, their size, the REST check of `NOT_FOUND`s |
//! | `gitea.rs` | Gitea's discussion: comments and reviews, a request each |
//! | `refresh.rs` | what changed on the forge since the mark |

mod exchange;
mod gitea;
mod graphql;
pub mod plan;
mod record;
mod refresh;
mod rest;
mod summary;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

pub use self::summary::{End, Summary, print_summary};
use crate::forge::github::GitHub;
use crate::forge::kind::ForgeKind;
use crate::item::Item;
use crate::pace::Pace;
use crate::report::{Progress, count};
use crate::signals;
use crate::store::{RunState, Store};
use plan::Backlog;

/// Transient failures in a row after which the drain stops and leaves the
/// rest pending for a later run.
const MAX_FAILURES_IN_A_ROW: u32 = 5;

/// How one drain runs, as `--limit`, `--resume`, `--sync`, `--full` and
/// `--api` decided.
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
    /// A bounded drain (`--limit`) stays bounded.
    No,
    /// What changed since the high-water mark.
    Changed,
    /// Everything again (`--full`), still paced.
    Full,
}

/// One way of asking the forge about pending refs: REST or GraphQL.
trait Way {
    /// What status calls it (`rest`, `graphql`).
    fn api(&self) -> &'static str;
    /// Plans, sends and records the next request for pending refs (the
    /// backlog is not empty). Limits and failures are dealt with inside.
    fn step(&mut self, drain: &mut Drain<'_>) -> Result<Flow>;
    /// Makes a refresh page's changed items richer before they are recorded
    /// (GraphQL: their discussion). False when a stop came first.
    fn enrich(&mut self, _drain: &mut Drain<'_>, _items: &mut [Item]) -> Result<bool> {
        Ok(true)
    }
    /// Whether the run counts points spent (GraphQL's `rateLimit.cost`).
    fn counts_points(&self) -> bool {
        false
    }
}

/// What one step of a way of asking came to.
enum Flow {
    /// Asked, and the answer recorded or dealt with: plan the next.
    Next,
    /// A stop was asked for.
    Stopped,
    /// Nothing can be asked before then.
    Wait(SystemTime),
    /// Nothing left that can be asked now.
    Done,
    /// This way cannot go on (a host without GraphQL): go on with that one.
    Switch(Box<dyn Way>),
}

/// What a forge's items need after a REST answer, before they are recorded.
trait Completion {
    /// Whether the item needs requests of its own.
    fn needs(&self, item: &Item) -> bool;
    /// Those requests. False when a stop came first; an error after the
    /// forge failed too often in a row.
    fn complete(&self, drain: &mut Drain<'_>, item: &mut Item) -> Result<bool>;
}

/// The way of asking and the completion for a forge: the one place that
/// tells forges apart.
fn ways(kind: ForgeKind, graphql: bool) -> (Box<dyn Way>, &'static dyn Completion) {
    let completion: &'static dyn Completion = match kind {
        ForgeKind::Github | ForgeKind::GithubEnterprise => &rest::MergeState,
        ForgeKind::Gitea => &gitea::Discussion,
    };
    let way: Box<dyn Way> = match graphql {
        true => Box::new(graphql::Batches::new()),
        false => Box::new(rest::Rest),
    };
    (way, completion)
}

/// The drain's state for one run: the connection, the backlog, the counters.
struct Drain<'a> {
    store: &'a mut Store,
    forge: &'a GitHub,
    pace: &'a Pace,
    progress: &'a mut Progress,
    completion: &'static dyn Completion,
    repo: String,
    run: i64,
    limit: Option<u64>,
    summary: Summary,
    backlog: Backlog,
    failures_in_a_row: u32,
    last_failure: Option<String>,
    /// Connections that could not be made, in a row (see `unreachable_tries`).
    unreachable_in_a_row: u32,
    /// In the background (`--sync`), where nobody waits for the answer.
    background: bool,
    /// Refs one request settles, as the way of asking last said (a GraphQL
    /// batch's size): how the planned work is counted in requests.
    refs_per_request: u64,
    /// Requests other drains of this process still plan for the same API
    /// host (`--all`): the budget is spent for all of them.
    others_planned: u64,
    /// Whether the log was told that a token would be faster.
    told_of_token: bool,
    /// The repository was seen to exist, so a 404 is about the number.
    repo_confirmed: bool,
    /// A secondary limit was met; the next success lifts its backoff.
    limited: bool,
}

/// Drains `repo`'s backlog through `forge`, every request passing `pace`,
/// and records the run (`forge_runs`) from its start to how it ended. A
/// stop, the limit or a forge that keeps failing end it with a [`Summary`]
/// that says so; an error is recorded as a failed run, then returned.
pub fn drain(
    store: &mut Store,
    forge: &GitHub,
    pace: &Pace,
    progress: &mut Progress,
    repo: &str,
    options: Options,
) -> Result<Summary> {
    let mut session = Session::start(store, forge, pace, progress, repo, options)?;
    loop {
        match session.turn() {
            Turn::Again => {}
            Turn::Wait(until) => {
                if !sleep_until(until) {
                    session.interrupt();
                }
            }
            Turn::Ended => return session.finish(),
        }
    }
}

/// One repository's drain, a request at a time: [`drain`] takes all its
/// turns in a row; `--all` takes turns with other repositories'.
pub struct Session<'a> {
    drain: Drain<'a>,
    way: Box<dyn Way>,
    refresh: Refresh,
    /// How it ended, once it has.
    outcome: Option<Result<End>>,
}

/// What one [`Session::turn`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// A request was sent (or the way of asking changed): there is more.
    Again,
    /// Nothing can be asked before then (refs that failed for now); the
    /// turn may be given to another repository meanwhile.
    Wait(SystemTime),
    /// The drain has ended (and its refresh, if it has one).
    Ended,
}

impl<'a> Session<'a> {
    /// Starts the run (`forge_runs` says it runs from now on) and plans the
    /// backlog; nothing is sent yet.
    pub fn start(
        store: &'a mut Store,
        forge: &'a GitHub,
        pace: &'a Pace,
        progress: &'a mut Progress,
        repo: &str,
        options: Options,
    ) -> Result<Self> {
        let run = store.start_run(repo, std::process::id(), options.mode)?;
        let backlog =
            Backlog::new(store.candidates(repo)?, unix_now()).with_retry_base(retry_base());
        let pending = backlog.len() as u64;
        progress.start(options.limit.unwrap_or(pending).min(pending));
        let (way, completion) = ways(forge.kind(), options.graphql);
        let drain = Drain {
            store,
            forge,
            pace,
            progress,
            completion,
            repo: repo.to_owned(),
            run,
            limit: options.limit,
            summary: Summary::default(),
            backlog,
            failures_in_a_row: 0,
            last_failure: None,
            unreachable_in_a_row: 0,
            background: options.mode == "sync",
            refs_per_request: 1,
            others_planned: 0,
            told_of_token: false,
            repo_confirmed: false,
            limited: false,
        };
        let api = way.api();
        let written = drain
            .store
            .write(|w| w.set_api(repo, api, options.api_note.as_deref()));
        let mut session = Self {
            drain,
            way,
            refresh: options.refresh,
            outcome: None,
        };
        if let Err(e) = written {
            // The run is recorded as failed, as any later error would be.
            session.outcome = Some(Err(e));
        } else if session.way.counts_points() {
            session.drain.summary.points = Some(0);
        }
        Ok(session)
    }

    /// One request's worth of the drain: the next step of its way of
    /// asking, or, once the backlog is done, its whole refresh.
    pub fn turn(&mut self) -> Turn {
        if self.outcome.is_some() {
            return Turn::Ended;
        }
        let end = match self.drain.tick(&mut self.way) {
            Ok(Tick::Next) => return Turn::Again,
            Ok(Tick::Wait(until)) => {
                let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
                self.drain.progress.log(&format!(
                    "waiting {} to retry refs that failed for now",
                    humantime::format_duration(round_secs(wait))
                ));
                return Turn::Wait(until);
            }
            Ok(Tick::End(end)) => end,
            Err(e) => {
                self.outcome = Some(Err(e));
                return Turn::Ended;
            }
        };
        self.outcome = Some(match (end, self.refresh) {
            (End::Done, Refresh::Changed | Refresh::Full) => self
                .drain
                .refresh(self.way.as_mut(), self.refresh == Refresh::Full),
            (end, _) => Ok(end),
        });
        Turn::Ended
    }

    /// Ends the drain as interrupted (a stop came while it waited).
    pub fn interrupt(&mut self) {
        self.outcome.get_or_insert(Ok(End::Interrupted));
    }

    /// A line in the drain's progress (its log, with `--sync`).
    pub fn log(&mut self, message: &str) {
        self.drain.progress.log(message);
    }

    /// How often `patina.db` was found deleted or replaced, and followed.
    pub fn followed(&self) -> u32 {
        self.drain.store.followed()
    }

    /// Requests the drain still means to send.
    pub fn planned_requests(&self) -> u64 {
        match self.outcome {
            Some(_) => 0,
            None => self.drain.planned_requests(),
        }
    }

    /// Requests that other drains to the same API host still mean to send:
    /// the account's budget is theirs too.
    pub fn set_others_planned(&mut self, requests: u64) {
        self.drain.others_planned = requests;
    }

    /// Records how the run ended and counts what is left; the run's
    /// [`Summary`], or the error that ended it (recorded as a failed run).
    pub fn finish(self) -> Result<Summary> {
        let Session { drain, outcome, .. } = self;
        let outcome = outcome.unwrap_or(Ok(End::Interrupted));
        let (state, error) = match &outcome {
            Ok(End::Done | End::LimitReached) => (RunState::Finished, None),
            Ok(End::Interrupted) => (RunState::Interrupted, None),
            Ok(End::GaveUp(why)) => (RunState::Failed, Some(why.clone())),
            Err(e) => (RunState::Failed, Some(format!("{e:#}"))),
        };
        drain.store.finish_run(drain.run, state, error.as_deref())?;
        drain.progress.finish();
        let mut summary = drain.summary;
        summary.pending = drain.store.pending(&drain.repo)?;
        summary.end = Some(outcome?);
        Ok(summary)
    }
}

/// What one tick of the drain's loop came to.
enum Tick {
    Next,
    Wait(SystemTime),
    End(End),
}

impl Drain<'_> {
    /// One pass of the drain's loop: the checks that may end it, then one
    /// step of the way of asking.
    fn tick(&mut self, way: &mut Box<dyn Way>) -> Result<Tick> {
        if signals::stop_requested() {
            return Ok(Tick::End(End::Interrupted));
        }
        if self.budget() == 0 {
            return Ok(Tick::End(End::LimitReached));
        }
        if let Some(why) = self.given_up("") {
            return Ok(Tick::End(End::GaveUp(format!(
                "{why}; {} left pending for the next run",
                count(self.backlog.len() as u64, "ref", "refs")
            ))));
        }
        if self.backlog.is_empty() {
            return Ok(Tick::End(End::Done));
        }
        Ok(match way.step(self)? {
            Flow::Next => Tick::Next,
            Flow::Stopped => Tick::End(End::Interrupted),
            Flow::Wait(until) => Tick::Wait(until),
            Flow::Done => Tick::End(End::Done),
            Flow::Switch(next) => {
                *way = next;
                Tick::Next
            }
        })
    }

    /// Refs this run may still settle.
    fn budget(&self) -> u64 {
        match self.limit {
            Some(limit) => limit.saturating_sub(self.summary.settled()),
            None => u64::MAX,
        }
    }

    /// Requests this run still means to send: the refs it may still settle,
    /// in requests of the current size.
    fn planned_requests(&self) -> u64 {
        let refs = (self.backlog.len() as u64).min(self.budget());
        refs.div_ceil(self.refs_per_request.max(1))
    }

    /// Gives the ledger what an answer said of the budget; says once in
    /// the log when a token would have made it faster.
    fn spend(&mut self, budget: crate::pace::Budget) -> Result<()> {
        let planned = self.planned_requests() + self.others_planned;
        let spend = self.pace.budget(budget, planned)?;
        if let crate::pace::Spend::Spread(spacing) = spend
            && !self.forge.has_token()
            && !self.told_of_token
        {
            self.told_of_token = true;
            self.progress.log(&format!(
                "without a token the forge allows {} requests an hour: one every {} for \
                 this backlog; a token ({} or `gh auth login`) would make it much faster",
                budget.limit,
                humantime::format_duration(round_secs(spacing)),
                self.forge.kind().token_vars()[0]
            ));
        }
        Ok(())
    }

    /// How many connections in a row may fail before the run ends: on a
    /// dead network a foreground run answers within seconds (1 s and 2 s
    /// between the three tries) and a background one within a minute, so
    /// that timers do not pile up.
    fn unreachable_tries(&self) -> u32 {
        if self.background { 4 } else { 3 }
    }

    /// Why to stop, once the forge failed too often in a row (`doing`
    /// says what was under way, as " while …").
    fn given_up(&self, doing: &str) -> Option<String> {
        if self.unreachable_in_a_row >= self.unreachable_tries() {
            let cause = self.last_failure.as_deref().unwrap_or("unknown");
            let cause = cause.strip_prefix("cannot connect: ").unwrap_or(cause);
            return Some(format!(
                "cannot reach {} after {} tries ({cause}){doing}; nothing is lost",
                self.forge.host_key(),
                self.unreachable_in_a_row
            ));
        }
        (self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW).then(|| {
            format!(
                "the forge failed {MAX_FAILURES_IN_A_ROW} times in a row{doing} (last: {})",
                self.last_failure.as_deref().unwrap_or("unknown")
            )
        })
    }

    /// What the backlog offers for `room` refs, as the next step.
    fn choose(&self, room: usize) -> plan::Choice {
        let room = room.min(usize::try_from(self.budget()).unwrap_or(usize::MAX));
        self.backlog.choose(room, SystemTime::now())
    }
}

/// The first wait before a ref that failed for now is asked again. Debug
/// builds (the tests' binary) take `PATINA_FORGE_TEST_RETRY_BASE` (`250ms`)
/// so that a test of retries does not pay half a minute each; a release
/// build has no such knob.
fn retry_base() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(base) = std::env::var("PATINA_FORGE_TEST_RETRY_BASE")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
    {
        return base;
    }
    plan::RETRY_BASE
}

fn unix_secs(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_now() -> i64 {
    unix_secs(SystemTime::now())
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// Sleeps until `until` in short naps; false when a stop was asked for.
pub(crate) fn sleep_until(until: SystemTime) -> bool {
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
