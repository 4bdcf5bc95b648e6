//! One exchange with the forge: wait for a turn in the pace ledger, send,
//! and deal with what any answer may be besides the expected ones (a rate
//! limit, a transient failure, a refusal). Every way of asking sends through
//! here, so the ledger sees every request.

use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use reqwest::Url;

use super::{Drain, round_secs};
use crate::forge::github::{Answer, Fetched, GitHub, Limit};
use crate::pace::{Budget, Turn};

impl Drain<'_> {
    /// Waits for a turn and sends one GET (conditional when `etag` is
    /// given); `None` when a stop came first.
    pub(super) fn send(&mut self, url: &Url, etag: Option<&str>) -> Result<Option<Fetched>> {
        self.send_with(|forge| forge.fetch(url, etag), true)
    }

    /// Waits for a turn and sends what `request` sends; `budget`: feed the
    /// answer's rate-limit headers to the ledger (GraphQL's are points,
    /// fed by the caller as requests).
    pub(super) fn send_with(
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
                self.unreachable_in_a_row = 0;
                if let (Some(rate), true) = (fetched.rate, budget) {
                    self.spend(Budget::requests(rate.remaining, rate.limit, rate.reset))?;
                }
                Ok(Some(fetched))
            }
            Err(e) => Ok(Some(Fetched {
                answer: match crate::forge::http::unreachable(&e) {
                    Some(cause) => Answer::Unreachable(cause.to_string()),
                    None => Answer::Transient(format!("{e:#}")),
                },
                status: 0,
                body: Vec::new(),
                etag: None,
                rate: None,
                next: None,
            })),
        }
    }

    /// Handles what any answer may be besides the expected ones. `Ok(true)`
    /// when the answer was dealt with here (a limit, a transient failure of
    /// ref `number`, or of the request as a whole).
    pub(super) fn common(&mut self, answer: &Answer, number: Option<u32>) -> Result<bool> {
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
            Answer::Unreachable(why) => {
                // Nothing reached the forge: no ref's attempt is counted,
                // and the run ends soon (`given_up`), losing nothing.
                self.unreachable_in_a_row += 1;
                self.record_requests(Some(why))?;
                self.failed(why)?;
                self.progress.log(&format!(
                    "cannot reach the forge: {why} (try {} of {})",
                    self.unreachable_in_a_row,
                    self.unreachable_tries()
                ));
                Ok(true)
            }
            Answer::Transient(why) => {
                self.record_failure(number, why)?;
                self.failed(why)?;
                let what = number.map_or("listing".to_owned(), |n| format!("#{n}"));
                self.progress.log(&format!("{what}: {why} (will retry)"));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// One failure more in the current run of them. The forge is
    /// struggling: slow down for everyone, longer with each in a row.
    pub(super) fn failed(&mut self, why: &str) -> Result<()> {
        self.failures_in_a_row += 1;
        self.last_failure = Some(why.to_owned());
        // 2, 4, 8 … s; on a dead network 1, 2, 4 … s, which the run does
        // not outlast for long (`unreachable_tries`).
        let shift = self.failures_in_a_row.min(6) - u32::from(self.unreachable_in_a_row > 0);
        let backoff = Duration::from_secs(1 << shift);
        self.pace
            .hold_until(SystemTime::now() + backoff, "backing off after a failure")?;
        Ok(())
    }

    /// An answer was understood and recorded: the run of failures is over,
    /// and so is any secondary-limit backoff. Only here: a 200 whose body
    /// does not decode is a failure, not a success.
    pub(super) fn succeeded(&mut self) -> Result<()> {
        self.failures_in_a_row = 0;
        self.unreachable_in_a_row = 0;
        self.last_failure = None;
        if self.limited {
            self.pace.success()?;
            self.limited = false;
        }
        Ok(())
    }

    /// Asks `url` until an answer comes that `decode` accepts: limits and
    /// failures are dealt with as anywhere, a body that does not decode is a
    /// failure too. `None` when a stop came first; an error after the forge
    /// failed too often in a row (`what` says what could not be done).
    pub(super) fn ask_until_answered<T>(
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
            if let (true, Some(why)) = (dealt_with, self.given_up("")) {
                bail!("cannot {what}: {why}");
            }
        }
    }
}
