//! The forge: the GitHub clients that fetch issues and pull requests (REST,
//! and GraphQL batches when a token allows), and the decoding of REST's
//! answers into [`Item`]s (the stored shape, defined in `crate::item`).

mod decode;
pub mod github;
pub mod graphql;
pub mod http;
pub mod kind;
pub mod token;

use serde::{Deserialize, Deserializer};

use self::decode::describe;
use crate::item::Actor;
// The stored shape lives below the forge, where the store can see it; these
// paths stay the ones the drain, the tests and the fuzz targets name.
pub use crate::item::{Comment, Details, Item, Kind, MAX_NUMBER, MergedAt};

impl Item {
    /// Decodes one issue object of GitHub's REST API (issues and PRs alike).
    pub fn from_github(json: &[u8]) -> Result<Self, String> {
        let raw: RawIssue = serde_json::from_slice(json).map_err(|e| describe(&e))?;
        raw.into_item()
    }

    /// Decodes a page of the issue listing.
    pub fn list_from_github(json: &[u8]) -> Result<Vec<Self>, String> {
        let raw: Vec<RawIssue> = serde_json::from_slice(json).map_err(|e| describe(&e))?;
        raw.into_iter().map(RawIssue::into_item).collect()
    }
}

/// The fields we use of GitHub's issue object; everything else is ignored,
/// and everything the schema allows to be null or absent is optional.
#[derive(Deserialize)]
struct RawIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    user: Option<RawUser>,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    closed_at: Option<String>,
    html_url: String,
    #[serde(default)]
    pull_request: Option<RawPullRef>,
    #[serde(default)]
    comments: Option<u64>,
}

/// Labels come as objects, or (per the schema) as bare names.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawLabel {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
    },
}

#[derive(Deserialize)]
struct RawUser {
    login: String,
    #[serde(default)]
    id: Option<i64>,
    /// GitHub's `User`, `Bot`, `Organization` or `Mannequin`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

impl RawUser {
    /// Who it is. GitHub sends a deleted account as `ghost` (or `null`),
    /// Gitea as its ghost user (id -1).
    fn actor(user: Option<Self>) -> Actor {
        match user {
            None => Actor::Deleted,
            Some(user) if user.id == Some(-1) => Actor::Deleted,
            Some(user) if user.kind.as_deref() == Some("Bot") => Actor::Bot(user.login),
            Some(user) => Actor::Account(user.login),
        }
    }
}

#[derive(Deserialize)]
struct RawPullRef {
    /// Absent (outer `None`) is not the same as null (not merged).
    #[serde(default, deserialize_with = "present")]
    merged_at: Option<Option<String>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl RawIssue {
    fn into_item(self) -> Result<Item, String> {
        let number = u32::try_from(self.number)
            .ok()
            .filter(|&n| n >= 1 && u64::from(n) <= MAX_NUMBER)
            .ok_or_else(|| {
                format!(
                    "malformed response body (number {} out of range)",
                    self.number
                )
            })?;
        let open = match self.state.as_str() {
            "open" => true,
            "closed" => false,
            other => return Err(format!("malformed response body (state {other:?})")),
        };
        let kind = match self.pull_request {
            None => Kind::Issue,
            Some(RawPullRef {
                merged_at: Some(at),
            }) => Kind::Pr {
                merged_at: MergedAt::Known(at),
            },
            Some(RawPullRef { merged_at: None }) => Kind::Pr {
                merged_at: MergedAt::Unknown,
            },
        };
        Ok(Item {
            number,
            kind,
            title: self.title,
            body: self.body,
            open,
            labels: self
                .labels
                .into_iter()
                .filter_map(|label| match label {
                    RawLabel::Name(name) => Some(name),
                    RawLabel::Object { name } => name,
                })
                .collect(),
            author: RawUser::actor(self.user).login(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
            url: self.html_url,
            details: None,
            listed_comments: self.comments,
        }
        .spelled())
    }
}

/// The comments of a Gitea `GET /issues/{n}/comments` answer, in order.
pub fn comments_from_gitea(json: &[u8]) -> Result<Vec<Comment>, String> {
    #[derive(Deserialize)]
    struct RawComment {
        id: u64,
        #[serde(default)]
        user: Option<RawUser>,
        #[serde(default)]
        body: String,
        created_at: String,
    }
    let raw: Vec<RawComment> = serde_json::from_slice(json).map_err(|e| describe(&e))?;
    Ok(raw
        .into_iter()
        .take(graphql::COMMENTS as usize)
        .map(|c| Comment {
            id: c.id.to_string(),
            author: RawUser::actor(c.user).login(),
            body: c.body,
            created_at: crate::item::utc_seconds(c.created_at),
        })
        .collect())
}

/// Approving reviews in a Gitea `GET /pulls/{n}/reviews` answer.
pub fn approvals_from_gitea(json: &[u8]) -> Result<u64, String> {
    #[derive(Deserialize)]
    struct RawReview {
        #[serde(default)]
        state: String,
    }
    let raw: Vec<RawReview> = serde_json::from_slice(json).map_err(|e| describe(&e))?;
    Ok(raw.iter().filter(|r| r.state == "APPROVED").count() as u64)
}

/// `merged_at` from a `GET /pulls/{n}` answer.
pub fn merged_at_from_pull(json: &[u8]) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct RawPull {
        #[serde(default)]
        merged_at: Option<String>,
    }
    let raw: RawPull = serde_json::from_slice(json).map_err(|e| describe(&e))?;
    Ok(raw.merged_at.map(crate::item::utc_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's own published examples (tests/fixtures, from its OpenAPI
    /// description) decode; they are used for shape, not semantics.
    #[test]
    fn githubs_examples_decode() {
        let issue = Item::from_github(include_bytes!(
            "../../tests/fixtures/issues__get.200.default.json"
        ))
        .unwrap();
        assert_eq!(issue.number, 1347);
        assert_eq!(issue.labels, ["bug"]);
        assert_eq!(issue.author, "octocat");
        // The example's pull_request object has no merged_at: we must ask.
        assert_eq!(
            issue.kind,
            Kind::Pr {
                merged_at: MergedAt::Unknown
            }
        );
        let page = Item::list_from_github(include_bytes!(
            "../../tests/fixtures/issues__list-for-repo.200.default.json"
        ))
        .unwrap();
        assert_eq!(page.len(), 1);
        let merged = merged_at_from_pull(include_bytes!(
            "../../tests/fixtures/pulls__get.200.default.json"
        ))
        .unwrap();
        assert!(merged.is_some());
    }

    #[test]
    fn nullable_fields_and_states() {
        let json = br#"{"number": 7, "title": "t", "body": null, "state": "closed",
            "labels": ["plain", {"name": "obj"}, {"id": 1}], "user": null,
            "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-02T00:00:00Z",
            "html_url": "https://github.com/o/r/pull/7",
            "pull_request": {"merged_at": null}}"#;
        let item = Item::from_github(json).unwrap();
        assert_eq!(item.body, None);
        assert_eq!(item.author, crate::item::GHOST);
        assert_eq!(item.labels, ["obj", "plain"]);
        assert_eq!(item.state(), "closed");
        let by_a_bot = String::from_utf8_lossy(json).replace(
            r#""user": null"#,
            r#""user": {"login": "dependabot[bot]", "id": 49699333, "type": "Bot"}"#,
        );
        let item = Item::from_github(by_a_bot.as_bytes()).unwrap();
        assert_eq!(item.author, "dependabot[bot]");
        let by_ghost = String::from_utf8_lossy(json).replace(
            r#""user": null"#,
            r#""user": {"login": "ghost", "id": 10137, "type": "User"}"#,
        );
        let item = Item::from_github(by_ghost.as_bytes()).unwrap();
        assert_eq!(item.author, crate::item::GHOST);
        let merged = String::from_utf8_lossy(json).replace(
            r#""merged_at": null"#,
            r#""merged_at": "2020-01-02T00:00:00Z""#,
        );
        assert_eq!(
            Item::from_github(merged.as_bytes()).unwrap().state(),
            "merged"
        );
    }

    #[test]
    fn giteas_shapes_decode() {
        let json = br#"{"id": 9, "number": 3, "title": "t", "body": "", "state": "closed",
            "labels": [{"id": 1, "name": "bug", "color": "ee0701"}],
            "user": {"id": -1, "login": "Ghost"}, "comments": 2,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z",
            "html_url": "https://codeberg.org/o/r/pulls/3",
            "pull_request": {"merged": true, "merged_at": "2024-01-02T00:00:00Z"}}"#;
        let item = Item::from_github(json).unwrap();
        assert_eq!(item.state(), "merged");
        assert_eq!(
            item.author,
            crate::item::GHOST,
            "Gitea's ghost is a deleted account"
        );
        assert_eq!(item.body, None);
        assert_eq!(item.labels, ["bug"]);
        assert_eq!(item.listed_comments, Some(2));
        let comments = comments_from_gitea(
            br#"[{"id": 11, "user": {"id": 2, "login": "ann"}, "body": "ok",
                 "created_at": "2024-01-01T09:00:00+08:00"},
                {"id": 12, "user": {"id": -1, "login": "Ghost"}, "body": "x",
                 "created_at": "2024-01-01T02:00:00Z"}]"#,
        )
        .unwrap();
        assert_eq!(comments[0].id, "11");
        assert_eq!(comments[0].created_at, "2024-01-01T01:00:00Z");
        assert_eq!(comments[1].author, crate::item::GHOST);
        let approvals = approvals_from_gitea(
            br#"[{"state": "APPROVED"}, {"state": "REQUEST_CHANGES"}, {"state": "APPROVED"},
                {"state": "COMMENT"}]"#,
        )
        .unwrap();
        assert_eq!(approvals, 2);
        assert!(comments_from_gitea(b"{}").is_err());
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        for body in [
            &b"<html>hello</html>"[..],
            b"{\"number\": \"7\"}",
            b"{\"number\": 0, \"title\": \"t\", \"state\": \"open\", \"created_at\": \"\", \"updated_at\": \"\", \"html_url\": \"\"}",
            b"{\"number\": 99999999999, \"title\": \"t\", \"state\": \"open\", \"created_at\": \"\", \"updated_at\": \"\", \"html_url\": \"\"}",
            b"{\"number\": 1, \"title\": \"t\", \"state\": \"weird\", \"created_at\": \"\", \"updated_at\": \"\", \"html_url\": \"\"}",
            b"[[[[[[[[[[",
            b"",
        ] {
            assert!(Item::from_github(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let deep = "[".repeat(100_000);
        assert!(Item::list_from_github(deep.as_bytes()).is_err());
    }
}
