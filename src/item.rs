//! An issue or pull request as patina stores it: the shape the store writes
//! and the drain records, whichever API it was decoded from. Decoding lives
//! with the forge (`crate::forge`); this module knows no JSON, so that the
//! store can depend on it without depending on the forge.

/// The largest number a ref may have (GitHub's numbers are 32-bit signed).
pub const MAX_NUMBER: u64 = i32::MAX as u64;

/// An issue or pull request as patina stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub number: u32,
    pub kind: Kind,
    pub title: String,
    pub body: Option<String>,
    /// `open` or `closed` as the forge says; see [`Item::state`] for patina's.
    pub open: bool,
    pub labels: Vec<String>,
    /// `None` for a deleted account ("ghost").
    pub author: Option<String>,
    pub created_at: String,
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
    pub comments: Vec<Comment>,
    /// PRs only: reviews in state APPROVED.
    pub approvals: Option<u64>,
    /// PRs only: the issues of this repository it closes, ascending.
    pub linked_issues: Option<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The forge's node id: stable across edits.
    pub id: String,
    /// `None` for a deleted account.
    pub author: Option<String>,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Issue,
    Pr { merged_at: MergedAt },
}

/// Whether a pull request was merged. GitHub's issue endpoints carry
/// `pull_request.merged_at`; a server that leaves it out makes us ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergedAt {
    Known(Option<String>),
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

    pub fn merged_at(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pr {
                merged_at: MergedAt::Known(at),
            } => at.as_deref(),
            _ => None,
        }
    }
}
