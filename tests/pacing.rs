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
fn a_low_budget_spreads_the_requests_until_the_reset() {
    let _serial = serial();
    let (env, forge) = world();
    backlog(&env, &forge, FORGE, &[1, 2, 3, 4, 5]);
    let reset = now_secs() + 3;
    forge.set_rate_limit(10_000_000, 3, reset);
    run(&env, &forge, &["--limit", "5", "--delay", DELAY]).ok();
    let log = forge.requests();
    assert_eq!(statuses(&log), vec![200; 5], "{log:#?}");
    // Three requests left for 2-3 s: about one a second, not one per 10 ms.
    let gaps = gaps(&log);
    for gap in &gaps[..2] {
        assert!(*gap >= Duration::from_millis(500), "{gaps:?}");
    }
    assert!(wall_ms(log[3].at) + 20 >= reset * 1_000, "{gaps:?}");
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
