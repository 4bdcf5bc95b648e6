//! What the decoders of REST's and GraphQL's answers share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// GitHub's rate-limit windows last an hour; a reset further ahead is a
/// broken or hostile server, and would hold every process's ledger (and
/// overflow the calendar `--status` prints) if believed.
pub const MAX_RESET_AHEAD: Duration = Duration::from_secs(3600);

/// A reset time a server announced, in unix seconds, taken at most
/// [`MAX_RESET_AHEAD`] from `now`.
pub fn reset_at(unix_secs: u64, now: SystemTime) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(unix_secs))
        .map_or(now + MAX_RESET_AHEAD, |at| believable_reset(at, now))
}

/// A reset time a server announced, taken at most [`MAX_RESET_AHEAD`] from `now`.
pub fn believable_reset(at: SystemTime, now: SystemTime) -> SystemTime {
    at.min(now + MAX_RESET_AHEAD)
}

/// serde's message without the input: a body can be large and is the forge's text.
pub(super) fn describe(e: &serde_json::Error) -> String {
    format!(
        "malformed response body ({} at line {} column {})",
        classify(e),
        e.line(),
        e.column()
    )
}

fn classify(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "not JSON",
        Category::Data => "unexpected JSON shape",
        Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_believed_up_to_an_hour_ahead() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let in_ten_minutes = 1_800_000_600;
        assert_eq!(
            reset_at(in_ten_minutes, now),
            UNIX_EPOCH + Duration::from_secs(in_ten_minutes)
        );
        for absurd in [253_402_300_800, u64::MAX] {
            assert_eq!(reset_at(absurd, now), now + MAX_RESET_AHEAD, "{absurd}");
        }
        // A reset already past is past: no wait.
        assert!(reset_at(1, now) < now);
    }
}
