//! End-to-end tests of `--all`: every repository registered with patina in
//! one process. A world of four registered repositories: two on a fake
//! GitHub (one with a big backlog, one small), one on a fake Gitea, and one
//! whose clone was deleted. Each repository learned its API's address in a
//! run of its own (`--api-url`, kept with it), so that `--all` runs without
//! one, as a timer does.

mod drive;
mod testenv;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fakeforge::{FakeForge, Item, Logged};
use testenv::{Output, TestEnv, query_db};

/// `--delay` of the drains: quick, but every request passes the ledger.
const DELAY: &str = "50ms";
/// What the fake's arrival times may show of `DELAY` (the ledger spaces
/// departures; arrivals jitter on a loaded machine).
const LEAST_GAP: Duration = Duration::from_millis(30);
const BIG: &str = "acme/big";
const SMALL: &str = "acme/small";
const TEA: &str = "team/tea";

/// Numbers too far apart for a listing to pay: one GET each.
fn sparse(count: u64) -> Vec<u64> {
    (1..=count).map(|i| i * 100).collect()
}

struct World {
    big: TestEnv,
    small: TestEnv,
    tea: TestEnv,
    github: FakeForge,
    gitea: FakeForge,
}

impl World {
    /// The four registered repositories; each has its backlog and has
    /// settled one ref in a run of its own, which kept its API's address.
    fn new(big_refs: u64) -> World {
        let github = FakeForge::start();
        let (_, _, reset) = github.rate_limit();
        github.set_rate_limit(10_000_000, 10_000_000, reset);
        let gitea = FakeForge::start_gitea();
        let world = World {
            big: TestEnv::new(),
            small: TestEnv::new(),
            tea: TestEnv::new(),
            github,
            gitea,
        };
        let home = world.home().to_owned();
        let setup = [
            (
                &world.big,
                &world.github,
                BIG,
                "github.com",
                sparse(big_refs),
            ),
            (&world.small, &world.github, SMALL, "github.com", sparse(4)),
            (&world.tea, &world.gitea, TEA, "codeberg.org", sparse(4)),
        ];
        for (env, forge, repo, host, numbers) in setup {
            env.set_origin(&format!("https://{host}/{repo}.git"));
            forge.add_repo(repo);
            for &n in &numbers {
                forge.put(repo, Item::issue(n, "Registered").updated(&iso_of(n)));
                env.commit(&format!("change {n} (#{n})"));
            }
            let learn = drive::run_with(env, &home, &forge.url(), &[], &["--offline"]);
            learn.ok();
            let first = drive::run_with(
                env,
                &home,
                &forge.url(),
                &[],
                &["--limit", "1", "--delay", DELAY],
            );
            first.ok();
        }
        let gone = world.big.root().join("gone-clone");
        let registry = format!(
            "version: 1\nrepos:\n  big:\n    path: {}\n    github: {BIG}\n  small:\n    path: {}\n  tea:\n    path: {}\n  gone:\n    path: {}\n    github: acme/gone\n",
            world.big.repo().display(),
            world.small.repo().display(),
            world.tea.repo().display(),
            gone.display()
        );
        fs::write(world.home().join("registry.yaml"), registry).unwrap();
        world.github.clear_log();
        world.gitea.clear_log();
        world
    }

    fn home(&self) -> &Path {
        self.big.patina_home()
    }

    /// The binary with `--all`, as a timer runs it: no API address given,
    /// run from outside any repository.
    fn command(&self, args: &[&str]) -> Command {
        let mut all = vec!["--all"];
        all.extend_from_slice(args);
        self.big.bare_command(&all)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--all"];
        all.extend_from_slice(args);
        self.big.run_bare(&all)
    }

    /// `(resolved, pending)` of `repo` in `env`'s store.
    fn counts(&self, env: &TestEnv, repo: &str) -> (u64, u64) {
        let rows = query_db(
            &testenv::store_of(&env.db_path()),
            &format!(
                "SELECT SUM(resolved IS NOT NULL AND error IS NULL), SUM(resolved IS NULL) \
                 FROM forge_refs WHERE repo = '{repo}'"
            ),
        );
        let n = |s: &str| s.parse().unwrap_or(0);
        (n(&rows[0][0]), n(&rows[0][1]))
    }
}

fn iso_of(n: u64) -> String {
    format!("2021-01-01T00:{:02}:{:02}Z", (n / 60) % 60, n % 60)
}

/// Whether `log`'s request is about `repo`.
fn about(r: &Logged, repo: &str) -> bool {
    r.path.starts_with(&format!("/repos/{repo}/")) || r.path == format!("/repos/{repo}")
}

fn closest_gap(log: &[Logged]) -> Option<Duration> {
    let mut at: Vec<Instant> = log.iter().map(|r| r.at).collect();
    at.sort();
    at.windows(2).map(|w| w[1].duration_since(w[0])).min()
}

#[test]
fn resume_all_drains_every_repository_fairly_and_reports_the_one_that_failed() {
    let world = World::new(30);
    let out = world.run(&["--resume", "--delay", DELAY]);
    // The deleted clone fails the run, and is the one line on stderr.
    assert_eq!(out.code, Some(1), "{}", out.dump());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.dump());
    assert!(
        errors[0].starts_with("error: gone: ")
            && errors[0]
                .contains("gone-clone does not exist (clone it again, or remove repos.gone from")
            && errors[0].ends_with("registry.yaml)"),
        "{}",
        out.dump()
    );
    // Everything else drained.
    assert_eq!(world.counts(&world.big, BIG), (30, 0), "{}", out.dump());
    assert_eq!(world.counts(&world.small, SMALL), (4, 0), "{}", out.dump());
    assert_eq!(world.counts(&world.tea, TEA), (4, 0), "{}", out.dump());
    for label in ["big", "small", "tea"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("[{label}] Resolved: "))),
            "no closing line for {label}\n{}",
            out.dump()
        );
    }
    assert!(
        out.stdout
            .contains("All repositories: 3 drained, 0 skipped (another sync holds them), 1 failed"),
        "{}",
        out.dump()
    );
    // --status --all --json says what the stores hold.
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.code, Some(1), "the deleted clone\n{}", status.dump());
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect(&status.stdout);
    for (name, env, repo) in [
        ("big", &world.big, BIG),
        ("small", &world.small, SMALL),
        ("tea", &world.tea, TEA),
    ] {
        let row = json["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json}"));
        let (resolved, pending) = world.counts(env, repo);
        assert_eq!(row["repo"], repo, "{row}");
        assert_eq!(row["resolved"], resolved, "{row}");
        assert_eq!(row["pending"], pending, "{row}");
        assert_eq!(row["failed"], 0, "{row}");
        assert_eq!(row["running"], false, "{row}");
        assert_eq!(row["last_run"]["state"], "finished", "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
    let gone = json["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "gone")
        .expect("the deleted clone has a row");
    assert!(
        gone["error"].as_str().unwrap().contains("does not exist"),
        "{gone}"
    );
    let hosts: Vec<&str> = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts.len(),
        2,
        "one API host for GitHub, one for Gitea: {json}"
    );
    // Fairness: the small backlog is done while the big one has most of
    // its requests still to send.
    let mut log = world.github.requests();
    log.sort_by_key(|r| r.at);
    let last_small = log
        .iter()
        .rposition(|r| about(r, SMALL))
        .expect("small asked");
    let big_total = log.iter().filter(|r| about(r, BIG)).count();
    let big_before = log[..last_small].iter().filter(|r| about(r, BIG)).count();
    assert!(big_total >= 29, "{big_total} requests for 29 refs");
    assert!(
        big_before * 3 < big_total,
        "the small repository waited for the big one: {big_before} of {big_total} of its \
         requests came first\n{:#?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // One spacing for the host, across both repositories.
    let closest = closest_gap(&log).unwrap();
    assert!(closest >= LEAST_GAP, "two requests {closest:?} apart");
    assert!(
        log.iter().all(|r| r.status == 200 || r.status == 304),
        "{log:#?}"
    );
}

/// Two repositories on one host share the account's budget: 6 requests
/// are left above the reserve for 8 refs between them, so the drains
/// spread them until the reset, where each alone (5 and 3 refs) would have
/// gone at the `--delay` floor and then stood at the reserve.
#[test]
fn drains_on_one_host_spread_the_budget_they_share() {
    let world = World::new(6);
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5;
    world.github.set_rate_limit(1_000, 106, reset);
    let out = world.run(&["--limit", "100", "--delay", DELAY]);
    assert_eq!(out.code, Some(1), "the deleted clone\n{}", out.dump());
    let mut log = world.github.requests();
    log.sort_by_key(|r| r.at);
    let gaps: Vec<Duration> = log
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    // After the first answer told the budget: spread, not the floor.
    for gap in &gaps[1..4] {
        assert!(*gap >= Duration::from_millis(300), "{gaps:?}");
    }
    assert!(log.iter().all(|r| r.status == 200), "{log:#?}");
    assert_eq!(world.counts(&world.big, BIG), (6, 0), "{}", out.dump());
    assert_eq!(world.counts(&world.small, SMALL), (4, 0), "{}", out.dump());
}

/// GitHub's budget is at the reserve until its reset; the Gitea
/// repository, on a host of its own, is drained meanwhile instead of
/// waiting behind it.
#[test]
fn a_host_held_back_by_its_rate_limit_does_not_hold_back_the_others() {
    let world = World::new(4);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let reset = now().as_secs() + 6;
    world.github.set_rate_limit(1_000, 101, reset);
    let out = world.run(&["--resume", "--delay", DELAY]);
    assert_eq!(out.code, Some(1), "the deleted clone\n{}", out.dump());
    assert_eq!(world.counts(&world.big, BIG), (4, 0), "{}", out.dump());
    assert_eq!(world.counts(&world.small, SMALL), (4, 0), "{}", out.dump());
    assert_eq!(world.counts(&world.tea, TEA), (4, 0), "{}", out.dump());
    // The wall-clock time of the fake's log entries.
    let wall = |at: Instant| now() - Instant::now().duration_since(at);
    let tea_done = world
        .gitea
        .requests()
        .iter()
        .map(|r| wall(r.at))
        .max()
        .unwrap();
    assert!(
        tea_done < Duration::from_secs(reset),
        "the Gitea drain waited for GitHub's reset\n{}",
        out.dump()
    );
    let github = world.github.requests();
    assert!(
        github.iter().all(|r| r.status == 200 || r.status == 304),
        "{github:#?}"
    );
    assert!(
        github
            .iter()
            .any(|r| wall(r.at) >= Duration::from_secs(reset)),
        "nothing waited for the reset: the test tells nothing\n{}",
        out.dump()
    );
    assert!(
        out.stderr.contains("waiting until ") && out.stderr.contains("] waiting until "),
        "{}",
        out.dump()
    );
}

#[test]
fn limit_all_settles_at_most_n_refs_of_each_repository() {
    let world = World::new(5);
    let out = world.run(&["--limit", "2", "--delay", DELAY]);
    assert_eq!(out.code, Some(1), "the deleted clone\n{}", out.dump());
    assert_eq!(world.counts(&world.big, BIG), (3, 2), "{}", out.dump());
    assert_eq!(world.counts(&world.small, SMALL), (3, 1), "{}", out.dump());
    assert_eq!(world.counts(&world.tea, TEA), (3, 1), "{}", out.dump());
}

#[cfg(target_os = "linux")]
#[test]
fn stop_all_ends_the_sync_of_all_after_its_request_in_flight() {
    let world = World::new(60);
    world.github.set_latency(Duration::from_millis(40));
    let out = world.run(&["--sync", "--delay", "20ms"]);
    let guard = started(&world, &out);
    drive::wait_until("a few refs", Duration::from_secs(60), || {
        world.counts(&world.big, BIG).0 >= 5
    });
    let stop = world.run(&["--stop"]);
    assert_eq!(stop.code, Some(0), "{}", stop.dump());
    assert_eq!(
        stop.stdout.trim(),
        format!("Stopped PID {} (the sync of all repositories)", guard.pid)
    );
    assert!(!lock_held(&guard.lock));
    let (resolved, pending) = world.counts(&world.big, BIG);
    assert!(pending > 0, "stopped too late to tell: {resolved} resolved");
    let state = query_db(
        &testenv::store_of(&world.big.db_path()),
        "SELECT state FROM forge_runs ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(state, vec![vec!["interrupted".to_owned()]]);
    let again = world.run(&["--stop"]);
    assert_eq!(again.stdout.trim(), "No sync running for any repository");
    drop(guard);
}

#[test]
fn a_repository_another_sync_holds_is_skipped_with_one_line() {
    let world = World::new(3);
    // Hold small's lock as a sync of it alone would.
    let run_dir = world.home().join("run");
    fs::create_dir_all(&run_dir).unwrap();
    let pid_file = run_dir.join("forge-sync-acme-small.pid");
    let held = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&pid_file)
        .unwrap();
    fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    held.lock().unwrap();
    let out = world.run(&["--resume", "--delay", DELAY]);
    assert_eq!(out.code, Some(1), "the deleted clone\n{}", out.dump());
    assert!(
        out.stdout.lines().any(|l| l
            == format!(
                "[small] skipped: another sync holds it (PID {})",
                std::process::id()
            )),
        "{}",
        out.dump()
    );
    assert_eq!(world.counts(&world.small, SMALL), (1, 3), "{}", out.dump());
    assert_eq!(world.counts(&world.big, BIG), (3, 0), "{}", out.dump());
    assert!(
        !world.github.requests().iter().any(|r| about(r, SMALL)),
        "a held repository was asked about"
    );
    drop(held);
}

#[test]
fn a_second_sync_of_all_exits_75_and_a_resume_of_all_says_so_and_succeeds() {
    let world = World::new(3);
    let all_lock = world.home().join("run").join("forge-sync-all.pid");
    fs::create_dir_all(all_lock.parent().unwrap()).unwrap();
    let held = fs::File::create(&all_lock).unwrap();
    fs::write(&all_lock, "4242\n").unwrap();
    held.lock().unwrap();
    let sync = world.run(&["--sync"]);
    assert_eq!(sync.code, Some(75), "{}", sync.dump());
    assert_eq!(
        sync.stderr.trim(),
        "Already syncing (PID 4242). Check: --status --all",
        "{}",
        sync.dump()
    );
    let resume = world.run(&["--resume", "--delay", DELAY]);
    assert_eq!(resume.code, Some(0), "{}", resume.dump());
    assert_eq!(
        resume.stdout.trim(),
        "Already syncing (PID 4242). Check: --status --all"
    );
    assert!(world.github.requests().is_empty() && world.gitea.requests().is_empty());
    drop(held);
}

#[test]
fn discovery_of_all_walks_each_new_history_and_names_each_repository() {
    let world = World::new(2);
    world.small.commit("more (#900)");
    let out = world.run(&["--offline"]);
    assert_eq!(out.code, Some(1), "{}", out.dump());
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "[small] Scanned 1 new commit"),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "[big] No new commits since the last discovery"),
        "{}",
        out.dump()
    );
    assert_eq!(world.counts(&world.small, SMALL), (1, 4), "{}", out.dump());
    assert!(
        world.github.requests().is_empty(),
        "--offline sent a request"
    );
}

/// Run from inside a patina project, `--all` takes it too, once, even when
/// it is registered as well.
#[test]
fn the_project_run_from_joins_the_registered_ones_once() {
    let world = World::new(2);
    let registry = world.home().join("registry.yaml");
    let only_small = format!(
        "version: 1\nrepos:\n  small:\n    path: {}\n",
        world.small.repo().display()
    );
    fs::write(&registry, only_small).unwrap();
    let inside = world.big.repo().join("sub");
    fs::create_dir_all(&inside).unwrap();
    let out = world
        .command(&["--offline"])
        .current_dir(&inside)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let mut labels: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split(']').next())
        .collect();
    labels.dedup();
    assert_eq!(labels, vec!["small", BIG], "{stdout}");
    // Registered too: listed once, by its registry name.
    let out = world
        .command(&["--offline"])
        .current_dir(world.small.repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().all(|l| l.starts_with("[small] ")),
        "{stdout}"
    );
    assert_eq!(stdout.matches("Total: ").count(), 1, "{stdout}");
    // Not a project (no .patina/): not taken.
    let plain = TestEnv::new();
    plain.commit("x (#1)");
    let out = world
        .command(&["--offline"])
        .current_dir(plain.repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().all(|l| l.starts_with("[small]")), "{stdout}");
}

#[test]
fn a_registry_that_lists_nothing_is_an_error_that_says_what_to_do() {
    let env = TestEnv::new();
    let ran = env.run_bare(&["--all", "--resume"]);
    assert_eq!(ran.code, Some(1), "{}", ran.dump());
    let stderr = &ran.stderr;
    assert!(
        stderr.starts_with("error: no repositories: ") && stderr.contains("patina repo add"),
        "{stderr}"
    );
}

#[test]
fn all_refuses_a_single_repository_target() {
    let env = TestEnv::new();
    for extra in [
        &["--repo", "x"][..],
        &["--db", "/tmp/x.db"],
        &["--forge", "a/b"],
    ] {
        let mut args = vec!["--all", "--status"];
        args.extend_from_slice(extra);
        env.run(&args).assert_usage_error();
    }
}

/// A kill -9 of `--sync --all` in the middle of the big drain, then
/// `--resume --all`: nothing fetched is lost, nothing is fetched twice but
/// the request in flight at the kill.
#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_sync_all_then_resume_all_loses_nothing_and_fetches_nothing_twice() {
    let world = World::new(60);
    world.github.set_latency(Duration::from_millis(40));
    let out = world.run(&["--sync", "--delay", "20ms"]);
    let guard = started(&world, &out);
    let pid = guard.pid;
    // The parent says which repository cannot be synced, and exits 1.
    assert_eq!(out.code, Some(1), "{}", out.dump());
    assert!(out.stderr.contains("error: gone: "), "{}", out.dump());
    drive::wait_until("half the big backlog", Duration::from_secs(120), || {
        world.counts(&world.big, BIG).0 >= 30
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drive::wait_until("the lock to be let go", Duration::from_secs(30), || {
        !lock_held(&guard.lock)
    });
    let fetched_before = world.counts(&world.big, BIG).0;
    world.github.wait_idle();
    let resume = world.run(&["--resume", "--delay", "20ms"]);
    assert_eq!(resume.code, Some(1), "{}", resume.dump());
    assert_eq!(world.counts(&world.big, BIG), (60, 0), "{}", resume.dump());
    assert_eq!(world.counts(&world.small, SMALL), (4, 0));
    assert_eq!(world.counts(&world.tea, TEA), (4, 0));
    assert!(
        fetched_before < 60,
        "the kill came too late to tell anything"
    );
    // Nothing fetched twice but the one request in flight at the kill.
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for r in world.github.requests() {
        if r.path.contains("/issues/") {
            *seen.entry(r.path.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.len() <= 1, "fetched twice: {twice:?}");
    drop(guard);
}

/// The PID `--sync --all`'s parent names, with the guard that kills it
/// when the test ends.
#[cfg(target_os = "linux")]
fn started(world: &World, out: &Output) -> KillOnDrop {
    let pid: i32 = out
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Syncing ")?
                .split("(PID ")
                .nth(1)?
                .strip_suffix(')')?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no PID\n{}", out.dump()));
    KillOnDrop {
        pid,
        lock: world.home().join("run").join("forge-sync-all.pid"),
    }
}

#[cfg(target_os = "linux")]
#[test]
fn sync_all_logs_the_whole_run_and_each_repository_in_its_own_log() {
    let world = World::new(3);
    let out = world.run(&["--sync", "--delay", DELAY]);
    let guard = started(&world, &out);
    let logs = world.home().join("logs");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec![
            format!("Syncing 3 repositories in background (PID {})", guard.pid),
            format!(
                "Log: {} (each repository's own too: --log --all)",
                logs.join("forge-sync-all.log").display()
            ),
            "Check: patina-forge --status --all".to_owned(),
        ],
        "{}",
        out.dump()
    );
    // The one that cannot be synced is said at once, and fails the start.
    assert_eq!(out.code, Some(1), "{}", out.dump());
    assert!(out.stderr.starts_with("error: gone: "), "{}", out.dump());
    drive::wait_until("the sync to end", Duration::from_secs(120), || {
        !lock_held(&guard.lock)
    });
    let all = fs::read_to_string(logs.join("forge-sync-all.log")).unwrap();
    let big = fs::read_to_string(logs.join("forge-sync-acme-big.log")).unwrap();
    let small = fs::read_to_string(logs.join("forge-sync-acme-small.log")).unwrap();
    // Every line placed in time.
    for line in all.lines().chain(big.lines()).chain(small.lines()) {
        assert!(
            line.starts_with("20") && line.as_bytes()[19] == b'Z',
            "{line:?}"
        );
    }
    let body = |text: &str| -> Vec<String> {
        text.lines().map(|l| l[21..].to_owned()).collect::<Vec<_>>()
    };
    let all = body(&all);
    for expected in [
        format!(
            "sync of all repositories started: PID {}, 4 repositories",
            guard.pid
        ),
        "[big] Resolved: 2 (2 issues, 0 PRs)".to_owned(),
        "[small] Resolved: 3 (3 issues, 0 PRs)".to_owned(),
        "[tea] Resolved: 3 (3 issues, 0 PRs)".to_owned(),
        "All repositories: 3 drained, 0 skipped (another sync holds them), 1 failed".to_owned(),
        "sync of all repositories ended (1 failed)".to_owned(),
    ] {
        assert!(all.contains(&expected), "{expected:?} not in {all:#?}");
    }
    assert!(
        all.iter().any(|l| l.starts_with("error: gone: ")),
        "{all:#?}"
    );
    let big = body(&big);
    assert!(
        big.contains(&format!(
            "sync of {BIG} started: PID {} (--sync --all), 2 pending",
            guard.pid
        )),
        "{big:#?}"
    );
    assert!(
        big.contains(&"Resolved: 2 (2 issues, 0 PRs)".to_owned()),
        "{big:#?}"
    );
    assert_eq!(
        big.last().map(String::as_str),
        Some("sync of acme/big ended")
    );
    assert!(body(&small).contains(&"Resolved: 3 (3 issues, 0 PRs)".to_owned()));
    assert_eq!(world.counts(&world.big, BIG), (3, 0));
    drop(guard);
}

/// Kills the detached sync by its PID when the test ends, pass or fail,
/// while it still holds the all-repositories lock (so that a reused PID is
/// never signalled).
#[cfg(target_os = "linux")]
struct KillOnDrop {
    pid: i32,
    lock: PathBuf,
}

#[cfg(target_os = "linux")]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if lock_held(&self.lock)
            && fs::read_to_string(&self.lock).is_ok_and(|t| t.trim() == self.pid.to_string())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn lock_held(path: &Path) -> bool {
    match fs::File::open(path) {
        Ok(file) => match file.try_lock_shared() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            Err(_) => false,
        },
        Err(_) => false,
    }
}
