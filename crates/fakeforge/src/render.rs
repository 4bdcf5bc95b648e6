//! The JSON bodies, built from GitHub's own published examples
//! (`tests/fixtures/`) so that every field GitHub sends is there and the
//! client's deserialisation meets the real shape; only the fields that carry
//! meaning (number, title, state, user, labels, dates, URLs, PR data) are set.

use serde_json::{Map, Value, json};

use super::{Item, Kind};

const ISSUE: &str = include_str!("../../../tests/fixtures/issues__get.200.default.json");
const PULL: &str = include_str!("../../../tests/fixtures/pulls__get.200.default.json");
const RATE: &str = include_str!("../../../tests/fixtures/rate-limit__get.200.default.json");

/// The number used in the examples' URLs (`…/issues/1347`).
const EXAMPLE_NUMBER: &str = "/1347";

/// Where GitHub's documentation links point; the client may show them.
pub const DOCS: &str = "https://docs.github.com/rest";

/// The examples with one repository's names and the fake's base URL filled in.
pub struct Templates {
    issue: Value,
    pull: Value,
    user: Value,
    label: Value,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is valid JSON")
}

/// Applies `f` to every string in `v`, replacing those it maps.
fn map_strings(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| map_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| map_strings(i, f)),
        _ => {}
    }
}

/// API URLs point at the fake (a client that follows `url` stays on
/// 127.0.0.1); web URLs keep `https://github.com`, which is never fetched.
fn localise(v: &mut Value, base: &str, full_name: &str) {
    map_strings(v, &|s| {
        (s.contains("https://api.github.com") || s.contains("octocat/Hello-World")).then(|| {
            s.replace("https://api.github.com", base)
                .replace("octocat/Hello-World", full_name)
        })
    });
}

impl Templates {
    pub fn new(base: &str, full_name: &str) -> Templates {
        let mut issue = parse(ISSUE);
        let mut pull = parse(PULL);
        localise(&mut issue, base, full_name);
        localise(&mut pull, base, full_name);
        let user = issue["user"].clone();
        let label = issue["labels"][0].clone();
        Templates {
            issue,
            pull,
            user,
            label,
        }
    }

    /// A user object for `login`, as GitHub's REST API sends it: a deleted
    /// account (`None`) is its user `ghost`, a login ending in `[bot]` is
    /// of type `Bot`.
    pub fn user(&self, login: Option<&str>) -> Value {
        let (login, id) = match login {
            Some(login) => (login, small_id(login)),
            None => ("ghost", 10137),
        };
        let mut user = self.user.clone();
        map_strings(&mut user, &|s| {
            s.contains("octocat").then(|| s.replace("octocat", login))
        });
        user["login"] = json!(login);
        user["id"] = json!(id);
        if login.ends_with("[bot]") {
            user["type"] = json!("Bot");
        }
        user
    }

    fn labels(&self, api_repo: &str, names: &[String]) -> Value {
        names
            .iter()
            .map(|name| {
                let mut label = self.label.clone();
                label["id"] = json!(small_id(name));
                label["node_id"] = json!(format!("LA_fake{}", small_id(name)));
                label["url"] = json!(format!("{api_repo}/labels/{name}"));
                label["name"] = json!(name);
                label["default"] = json!(false);
                label
            })
            .collect()
    }
}

/// Where an item lives, for its URLs and ids.
pub struct Place<'a> {
    pub base: &'a str,
    pub full_name: &'a str,
    pub repo_id: u64,
}

impl Place<'_> {
    fn api_repo(&self) -> String {
        format!("{}/repos/{}", self.base, self.full_name)
    }

    fn html_repo(&self) -> String {
        format!("https://github.com/{}", self.full_name)
    }

    fn item_id(&self, number: u64) -> u64 {
        self.repo_id * 10_000_000 + number
    }
}

fn apply_overrides(v: &mut Value, item: &Item) {
    if let Value::Object(map) = v {
        for (key, value) in &item.overrides {
            match value {
                Some(value) => {
                    map.insert(key.clone(), value.clone());
                }
                None => {
                    map.remove(key);
                }
            }
        }
    }
}

/// The `issues__get` shape, for issues and PRs alike (a PR carries
/// `pull_request`, whose `merged_at` tells merged from closed).
pub fn issue(t: &Templates, at: &Place, item: &Item) -> Value {
    let n = item.number;
    let api_repo = at.api_repo();
    let html_repo = at.html_repo();
    let mut v = t.issue.clone();
    let o = v.as_object_mut().expect("issue example is an object");
    let closed = item.state == "closed";
    let user = t.user(item.author.as_deref());
    let set = |o: &mut Map<String, Value>, key: &str, value: Value| {
        o.insert(key.to_string(), value);
    };
    set(o, "id", json!(at.item_id(n)));
    set(o, "node_id", json!(format!("I_fake{}", at.item_id(n))));
    set(o, "url", json!(format!("{api_repo}/issues/{n}")));
    set(o, "repository_url", json!(api_repo));
    set(
        o,
        "labels_url",
        json!(format!("{api_repo}/issues/{n}/labels{{/name}}")),
    );
    set(
        o,
        "comments_url",
        json!(format!("{api_repo}/issues/{n}/comments")),
    );
    set(
        o,
        "events_url",
        json!(format!("{api_repo}/issues/{n}/events")),
    );
    let web = if item.is_pr() { "pull" } else { "issues" };
    set(o, "html_url", json!(format!("{html_repo}/{web}/{n}")));
    set(o, "number", json!(n));
    set(o, "state", json!(item.state));
    set(o, "title", json!(item.title));
    set(o, "body", json!(item.body));
    set(o, "labels", t.labels(&api_repo, &item.labels));
    set(o, "locked", json!(false));
    set(o, "active_lock_reason", Value::Null);
    set(o, "comments", json!(item.comments.len()));
    set(o, "created_at", json!(item.created_at));
    set(o, "updated_at", json!(item.updated_at));
    set(o, "closed_at", json!(item.closed_at));
    set(
        o,
        "closed_by",
        if closed { user.clone() } else { Value::Null },
    );
    let reason = if closed && !item.is_pr() {
        json!("completed")
    } else {
        Value::Null
    };
    set(o, "state_reason", reason);
    if item.author.is_none() {
        set(o, "author_association", json!("NONE"));
    }
    set(o, "user", user);
    match &item.kind {
        Kind::Issue => {
            o.remove("pull_request");
        }
        Kind::Pr { merged_at, .. } => set(
            o,
            "pull_request",
            json!({
                "url": format!("{api_repo}/pulls/{n}"),
                "html_url": format!("{html_repo}/pull/{n}"),
                "diff_url": format!("{html_repo}/pull/{n}.diff"),
                "patch_url": format!("{html_repo}/pull/{n}.patch"),
                "merged_at": merged_at,
            }),
        ),
    }
    apply_overrides(&mut v, item);
    v
}

/// The `pulls__get` shape. Only for PRs.
pub fn pull(t: &Templates, at: &Place, item: &Item) -> Value {
    let n = item.number;
    let Kind::Pr { merged_at, merged } = &item.kind else {
        panic!("pull() called for issue #{n}");
    };
    let mut v = t.pull.clone();
    let number_path = format!("/{n}");
    map_strings(&mut v, &|s| {
        s.contains(EXAMPLE_NUMBER)
            .then(|| s.replace(EXAMPLE_NUMBER, &number_path))
    });
    let o = v.as_object_mut().expect("pull example is an object");
    let user = t.user(item.author.as_deref());
    let open = item.state == "open";
    let set = |o: &mut Map<String, Value>, key: &str, value: Value| {
        o.insert(key.to_string(), value);
    };
    set(o, "id", json!(at.item_id(n)));
    set(o, "node_id", json!(format!("PR_fake{}", at.item_id(n))));
    set(o, "number", json!(n));
    set(o, "state", json!(item.state));
    set(o, "title", json!(item.title));
    set(o, "body", json!(item.body));
    set(o, "labels", t.labels(&at.api_repo(), &item.labels));
    set(o, "locked", json!(false));
    set(o, "active_lock_reason", Value::Null);
    set(o, "comments", json!(item.comments.len()));
    set(o, "created_at", json!(item.created_at));
    set(o, "updated_at", json!(item.updated_at));
    set(o, "closed_at", json!(item.closed_at));
    set(o, "merged_at", json!(merged_at));
    set(o, "merged", json!(merged));
    set(
        o,
        "merged_by",
        if *merged { user.clone() } else { Value::Null },
    );
    let sha = merged.then(|| format!("{:016x}{:016x}{:08x}", hash(n, 1), hash(n, 2), n));
    set(o, "merge_commit_sha", json!(sha));
    set(o, "draft", json!(false));
    set(o, "auto_merge", Value::Null);
    set(o, "mergeable", if open { json!(true) } else { Value::Null });
    let mergeable_state = if open { "clean" } else { "unknown" };
    set(o, "mergeable_state", json!(mergeable_state));
    if item.author.is_none() {
        set(o, "author_association", json!("NONE"));
    }
    set(o, "user", user);
    apply_overrides(&mut v, item);
    v
}

/// A minimal repository object: what a client reads to check the repository.
pub fn repository(base: &str, owner: &str, name: &str, id: u64, open_issues: usize) -> Value {
    let full = format!("{owner}/{name}");
    json!({
        "id": id,
        "node_id": format!("R_fake{id}"),
        "name": name,
        "full_name": full,
        "private": false,
        "owner": {
            "login": owner,
            "id": small_id(owner),
            "type": "Organization",
            "url": format!("{base}/users/{owner}"),
            "html_url": format!("https://github.com/{owner}"),
        },
        "html_url": format!("https://github.com/{full}"),
        "description": null,
        "fork": false,
        "url": format!("{base}/repos/{full}"),
        "issues_url": format!("{base}/repos/{full}/issues{{/number}}"),
        "pulls_url": format!("{base}/repos/{full}/pulls{{/number}}"),
        "default_branch": "main",
        "has_issues": true,
        "archived": false,
        "disabled": false,
        "visibility": "public",
        "open_issues_count": open_issues,
    })
}

/// The `/rate_limit` body: GitHub's example with the `core` numbers (and the
/// deprecated `rate` copy of them) and the `graphql` ones, as
/// (limit, used, remaining, reset), set to the fake's current ones.
pub fn rate_limit(limit: u64, remaining: u64, reset: u64, graphql: (u64, u64, u64, u64)) -> Value {
    let mut v = parse(RATE);
    let core = json!({
        "limit": limit,
        "used": limit.saturating_sub(remaining),
        "remaining": remaining,
        "reset": reset,
    });
    let (g_limit, g_used, g_remaining, g_reset) = graphql;
    v["resources"]["graphql"] = json!({
        "limit": g_limit,
        "used": g_used,
        "remaining": g_remaining,
        "reset": g_reset,
    });
    v["resources"]["core"] = core.clone();
    v["rate"] = core;
    v
}

/// A stable 64-bit FNV-1a hash (std's `DefaultHasher` may change between
/// Rust releases; ETags and ids must not).
pub fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn hash(n: u64, seed: u64) -> u64 {
    fnv(&n.to_le_bytes(), seed)
}

/// Small positive ids for users and labels, stable across runs.
fn small_id(name: &str) -> u64 {
    fnv(name.as_bytes(), 0) % 100_000_000 + 1
}

/// `W/"…"` with 64 hex digits, the form GitHub's ETags have.
pub fn etag(body: &[u8]) -> String {
    let parts: Vec<String> = (0..4).map(|s| format!("{:016x}", fnv(body, s))).collect();
    format!("W/\"{}\"", parts.concat())
}
