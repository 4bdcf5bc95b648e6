//! One truth whichever API answered: the same forge drained once through
//! GitHub's REST API and once through its GraphQL API stores the same
//! issues, PRs and events, field for field. The two APIs spell things
//! differently (a bot is `dependabot[bot]` in REST and a `Bot` named
//! `dependabot` in GraphQL; a deleted account is REST's user `ghost` and
//! GraphQL's `null`; an empty body is REST's `null` and GraphQL's `""`; the
//! fake names labels in a different order in each), and none of it may show.

mod drive;
mod testenv;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use fakeforge::{FakeForge, Item};
use serde_json::Value;
use testenv::{FORGE, TestEnv};

const TOKEN: &str = "ghp_oneTruthTestToken0123456789";

/// Every spelling the two APIs disagree on, on issues and PRs of every state.
fn world() -> Vec<Item> {
    let t = |day: u32, hour: u32| format!("2024-03-{day:02}T{hour:02}:00:00Z");
    vec![
        Item::issue(1, "Open, by a user, labels in one order")
            .labels(&["bug", "Area: parser", "api"])
            .comment(Some("octocat"), "Seen it too.", &t(2, 1)),
        Item::issue(2, "Closed, by a deleted account, no body")
            .author(None)
            .body(None)
            .labels(&["api", "bug"])
            .closed(),
        Item::issue(3, "Open, an empty body, by a bot")
            .author(Some("github-actions[bot]"))
            .body(Some(""))
            .labels(&["Area: parser", "bug", "api"]),
        Item::pr(4, "Bump serde from 1.0.1 to 1.0.2")
            .author(Some("dependabot[bot]"))
            .labels(&["dependencies", "Rust"])
            .comment(Some("github-actions[bot]"), "Checks passed.", &t(4, 1))
            .comment(None, "From a deleted account.", &t(4, 2))
            .review(Some("octocat"), "APPROVED")
            .merged(&t(5, 3)),
        Item::pr(5, "Closed without merging, by renovate")
            .author(Some("renovate[bot]"))
            .body(None)
            .labels(&["Rust", "dependencies"])
            .closed(),
        Item::pr(6, "Open, by a deleted account")
            .author(None)
            .body(Some(""))
            .closes(&[1, 2])
            .comment(Some("dependabot[bot]"), "Rebasing.", &t(6, 1)),
        Item::pr(7, "Merged, by a user")
            .labels(&["z-last", "A-first", "m-middle"])
            .merged(&t(7, 12)),
        Item::issue(8, "Closed, by a bot, with a comment by a deleted account")
            .author(Some("renovate[bot]"))
            .comment(None, "Gone.", &t(8, 1))
            .closed_at(&t(9, 0)),
    ]
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn forge() -> FakeForge {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    forge.require_token(TOKEN);
    let reset = now_secs() + 3600;
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.set_graphql_rate_limit(10_000_000, 10_000_000, reset);
    for item in world() {
        forge.put(FORGE, item);
    }
    forge
}

/// A new repository mentioning every number of the world, drained with
/// `--api api`; returns it with the paths the fake was asked.
fn drained(forge: &FakeForge, api: &str) -> (TestEnv, Vec<String>) {
    let env = TestEnv::with_origin();
    let count = world().len();
    for n in 1..=count {
        env.commit(&format!("change {n} (#{n})"));
    }
    drive::run_with(
        &env,
        env.patina_home(),
        testenv::NO_FORGE,
        &[],
        &["--offline"],
    )
    .ok();
    forge.clear_log();
    let ran = drive::run_with(
        &env,
        env.patina_home(),
        &forge.url(),
        &[("GITHUB_TOKEN", TOKEN)],
        &[
            "--limit",
            &count.to_string(),
            "--delay",
            "10ms",
            "--api",
            api,
        ],
    );
    ran.ok();
    let (resolved, failed, pending, _) = ran.summary();
    assert_eq!(
        (resolved, failed, pending),
        (count as u64, 0, 0),
        "{}",
        ran.dump()
    );
    let paths = forge.requests().into_iter().map(|r| r.path).collect();
    (env, paths)
}

/// `number → column → value` for `sql`, whose first column is the number.
fn rows(env: &TestEnv, columns: &[&str], from: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    let sql = format!("SELECT {} FROM {from}", columns.join(", "));
    env.query(&sql)
        .into_iter()
        .map(|row| {
            let fields = columns
                .iter()
                .zip(&row)
                .map(|(c, v)| (c.to_string(), Value::String(v.clone())))
                .collect();
            (row[0].clone(), fields)
        })
        .collect()
}

/// Each event's `data` as a map, keyed by `type #number`, with the
/// event's own columns beside it, less what only GraphQL brings.
fn events(env: &TestEnv) -> BTreeMap<String, BTreeMap<String, Value>> {
    env.query(
        "SELECT event_type, source_id, timestamp, data FROM eventlog
         WHERE event_type IN ('forge.issue', 'forge.pr')",
    )
    .into_iter()
    .map(|row| {
        let Value::Object(data) = serde_json::from_str::<Value>(&row[3]).unwrap() else {
            panic!("event data is not an object: {}", row[3]);
        };
        let mut fields: BTreeMap<String, Value> = data
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "comments" | "approvals" | "linked_issues"))
            .collect();
        fields.insert("(source_id)".into(), Value::String(row[1].clone()));
        fields.insert("(timestamp)".into(), Value::String(row[2].clone()));
        (format!("{} #{}", row[0], row[1]), fields)
    })
    .collect()
}

/// Every difference between the two, as `what #n field: rest … graphql …`.
fn differences(
    what: &str,
    rest: &BTreeMap<String, BTreeMap<String, Value>>,
    graphql: &BTreeMap<String, BTreeMap<String, Value>>,
) -> Vec<String> {
    let mut found = Vec::new();
    for key in rest.keys().chain(graphql.keys()) {
        let (Some(a), Some(b)) = (rest.get(key), graphql.get(key)) else {
            found.push(format!(
                "{what} {key}: stored by {} only",
                if rest.contains_key(key) {
                    "REST"
                } else {
                    "GraphQL"
                }
            ));
            continue;
        };
        for field in a.keys().chain(b.keys()) {
            if a.get(field) != b.get(field) {
                found.push(format!(
                    "{what} {key} {field}: REST {} / GraphQL {}",
                    a.get(field).map_or("(absent)".into(), Value::to_string),
                    b.get(field).map_or("(absent)".into(), Value::to_string),
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// patina's own columns (the ones only GraphQL fills, `linked_issues` and
/// `approvals`, and `event_seq` left out).
const ISSUE_COLUMNS: &[&str] = &[
    "number",
    "title",
    "body",
    "state",
    "labels",
    "author",
    "created_at",
    "updated_at",
    "url",
];
const PR_COLUMNS: &[&str] = &[
    "number",
    "title",
    "body",
    "state",
    "labels",
    "author",
    "created_at",
    "merged_at",
    "url",
];

#[test]
fn rest_and_graphql_store_the_same_items_field_for_field() {
    let forge = forge();
    let (rest, rest_paths) = drained(&forge, "rest");
    let (graphql, graphql_paths) = drained(&forge, "graphql");
    // Each run asked the API it was told to, and only that one.
    assert!(
        !rest_paths.is_empty() && rest_paths.iter().all(|p| !p.contains("graphql")),
        "{rest_paths:?}"
    );
    assert!(
        graphql_paths.iter().any(|p| p.contains("graphql"))
            && !graphql_paths.iter().any(|p| p.contains("/issues/")),
        "{graphql_paths:?}"
    );

    let mut found = differences(
        "forge_issues",
        &rows(&rest, ISSUE_COLUMNS, "forge_issues"),
        &rows(&graphql, ISSUE_COLUMNS, "forge_issues"),
    );
    found.extend(differences(
        "forge_prs",
        &rows(&rest, PR_COLUMNS, "forge_prs"),
        &rows(&graphql, PR_COLUMNS, "forge_prs"),
    ));
    found.extend(differences("eventlog", &events(&rest), &events(&graphql)));
    assert!(
        found.is_empty(),
        "REST and GraphQL stored different things:\n{}",
        found.join("\n")
    );

    // And the one spelling is REST's, the real logins: every item is there.
    let authors: BTreeMap<String, String> = rest
        .query(
            "SELECT number, author FROM forge_issues UNION ALL SELECT number, author FROM forge_prs",
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expected: BTreeMap<String, String> = world()
        .iter()
        .map(|i| {
            let login = i.author.clone().unwrap_or_else(|| "ghost".into());
            (i.number.to_string(), login)
        })
        .collect();
    assert_eq!(authors, expected);
    let labels = rest.query("SELECT labels FROM forge_issues WHERE number = 1");
    assert_eq!(labels[0][0], r#"["api","Area: parser","bug"]"#);
    let states = graphql.query("SELECT number, state FROM forge_prs ORDER BY number");
    assert_eq!(
        states,
        [
            ["4", "merged"],
            ["5", "closed"],
            ["6", "open"],
            ["7", "merged"]
        ]
    );
    let bodies = graphql.query("SELECT number FROM forge_issues WHERE body IS NULL");
    assert_eq!(
        bodies,
        [["2"], ["3"]],
        "an empty body is null, as REST sends it"
    );
}

#[test]
fn comments_by_bots_and_deleted_accounts_are_spelled_as_rest_spells_them() {
    let forge = forge();
    let (graphql, _) = drained(&forge, "graphql");
    let comments = graphql.query(
        "SELECT number, position, author, body FROM forge_comments ORDER BY number, position",
    );
    let expected: Vec<Vec<String>> = world()
        .iter()
        .flat_map(|item| {
            item.comments.iter().enumerate().map(|(k, c)| {
                vec![
                    item.number.to_string(),
                    k.to_string(),
                    c.author.clone().unwrap_or_else(|| "ghost".into()),
                    c.body.clone(),
                ]
            })
        })
        .collect();
    assert_eq!(comments, expected);
    // The PR event's discussion says the same.
    let text = graphql.query(
        "SELECT json_extract(data, '$.comments') FROM eventlog
         WHERE event_type = 'forge.pr' AND source_id = '4'",
    );
    assert_eq!(
        text[0][0],
        "github-actions[bot]: Checks passed.\nghost: From a deleted account."
    );
}
