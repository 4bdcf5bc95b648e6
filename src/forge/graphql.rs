//! GitHub's GraphQL API: many numbers per request, with the context REST
//! gives only at extra requests per PR (comments, approvals, the issues a PR
//! closes). The query is built from fixed text and the numbers alone (owner
//! and name travel as variables), so every shape it can take is the one
//! validated against GitHub's published schema in CI.
//!
//! Decoding is per alias: a node that does not decode fails that number
//! only, and the rest of the batch is stored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use super::decode::{believable_reset, describe};
use crate::item::{Actor, Comment, Details, Item, Kind, MAX_NUMBER, MergedAt};

/// The most numbers one query asks for. GitHub's node limit allows far
/// more; what bounds a batch is its answer time (GitHub gives up at 10 s).
pub const MAX_BATCH: usize = 100;
/// First comments kept per item (the count is kept too).
pub const COMMENTS: u32 = 20;
/// Labels per item; more than this on one item is rare.
pub const LABELS: u32 = 50;
/// Closing issue references per PR.
pub const CLOSING: u32 = 25;

/// The fields asked of every item. `state` has a different type on Issue and
/// on PullRequest, so the two are aliased apart (GraphQL's union rule).
/// Connections take a `first:` each; in a batch of 100 they cost about one
/// point apiece, so a full batch costs a few points.
fn fragment() -> String {
    let common = format!(
        "number title body url createdAt updatedAt closedAt author {{ __typename login }} \
         labels(first: {LABELS}) {{ nodes {{ name }} }} \
         comments(first: {COMMENTS}) {{ totalCount nodes {{ id author {{ __typename login }} body createdAt }} }}"
    );
    format!(
        "fragment item on IssueOrPullRequest {{\n  __typename\n  \
         ... on Issue {{ {common} issueState: state }}\n  \
         ... on PullRequest {{ {common} prState: state merged mergedAt \
         reviews(states: APPROVED) {{ totalCount }} \
         closingIssuesReferences(first: {CLOSING}) {{ nodes {{ number repository {{ nameWithOwner }} }} }} }}\n}}\n"
    )
}

/// The query for `numbers`, each under the alias `n<number>`.
pub fn query(numbers: &[u32]) -> String {
    let mut text = String::from(
        "query($owner: String!, $name: String!) {\n  rateLimit { cost remaining resetAt limit }\n  \
         repository(owner: $owner, name: $name) {\n",
    );
    for n in numbers {
        let _ = writeln!(
            text,
            "    n{n}: issueOrPullRequest(number: {n}) {{ ...item }}"
        );
    }
    text.push_str("  }\n}\n");
    text.push_str(&fragment());
    text
}

/// The request body: the query and its variables, as JSON.
pub fn request_body(numbers: &[u32], owner: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "query": query(numbers),
        "variables": {"owner": owner, "name": name},
    }))
    .expect("a JSON value serialises")
}

/// What a 200 answer to a batch said.
#[derive(Debug, Default)]
pub struct Batch {
    /// `rateLimit` as the query reported it.
    pub rate: Option<Points>,
    /// One entry per number asked that the answer speaks of.
    pub results: Vec<(u32, Node)>,
    /// `RATE_LIMITED`: nothing was answered; wait for the reset.
    pub rate_limited: bool,
    /// The repository itself could not be resolved.
    pub repository_missing: bool,
    /// Errors that are about the query as a whole (no data at all).
    pub failure: Option<String>,
}

/// The points budget of GraphQL, from the query's own `rateLimit` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Points {
    /// What this query cost.
    pub cost: u64,
    /// Points left until `reset`.
    pub remaining: u64,
    /// The window's whole budget of points.
    pub limit: u64,
    /// When the points come back (`resetAt`).
    pub reset: SystemTime,
}

/// What one number of a batch came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    /// The issue or PR, decoded.
    Found(Box<Item>),
    /// `null` with a `NOT_FOUND` error: no such number (or deleted, or moved).
    NotFound,
    /// `null` for another reason, or a node that does not decode.
    Failed(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    errors: Vec<Error>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    rate_limit: Option<RawPoints>,
    #[serde(default)]
    repository: Option<HashMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPoints {
    cost: u64,
    remaining: u64,
    #[serde(default)]
    limit: Option<u64>,
    reset_at: String,
}

#[derive(Deserialize)]
struct Error {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    path: Vec<Value>,
    #[serde(default)]
    message: String,
}

/// Decodes a 200 answer to the batch `asked`, in `repo` (`owner/name`, for
/// telling this repository's linked issues from others').
pub fn decode(body: &[u8], asked: &[u32], repo: &str) -> Result<Batch, String> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| describe(&e))?;
    let mut batch = Batch {
        rate: envelope
            .data
            .as_ref()
            .and_then(|d| d.rate_limit.as_ref())
            .and_then(RawPoints::points),
        ..Batch::default()
    };
    let mut node_errors: HashMap<&str, &Error> = HashMap::new();
    let mut general = Vec::new();
    for error in &envelope.errors {
        match (error.kind.as_deref(), error.path.as_slice()) {
            (Some("RATE_LIMITED"), _) => batch.rate_limited = true,
            (Some("NOT_FOUND"), [Value::String(first)]) if first == "repository" => {
                batch.repository_missing = true
            }
            (_, [Value::String(first), Value::String(alias), ..]) if first == "repository" => {
                node_errors.entry(alias.as_str()).or_insert(error);
            }
            _ => general.push(one_line(&error.message)),
        }
    }
    if batch.rate_limited || batch.repository_missing {
        return Ok(batch);
    }
    let Some(nodes) = envelope.data.and_then(|d| d.repository) else {
        batch.failure = Some(if general.is_empty() {
            "the answer has no data".to_owned()
        } else {
            format!("GraphQL error: {}", general.join("; "))
        });
        return Ok(batch);
    };
    for &number in asked {
        let alias = format!("n{number}");
        let node = match nodes.get(&alias) {
            Some(Value::Null) | None => match node_errors.get(alias.as_str()) {
                Some(e) if e.kind.as_deref() == Some("NOT_FOUND") => Node::NotFound,
                Some(e) => Node::Failed(format!(
                    "GraphQL error {}: {}",
                    e.kind.as_deref().unwrap_or("without a type"),
                    one_line(&e.message)
                )),
                None if !general.is_empty() => {
                    Node::Failed(format!("GraphQL error: {}", general.join("; ")))
                }
                None => Node::Failed("missing from the answer".to_owned()),
            },
            Some(value) => match RawNode::deserialize(value) {
                Ok(raw) => match raw.into_item(repo) {
                    Ok(item) => Node::Found(Box::new(item)),
                    Err(why) => Node::Failed(why),
                },
                Err(e) => Node::Failed(format!("malformed node in the answer ({e})")),
            },
        };
        batch.results.push((number, node));
    }
    Ok(batch)
}

impl RawPoints {
    fn points(&self) -> Option<Points> {
        Some(Points {
            cost: self.cost,
            remaining: self.remaining,
            limit: self.limit.unwrap_or(5_000),
            reset: believable_reset(parse_time(&self.reset_at)?, SystemTime::now()),
        })
    }
}

/// An error message as one short line: it is the forge's text, and ends up
/// in a log.
fn one_line(message: &str) -> String {
    message
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    #[serde(rename = "__typename")]
    typename: String,
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    url: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    closed_at: Option<String>,
    #[serde(default)]
    author: Option<Login>,
    #[serde(default)]
    labels: Option<Nodes<LabelNode>>,
    #[serde(default)]
    comments: Option<Nodes<RawComment>>,
    #[serde(default)]
    issue_state: Option<String>,
    #[serde(default)]
    pr_state: Option<String>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    reviews: Option<Count>,
    #[serde(default)]
    closing_issues_references: Option<Nodes<Closing>>,
}

/// An `Actor`: a `User`, `Bot`, `Organization`, `Mannequin` or
/// `EnterpriseUserAccount`.
#[derive(Deserialize)]
struct Login {
    #[serde(default, rename = "__typename")]
    typename: Option<String>,
    login: String,
}

impl Login {
    /// GraphQL names a bot without the `[bot]` of its login and a deleted
    /// account `null`; [`Actor::login`] spells both as REST does.
    fn actor(login: Option<Self>) -> Actor {
        match login {
            None => Actor::Deleted,
            Some(l) if l.typename.as_deref() == Some("Bot") => Actor::Bot(l.login),
            Some(l) => Actor::Account(l.login),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Nodes<T> {
    #[serde(default)]
    total_count: Option<u64>,
    #[serde(default = "Vec::new")]
    nodes: Vec<Option<T>>,
}

#[derive(Deserialize)]
struct LabelNode {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComment {
    id: String,
    #[serde(default)]
    author: Option<Login>,
    #[serde(default)]
    body: String,
    created_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Count {
    total_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Closing {
    number: u64,
    #[serde(default)]
    repository: Option<NameWithOwner>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NameWithOwner {
    name_with_owner: String,
}

impl RawNode {
    fn into_item(self, repo: &str) -> Result<Item, String> {
        let number = u32::try_from(self.number)
            .ok()
            .filter(|&n| n >= 1 && u64::from(n) <= MAX_NUMBER)
            .ok_or_else(|| format!("malformed node (number {} out of range)", self.number))?;
        let comments = self.comments.unwrap_or(Nodes {
            total_count: Some(0),
            nodes: Vec::new(),
        });
        let mut details = Details {
            comment_count: comments.total_count.unwrap_or(0),
            comments: comments
                .nodes
                .into_iter()
                .flatten()
                .map(|c| Comment {
                    id: c.id,
                    author: Login::actor(c.author).login(),
                    body: c.body,
                    created_at: c.created_at,
                })
                .collect(),
            approvals: None,
            linked_issues: None,
        };
        let (kind, open) = match self.typename.as_str() {
            "Issue" => {
                let open = match self.issue_state.as_deref() {
                    Some("OPEN") => true,
                    Some("CLOSED") => false,
                    other => return Err(format!("malformed node (issue state {other:?})")),
                };
                (Kind::Issue, open)
            }
            "PullRequest" => {
                let open = match self.pr_state.as_deref() {
                    Some("OPEN") => true,
                    Some("CLOSED" | "MERGED") => false,
                    other => return Err(format!("malformed node (PR state {other:?})")),
                };
                let merged_at = match (self.pr_state.as_deref(), self.merged_at) {
                    (_, Some(at)) => Some(at),
                    // Merged without a time would be a contradiction; keep
                    // patina's state right and leave the time unknown.
                    (Some("MERGED"), None) => Some(self.updated_at.clone()),
                    _ => None,
                };
                details.approvals = Some(self.reviews.map_or(0, |r| r.total_count));
                let mut linked: Vec<u32> = self
                    .closing_issues_references
                    .map(|c| c.nodes)
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .filter(|c| {
                        c.repository
                            .as_ref()
                            .is_none_or(|r| r.name_with_owner.eq_ignore_ascii_case(repo))
                    })
                    .filter_map(|c| u32::try_from(c.number).ok())
                    .collect();
                linked.sort_unstable();
                linked.dedup();
                details.linked_issues = Some(linked);
                (
                    Kind::Pr {
                        merged_at: MergedAt::Known(merged_at),
                    },
                    open,
                )
            }
            other => return Err(format!("malformed node (type {other:?})")),
        };
        Ok(Item {
            number,
            kind,
            title: self.title,
            body: self.body,
            open,
            labels: self
                .labels
                .map(|l| l.nodes)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(|l| l.name)
                .collect(),
            author: Login::actor(self.author).login(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
            url: self.url,
            details: Some(details),
            listed_comments: None,
        }
        .spelled())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (GitHub's DateTime) as a time; offsets other
/// than `Z`, and dates no calendar has, are refused.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// Every query shape the code builds, written where CI validates them
    /// against GitHub's published schema (`tools/graphql-validate`).
    #[test]
    fn query_shapes_are_written_for_schema_validation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/graphql-queries");
        std::fs::create_dir_all(&dir).unwrap();
        let max: Vec<u32> = (1..=MAX_BATCH as u32).collect();
        for (name, numbers) in [
            ("batch-1", &[1][..]),
            ("batch-2", &[12, 2_147_483_647][..]),
            ("batch-max", &max[..]),
        ] {
            let q = query(numbers);
            assert_eq!(q.matches("issueOrPullRequest(").count(), numbers.len());
            std::fs::write(dir.join(format!("unit-{name}.graphql")), q).unwrap();
        }
        let body: Value = serde_json::from_slice(&request_body(&[5], "o", "n")).unwrap();
        assert_eq!(body["variables"]["owner"], "o");
        assert!(
            body["query"]
                .as_str()
                .unwrap()
                .contains("n5: issueOrPullRequest(number: 5)")
        );
    }

    fn answer(nodes: Value, errors: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "data": {
                "rateLimit": {"cost": 3, "remaining": 4990, "limit": 5000, "resetAt": "2026-11-28T04:00:00Z"},
                "repository": nodes,
            },
            "errors": errors,
        }))
        .unwrap()
    }

    fn pr(number: u64, state: &str, merged_at: Value) -> Value {
        serde_json::json!({
            "__typename": "PullRequest", "number": number, "title": "t", "body": "",
            "url": format!("https://github.com/o/n/pull/{number}"),
            "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-02T00:00:00Z",
            "author": null, "labels": {"nodes": [{"name": "bug"}]},
            "comments": {"totalCount": 30, "nodes": [
                {"id": "IC_1", "author": {"__typename": "Bot", "login": "github-actions"}, "body": "LGTM", "createdAt": "2020-01-01T01:00:00Z"},
                {"id": "IC_2", "author": null, "body": "x", "createdAt": "2020-01-01T02:00:00Z"}]},
            "prState": state, "merged": state == "MERGED", "mergedAt": merged_at,
            "reviews": {"totalCount": 2},
            "closingIssuesReferences": {"nodes": [
                {"number": 9, "repository": {"nameWithOwner": "O/N"}},
                {"number": 4, "repository": {"nameWithOwner": "other/repo"}},
                {"number": 3, "repository": {"nameWithOwner": "o/n"}}]},
        })
    }

    #[test]
    fn a_mixed_batch_decodes_node_by_node() {
        let issue = serde_json::json!({
            "__typename": "Issue", "number": 1, "title": "i", "body": "text",
            "url": "https://github.com/o/n/issues/1",
            "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-02T00:00:00Z",
            "author": {"login": "bob"}, "labels": {"nodes": []},
            "comments": {"totalCount": 0, "nodes": []}, "issueState": "CLOSED",
        });
        let body = answer(
            serde_json::json!({
                "n1": issue,
                "n2": pr(2, "MERGED", "2020-01-02T00:00:00Z".into()),
                "n3": pr(3, "CLOSED", Value::Null),
                "n4": null,
                "n5": {"__typename": "Issue", "number": "five"},
                "n6": null,
            }),
            serde_json::json!([
                {"type": "NOT_FOUND", "path": ["repository", "n4"], "message": "Could not resolve"},
                {"type": "FORBIDDEN", "path": ["repository", "n6"], "message": "no"},
            ]),
        );
        let batch = decode(&body, &[1, 2, 3, 4, 5, 6, 7], "o/n").unwrap();
        assert_eq!(batch.rate.unwrap().cost, 3);
        let get = |n: u32| &batch.results.iter().find(|(m, _)| *m == n).unwrap().1;
        let Node::Found(issue) = get(1) else { panic!() };
        assert_eq!(issue.state(), "closed");
        assert_eq!(issue.author, "bob");
        let Node::Found(merged) = get(2) else {
            panic!()
        };
        assert_eq!(merged.state(), "merged");
        assert_eq!(merged.body, None);
        assert_eq!(merged.author, crate::item::GHOST);
        let details = merged.details.as_ref().unwrap();
        assert_eq!(details.approvals, Some(2));
        assert_eq!(details.linked_issues.as_deref(), Some(&[3, 9][..]));
        assert_eq!(details.comment_count, 30);
        assert_eq!(details.comments[0].author, "github-actions[bot]");
        assert_eq!(details.comments[1].author, crate::item::GHOST);
        let Node::Found(closed) = get(3) else {
            panic!()
        };
        assert_eq!(closed.state(), "closed");
        assert_eq!(get(4), &Node::NotFound);
        assert!(matches!(get(5), Node::Failed(w) if w.contains("malformed")));
        assert!(matches!(get(6), Node::Failed(w) if w.contains("FORBIDDEN")));
        assert!(matches!(get(7), Node::Failed(_)));
    }

    #[test]
    fn limits_and_whole_query_errors() {
        let limited =
            br#"{"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded"}]}"#;
        assert!(decode(limited, &[1], "o/n").unwrap().rate_limited);
        let missing = br#"{"data":{"repository":null},"errors":[{"type":"NOT_FOUND","path":["repository"],"message":"Could not resolve to a Repository"}]}"#;
        assert!(decode(missing, &[1], "o/n").unwrap().repository_missing);
        let invalid = br#"{"errors":[{"message":"Field 'x' doesn't exist on type 'Issue'"}]}"#;
        let batch = decode(invalid, &[1], "o/n").unwrap();
        assert!(batch.failure.unwrap().contains("doesn't exist"));
        assert!(decode(b"<html>", &[1], "o/n").is_err());
        let deep = "[".repeat(100_000);
        assert!(decode(deep.as_bytes(), &[1], "o/n").is_err());
    }

    #[test]
    fn github_times() {
        assert_eq!(
            parse_time("1970-01-01T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::ZERO)
        );
        assert_eq!(
            parse_time("2026-11-28T04:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_838_400))
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-28 04:00:00Z",
            "2026-11-28T04:00:00+01:00",
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
