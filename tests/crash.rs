//! Crash consistency of a drain: `kill -9` and SIGTERM at 20 points chosen at
//! random, each followed by `--resume`, end with a database that mirrors the
//! fake forge exactly, for about the requests of an uninterrupted run; and a
//! second process writing to the same database during a drain never makes a
//! `database is locked` reach the user.
//!
//! The kill points are drawn from a seed that every test prints (`crash
//! seed: N`); `PATINA_CRASH_SEED=N cargo test --test crash` replays them.
//! A point is "after the k-th request the fake has received, plus d
//! microseconds" (the fake reports each request the moment its head has
//! arrived, through `log_to`), or, for a tenth of the `kill -9` points,
//! "d milliseconds after the process started" (opening the database,
//! recording the run). With the fake answering `LATENCY` late and a
//! `--delay` of `DELAY`, the points fall while a request is in flight, while
//! its outcome commits, and while the next turn is waited for.

mod drive;
mod mirror;
mod testenv;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drive::{Background, Ran};
use fakeforge::{FakeForge, Logged};
use mirror::Expect;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rusqlite::{Connection, TransactionBehavior};
use testenv::{FORGE, TestEnv};

/// Numbers 1..=TOP on the fake (see `mirror::populate`): about 140 requests
/// for a whole drain and its refresh.
const TOP: u64 = 800;
const DELAY: &str = "5ms";
const LATENCY: Duration = Duration::from_millis(8);
const POINTS: usize = 20;
/// Long enough for any one run here on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

// ---- seeded choices ------------------------------------------------------------

/// splitmix64, as the fake uses: one seed, one sequence, on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// `PATINA_CRASH_SEED`, else one from the clock; printed either way.
fn seed(test: &str) -> u64 {
    let seed = match std::env::var("PATINA_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PATINA_CRASH_SEED={s:?} is not a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("{test}: crash seed: {seed} (replay: PATINA_CRASH_SEED={seed})");
    seed
}

#[derive(Debug, Clone, Copy)]
enum Point {
    /// This long after the process was spawned.
    Startup(Duration),
    /// Once the fake has received this many requests in all (counted from
    /// the first drain), then this much later.
    AfterRequest(usize, Duration),
}

/// `POINTS` points over a drain of about `base` requests, in order.
fn draw_points(rng: &mut Rng, base: usize, startup_share: bool) -> Vec<Point> {
    let slack = (LATENCY.as_micros() as u64) + 5_000 + 5_000;
    let last = (base as u64 * 92 / 100).max(2);
    let mut targets: Vec<(u64, Point)> = (0..POINTS)
        .map(|_| {
            if startup_share && rng.between(0, 9) == 0 {
                let at = rng.between(0, 40);
                (0, Point::Startup(Duration::from_millis(at)))
            } else {
                let k = rng.between(1, last);
                let d = Duration::from_micros(rng.between(0, slack));
                (k, Point::AfterRequest(k as usize, d))
            }
        })
        .collect();
    // Startup points keep their place among the others by a draw of their own.
    for t in targets.iter_mut() {
        if let (0, Point::Startup(_)) = t {
            t.0 = rng.between(1, last);
        }
    }
    targets.sort_by_key(|t| t.0);
    targets.into_iter().map(|t| t.1).collect()
}

// ---- the world -------------------------------------------------------------------

/// Counts the requests the fake receives, as they arrive.
/// (The test's own probe, see `wait_fake_idle`, is not counted.)
struct Arrivals(Sender<()>, Vec<u8>);

impl Write for Arrivals {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for b in buf {
            if *b != b'\n' {
                self.1.push(*b);
                continue;
            }
            if !String::from_utf8_lossy(&self.1).contains(PROBE) {
                let _ = self.0.send(());
            }
            self.1.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct World {
    env: TestEnv,
    forge: FakeForge,
    expect: BTreeMap<u64, Expect>,
    arrivals: Receiver<()>,
    /// Requests received so far (as far as `arrivals` has been read).
    seen: usize,
}

/// A project whose origin is `FORGE`, commits mentioning a few of its
/// numbers, the fake filled by `mirror::populate(TOP)`, and an online
/// discovery that put 1..=TOP in the backlog. The fake's log starts empty
/// after that, and answers come `LATENCY` late.
fn world() -> World {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    // Budget spreading would otherwise space requests by 3600 s / 5000.
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    let expect = mirror::populate(&forge, TOP);
    for msg in [
        "fix: the widget (#12)",
        "Merge pull request #300 from acme/topic",
        "docs: tidy\n\nCloses #777",
        "chore: revert (#433)",
        "feat: move (#511)",
        "fix: merge state (#45)",
    ] {
        env.commit(msg);
    }
    let out = run(&env, &forge, &[]);
    out.ok();
    assert_eq!(pending(&env), TOP, "{}", out.dump());
    forge.clear_log();
    forge.set_latency(LATENCY);
    let (tx, arrivals) = mpsc::channel();
    forge.log_to(Box::new(Arrivals(tx, Vec::new())));
    World {
        env,
        forge,
        expect,
        arrivals,
        seen: 0,
    }
}

impl World {
    /// Reads what has arrived without waiting.
    fn catch_up(&mut self) {
        while self.arrivals.try_recv().is_ok() {
            self.seen += 1;
        }
    }

    /// Waits until `n` requests have arrived, while `bg` runs; false if it
    /// ended first.
    fn wait_requests(&mut self, n: usize, bg: &mut Background) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while self.seen < n {
            match self.arrivals.recv_timeout(Duration::from_millis(5)) {
                Ok(()) => self.seen += 1,
                Err(RecvTimeoutError::Timeout) => {
                    if !bg.running() {
                        self.catch_up();
                        return self.seen >= n;
                    }
                    assert!(Instant::now() < deadline, "no request {n} in {PATIENCE:?}");
                }
                Err(RecvTimeoutError::Disconnected) => panic!("the fake's log sink closed"),
            }
        }
        true
    }
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), &forge.url(), &[], args)
}

fn resume_in_background(w: &World, name: &str) -> Background {
    let args = ["--resume", "--delay", DELAY];
    let cmd = drive::command(&w.env, w.env.patina_home(), &w.forge.url(), &[], &args);
    Background::start(&w.env, cmd, drive::describe(&args), name)
}

fn pending(env: &TestEnv) -> u64 {
    env.query(&format!(
        "SELECT count(*) FROM forge_refs WHERE repo = '{FORGE}' AND resolved IS NULL"
    ))[0][0]
        .parse()
        .unwrap()
}

/// (id, state, ended IS NOT NULL) of every run, oldest first.
fn runs(env: &TestEnv) -> Vec<(i64, String, bool)> {
    env.query("SELECT id, state, ended IS NOT NULL FROM forge_runs ORDER BY id")
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].clone(), r[2] == "1"))
        .collect()
}

/// How many times the fake was asked whether the repository exists (once
/// per run, after the run's first 404).
fn repository_checks(forge: &FakeForge) -> usize {
    let repo = format!("/repos/{FORGE}");
    requests(forge).iter().filter(|r| r.path == repo).count()
}

/// An uninterrupted drain of the same world: the targets it asked for, and
/// the check that the mirror assertion holds for a run nobody disturbed.
fn baseline() -> Vec<String> {
    let w = world();
    let out = run(&w.env, &w.forge, &["--resume", "--delay", DELAY]);
    out.ok();
    let requests = w.forge.requests().len();
    let (resolved, failed, pending_left, said) = out.summary();
    assert_eq!(pending_left, 0, "{}", out.dump());
    assert_eq!(said as usize, requests, "{}", out.dump());
    let (live, gone, missing, moved) = mirror::tally(&w.expect);
    assert_eq!(resolved as usize, live + moved, "{}", out.dump());
    assert_eq!(failed as usize, gone + missing, "{}", out.dump());
    mirror::assert_mirrors(&w.env.db_path(), &w.forge, &w.expect, 0);
    paths(&w.forge)
}

/// Request targets, a refresh's `since=` value blanked (it is a time).
fn paths(forge: &FakeForge) -> Vec<String> {
    requests(forge).iter().map(normalised).collect()
}

/// The fake's log without the test's probes.
fn requests(forge: &FakeForge) -> Vec<Logged> {
    forge
        .requests()
        .into_iter()
        .filter(|r| r.path != PROBE)
        .collect()
}

/// The fake's own probe, left out of what the tests count.
const PROBE: &str = fakeforge::IDLE_PROBE;

/// Waits until every request a dead process sent is in the fake's log.
fn wait_fake_idle(forge: &FakeForge) {
    forge.wait_idle();
}

fn normalised(r: &Logged) -> String {
    match r.path.find("since=") {
        Some(i) => {
            let end = r.path[i..].find('&').map_or(r.path.len(), |j| i + j);
            format!("{}since=*{}", &r.path[..i], &r.path[end..])
        }
        None => r.path.clone(),
    }
}

/// Targets asked more often than in `base`, and how many times more; the
/// repository check (once per run, after the run's first 404) left out.
fn repeated(base: &[String], now: &[String]) -> BTreeMap<String, i64> {
    let repo = format!("/repos/{FORGE}");
    let mut diff: BTreeMap<String, i64> = BTreeMap::new();
    for p in now.iter().filter(|p| **p != repo) {
        *diff.entry(p.clone()).or_default() += 1;
    }
    for p in base.iter().filter(|p| **p != repo) {
        *diff.entry(p.clone()).or_default() -= 1;
    }
    diff.retain(|_, n| *n > 0);
    diff
}

/// Whether a request continues the step of the one before it: a PR's
/// completion (`/pulls/N`, after a listing page or a single answer), the
/// repository check (after the run's first 404), a transfer's second hop
/// (`/repositories/ID/issues/N`, no query: a listing page has one).
fn continues_step(path: &str) -> bool {
    let hop =
        path.starts_with("/repositories/") && path.contains("/issues/") && !path.contains('?');
    path.contains("/pulls/") || path == format!("/repos/{FORGE}") || hop
}

/// For runs that were stopped, the requests of the step each was in when
/// it stopped: from the step's first request to the last request of the
/// run. `starts` are the instants the runs were spawned (the last one the
/// run that finished). The step is what a stop may cost again.
fn steps_in_flight(log: &[Logged], starts: &[Instant]) -> Vec<Vec<String>> {
    let mut steps = Vec::new();
    for window in starts.windows(2) {
        let run: Vec<&Logged> = log
            .iter()
            .filter(|r| r.at >= window[0] && r.at < window[1])
            .collect();
        let Some(last) = run.len().checked_sub(1) else {
            steps.push(Vec::new());
            continue;
        };
        let mut first = last;
        while first > 0 && continues_step(&run[first].path) {
            first -= 1;
        }
        steps.push(run[first..].iter().map(|r| normalised(r)).collect());
    }
    steps
}

/// A PR of the world whose issue view leaves `merged_at` out
/// (`mirror::populate`): a listing page commits it last, after `/pulls/N`;
/// a stop before that leaves it pending for a single request of its own.
fn completed_later(path: &str) -> bool {
    path.strip_prefix(&format!("/repos/{FORGE}/issues/"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n.is_multiple_of(45))
}

/// Panics unless every request asked beyond an undisturbed drain belongs to
/// a step that was in flight when a run stopped (each such step once), or is
/// the single request of a PR a stop left waiting for its completion (once).
fn assert_repeats_within_steps(
    what: &str,
    base: &[String],
    w: &World,
    starts: &[Instant],
    seed: u64,
) {
    let now = paths(&w.forge);
    let again = repeated(base, &now);
    let steps = steps_in_flight(&requests(&w.forge), starts);
    let mut allowed: BTreeMap<String, i64> = BTreeMap::new();
    for p in steps.iter().flatten() {
        *allowed.entry(p.clone()).or_default() += 1;
    }
    for p in now.iter().filter(|p| completed_later(p)) {
        allowed.entry(p.clone()).or_insert(0);
    }
    for p in allowed.keys().cloned().collect::<Vec<_>>() {
        if completed_later(&p) {
            *allowed.get_mut(&p).unwrap() += 1;
        }
    }
    let extra: Vec<String> = again
        .iter()
        .filter(|(p, n)| **n > allowed.get(*p).copied().unwrap_or(0))
        .map(|(p, n)| format!("{p} ×{n}"))
        .collect();
    let known: std::collections::BTreeSet<&String> = base.iter().collect();
    let new: Vec<&String> = now
        .iter()
        .filter(|p| !known.contains(p) && **p != format!("/repos/{FORGE}") && !completed_later(p))
        .collect();
    let checks = repository_checks(&w.forge);
    let sizes: Vec<usize> = steps.iter().map(Vec::len).collect();
    eprintln!(
        "{what}: requests {} vs {} uninterrupted; {checks} repository checks; asked again {} \
         (steps in flight at the stops: {sizes:?})",
        now.len(),
        base.len(),
        again.values().sum::<i64>()
    );
    assert!(
        new.is_empty(),
        "{what} (seed {seed}): asked what an undisturbed drain never asks: {new:?}"
    );
    assert!(
        extra.is_empty(),
        "{what} (seed {seed}): asked again beyond the steps in flight at the stops: {extra:?}\n\
         steps: {steps:#?}"
    );
}

// ---- kill -9 ---------------------------------------------------------------------

#[test]
fn kill_9_at_20_random_points_then_resume_mirrors_the_forge() {
    let seed = seed("kill -9");
    let base = baseline();
    let mut rng = Rng(seed);
    let points = draw_points(&mut rng, base.len(), true);
    let mut w = world();
    let mut starts = Vec::new();
    let mut mid_drain = 0;
    for (i, point) in points.iter().enumerate() {
        w.catch_up();
        let start = w.seen;
        starts.push(Instant::now());
        let mut bg = resume_in_background(&w, &format!("kill-{i}"));
        match *point {
            Point::Startup(d) => std::thread::sleep(d),
            Point::AfterRequest(k, d) => {
                // At least one request of this run, so that each point is a
                // new moment and not a kill of a process that did nothing.
                let target = k.max(start + 1);
                assert!(
                    w.wait_requests(target, &mut bg),
                    "point {i} ({point:?}): the drain ended by itself before request {target} \
                     (seed {seed})"
                );
                std::thread::sleep(d);
                mid_drain += 1;
            }
        }
        kill(Pid::from_raw(bg.pid() as i32), Signal::SIGKILL).expect("kill -9");
        let out = bg.wait(PATIENCE);
        assert_eq!(
            out.code,
            None,
            "point {i} ({point:?}): not killed (seed {seed})\n{}",
            out.dump()
        );
        // What it sent before it died is logged before the next run starts.
        wait_fake_idle(&w.forge);
    }

    // The last run finishes the work.
    starts.push(Instant::now());
    let out = run(&w.env, &w.forge, &["--resume", "--delay", DELAY]);
    out.ok();
    assert_eq!(out.summary().2, 0, "{}", out.dump());
    mirror::assert_mirrors(&w.env.db_path(), &w.forge, &w.expect, 0);

    // Every killed run that had recorded itself is interrupted; the last finished.
    let runs = runs(&w.env);
    let (last, killed) = runs.split_last().expect("runs recorded");
    assert_eq!(last.1, "finished", "{runs:?}");
    assert!(
        killed.iter().all(|r| r.1 == "interrupted" && r.2),
        "a killed run is not recorded as interrupted: {runs:?}"
    );
    // A run records itself before its first request: every kill after one
    // left a run behind; a kill at startup may not have.
    assert!(
        killed.len() >= mid_drain && killed.len() <= POINTS,
        "{} killed runs recorded for {mid_drain} kills mid-drain: {runs:?}",
        killed.len()
    );
    starts.push(Instant::now());
    assert_repeats_within_steps(
        &format!(
            "kill -9 at {POINTS} points ({mid_drain} mid-drain), {} runs",
            runs.len()
        ),
        &base,
        &w,
        &starts[..starts.len() - 1],
        seed,
    );
}

// ---- SIGTERM ---------------------------------------------------------------------

#[test]
fn sigterm_at_20_random_points_ends_interrupted_exit_0_and_resume_mirrors_the_forge() {
    let seed = seed("SIGTERM");
    let base = baseline();
    let mut rng = Rng(seed);
    let points = draw_points(&mut rng, base.len(), false);
    let mut w = world();
    let mut starts = Vec::new();
    for (i, point) in points.iter().enumerate() {
        w.catch_up();
        let start = w.seen;
        let runs_before = runs(&w.env).len();
        starts.push(Instant::now());
        let mut bg = resume_in_background(&w, &format!("term-{i}"));
        let Point::AfterRequest(k, d) = *point else {
            unreachable!("no startup points for SIGTERM")
        };
        let target = k.max(start + 1);
        assert!(
            w.wait_requests(target, &mut bg),
            "point {i} ({point:?}): the drain ended by itself before request {target} (seed {seed})"
        );
        std::thread::sleep(d);
        kill(Pid::from_raw(bg.pid() as i32), Signal::SIGTERM).expect("kill -TERM");
        let out = bg.wait(PATIENCE);
        wait_fake_idle(&w.forge);
        // Exit status 0 also after an interruption: what was fetched is kept.
        assert_eq!(
            out.code,
            Some(0),
            "point {i} ({point:?}, seed {seed})\n{}",
            out.dump()
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l == "Interrupted: everything fetched so far is kept; --resume continues"),
            "point {i} ({point:?}, seed {seed}): no `Interrupted:` line\n{}",
            out.dump()
        );
        let runs_now = runs(&w.env);
        assert_eq!(runs_now.len(), runs_before + 1, "{runs_now:?}");
        let this = runs_now.last().unwrap();
        assert!(
            this.1 == "interrupted" && this.2,
            "point {i} ({point:?}, seed {seed}): the run is recorded as {this:?}"
        );
    }
    let status = run(&w.env, &w.forge, &["--status", "--json"]);
    status.ok();
    let v: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(v["last_run"]["state"], "interrupted", "{v}");
    assert_eq!(v["running"], false, "{v}");

    starts.push(Instant::now());
    let out = run(&w.env, &w.forge, &["--resume", "--delay", DELAY]);
    out.ok();
    mirror::assert_mirrors(&w.env.db_path(), &w.forge, &w.expect, 0);
    let runs = runs(&w.env);
    assert_eq!(runs.len(), POINTS + 1, "{runs:?}");
    assert_eq!(runs.last().unwrap().1, "finished", "{runs:?}");
    starts.push(Instant::now());
    assert_repeats_within_steps(
        &format!("SIGTERM at {POINTS} points"),
        &base,
        &w,
        &starts[..starts.len() - 1],
        seed,
    );
}

// ---- a second writer -------------------------------------------------------------

/// What the other writer did.
#[derive(Debug, Default)]
struct Written {
    transactions: u64,
    during_drain: u64,
    longest: Duration,
    errors: Vec<String>,
}

/// Writes to the database as patina does while the test runs: immediate
/// transactions holding the write lock 2–25 ms (every 40th, 400 ms), each
/// appending a `git.commit` event and bumping a `scrape_meta` key, a passive
/// checkpoint every 25th, with 0–10 ms between them.
fn other_writer(
    db: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    seed: u64,
) -> Written {
    let mut rng = Rng(seed);
    let mut conn = Connection::open(&db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let mut done = Written::default();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let hold = if i.is_multiple_of(40) {
            Duration::from_millis(400)
        } else {
            Duration::from_millis(rng.between(2, 25))
        };
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO eventlog (event_type, timestamp, source_id, source_file, data)
                 VALUES ('git.commit', datetime('now'), ?1, NULL, json_object('i', ?2))",
                rusqlite::params![format!("c{i:06}"), i as i64],
            )?;
            tx.execute(
                "INSERT INTO scrape_meta (key, value) VALUES ('test.other_writer', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [i.to_string()],
            )?;
            let held = Instant::now();
            std::thread::sleep(hold);
            tx.commit()?;
            done.longest = done.longest.max(held.elapsed());
            if i.is_multiple_of(25) {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                done.transactions += 1;
                if draining.load(Ordering::SeqCst) {
                    done.during_drain += 1;
                }
            }
            Err(e) => done.errors.push(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(rng.between(0, 10)));
    }
    done
}

#[test]
fn a_second_writer_during_a_drain_never_surfaces_database_is_locked() {
    let seed = seed("second writer");
    let w = world();
    let stop = Arc::new(AtomicBool::new(false));
    let draining = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop, draining) = (w.env.db_path(), stop.clone(), draining.clone());
        std::thread::spawn(move || other_writer(db, stop, draining, seed))
    };
    // The writer is going before the drain opens the database.
    std::thread::sleep(Duration::from_millis(100));
    draining.store(true, Ordering::SeqCst);
    let out = run(&w.env, &w.forge, &["--resume", "--delay", DELAY]);
    draining.store(false, Ordering::SeqCst);
    // A status while the writer goes on.
    let status = run(&w.env, &w.forge, &["--status", "--json"]);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("the writer thread");

    out.ok();
    status.ok();
    for ran in [&out, &status] {
        let all = format!("{}{}", ran.stdout, ran.stderr).to_lowercase();
        assert!(
            !all.contains("locked") && !all.contains("busy"),
            "a lock reached the user\n{}",
            ran.dump()
        );
    }
    assert_eq!(out.summary().2, 0, "{}", out.dump());
    assert!(written.errors.is_empty(), "the writer failed: {written:?}");
    assert!(
        written.during_drain >= 20,
        "the writer hardly overlapped the drain: {written:?}"
    );
    eprintln!(
        "second writer: {} transactions ({} during the drain), longest hold {:?}",
        written.transactions, written.during_drain, written.longest
    );
    mirror::assert_mirrors(&w.env.db_path(), &w.forge, &w.expect, written.transactions);
}

// ---- what a stop throws away (bugs) ----------------------------------------------

/// Issues 1..=150, but #120 a closed PR whose issue view leaves `merged_at`
/// out: the listing's first page (150..51) needs `/pulls/120` before it can
/// be committed. Discovery has put 1..=150 in the backlog.
fn page_world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    for n in 1..=150 {
        let item = if n == 120 {
            fakeforge::Item::pr(n, "Closed")
                .closed()
                .with_field("pull_request", serde_json::json!({"url": "x"}))
        } else {
            fakeforge::Item::issue(n, "Plain")
        };
        forge.put(FORGE, item);
    }
    env.commit("start (#1)");
    run(&env, &forge, &[]).ok();
    assert_eq!(pending(&env), 150);
    forge.clear_log();
    (env, forge)
}

fn settled(env: &TestEnv) -> u64 {
    env.query(&format!(
        "SELECT count(*) FROM forge_refs WHERE repo = '{FORGE}' AND resolved IS NOT NULL"
    ))[0][0]
        .parse()
        .unwrap()
}

fn resume_bg(env: &TestEnv, forge: &FakeForge, name: &str) -> Background {
    let args = ["--resume", "--delay", DELAY];
    let cmd = drive::command(env, env.patina_home(), &forge.url(), &[], &args);
    Background::start(env, cmd, drive::describe(&args), name)
}

/// Was a bug (a stop while a listing page waited for its PRs' completion
/// threw the whole page away); fixed in 1522c2a, kept as its regression test.
#[test]
fn sigterm_while_a_listing_page_is_in_flight_keeps_what_it_brought() {
    let (env, forge) = page_world();
    forge.set_latency(Duration::from_millis(800));
    let mut bg = resume_bg(&env, &forge, "page-term");
    drive::wait_until("the first page's request", PATIENCE, || {
        !forge.requests().is_empty()
    });
    assert!(bg.running());
    kill(Pid::from_raw(bg.pid() as i32), Signal::SIGTERM).unwrap();
    let out = bg.wait(PATIENCE);
    out.ok();
    // The page's 99 issues came back before the stop: they are kept.
    assert!(
        settled(&env) >= 99,
        "{} refs settled after a stop that came while a 100-item page was in flight\n{}",
        settled(&env),
        out.dump()
    );
}

/// Was a bug (a page's refs committed only after every PR on it was
/// completed); fixed in 1522c2a, kept as its regression test.
#[test]
fn kill_9_during_a_pr_completion_keeps_the_page_already_answered() {
    let (env, forge) = page_world();
    forge.push_fault_on(
        "/pulls/120",
        fakeforge::Fault::Hang(Duration::from_secs(20)),
    );
    let mut bg = resume_bg(&env, &forge, "page-kill");
    drive::wait_until("the completion of #120", PATIENCE, || {
        forge
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/pulls/120"))
    });
    assert!(bg.running());
    kill(Pid::from_raw(bg.pid() as i32), Signal::SIGKILL).unwrap();
    assert_eq!(bg.wait(PATIENCE).code, None);
    assert!(
        settled(&env) >= 99,
        "{} refs settled: the page answered before the kill was lost",
        settled(&env)
    );
}

#[test]
fn sigterm_while_a_transfer_is_in_flight_asks_its_old_url_once() {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.put(FORGE, fakeforge::Item::issue(5, "Moving"));
    forge.put(FORGE, fakeforge::Item::issue(6, "Staying"));
    forge.transfer(FORGE, 5, mirror::ELSEWHERE, 9);
    env.commit("older (#6)");
    env.commit("newer (#5)");
    run(&env, &forge, &["--offline"]).ok();
    forge.set_latency(Duration::from_millis(800));
    let mut bg = resume_bg(&env, &forge, "moved-term");
    let old = format!("/repos/{FORGE}/issues/5");
    drive::wait_until("the 301", PATIENCE, || {
        forge.requests().iter().any(|r| r.path == old)
    });
    assert!(bg.running());
    kill(Pid::from_raw(bg.pid() as i32), Signal::SIGTERM).unwrap();
    bg.wait(PATIENCE).ok();
    forge.set_latency(Duration::ZERO);
    run(&env, &forge, &["--resume", "--delay", DELAY]).ok();
    assert_eq!(pending(&env), 0);
    let asked = forge.requests().iter().filter(|r| r.path == old).count();
    assert_eq!(asked, 1, "the 301 answered before the stop was asked again");
}

/// `--limit` that settles everything does not refresh (it is bounded), and
/// a refresh stopped before its first page commits leaves no mark: the next
/// `--resume`, with nothing pending, must still refresh (the mark falls back
/// to the first run's start).
#[test]
fn resume_refreshes_after_a_limit_drained_everything() {
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    for n in 1..=3 {
        forge.put(FORGE, fakeforge::Item::issue(n, "Original"));
    }
    env.commit("x (#1)");
    run(&env, &forge, &[]).ok();
    run(&env, &forge, &["--limit", "10", "--delay", DELAY]).ok();
    assert_eq!(pending(&env), 0);
    forge.put(FORGE, fakeforge::Item::issue(2, "Edited on the forge"));
    let out = run(&env, &forge, &["--resume", "--delay", DELAY]);
    out.ok();
    assert_eq!(
        env.query("SELECT title FROM forge_issues WHERE number = 2"),
        vec![vec!["Edited on the forge".to_string()]],
        "--resume did not refresh\n{}",
        out.dump()
    );
}
