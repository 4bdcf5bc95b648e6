//! An issue or pull request as patina stores it: the shape the store writes
//! and the drain records, whichever API it was decoded from. Decoding lives
//! with the forge (`crate::forge`); this module knows no JSON, so that the
//! store can depend on it without depending on the forge.

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
    /// `None` for a deleted account ("ghost").
    pub author: Option<String>,
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
    /// `None` for a deleted account.
    pub author: Option<String>,
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

impl Item {
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
