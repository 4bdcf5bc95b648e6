//! Beyond github.com: a full discovery → drain on GitHub Enterprise and on
//! Gitea (Forgejo, Codeberg), with the same outcomes as on github.com (found,
//! gone, transient), and what an unknown host is, asked once and remembered.

mod drive;
mod testenv;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use drive::Ran;
use fakeforge::{FakeForge, Fault, Item, Logged};
use serde_json::{Value, json};
use testenv::{FORGE, TestEnv};

const DELAY: &str = "10ms";
const GITEA_TOKEN: &str = "gitea_0123456789abcdef";
const GHE_TOKEN: &str = "ghe_token_fedcba9876543210";

fn run(env: &TestEnv, api_url: &str, extra: &[(&str, &str)], args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), api_url, extra, args)
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

fn status_json(env: &TestEnv) -> Value {
    let out = run(env, testenv::NO_FORGE, &[], &["--status", "--json"]);
    out.ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

fn paths(log: &[Logged]) -> Vec<String> {
    log.iter().map(|r| r.path.clone()).collect()
}

/// The same small project on any forge: an issue with comments, a merged PR
/// with reviews, a closed PR, an open issue by a deleted account, a deleted
/// number (5) and a missing one (6), and 7..=130 plain issues so that the
/// range is dense enough to be listed.
fn fill(forge: &FakeForge) {
    forge.add_repo(FORGE);
    forge.put(
        FORGE,
        Item::issue(1, "Crash on start")
            .labels(&["bug"])
            .comment(Some("ann"), "Same here.", "2020-01-02T00:00:00Z")
            .comment(None, "Gone account.", "2020-01-03T00:00:00Z"),
    );
    forge.put(
        FORGE,
        Item::pr(2, "Fix the crash")
            .merged("2020-02-01T00:00:00Z")
            .comment(Some("bob"), "LGTM", "2020-01-20T00:00:00Z")
            .review(Some("bob"), "APPROVED")
            .review(Some("carol"), "APPROVED")
            .review(Some("dave"), "CHANGES_REQUESTED"),
    );
    forge.put(FORGE, Item::pr(3, "Abandoned").closed());
    forge.put(FORGE, Item::issue(4, "Orphan").author(None));
    forge.put(FORGE, Item::issue(5, "Deleted later"));
    forge.delete(FORGE, 5);
    for n in 7..=130 {
        forge.put(FORGE, Item::issue(n, &format!("Issue {n}")));
    }
}

/// A project whose origin is on `host`, with commits mentioning 1..=6.
fn project(host: &str) -> TestEnv {
    let env = TestEnv::new();
    env.set_origin(&format!("https://{host}/{FORGE}.git"));
    for n in 1..=6 {
        env.commit(&format!("change {n} (#{n})"));
    }
    env
}

/// The outcomes every kind must reach for `fill`'s data.
fn assert_outcomes(env: &TestEnv) {
    assert!(
        numbers(
            env,
            "SELECT ref_number FROM forge_refs WHERE resolved IS NULL"
        )
        .is_empty(),
        "nothing pending"
    );
    assert_eq!(
        numbers(
            env,
            "SELECT ref_number FROM forge_refs WHERE error IS NOT NULL"
        ),
        BTreeSet::from([5, 6]),
        "deleted and missing settle as failed"
    );
    assert_eq!(
        one(env, "SELECT count(*) FROM forge_issues"),
        (2 + 124).to_string()
    );
    assert_eq!(
        env.query("SELECT number, state, approvals FROM forge_prs ORDER BY number"),
        [vec!["2", "merged", "2"], vec!["3", "closed", "0"]]
    );
    // A deleted account is `ghost` on every forge, as GitHub's REST API
    // names it.
    assert_eq!(
        one(env, "SELECT author FROM forge_issues WHERE number = 4"),
        "ghost"
    );
    assert_eq!(
        env.query("SELECT number, author, body FROM forge_comments ORDER BY number, position"),
        [
            vec!["1", "ann", "Same here."],
            vec!["1", "ghost", "Gone account."],
            vec!["2", "bob", "LGTM"],
        ]
    );
    let event: Value = serde_json::from_str(&one(
        env,
        "SELECT data FROM eventlog WHERE event_type = 'forge.pr' AND source_id = '2'",
    ))
    .unwrap();
    assert_eq!(event["comments"], "bob: LGTM");
    assert_eq!(event["approvals"], 2);
    assert_eq!(event["state"], "merged");
}

#[test]
fn codeberg_is_gitea_from_discovery_to_a_drained_backlog() {
    let forge = FakeForge::start_gitea();
    forge.require_token(GITEA_TOKEN);
    fill(&forge);
    let env = project("codeberg.org");
    let token = [("GITEA_TOKEN", GITEA_TOKEN)];
    // Discovery learns the newest number from Gitea's listing.
    let found = run(&env, &forge.url(), &token, &[]);
    found.ok();
    assert!(found.stdout.contains("(1..130)"), "{}", found.dump());
    // One transient failure on the way: retried, not failed.
    forge.push_fault_on("/issues/6", Fault::Status(502));
    forge.clear_log();
    let out = run(
        &env,
        &forge.url(),
        &token,
        &["--limit", "1000", "--delay", DELAY],
    );
    out.ok();
    assert_outcomes(&env);
    let log = forge.requests();
    let all = paths(&log);
    // Known by name: nothing asked about the host.
    assert!(
        !all.iter()
            .any(|p| p.contains("/version") || p.contains("/meta")),
        "{all:?}"
    );
    // Gitea's pages: 50 a page, followed by Link; no GraphQL.
    assert!(
        all.iter().any(|p| p.contains("/issues?state=all&limit=50")),
        "{all:?}"
    );
    assert!(all.iter().any(|p| p.contains("page=2")), "{all:?}");
    assert!(!all.iter().any(|p| p.contains("graphql")));
    // Comments and reviews, one request each, for the items that have them.
    assert!(
        all.iter()
            .any(|p| p.ends_with("/issues/1/comments?limit=20")),
        "{all:?}"
    );
    assert!(
        all.iter().any(|p| p.ends_with("/pulls/2/reviews")),
        "{all:?}"
    );
    assert!(
        !all.iter().any(|p| p.contains("/issues/7/comments")),
        "no comments, no request"
    );
    // Gitea's token form, on every request.
    assert!(
        log.iter()
            .all(|r| r.header("authorization") == Some(&format!("token {GITEA_TOKEN}"))),
        "{log:?}"
    );
    let status = status_json(&env);
    assert_eq!(status["forge_kind"], "gitea", "{status}");
    assert_eq!(status["api"], "rest");
    assert_eq!(status["api_note"], "Gitea has no GraphQL");
    assert_eq!(
        status["rate_limit"],
        Value::Null,
        "Gitea sends no rate-limit headers"
    );
}

#[test]
fn an_unknown_gitea_host_is_asked_once_and_remembered() {
    let forge = FakeForge::start_gitea();
    fill(&forge);
    let env = project("git.example.org");
    // Discovery's one request (the newest number) is the first to need it.
    let first = run(&env, &forge.url(), &[], &[]);
    first.ok();
    assert!(
        first.stderr.contains("git.example.org is Gitea"),
        "{}",
        first.dump()
    );
    assert!(first.stdout.contains("(1..130)"), "{}", first.dump());
    let probes: Vec<String> = paths(&forge.requests())
        .into_iter()
        .filter(|p| p.ends_with("/version") || p.ends_with("/meta"))
        .collect();
    assert_eq!(probes, ["/api/v1/version"]);
    run(
        &env,
        &forge.url(),
        &[],
        &["--limit", "1000", "--delay", DELAY],
    )
    .ok();
    assert_outcomes(&env);
    let status = status_json(&env);
    assert_eq!(status["forge_kind"], "gitea");
    assert_eq!(status["api_base"], forge.url());
    let text = run(&env, testenv::NO_FORGE, &[], &["--status"]);
    assert!(
        text.stdout
            .contains(&format!("Forge kind: gitea ({})", forge.url())),
        "{}",
        text.dump()
    );
    // Remembered: the next run asks the host nothing about itself.
    forge.clear_log();
    run(&env, &forge.url(), &[], &["--resume", "--delay", DELAY]).ok();
    assert!(
        !paths(&forge.requests())
            .iter()
            .any(|p| p.ends_with("/version") || p.ends_with("/meta"))
    );
}

#[test]
fn github_enterprise_is_detected_and_paced_by_the_ledger_alone() {
    let forge = FakeForge::start_ghe();
    forge.require_token(GHE_TOKEN);
    forge.set_rate_limiting(false);
    fill(&forge);
    let env = project("ghe.example.com");
    // The enterprise variable wins over GITHUB_TOKEN, as gh takes them.
    let token = [
        ("GH_ENTERPRISE_TOKEN", GHE_TOKEN),
        ("GITHUB_TOKEN", "ghp_not_for_this_host"),
    ];
    let found = run(&env, &forge.url(), &token, &[]);
    found.ok();
    assert!(
        found
            .stderr
            .contains("ghe.example.com is GitHub Enterprise"),
        "{}",
        found.dump()
    );
    let out = run(
        &env,
        &forge.url(),
        &token,
        &["--limit", "1000", "--delay", "150ms"],
    );
    out.ok();
    assert_outcomes(&env);
    let log = forge.requests();
    let all = paths(&log);
    assert!(all.contains(&"/api/v3/meta".to_owned()), "{all:?}");
    // With a token: GraphQL at /api/graphql, beside /api/v3.
    let posts: Vec<&Logged> = log.iter().filter(|r| r.method == "POST").collect();
    assert!(
        !posts.is_empty() && posts.iter().all(|r| r.path == "/api/graphql"),
        "{all:?}"
    );
    assert!(
        log.iter()
            .filter(|r| !r.path.ends_with("/meta") && !r.path.ends_with("/version"))
            .all(|r| r.header("authorization") == Some(&format!("Bearer {GHE_TOKEN}"))),
        "{log:?}"
    );
    // No rate-limit headers: the ledger's spacing is all the pacing there is.
    // The log holds arrival times, each a little after its slot in the
    // ledger (tens of ms on a loaded machine), so one gap may look shorter
    // than the 150 ms spacing; none is a burst (without the ledger they come
    // a few ms apart), and from the first to the last the whole spacing is
    // there, less the first one's lateness.
    let drain: Vec<&Logged> = log
        .iter()
        .filter(|r| !r.path.ends_with("/meta") && !r.path.ends_with("/version"))
        .collect();
    for pair in drain.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(75), "{gap:?} between {pair:?}");
    }
    let span = drain[drain.len() - 1].at.duration_since(drain[0].at);
    let spacing = Duration::from_millis(150) * (drain.len() as u32 - 1);
    assert!(
        span + Duration::from_millis(100) >= spacing,
        "{} requests in {span:?}: {drain:?}",
        drain.len()
    );
    let status = status_json(&env);
    assert_eq!(status["forge_kind"], "github-enterprise");
    assert_eq!(status["api"], "graphql");
}

/// Most company servers run in private mode: `/api/v3/meta` is 401 without
/// a token, like every other call. The 401 names the server's version
/// (`x-github-enterprise-version`), which is enough to know the kind, and the
/// token still goes only to a host whose kind is known.
#[test]
fn github_enterprise_in_private_mode_is_detected_without_sending_the_token() {
    let forge = FakeForge::start_ghe();
    forge.require_token(GHE_TOKEN);
    forge.set_private_mode(true);
    fill(&forge);
    let env = project("ghe.example.com");
    let token = [("GH_ENTERPRISE_TOKEN", GHE_TOKEN)];
    let found = run(&env, &forge.url(), &token, &[]);
    found.ok();
    assert!(
        found
            .stderr
            .contains("ghe.example.com is GitHub Enterprise"),
        "{}",
        found.dump()
    );
    let probes: Vec<Logged> = forge
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/meta") || r.path.ends_with("/version"))
        .collect();
    assert!(
        probes
            .iter()
            .any(|r| r.path == "/api/v3/meta" && r.status == 401),
        "{probes:?}"
    );
    assert!(
        probes.iter().all(|r| r.header("authorization").is_none()),
        "the token went to a host of unknown kind: {probes:?}"
    );
    run(
        &env,
        &forge.url(),
        &token,
        &["--limit", "1000", "--delay", "10ms"],
    )
    .ok();
    assert_outcomes(&env);
    assert_eq!(status_json(&env)["forge_kind"], "github-enterprise");
}

#[test]
fn github_enterprise_without_graphql_and_without_a_token_uses_rest() {
    let forge = FakeForge::start_ghe();
    fill(&forge);
    let env = project("ghe.example.com");
    run(
        &env,
        &forge.url(),
        &[],
        &["--forge-kind", "github-enterprise"],
    )
    .ok();
    // One transient failure on the way: retried, not failed.
    forge.push_fault(Fault::Status(502));
    let out = run(
        &env,
        &forge.url(),
        &[],
        &[
            "--limit",
            "1000",
            "--delay",
            DELAY,
            "--forge-kind",
            "github-enterprise",
        ],
    );
    out.ok();
    assert!(forge.requests().iter().any(|r| r.status == 502));
    assert!(
        numbers(
            &env,
            "SELECT ref_number FROM forge_refs WHERE resolved IS NULL"
        )
        .is_empty(),
        "the 502 was retried"
    );
    // Told, not asked.
    assert!(
        !paths(&forge.requests())
            .iter()
            .any(|p| p.ends_with("/meta"))
    );
    // REST carries no discussion; everything else is the same.
    assert_eq!(one(&env, "SELECT count(*) FROM forge_comments"), "0");
    assert_eq!(
        numbers(
            &env,
            "SELECT ref_number FROM forge_refs WHERE error IS NOT NULL"
        ),
        BTreeSet::from([5, 6])
    );
    assert!(
        out.stderr
            .contains("no GitHub Enterprise token (GH_ENTERPRISE_TOKEN"),
        "{}",
        out.dump()
    );
}

#[test]
fn a_host_that_is_neither_says_what_to_pass() {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    let env = project("forge.example.net");
    // Discovery goes on without the range, and says why.
    let found = run(&env, &format!("{}/nowhere", forge.url()), &[], &[]);
    found.ok();
    assert!(
        found.stderr.contains("cannot tell what forge"),
        "{}",
        found.dump()
    );
    // A plain GitHub API at a base that answers neither probe as asked.
    let out = run(
        &env,
        &format!("{}/nowhere", forge.url()),
        &[],
        &["--limit", "5"],
    );
    let line = out.fails_with_one_error_line();
    assert!(
        line.contains("cannot tell what forge forge.example.net is"),
        "{line}"
    );
    assert!(line.contains("--forge-kind"), "{line}");
    let status = status_json(&env);
    assert_eq!(status["forge_kind"], Value::Null);
    assert_eq!(status["pending"], json!(6), "nothing marked");
}

#[test]
fn gitea_answers_a_proxy_429_with_a_wait_not_a_failure() {
    let forge = FakeForge::start_gitea();
    fill(&forge);
    let env = project("codeberg.org");
    run(&env, &forge.url(), &[], &["--offline"]).ok();
    forge.push_fault(Fault::TooMany {
        retry_after: Some(2),
    });
    let started = SystemTime::now();
    let out = run(
        &env,
        &forge.url(),
        &[],
        &["--limit", "1000", "--delay", DELAY],
    );
    out.ok();
    assert!(started.elapsed().unwrap() >= Duration::from_secs(2));
    let log = forge.requests();
    let refused = log.iter().position(|r| r.status == 429).expect("a 429");
    let next = &log[refused + 1];
    assert!(
        next.at.duration_since(log[refused].at) >= Duration::from_millis(1_900),
        "asked again after {:?}",
        next.at.duration_since(log[refused].at)
    );
    assert_eq!(
        numbers(
            &env,
            "SELECT ref_number FROM forge_refs WHERE resolved IS NULL"
        ),
        BTreeSet::new()
    );
}

/// Discovery returns at once, also on a host it must first ask what it is:
/// a pace ledger held for an hour (another process met a rate limit) means
/// no probe now, a note, and the range for the next run.
#[test]
fn discovery_does_not_wait_for_a_held_ledger_to_ask_what_a_host_is() {
    let forge = FakeForge::start_gitea();
    fill(&forge);
    let env = project("git.example.org");
    let run_dir = env.patina_home().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let port = url::Url::parse(&forge.url()).unwrap().port().unwrap();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    std::fs::write(
        run_dir.join(format!("pace-127.0.0.1_{port}.json")),
        format!(r#"{{"next_at_ms":{in_an_hour},"reason":"held by a test","strikes":0}}"#),
    )
    .unwrap();

    let cmd = drive::command(&env, env.patina_home(), &forge.url(), &[], &[]);
    let out = drive::Background::start(&env, cmd, "discovery".into(), "held")
        .wait(std::time::Duration::from_secs(60));
    out.ok();
    assert!(out.stdout.contains("Total: 6 pending"), "{}", out.dump());
    assert!(
        out.stderr
            .contains("the number range is not in the backlog yet"),
        "{}",
        out.dump()
    );
    assert!(forge.requests().is_empty(), "asked while the ledger held");
}
