//! End-to-end tests of a drain against a failing forge: transient faults
//! leave a ref pending (with its attempt count, error and next attempt) and
//! are never counted as failed; five in a row end the run cleanly; a listing
//! cut short goes on from its cursor. The real binary against the fake GitHub.
//!
//! Five failures in a row cost the client's own backoff (2 + 4 + 8 + 16 s)
//! before it gives up: the two tests that need that run in parallel.

mod drive;
mod testenv;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drive::Ran;
use fakeforge::{FakeForge, Fault, Item, Logged};
use serde_json::{Value, json};
use testenv::{FORGE, TestEnv};

const DELAY: &str = "10ms";

// ---- running the binary -----------------------------------------------------

fn run_in_home(env: &TestEnv, patina_home: &Path, api_url: &str, args: &[&str]) -> Ran {
    drive::run_with(env, patina_home, api_url, &[], args)
}

fn drain(env: &TestEnv, forge: &FakeForge, limit: u64) -> Ran {
    run_in_home(
        env,
        env.patina_home(),
        &forge.url(),
        &["--limit", &limit.to_string(), "--delay", DELAY],
    )
}

// ---- the world ----------------------------------------------------------------

fn world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    // Budget spreading would otherwise space requests by 3600 s / 5000.
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.add_repo(FORGE);
    (env, forge)
}

/// One commit per number, in the order given (the last is the newest
/// mention), then an offline discovery.
fn mention(env: &TestEnv, numbers: &[u64]) {
    for n in numbers {
        env.commit(&format!("change {n} (#{n})"));
    }
    run_in_home(env, env.patina_home(), testenv::NO_FORGE, &["--offline"]).ok();
}

fn count(env: &TestEnv, sql: &str) -> u64 {
    let rows = env.query(sql);
    rows[0][0].parse().expect("a count")
}

fn paths(log: &[Logged]) -> Vec<String> {
    log.iter().map(|r| r.path.clone()).collect()
}

fn issue_path(n: u64) -> String {
    format!("/repos/{FORGE}/issues/{n}")
}

const FIRST_PAGE: &str =
    "/repos/acme/widget/issues?state=all&sort=created&direction=desc&per_page=100";

fn later_page(forge: &FakeForge, page: u32) -> String {
    let id = forge.repo_id(FORGE).expect("repo id");
    format!(
        "/repositories/{id}/issues?state=all&sort=created&direction=desc&per_page=100&page={page}"
    )
}

fn numbers(env: &TestEnv, condition: &str) -> BTreeSet<u64> {
    env.query(&format!(
        "SELECT ref_number FROM forge_refs WHERE repo = '{FORGE}' AND ({condition})"
    ))
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect()
}

fn pending(env: &TestEnv) -> BTreeSet<u64> {
    numbers(env, "resolved IS NULL")
}

fn resolved(env: &TestEnv) -> BTreeSet<u64> {
    numbers(env, "resolved IS NOT NULL AND error IS NULL")
}

fn run_states(env: &TestEnv) -> Vec<(String, u64)> {
    env.query("SELECT state, failed FROM forge_runs ORDER BY id")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect()
}

fn status_json(env: &TestEnv) -> Value {
    let out = run_in_home(
        env,
        env.patina_home(),
        testenv::NO_FORGE,
        &["--status", "--json"],
    );
    out.ok();
    serde_json::from_str(out.stdout.trim()).expect("one JSON object")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// (attempts, last_error, next_attempt, error) of ref `n`.
fn bookkeeping(env: &TestEnv, n: u64) -> (u64, String, String, String) {
    let row = env.query(&format!(
        "SELECT attempts, last_error, next_attempt, error FROM forge_refs \
         WHERE repo = '{FORGE}' AND ref_number = {n}"
    ));
    let r = &row[0];
    (
        r[0].parse().unwrap(),
        r[1].clone(),
        r[2].clone(),
        r[3].clone(),
    )
}

// ---- 5. transient faults ----------------------------------------------------------

/// `PATINA_FORGE_TEST_RETRY_BASE` for the runs that meet a fault: the
/// client's own schedule (30 s by default) shortened, so that the faulted
/// ref is due by the next run without the test changing the database.
const RETRY_BASE: &str = "2s";

/// Each fault hits one ref in a world of its own, where a healthy ref
/// follows it, so that no two failures come in a row. With `--limit 1`, the
/// healthy one (chosen right after the failure, while the faulted ref's
/// retry is still `RETRY_BASE` away) ends the run and the faulted ref stays
/// pending; a later run, once it is due, resolves it. The worlds run at
/// once: each failure costs the client's 2 s backoff.
fn transient(faults: &[Fault]) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = faults
            .iter()
            .map(|fault| scope.spawn(move || transient_one(fault)))
            .collect();
        for h in handles {
            h.join().expect("a fault's check panicked");
        }
    });
}

fn transient_one(fault: &Fault) {
    let (env, forge) = world();
    let (bad, good) = (1_000, 1_500);
    forge.put(FORGE, Item::issue(bad, "Unlucky"));
    forge.put(FORGE, Item::pr(good, "Lucky"));
    forge.push_fault_on(&format!("/issues/{bad}"), fault.clone());
    // #bad is the newest mention: asked first.
    mention(&env, &[good, bad]);

    let started = unix_now();
    let out = drive::run_with(
        &env,
        env.patina_home(),
        &forge.url(),
        &[("PATINA_FORGE_TEST_RETRY_BASE", RETRY_BASE)],
        &["--limit", "1", "--delay", DELAY],
    );
    out.ok();
    assert_eq!(
        paths(&forge.requests()),
        [bad, good].map(issue_path).to_vec(),
        "{fault:?}: one request each, newest first, no retry within the limit"
    );
    assert_eq!(resolved(&env), BTreeSet::from([good]), "{}", out.dump());
    assert_eq!(pending(&env), BTreeSet::from([bad]), "{}", out.dump());
    let (attempts, last_error, next_attempt, error) = bookkeeping(&env, bad);
    assert_eq!(attempts, 1, "#{bad} after {fault:?}");
    assert_ne!(last_error, "NULL", "#{bad} after {fault:?}: no last_error");
    assert_eq!(error, "NULL", "#{bad} after {fault:?}: counted as failed");
    let next: i64 = next_attempt
        .parse()
        .unwrap_or_else(|_| panic!("#{bad} after {fault:?}: next_attempt {next_attempt:?}"));
    assert!(
        next > started,
        "#{bad} after {fault:?}: next_attempt {next} is not later"
    );
    // Never counted as failed: not by patina's count, not by the run.
    let status = status_json(&env);
    assert_eq!(status["failed"], json!(0), "{fault:?}: {status}");
    assert_eq!(status["pending"], json!(1), "{fault:?}: {status}");
    assert_eq!(out.summary().1, 0, "{fault:?}");
    assert_eq!(
        run_states(&env),
        vec![("finished".to_string(), 0)],
        "{fault:?}"
    );

    // Later, when it is due (the run waits for it if need be), a run
    // resolves it.
    forge.clear_log();
    let later = drain(&env, &forge, 100);
    later.ok();
    assert_eq!(pending(&env), BTreeSet::new(), "{}", later.dump());
    assert_eq!(
        paths(&forge.requests()),
        [issue_path(bad)],
        "{fault:?}: asked once more"
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_refs WHERE error IS NOT NULL"
        ),
        0,
        "{fault:?}"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM forge_issues"),
        1,
        "{fault:?}"
    );
}

#[test]
fn server_errors_and_broken_connections_leave_the_ref_pending() {
    transient(&[
        Fault::Status(500),
        Fault::Status(502),
        Fault::Reset,
        Fault::Hang(Duration::from_millis(300)),
        Fault::Huge,
    ]);
}

#[test]
fn broken_bodies_leave_the_ref_pending() {
    transient(&[Fault::Malformed, Fault::Html, Fault::WrongTypes]);
}

/// Eight refs, five faults queued: the five newest refs fail in a row, the
/// run gives up cleanly, everything stays pending.
fn five_in_a_row(faults: [Fault; 5]) {
    let (env, forge) = world();
    let all: Vec<u64> = (1..=8).map(|n| n * 100).collect();
    for n in &all {
        forge.put(FORGE, Item::issue(*n, "Never reached"));
    }
    mention(&env, &all);
    for fault in faults {
        forge.push_fault(fault);
    }
    let out = drain(&env, &forge, 50);
    out.fails_with_one_error_line();
    // Five requests (the five newest refs), then nothing more.
    assert_eq!(
        paths(&forge.requests()),
        [800, 700, 600, 500, 400].map(issue_path).to_vec()
    );
    assert_eq!(pending(&env), all.iter().copied().collect::<BTreeSet<_>>());
    for n in &all {
        let (attempts, last_error, _, error) = bookkeeping(&env, *n);
        assert_eq!(error, "NULL", "#{n}");
        if *n >= 400 {
            assert_eq!(attempts, 1, "#{n}");
            assert_ne!(last_error, "NULL", "#{n}");
        } else {
            assert_eq!(attempts, 0, "#{n}");
            assert_eq!(last_error, "NULL", "#{n}");
        }
    }
    let status = status_json(&env);
    assert_eq!(status["failed"], json!(0), "{status}");
    assert_eq!(status["pending"], json!(8), "{status}");
    assert_eq!(run_states(&env), vec![("failed".to_string(), 0)]);
}

#[test]
fn five_failures_in_a_row_end_the_run_and_leave_the_rest_pending() {
    five_in_a_row([
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Reset,
        Fault::Status(504),
    ]);
}

#[test]
fn five_broken_bodies_in_a_row_end_the_run_too() {
    five_in_a_row([
        Fault::Status(500),
        Fault::Malformed,
        Fault::Html,
        Fault::WrongTypes,
        Fault::Malformed,
    ]);
}

// ---- 3. a listing cut short goes on from its cursor ----------------------------------

#[test]
fn an_interrupted_listing_continues_from_its_cursor() {
    let (env, forge) = world();
    for n in 1..=350 {
        forge.put(FORGE, Item::issue(n, &format!("Issue {n}")));
    }
    env.commit("start (#7)");
    run_in_home(&env, env.patina_home(), &forge.url(), &[]).ok();
    assert_eq!(pending(&env).len(), 350);
    forge.clear_log();
    let third = later_page(&forge, 3);
    for _ in 0..5 {
        forge.push_fault_on("page=3", Fault::Status(502));
    }

    let first = drain(&env, &forge, 1_000);
    first.fails_with_one_error_line();
    let mut expected = vec![FIRST_PAGE.to_string(), later_page(&forge, 2)];
    expected.extend(std::iter::repeat_n(third.clone(), 5));
    assert_eq!(paths(&forge.requests()), expected);
    // The two pages that came are kept; the rest is pending.
    assert_eq!(resolved(&env), (151..=350).collect::<BTreeSet<u64>>());
    assert_eq!(pending(&env), (1..=150).collect::<BTreeSet<u64>>());
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_refs WHERE attempts <> 0 OR error IS NOT NULL"
        ),
        0
    );

    // The next run starts where the listing stopped. (A fresh PATINA_HOME:
    // the failures' backoff in the pace ledger is not what this is about.)
    forge.clear_log();
    let other_home = env.root().join("other-patina-home");
    std::fs::create_dir(&other_home).unwrap();
    let second = run_in_home(
        &env,
        &other_home,
        &forge.url(),
        &["--limit", "1000", "--delay", DELAY],
    );
    second.ok();
    assert_eq!(
        paths(&forge.requests()),
        vec![third, later_page(&forge, 4)],
        "{}",
        second.dump()
    );
    assert_eq!(pending(&env), BTreeSet::new());
    assert_eq!(second.summary(), (150, 0, 0, 2));
}
