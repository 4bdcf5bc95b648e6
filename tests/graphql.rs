//! Resolving in GraphQL batches (a token is set): many numbers per request,
//! with the discussion REST leaves out, stored exactly; the batch shrinks
//! when the forge struggles and grows back; rate limits are waits, not
//! failures; without a token, or on a host without GraphQL, REST does it.
//!
//! Every query the fake receives is also written to `target/graphql-queries/`
//! for CI's validation against GitHub's published schema.

mod drive;
mod testenv;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drive::Ran;
use fakeforge::{FakeForge, Fault, Item, Logged};
use serde_json::{Value, json};
use testenv::{FORGE, TestEnv};

const TOKEN: &str = "ghp_graphqlTestToken0123456789";
const DELAY: &str = "10ms";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fake that wants `TOKEN`, with budgets large enough that spreading them
/// over the hour asks for less than `DELAY`.
fn forge() -> FakeForge {
    let forge = open_forge();
    forge.require_token(TOKEN);
    forge
}

/// The same, answering without a token too (as GitHub's REST API does).
fn open_forge() -> FakeForge {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    let reset = now_secs() + 3600;
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.set_graphql_rate_limit(10_000_000, 10_000_000, reset);
    forge
}

fn run(env: &TestEnv, forge: &FakeForge, token: bool, args: &[&str]) -> Ran {
    let extra: &[(&str, &str)] = if token {
        &[("GITHUB_TOKEN", TOKEN)]
    } else {
        &[]
    };
    drive::run_with(env, env.patina_home(), &forge.url(), extra, args)
}

/// `--limit N` with the token.
fn drain(env: &TestEnv, forge: &FakeForge, limit: u64, more: &[&str]) -> Ran {
    let limit = limit.to_string();
    let mut args = vec!["--limit", &limit, "--delay", DELAY];
    args.extend_from_slice(more);
    let ran = run(env, forge, true, &args);
    keep_queries(forge);
    ran
}

/// One commit per number, then an offline discovery: only these are pending.
fn mention(env: &TestEnv, numbers: impl IntoIterator<Item = u64>) {
    for n in numbers {
        env.commit(&format!("change {n} (#{n})"));
    }
    drive::run_with(
        env,
        env.patina_home(),
        testenv::NO_FORGE,
        &[],
        &["--offline"],
    )
    .ok();
}

/// Writes the queries the fake received where CI validates them (one per
/// distinct number of aliases is enough: the text differs only in those).
fn keep_queries(forge: &FakeForge) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/graphql-queries");
    std::fs::create_dir_all(&dir).unwrap();
    for query in forge.graphql_queries() {
        let aliases = query.matches("issueOrPullRequest(").count();
        std::fs::write(dir.join(format!("received-{aliases}.graphql")), query).unwrap();
    }
}

fn graphql_posts(log: &[Logged]) -> Vec<&Logged> {
    log.iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/graphql"))
        .collect()
}

fn rest_gets(log: &[Logged]) -> Vec<&Logged> {
    log.iter().filter(|r| r.method == "GET").collect()
}

/// How many numbers each query the fake received asked for.
fn batch_sizes(forge: &FakeForge) -> Vec<usize> {
    forge
        .graphql_queries()
        .iter()
        .map(|q| q.matches("issueOrPullRequest(").count())
        .collect()
}

fn one(env: &TestEnv, sql: &str) -> String {
    let rows = env.query(sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

fn numbers(env: &TestEnv, sql: &str) -> BTreeSet<u64> {
    env.query(sql)
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

fn pending(env: &TestEnv) -> BTreeSet<u64> {
    numbers(
        env,
        "SELECT ref_number FROM forge_refs WHERE resolved IS NULL",
    )
}

fn failed(env: &TestEnv) -> BTreeSet<u64> {
    numbers(
        env,
        "SELECT ref_number FROM forge_refs WHERE error IS NOT NULL",
    )
}

fn status_json(env: &TestEnv) -> Value {
    let out = drive::run_with(
        env,
        env.patina_home(),
        testenv::NO_FORGE,
        &[],
        &["--status", "--json"],
    );
    out.ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// The latest event of `number`, as JSON.
fn event(env: &TestEnv, number: u64) -> Value {
    let data = one(
        env,
        &format!(
            "SELECT data FROM eventlog WHERE source_id = '{number}' ORDER BY seq DESC LIMIT 1"
        ),
    );
    serde_json::from_str(&data).unwrap()
}

/// A plain world: `n` issues and PRs (every third a PR), all mentioned.
fn plain(n: u64) -> (TestEnv, FakeForge) {
    plain_with(n, forge())
}

fn plain_with(n: u64, forge: FakeForge) -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    for i in 1..=n {
        forge.put(
            FORGE,
            if i % 3 == 0 {
                Item::pr(i, &format!("PR {i}"))
            } else {
                Item::issue(i, &format!("Issue {i}"))
            },
        );
    }
    mention(&env, 1..=n);
    (env, forge)
}

#[test]
fn a_mixed_batch_is_stored_exactly_with_its_discussion() {
    let env = TestEnv::with_origin();
    let forge = forge();
    forge.add_repo("other/place");
    forge.put(
        FORGE,
        Item::issue(1, "Parser breaks")
            .labels(&["bug", "parser"])
            .comment(Some("ann"), "Seen it too.", "2020-01-02T00:00:00Z")
            .comment(None, "From a deleted account.", "2020-01-03T00:00:00Z"),
    );
    forge.put(FORGE, Item::pr(2, "Open PR"));
    forge.put(FORGE, Item::pr(3, "Closed PR").closed());
    forge.put(
        FORGE,
        Item::pr(4, "Fix the parser")
            .merged("2020-02-01T00:00:00Z")
            .comment(Some("bob"), "LGTM", "2020-01-20T00:00:00Z")
            .comment(Some("carol"), "Ship it\nnow", "2020-01-21T00:00:00Z")
            .review(Some("bob"), "APPROVED")
            .review(Some("carol"), "APPROVED")
            .review(Some("dave"), "CHANGES_REQUESTED")
            .review(Some("erin"), "COMMENTED")
            .closes(&[1])
            .closes_in("other/place", 7),
    );
    forge.put(FORGE, Item::issue(5, "Orphan").author(None).body(None));
    // 6 never existed; 7 was deleted.
    forge.put(FORGE, Item::issue(7, "Deleted later"));
    forge.delete(FORGE, 7);
    mention(&env, 1..=7);

    let out = drain(&env, &forge, 100, &[]);
    out.ok().stdout_has_line("Resolved: 5 (2 issues, 3 PRs)");
    let (_, failed_n, pending_n, requests) = out.summary();
    assert_eq!((failed_n, pending_n, requests), (2, 0, 4), "{}", out.dump());

    let log = forge.requests();
    assert_eq!(graphql_posts(&log).len(), 1, "one query for all: {log:?}");
    assert_eq!(batch_sizes(&forge), [7]);
    // GraphQL's NOT_FOUND for numbers commits mention is asked of REST,
    // which tells a transfer (301) from a deletion; one repository check.
    assert_eq!(
        rest_gets(&log)
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        [
            "/repos/acme/widget/issues/7",
            "/repos/acme/widget/issues/6",
            "/repos/acme/widget"
        ]
    );

    // Issues and PRs, patina's states.
    assert_eq!(
        env.query("SELECT number, state, labels, author, body FROM forge_issues ORDER BY number"),
        [
            vec!["1", "open", r#"["bug","parser"]"#, "octocat", "Body of #1."],
            vec!["5", "open", "[]", "ghost", "NULL"],
        ]
    );
    assert_eq!(
        env.query(
            "SELECT number, state, approvals, linked_issues, comment_count FROM forge_prs ORDER BY number"
        ),
        [
            vec!["2", "open", "0", "[]", "0"],
            vec!["3", "closed", "0", "[]", "0"],
            vec!["4", "merged", "2", "[1]", "2"],
        ]
    );
    assert_eq!(
        env.query("SELECT number, merged_at, closed_at FROM forge_prs ORDER BY number"),
        [
            vec!["2".to_owned(), "NULL".to_owned(), "NULL".to_owned()],
            vec![
                "3".to_owned(),
                "NULL".to_owned(),
                fakeforge::default_created(3)
            ],
            vec![
                "4".to_owned(),
                "2020-02-01T00:00:00Z".to_owned(),
                "2020-02-01T00:00:00Z".to_owned()
            ],
        ]
    );
    // The comments themselves, nothing flattened away.
    assert_eq!(
        env.query("SELECT number, position, author, body, created_at FROM forge_comments ORDER BY number, position"),
        [
            vec!["1", "0", "ann", "Seen it too.", "2020-01-02T00:00:00Z"],
            vec!["1", "1", "ghost", "From a deleted account.", "2020-01-03T00:00:00Z"],
            vec!["4", "0", "bob", "LGTM", "2020-01-20T00:00:00Z"],
            vec!["4", "1", "carol", "Ship it\nnow", "2020-01-21T00:00:00Z"],
        ]
    );
    // The events patina reads.
    let pr = event(&env, 4);
    assert_eq!(pr["state"], "merged");
    assert_eq!(pr["approvals"], 2);
    assert_eq!(pr["linked_issues"], json!([1]));
    assert_eq!(pr["comments"], "bob: LGTM\ncarol: Ship it\nnow");
    let orphan = event(&env, 5);
    assert_eq!(orphan["author"], "ghost");
    assert_eq!(orphan["body"], Value::Null);
    assert_eq!(one(&env, "SELECT count(*) FROM eventlog"), "5");
    // Missing and deleted: settled as failed, with why.
    assert_eq!(failed(&env), BTreeSet::from([6, 7]));
    assert!(pending(&env).is_empty());
    assert_eq!(
        env.query("SELECT ref_number, error FROM forge_refs WHERE error IS NOT NULL ORDER BY 1"),
        [vec!["6", "not found (404)"], vec!["7", "deleted (410)"]]
    );
    let status = status_json(&env);
    assert_eq!(status["api"], "graphql", "{status}");
    assert_eq!(status["api_note"], Value::Null, "{status}");
    // The token went as a bearer token, and nowhere else.
    let post = graphql_posts(&log)[0];
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));
}

#[test]
fn batches_grow_to_a_hundred_and_a_limit_stays_exact() {
    let (env, forge) = plain(260);
    let out = drain(&env, &forge, 230, &[]);
    out.ok();
    let (resolved, failed_n, pending_n, requests) = out.summary();
    assert_eq!(
        (resolved, failed_n, pending_n),
        (230, 0, 30),
        "{}",
        out.dump()
    );
    // 50 first; fast answers double it up to 100; the limit trims the last.
    assert_eq!(batch_sizes(&forge), [50, 100, 80]);
    assert_eq!(requests, 3);
    // Points: what the fake charged, as the summary reports them.
    let charged = forge.graphql_rate_limit();
    let spent = 10_000_000 - charged.1;
    assert!(
        out.stdout
            .contains(&format!("(GraphQL: {spent} points spent)")),
        "{spent} points\n{}",
        out.dump()
    );
    assert!(
        spent <= 3 * 6,
        "a batch costs a few points, not hundreds: {spent}"
    );
    // The newest mention first: the 30 left are the oldest.
    assert_eq!(pending(&env), (1..=30).collect());
}

#[test]
fn a_502_shrinks_the_batch_and_loses_nothing() {
    let (env, forge) = plain(120);
    forge.push_fault_on("/graphql", Fault::Status(502));
    forge.push_fault_on("/graphql", Fault::Status(502));
    let out = drain(&env, &forge, 1000, &[]);
    out.ok();
    let sizes = batch_sizes(&forge);
    // 50 fails, 25 fails, then 12 succeed and it grows back while fast.
    assert_eq!(&sizes[..3], [50, 25, 12], "{sizes:?}");
    assert_eq!(sizes[3], 24, "{sizes:?}");
    assert!(pending(&env).is_empty() && failed(&env).is_empty());
    assert_eq!(sizes.iter().skip(2).sum::<usize>(), 120);
    assert!(out.stderr.contains("asking 25 at a time"), "{}", out.dump());
}

#[test]
fn a_timeout_shrinks_the_batch_and_the_ref_is_asked_again() {
    let (env, forge) = plain(60);
    forge.push_fault_on("/graphql", Fault::Hang(Duration::from_secs(4)));
    let out = drain(&env, &forge, 1000, &["--timeout", "1s"]);
    out.ok();
    let sizes = batch_sizes(&forge);
    assert_eq!(&sizes[..2], [50, 25], "{sizes:?}");
    assert!(
        pending(&env).is_empty() && failed(&env).is_empty(),
        "{}",
        out.dump()
    );
    assert!(out.stderr.contains("timed out"), "{}", out.dump());
}

#[test]
fn slow_answers_shrink_the_batch_before_github_gives_up() {
    let (env, forge) = plain(100);
    // Over 5 s for a batch of more than 30: slow, but it answers.
    forge.set_graphql_slow_over(30, Duration::from_millis(5_300));
    let out = drain(&env, &forge, 1000, &[]);
    out.ok();
    // A fast answer would have doubled the batch to 100.
    assert_eq!(batch_sizes(&forge), [50, 25, 25]);
    assert!(pending(&env).is_empty());
}

#[test]
fn a_wait_before_the_request_does_not_count_as_a_slow_answer() {
    let (env, forge) = plain(160);
    // The first batch meets a secondary limit: its retry waits 6 s for
    // its turn, then is answered at once.
    forge.push_fault_on(
        "/graphql",
        Fault::SecondaryLimit {
            retry_after: Some(6),
        },
    );
    let out = drain(&env, &forge, 1000, &[]);
    out.ok();
    let sizes = batch_sizes(&forge);
    // The retry was fast: the batch doubles, as after any fast answer.
    assert_eq!(&sizes[..3], [50, 50, 100], "{sizes:?}\n{}", out.dump());
    assert!(pending(&env).is_empty() && failed(&env).is_empty());
}

#[test]
fn a_batch_whose_every_node_failed_backs_off_like_any_failure() {
    let (env, forge) = plain(60);
    // Every node of the first batch fails to decode: the forge is failing.
    forge.push_fault_on("/graphql", Fault::WrongTypes);
    let out = drain(&env, &forge, 10, &[]);
    out.ok();
    let posts: Vec<Logged> = graphql_posts(&forge.requests())
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(posts.len(), 2, "{}", out.dump());
    // The first failure in a row holds every request for 2 s.
    let gap = posts[1].at.duration_since(posts[0].at);
    assert!(gap >= Duration::from_secs(2), "no backoff: {gap:?}");
    assert_eq!(out.summary().0, 10, "{}", out.dump());
    assert!(failed(&env).is_empty());
}

#[test]
fn rate_limited_is_a_wait_for_the_reset_not_a_failure() {
    let (env, forge) = plain(20);
    let reset = now_secs() + 3;
    forge.set_graphql_rate_limit(5_000, 0, reset);
    let out = drain(&env, &forge, 1000, &[]);
    out.ok();
    let posts: Vec<Logged> = graphql_posts(&forge.requests())
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(posts.len(), 2, "refused once, then answered: {posts:?}");
    // No request before the reset (about 3 s after the first): the wait
    // was not cut short.
    let waited = posts[1].at.duration_since(posts[0].at);
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
    assert!(
        pending(&env).is_empty() && failed(&env).is_empty(),
        "{}",
        out.dump()
    );
    assert!(out.stderr.contains("rate limit"), "{}", out.dump());
}

#[test]
fn without_a_token_rest_does_it_and_status_says_why() {
    let (env, forge) = plain_with(5, open_forge());
    let out = run(&env, &forge, false, &["--limit", "100", "--delay", DELAY]);
    out.ok();
    assert!(graphql_posts(&forge.requests()).is_empty());
    assert_eq!(out.summary().0, 5);
    let status = status_json(&env);
    assert_eq!(status["api"], "rest");
    assert_eq!(status["api_note"], "no token");
    let text = drive::run_with(
        &env,
        env.patina_home(),
        testenv::NO_FORGE,
        &[],
        &["--status"],
    );
    assert!(
        text.stdout.contains("API: REST (no token)"),
        "{}",
        text.dump()
    );
}

#[test]
fn a_host_without_graphql_falls_back_to_rest() {
    let (env, forge) = plain(5);
    forge.disable_graphql();
    let out = drain(&env, &forge, 100, &[]);
    out.ok();
    let log = forge.requests();
    assert_eq!(graphql_posts(&log).len(), 1);
    assert_eq!(graphql_posts(&log)[0].status, 404);
    assert_eq!(out.summary().0, 5);
    let status = status_json(&env);
    assert_eq!(status["api"], "rest");
    assert_eq!(status["api_note"], "the host answers 404 to GraphQL");
}

#[test]
fn api_rest_and_api_graphql_are_obeyed() {
    let (env, forge) = plain_with(4, open_forge());
    let out = drain(&env, &forge, 2, &["--api", "rest"]);
    out.ok();
    assert!(graphql_posts(&forge.requests()).is_empty());
    assert_eq!(status_json(&env)["api_note"], "--api rest");
    let refused = run(&env, &forge, false, &["--limit", "2", "--api", "graphql"]);
    let line = refused.one_error_line();
    assert!(line.contains("needs a token"), "{line}");
    assert_eq!(pending(&env).len(), 2, "nothing marked");
}

#[test]
fn a_refresh_brings_the_new_discussion_of_what_changed() {
    let (env, forge) = plain(9);
    let first = run(&env, &forge, true, &["--resume", "--delay", DELAY]);
    first.ok();
    assert!(pending(&env).is_empty());
    let events = one(&env, "SELECT count(*) FROM eventlog");
    // A comment and an approval on PR 6 move its updated_at.
    let later = fakeforge::iso(now_secs() as i64 + 5);
    forge.put(
        FORGE,
        Item::pr(6, "PR 6")
            .comment(Some("zed"), "Needs a test", &later)
            .review(Some("zed"), "APPROVED")
            .updated(&later),
    );
    forge.clear_log();
    let again = run(&env, &forge, true, &["--resume", "--delay", DELAY]);
    again.ok();
    keep_queries(&forge);
    let log = forge.requests();
    assert_eq!(
        batch_sizes(&forge).last(),
        Some(&1),
        "only what changed is asked"
    );
    assert!(
        rest_gets(&log)
            .iter()
            .any(|r| r.path.contains("sort=updated"))
    );
    let pr = event(&env, 6);
    assert_eq!(pr["comments"], "zed: Needs a test");
    assert_eq!(pr["approvals"], 1);
    assert_eq!(
        one(&env, "SELECT count(*) FROM eventlog"),
        (events.parse::<u64>().unwrap() + 1).to_string(),
        "one new event"
    );
}

#[test]
fn a_transferred_issue_is_followed_and_a_range_gap_settles_at_once() {
    let env = TestEnv::with_origin();
    let forge = forge();
    forge.add_repo("acme/elsewhere");
    forge.put(FORGE, Item::issue(1, "Stays"));
    forge.put(FORGE, Item::issue(2, "Moves"));
    forge.put(FORGE, Item::pr(5, "Newest"));
    forge.transfer(FORGE, 2, "acme/elsewhere", 9);
    // Commits mention 1 and 2; discovery's range adds 3..5 (3, 4 missing).
    env.commit("fix (#1)");
    env.commit("fix (#2)");
    let found = run(&env, &forge, true, &[]);
    found.ok();
    assert!(found.stdout.contains("(1..5)"), "{}", found.dump());
    forge.clear_log();
    let out = drain(&env, &forge, 100, &[]);
    out.ok();
    let log = forge.requests();
    let gets: Vec<&str> = rest_gets(&log).iter().map(|r| r.path.as_str()).collect();
    let elsewhere = forge.repo_id("acme/elsewhere").unwrap();
    // Only the mentioned one is asked of REST, and its 301 followed.
    assert_eq!(
        gets,
        [
            "/repos/acme/widget/issues/2".to_owned(),
            format!("/repositories/{elsewhere}/issues/9")
        ]
    );
    assert_eq!(
        one(
            &env,
            "SELECT moved_to IS NOT NULL FROM forge_refs WHERE ref_number = 2"
        ),
        "1"
    );
    assert_eq!(
        one(&env, "SELECT title FROM forge_issues WHERE number = 2"),
        "Moves"
    );
    assert_eq!(failed(&env), BTreeSet::from([3, 4]));
    assert_eq!(
        one(&env, "SELECT error FROM forge_refs WHERE ref_number = 3"),
        "not found (GraphQL NOT_FOUND)"
    );
    assert!(pending(&env).is_empty());
}
