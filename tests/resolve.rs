//! End-to-end tests of resolving the backlog (`--limit N`): the real binary,
//! a real git repository and the fake GitHub on 127.0.0.1. What is checked is
//! the contract (`docs/contracts.md`, patina's meanings): what lands
//! in patina's tables and eventlog, which requests are sent and in what
//! order, what the user reads, and how a run ends.

mod drive;
mod testenv;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drive::{Background, Ran, wait_until};
use fakeforge::{FakeForge, Fault, Item, Logged, default_created};
use serde_json::{Value, json};
use testenv::{FORGE, TestEnv};

/// Spacing for tests that are not about pacing: fast, but still through the ledger.
const DELAY: &str = "10ms";
/// Where a transferred item goes in these tests.
const ELSEWHERE: &str = "acme/elsewhere";

// ---- running the binary -----------------------------------------------------

/// The binary in `env`'s world with its own `PATINA_HOME`, plus `extra` variables.
fn command(env: &TestEnv, api_url: &str, extra: &[(&str, &str)], args: &[&str]) -> Command {
    drive::command(env, env.patina_home(), api_url, extra, args)
}

fn run_with(env: &TestEnv, api_url: &str, extra: &[(&str, &str)], args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), api_url, extra, args)
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    run_with(env, &forge.url(), &[], args)
}

/// `--limit N --delay 10ms`.
fn drain(env: &TestEnv, forge: &FakeForge, limit: u64) -> Ran {
    run(
        env,
        forge,
        &["--limit", &limit.to_string(), "--delay", DELAY],
    )
}

/// The binary in the background (killed and reaped by its PID on drop).
fn background(env: &TestEnv, api_url: &str, args: &[&str], name: &str) -> Background {
    Background::start(
        env,
        command(env, api_url, &[], args),
        drive::describe(args),
        name,
    )
}

// ---- the world ----------------------------------------------------------------

/// A repository whose origin is `FORGE` and a fake forge that knows it.
fn world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = roomy_forge();
    forge.add_repo(FORGE);
    (env, forge)
}

/// A fake whose hourly budget is large enough that spreading it over the
/// hour (which the client does with any budget) asks for less than `DELAY`.
fn roomy_forge() -> FakeForge {
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge
}

/// One commit per number, in the order given (the last is the newest
/// mention), then an offline discovery: only these refs are pending.
fn mention(env: &TestEnv, numbers: &[u64]) {
    for n in numbers {
        env.commit(&format!("change {n} (#{n})"));
    }
    let out = run_with(env, testenv::NO_FORGE, &[], &["--offline"]);
    out.ok();
}

fn one(env: &TestEnv, sql: &str) -> String {
    let rows = env.query(sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    assert_eq!(rows[0].len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

fn count(env: &TestEnv, sql: &str) -> u64 {
    one(env, sql).parse().expect("a count")
}

/// The request targets (path and query) the fake received, in order.
fn paths(log: &[Logged]) -> Vec<String> {
    log.iter().map(|r| r.path.clone()).collect()
}

fn issue_path(n: u64) -> String {
    format!("/repos/{FORGE}/issues/{n}")
}

const FIRST_PAGE: &str =
    "/repos/acme/widget/issues?state=all&sort=created&direction=desc&per_page=100";

/// Page `page` of the listing, as the fake's `Link` header gives it.
fn later_page(forge: &FakeForge, page: u32) -> String {
    let id = forge.repo_id(FORGE).expect("repo id");
    format!(
        "/repositories/{id}/issues?state=all&sort=created&direction=desc&per_page=100&page={page}"
    )
}

/// `--status --json` as a JSON value.
fn status_json(env: &TestEnv) -> Value {
    let out = run_with(env, testenv::NO_FORGE, &[], &["--status", "--json"]);
    out.ok();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e})\n{}", out.dump()))
}

fn assert_counts(env: &TestEnv, total: u64, resolved: u64, failed: u64, pending: u64) {
    let v = status_json(env);
    for (key, want) in [
        ("total", total),
        ("resolved", resolved),
        ("failed", failed),
        ("pending", pending),
    ] {
        assert_eq!(v[key], json!(want), "{key} in {v}");
    }
}

/// (state, mode, requests, resolved, failed) of every run, oldest first.
fn runs(env: &TestEnv) -> Vec<(String, String, u64, u64, u64)> {
    env.query("SELECT state, mode, requests, resolved, failed FROM forge_runs ORDER BY id")
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                r[2].parse().unwrap(),
                r[3].parse().unwrap(),
                r[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Pending ref numbers (patina's count: `resolved IS NULL`).
fn pending(env: &TestEnv) -> BTreeSet<u64> {
    env.query(&format!(
        "SELECT ref_number FROM forge_refs WHERE repo = '{FORGE}' AND resolved IS NULL"
    ))
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect()
}

/// Resolved ref numbers (settled and not failed).
fn resolved(env: &TestEnv) -> BTreeSet<u64> {
    env.query(&format!(
        "SELECT ref_number FROM forge_refs WHERE repo = '{FORGE}' \
         AND resolved IS NOT NULL AND error IS NULL"
    ))
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect()
}

/// Every file under `dir`, recursively, as (path, bytes).
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path.clone(), fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The secret appears nowhere: not in the outputs, not in any file of the
/// world (database, WAL, PATINA_HOME, logs, ledger, PID files).
fn assert_secret_nowhere(env: &TestEnv, secret: &str, outputs: &[&Ran]) {
    for out in outputs {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "the token leaked into the output\n{}",
            out.dump()
        );
    }
    for (path, bytes) in files_under(env.root()) {
        assert!(
            !contains(&bytes, secret),
            "the token leaked into {}",
            path.display()
        );
    }
}

fn user_agent() -> String {
    format!("patina-forge/{}", env!("CARGO_PKG_VERSION"))
}

/// GitHub's headers on every request; `Authorization` only as given.
fn assert_headers(log: &[Logged], token: Option<&str>) {
    assert!(!log.is_empty());
    for r in log {
        assert_eq!(
            r.header("accept"),
            Some("application/vnd.github+json"),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-github-api-version"),
            Some("2022-11-28"),
            "{r:?}"
        );
        assert_eq!(r.header("user-agent"), Some(user_agent().as_str()), "{r:?}");
        let expected = token.map(|t| format!("Bearer {t}"));
        assert_eq!(r.header("authorization"), expected.as_deref(), "{r:?}");
    }
}

// ---- 1. every outcome recorded as specified -----------------------------------

const MERGED_AT: &str = "2024-05-01T10:00:00Z";

/// #1 open issue with labels, #2 closed issue by a deleted account, #3 open
/// PR, #4 merged PR, #5 closed unmerged PR, #6 deleted (410), #7 missing
/// (404), #8 an issue transferred to `ELSEWHERE` as #3 (301).
fn every_kind_of_item(forge: &FakeForge) {
    forge.put(
        FORGE,
        Item::issue(1, "Crash on start")
            .labels(&["bug", "ui"])
            .author(Some("alice")),
    );
    forge.put(
        FORGE,
        Item::issue(2, "Old idea").author(None).body(None).closed(),
    );
    forge.put(FORGE, Item::pr(3, "Open work").author(Some("bob")));
    forge.put(
        FORGE,
        Item::pr(4, "Merged work")
            .labels(&["feature"])
            .merged(MERGED_AT),
    );
    forge.put(FORGE, Item::pr(5, "Abandoned work").closed());
    forge.put(FORGE, Item::issue(6, "Spam"));
    forge.delete(FORGE, 6);
    forge.put(FORGE, Item::issue(8, "Belongs elsewhere"));
    forge.transfer(FORGE, 8, ELSEWHERE, 3);
}

fn moved_url() -> String {
    format!("https://github.com/{ELSEWHERE}/issues/3")
}

/// The database after `every_kind_of_item` was drained.
fn assert_every_outcome(env: &TestEnv, forge: &FakeForge) {
    let web = |kind: &str, n: u64| format!("https://github.com/{FORGE}/{kind}/{n}");

    // forge_issues: state, labels as a JSON array of names, author (`ghost`
    // for a deleted account).
    let issues = env.query(
        "SELECT number, title, body, state, labels, author, created_at, updated_at, url \
         FROM forge_issues ORDER BY number",
    );
    let moved = forge.get(ELSEWHERE, 3).expect("the transferred issue");
    let expected_issues: Vec<Vec<String>> = vec![
        vec![
            "1".into(),
            "Crash on start".into(),
            "Body of #1.".into(),
            "open".into(),
            r#"["bug","ui"]"#.into(),
            "alice".into(),
            default_created(1),
            default_created(1),
            web("issues", 1),
        ],
        vec![
            "2".into(),
            "Old idea".into(),
            "NULL".into(),
            "closed".into(),
            "[]".into(),
            "ghost".into(),
            default_created(2),
            forge.get(FORGE, 2).unwrap().updated_at,
            web("issues", 2),
        ],
        vec![
            "8".into(),
            "Belongs elsewhere".into(),
            "Body of #8.".into(),
            "open".into(),
            "[]".into(),
            "octocat".into(),
            default_created(8),
            moved.updated_at.clone(),
            moved_url(),
        ],
    ];
    assert_eq!(issues, expected_issues);

    // forge_prs: open / merged / closed, merged_at only when merged.
    let prs = env.query(
        "SELECT number, title, state, labels, author, created_at, merged_at, url \
         FROM forge_prs ORDER BY number",
    );
    let expected_prs: Vec<Vec<String>> = vec![
        vec![
            "3".into(),
            "Open work".into(),
            "open".into(),
            "[]".into(),
            "bob".into(),
            default_created(3),
            "NULL".into(),
            web("pull", 3),
        ],
        vec![
            "4".into(),
            "Merged work".into(),
            "merged".into(),
            r#"["feature"]"#.into(),
            "octocat".into(),
            default_created(4),
            MERGED_AT.into(),
            web("pull", 4),
        ],
        vec![
            "5".into(),
            "Abandoned work".into(),
            "closed".into(),
            "[]".into(),
            "octocat".into(),
            default_created(5),
            "NULL".into(),
            web("pull", 5),
        ],
    ];
    assert_eq!(prs, expected_prs);

    // One event per item, as patina writes them; the row's event_seq is the
    // event's real rowid.
    let events = env.query(
        "SELECT seq, event_type, timestamp, source_id, source_file, data FROM eventlog ORDER BY seq",
    );
    assert_eq!(events.len(), 6, "{events:#?}");
    let mut seen = BTreeSet::new();
    for e in &events {
        let number: u64 = e[3].parse().expect("source_id is the number");
        assert!(seen.insert(number), "two events for #{number}: {events:#?}");
        let data: Value = serde_json::from_str(&e[5]).expect("event data is JSON");
        let (table, fields): (&str, &[&str]) = if e[1] == "forge.issue" {
            (
                "forge_issues",
                &[
                    "number",
                    "title",
                    "body",
                    "state",
                    "labels",
                    "author",
                    "url",
                    "updated_at",
                ],
            )
        } else {
            assert_eq!(e[1], "forge.pr", "{e:?}");
            (
                "forge_prs",
                &[
                    "number",
                    "title",
                    "body",
                    "state",
                    "labels",
                    "author",
                    "url",
                    "linked_issues",
                    "comments",
                    "approvals",
                    "updated_at",
                ],
            )
        };
        for field in fields {
            assert!(data.get(field).is_some(), "#{number}: no {field} in {data}");
        }
        let row = env.query(&format!(
            "SELECT title, body, state, labels, author, created_at, url, event_seq \
             FROM {table} WHERE number = {number}"
        ));
        assert_eq!(row.len(), 1, "#{number} not in {table}");
        let row = &row[0];
        assert_eq!(
            row[7], e[0],
            "#{number}: event_seq is not the event's rowid"
        );
        assert_eq!(e[2], row[5], "#{number}: timestamp is not created_at");
        assert_eq!(e[4], row[6], "#{number}: source_file is not the URL");
        assert_eq!(data["number"], json!(number), "{data}");
        assert_eq!(data["title"], json!(row[0]), "{data}");
        let body = if row[1] == "NULL" {
            Value::Null
        } else {
            json!(row[1])
        };
        assert_eq!(data["body"], body, "{data}");
        assert_eq!(data["state"], json!(row[2]), "{data}");
        let labels: Value = serde_json::from_str(&row[3]).unwrap();
        assert_eq!(data["labels"], labels, "{data}");
        let author = if row[4] == "NULL" {
            Value::Null
        } else {
            json!(row[4])
        };
        assert_eq!(data["author"], author, "{data}");
        assert_eq!(data["url"], json!(row[6]), "{data}");
        if table == "forge_prs" {
            assert!(data["linked_issues"].is_array(), "{data}");
            assert!(data["comments"].is_string(), "{data}");
            assert!(data["approvals"].is_number(), "{data}");
        }
    }
    assert_eq!(seen, BTreeSet::from([1, 2, 3, 4, 5, 8]));
    assert_eq!(
        one(
            env,
            "SELECT data ->> '$.updated_at' FROM eventlog WHERE source_id = '8'"
        ),
        moved.updated_at
    );

    // The refs: kind, settled, errors for 404/410, where #8 went.
    let refs = env.query(&format!(
        "SELECT ref_number, ref_kind, resolved IS NOT NULL, error, moved_to \
         FROM forge_refs WHERE repo = '{FORGE}' ORDER BY ref_number"
    ));
    let row = |n: &str, kind: &str, error: &str, moved: &str| -> Vec<String> {
        vec![
            n.into(),
            kind.into(),
            "1".into(),
            error.into(),
            moved.into(),
        ]
    };
    let moved_to = moved_url();
    assert_eq!(
        refs,
        vec![
            row("1", "issue", "NULL", "NULL"),
            row("2", "issue", "NULL", "NULL"),
            row("3", "pr", "NULL", "NULL"),
            row("4", "pr", "NULL", "NULL"),
            row("5", "pr", "NULL", "NULL"),
            row("6", "unknown", "deleted (410)", "NULL"),
            row("7", "unknown", "not found (404)", "NULL"),
            row("8", "issue", "NULL", &moved_to),
        ]
    );
    assert_counts(env, 8, 6, 2, 0);
}

#[test]
fn every_outcome_is_recorded_from_single_requests() {
    let (env, forge) = world();
    every_kind_of_item(&forge);
    mention(&env, &[1, 2, 3, 4, 5, 6, 7, 8]);

    // A budget under 100: one GET per ref, newest mention first.
    let out = drain(&env, &forge, 8);
    out.ok();
    out.stdout_has_line("Resolved: 6 (3 issues, 3 PRs)");
    assert_eq!(out.summary(), (6, 2, 0, 10));

    let log = forge.requests();
    let elsewhere = forge.repo_id(ELSEWHERE).unwrap();
    assert_eq!(
        paths(&log),
        vec![
            issue_path(8),
            format!("/repositories/{elsewhere}/issues/3"),
            issue_path(7),
            format!("/repos/{FORGE}"),
            issue_path(6),
            issue_path(5),
            issue_path(4),
            issue_path(3),
            issue_path(2),
            issue_path(1),
        ]
    );
    assert_headers(&log, None);
    assert_every_outcome(&env, &forge);
    assert_eq!(
        runs(&env),
        vec![("finished".into(), "limit".into(), 10, 6, 2)]
    );
}

#[test]
fn every_outcome_is_recorded_from_the_listing() {
    let (env, forge) = world();
    every_kind_of_item(&forge);
    mention(&env, &[1, 2, 3, 4, 5, 6, 7, 8]);

    // A budget of 100 and eight pending numbers under 100: one page lists
    // the five live ones; the three it did not return are asked one by one.
    let out = drain(&env, &forge, 100);
    out.ok();
    out.stdout_has_line("Resolved: 6 (3 issues, 3 PRs)");
    assert_eq!(out.summary(), (6, 2, 0, 6));

    let log = forge.requests();
    let elsewhere = forge.repo_id(ELSEWHERE).unwrap();
    assert_eq!(
        paths(&log),
        vec![
            FIRST_PAGE.to_string(),
            issue_path(8),
            format!("/repositories/{elsewhere}/issues/3"),
            issue_path(7),
            format!("/repos/{FORGE}"),
            issue_path(6),
        ]
    );
    assert_headers(&log, None);
    assert_every_outcome(&env, &forge);
    assert_eq!(
        runs(&env),
        vec![("finished".into(), "limit".into(), 6, 6, 2)]
    );
}

#[test]
fn summary_lines_close_the_output() {
    let (env, forge) = world();
    for n in [1, 2, 3] {
        forge.put(FORGE, Item::issue(n, "An issue"));
    }
    forge.put(FORGE, Item::pr(4, "A PR").merged(MERGED_AT));
    forge.put(FORGE, Item::pr(5, "Another PR"));
    mention(&env, &[1, 2, 3, 4, 5, 9]);

    let out = drain(&env, &forge, 20);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 4, "{}", out.dump());
    assert_eq!(
        lines[n - 4],
        "Resolved: 5 (3 issues, 2 PRs)",
        "{}",
        out.dump()
    );
    assert!(
        lines[n - 3] == "Failed: 1" || lines[n - 3].starts_with("Failed: 1 "),
        "{}",
        out.dump()
    );
    assert_eq!(lines[n - 2], "Pending: 0", "{}", out.dump());
    assert_eq!(
        lines[n - 1],
        format!("Requests: {}", forge.requests().len()),
        "{}",
        out.dump()
    );
}

// ---- 2. fewest requests ---------------------------------------------------------

/// Items 1..=450 (every third a merged PR), except #37 and #38 missing,
/// #200 deleted and #333 transferred; discovery has added 1..450 to the
/// backlog.
fn dense_world() -> (TestEnv, FakeForge) {
    let (env, forge) = world();
    for n in (1..=450).filter(|n| ![37, 38].contains(n)) {
        let item = if n % 3 == 0 {
            Item::pr(n, &format!("PR {n}")).merged(MERGED_AT)
        } else {
            Item::issue(n, &format!("Issue {n}"))
        };
        forge.put(FORGE, item);
    }
    forge.transfer(FORGE, 333, ELSEWHERE, 1);
    forge.delete(FORGE, 200);
    env.commit("start (#12)");
    // Discovery learns the newest number with one request and adds 1..450.
    let out = run(&env, &forge, &[]);
    out.ok()
        .stdout_has_line("Discovered 449 issue refs (1..450)");
    assert_eq!(pending(&env).len(), 450);
    forge.clear_log();
    (env, forge)
}

#[test]
fn a_dense_backlog_is_listed_100_at_a_time() {
    let (env, forge) = dense_world();
    let out = drain(&env, &forge, 1_000);
    out.ok();

    let log = paths(&forge.requests());
    let pages: Vec<&String> = log.iter().filter(|p| p.contains("/issues?")).collect();
    let singles: Vec<&String> = log.iter().filter(|p| !p.contains("/issues?")).collect();
    // 446 live items: five pages, followed exactly as `Link` gives them.
    assert_eq!(
        pages,
        vec![
            FIRST_PAGE,
            &later_page(&forge, 2),
            &later_page(&forge, 3),
            &later_page(&forge, 4),
            &later_page(&forge, 5),
        ],
        "{log:#?}"
    );
    // The four gaps one by one, top down; the transfer followed once, the
    // repository checked once, after the first 404 only.
    let elsewhere = forge.repo_id(ELSEWHERE).unwrap();
    assert_eq!(
        singles,
        vec![
            &issue_path(333),
            &format!("/repositories/{elsewhere}/issues/1"),
            &issue_path(200),
            &issue_path(38),
            &format!("/repos/{FORGE}"),
            &issue_path(37),
        ],
        "{log:#?}"
    );
    let gaps = 4;
    assert!(log.len() <= pages.len() + gaps + 2, "{log:#?}");

    assert_eq!(out.summary(), (447, 3, 0, log.len() as u64));
    assert_eq!(pending(&env), BTreeSet::new());
    assert_eq!(count(&env, "SELECT count(*) FROM eventlog"), 447);
    assert_eq!(count(&env, "SELECT count(*) FROM forge_prs"), 150);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_prs WHERE state = 'merged'"
        ),
        150
    );
    assert_counts(&env, 450, 447, 3, 0);
}

#[test]
fn a_limit_is_never_exceeded_by_a_listing_page() {
    let (env, forge) = dense_world();
    // 150: one page (100), then 50 one by one; never a second page, which
    // would settle more than the limit allows.
    let out = drain(&env, &forge, 150);
    out.ok();
    assert_eq!(resolved(&env).len(), 150);
    assert_eq!(pending(&env).len(), 300);
    let log = paths(&forge.requests());
    // The page listed 450..351; then the commit ref, then the range from
    // the top down (the transfer of #333 costs its redirect).
    let elsewhere = forge.repo_id(ELSEWHERE).unwrap();
    let mut expected = vec![FIRST_PAGE.to_string(), issue_path(12)];
    for n in (302..=350).rev() {
        expected.push(issue_path(n));
        if n == 333 {
            expected.push(format!("/repositories/{elsewhere}/issues/1"));
        }
    }
    assert_eq!(log, expected);
    assert_eq!(out.summary(), (150, 0, 300, 52));
}

#[test]
fn sparse_refs_get_one_request_each_and_no_listing() {
    let (env, forge) = world();
    let numbers = [5, 900, 2_000, 4_000];
    for n in numbers {
        forge.put(FORGE, Item::issue(n, "Far apart"));
    }
    // Mentioned in this order: #4000 oldest, #900 newest.
    mention(&env, &[4_000, 5, 2_000, 900]);

    let out = drain(&env, &forge, 1_000);
    out.ok();
    assert_eq!(
        paths(&forge.requests()),
        vec![
            issue_path(900),
            issue_path(2_000),
            issue_path(5),
            issue_path(4_000)
        ]
    );
    assert_eq!(out.summary(), (4, 0, 0, 4));
}

#[test]
fn a_limit_settles_exactly_that_many_newest_mention_first() {
    let (env, forge) = world();
    let order = [40, 3, 77, 12, 5, 99, 61, 20, 8, 50];
    for n in order {
        forge.put(FORGE, Item::issue(n, "Mentioned"));
    }
    mention(&env, &order);

    let out = drain(&env, &forge, 7);
    out.ok();
    let newest_first: Vec<u64> = order.iter().rev().copied().collect();
    let expected: BTreeSet<u64> = newest_first[..7].iter().copied().collect();
    assert_eq!(resolved(&env), expected);
    assert_eq!(pending(&env), BTreeSet::from([40, 3, 77]));
    assert_eq!(
        paths(&forge.requests()),
        newest_first[..7]
            .iter()
            .map(|n| issue_path(*n))
            .collect::<Vec<_>>()
    );
    assert_eq!(out.summary(), (7, 0, 3, 7));
}

#[test]
fn range_refs_come_after_commit_refs_from_the_top_down() {
    let (env, forge) = world();
    for n in 1..=30 {
        forge.put(FORGE, Item::issue(n, "In range"));
    }
    env.commit("older mention (#12)");
    env.commit("newer mention (#5)");
    run(&env, &forge, &[]).ok();
    assert_eq!(pending(&env).len(), 30);
    forge.clear_log();

    let out = drain(&env, &forge, 4);
    out.ok();
    assert_eq!(
        paths(&forge.requests()),
        vec![
            issue_path(5),
            issue_path(12),
            issue_path(30),
            issue_path(29)
        ]
    );
    assert_eq!(resolved(&env), BTreeSet::from([5, 12, 29, 30]));
}

// ---- 4. an event only when the item changed -------------------------------------

fn event_only_on_change(limit: u64) {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(1, "Stays"));
    forge.put(FORGE, Item::issue(2, "Will change"));
    forge.put(FORGE, Item::pr(3, "Stays too").merged(MERGED_AT));
    forge.put(FORGE, Item::pr(4, "Will change too"));
    mention(&env, &[1, 2, 3, 4]);
    drain(&env, &forge, limit).ok();
    assert_eq!(count(&env, "SELECT count(*) FROM eventlog"), 4);
    let seq_of = |table: &str, n: u64| {
        one(
            &env,
            &format!("SELECT event_seq FROM {table} WHERE number = {n}"),
        )
    };
    let before = [
        seq_of("forge_issues", 1),
        seq_of("forge_issues", 2),
        seq_of("forge_prs", 3),
        seq_of("forge_prs", 4),
    ];

    // Edits on the forge bump `updated_at`.
    forge.put(FORGE, Item::issue(2, "Changed"));
    forge.put(FORGE, Item::pr(4, "Changed too").merged(MERGED_AT));
    env.execute(&format!(
        "UPDATE forge_refs SET resolved = NULL, ref_kind = 'unknown' WHERE repo = '{FORGE}'"
    ));
    drain(&env, &forge, limit).ok();

    let events = env.query("SELECT seq, event_type, source_id, data FROM eventlog ORDER BY seq");
    assert_eq!(events.len(), 6, "{events:#?}");
    let new: Vec<(&str, &str)> = events[4..]
        .iter()
        .map(|e| (e[1].as_str(), e[2].as_str()))
        .collect();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    assert_eq!(new_sorted, vec![("forge.issue", "2"), ("forge.pr", "4")]);
    for e in &events[4..] {
        let data: Value = serde_json::from_str(&e[3]).unwrap();
        let n: u64 = e[2].parse().unwrap();
        let item = forge.get(FORGE, n).unwrap();
        assert_eq!(data["title"], json!(item.title), "{data}");
        assert_eq!(data["updated_at"], json!(item.updated_at), "{data}");
    }
    let seq_for = |n: &str| -> String {
        events
            .iter()
            .rev()
            .find(|e| e[2] == n)
            .map(|e| e[0].clone())
            .unwrap()
    };
    assert_eq!(seq_of("forge_issues", 1), before[0]);
    assert_eq!(seq_of("forge_prs", 3), before[2]);
    assert_eq!(seq_of("forge_issues", 2), seq_for("2"));
    assert_eq!(seq_of("forge_prs", 4), seq_for("4"));
    assert_ne!(seq_of("forge_issues", 2), before[1]);
    assert_ne!(seq_of("forge_prs", 4), before[3]);
    assert_eq!(
        one(&env, "SELECT title FROM forge_issues WHERE number = 2"),
        "Changed"
    );
    assert_eq!(
        one(&env, "SELECT state FROM forge_prs WHERE number = 4"),
        "merged"
    );
    assert_eq!(pending(&env), BTreeSet::new());
}

#[test]
fn an_event_only_when_updated_at_changed() {
    event_only_on_change(10);
}

#[test]
fn an_event_only_when_updated_at_changed_after_a_listing() {
    event_only_on_change(100);
}

// ---- 6. denied: bad token, no access, no repository -------------------------------

#[test]
fn a_rejected_token_stops_the_run_and_marks_nothing() {
    let (env, forge) = world();
    let secret = "ghp_wrongSECRET7f3a9c0d1e2b";
    forge.require_token("ghp_theRightOne000");
    for n in [1, 2, 3] {
        forge.put(FORGE, Item::issue(n, "Private"));
    }
    mention(&env, &[1, 2, 3]);
    let before = env.refs();

    let out = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", secret)],
        &["--limit", "10", "--delay", DELAY],
    );
    let line = out.one_error_line().to_owned();
    assert!(line.to_lowercase().contains("token"), "{}", out.dump());
    assert_eq!(env.refs(), before, "a ref was marked");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_refs WHERE attempts <> 0 OR last_error IS NOT NULL"
        ),
        0
    );
    assert_eq!(forge.requests().len(), 1);
    assert_eq!(runs(&env), vec![("failed".into(), "limit".into(), 1, 0, 0)]);
    assert_secret_nowhere(&env, secret, &[&out]);
}

#[test]
fn a_valid_token_is_sent_as_bearer_and_stored_nowhere() {
    let (env, forge) = world();
    let secret = "ghp_goodSECRET4b1d8e2f6a";
    forge.require_token(secret);
    for n in [1, 2] {
        forge.put(FORGE, Item::issue(n, "Private"));
    }
    mention(&env, &[1, 2]);
    let out = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", secret), ("GH_TOKEN", "ghp_notThisOne")],
        &["--limit", "10", "--delay", DELAY],
    );
    out.ok();
    assert_eq!(pending(&env), BTreeSet::new());
    assert_headers(&forge.requests(), Some(secret));
    let status = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", secret)],
        &["--status", "--json"],
    );
    status.ok();
    assert_secret_nowhere(&env, secret, &[&out, &status]);
}

#[test]
fn gh_token_is_used_when_github_token_is_unset() {
    let (env, forge) = world();
    let secret = "ghp_fromGHtoken9c8b7a";
    forge.require_token(secret);
    forge.put(FORGE, Item::issue(1, "Private"));
    mention(&env, &[1]);
    let out = run_with(
        &env,
        &forge.url(),
        &[("GH_TOKEN", secret)],
        &["--limit", "10", "--delay", DELAY],
    );
    out.ok();
    assert_eq!(pending(&env), BTreeSet::new());
    assert_headers(&forge.requests(), Some(secret));
    assert_secret_nowhere(&env, secret, &[&out]);
}

#[test]
fn a_403_that_is_not_a_rate_limit_stops_the_run_and_marks_nothing() {
    let (env, forge) = world();
    for n in [1, 2, 3] {
        forge.put(FORGE, Item::issue(n, "Visible"));
    }
    mention(&env, &[1, 2, 3]);
    let before = env.refs();
    forge.push_fault(Fault::Status(403));
    let out = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", "ghp_someToken123")],
        &["--limit", "10", "--delay", DELAY],
    );
    out.one_error_line();
    assert_eq!(env.refs(), before, "a ref was marked");
    assert_eq!(forge.requests().len(), 1);
}

fn repository_missing(numbers: &[u64], limit: u64) {
    let env = TestEnv::with_origin();
    let forge = roomy_forge();
    forge.put("acme/other", Item::issue(1, "Not ours"));
    mention(&env, numbers);
    let before = env.refs();
    let out = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", "ghp_someToken123")],
        &["--limit", &limit.to_string(), "--delay", DELAY],
    );
    let line = out.one_error_line().to_owned();
    assert!(line.contains(FORGE), "{}", out.dump());
    assert_eq!(env.refs(), before, "a ref was marked");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_refs WHERE attempts <> 0 OR last_error IS NOT NULL"
        ),
        0
    );
    assert_eq!(runs(&env)[0].0, "failed");
}

#[test]
fn a_missing_repository_marks_nothing_single_requests() {
    repository_missing(&[3, 500, 9_000], 10);
}

#[test]
fn a_missing_repository_marks_nothing_listing() {
    repository_missing(&[1, 2, 3, 4, 5, 6], 100);
}

// ---- 11. a redirect to another host ----------------------------------------------

#[test]
fn a_redirect_to_another_host_is_not_followed_and_leaks_no_token() {
    let (env, forge) = world();
    forge.off_host_url().expect(
        "127.0.0.2 must be bindable: the fake's second host listens there \
         (127.0.0.0/8 is loopback on Linux)",
    );
    let secret = "ghp_offHostSECRET55aa";
    forge.put(FORGE, Item::issue(5, "Redirected"));
    forge.put(FORGE, Item::issue(6, "Plain"));
    mention(&env, &[6, 5]);
    forge.push_fault_on("/issues/5", Fault::RedirectOffHost);

    let out = run_with(
        &env,
        &forge.url(),
        &[("GITHUB_TOKEN", secret)],
        // A REST redirect: GraphQL would not ask for /issues/5 at all.
        &["--limit", "1", "--delay", DELAY, "--api", "rest"],
    );
    out.ok();
    let log = forge.requests();
    for r in log.iter().filter(|r| r.off_host) {
        assert_eq!(
            r.header("authorization"),
            None,
            "token sent off host: {r:?}"
        );
    }
    assert!(
        log.iter().all(|r| !r.off_host),
        "followed a redirect to another host: {log:#?}"
    );
    // #5 failed for now (pending, with its error); #6 resolved.
    assert_eq!(pending(&env), BTreeSet::from([5]));
    let row = env.query(&format!(
        "SELECT attempts, last_error, next_attempt, error FROM forge_refs \
         WHERE repo = '{FORGE}' AND ref_number = 5"
    ));
    assert_eq!(row[0][0], "1", "{row:?}");
    assert_ne!(row[0][1], "NULL", "{row:?}");
    assert_ne!(row[0][2], "NULL", "{row:?}");
    assert_eq!(row[0][3], "NULL", "{row:?}");
    assert_secret_nowhere(&env, secret, &[&out]);
}

#[test]
fn a_transfer_is_followed_once_and_no_further() {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(8, "Moved twice"));
    forge.put(FORGE, Item::issue(9, "Stays"));
    forge.transfer(FORGE, 8, ELSEWHERE, 3);
    forge.transfer(ELSEWHERE, 3, "acme/third", 1);
    mention(&env, &[9, 8]);
    let out = drain(&env, &forge, 1);
    out.ok();
    let elsewhere = forge.repo_id(ELSEWHERE).unwrap();
    assert_eq!(
        paths(&forge.requests()),
        vec![
            issue_path(8),
            format!("/repositories/{elsewhere}/issues/3"),
            issue_path(9),
        ]
    );
    // Not stored from the second hop, not failed for good either.
    assert_eq!(
        count(&env, "SELECT count(*) FROM forge_issues WHERE number = 8"),
        0
    );
    assert_eq!(pending(&env), BTreeSet::from([8]));
}

// ---- 12. GitHub's own examples through the real binary ----------------------------

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

/// An item whose served JSON is exactly `example` (every field overridden).
fn verbatim(example: &Value) -> Item {
    let object = example.as_object().expect("an object");
    let n = object["number"].as_u64().unwrap();
    let mut item = Item::issue(n, "placeholder")
        .created(object["created_at"].as_str().unwrap())
        .updated(object["updated_at"].as_str().unwrap());
    for (key, value) in object {
        item = item.with_field(key, value.clone());
    }
    item
}

fn assert_stored_example(env: &TestEnv, example: &Value) {
    // The example carries `pull_request` (without `merged_at`) and is open:
    // an open PR.
    let row = env.query(
        "SELECT title, body, state, labels, author, created_at, merged_at, url \
         FROM forge_prs WHERE number = 1347",
    );
    assert_eq!(
        row,
        vec![vec![
            example["title"].as_str().unwrap().to_string(),
            example["body"].as_str().unwrap().to_string(),
            "open".to_string(),
            r#"["bug"]"#.to_string(),
            example["user"]["login"].as_str().unwrap().to_string(),
            example["created_at"].as_str().unwrap().to_string(),
            "NULL".to_string(),
            example["html_url"].as_str().unwrap().to_string(),
        ]]
    );
    assert_eq!(
        one(
            env,
            &format!(
                "SELECT ref_kind FROM forge_refs WHERE repo = '{FORGE}' AND ref_number = 1347"
            )
        ),
        "pr"
    );
    assert_eq!(
        count(
            env,
            "SELECT count(*) FROM eventlog WHERE source_id = '1347'"
        ),
        1
    );
}

#[test]
fn the_issue_example_is_read_from_a_single_request() {
    let (env, forge) = world();
    let example = fixture("issues__get.200.default.json");
    forge.put(FORGE, verbatim(&example));
    mention(&env, &[1347]);
    drain(&env, &forge, 5).ok();
    assert_eq!(paths(&forge.requests()), vec![issue_path(1347)]);
    assert_stored_example(&env, &example);
}

#[test]
fn the_list_example_is_read_from_a_listing_page() {
    let (env, forge) = world();
    let list = fixture("issues__list-for-repo.200.default.json");
    let example = list[0].clone();
    forge.put(FORGE, verbatim(&example));
    forge.put(FORGE, Item::issue(1346, "Its neighbour"));
    mention(&env, &[1346, 1347]);
    drain(&env, &forge, 100).ok();
    assert_eq!(paths(&forge.requests()), vec![FIRST_PAGE.to_string()]);
    assert_stored_example(&env, &example);
    assert_eq!(pending(&env), BTreeSet::new());
}

#[test]
fn the_pull_example_tells_merged_when_the_issue_does_not() {
    let (env, forge) = world();
    let pull = fixture("pulls__get.200.default.json");
    let merged_at = pull["merged_at"].as_str().unwrap().to_string();
    // A closed PR whose issue answer leaves `merged_at` out (as the issue
    // example does): only `GET /pulls/{n}` (the pulls example) can tell.
    let item = Item::pr(1348, "Amazing new feature")
        .merged(&merged_at)
        .with_field(
            "pull_request",
            json!({"url": format!("{}/repos/{FORGE}/pulls/1348", forge.url())}),
        );
    forge.put(FORGE, item);
    mention(&env, &[1348]);
    drain(&env, &forge, 5).ok();
    let log = paths(&forge.requests());
    assert!(
        log.contains(&format!("/repos/{FORGE}/pulls/1348")),
        "{log:#?}"
    );
    assert_eq!(
        env.query("SELECT state, merged_at FROM forge_prs WHERE number = 1348"),
        vec![vec!["merged".to_string(), merged_at]]
    );
}

// ---- 13. discovery learns the range with one request --------------------------------

#[test]
fn discovery_adds_the_number_range_with_one_request() {
    let (env, forge) = world();
    for n in 1..=25 {
        forge.put(FORGE, Item::issue(n, "Numbered"));
    }
    env.commit("one (#3)");
    env.commit("two (#7)");
    let out = run(&env, &forge, &[]);
    out.ok().stdout_has_line("Discovered 23 issue refs (1..25)");
    assert_eq!(
        paths(&forge.requests()),
        vec!["/repos/acme/widget/issues?state=all&sort=created&direction=desc&per_page=1"]
    );
    assert_headers(&forge.requests(), None);
    assert_eq!(pending(&env), (1..=25).collect::<BTreeSet<u64>>());
    assert_counts(&env, 25, 0, 0, 25);
}

#[test]
fn offline_discovery_sends_nothing() {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(25, "Newest"));
    env.commit("one (#3)");
    run(&env, &forge, &["--offline"]).ok();
    assert!(forge.requests().is_empty(), "{:#?}", forge.requests());
    assert_eq!(pending(&env), BTreeSet::from([3]));
}

#[test]
fn discovery_without_a_forge_keeps_the_commit_refs_and_says_why() {
    let env = TestEnv::with_origin();
    env.commit("one (#3)");
    env.commit("two (#7)");
    let out = run_with(&env, testenv::NO_FORGE, &[], &[]);
    out.ok();
    assert_eq!(pending(&env), BTreeSet::from([3, 7]));
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("range") && stderr.contains("connect"),
        "stderr should say the range is missing and why\n{}",
        out.dump()
    );
}

#[test]
fn discovery_with_a_failing_forge_keeps_the_commit_refs_and_says_why() {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(25, "Newest"));
    env.commit("one (#3)");
    forge.push_fault(Fault::Status(503));
    let out = run(&env, &forge, &[]);
    out.ok();
    assert_eq!(forge.requests().len(), 1);
    assert_eq!(pending(&env), BTreeSet::from([3]));
    assert!(
        out.stderr.contains("range") && out.stderr.contains("503"),
        "stderr should say the range is missing and why\n{}",
        out.dump()
    );
}

#[test]
fn the_api_url_option_is_used_over_the_environment() {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(4, "Found"));
    mention(&env, &[4]);
    // The environment points at a closed port; the option at the fake.
    let out = run_with(
        &env,
        testenv::NO_FORGE,
        &[],
        &["--limit", "1", "--delay", DELAY, "--api-url", &forge.url()],
    );
    out.ok();
    assert_eq!(paths(&forge.requests()), vec![issue_path(4)]);
    assert_eq!(resolved(&env), BTreeSet::from([4]));
}

// ---- 9. the sync lock -----------------------------------------------------------

fn pid_file(env: &TestEnv) -> PathBuf {
    env.patina_home().join("run/forge-sync-acme-widget.pid")
}

/// A slow drain in the background: 30 refs, 300 ms per answer.
fn slow_drain(env: &TestEnv, forge: &FakeForge, name: &str) -> Background {
    let numbers: Vec<u64> = (1..=30).map(|n| n * 1_000).collect();
    for n in &numbers {
        forge.put(FORGE, Item::issue(*n, "Slow"));
    }
    mention(env, &numbers);
    forge.set_latency(Duration::from_millis(300));
    background(
        env,
        &forge.url(),
        &["--limit", "30", "--delay", DELAY],
        name,
    )
}

#[test]
fn a_second_drain_of_the_same_repository_exits_75_naming_the_first() {
    let (env, forge) = world();
    let first = slow_drain(&env, &forge, "first");
    let pid = first.pid();
    // The first holds the lock once it has asked the forge anything.
    wait_until("the first drain's first request", drive::HANG_GUARD, || {
        !forge.requests().is_empty()
    });
    let second = drain(&env, &forge, 5);
    second.exit(75);
    assert!(
        second
            .stderr
            .contains(&format!("Already syncing (PID {pid})")),
        "{}",
        second.dump()
    );
    let pid_text = fs::read_to_string(pid_file(&env)).unwrap();
    assert_eq!(pid_text.trim(), pid.to_string());
    let status = status_json(&env);
    assert_eq!(status["running"], json!(true), "{status}");
    assert_eq!(status["pid"], json!(pid), "{status}");
    first.signal("TERM");
    first.wait(drive::HANG_GUARD).ok();
}

#[test]
fn a_stale_pid_file_does_not_block() {
    let (env, forge) = world();
    forge.put(FORGE, Item::issue(1, "One"));
    forge.put(FORGE, Item::issue(2, "Two"));
    mention(&env, &[1, 2]);
    let dead = {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    fs::create_dir_all(pid_file(&env).parent().unwrap()).unwrap();

    // A dead PID, no lock held.
    fs::write(pid_file(&env), format!("{dead}\n")).unwrap();
    drain(&env, &forge, 1).ok();
    // A live PID (this test's own), no lock held.
    fs::write(pid_file(&env), format!("{}\n", std::process::id())).unwrap();
    drain(&env, &forge, 1).ok();
    assert_eq!(pending(&env), BTreeSet::new());
}

// ---- 10. SIGINT / SIGTERM end the drain after the request in flight ----------------

fn interrupted_by(signal: &str) {
    let (env, forge) = world();
    let mut bg = slow_drain(&env, &forge, signal);
    wait_until("three requests", drive::HANG_GUARD, || {
        forge.requests().len() >= 3
    });
    assert!(bg.running(), "the drain ended before the signal");
    bg.signal(signal);
    let out = bg.wait(drive::HANG_GUARD);
    out.ok();
    let log = forge.requests();
    // Every request sent got its answer recorded: nothing fetched is lost.
    let asked: BTreeSet<u64> = log
        .iter()
        .map(|r| {
            r.path
                .rsplit('/')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("unexpected request {r:?}"))
        })
        .collect();
    assert!(asked.len() >= 3 && asked.len() < 30, "{log:#?}");
    assert_eq!(resolved(&env), asked, "{}", out.dump());
    assert_eq!(runs(&env).last().unwrap().0, "interrupted");
    assert_eq!(out.summary().0, asked.len() as u64);
    let status = status_json(&env);
    assert_eq!(
        status["last_run"]["state"],
        json!("interrupted"),
        "{status}"
    );
    assert_eq!(status["resolved"], json!(asked.len()), "{status}");

    // A rerun finishes the rest.
    forge.set_latency(Duration::ZERO);
    drain(&env, &forge, 30).ok();
    assert_eq!(pending(&env), BTreeSet::new());
    assert_eq!(runs(&env).last().unwrap().0, "finished");
}

#[test]
fn sigint_ends_the_drain_after_the_request_in_flight() {
    interrupted_by("INT");
}

#[test]
fn sigterm_ends_the_drain_after_the_request_in_flight() {
    interrupted_by("TERM");
}

#[test]
fn a_killed_drain_keeps_every_outcome_committed_before() {
    let (env, forge) = world();
    let bg = slow_drain(&env, &forge, "kill");
    wait_until("four requests", drive::HANG_GUARD, || {
        forge.requests().len() >= 4
    });
    bg.signal("KILL");
    let out = bg.wait(drive::HANG_GUARD);
    assert_eq!(out.code, None, "{}", out.dump());
    let asked = forge.requests().len();
    // At most the request in flight (and an answer not yet written) is lost.
    let kept = resolved(&env).len();
    assert!(kept + 2 >= asked && kept <= asked, "kept {kept} of {asked}");
    assert!(kept >= 2, "kept {kept} of {asked}");
    // The next run finds the run that was killed and says it was interrupted.
    forge.set_latency(Duration::ZERO);
    drain(&env, &forge, 30).ok();
    let states: Vec<String> = runs(&env).into_iter().map(|r| r.0).collect();
    assert_eq!(states, vec!["interrupted", "finished"]);
    assert_eq!(pending(&env), BTreeSet::new());
}
