//! End-to-end tests of the background modes: `--sync`, `--resume`, `--status`
//! while a sync runs, `--log [--follow]`, `--stop`, and what signals and
//! `kill -9` do to a drain. Real processes, real signals, the real binary
//! against the fake GitHub on 127.0.0.1 (the contracts of `docs/contracts.md`:
//! command line, files, exit status).
//!
//! The background sync is the binary's grandchild: `--sync` forks and its
//! parent exits. This test process makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so the orphaned sync is re-parented to it:
//! its exit status can be read with `waitpid`, and a [`Daemon`] guard kills
//! and reaps it by its own PID when the test ends, pass or fail.
//!
//! Nothing here waits a fixed time for another process: every wait polls a
//! condition (the database, `--status`, the fake's request log, `waitpid`)
//! against a deadline.

mod testenv;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use fakeforge::{FakeForge, Item, Kind};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use testenv::{FORGE, Output, TestEnv};

/// `--delay` of every drain here: quick, but every request still passes the ledger.
const DELAY: &str = "20ms";
/// Every answer of the fake is this late, so that a drain takes long enough
/// to be watched, signalled and killed while it runs.
const LATENCY: Duration = Duration::from_millis(60);
/// The size of the big world: 1,100 numbers in the backlog.
const BIG: u64 = 1_100;
/// Long enough for any drain of these worlds on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(90);

// ---- the test process as the syncs' reaper ---------------------------------------

/// From now on, orphans of our descendants (the detached syncs) become our
/// children, so that we can reap them and read their exit status.
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// `(state, ppid, pgrp, session)` from `/proc/<pid>/stat`; `None` when the
/// process does not exist.
fn proc_stat(pid: i32) -> Option<(char, i32, i32, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let num = |i: usize| fields.get(i).and_then(|f| f.parse().ok());
    Some((state, num(1)?, num(2)?, num(3)?))
}

/// A detached sync, known by the PID its parent printed. Dropping it, pass
/// or fail, kills it (SIGKILL) and reaps it while it is our unreaped child;
/// were it not our child, it is killed only while it holds the lock with
/// its PID in the file, so a reused PID is never signalled.
struct Daemon {
    pid: i32,
    exit: Option<WaitStatus>,
    pid_file: PathBuf,
}

impl Daemon {
    fn new(env: &TestEnv, pid: i32) -> Daemon {
        assert!(pid > 1, "not a usable PID: {pid}");
        Daemon {
            pid,
            exit: None,
            pid_file: pid_file(env),
        }
    }

    fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Reaps it if it has ended; `Some(status)` once it has.
    fn poll(&mut self) -> Option<WaitStatus> {
        if self.exit.is_none() {
            match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    self.exit = Some(status)
                }
                Ok(other) => panic!("unexpected wait status of PID {}: {other:?}", self.pid),
                Err(e) => panic!(
                    "cannot wait for PID {} ({e}): the detached sync was not re-parented \
                     to the test (parent {:?})",
                    self.pid,
                    proc_stat(self.pid).map(|s| s.1)
                ),
            }
        }
        self.exit
    }

    fn alive(&mut self) -> bool {
        self.poll().is_none()
    }

    /// Waits (at most `timeout`) for its end and returns how it ended.
    fn wait(&mut self, timeout: Duration) -> WaitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sync PID {} hangs: still running after {timeout:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that it ended with exit status 0 (within `timeout`).
    fn assert_exits_0(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert_eq!(
            status,
            WaitStatus::Exited(Pid::from_raw(self.pid), 0),
            "sync PID {} did not exit 0",
            self.pid
        );
    }

    fn signal(&mut self, signal: Signal) {
        assert!(
            self.alive(),
            "sync PID {} ended before {signal} could be sent: {:?}",
            self.pid,
            self.exit
        );
        kill(Pid::from_raw(self.pid), signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let ours = proc_stat(self.pid).is_some_and(|s| s.1 == std::process::id() as i32);
        if ours {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(self.pid), None);
        } else if lock_held_at(&self.pid_file)
            && fs::read_to_string(&self.pid_file).is_ok_and(|t| t.trim() == self.pid.to_string())
        {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// A process this test spawned directly; killed and reaped on drop.
struct Spawned {
    child: Child,
    done: bool,
}

impl Spawned {
    fn signal(&mut self, signal: Signal) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "ended before {signal}"
        );
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill");
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.done = true;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hangs: still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- waiting -------------------------------------------------------------------

/// Polls `cond` until it holds; the 20 ms naps only pace the polling.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "hangs: still waiting for {what} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- the world -------------------------------------------------------------------

/// A repository whose origin is `FORGE`, and a fake forge holding numbers
/// 1..=`top`: every number ending in 7 missing (404), 33, 133, … deleted
/// (410), the rest live, a third of them PRs (merged, closed or open), the
/// issues open or closed. One commit mentions #12; an online discovery has
/// put 1..=`top` in the backlog. Afterwards the fake answers `LATENCY` late,
/// its request log is empty and later runs use it as their API.
fn world(top: u64) -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    // A budget so large that spreading it over the hour never stretches `DELAY`.
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.add_repo(FORGE);
    for n in 1..=top {
        if n % 10 == 7 {
            continue;
        }
        let item = if n % 3 == 0 {
            let pr = Item::pr(n, &format!("PR number {n}"));
            if n % 2 == 0 {
                pr.merged("2024-05-01T10:00:00Z")
            } else if n % 5 == 0 {
                pr.closed()
            } else {
                pr
            }
        } else {
            let issue = Item::issue(n, &format!("Issue number {n}"));
            if n % 4 == 1 { issue.closed() } else { issue }
        };
        forge.put(FORGE, item);
        if n % 100 == 33 {
            forge.delete(FORGE, n);
        }
    }
    env.commit("fix: the widget (#12)");
    env.set_api_url(&forge.url());
    let out = env.run(Vec::<&str>::new());
    out.assert_success();
    assert_eq!(db_counts(&env).pending, top, "{}", out.stdout);
    forge.clear_log();
    forge.set_latency(LATENCY);
    (env, forge)
}

fn pid_file(env: &TestEnv) -> PathBuf {
    env.patina_home().join("run/forge-sync-acme-widget.pid")
}

fn log_file(env: &TestEnv) -> PathBuf {
    env.patina_home().join("logs/forge-sync-acme-widget.log")
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Whether some process holds the lock on the PID file, asked the way the
/// contract defines it (a shared `flock` is refused), and let go at once.
fn lock_held(env: &TestEnv) -> bool {
    lock_held_at(&pid_file(env))
}

fn lock_held_at(path: &Path) -> bool {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(e) => panic!("open the PID file: {e}"),
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(e)) => panic!("flock the PID file: {e}"),
    }
}

fn pid_in_file(env: &TestEnv) -> Option<u32> {
    fs::read_to_string(pid_file(env)).ok()?.trim().parse().ok()
}

// ---- the database, read-only -------------------------------------------------------

/// A read-only connection: the test never writes (nor checkpoints) the
/// database the binary is writing.
fn reader(env: &TestEnv) -> Connection {
    let conn = Connection::open_with_flags(
        env.db_path(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the database read-only");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    total: u64,
    resolved: u64,
    pending: u64,
    failed: u64,
}

impl Counts {
    fn settled(&self) -> u64 {
        self.resolved + self.failed
    }
}

/// The backlog counted as patina counts it, straight from SQL.
fn db_counts(env: &TestEnv) -> Counts {
    reader(env)
        .query_row(
            "SELECT count(*),
                    coalesce(sum(resolved IS NOT NULL AND error IS NULL), 0),
                    coalesce(sum(resolved IS NULL), 0),
                    coalesce(sum(error IS NOT NULL), 0)
             FROM forge_refs WHERE repo = ?1",
            [FORGE],
            |row| {
                let n = |i| row.get::<_, i64>(i).map(|v| v as u64);
                Ok(Counts {
                    total: n(0)?,
                    resolved: n(1)?,
                    pending: n(2)?,
                    failed: n(3)?,
                })
            },
        )
        .expect("count the backlog")
}

fn rows(env: &TestEnv, sql: &str) -> Vec<Vec<String>> {
    testenv::query_db(&env.db_path(), sql)
}

// ---- running the binary ------------------------------------------------------------

fn dump(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.code, out.stdout, out.stderr
    )
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// `--status --json`, which must succeed and print one object.
fn status(env: &TestEnv) -> Value {
    let out = env.run(["--status", "--json"]);
    out.assert_success();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e})\n{}", dump(&out)))
}

fn counts_of(v: &Value) -> Counts {
    let n = |key: &str| {
        v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
    };
    Counts {
        total: n("total"),
        resolved: n("resolved"),
        pending: n("pending"),
        failed: n("failed"),
    }
}

/// Status says nothing runs: `running` false, `pid` null.
fn assert_not_running(v: &Value) {
    assert_eq!(v["running"], Value::Bool(false), "{v}");
    assert!(v["pid"].is_null(), "pid not null: {v}");
}

fn last_run_state(v: &Value) -> &str {
    v["last_run"]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_run.state: {v}"))
}

/// `patina-forge --sync --delay DELAY EXTRA…`: the parent's three lines, its
/// exit status 0 and an empty stderr; returns the guard of the child it
/// names.
fn start_sync(env: &TestEnv, extra: &[&str]) -> Daemon {
    let mut args = vec!["--sync", "--delay", DELAY];
    args.extend_from_slice(extra);
    become_subreaper();
    let out = env.run(&args);
    // The guard first: whatever is asserted next, the child gets killed.
    let daemon = daemon_of(env, &out);
    out.assert_success();
    let Some(daemon) = daemon else {
        panic!(
            "no `Syncing in background (PID N)` first line\n{}",
            dump(&out)
        );
    };
    assert_eq!(
        lines(&out.stdout),
        vec![
            format!("Syncing in background (PID {})", daemon.pid),
            format!("Log: {}", log_file(env).display()),
            "Check: patina scrape forge --status".to_string(),
        ],
        "{}",
        dump(&out)
    );
    assert_eq!(out.stderr, "", "{}", dump(&out));
    daemon
}

/// The guard of the sync a `--sync` run says it started, if it says so.
fn daemon_of(env: &TestEnv, out: &Output) -> Option<Daemon> {
    out.stdout.lines().find_map(|l| {
        let pid = l
            .strip_prefix("Syncing in background (PID ")?
            .strip_suffix(')')?
            .parse::<i32>()
            .ok()?;
        Some(Daemon::new(env, pid))
    })
}

/// "Ends after the request in flight": once the fake is done with every
/// connection, the last request it received has its outcome committed.
fn assert_last_request_settled(env: &TestEnv, forge: &FakeForge) {
    wait_fake_idle(forge);
    let last = forge
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path != PROBE)
        .expect("a request")
        .path;
    let prefix = format!("/repos/{FORGE}/issues/");
    let Some(number) = last.strip_prefix(&prefix) else {
        panic!("the last request was not a single one: {last}");
    };
    let row = rows(
        env,
        &format!(
            "SELECT resolved IS NOT NULL FROM forge_refs \
             WHERE repo = '{FORGE}' AND ref_number = {number}"
        ),
    );
    assert_eq!(
        row,
        vec![vec!["1".to_string()]],
        "#{number}, asked last, is not settled: the request in flight was abandoned"
    );
}

/// Waits until `--status` names this sync as the running one and its run is
/// recorded (the lock is taken before the child records its run).
fn wait_until_running(env: &TestEnv, daemon: &mut Daemon) {
    let pid = daemon.pid();
    wait_for("status to name the sync", PATIENCE, || {
        assert!(daemon.alive(), "sync {pid} ended: {:?}", daemon.exit);
        let v = status(env);
        v["running"] == Value::Bool(true)
            && v["pid"].as_u64() == Some(u64::from(pid))
            && v["last_run"]["state"] == "running"
    });
}

/// Waits until at least `n` refs are settled (resolved or failed), the sync
/// being alive throughout.
fn wait_settled(env: &TestEnv, daemon: &mut Daemon, n: u64) {
    let pid = daemon.pid;
    wait_for(&format!("{n} settled refs"), PATIENCE, || {
        assert!(daemon.alive(), "sync {pid} ended: {:?}", daemon.exit);
        db_counts(env).settled() >= n
    });
}

/// How many times the fake was asked whether the repository exists (once
/// per run, after the run's first 404).
fn repository_checks(forge: &FakeForge) -> usize {
    let repo = format!("/repos/{FORGE}");
    forge.requests().iter().filter(|r| r.path == repo).count()
}

/// Waits until the run has asked whether the repository exists and has gone
/// on (a later request left, so the answer is in). Tests that stop a run use
/// this to stay clear of the gap that
/// `sigterm_while_the_first_404_is_in_flight_…` shows.
fn wait_past_repository_check(forge: &FakeForge, daemon: &mut Daemon, checks_before: usize) {
    let repo = format!("/repos/{FORGE}");
    let pid = daemon.pid;
    wait_for("the run's repository check", PATIENCE, || {
        assert!(daemon.alive(), "sync {pid} ended: {:?}", daemon.exit);
        let log = forge.requests();
        log.iter()
            .enumerate()
            .filter(|(_, r)| r.path == repo)
            .nth(checks_before)
            .is_some_and(|(i, _)| log.len() > i + 1)
    });
}

/// Waits until `--status` says nothing runs (the drain ended by itself).
fn wait_until_idle(env: &TestEnv) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = status(env);
        if v["running"] == Value::Bool(false) {
            return v;
        }
        assert!(Instant::now() < deadline, "still running: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The binary in `env`'s world with exactly the environment testenv gives it.
fn command(env: &TestEnv, api_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patina-forge"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATINA_HOME", env.patina_home())
        .env("PATINA_FORGE_API_URL", api_url)
        .current_dir(env.root())
        .stdin(Stdio::null());
    let mut full: Vec<OsString> = vec!["-C".into(), env.repo().into()];
    full.extend(args.iter().map(OsString::from));
    cmd.args(full);
    cmd
}

// ---- the log ---------------------------------------------------------------------

/// `2026-11-28T01:47:15Z ` (fractions allowed): RFC 3339, UTC, a space, and a
/// time within the run of the test.
fn assert_stamped(line: &str, since: SystemTime) {
    let (stamp, _) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no time stamp on log line {line:?}"));
    assert!(
        stamp.len() >= 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
        "not an RFC 3339 UTC time at the start of {line:?}"
    );
    let at = humantime::parse_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}) at the start of {line:?}"));
    let slack = Duration::from_secs(120);
    assert!(
        at + slack >= since && at <= SystemTime::now() + slack,
        "the time of {line:?} is not the time of this test"
    );
}

fn log_lines(env: &TestEnv) -> Vec<String> {
    fs::read_to_string(log_file(env))
        .expect("read the sync log")
        .lines()
        .map(str::to_owned)
        .collect()
}

// ---- the fake's data against the database ------------------------------------------

/// The final database equals the fake's data, number by number: the right
/// table, state and title for every live item, 404/410 numbers failed,
/// exactly one event per item, every `event_seq` a real event of that item,
/// and a sound file.
fn assert_matches_forge(env: &TestEnv, forge: &FakeForge, top: u64) {
    let mut issues = BTreeMap::new();
    let mut prs = BTreeMap::new();
    let mut refs = BTreeMap::new();
    for n in 1..=top {
        match forge.get(FORGE, n) {
            Some(item) => match &item.kind {
                Kind::Issue => {
                    issues.insert(n.to_string(), (item.title.clone(), item.state.clone()));
                    refs.insert(n.to_string(), ("issue".to_string(), "1", "0"));
                }
                Kind::Pr { merged_at, .. } => {
                    let state = if merged_at.is_some() {
                        "merged".to_string()
                    } else {
                        item.state.clone()
                    };
                    prs.insert(n.to_string(), (item.title.clone(), state));
                    refs.insert(n.to_string(), ("pr".to_string(), "1", "0"));
                }
            },
            None => {
                refs.insert(n.to_string(), ("-".to_string(), "1", "1"));
            }
        }
    }
    let table = |sql: &str| -> BTreeMap<String, (String, String)> {
        rows(env, sql)
            .into_iter()
            .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
            .collect()
    };
    assert_eq!(
        table("SELECT number, title, state FROM forge_issues"),
        issues,
        "forge_issues differs from the fake's issues"
    );
    assert_eq!(
        table("SELECT number, title, state FROM forge_prs"),
        prs,
        "forge_prs differs from the fake's PRs"
    );
    let got_refs: BTreeMap<String, (String, &str, &str)> = rows(
        env,
        &format!(
            "SELECT ref_number, ref_kind, resolved IS NOT NULL, error IS NOT NULL \
             FROM forge_refs WHERE repo = '{FORGE}'"
        ),
    )
    .into_iter()
    .map(|r| {
        let settled = if r[2] == "1" { "1" } else { "0" };
        let failed = if r[3] == "1" { "1" } else { "0" };
        // A failed ref's kind is not known: the forge never said.
        let kind = if failed == "1" {
            "-".to_string()
        } else {
            r[1].clone()
        };
        (r[0].clone(), (kind, settled, failed))
    })
    .collect();
    assert_eq!(got_refs, refs, "forge_refs differs from the fake's data");

    // One event per item, of the item's kind.
    let live = (issues.len() + prs.len()) as u64;
    let events = rows(
        env,
        "SELECT source_id, group_concat(event_type), count(*) FROM eventlog GROUP BY source_id",
    );
    let twice: Vec<&Vec<String>> = events.iter().filter(|e| e[2] != "1").collect();
    assert!(twice.is_empty(), "more than one event for: {twice:?}");
    let by_kind: BTreeMap<String, String> = events
        .into_iter()
        .map(|e| (e[0].clone(), e[1].clone()))
        .collect();
    let mut want_kind = BTreeMap::new();
    for n in issues.keys() {
        want_kind.insert(n.clone(), "forge.issue".to_string());
    }
    for n in prs.keys() {
        want_kind.insert(n.clone(), "forge.pr".to_string());
    }
    assert_eq!(by_kind, want_kind, "the events are not one per item");
    let total_events: u64 = rows(env, "SELECT count(*) FROM eventlog")[0][0]
        .parse()
        .unwrap();
    assert_eq!(total_events, live);
    for table in ["forge_issues", "forge_prs"] {
        let dangling = rows(
            env,
            &format!(
                "SELECT t.number FROM {table} t LEFT JOIN eventlog e ON e.seq = t.event_seq \
                 WHERE e.seq IS NULL OR e.source_id != CAST(t.number AS TEXT)"
            ),
        );
        assert!(
            dangling.is_empty(),
            "{table}: event_seq is not the item's event for {dangling:?}"
        );
    }
    assert_eq!(
        rows(env, "PRAGMA integrity_check"),
        vec![vec!["ok".to_string()]]
    );

    let want = Counts {
        total: top,
        resolved: live,
        pending: 0,
        failed: top - live,
    };
    assert_eq!(db_counts(env), want);
    assert_eq!(counts_of(&status(env)), want);
}

/// The fake's own probe, left out of what the tests count.
const PROBE: &str = fakeforge::IDLE_PROBE;

/// Waits until every request a dead process sent is in the fake's log.
fn wait_fake_idle(forge: &FakeForge) {
    forge.wait_idle();
}

/// Request targets other than the one-per-run check that the repository
/// exists (`GET /repos/{owner}/{repo}`): issue numbers and listing pages.
fn fetches(forge: &FakeForge) -> Vec<String> {
    let repo = format!("/repos/{FORGE}");
    forge
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| *p != repo && p != PROBE)
        .collect()
}

// ---- 1. --sync returns at once; the child drains everything -------------------------

#[test]
fn sync_returns_at_once_and_the_detached_child_drains_everything() {
    let test_started = SystemTime::now();
    let (env, forge) = world(BIG);
    // Only the flag may lead to the fake: the environment points nowhere.
    env.set_api_url(testenv::NO_FORGE);
    let api = forge.url();
    // Returning at once is an order of events, not a duration: the parent
    // has exited (start_sync saw its exit status) while the child it names
    // is still draining.
    let mut daemon = start_sync(&env, &["--api-url", &api]);
    let pid = daemon.pid;

    // The drain is still going when the parent has returned.
    assert!(daemon.alive(), "the sync ended at once: {:?}", daemon.exit);
    let early = db_counts(&env);
    assert!(early.pending > 0, "nothing left to drain: {early:?}");
    wait_until_running(&env, &mut daemon);
    let v = status(&env);
    assert_eq!(last_run_state(&v), "running", "{v}");
    assert!(v["last_run"]["ended"].is_null(), "{v}");

    // Detached: its own session and process group, stdin /dev/null, stdout
    // and stderr on the log; re-parented (its parent has exited).
    let (state, ppid, pgrp, session) = proc_stat(pid).expect("the sync's /proc entry");
    assert_ne!(state, 'Z', "the sync is a zombie");
    assert_eq!(session, pid, "the sync is not in its own session");
    assert_eq!(pgrp, pid, "the sync does not lead its own process group");
    assert_eq!(ppid, std::process::id() as i32, "its parent did not exit");
    let fd = |n: u32| fs::read_link(format!("/proc/{pid}/fd/{n}")).expect("read the fd link");
    assert_eq!(fd(0), PathBuf::from("/dev/null"));
    assert_eq!(fd(1), log_file(&env));
    assert_eq!(fd(2), log_file(&env));

    // The PID file holds the child's PID under the lock; both files 0600.
    wait_for("the child's PID in the PID file", PATIENCE, || {
        pid_in_file(&env) == Some(pid as u32)
    });
    assert!(lock_held(&env), "nobody holds the lock while the sync runs");
    assert_eq!(mode_of(&pid_file(&env)), 0o600, "PID file mode");
    assert_eq!(mode_of(&log_file(&env)), 0o600, "log file mode");

    // It finishes by itself, exit 0, lock free, nothing pending.
    let v = wait_until_idle(&env);
    daemon.assert_exits_0(PATIENCE);
    assert!(!lock_held(&env), "the lock outlived the sync");
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "finished", "{v}");
    assert!(v["last_run"]["ended"].is_string(), "{v}");
    assert_eq!(counts_of(&v).pending, 0, "{v}");
    assert_matches_forge(&env, &forge, BIG);

    // The log: every line stamped; the run's start, summary and end are there.
    let log = log_lines(&env);
    for line in &log {
        assert_stamped(line, test_started);
    }
    let has = |needle: &str| log.iter().any(|l| l.contains(needle));
    assert!(
        has(&format!("sync of {FORGE} started: PID {pid}")),
        "{log:#?}"
    );
    assert!(has("Resolved: "), "{log:#?}");
    assert!(has(&format!("sync of {FORGE} ended")), "{log:#?}");
    assert_eq!(mode_of(&log_file(&env)), 0o600, "log file mode at the end");
}

// ---- 2. one drain at a time ----------------------------------------------------------

#[test]
fn a_second_sync_and_a_limit_exit_75_and_resume_says_so_while_a_sync_runs() {
    let (env, forge) = world(BIG);
    let mut daemon = start_sync(&env, &[]);
    wait_until_running(&env, &mut daemon);
    let busy = format!("Already syncing (PID {}). Check: --status", daemon.pid);
    let started = status(&env)["last_run"]["started"].clone();
    assert!(started.is_string());

    let second = env.run(["--sync", "--delay", DELAY]);
    let _intruder = daemon_of(&env, &second);
    second.assert_exit(75);
    assert_eq!(
        lines(&second.stderr),
        vec![busy.as_str()],
        "{}",
        dump(&second)
    );
    assert_eq!(second.stdout, "", "{}", dump(&second));

    let limit = env.run(["--limit", "5", "--delay", DELAY]);
    limit.assert_exit(75);
    assert_eq!(
        lines(&limit.stderr),
        vec![busy.as_str()],
        "{}",
        dump(&limit)
    );

    let resume = env.run(["--resume", "--delay", DELAY]);
    resume.assert_success();
    assert_eq!(
        lines(&resume.stdout),
        vec![busy.as_str()],
        "{}",
        dump(&resume)
    );

    // None of them took over: same holder, same run, the sync still going.
    assert!(daemon.alive(), "the sync ended: {:?}", daemon.exit);
    assert_eq!(pid_in_file(&env), Some(daemon.pid()));
    let v = status(&env);
    assert_eq!(v["running"], Value::Bool(true), "{v}");
    assert_eq!(v["pid"].as_u64(), Some(u64::from(daemon.pid())), "{v}");
    assert_eq!(
        v["last_run"]["started"], started,
        "another run started: {v}"
    );
    assert_eq!(last_run_state(&v), "running", "{v}");
    drop(daemon);
    drop(forge);
}

// ---- 3. kill -9 at three moments ----------------------------------------------------

#[test]
fn kill_9_at_three_moments_loses_nothing_and_fetches_nothing_twice() {
    let (env, forge) = world(BIG);
    let live = (1..=BIG).filter(|n| forge.get(FORGE, *n).is_some()).count() as u64;
    // During the listing; early in the single requests (404/410); later on.
    type Moment = (&'static str, fn(Counts) -> bool);
    let moments: [Moment; 3] = [
        ("250 settled (listing)", |c| c.settled() >= 250),
        ("all listed, 25 failed", |c| c.failed >= 25),
        ("80 failed", |c| c.failed >= 80),
    ];
    let mut in_flight: Vec<String> = Vec::new();
    for (what, reached) in moments {
        let mut daemon = start_sync(&env, &[]);
        let pid = daemon.pid;
        wait_for(what, PATIENCE, || {
            assert!(daemon.alive(), "sync {pid} ended before {what}");
            reached(db_counts(&env))
        });
        daemon.signal(Signal::SIGKILL);
        assert_eq!(
            daemon.wait(PATIENCE),
            WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGKILL, false)
        );
        // The last request the fake saw may have been in flight; it may be
        // logged only after the kill, so wait until the fake is done with
        // every connection first.
        wait_fake_idle(&forge);
        if let Some(last) = forge.requests().iter().rev().find(|r| r.path != PROBE) {
            in_flight.push(last.path.clone());
        }
        assert!(!lock_held(&env), "the lock outlived kill -9 ({what})");
        let v = status(&env);
        assert_not_running(&v);
        assert_eq!(
            last_run_state(&v),
            "interrupted",
            "after kill -9 at {what}: {v}"
        );
        let c = counts_of(&v);
        assert!(c.pending > 0, "nothing left after {what}: {v}");
        assert_eq!(c, db_counts(&env), "{v}");
    }
    assert_eq!(db_counts(&env).total, BIG);
    assert!(db_counts(&env).resolved <= live);

    // --resume finishes in the foreground.
    let out = env.run(["--resume", "--delay", DELAY]);
    out.assert_success();
    assert!(
        out.stdout.lines().any(|l| l == "Pending: 0"),
        "{}",
        dump(&out)
    );
    let v = status(&env);
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "finished", "{v}");
    assert_matches_forge(&env, &forge, BIG);

    // Nothing fetched twice, but the request in flight at each kill.
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for path in fetches(&forge) {
        *times.entry(path).or_default() += 1;
    }
    let twice: BTreeMap<&String, &usize> = times.iter().filter(|(_, n)| **n > 1).collect();
    for (path, n) in &twice {
        assert!(
            **n == 2 && in_flight.contains(path),
            "{path} requested {n} times; only the requests in flight at the kills \
             ({in_flight:?}) may be repeated, once"
        );
    }
    let issue_gets = times
        .keys()
        .filter(|p| p.starts_with(&format!("/repos/{FORGE}/issues/")))
        .count() as u64;
    assert_eq!(
        issue_gets,
        BIG - live,
        "single requests other than the numbers no listing returned"
    );
}

// ---- 4. a stale PID file blocks nothing ------------------------------------------------

/// Writes `pid` into the PID file as a sync that died would have left it.
fn write_stale_pid(env: &TestEnv, pid: u32) {
    let run = env.patina_home().join("run");
    fs::create_dir_all(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(pid_file(env))
        .unwrap();
    std::io::Write::write_all(&mut file, format!("{pid}\n").as_bytes()).unwrap();
}

/// With the stale file in place: status says not running and writes nothing;
/// `--sync` starts, takes the file over and makes progress.
fn stale_pid_file_is_ignored(env: &TestEnv, stale: u32) {
    write_stale_pid(env, stale);
    let home = files_under(env.patina_home());
    let v = status(env);
    assert_not_running(&v);
    assert_eq!(
        files_under(env.patina_home()),
        home,
        "status wrote PATINA_HOME (the stale PID file must stay as it is)"
    );

    let mut daemon = start_sync(env, &[]);
    wait_until_running(env, &mut daemon);
    assert_eq!(pid_in_file(env), Some(daemon.pid()));
    let settled = db_counts(env).settled();
    wait_settled(env, &mut daemon, settled + 1);
    daemon.signal(Signal::SIGKILL);
    daemon.wait(PATIENCE);
    assert!(!lock_held(env));
}

#[test]
fn a_stale_pid_file_never_blocks_a_sync_nor_shows_as_running() {
    become_subreaper();
    let (env, forge) = world(BIG);

    // The PID of a process that has exited (and been reaped).
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead = gone.id();
    gone.wait().unwrap();
    assert!(proc_stat(dead as i32).is_none(), "PID {dead} came back");
    stale_pid_file_is_ignored(&env, dead);

    // The PID of a live process that holds no lock: this test's own.
    stale_pid_file_is_ignored(&env, std::process::id());
    drop(forge);
}

// ---- 5. signals and --stop --------------------------------------------------------------

#[test]
fn sigterm_sigint_and_stop_end_a_drain_cleanly_and_sighup_does_not() {
    let (env, forge) = world(BIG);

    // SIGHUP: ignored, the drain goes on.
    let mut daemon = start_sync(&env, &[]);
    wait_settled(&env, &mut daemon, 1);
    daemon.signal(Signal::SIGHUP);
    let after_hup = db_counts(&env).settled();
    wait_settled(&env, &mut daemon, after_hup + 1);
    let requests = forge.requests().len();
    wait_for("requests after SIGHUP", PATIENCE, || {
        assert!(daemon.alive(), "SIGHUP ended the sync: {:?}", daemon.exit);
        forge.requests().len() >= requests + 3
    });
    assert_eq!(status(&env)["running"], Value::Bool(true));

    // SIGTERM, among the single requests: ends after the request in
    // flight, exit 0, run interrupted.
    wait_for("5 failed refs", PATIENCE, || {
        assert!(daemon.alive(), "the sync ended: {:?}", daemon.exit);
        db_counts(&env).failed >= 5
    });
    daemon.signal(Signal::SIGTERM);
    daemon.assert_exits_0(PATIENCE);
    assert_last_request_settled(&env, &forge);
    assert!(!lock_held(&env), "the lock outlived SIGTERM");
    let v = status(&env);
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "interrupted", "after SIGTERM: {v}");
    assert!(
        v["last_run"]["ended"].is_string(),
        "an interrupted run records its end: {v}"
    );
    let c = counts_of(&v);
    assert!(c.pending > 0 && c.settled() > 0, "{v}");
    assert_eq!(c, db_counts(&env));
    assert!(
        log_lines(&env)
            .iter()
            .any(|l| l.contains(&format!("sync of {FORGE} ended"))),
        "no end line in the log"
    );

    // Rate and ETA once a run has lasted 30 s: this first run, made to have
    // lasted two minutes, settled `c.settled()` refs.
    env.execute(
        "UPDATE forge_runs SET started = datetime(ended, '-120 seconds') \
         WHERE id = (SELECT max(id) FROM forge_runs)",
    );
    let v = status(&env);
    let rate = v["rate_per_min"]
        .as_f64()
        .unwrap_or_else(|| panic!("no rate after a 2-minute run: {v}"));
    let want = c.settled() as f64 / 2.0;
    assert!((rate - want).abs() <= 0.1, "rate {rate}, want {want}: {v}");
    let eta = v["eta_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no ETA with refs pending: {v}"));
    let want_eta = c.pending as f64 * 60.0 / rate;
    assert!(
        (eta - want_eta).abs() <= 2.0,
        "ETA {eta}, want {want_eta}: {v}"
    );

    // SIGINT: the same.
    let checks = repository_checks(&forge);
    let mut daemon = start_sync(&env, &[]);
    wait_past_repository_check(&forge, &mut daemon, checks);
    let settled = db_counts(&env).settled();
    wait_settled(&env, &mut daemon, settled + 1);
    daemon.signal(Signal::SIGINT);
    daemon.assert_exits_0(PATIENCE);
    assert!(!lock_held(&env), "the lock outlived SIGINT");
    let v = status(&env);
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "interrupted", "after SIGINT: {v}");

    // --stop: signals, waits until the lock is free, says so, exit 0.
    let checks = repository_checks(&forge);
    let mut daemon = start_sync(&env, &[]);
    wait_until_running(&env, &mut daemon);
    wait_past_repository_check(&forge, &mut daemon, checks);
    let settled = db_counts(&env).settled();
    wait_settled(&env, &mut daemon, settled + 1);
    let out = env.run(["--stop"]);
    out.assert_success();
    assert!(!lock_held(&env), "--stop returned before the lock was free");
    let said = lines(&out.stdout);
    assert!(
        said.len() == 1
            && said[0].starts_with(&format!("Stopped PID {}: run interrupted, ", daemon.pid)),
        "{}",
        dump(&out)
    );
    daemon.assert_exits_0(PATIENCE);
    assert_last_request_settled(&env, &forge);
    let v = status(&env);
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "interrupted", "after --stop: {v}");

    // --stop with nothing running.
    let out = env.run(["--stop"]);
    out.assert_success();
    assert_eq!(
        lines(&out.stdout),
        vec![format!("No sync running for {FORGE}")],
        "{}",
        dump(&out)
    );
    drop(forge);
}

// ---- 6. status during and after a sync -------------------------------------------------

#[test]
fn status_counts_equal_sql_counts_during_and_after_a_sync_and_status_writes_nothing() {
    let (env, forge) = world(BIG);
    let mut daemon = start_sync(&env, &[]);
    wait_until_running(&env, &mut daemon);

    // While it writes: each sample of status lies between two SQL counts
    // taken around it, is consistent in itself, and equals them exactly
    // whenever nothing changed meanwhile. Samples at distinct progress.
    let mut exact = 0;
    let mut last_settled = None;
    let deadline = Instant::now() + PATIENCE;
    while exact < 4 {
        assert!(
            daemon.alive() && Instant::now() < deadline,
            "the sync ended before 4 exact samples ({exact})"
        );
        let a = db_counts(&env);
        let v = status(&env);
        let b = db_counts(&env);
        if v["running"] != Value::Bool(true) {
            continue;
        }
        assert_eq!(v["pid"].as_u64(), Some(u64::from(daemon.pid())), "{v}");
        assert_eq!(last_run_state(&v), "running", "{v}");
        let s = counts_of(&v);
        assert_eq!(s.total, BIG, "{v}");
        assert_eq!(s.resolved + s.failed + s.pending, s.total, "{v}");
        assert!(
            (a.resolved..=b.resolved).contains(&s.resolved)
                && (a.failed..=b.failed).contains(&s.failed)
                && (b.pending..=a.pending).contains(&s.pending),
            "status {s:?} is not between the SQL counts {a:?} and {b:?}"
        );
        if a == b && last_settled != Some(a.settled()) {
            assert_eq!(s, a, "status differs from SQL: {v}");
            exact += 1;
            last_settled = Some(a.settled());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // After: equal, finished, the last answer's rate-limit headers.
    let v = wait_until_idle(&env);
    daemon.assert_exits_0(PATIENCE);
    assert_eq!(counts_of(&v), db_counts(&env), "{v}");
    assert_eq!(counts_of(&v).pending, 0, "{v}");
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "finished", "{v}");
    let (limit, remaining, reset) = forge.rate_limit();
    let rate = &v["rate_limit"];
    assert_eq!(rate["limit"].as_u64(), Some(limit), "{v}");
    assert_eq!(rate["remaining"].as_u64(), Some(remaining), "{v}");
    assert_eq!(
        rate["reset"].as_str(),
        Some(fakeforge::iso(reset as i64).as_str()),
        "{v}"
    );

    // Status writes nothing: PATINA_HOME and the database file unchanged.
    let db = env.db_path();
    let db_bytes = fs::read(&db).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let wal_bytes = fs::read(&wal).ok();
    let home = files_under(env.patina_home());
    status(&env);
    env.run(["--status"]).assert_success();
    assert!(
        fs::read(&db).unwrap() == db_bytes,
        "status wrote the database"
    );
    assert!(fs::read(&wal).ok() == wal_bytes, "status wrote the WAL");
    assert_eq!(
        files_under(env.patina_home()),
        home,
        "status wrote PATINA_HOME"
    );
}

/// Every file and folder under `dir`: path, mode and content.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(path, (mode, None));
            } else {
                out.insert(
                    path.clone(),
                    (mode, Some(fs::read(&path).unwrap_or_default())),
                );
            }
        }
    }
    out
}

// ---- 7. --log --follow and --log --lines --------------------------------------------------

#[test]
fn log_follow_prints_what_is_appended_and_lines_prints_the_end() {
    let (env, forge) = world(200);

    // A first sync, stopped early, leaves a log behind.
    let mut first = start_sync(&env, &[]);
    wait_past_repository_check(&forge, &mut first, 0);
    env.run(["--stop"]).assert_success();
    first.assert_exits_0(PATIENCE);
    let before = log_lines(&env);
    assert!(!before.is_empty());

    // Follow, then a second sync that drains the rest.
    let mut follow = Spawned {
        child: command(&env, &forge.url(), &["--log", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn --log --follow"),
        done: false,
    };
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = follow.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut read_until = |what: &str, done: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + PATIENCE;
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "--log --follow never printed {what}: {seen:#?}"
            );
            if let Ok(line) = rx.recv_timeout(left.min(Duration::from_millis(200))) {
                seen.push(line);
            }
        }
        seen.clone()
    };
    // Its start: the end of the log as it was.
    let last_before = before.last().unwrap().clone();
    read_until("the end of the log", &|s| s.contains(&last_before));

    let mut second = start_sync(&env, &[]);
    let started = format!("sync of {FORGE} started: PID {}", second.pid);
    let ended = format!("sync of {FORGE} ended");
    let seen = read_until("the second sync's end", &|s| {
        let Some(i) = s.iter().position(|l| l.contains(&started)) else {
            return false;
        };
        s[i..].iter().any(|l| l.contains(&ended))
    });
    second.assert_exits_0(PATIENCE);
    assert!(seen.iter().any(|l| l.contains("Resolved: ")), "{seen:#?}");
    follow.signal(Signal::SIGTERM);
    let exit = follow.wait(PATIENCE);
    assert_eq!(
        exit.code(),
        Some(0),
        "--log --follow after SIGTERM: {exit:?}"
    );
    reader.join().unwrap();

    // The log was appended to; what --follow printed is the log from some
    // line on, nothing lost or doubled.
    let log = log_lines(&env);
    assert!(
        log.starts_with(&before),
        "the log was not appended to: {log:#?}"
    );
    assert!(
        log.len() >= seen.len() && log[log.len() - seen.len()..] == seen[..],
        "--log --follow printed\n{seen:#?}\nbut the log ends with\n{:#?}",
        &log[log.len().saturating_sub(seen.len())..]
    );
    assert_eq!(counts_of(&status(&env)).pending, 0);

    // Syncs with nothing left to do still log (start, the word, end): enough
    // of them make the log longer than the default twenty lines.
    let mut log = log;
    for _ in 0..6 {
        if log.len() > 20 {
            break;
        }
        let mut idle = start_sync(&env, &[]);
        idle.assert_exits_0(PATIENCE);
        let longer = log_lines(&env);
        assert!(
            longer.len() > log.len(),
            "a sync appended nothing to the log"
        );
        log = longer;
    }
    assert!(log.len() > 20, "{log:#?}");
    // --lines 3: exactly the last three lines; the default is twenty.
    let out = env.run(["--log", "--lines", "3"]);
    out.assert_success();
    assert_eq!(
        lines(&out.stdout),
        log[log.len() - 3..].to_vec(),
        "{}",
        dump(&out)
    );
    let out = env.run(["--log"]);
    out.assert_success();
    assert_eq!(
        lines(&out.stdout),
        log[log.len().saturating_sub(20)..].to_vec(),
        "{}",
        dump(&out)
    );

    // SIGINT ends following too, exit 0.
    let mut follow = Spawned {
        child: command(&env, &forge.url(), &["--log", "--follow", "--lines", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn --log --follow"),
        done: false,
    };
    let mut first_line = String::new();
    BufReader::new(follow.child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    assert_eq!(first_line.trim_end(), log.last().unwrap());
    follow.signal(Signal::SIGINT);
    let exit = follow.wait(PATIENCE);
    assert_eq!(
        exit.code(),
        Some(0),
        "--log --follow after SIGINT: {exit:?}"
    );
    drop(forge);
}

// ---- 8. --resume in the foreground ---------------------------------------------------------

#[test]
fn resume_drains_in_the_foreground_then_says_nothing_is_pending() {
    let (env, forge) = world(150);
    let out = env.run(["--resume", "--delay", DELAY]);
    out.assert_success();
    assert!(
        out.stdout.lines().any(|l| l == "Pending: 0"),
        "{}",
        dump(&out)
    );
    assert!(!lock_held(&env));
    assert_matches_forge(&env, &forge, 150);
    assert_eq!(last_run_state(&status(&env)), "finished");

    forge.clear_log();
    let out = env.run(["--resume", "--delay", DELAY]);
    out.assert_success();
    let said = lines(&out.stdout);
    assert!(
        said.len() == 1 && said[0].starts_with(&format!("Nothing pending for {FORGE}")),
        "{}",
        dump(&out)
    );
    // Nothing settled is asked for again one by one (a refresh of what
    // changed, by listing, is another matter).
    let singles: Vec<String> = fetches(&forge)
        .into_iter()
        .filter(|p| p.starts_with(&format!("/repos/{FORGE}/issues/")))
        .collect();
    assert!(singles.is_empty(), "settled refs asked again: {singles:?}");
    assert!(!lock_held(&env));
}

// ---- 9. errors before detaching ----------------------------------------------------------

#[test]
fn sync_errors_before_detaching_are_reported_by_the_parent() {
    become_subreaper();
    // No origin: no forge repository to sync.
    let env = TestEnv::new();
    env.commit("fix: the widget (#12)");
    let out = env.run(["--sync", "--delay", DELAY]);
    let _started = daemon_of(&env, &out);
    out.assert_error();
    assert_eq!(out.stdout, "", "{}", dump(&out));
    assert!(!lock_held(&env));

    // A plain-http API URL off loopback.
    let (env, forge) = world(20);
    let out = env.run([
        "--sync",
        "--api-url",
        "http://example.com",
        "--delay",
        DELAY,
    ]);
    let _started = daemon_of(&env, &out);
    out.assert_error();
    assert_eq!(out.stdout, "", "{}", dump(&out));
    assert!(!lock_held(&env));
    assert_not_running(&status(&env));
    assert_eq!(db_counts(&env).pending, 20);
    assert!(forge.requests().is_empty());
}

// ---- 10. a stop while the run's first 404 is in flight ---------------------------------------

/// Two refs the forge does not have, mentioned by commits (sparse: one
/// request each, no listing), and a fake that knows the repository.
fn missing_refs_world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.add_repo(FORGE);
    env.commit("fix: old (#9000)");
    env.commit("fix: new (#5000)");
    env.run(["--offline"]).assert_success();
    assert_eq!(db_counts(&env).pending, 2);
    env.set_api_url(&forge.url());
    (env, forge)
}

#[test]
fn sigterm_while_the_first_404_is_in_flight_ends_the_run_interrupted_with_exit_0() {
    let (env, forge) = missing_refs_world();
    // Slow enough that the signal surely lands while the request is out.
    forge.set_latency(Duration::from_millis(1500));
    let mut daemon = start_sync(&env, &[]);
    let first = format!("/repos/{FORGE}/issues/5000");
    wait_for("the first request", PATIENCE, || {
        assert!(daemon.alive(), "the sync ended: {:?}", daemon.exit);
        forge.requests().iter().any(|r| r.path == first)
    });
    daemon.signal(Signal::SIGTERM);
    let exit = daemon.wait(PATIENCE);
    let v = status(&env);
    let log = log_lines(&env).join("\n");
    assert_eq!(
        exit,
        WaitStatus::Exited(Pid::from_raw(daemon.pid), 0),
        "SIGTERM during the run's first 404: {v}\n{log}"
    );
    assert_not_running(&v);
    assert_eq!(last_run_state(&v), "interrupted", "{v}\n{log}");
    assert!(!lock_held(&env));

    // Nothing lost: --resume settles both.
    forge.set_latency(Duration::ZERO);
    env.run(["--resume", "--delay", DELAY]).assert_success();
    let c = db_counts(&env);
    assert_eq!((c.pending, c.failed), (0, 2), "{c:?}");
}

// ---- a forge that cannot be reached: a quick, final answer -----------------------------

/// An address where nothing listens: bound, then let go.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// On a dead network the foreground run ends after three tries with one line
/// that names the cause and says nothing is lost, without blaming any ref;
/// a background sync tries four times and ends too, so that timers do not
/// pile up. (How long each takes is in BENCHMARKS.md, not asserted here.)
#[test]
fn a_forge_that_cannot_be_reached_ends_the_run_with_one_line_and_loses_nothing() {
    let env = TestEnv::with_origin();
    env.commit("fix: parser (#1)");
    env.commit("docs (#2)");
    env.run(["--offline"]).assert_success();
    let api = closed_port();
    env.set_api_url(&api);
    let host = api.trim_start_matches("http://");

    let out = env.run(["--limit", "1", "--delay", DELAY]);
    assert_eq!(out.code, Some(1), "{}", dump(&out));
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: cannot reach {host} after 3 tries ("))
            && last.ends_with("; nothing is lost; 2 refs left pending for the next run"),
        "{}",
        dump(&out)
    );
    for n in 1..=3 {
        assert!(
            out.stderr.contains(&format!("(try {n} of 3)")),
            "{}",
            dump(&out)
        );
    }
    // No ref was asked: none carries an attempt or a retry time.
    assert_eq!(
        env.query("SELECT ref_number, attempts, next_attempt, resolved FROM forge_refs ORDER BY 1"),
        [["1", "0", "NULL", "NULL"], ["2", "0", "NULL", "NULL"]]
    );

    let mut daemon = start_sync(&env, &[]);
    let ended = daemon.wait(PATIENCE);
    assert_eq!(ended, WaitStatus::Exited(Pid::from_raw(daemon.pid), 1));
    let log = log_lines(&env).join("\n");
    assert!(log.contains("(try 4 of 4)"), "{log}");
    assert!(
        log.contains(&format!("cannot reach {host} after 4 tries")),
        "{log}"
    );
    let v = status(&env);
    assert_eq!(last_run_state(&v), "failed", "{v}");
    assert!(
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach")),
        "{v}"
    );
    assert_eq!(counts_of(&v).pending, 2, "{v}");
}

/// patina deletes `patina.db` (`patina repo update`) while a background sync
/// drains: the sync moves to the new file at the path, projects everything
/// into it, and goes on; nothing is asked for twice, nothing is lost.
#[test]
fn patina_db_deleted_under_a_background_sync_loses_nothing() {
    let (env, forge) = world(BIG);
    let store = testenv::store_of(&env.db_path());
    let settled = || -> u64 {
        testenv::query_db(
            &store,
            "SELECT count(*) FROM forge_refs WHERE resolved IS NOT NULL",
        )[0][0]
            .parse()
            .unwrap()
    };
    let mut daemon = start_sync(&env, &[]);
    wait_for("a first listing page settled", PATIENCE, || settled() >= 50);
    fs::remove_file(env.db_path()).unwrap();
    let at_deletion = settled();
    daemon.assert_exits_0(PATIENCE);
    assert!(at_deletion < BIG, "the sync was over before the file went");
    forge.wait_idle();

    let mut asked: BTreeMap<String, u64> = BTreeMap::new();
    for r in forge.requests() {
        *asked.entry(r.path.clone()).or_default() += 1;
    }
    asked.retain(|path, n| *n > 1 && path != fakeforge::IDLE_PROBE);
    assert!(asked.is_empty(), "asked twice: {asked:?}");

    let counts = db_counts(&env);
    assert_eq!((counts.total, counts.pending), (BIG, 0), "{counts:?}");
    let one = |sql: &str| rows(&env, sql)[0][0].clone();
    let items =
        one("SELECT (SELECT count(*) FROM forge_issues) + (SELECT count(*) FROM forge_prs)");
    let patina = |sql: &str| testenv::query_patina(&env.db_path(), sql)[0][0].clone();
    assert_eq!(
        patina("SELECT (SELECT count(*) FROM forge_issues) + (SELECT count(*) FROM forge_prs)"),
        items
    );
    assert_eq!(
        patina("SELECT count(*) FROM eventlog WHERE event_type LIKE 'forge.%'"),
        items
    );
    assert_eq!(
        patina("SELECT count(*) FROM code_fts WHERE event_type LIKE 'forge.%'"),
        items
    );
}
