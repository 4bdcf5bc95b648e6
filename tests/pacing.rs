//! End-to-end tests of pacing: the spacing between requests (`--delay`,
//! shared by every process through the ledger under `$PATINA_HOME/run/`) and
//! the server's rate-limit signals, which are waited out and never cut short.
//! The fake GitHub refuses (and logs) any request sent inside a wait it
//! asked for, so "no refused request" is the proof that a wait was kept.
//!
//! The tests here measure time, so they take turns (one at a time): another
//! test's processes competing for the two cores would only add noise.

mod drive;
mod testenv;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drive::{Background, Ran, wait_until};
use fakeforge::{FakeForge, Fault, Item, Logged};
use testenv::{FORGE, TestEnv};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const DELAY: &str = "10ms";

// ---- running the binary -----------------------------------------------------

fn command(env: &TestEnv, patina_home: &Path, api_url: &str, args: &[&str]) -> Command {
    drive::command(env, patina_home, api_url, &[], args)
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), &forge.url(), &[], args)
}

/// The binary in the background (killed and reaped by its PID on drop).
fn background(
    env: &TestEnv,
    patina_home: &Path,
    api_url: &str,
    args: &[&str],
    name: &str,
) -> Background {
    let cmd = command(env, patina_home, api_url, args);
    Background::start(env, cmd, drive::describe(args), name)
}

/// A fake whose hourly budget is so large that spreading it over the hour
/// asks for less than any `--delay` used here.
fn roomy_forge() -> FakeForge {
    let forge = FakeForge::start();
    forge.set_rate_limit(10_000_000, 10_000_000, now_secs() + 3_600);
    forge
}

fn world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = roomy_forge();
    forge.add_repo(FORGE);
    (env, forge)
}

/// Items on the fake and one commit each, in the order given (the last is
/// the newest mention), then an offline discovery.
fn backlog(env: &TestEnv, forge: &FakeForge, repo: &str, numbers: &[u64]) {
    for n in numbers {
        forge.put(repo, Item::issue(*n, "Paced"));
        env.commit(&format!("change {n} (#{n})"));
    }
    let out = command(env, env.patina_home(), testenv::NO_FORGE, &["--offline"])
        .output()
        .expect("run discovery");
    assert!(out.status.success(), "discovery failed");
}

fn pending(env: &TestEnv, repo: &str) -> BTreeSet<u64> {
    env.query(&format!(
        "SELECT ref_number FROM forge_refs WHERE repo = '{repo}' AND resolved IS NULL"
    ))
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The wall-clock time (unix ms) of an `Instant` in the recent past.
fn wall_ms(at: Instant) -> u64 {
    now_ms() - Instant::now().duration_since(at).as_millis() as u64
}

fn gaps(log: &[Logged]) -> Vec<Duration> {
    log.windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect()
}

fn statuses(log: &[Logged]) -> Vec<u16> {
    log.iter().map(|r| r.status).collect()
}

/// `$PATINA_HOME/run/pace-127.0.0.1_<port>.json`
fn ledger(env: &TestEnv, forge: &FakeForge) -> PathBuf {
    let port = forge.url().rsplit(':').next().unwrap().to_string();
    env.patina_home()
        .join("run")
        .join(format!("pace-127.0.0.1_{port}.json"))
}

fn ledger_next_at_ms(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["next_at_ms"].as_u64()
}

/// (attempts, last_error) of a ref: a rate limit is not the ref's failure.
fn untouched(env: &TestEnv, n: u64) -> bool {
    let row = env.query(&format!(
        "SELECT attempts, last_error, error FROM forge_refs \
         WHERE repo = '{FORGE}' AND ref_number = {n}"
    ));
    row[0] == ["0", "NULL", "NULL"]
}

fn last_run_state(env: &TestEnv) -> String {
    env.query("SELECT state FROM forge_runs ORDER BY id DESC LIMIT 1")[0][0].clone()
}

// ---- 7. the server's signals ------------------------------------------------------

/// A secondary limit with `retry-after: 2`: the next request comes no
/// earlier (the fake would refuse it), the same ref is asked again, and the
/// ref carries no error for it.
fn retry_after_is_kept(fault: Fault, status: u16) {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    forge.push_fault(fault);
    let out = run(&env, &forge, &["--limit", "3", "--delay", DELAY]);
    out.ok();
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![status, 200, 200, 200], "{log:#?}");
    assert_eq!(log[0].path, log[1].path, "the limited ref is asked again");
    let gap = gaps(&log)[0];
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert_eq!(pending(&env, FORGE), BTreeSet::new());
    assert!(untouched(&env, 3), "{:?}", env.refs());
}

#[test]
fn a_secondary_limit_with_retry_after_is_waited_out() {
    retry_after_is_kept(
        Fault::SecondaryLimit {
            retry_after: Some(2),
        },
        403,
    );
}

#[test]
fn a_429_with_retry_after_is_waited_out() {
    retry_after_is_kept(
        Fault::TooMany {
            retry_after: Some(2),
        },
        429,
    );
}

#[test]
fn a_primary_limit_is_waited_out_until_its_reset() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    forge.push_fault(Fault::PrimaryLimit { reset_in_secs: 2 });
    run(&env, &forge, &["--limit", "3", "--delay", DELAY]).ok();
    let log = forge.requests();
    // Anything sent before the reset would have been refused with a 403.
    assert_eq!(statuses(&log), vec![403, 200, 200, 200], "{log:#?}");
    let reset_ms = (wall_ms(log[0].at) / 1_000 + 2) * 1_000;
    let retried = wall_ms(log[1].at);
    assert!(
        retried + 20 >= reset_ms,
        "retried {} ms before the reset",
        reset_ms - retried
    );
    assert_eq!(pending(&env, FORGE), BTreeSet::new());
    assert!(untouched(&env, 3));
}

#[test]
fn a_budget_used_up_by_a_success_waits_until_the_reset() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    let reset = now_secs() + 2;
    // One request left in this window: the answer says remaining 0.
    forge.set_rate_limit(10_000_000, 1, reset);
    run(&env, &forge, &["--limit", "3", "--delay", DELAY]).ok();
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![200, 200, 200], "{log:#?}");
    let second = wall_ms(log[1].at);
    assert!(
        second + 20 >= reset * 1_000,
        "the second request came {} ms before the reset",
        reset * 1_000 - second
    );
    assert_eq!(pending(&env, FORGE), BTreeSet::new());
}

#[test]
fn a_low_budget_spreads_what_is_left_above_the_reserve_until_the_reset() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3, 4, 5]);
    let reset = now_secs() + 3;
    // The default reserve keeps 100 of 1,000: three requests are left above
    // it for five refs, so those three are spread over the 2-3 s to the
    // reset, and the rest wait for it.
    forge.set_rate_limit(1_000, 103, reset);
    let out = run(&env, &forge, &["--limit", "5", "--delay", DELAY]);
    out.ok();
    // Without a token: said once that one would make it faster.
    assert_eq!(
        out.stderr.matches("a token (GITHUB_TOKEN").count(),
        1,
        "{}",
        out.dump()
    );
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![200; 5], "{log:#?}");
    let gaps = gaps(&log);
    for gap in &gaps[..2] {
        assert!(*gap >= Duration::from_millis(500), "{gaps:?}");
    }
    assert!(wall_ms(log[3].at) + 20 >= reset * 1_000, "{gaps:?}");
}

// ---- the budget: the floor, the spread, the reserve ----------------------------------

/// The ledger's (next_at_ms, reason) after a run.
fn ledger_state(env: &TestEnv, forge: &FakeForge) -> (u64, Option<String>) {
    let text = fs::read_to_string(ledger(env, forge)).expect("the ledger");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        value["next_at_ms"].as_u64().unwrap(),
        value["reason"].as_str().map(str::to_owned),
    )
}

/// A budget that covers the work above the reserve is spent at the floor:
/// 700 of 1,000 left for the hour and ten refs to settle. (Spreading the 700
/// over the hour, as before, would space them 5 s apart.)
#[test]
fn a_budget_that_covers_the_work_goes_at_the_floor() {
    let _serial = serial();
    let (env, forge) = world();
    let numbers: Vec<u64> = (1..=10).collect();
    backlog(&env, &forge, FORGE, &numbers);
    forge.set_rate_limit(1_000, 700, now_secs() + 3_600);
    run(&env, &forge, &["--limit", "10", "--delay", DELAY]).ok();
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![200; 10], "{log:#?}");
    // After the last answer the next slot is the floor's, with no reason:
    // nothing was spread.
    let (next_at, reason) = ledger_state(&env, &forge);
    assert_eq!(reason, None);
    let last = wall_ms(log[log.len() - 1].at);
    assert!(
        next_at < last + 1_000,
        "next slot {} ms after the last",
        next_at - last
    );
}

/// At the reserve nothing more is sent until the reset, and `--status` says
/// so while it waits; no request is ever refused.
#[test]
fn at_the_reserve_the_drain_waits_for_the_reset_and_status_says_so() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    let reset = now_secs() + 6;
    // 101 of 1,000 left, 100 of them the reserve: one request, then the reset.
    forge.set_rate_limit(1_000, 101, reset);
    let bg = background(
        &env,
        env.patina_home(),
        &forge.url(),
        &["--limit", "3", "--delay", DELAY],
        "drain",
    );
    let status = |env: &TestEnv| -> serde_json::Value {
        let out = command(
            env,
            env.patina_home(),
            &forge.url(),
            &["--status", "--json"],
        )
        .output()
        .expect("run --status");
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let mut seen = serde_json::Value::Null;
    wait_until(
        "--status to show the wait for the reset",
        drive::HANG_GUARD,
        || {
            seen = status(&env)["waiting"].clone();
            !seen.is_null()
        },
    );
    let reason = seen["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("waiting for the rate limit to reset at "),
        "{seen}"
    );
    assert!(reason.contains("--reserve"), "{seen}");
    let until = humantime::parse_rfc3339(seen["until"].as_str().unwrap()).unwrap();
    assert!(until >= UNIX_EPOCH + Duration::from_secs(reset), "{seen}");
    let text = command(&env, env.patina_home(), &forge.url(), &["--status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Waiting: for the rate limit to reset at ")),
        "{text}"
    );
    bg.wait(drive::HANG_GUARD).ok();
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![200; 3], "{log:#?}");
    assert!(wall_ms(log[1].at) + 20 >= reset * 1_000, "{log:#?}");
    assert_eq!(pending(&env, FORGE), BTreeSet::new());
}

/// `--reserve 0` spends the whole budget before waiting; `--reserve 50%`
/// keeps half. The same 3 refs and 2 requests left above 500 of 1,000.
#[test]
fn the_reserve_is_the_users_to_set() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    forge.set_rate_limit(1_000, 502, now_secs() + 3_600);
    run(
        &env,
        &forge,
        &["--limit", "3", "--delay", DELAY, "--reserve", "0"],
    )
    .ok();
    assert_eq!(statuses(&forge.requests()), vec![200; 3]);
    assert_eq!(
        ledger_state(&env, &forge).1,
        None,
        "a reserve of 0 held back"
    );

    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    forge.set_rate_limit(1_000, 501, now_secs() + 3_600);
    let bg = background(
        &env,
        env.patina_home(),
        &forge.url(),
        &["--limit", "3", "--delay", DELAY, "--reserve", "50%"],
        "drain",
    );
    wait_until(
        "the drain to hold at the reserve",
        drive::HANG_GUARD,
        || {
            fs::read_to_string(ledger(&env, &forge))
                .is_ok_and(|t| t.contains("waiting for the rate limit to reset"))
        },
    );
    drop(bg);
    assert_eq!(
        statuses(&forge.requests()),
        vec![200],
        "one request, then the reserve"
    );

    let out = run(&env, &forge, &["--limit", "1", "--reserve", "95%"]);
    assert_eq!(out.code, Some(2), "{}", out.dump());
    assert!(out.stderr.contains("at most 90%"), "{}", out.dump());
}

/// GraphQL counts points, and the reserve is points: 10% of 1,000 kept.
/// With 1,000 left the batches go at the floor; at 101 left, one batch,
/// then the reset.
#[test]
fn graphql_points_go_at_the_floor_and_stop_at_the_reserve() {
    let _serial = serial();
    let (env, forge) = world();
    forge.require_token("ghp_pacingTestToken0123456789");
    let numbers: Vec<u64> = (1..=120).collect();
    backlog(&env, &forge, FORGE, &numbers);
    forge.set_graphql_rate_limit(1_000, 1_000, now_secs() + 3_600);
    let token = [("GITHUB_TOKEN", "ghp_pacingTestToken0123456789")];
    drive::run_with(
        &env,
        env.patina_home(),
        &forge.url(),
        &token,
        &["--limit", "60", "--delay", DELAY],
    )
    .ok();
    let posts: Vec<Logged> = forge
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(posts.len() >= 2, "{posts:#?}");
    assert_eq!(ledger_state(&env, &forge).1, None, "points were spread");

    forge.clear_log();
    let reset = now_secs() + 5;
    forge.set_graphql_rate_limit(1_000, 101, reset);
    drive::run_with(
        &env,
        env.patina_home(),
        &forge.url(),
        &token,
        &["--limit", "60", "--delay", DELAY],
    )
    .ok();
    let posts: Vec<Logged> = forge
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(posts.len() >= 2, "{posts:#?}");
    assert!(posts.iter().all(|r| r.status == 200), "{posts:#?}");
    assert!(wall_ms(posts[1].at) + 20 >= reset * 1_000, "{posts:#?}");
    assert_eq!(pending(&env, FORGE), BTreeSet::new());
}

#[test]
fn a_retry_after_met_by_discovery_holds_the_next_drain() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    forge.push_fault(Fault::SecondaryLimit {
        retry_after: Some(3),
    });
    // Discovery's one request meets the limit; it does not wait (it says
    // why the range is missing), but the signal is the account's.
    let discovery = run(&env, &forge, &[]);
    discovery.ok();
    run(&env, &forge, &["--limit", "3", "--delay", DELAY]).ok();
    let log = forge.requests();
    assert_eq!(
        statuses(&log),
        vec![403, 200, 200, 200],
        "a request went out inside the retry-after: {log:#?}"
    );
    let gap = gaps(&log)[0];
    assert!(gap >= Duration::from_secs(3), "asked again after {gap:?}");
}

/// The line a run logs when it starts a wait of over 3 s before its next
/// request: `… waiting 1m: secondary rate limit`.
fn announces_the_hold(bg: &Background) -> bool {
    bg.stderr_so_far()
        .lines()
        .any(|l| l.contains(" waiting ") && l.ends_with(": secondary rate limit"))
}

/// A secondary limit without `retry-after`: the account holds for at least
/// a minute (the ledger says so), no process sends anything meanwhile, and
/// SIGTERM ends the wait with the run recorded as interrupted.
///
/// "Nothing meanwhile" without sleeping on it: each process is seen at its
/// next turn, waiting on the hold (it logs the wait before it would send),
/// and once it has been stopped and the fake has logged every request sent
/// to it, the log still holds only the one limited request.
fn a_minute_for_a_secondary_limit(fault: Fault) {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2]);
    forge.push_fault(fault);
    let args = ["--limit", "2", "--delay", DELAY];
    let mut first = background(&env, env.patina_home(), &forge.url(), &args, "first");
    let path = ledger(&env, &forge);
    wait_until(
        "a hold of at least 59 s in the pace ledger, and the first process waiting on it",
        drive::HANG_GUARD,
        || {
            ledger_next_at_ms(&path).is_some_and(|at| at >= now_ms() + 59_000)
                && announces_the_hold(&first)
        },
    );
    assert!(first.running());
    first.signal("TERM");
    first.wait(drive::HANG_GUARD).ok();
    forge.wait_idle();
    assert_eq!(requests_but_probes(&forge), 1, "{:#?}", forge.requests());
    assert_eq!(last_run_state(&env), "interrupted");
    assert_eq!(pending(&env, FORGE), BTreeSet::from([1, 2]));
    assert!(untouched(&env, 2) && untouched(&env, 1), "{:?}", env.refs());

    // The hold is the account's: another process waits it out too.
    let mut second = background(&env, env.patina_home(), &forge.url(), &args, "second");
    wait_until(
        "the second process waiting on the hold",
        drive::HANG_GUARD,
        || announces_the_hold(&second),
    );
    assert!(second.running());
    second.signal("TERM");
    second.wait(drive::HANG_GUARD).ok();
    forge.wait_idle();
    assert_eq!(requests_but_probes(&forge), 1, "{:#?}", forge.requests());
    assert!(ledger_next_at_ms(&path).is_some_and(|at| at >= now_ms() + 50_000));
}

/// Requests in the fake's log other than its own `wait_idle` probes.
fn requests_but_probes(forge: &FakeForge) -> usize {
    forge
        .requests()
        .iter()
        .filter(|r| r.path != fakeforge::IDLE_PROBE)
        .count()
}

#[test]
fn a_429_without_retry_after_holds_the_account_a_minute() {
    a_minute_for_a_secondary_limit(Fault::TooMany { retry_after: None });
}

#[test]
fn a_secondary_403_without_retry_after_holds_the_account_a_minute() {
    a_minute_for_a_secondary_limit(Fault::SecondaryLimit { retry_after: None });
}

// ---- 8. one spacing for the whole account ------------------------------------------

#[test]
fn two_processes_on_two_repositories_keep_one_spacing() {
    let _serial = serial();
    let (widget, forge) = world();
    let gadget = TestEnv::new();
    gadget.set_origin("https://github.com/acme/gadget.git");
    let numbers: Vec<u64> = (1..=12).map(|n| n * 10).collect();
    backlog(&widget, &forge, FORGE, &numbers);
    backlog(&gadget, &forge, "acme/gadget", &numbers);

    // Both with the first world's PATINA_HOME: one user, one machine.
    let home = widget.patina_home();
    let args = ["--limit", "12", "--delay", "200ms"];
    let a = background(&widget, home, &forge.url(), &args, "widget");
    let b = background(&gadget, home, &forge.url(), &args, "gadget");
    let both_started = Instant::now();
    a.wait(drive::HANG_GUARD).ok();
    b.wait(drive::HANG_GUARD).ok();
    assert_eq!(pending(&widget, FORGE), BTreeSet::new());
    assert_eq!(pending(&gadget, "acme/gadget"), BTreeSet::new());

    let mut log = forge.requests();
    log.sort_by_key(|r| r.at);
    assert_eq!(log.len(), 24);
    // Both processes were there before the first request left: unpaced,
    // each would have sent its first requests within a few milliseconds of
    // the other's.
    assert!(both_started < log[0].at, "the processes did not overlap");
    // The log holds arrival times; a request arrives a little after its
    // slot was taken, usually within a few ms, but on a loaded machine with
    // debug binaries sometimes 50 ms later than its neighbour. A shared
    // spacing shows as: no two requests close together (without it they
    // come some 20 ms apart), and the whole at 200 ms per request.
    let gaps = gaps(&log);
    let closest = *gaps.iter().min().unwrap();
    assert!(
        closest >= Duration::from_millis(140),
        "two requests {closest:?} apart: {gaps:?}"
    );
    let span = log[23].at.duration_since(log[0].at);
    assert!(
        span >= Duration::from_millis(23 * 195),
        "24 requests in {span:?}: {gaps:?}"
    );
    let mut sorted = gaps.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median >= Duration::from_millis(195),
        "median spacing {median:?}: {gaps:?}"
    );
}

/// Three repositories draining at once under one account: one spacing
/// across them, and together they keep the reserve (100 of 1,000 kept; 20
/// requests above it for 30 refs): at most those 20 before the reset (and
/// the one each process may have had in flight), never a 403, and the rest
/// after it.
#[test]
fn three_repositories_at_once_keep_one_spacing_and_the_reserve() {
    let _serial = serial();
    let (widget, forge) = world();
    let reset = now_secs() + 8;
    forge.set_rate_limit(1_000, 120, reset);
    let numbers: Vec<u64> = (1..=10).collect();
    backlog(&widget, &forge, FORGE, &numbers);
    let mut others = Vec::new();
    for name in ["gadget", "gizmo"] {
        let env = TestEnv::new();
        env.set_origin(&format!("https://github.com/acme/{name}.git"));
        backlog(&env, &forge, &format!("acme/{name}"), &numbers);
        others.push(env);
    }
    let home = widget.patina_home();
    let args = ["--limit", "10", "--delay", "50ms"];
    let runs = [
        background(&widget, home, &forge.url(), &args, "widget"),
        background(&others[0], home, &forge.url(), &args, "gadget"),
        background(&others[1], home, &forge.url(), &args, "gizmo"),
    ];
    for run in runs {
        run.wait(drive::HANG_GUARD).ok();
    }
    let mut log = forge.requests();
    log.sort_by_key(|r| r.at);
    assert_eq!(log.len(), 30);
    assert!(log.iter().all(|r| r.status == 200), "{log:#?}");
    let before_reset: Vec<&Logged> = log
        .iter()
        .filter(|r| wall_ms(r.at) < reset * 1_000)
        .collect();
    assert!(
        before_reset.len() <= 23,
        "{} before the reset",
        before_reset.len()
    );
    let closest = before_reset
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .min()
        .unwrap();
    assert!(
        closest >= Duration::from_millis(30),
        "two requests {closest:?} apart"
    );
}

#[test]
fn the_spacing_holds_across_consecutive_processes() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2]);
    run(&env, &forge, &["--limit", "1", "--delay", "1s"]).ok();
    run(&env, &forge, &["--limit", "1", "--delay", "1s"]).ok();
    let log = forge.requests();
    assert_eq!(log.len(), 2);
    // Without the ledger the second process would ask at once (it starts
    // in tens of ms); arrival times jitter by a few ms, rarely more.
    let gap = gaps(&log)[0];
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
}

#[test]
fn the_default_delay_is_750ms() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3]);
    run(&env, &forge, &["--limit", "3"]).ok();
    let log = forge.requests();
    assert_eq!(log.len(), 3);
    // 750 ms between slots; arrival times jitter by a few ms, rarely more.
    for gap in gaps(&log) {
        assert!(gap >= Duration::from_millis(700), "{gap:?}");
    }
}
