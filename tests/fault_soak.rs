//! One long drain against a forge that fails the way real ones do, all at
//! once, from one seed: 5% server errors (500/502/503), 2% connection resets,
//! 1% bodies cut in half, 1% answers slower than the client's `--timeout`, a
//! secondary rate limit (403, `retry-after: 1`) every 200 requests. At the
//! end the database mirrors the forge exactly (every ref resolved, or settled
//! as not found or deleted; none marked failed for a fault), and the fake's
//! request log shows that no wait was cut short: nothing arrived inside a
//! secondary limit's `retry-after`, and every failure was followed by the
//! client's backoff (2 s, doubling with each failure in a row).
//!
//! The seed is printed (`soak seed: N`); `PATINA_SOAK_SEED=N` replays it
//! (the default is fixed, so CI runs one known sequence). The faults each
//! request got are recomputed here from the seed with the fake's own
//! generator (splitmix64, three draws per request: kind, which 5xx, slow):
//! the log's statuses must match them, which also proves that no request
//! was refused for coming inside a wait (a refused request draws nothing and
//! would shift the sequence).
//!
//! Time: every failure costs the client's backoff (at least 2 s), so the
//! size of the world is chosen for about 250 requests and 20 failures,
//! about 50 s. A ref that failed is retried by the client on its own
//! schedule (30 s, doubling, three tries a run), not a wait the server asked
//! for: the runs here shorten its first step with the debug builds'
//! `PATINA_FORGE_TEST_RETRY_BASE`, so that each run retries by itself and
//! nothing in the database is changed behind the client's back.

mod drive;
mod mirror;
mod testenv;

use std::time::{Duration, Instant};

use drive::{Background, Ran};
use fakeforge::{FakeForge, FaultRates, Logged};
use testenv::{FORGE, TestEnv};

/// Numbers on the fake: about 250 requests for a drain and its refresh.
const TOP: u64 = 1_700;
const DELAY: &str = "5ms";
/// The client's timeout for one answer (`--timeout`), and how late a slow
/// answer comes: past it.
const TIMEOUT: &str = "1s";
const TIMEOUT_D: Duration = Duration::from_secs(1);
const SLOW: Duration = Duration::from_millis(1_500);
const DEFAULT_SEED: u64 = 20_261_128;
/// The client's least backoff after a failure (src/sync.rs: 2^n s).
const BACKOFF: Duration = Duration::from_secs(2);
const RETRY_AFTER: u64 = 1;
const SECONDARY_EVERY: u64 = 200;
const ROUNDS: usize = 12;
const DEADLINE: Duration = Duration::from_secs(240);
/// The first wait before a ref that failed for now is asked again
/// (`PATINA_FORGE_TEST_RETRY_BASE`; the client's default is 30 s).
const RETRY_BASE: &str = "1s";

fn rates() -> FaultRates {
    FaultRates {
        server_error: 0.05,
        reset: 0.02,
        malformed: 0.01,
        slow: Some((0.01, SLOW)),
        secondary_every: Some(SECONDARY_EVERY),
        secondary_retry_after: Some(RETRY_AFTER),
    }
}

// ---- the fake's generator, recomputed -------------------------------------------

/// The fake's splitmix64 (crates/fakeforge/src/lib.rs), reimplemented so that
/// the test knows what each request got.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    None,
    ServerError(u16),
    Reset,
    Malformed,
    Secondary,
}

/// What the fake's `random_fault` gives the `seen`-th request: the fault and
/// whether the answer is slowed.
fn draw(rng: &mut SplitMix64, seen: u64) -> (Injected, bool) {
    let r = rates();
    let (pick, which, slow_draw) = (rng.next_f64(), rng.next_u64(), rng.next_f64());
    let slow = r.slow.is_some_and(|(p, _)| slow_draw < p);
    if seen.is_multiple_of(SECONDARY_EVERY) {
        return (Injected::Secondary, slow);
    }
    let fault = if pick < r.server_error {
        Injected::ServerError([500, 502, 503][(which % 3) as usize])
    } else if pick < r.server_error + r.reset {
        Injected::Reset
    } else if pick < r.server_error + r.reset + r.malformed {
        Injected::Malformed
    } else {
        Injected::None
    };
    (fault, slow)
}

// ---- running -----------------------------------------------------------------------

fn seed() -> u64 {
    let seed = match std::env::var("PATINA_SOAK_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PATINA_SOAK_SEED={s:?} is not a number")),
        Err(_) => DEFAULT_SEED,
    };
    eprintln!("soak seed: {seed} (replay: PATINA_SOAK_SEED={seed})");
    seed
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), &forge.url(), &[], args)
}

fn pending(env: &TestEnv) -> u64 {
    env.query(&format!(
        "SELECT count(*) FROM forge_refs WHERE repo = '{FORGE}' AND resolved IS NULL"
    ))[0][0]
        .parse()
        .unwrap()
}

/// How a round ended.
enum Round {
    /// Exit 0 on its own: the drain and its refresh are done, or what is
    /// left used its three tries of this run.
    Finished(Ran),
    /// Exit 1 after five failures in a row, everything left pending.
    GaveUp(Ran),
}

fn round(env: &TestEnv, forge: &FakeForge, i: usize) -> Round {
    let args = ["--resume", "--delay", DELAY, "--timeout", TIMEOUT];
    let name = format!("soak-{i}");
    let extra = [("PATINA_FORGE_TEST_RETRY_BASE", RETRY_BASE)];
    let cmd = drive::command(env, env.patina_home(), &forge.url(), &extra, &args);
    let bg = Background::start(env, cmd, drive::describe(&args), &name);
    // A guard against a hang (killed by its PID on failure), not a speed claim.
    let out = bg.wait(DEADLINE);
    match out.code {
        Some(0) => Round::Finished(out),
        Some(1) if out.stderr.contains("times in a row") => Round::GaveUp(out),
        _ => panic!("round {i} failed\n{}", out.dump()),
    }
}

// ---- the soak ------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Figures {
    requests: usize,
    server_errors: usize,
    resets: usize,
    malformed: usize,
    slow: usize,
    secondary: usize,
    client_retries: usize,
}

#[test]
fn a_long_seeded_run_through_every_fault_settles_every_ref_and_cuts_no_wait_short() {
    let started = Instant::now();
    let seed = seed();
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    let expect = mirror::populate_with(&forge, TOP, false);
    for msg in [
        "fix: widget (#12)",
        "docs (#707)",
        "Fixes #533",
        "move (#511)",
    ] {
        env.commit(msg);
    }
    run(&env, &forge, &[]).ok();
    assert_eq!(pending(&env), TOP);
    forge.clear_log();
    forge.set_fault_rate(seed, rates());

    let mut rounds = Vec::new();
    let mut round_starts = Vec::new();
    for i in 0..ROUNDS {
        round_starts.push(Instant::now());
        let r = round(&env, &forge, i);
        let finished = matches!(r, Round::Finished(_));
        rounds.push(r);
        if finished && pending(&env) == 0 {
            break;
        }
    }
    assert!(
        matches!(rounds.last(), Some(Round::Finished(_))) && pending(&env) == 0,
        "not drained in {ROUNDS} rounds: {} pending (seed {seed})",
        pending(&env)
    );

    // The database mirrors the forge: no ref failed for a fault.
    mirror::assert_mirrors(&env.db_path(), &forge, &expect, 0);
    let status = run(&env, &forge, &["--status", "--json"]);
    status.ok();
    let v: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let (_, gone, missing, _) = mirror::tally(&expect);
    assert_eq!(v["pending"], 0, "{v}");
    assert_eq!(v["failed"], (gone + missing) as u64, "{v}");

    // Each request's fault, recomputed; the log agrees.
    let log: Vec<Logged> = forge
        .requests()
        .into_iter()
        .filter(|r| !r.off_host)
        .collect();
    assert!(log.iter().all(|r| r.path != "/rate_limit"));
    let mut rng = SplitMix64(seed);
    let mut figures = Figures {
        requests: log.len(),
        ..Figures::default()
    };
    let mut failed_in_a_row = 0u32;
    let repo_check = format!("/repos/{FORGE}");
    for (i, r) in log.iter().enumerate() {
        let (fault, slow) = draw(&mut rng, i as u64 + 1);
        let what = format!(
            "request {} {} got {} (seed {seed})",
            i + 1,
            r.path,
            r.status
        );
        match fault {
            Injected::ServerError(code) => assert_eq!(r.status, code, "{what}: expected {fault:?}"),
            Injected::Reset => assert_eq!(r.status, 0, "{what}: expected a reset"),
            Injected::Secondary => assert_eq!(r.status, 403, "{what}: expected a secondary limit"),
            Injected::Malformed => assert_eq!(r.status, 200, "{what}: expected a cut body"),
            Injected::None => assert!(
                [200, 301, 304, 404, 410].contains(&r.status),
                "{what}: refused (a request inside a wait?)"
            ),
        }
        // What the client saw: a failure (and so a backoff), a limit, or an answer.
        let timed_out = slow && fault != Injected::Reset;
        let failure = timed_out
            || matches!(fault, Injected::ServerError(_) | Injected::Reset)
            || (fault == Injected::Malformed && r.path != repo_check);
        match fault {
            Injected::ServerError(_) => figures.server_errors += 1,
            Injected::Reset => figures.resets += 1,
            Injected::Malformed => figures.malformed += 1,
            Injected::Secondary => figures.secondary += 1,
            Injected::None => {}
        }
        if timed_out {
            figures.slow += 1;
        }
        let Some(next) = log.get(i + 1) else { break };
        let gap = next.at.duration_since(r.at);
        if failure {
            failed_in_a_row += 1;
            // 2 s, 4 s, 8 s … from when the failure was known (a timeout is
            // known a second after the request left, a little before the
            // fake logged its arrival).
            let mut least = BACKOFF * (1 << (failed_in_a_row - 1).min(6));
            if timed_out {
                least += TIMEOUT_D - Duration::from_millis(50);
            }
            assert!(
                gap >= least,
                "{what}: the next request came {gap:?} later, before the backoff of {least:?}"
            );
        } else if fault == Injected::Secondary {
            let least = Duration::from_secs(RETRY_AFTER);
            assert!(
                gap >= least,
                "{what}: the next request came {gap:?} later, inside retry-after {least:?}"
            );
        } else {
            failed_in_a_row = 0;
        }
        // A new process counts failures in a row from zero (the ledger
        // keeps the hold, which the check above covers).
        if round_starts.iter().any(|s| r.at < *s && next.at >= *s) {
            failed_in_a_row = 0;
        }
    }

    // The client noticed each failure and retried: one `(will retry)` line each.
    let mut outputs = Vec::new();
    for r in &rounds {
        let (Round::Finished(out) | Round::GaveUp(out)) = r;
        outputs.push(out);
    }
    figures.client_retries = outputs
        .iter()
        .map(|o| {
            o.stderr
                .lines()
                .filter(|l| l.ends_with("(will retry)"))
                .count()
        })
        .sum();
    let injected_failures = log
        .iter()
        .zip({
            let mut rng = SplitMix64(seed);
            (1..=log.len() as u64)
                .map(move |i| draw(&mut rng, i))
                .collect::<Vec<_>>()
        })
        .filter(|(r, (fault, slow))| {
            (*slow && *fault != Injected::Reset)
                || matches!(fault, Injected::ServerError(_) | Injected::Reset)
                || (*fault == Injected::Malformed && r.path != repo_check)
        })
        .count();
    let gave_up = rounds
        .iter()
        .filter(|r| matches!(r, Round::GaveUp(_)))
        .count();
    // Waits of a run for its own retry schedule (nothing else to ask).
    let retry_waits: usize = outputs
        .iter()
        .map(|o| {
            o.stderr
                .matches("to retry refs that failed for now")
                .count()
        })
        .sum();
    eprintln!(
        "soak: {figures:?}; {} rounds ({gave_up} gave up after 5 failures in a row), \
         {retry_waits} waits for the retry schedule; {:?}",
        rounds.len(),
        started.elapsed()
    );
    assert_eq!(
        figures.client_retries, injected_failures,
        "the client's `(will retry)` lines are not one per failure injected"
    );
    // The run met every kind of fault (else it proves nothing about it).
    assert!(
        figures.requests >= SECONDARY_EVERY as usize,
        "fewer requests than one secondary limit's period: {figures:?}"
    );
    assert!(
        figures.server_errors > 0
            && figures.resets > 0
            && figures.malformed > 0
            && figures.slow > 0
            && figures.secondary > 0,
        "a kind of fault never came up: {figures:?} (seed {seed})"
    );
}

// ---- a damaged answer to a PR's completion (bug) ------------------------------------

/// Was a bug (a damaged `/pulls/N` answer ended the run with exit 1);
/// fixed in 1522c2a, kept as its regression test.
#[test]
fn a_damaged_answer_to_a_pr_completion_is_transient_not_fatal() {
    for fault in [fakeforge::Fault::Malformed, fakeforge::Fault::Html] {
        let env = TestEnv::with_origin();
        let forge = FakeForge::start();
        let (_, _, reset) = forge.rate_limit();
        forge.set_rate_limit(10_000_000, 10_000_000, reset);
        // A closed PR whose issue view leaves merged_at out, between two issues.
        forge.put(FORGE, fakeforge::Item::issue(1000, "One"));
        forge.put(
            FORGE,
            fakeforge::Item::pr(2000, "Closed")
                .merged("2024-05-01T10:00:00Z")
                .with_field("pull_request", serde_json::json!({"url": "x"})),
        );
        forge.put(FORGE, fakeforge::Item::issue(3000, "Three"));
        for n in [1000, 2000, 3000] {
            env.commit(&format!("change (#{n})"));
        }
        run(&env, &forge, &["--offline"]).ok();
        forge.push_fault_on("/pulls/2000", fault.clone());
        let out = run(&env, &forge, &["--resume", "--delay", DELAY]);
        assert_eq!(out.code, Some(0), "after {fault:?}\n{}", out.dump());
        assert_eq!(pending(&env), 0, "after {fault:?}\n{}", out.dump());
        let state = env.query("SELECT state, merged_at FROM forge_prs WHERE number = 2000");
        assert_eq!(
            state,
            vec![vec![
                "merged".to_string(),
                "2024-05-01T10:00:00Z".to_string()
            ]]
        );
    }
}
