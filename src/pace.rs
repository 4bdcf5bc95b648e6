//! The pace ledger: one small file per API host under `$PATINA_HOME/run/`,
//! shared under `flock` by every patina-forge process of the user, holding
//! the earliest time the next request to that host may leave.
//!
//! Each request reserves its slot atomically (read, compare, write under the
//! lock), so N processes share one spacing instead of multiplying the rate.
//! Server signals (`retry-after`, an exhausted budget, secondary limits) push
//! the slot later for everyone, and nothing ever pulls it earlier: a wait is
//! never cut short.

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

/// One API host's ledger, as this process uses it.
pub struct Pace {
    path: PathBuf,
    delay: Duration,
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
        let run = home.run_dir()?;
        Ok(Self {
            path: run.join(format!("pace-{}.json", file_safe(host_key))),
            delay,
            #[cfg(test)]
            writes: Default::default(),
        })
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

    /// Spreads what is left of the server's budget over the time to its
    /// reset, so that the account never runs dry (60 requests an hour without
    /// a token become one a minute, not 60 then an hour's wait).
    pub fn budget(&self, remaining: u64, reset: SystemTime) -> Result<()> {
        let reset_ms = unix_ms(reset);
        self.update(|ledger, now| {
            if reset_ms <= now {
                return;
            }
            let spacing = (reset_ms - now) / remaining.saturating_add(1);
            let next = now + spacing;
            if next > ledger.next_at_ms && spacing > millis(self.delay) {
                ledger.next_at_ms = next;
                ledger.reason = Some(if remaining == 0 {
                    "the rate limit is used up until its reset".to_owned()
                } else {
                    format!(
                        "spreading the {} requests left until the rate limit resets",
                        crate::report::thousands(remaining)
                    )
                });
            }
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

    #[test]
    fn a_low_budget_spreads_the_requests() {
        let (_dir, pace) = pace(0);
        let reset = SystemTime::now() + Duration::from_secs(600);
        pace.budget(9, reset).unwrap();
        let wait = pace.hold_until(SystemTime::now(), "probe").unwrap();
        // 600 s over 10 slots: about a minute.
        assert!(
            wait >= Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
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
        rich.budget(u64::MAX, SystemTime::now() + Duration::from_secs(60))
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
