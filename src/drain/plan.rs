//! Planning, without I/O: which pending refs to ask for next, when refs that
//! failed for now may be asked again, and whether following the listing pays.
//! The ways of asking turn these answers into requests.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::Candidate;

/// Tries of one ref within one run.
pub const MAX_TRIES_PER_RUN: u32 = 3;
/// A ref that failed for now is asked again after this, doubling per try.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// Waiting longer than this for a deferred ref ends the run instead.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10 * 60);

/// The pending refs of one run, in the order they are asked for, with what
/// this run learned about each: tries, and not before when.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Pending numbers (a cache of the database, updated as outcomes land).
    pending: BTreeSet<u32>,
    /// Newest mentioning commit first, then the range from the top down.
    order: Vec<u32>,
    /// Refs some commit mentions (the others come from the number range).
    mentioned: BTreeSet<u32>,
    tries: HashMap<u32, u32>,
    not_before: HashMap<u32, SystemTime>,
    /// The first retry's wait; doubles per try.
    retry_base: Duration,
}

/// What the backlog offers next.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// These refs, at most as many as asked for, in order.
    Ask(Vec<u32>),
    /// Nothing before then: every ref left failed for now.
    Wait(SystemTime),
    /// Nothing left that can be asked in this run.
    Done,
}

impl Backlog {
    /// The backlog as the database has it; `now` in unix seconds decides
    /// which earlier deferrals still hold.
    pub fn new(mut candidates: Vec<Candidate>, now: i64) -> Self {
        candidates.sort_unstable_by_key(|c| {
            (
                std::cmp::Reverse(c.commit_time.is_some()),
                std::cmp::Reverse(c.commit_time),
                std::cmp::Reverse(c.number),
            )
        });
        let not_before = candidates
            .iter()
            .filter_map(|c| {
                let at = c.next_attempt?;
                (at > now).then(|| {
                    let at = UNIX_EPOCH
                        .checked_add(Duration::from_secs(at as u64))
                        .unwrap_or(UNIX_EPOCH);
                    (c.number, at)
                })
            })
            .collect();
        Backlog {
            pending: candidates.iter().map(|c| c.number).collect(),
            mentioned: candidates
                .iter()
                .filter(|c| c.commit_time.is_some())
                .map(|c| c.number)
                .collect(),
            order: candidates.iter().map(|c| c.number).collect(),
            tries: HashMap::new(),
            not_before,
            retry_base: RETRY_BASE,
        }
    }

    /// The same backlog with another first retry wait (tests shorten it).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Refs still pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing is pending any more.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The pending numbers, ascending: what the listing plans over.
    pub fn pending(&self) -> &BTreeSet<u32> {
        &self.pending
    }

    /// Whether `number` is still pending.
    pub fn contains(&self, number: u32) -> bool {
        self.pending.contains(&number)
    }

    /// Whether a commit names this ref, which says it existed.
    pub fn is_mentioned(&self, number: u32) -> bool {
        self.mentioned.contains(&number)
    }

    /// The ref is settled (or recorded): no longer pending.
    pub fn settle(&mut self, number: u32) {
        self.pending.remove(&number);
    }

    /// The ref is pending again (to be asked another way).
    pub fn reopen(&mut self, number: u32) {
        self.pending.insert(number);
    }

    /// How long the ref waits if it fails for now again.
    pub fn next_retry(&self, number: u32) -> Duration {
        retry_delay(
            self.retry_base,
            self.tries.get(&number).copied().unwrap_or(0),
        )
    }

    /// The ref failed for now: one try more, and not before `at`.
    pub fn defer(&mut self, number: u32, at: SystemTime) {
        *self.tries.entry(number).or_default() += 1;
        self.not_before.insert(number, at);
    }

    /// Up to `room` refs that may be asked for at `now`, in order; else when
    /// the soonest deferred one may, if that is worth waiting for.
    pub fn choose(&self, room: usize, now: SystemTime) -> Choice {
        let mut soonest: Option<SystemTime> = None;
        let mut chosen = Vec::new();
        for &number in &self.order {
            if !self.pending.contains(&number)
                || self.tries.get(&number).copied().unwrap_or(0) >= MAX_TRIES_PER_RUN
            {
                continue;
            }
            match self.not_before.get(&number) {
                Some(&at) if at > now => soonest = Some(soonest.map_or(at, |s| s.min(at))),
                _ => {
                    chosen.push(number);
                    if chosen.len() >= room {
                        break;
                    }
                }
            }
        }
        if !chosen.is_empty() {
            return Choice::Ask(chosen);
        }
        match soonest {
            Some(at) if at.duration_since(now).unwrap_or_default() <= MAX_RETRY_WAIT => {
                Choice::Wait(at)
            }
            _ => Choice::Done,
        }
    }
}

/// How long a ref that failed for now waits after `tries` earlier tries.
pub fn retry_delay(base: Duration, tries: u32) -> Duration {
    base.saturating_mul(1 << tries.min(6))
}

/// Where the listing stands, as the database keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListingState<'a> {
    /// Numbers above this were covered by a finished listing.
    pub covered: Option<u32>,
    /// The listing under way: its next page.
    pub next: Option<&'a str>,
    /// The lowest number the listing under way has reached.
    pub floor: Option<u32>,
    /// The newest number the forge has (discovery's range).
    pub newest: Option<u32>,
}

/// What to do about the listing.
#[derive(Debug, PartialEq, Eq)]
pub enum Listing<'a> {
    /// Follow the listing under way to this page.
    Follow(&'a str),
    /// Start a new listing from the top, which is `top`.
    Start {
        /// The newest number known: the first page starts there.
        top: u32,
    },
    /// Ask one by one.
    No,
}

/// The listing page worth asking for next, if any. A listing under way goes
/// on while the pending refs below it make it pay; a new one starts from the
/// top when the refs newer than the last finished listing do. Refs a
/// finished listing passed without returning are not listed again: they are
/// gaps (deleted, transferred) for single requests.
pub fn listing<'a>(pending: &BTreeSet<u32>, state: ListingState<'a>, per_page: u32) -> Listing<'a> {
    let covered = state.covered.unwrap_or(0);
    if let Some(next) = state.next {
        let floor = state.floor.unwrap_or(u32::MAX);
        let below = pending_between(pending, covered, floor);
        return match listing_pays(&below, floor, per_page) {
            true => Listing::Follow(next),
            false => Listing::No,
        };
    }
    let top = state
        .newest
        .unwrap_or(0)
        .max(pending.last().copied().unwrap_or(0));
    let newer = pending_between(pending, covered, u32::MAX);
    match listing_pays(&newer, top.saturating_add(1), per_page) {
        true => Listing::Start { top },
        false => Listing::No,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(numbers: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        numbers.into_iter().collect()
    }

    fn candidate(number: u32, commit_time: Option<i64>, next_attempt: Option<i64>) -> Candidate {
        Candidate {
            number,
            commit_time,
            next_attempt,
        }
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

    #[test]
    fn a_new_listing_starts_at_the_top_of_the_range() {
        let pending = set(1..=300);
        let state = ListingState {
            newest: Some(400),
            ..Default::default()
        };
        assert_eq!(listing(&pending, state, 100), Listing::Start { top: 400 });
        // What a finished listing covered is not listed again.
        let covered = ListingState {
            covered: Some(300),
            ..state
        };
        assert_eq!(listing(&pending, covered, 100), Listing::No);
    }

    #[test]
    fn a_listing_under_way_goes_on_only_while_it_pays() {
        let state = ListingState {
            next: Some("https://api.example/next"),
            floor: Some(201),
            ..Default::default()
        };
        assert_eq!(
            listing(&set(1..=200), state, 100),
            Listing::Follow("https://api.example/next")
        );
        // Above the floor was listed; below it, two refs far apart.
        assert_eq!(listing(&set([1, 100, 250, 260]), state, 100), Listing::No);
    }

    #[test]
    fn mentioned_refs_come_first_newest_commit_first_then_the_range_top_down() {
        let backlog = Backlog::new(
            vec![
                candidate(1, None, None),
                candidate(7, Some(100), None),
                candidate(3, None, None),
                candidate(5, Some(200), None),
            ],
            0,
        );
        assert_eq!(
            backlog.choose(10, SystemTime::now()),
            Choice::Ask(vec![5, 7, 3, 1])
        );
        assert_eq!(
            backlog.choose(2, SystemTime::now()),
            Choice::Ask(vec![5, 7])
        );
        assert!(backlog.is_mentioned(7) && !backlog.is_mentioned(3));
    }

    #[test]
    fn a_deferred_ref_waits_then_gives_up_after_its_tries() {
        let now = SystemTime::now();
        let mut backlog = Backlog::new(vec![candidate(9, Some(1), None)], 0);
        assert_eq!(backlog.next_retry(9), RETRY_BASE);
        backlog.defer(9, now + RETRY_BASE);
        assert_eq!(backlog.choose(1, now), Choice::Wait(now + RETRY_BASE));
        assert_eq!(
            backlog.choose(1, now + RETRY_BASE),
            Choice::Ask(vec![9]),
            "asked again once its time has come"
        );
        assert_eq!(backlog.next_retry(9), RETRY_BASE * 2, "doubles per try");
        let short = Backlog::new(vec![candidate(9, None, None)], 0)
            .with_retry_base(Duration::from_millis(100));
        assert_eq!(short.next_retry(9), Duration::from_millis(100));
        backlog.defer(9, now);
        backlog.defer(9, now);
        assert_eq!(backlog.choose(1, now), Choice::Done, "three tries a run");
    }

    #[test]
    fn a_wait_too_long_ends_the_run_and_earlier_deferrals_hold() {
        let now = SystemTime::now();
        let mut backlog = Backlog::new(vec![candidate(4, None, None)], 0);
        backlog.defer(4, now + MAX_RETRY_WAIT + Duration::from_secs(1));
        assert_eq!(backlog.choose(1, now), Choice::Done);
        // A deferral kept in the database holds across runs.
        let unix_now = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let backlog = Backlog::new(vec![candidate(4, None, Some(unix_now + 60))], unix_now);
        assert!(matches!(backlog.choose(1, now), Choice::Wait(_)));
        let settled_before = Backlog::new(vec![candidate(4, None, Some(unix_now - 1))], unix_now);
        assert_eq!(settled_before.choose(1, now), Choice::Ask(vec![4]));
    }

    #[test]
    fn settled_refs_are_not_offered_and_reopened_ones_are() {
        let mut backlog = Backlog::new(vec![candidate(1, None, None), candidate(2, None, None)], 0);
        backlog.settle(2);
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog.choose(5, SystemTime::now()), Choice::Ask(vec![1]));
        backlog.reopen(2);
        assert_eq!(
            backlog.choose(5, SystemTime::now()),
            Choice::Ask(vec![2, 1])
        );
        backlog.settle(1);
        backlog.settle(2);
        assert!(backlog.is_empty());
        assert_eq!(backlog.choose(5, SystemTime::now()), Choice::Done);
    }
}
