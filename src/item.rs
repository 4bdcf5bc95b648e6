//! An issue or pull request as patina stores it: the shape the store writes
//! and the drain records, whichever API it was decoded from. Decoding lives
//! with the forge (`crate::forge`); this module knows no JSON, so that the
//! store can depend on it without depending on the forge.
//!
//! It is also the one place where the spelling of every stored field is
//! decided ([`Actor::login`], [`Item::spelled`]), so that an item reads the
//! same whether GitHub's REST API, its GraphQL API or Gitea answered. The
//! rule is REST's spelling: a bot's login with `[bot]`, a deleted account as
//! `ghost`, an empty body as null, times in UTC to the second.

/// The largest number a ref may have (GitHub's numbers are 32-bit signed).
pub const MAX_NUMBER: u64 = i32::MAX as u64;

/// An issue or pull request as patina stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its own number: after a transfer, not the ref's.
    pub number: u32,
    /// Issue or PR, and a PR's merge state.
    pub kind: Kind,
    /// As on the forge; patina requires one.
    pub title: String,
    /// `None` for an empty description (REST's null, GraphQL's empty string).
    pub body: Option<String>,
    /// `open` or `closed` as the forge says; see [`Item::state`] for patina's.
    pub open: bool,
    /// Label names; stored as a JSON array.
    pub labels: Vec<String>,
    /// The login in its one spelling ([`Actor::login`]).
    pub author: String,
    /// RFC 3339, as the forge writes it; also the event's `timestamp`.
    pub created_at: String,
    /// RFC 3339; when it changes, the item gets a new event.
    pub updated_at: String,
    /// When it was closed (or merged), if it is.
    pub closed_at: Option<String>,
    /// The web page (`html_url`).
    pub url: String,
    /// The discussion, when the source carried it (GraphQL); `None` keeps
    /// what is stored.
    pub details: Option<Details>,
    /// The comment count a REST answer gave (`comments`), if it did.
    pub listed_comments: Option<u64>,
}

/// What GraphQL tells beyond REST's issue object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// All comments, of which `comments` holds the first.
    pub comment_count: u64,
    /// The first comments (20 at most), in the forge's order.
    pub comments: Vec<Comment>,
    /// PRs only: reviews in state APPROVED.
    pub approvals: Option<u64>,
    /// PRs only: the issues of this repository it closes, ascending.
    pub linked_issues: Option<Vec<u32>>,
}

/// A comment on an issue or PR, as kept in `forge_comments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The forge's node id: stable across edits.
    pub id: String,
    /// The login in its one spelling ([`Actor::login`]).
    pub author: String,
    /// Markdown, as written.
    pub body: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Issue or pull request: one endpoint answers for both, so the answer
/// says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Stored in `forge_issues`, with a `forge.issue` event.
    Issue,
    /// Stored in `forge_prs`, with a `forge.pr` event.
    Pr {
        /// Whether it was merged, which tells `merged` from `closed`.
        merged_at: MergedAt,
    },
}

/// Whether a pull request was merged. GitHub's issue endpoints carry
/// `pull_request.merged_at`; a server that leaves it out makes us ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergedAt {
    /// The answer said: `Some` when merged (RFC 3339), `None` when not.
    Known(Option<String>),
    /// The answer did not say: `GET /pulls/N` will.
    Unknown,
}

/// GitHub's name for a deleted account, which REST sends as the author of
/// what it wrote.
pub const GHOST: &str = "ghost";

/// Who wrote an item or comment, as the API that answered described them.
/// GraphQL calls a bot `dependabot` with `__typename: Bot` where REST calls
/// it `dependabot[bot]`; GraphQL answers a deleted account with `null`, REST
/// with the user `ghost`, Gitea with its user `Ghost` (id -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, organization, mannequin or enterprise account: its login is
    /// the same in every API.
    Account(String),
    /// A GitHub App's bot, with or without the `[bot]` suffix.
    Bot(String),
    /// A deleted account.
    Deleted,
}

impl Actor {
    /// The login as stored: REST's spelling, which is the account's real
    /// login (`dependabot[bot]`, `ghost`).
    pub fn login(self) -> String {
        match self {
            Actor::Account(login) => login,
            Actor::Bot(login) if login.ends_with("[bot]") => login,
            Actor::Bot(login) => format!("{login}[bot]"),
            Actor::Deleted => GHOST.to_owned(),
        }
    }
}

impl Item {
    /// The item in the one spelling of each field: times in UTC to the
    /// second (`2011-04-22T13:33:48Z`), labels in name order without
    /// repeats, an empty body as `None`; comments likewise. Decoders end
    /// with it, so nothing reaches the store spelled by one API only.
    pub fn spelled(mut self) -> Self {
        self.body = self.body.filter(|b| !b.is_empty());
        self.labels.sort_by(|a, b| {
            a.to_lowercase()
                .cmp(&b.to_lowercase())
                .then_with(|| a.cmp(b))
        });
        self.labels.dedup();
        self.created_at = utc_seconds(self.created_at);
        self.updated_at = utc_seconds(self.updated_at);
        self.closed_at = self.closed_at.map(utc_seconds);
        if let Kind::Pr {
            merged_at: MergedAt::Known(Some(at)),
        } = &mut self.kind
        {
            *at = utc_seconds(std::mem::take(at));
        }
        if let Some(details) = &mut self.details {
            for comment in &mut details.comments {
                comment.created_at = utc_seconds(std::mem::take(&mut comment.created_at));
            }
        }
        self
    }

    /// patina's state: `open`/`closed` for issues, `open`/`merged`/`closed` for PRs.
    pub fn state(&self) -> &'static str {
        match (&self.kind, self.open) {
            (_, true) => "open",
            (
                Kind::Pr {
                    merged_at: MergedAt::Known(Some(_)),
                },
                false,
            ) => "merged",
            (_, false) => "closed",
        }
    }

    /// Whether it goes to `forge_prs`, with a `forge.pr` event.
    pub fn is_pr(&self) -> bool {
        matches!(self.kind, Kind::Pr { .. })
    }

    /// A PR whose answer did not say whether it was merged.
    pub fn merged_unknown(&self) -> bool {
        matches!(
            self.kind,
            Kind::Pr {
                merged_at: MergedAt::Unknown
            }
        )
    }

    /// When it was merged; `None` for issues, unmerged PRs and PRs whose
    /// merge state is unknown.
    pub fn merged_at(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pr {
                merged_at: MergedAt::Known(at),
            } => at.as_deref(),
            _ => None,
        }
    }
}

/// An RFC 3339 time in UTC to the second, `2011-04-22T13:33:48Z`: GitHub's
/// own form, which both its APIs send and which patina compares as text.
/// Another offset (Gitea sends the server's) is converted and a fraction
/// dropped; text that is no such time is kept as it came rather than lost.
pub fn utc_seconds(text: String) -> String {
    to_utc_seconds(&text).unwrap_or(text)
}

fn to_utc_seconds(text: &str) -> Option<String> {
    use std::time::Duration;
    let (local, east_of_utc) = match text.as_bytes() {
        [.., b'Z' | b'z'] => (&text[..text.len() - 1], 0i64),
        [.., sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |d: &u8| d.is_ascii_digit().then(|| i64::from(d - b'0'));
            let hours = digit(h1)? * 10 + digit(h2)?;
            let minutes = digit(m1)? * 10 + digit(m2)?;
            let seconds = (hours * 60 + minutes) * 60;
            let east = if *sign == b'+' { seconds } else { -seconds };
            (&text[..text.len() - 6], east)
        }
        _ => return None,
    };
    // The weak parser takes a fraction; it refuses dates no calendar has.
    if !local.contains('T') {
        return None;
    }
    let at = humantime::parse_rfc3339_weak(local).ok()?;
    let offset = Duration::from_secs(east_of_utc.unsigned_abs());
    let utc = if east_of_utc >= 0 {
        at.checked_sub(offset)?
    } else {
        at.checked_add(offset)?
    };
    Some(humantime::format_rfc3339_seconds(utc).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_spelled_in_utc_to_the_second() {
        let cases = [
            ("2011-04-22T13:33:48Z", "2011-04-22T13:33:48Z"),
            ("2011-04-22T13:33:48.123Z", "2011-04-22T13:33:48Z"),
            ("2011-04-22T15:33:48+02:00", "2011-04-22T13:33:48Z"),
            ("2011-04-22T08:03:48-05:30", "2011-04-22T13:33:48Z"),
            ("2011-04-22T00:30:00+01:00", "2011-04-21T23:30:00Z"),
            ("2011-04-22T13:33:48z", "2011-04-22T13:33:48Z"),
        ];
        for (given, stored) in cases {
            assert_eq!(utc_seconds(given.to_owned()), stored, "{given}");
        }
    }

    #[test]
    fn what_is_no_time_is_kept_as_it_came() {
        for text in [
            "",
            "yesterday",
            "2011-02-31T00:00:00Z",
            "2011-04-22 13:33:48Z",
            "2011-04-22T13:33:48+2:00",
            "2011-04-22T13:33:48",
        ] {
            assert_eq!(utc_seconds(text.to_owned()), text);
        }
    }

    #[test]
    fn a_bot_is_spelled_as_rest_spells_it_and_a_deleted_account_as_ghost() {
        assert_eq!(Actor::Bot("dependabot".into()).login(), "dependabot[bot]");
        assert_eq!(
            Actor::Bot("dependabot[bot]".into()).login(),
            "dependabot[bot]"
        );
        assert_eq!(Actor::Account("octocat".into()).login(), "octocat");
        assert_eq!(Actor::Deleted.login(), GHOST);
    }

    #[test]
    fn labels_go_in_name_order_without_repeats() {
        let item = Item {
            number: 1,
            kind: Kind::Issue,
            title: "t".into(),
            body: Some(String::new()),
            open: true,
            labels: vec!["bug".into(), "Area: x".into(), "api".into(), "bug".into()],
            author: GHOST.into(),
            created_at: "2020-01-01T00:00:00Z".into(),
            updated_at: "2020-01-01T00:00:00Z".into(),
            closed_at: None,
            url: "u".into(),
            details: None,
            listed_comments: None,
        }
        .spelled();
        assert_eq!(item.labels, ["api", "Area: x", "bug"]);
        assert_eq!(item.body, None);
    }
}
