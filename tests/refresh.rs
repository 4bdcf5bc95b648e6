//! Keeping current: after a drain, a refresh brings in exactly what changed on
//! the forge, page by page, nearly free when nothing did.

mod testenv;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fakeforge::{FakeForge, Item};
use testenv::{FORGE, TestEnv};

/// A fake with `n` issues and PRs, a budget that does not slow the tests, and
/// its reset within the hour as GitHub's.
fn forge_with(n: u64) -> FakeForge {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    forge.set_rate_limit(100_000_000, 100_000_000, reset);
    for i in 1..=n {
        let item = if i % 3 == 0 {
            Item::pr(i, &format!("PR {i}"))
        } else {
            Item::issue(i, &format!("Issue {i}"))
        };
        forge.put(FORGE, item);
    }
    forge
}

/// A project whose whole backlog is resolved against `forge`.
fn drained(forge: &FakeForge) -> TestEnv {
    let env = TestEnv::with_origin();
    env.commit("fix: first (#1)");
    env.set_api_url(&forge.url());
    env.run::<_, &str>([]).assert_success();
    env.run(["--resume", "--delay", "1ms"]).assert_success();
    assert_eq!(pending(&env), 0);
    env
}

fn pending(env: &TestEnv) -> u64 {
    env.query("SELECT count(*) FROM forge_refs WHERE resolved IS NULL")[0][0]
        .parse()
        .unwrap()
}

fn events_of(env: &TestEnv, number: u64) -> u64 {
    env.query(&format!(
        "SELECT count(*) FROM eventlog WHERE source_id = '{number}'"
    ))[0][0]
        .parse()
        .unwrap()
}

fn total_events(env: &TestEnv) -> u64 {
    env.query("SELECT count(*) FROM eventlog")[0][0]
        .parse()
        .unwrap()
}

/// Requests whose path starts the changed-since listing.
fn refresh_requests(forge: &FakeForge, from: usize) -> Vec<fakeforge::Logged> {
    forge.requests()[from..]
        .iter()
        .filter(|r| r.path.contains("sort=updated"))
        .cloned()
        .collect()
}

#[test]
fn a_refresh_stores_exactly_what_changed_one_event_each() {
    let forge = forge_with(250);
    let env = drained(&forge);
    let before = total_events(&env);

    // Between runs: an edited title, a merge, a close, and a new issue.
    forge.put(FORGE, Item::issue(5, "Issue 5, edited"));
    forge.put(FORGE, Item::pr(6, "PR 6").merged("2026-01-02T03:04:05Z"));
    forge.put(FORGE, Item::issue(7, "Issue 7").closed());
    // Opened now, as a new issue is (the fake dates items by number otherwise).
    let now = fakeforge::iso(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    forge.put(
        FORGE,
        Item::issue(251, "A new issue").created(&now).updated(&now),
    );

    let out = env.run(["--resume", "--delay", "1ms"]);
    out.assert_success();
    assert!(
        out.stdout.contains("4 new or changed items"),
        "{}",
        out.stdout
    );
    assert_eq!(total_events(&env), before + 4);
    for n in [5, 6, 7] {
        assert_eq!(
            events_of(&env, n),
            2,
            "#{n}: the first version and the change"
        );
    }
    assert_eq!(events_of(&env, 251), 1);
    assert_eq!(
        env.query("SELECT title FROM forge_issues WHERE number = 5")[0][0],
        "Issue 5, edited"
    );
    assert_eq!(
        env.query("SELECT state FROM forge_prs WHERE number = 6")[0][0],
        "merged"
    );
    assert_eq!(
        env.query("SELECT state FROM forge_issues WHERE number = 7")[0][0],
        "closed"
    );
    // The new issue joined the backlog, resolved.
    assert_eq!(
        env.query("SELECT ref_kind, resolved IS NOT NULL FROM forge_refs WHERE ref_number = 251"),
        vec![vec!["issue".to_owned(), "1".to_owned()]]
    );
    // patina's high-water mark moved to the newest change stored.
    let mark = &env.query("SELECT value FROM scrape_meta WHERE key = 'last_processed_forge'")[0][0];
    let newest = forge.get(FORGE, 251).unwrap().updated_at;
    assert!(mark >= &newest, "mark {mark} < {newest}");

    let status: serde_json::Value =
        serde_json::from_str(&env.run(["--status", "--json"]).stdout).unwrap();
    assert_eq!(status["last_refresh"]["changed"], 4, "{status}");
}

#[test]
fn an_unchanged_repository_costs_one_request_that_is_not_counted() {
    let forge = forge_with(120);
    let env = drained(&forge);
    // The drain's own refresh saw the first page and kept its ETag.
    let from = forge.requests().len();
    let out = env.run(["--resume", "--delay", "1ms"]);
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let sent = &forge.requests()[from..];
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(sent[0].status, 304);
    assert!(!sent[0].counted);
    assert!(sent[0].header("if-none-match").is_some());
}

#[test]
fn fifty_changes_in_twenty_thousand_items_cost_one_page() {
    let forge = forge_with(20_000);
    let env = drained(&forge);
    for n in (1..=20_000).step_by(400) {
        let item = forge.get(FORGE, n).unwrap();
        forge.put(
            FORGE,
            Item {
                title: format!("{} (edited)", item.title),
                ..item
            },
        );
    }
    let from = forge.requests().len();
    let before = total_events(&env);
    env.run(["--resume", "--delay", "1ms"]).assert_success();
    let sent = &forge.requests()[from..];
    let counted = sent.iter().filter(|r| r.counted).count();
    println!(
        "refresh of 20,000 items with 50 changed: {} requests sent, {counted} counted",
        sent.len()
    );
    assert_eq!(sent.len(), 1, "one listing page and nothing else");
    assert_eq!(total_events(&env), before + 50);

    let from = forge.requests().len();
    env.run(["--resume", "--delay", "1ms"]).assert_success();
    let sent = &forge.requests()[from..];
    let counted = sent.iter().filter(|r| r.counted).count();
    println!(
        "refresh of 20,000 unchanged items: {} requests sent, {counted} counted",
        sent.len()
    );
    assert_eq!((sent.len(), counted), (1, 0));
}

#[test]
fn a_killed_refresh_loses_nothing_and_the_next_one_finishes_it() {
    let forge = forge_with(300);
    let env = drained(&forge);
    let before = total_events(&env);
    let changed: Vec<u64> = (1..=300).filter(|n| n % 2 == 0).collect();
    for &n in &changed {
        let item = forge.get(FORGE, n).unwrap();
        forge.put(
            FORGE,
            Item {
                title: format!("{} (edited)", item.title),
                ..item
            },
        );
    }
    forge.set_latency(Duration::from_millis(300));
    let from = forge.requests().len();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patina-forge"))
        .args([
            "-C",
            env.repo().to_str().unwrap(),
            "--resume",
            "--delay",
            "1ms",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("PATINA_HOME", env.patina_home())
        .env("PATINA_FORGE_API_URL", forge.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed by its own PID once the first page of the refresh is answered.
    // A guard against a hang, not a claim about speed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while refresh_requests(&forge, from)
        .iter()
        .all(|r| r.status != 200)
    {
        assert!(
            Instant::now() < deadline,
            "hangs: the refresh did not get its first page in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    forge.set_latency(Duration::ZERO);

    let out = env.run(["--resume", "--delay", "1ms"]);
    out.assert_success();
    // Every change stored once: no event lost, none twice.
    assert_eq!(total_events(&env), before + changed.len() as u64);
    for n in changed {
        assert_eq!(events_of(&env, n), 2, "#{n}");
    }
    assert_eq!(env.query("PRAGMA integrity_check")[0][0], "ok");
}

#[test]
fn full_re_lists_everything_and_appends_no_event_for_what_did_not_change() {
    let forge = forge_with(250);
    let env = drained(&forge);
    let before = total_events(&env);
    let from = forge.requests().len();
    env.run(["--resume", "--full", "--delay", "1ms"])
        .assert_success();
    let pages = refresh_requests(&forge, from);
    // 250 items, 100 a page, from the first change ever: three pages.
    assert_eq!(
        pages.len(),
        3,
        "{:?}",
        pages.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(!pages[0].path.contains("since="), "{}", pages[0].path);
    assert_eq!(
        total_events(&env),
        before,
        "nothing changed, nothing appended"
    );
}
