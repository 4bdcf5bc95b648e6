//! The pace ledger: one small file per API host under `$PATINA_HOME/run/`,
//! shared under `flock` by every patina-forge process of the user, holding
//! the earliest time the next request to that host may leave.
//!
//! Each request reserves its slot atomically (read, compare, write under the
//! lock), so N processes share one spacing instead of multiplying the rate.
//! Server signals (`retry-after`, an exhausted budget, secondary limits) push
//! the slot later for everyone, and nothing ever pulls it earlier: a wait is
//! never cut short.
//!
//! The budget an answer reports is spent at the `--delay` floor while what
//! is left above the reserve (the part kept for the user's other tools)
//! covers the work this process has planned; only when it does not is what
//! is left spread over the time to the reset, and at the reserve nothing is
//! sent until the reset.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::home::PatinaHome;
use crate::signals;

/// GitHub's advice for a secondary limit without `retry-after`: at least a
/// minute, longer when it keeps happening.
const SECONDARY_BASE: Duration = Duration::from_secs(60);
const SECONDARY_MAX: Duration = Duration::from_secs(60 * 60);

/// Waits longer than this are worth a line in the log.
pub const NOTABLE_WAIT: Duration = Duration::from_secs(3);

/// How long one sleep lasts before the stop flag and the ledger are checked
/// again (another process may have pushed the slot further out).
const NAP: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    /// Unix milliseconds before which no request may leave.
    next_at_ms: u64,
    /// Why the slot is where it is, when a server signal put it there.
    #[serde(default)]
    reason: Option<String>,
    /// Secondary limits in a row without a success in between.
    #[serde(default)]
    strikes: u32,
}

/// `host[:port]` of `url`: the key of its host's ledger (the port only when
/// it is not the scheme's default).
pub fn host_key(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("unknown");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The part of an account's budget kept for the user's other tools that
/// share it (gh, CI, editors): a count in the API's units, or a share of
/// the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// This many requests (REST) or points (GraphQL).
    Count(u64),
    /// This percentage of the limit.
    Percent(u8),
}

impl Reserve {
    /// A tenth of the account's budget.
    pub const DEFAULT: Reserve = Reserve::Percent(10);

    /// `10%` or `500`; a share of at most 90%, so that something is left.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not a reserve: give a count (500) or a percentage (10%)");
        match text.strip_suffix('%') {
            Some(share) => match share.trim().parse::<u8>() {
                Ok(p) if p <= 90 => Ok(Reserve::Percent(p)),
                Ok(_) => Err(format!(
                    "a reserve of {text} leaves too little: at most 90%"
                )),
                Err(_) => Err(bad()),
            },
            None => text.parse().map(Reserve::Count).map_err(|_| bad()),
        }
    }

    /// How much of `limit` it keeps.
    pub fn of(self, limit: u64) -> u64 {
        match self {
            Reserve::Count(n) => n.min(limit),
            Reserve::Percent(p) => {
                u64::try_from(u128::from(limit) * u128::from(p) / 100).unwrap_or(limit)
            }
        }
    }
}

impl std::fmt::Display for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reserve::Count(n) => write!(f, "{n}"),
            Reserve::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What an answer said of the account's budget, in the units the API counts:
/// requests for REST, points for GraphQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Left until `reset`.
    pub remaining: u64,
    /// The window's whole budget.
    pub limit: u64,
    /// When it starts over.
    pub reset: SystemTime,
    /// What one request costs (1 for REST; the query's cost for GraphQL).
    pub cost: u64,
}

impl Budget {
    /// A REST budget, counted in requests.
    pub fn requests(remaining: u64, limit: u64, reset: SystemTime) -> Self {
        Budget {
            remaining,
            limit,
            reset,
            cost: 1,
        }
    }
}

/// How the ledger took a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Enough is left above the reserve for the planned work (or the
    /// window is over): requests go at the `--delay` floor.
    Floor,
    /// Not enough: what is left above the reserve is spread until the
    /// reset, one request per this long.
    Spread(Duration),
    /// Down to the reserve: no request until the reset, at this time.
    AtReserve(SystemTime),
}

/// One API host's ledger, as this process uses it.
pub struct Pace {
    path: PathBuf,
    delay: Duration,
    reserve: Reserve,
    /// Ledger writes by this handle, for the tests of what is written.
    #[cfg(test)]
    writes: std::cell::Cell<u64>,
}

/// The outcome of waiting for a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// The slot is reserved: send now.
    Go,
    /// A stop was asked for (SIGINT, SIGTERM) while waiting.
    Stopped,
    /// The wait would be longer than the caller accepts; nothing reserved.
    TooLong(Duration),
}

impl Pace {
    /// The ledger for the API at `host_key` (host, and port when not the
    /// default), with `delay` as the least spacing between two requests.
    pub fn new(home: &PatinaHome, host_key: &str, delay: Duration) -> Result<Self> {
        home.run_dir()?;
        Ok(Self {
            path: ledger_path(home, host_key),
            delay,
            reserve: Reserve::DEFAULT,
            #[cfg(test)]
            writes: Default::default(),
        })
    }

    /// The same ledger, keeping `reserve` of the budget for other tools.
    pub fn with_reserve(mut self, reserve: Reserve) -> Self {
        self.reserve = reserve;
        self
    }

    /// Blocks until this process may send a request, and reserves that slot;
    /// gives up at once when the wait is longer than `at_most`. `notice`
    /// hears about waits longer than [`NOTABLE_WAIT`], once each.
    pub fn wait_turn(
        &self,
        at_most: Option<Duration>,
        notice: &mut dyn FnMut(Duration, &str),
    ) -> Result<Turn> {
        let mut announced = false;
        loop {
            if signals::stop_requested() {
                return Ok(Turn::Stopped);
            }
            let wait = self.update(|ledger, now| {
                if ledger.next_at_ms <= now {
                    // `now` is the clock cut down to the millisecond, up to
                    // 1 ms behind the send: one more keeps every gap at
                    // least the delay.
                    ledger.next_at_ms = now.saturating_add(millis(self.delay)).saturating_add(1);
                    ledger.reason = None;
                    None
                } else {
                    Some((ledger.next_at_ms - now, ledger.reason.clone()))
                }
            })?;
            let Some((wait_ms, reason)) = wait else {
                return Ok(Turn::Go);
            };
            let wait = Duration::from_millis(wait_ms);
            if at_most.is_some_and(|limit| wait > limit) {
                return Ok(Turn::TooLong(wait));
            }
            if !announced && wait > NOTABLE_WAIT {
                notice(wait, reason.as_deref().unwrap_or("pacing"));
                announced = true;
            }
            std::thread::sleep(wait.min(NAP));
        }
    }

    /// No request before `until`, for any process; `reason` is logged by
    /// whoever waits for it.
    pub fn hold_until(&self, until: SystemTime, reason: &str) -> Result<Duration> {
        let until_ms = unix_ms(until);
        self.update(|ledger, now| {
            if until_ms > ledger.next_at_ms {
                ledger.next_at_ms = until_ms;
                ledger.reason = Some(reason.to_owned());
            }
            Duration::from_millis(ledger.next_at_ms.saturating_sub(now))
        })
    }

    /// A secondary limit: `retry-after` when the server gave one, else at
    /// least a minute, doubling with each limit in a row.
    pub fn secondary_limit(&self, retry_after: Option<Duration>, reason: &str) -> Result<Duration> {
        self.update(|ledger, now| {
            ledger.strikes = ledger.strikes.saturating_add(1);
            let wait = retry_after.unwrap_or_else(|| {
                let doubled = SECONDARY_BASE.saturating_mul(1 << (ledger.strikes - 1).min(6));
                doubled.min(SECONDARY_MAX)
            });
            // A server's absurd `retry-after` is a very long wait, never one
            // wrapped around to none.
            let until = now.saturating_add(millis(wait));
            if until > ledger.next_at_ms {
                ledger.next_at_ms = until;
                ledger.reason = Some(reason.to_owned());
            }
            Duration::from_millis(ledger.next_at_ms.saturating_sub(now))
        })
    }

    /// A request went through: the secondary-limit backoff starts over.
    pub fn success(&self) -> Result<()> {
        self.update(|ledger, _| ledger.strikes = 0)
    }

    /// Takes what an answer said of the budget, with `planned` requests
    /// still to send by this process: at the floor while the budget above
    /// the reserve covers them, else spread over the time to the reset (60
    /// requests an hour without a token become about one a minute, not 60
    /// then an hour's wait), and at the reserve held until the reset.
    pub fn budget(&self, budget: Budget, planned: u64) -> Result<Spend> {
        let reset_ms = unix_ms(budget.reset);
        let kept = self.reserve.of(budget.limit);
        // Requests like this one that the budget allows above the reserve.
        let spare = budget.remaining.saturating_sub(kept) / budget.cost.max(1);
        self.update(|ledger, now| {
            if reset_ms <= now {
                return Spend::Floor;
            }
            if spare == 0 {
                // A second past the reset, so that the server has started over.
                let until = reset_ms.saturating_add(1000);
                if until > ledger.next_at_ms {
                    ledger.next_at_ms = until;
                    ledger.reason = Some(format!(
                        "waiting for the rate limit to reset at {}: the rest ({}) is kept for \
                         other tools (--reserve)",
                        clock_time(budget.reset),
                        crate::report::thousands(budget.remaining)
                    ));
                }
                return Spend::AtReserve(budget.reset);
            }
            if planned <= spare {
                return Spend::Floor;
            }
            let spacing = (reset_ms - now) / spare;
            let next = now + spacing;
            if next > ledger.next_at_ms && spacing > millis(self.delay) {
                ledger.next_at_ms = next;
                ledger.reason = Some(format!(
                    "spreading the {} requests left above the reserve until the rate limit \
                     resets at {}",
                    crate::report::thousands(spare),
                    clock_time(budget.reset)
                ));
            }
            Spend::Spread(Duration::from_millis(spacing))
        })
    }

    /// Reads, changes and writes the ledger under an exclusive lock, held for
    /// microseconds: never across a sleep.
    fn update<T>(&self, change: impl FnOnce(&mut Ledger, u64) -> T) -> Result<T> {
        let mut file = crate::home::open_private(&self.path)
            .with_context(|| format!("cannot open the pace ledger {}", self.path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock the pace ledger {}", self.path.display()))?;
        let mut text = String::new();
        // A torn or foreign ledger is replaced: the worst case is one
        // request sent a little early, not a stuck sync.
        let mut ledger: Ledger = match file.read_to_string(&mut text) {
            Ok(_) => serde_json::from_str(&text).unwrap_or_default(),
            Err(_) => Ledger::default(),
        };
        let read = ledger.clone();
        let result = change(&mut ledger, unix_ms(SystemTime::now()));
        // A wait reads the ledger ten times a second; only a change is
        // written (and a torn file replaced, which reads as the default).
        if ledger != read || text.trim().is_empty() {
            write_ledger(&mut file, &ledger)
                .with_context(|| format!("cannot write the pace ledger {}", self.path.display()))?;
            #[cfg(test)]
            self.writes.set(self.writes.get() + 1);
        }
        // Dropping the file releases the lock.
        Ok(result)
    }
}

fn write_ledger(file: &mut File, ledger: &Ledger) -> std::io::Result<()> {
    let text = serde_json::to_string(ledger).map_err(std::io::Error::other)?;
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `$PATINA_HOME/run/pace-HOST.json`.
fn ledger_path(home: &PatinaHome, host_key: &str) -> PathBuf {
    home.run_file(&format!("pace-{}.json", file_safe(host_key)))
}

/// A host's ledger as it stands (see [`read_ledger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerState {
    /// Before this, no request to the host may leave.
    pub next_at: SystemTime,
    /// Why the slot is there, when a server signal put it there.
    pub reason: Option<String>,
    /// Secondary limits in a row without a success in between.
    pub strikes: u32,
}

impl LedgerState {
    /// When the next request may leave and why, if that is more than a
    /// moment after `now`.
    pub fn waiting(&self, now: SystemTime) -> Option<(SystemTime, String)> {
        let later = self.next_at.duration_since(now).ok()?;
        (later > NOTABLE_WAIT).then(|| {
            let reason = self.reason.clone().unwrap_or_else(|| "pacing".into());
            (self.next_at, reason)
        })
    }
}

/// The ledger of `host_key`, read without writing or creating anything (for
/// `--status`, and `--all`'s turns); `None` when there is none or it cannot
/// be read.
pub fn read_ledger(home: &PatinaHome, host_key: &str) -> Option<LedgerState> {
    let text = std::fs::read_to_string(ledger_path(home, host_key)).ok()?;
    let ledger: Ledger = serde_json::from_str(&text).ok()?;
    Some(LedgerState {
        next_at: UNIX_EPOCH + Duration::from_millis(ledger.next_at_ms),
        reason: ledger.reason,
        strikes: ledger.strikes,
    })
}

/// What the ledger of `host_key` holds back now (see [`LedgerState::waiting`]).
pub fn waiting(home: &PatinaHome, host_key: &str) -> Option<(SystemTime, String)> {
    read_ledger(home, host_key)?.waiting(SystemTime::now())
}

/// `14:05 UTC`: when a wait ends, as a log line and `--status` say it.
pub fn clock_time(at: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", &stamp[11..16])
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// `api.github.com` stays itself; `127.0.0.1:8080` becomes `127.0.0.1_8080`.
fn file_safe(host_key: &str) -> String {
    host_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(delay_ms: u64) -> (tempfile::TempDir, Pace) {
        let dir = tempfile::tempdir().unwrap();
        let home = PatinaHome::at(dir.path());
        let pace = Pace::new(&home, "127.0.0.1:9", Duration::from_millis(delay_ms)).unwrap();
        (dir, pace)
    }

    #[test]
    fn consecutive_turns_keep_the_spacing() {
        let (_dir, pace) = pace(120);
        let start = std::time::Instant::now();
        for _ in 0..4 {
            assert_eq!(pace.wait_turn(None, &mut |_, _| {}).unwrap(), Turn::Go);
        }
        // Three gaps of 120 ms after the first turn.
        assert!(
            start.elapsed() >= Duration::from_millis(360),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_wait_reads_the_ledger_and_writes_only_the_turn_it_takes() {
        let (_dir, pace) = pace(0);
        pace.hold_until(SystemTime::now() + Duration::from_millis(450), "hold")
            .unwrap();
        assert_eq!(pace.writes.get(), 1);
        // About five naps of reading, then one write: the reserved turn.
        assert_eq!(pace.wait_turn(None, &mut |_, _| {}).unwrap(), Turn::Go);
        assert_eq!(pace.writes.get(), 2, "a nap rewrote the ledger");
        // A hold that does not move the slot later changes nothing.
        pace.hold_until(SystemTime::now() - Duration::from_secs(1), "past")
            .unwrap();
        assert_eq!(pace.writes.get(), 2);
    }

    #[test]
    fn holds_only_ever_move_later() {
        let (_dir, pace) = pace(0);
        let later = SystemTime::now() + Duration::from_secs(30);
        let wait = pace.hold_until(later, "retry-after").unwrap();
        assert!(wait > Duration::from_secs(29));
        let sooner = SystemTime::now() + Duration::from_secs(1);
        let wait = pace.hold_until(sooner, "other").unwrap();
        assert!(
            wait > Duration::from_secs(29),
            "a shorter hold cut the wait: {wait:?}"
        );
    }

    #[test]
    fn secondary_limits_back_off_exponentially_and_reset_on_success() {
        let (_dir, pace) = pace(0);
        let first = pace.secondary_limit(None, "secondary").unwrap();
        assert!(first >= Duration::from_secs(59) && first <= Duration::from_secs(60));
        let second = pace.secondary_limit(None, "secondary").unwrap();
        assert!(second >= Duration::from_secs(119), "{second:?}");
        pace.success().unwrap();
        let given = pace
            .secondary_limit(Some(Duration::from_secs(5)), "retry-after")
            .unwrap();
        // The earlier two-minute hold still stands: never cut short.
        assert!(given >= Duration::from_secs(118), "{given:?}");
    }

    fn rest(remaining: u64, limit: u64, reset_in: Duration) -> Budget {
        Budget::requests(remaining, limit, SystemTime::now() + reset_in)
    }

    #[test]
    fn a_budget_that_covers_the_planned_work_spreads_nothing() {
        let (_dir, pace) = pace(0);
        let ten_minutes = Duration::from_secs(600);
        // 1,000 left, 100 of them the reserve: 900 planned fit, 901 do not.
        assert_eq!(
            pace.budget(rest(1_000, 1_000, ten_minutes), 900).unwrap(),
            Spend::Floor
        );
        assert!(pace.hold_until(SystemTime::now(), "probe").unwrap() < Duration::from_secs(1));
        assert!(matches!(
            pace.budget(rest(1_000, 1_000, ten_minutes), 901).unwrap(),
            Spend::Spread(_)
        ));
    }

    #[test]
    fn a_low_budget_spreads_what_is_left_above_the_reserve() {
        let (_dir, pace) = pace(0);
        // 110 left, 100 kept: 10 requests over 600 s, about a minute apart.
        let spend = pace
            .budget(rest(110, 1_000, Duration::from_secs(600)), 50)
            .unwrap();
        let Spend::Spread(spacing) = spend else {
            panic!("{spend:?}")
        };
        assert!(spacing >= Duration::from_secs(59) && spacing <= Duration::from_secs(60));
        let wait = pace.hold_until(SystemTime::now(), "probe").unwrap();
        assert!(
            wait >= Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }

    #[test]
    fn at_the_reserve_nothing_goes_until_the_reset() {
        let (_dir, pace) = pace(0);
        let reset = SystemTime::now() + Duration::from_secs(600);
        let spend = pace.budget(Budget::requests(100, 1_000, reset), 1).unwrap();
        assert_eq!(spend, Spend::AtReserve(reset));
        let wait = pace.hold_until(SystemTime::now(), "probe").unwrap();
        assert!(wait >= Duration::from_secs(600), "{wait:?}");
    }

    #[test]
    fn graphql_points_count_in_queries_of_their_cost() {
        let (_dir, pace) = pace(0);
        let hour = Duration::from_secs(3_600);
        // 5,000 points, 500 kept, queries of 4: 1,125 of them fit.
        let points = |remaining| Budget {
            remaining,
            limit: 5_000,
            reset: SystemTime::now() + hour,
            cost: 4,
        };
        assert_eq!(pace.budget(points(5_000), 1_125).unwrap(), Spend::Floor);
        assert!(matches!(
            pace.budget(points(5_000), 1_126).unwrap(),
            Spend::Spread(_)
        ));
        assert!(matches!(
            pace.budget(points(503), 1).unwrap(),
            Spend::AtReserve(_)
        ));
    }

    #[test]
    fn a_reserve_is_a_count_or_a_share() {
        assert_eq!(Reserve::parse("10%"), Ok(Reserve::Percent(10)));
        assert_eq!(Reserve::parse(" 500 "), Ok(Reserve::Count(500)));
        assert_eq!(Reserve::parse("0"), Ok(Reserve::Count(0)));
        assert!(Reserve::parse("91%").unwrap_err().contains("at most 90%"));
        for bad in ["", "%", "-1", "ten", "1.5%", "5 %x"] {
            assert!(Reserve::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Reserve::Percent(10).of(5_000), 500);
        assert_eq!(Reserve::Count(500).of(60), 60);
        // No overflow on the way: 90% of the largest limit.
        assert_eq!(
            Reserve::Percent(90).of(u64::MAX),
            16_602_069_666_338_596_453
        );
        assert_eq!(Reserve::DEFAULT.to_string(), "10%");
    }

    #[test]
    fn absurd_numbers_saturate_instead_of_wrapping() {
        // u64::MAX seconds of retry-after: held (practically) for ever.
        let (_a, held) = pace(0);
        let wait = held
            .secondary_limit(Some(Duration::from_secs(u64::MAX)), "retry-after")
            .unwrap();
        assert!(wait > Duration::from_secs(100 * 365 * 86_400), "{wait:?}");
        // A budget of u64::MAX left spreads nothing.
        let (_b, rich) = pace(0);
        rich.budget(rest(u64::MAX, u64::MAX, Duration::from_secs(60)), u64::MAX)
            .unwrap();
        let wait = rich.hold_until(SystemTime::now(), "probe").unwrap();
        assert!(wait < Duration::from_secs(1), "{wait:?}");
        // A --delay of centuries: the next turn is that far, not now.
        let (_c, slow) = pace(u64::MAX);
        assert_eq!(slow.wait_turn(None, &mut |_, _| {}).unwrap(), Turn::Go);
        assert!(matches!(
            slow.wait_turn(Some(Duration::from_secs(1)), &mut |_, _| {})
                .unwrap(),
            Turn::TooLong(_)
        ));
    }

    #[test]
    fn host_keys_become_plain_file_names() {
        assert_eq!(file_safe("api.github.com"), "api.github.com");
        assert_eq!(file_safe("127.0.0.1:8080"), "127.0.0.1_8080");
        assert_eq!(file_safe("../x/y"), ".._x_y");
    }
}
