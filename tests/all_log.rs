//! `--log --all`: the logs of every registered repository and of `--sync
//! --all`, merged by the RFC 3339 time each line starts with, each line
//! prefixed with `[label] `; `--lines N` of the merge; `--follow` printing
//! what any of them gets next, also a log that appears later.

mod testenv;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fakeforge::{FakeForge, Item};
use testenv::TestEnv;

/// A guard against hangs, not a claim on speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn log_path(env: &TestEnv, name: &str) -> PathBuf {
    env.patina_home()
        .join("logs")
        .join(format!("forge-sync-{name}.log"))
}

fn write_log(env: &TestEnv, name: &str, text: &str) {
    let path = log_path(env, name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn append_log(env: &TestEnv, name: &str, text: &str) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path(env, name))
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `2026-11-28T04:49:SSZ`.
fn at(second: u32) -> String {
    format!("2026-11-28T04:49:{second:02}Z")
}

/// Two registered repositories, alpha and beta.
fn two_repositories() -> TestEnv {
    let env = TestEnv::new();
    let alpha = env.clone_at("alpha", "acme/alpha");
    let beta = env.clone_at("beta", "acme/beta");
    env.write_registry(&[("alpha", &alpha), ("beta", &beta)]);
    env
}

#[test]
fn logs_are_interleaved_by_their_stamps() {
    let env = two_repositories();
    write_log(
        &env,
        "all",
        &format!("{} all: start\n{} all: done\n", at(2), at(5)),
    );
    write_log(
        &env,
        "acme-alpha",
        &format!(
            "{} a one\n{} a three\n  continued, without a stamp\n{} a five\n",
            at(1),
            at(3),
            at(5)
        ),
    );
    // beta's log is long: its end is read in pieces, from the back.
    let mut beta = String::new();
    for i in 0..20_000 {
        beta.push_str(&format!("2026-11-27T00:00:00Z old line {i}\n"));
    }
    beta.push_str(&format!(
        "{} b zero\n{} b three\n{} b six\n",
        at(0),
        at(3),
        at(6)
    ));
    write_log(&env, "acme-beta", &beta);
    let before = env.snapshot();

    let merged = [
        format!("[beta] {} b zero", at(0)),
        format!("[alpha] {} a one", at(1)),
        format!("[all] {} all: start", at(2)),
        // Equal times: --sync --all's log first, then the registry's order.
        format!("[alpha] {} a three", at(3)),
        "[alpha]   continued, without a stamp".to_owned(),
        format!("[beta] {} b three", at(3)),
        format!("[all] {} all: done", at(5)),
        format!("[alpha] {} a five", at(5)),
        format!("[beta] {} b six", at(6)),
    ];
    let out = env.run_bare(&["--log", "--all", "--lines", "9"]);
    out.assert_exit(0);
    assert_eq!(out.stderr, "", "{}", out.dump());
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        merged,
        "{}",
        out.dump()
    );

    let out = env.run_bare(&["--log", "--all", "--lines", "3"]);
    out.assert_exit(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        merged[6..],
        "{}",
        out.dump()
    );

    // The default 20: beta's old lines before the rest.
    let out = env.run_bare(&["--log", "--all"]);
    out.assert_exit(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{}", out.dump());
    assert_eq!(
        lines[..11],
        [
            "[beta] 2026-11-27T00:00:00Z old line 19989",
            "[beta] 2026-11-27T00:00:00Z old line 19990",
            "[beta] 2026-11-27T00:00:00Z old line 19991",
            "[beta] 2026-11-27T00:00:00Z old line 19992",
            "[beta] 2026-11-27T00:00:00Z old line 19993",
            "[beta] 2026-11-27T00:00:00Z old line 19994",
            "[beta] 2026-11-27T00:00:00Z old line 19995",
            "[beta] 2026-11-27T00:00:00Z old line 19996",
            "[beta] 2026-11-27T00:00:00Z old line 19997",
            "[beta] 2026-11-27T00:00:00Z old line 19998",
            "[beta] 2026-11-27T00:00:00Z old line 19999",
        ]
    );
    assert_eq!(lines[11..], merged);
    env.assert_unchanged(&before);
}

#[test]
fn no_log_at_all_says_how_to_start_one_and_a_gone_clone_is_an_error() {
    let env = TestEnv::new();
    let alpha = env.clone_at("alpha", "acme/alpha");
    let gone = env.clone_at("gone", "acme/gone");
    env.write_registry(&[("alpha", &alpha), ("gone", &gone)]);

    let out = env.run_bare(&["--log", "--all"]);
    out.assert_exit(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.dump());
    assert!(
        lines[0].starts_with("No sync log yet")
            && lines[0].ends_with("Start one with --sync --all."),
        "{}",
        out.dump()
    );

    fs::remove_dir_all(&gone).unwrap();
    write_log(&env, "acme-alpha", &format!("{} a one\n", at(1)));
    let out = env.run_bare(&["--log", "--all"]);
    out.assert_exit(1);
    assert_eq!(out.stdout, format!("[alpha] {} a one\n", at(1)));
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", out.dump());
    assert!(
        errors[0].starts_with("error: gone: ") && errors[0].contains(gone.to_str().unwrap()),
        "{}",
        out.dump()
    );
}

/// The RFC 3339 stamp a line starts with, after its `[label] `.
fn stamp(line: &str) -> Option<&str> {
    let rest = line.split_once("] ")?.1;
    let word = rest.split(' ').next()?;
    (word.len() == 20 && word.ends_with('Z')).then_some(word)
}

#[test]
fn the_logs_of_two_real_syncs() {
    let env = two_repositories();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    for repo in ["acme/alpha", "acme/beta"] {
        forge.add_repo(repo);
        for n in 1..=30 {
            forge.put(repo, Item::issue(n, &format!("issue {n}")));
        }
    }
    forge.set_latency(Duration::from_millis(20));
    let url = forge.url();
    for name in ["alpha", "beta"] {
        let dir = env.root().join(name);
        let dir = dir.to_str().unwrap();
        env.run_bare(&["-C", dir, "--api-url", &url]).assert_exit(0);
        let out = env.run_bare(&["-C", dir, "--sync", "--delay", "10ms"]);
        out.assert_exit(0);
        assert!(
            out.stdout.contains("Syncing in background (PID"),
            "{}",
            out.dump()
        );
    }
    // Each sync has ended when its lock is free and its run is recorded.
    for name in ["alpha", "beta"] {
        let dir = env.root().join(name);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = env.run_bare(&["-C", dir.to_str().unwrap(), "--status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
            if v["running"] == false && v["last_run"]["state"] == "finished" {
                break;
            }
            assert!(Instant::now() < deadline, "the sync of {name} hangs: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let out = env.run_bare(&["--log", "--all", "--lines", "10000"]);
    out.assert_exit(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (name, repo) in [("alpha", "acme-alpha"), ("beta", "acme-beta")] {
        let log = fs::read_to_string(log_path(&env, repo)).unwrap();
        let prefix = format!("[{name}] ");
        let shown: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        assert!(!shown.is_empty(), "{}", out.dump());
        assert_eq!(
            shown,
            log.lines().collect::<Vec<_>>(),
            "{name}'s log, in its order"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("[alpha] ") || l.starts_with("[beta] ")),
        "{}",
        out.dump()
    );
    let stamps: Vec<&str> = lines.iter().filter_map(|l| stamp(l)).collect();
    assert!(stamps.len() > 2, "{}", out.dump());
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "not in time order:\n{}",
        out.stdout
    );
}

/// `--log --all --follow` running; ended by its own PID on drop, pass or
/// fail.
struct Follower {
    child: Option<Child>,
    out: PathBuf,
}

impl Follower {
    fn start(env: &TestEnv, args: &[&str]) -> Follower {
        let out = env.root().join("follow.stdout");
        let child = env
            .bare_command(args)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn patina-forge");
        Follower {
            child: Some(child),
            out,
        }
    }

    fn printed(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn wait_for(&mut self, what: &str, cond: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond(&self.printed()) {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "--log --all --follow ended ({status}) while waiting for {what}; printed:\n{}",
                    self.printed()
                );
            }
            assert!(
                Instant::now() < deadline,
                "still waiting for {what}; printed:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("--log --all --follow did not end on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn follow_prints_what_any_log_gets_next() {
    let env = two_repositories();
    write_log(
        &env,
        "acme-alpha",
        &format!("{} a one\n{} a two\n{} a three\n", at(1), at(2), at(3)),
    );
    let mut follower = Follower::start(&env, &["--log", "--all", "--follow", "--lines", "2"]);
    let start = [
        format!("[alpha] {} a two", at(2)),
        format!("[alpha] {} a three", at(3)),
    ];
    follower.wait_for("the last two lines", |p| p.lines().count() >= 2);

    append_log(&env, "acme-alpha", &format!("{} a nine\n", at(9)));
    follower.wait_for("alpha's new line", |p| p.contains(" a nine"));
    // beta's log appears only now; a line comes whole, not as written.
    write_log(&env, "acme-beta", &format!("{} b ten\n", at(10)));
    follower.wait_for("beta's first line", |p| p.contains(" b ten"));
    append_log(&env, "acme-alpha", &format!("{} a elev", at(11)));
    std::thread::sleep(Duration::from_millis(500));
    append_log(&env, "acme-alpha", "en\n");
    append_log(&env, "all", &format!("{} all: twelve\n", at(12)));
    follower.wait_for("the last lines", |p| {
        p.contains("all: twelve") && p.contains("eleven")
    });

    let printed = follower.printed();
    assert_eq!(
        follower.stop(),
        Some(0),
        "SIGTERM ends the following cleanly"
    );
    let mut expected: Vec<String> = start.to_vec();
    expected.extend([
        format!("[alpha] {} a nine", at(9)),
        format!("[beta] {} b ten", at(10)),
        format!("[alpha] {} a eleven", at(11)),
        format!("[all] {} all: twelve", at(12)),
    ]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines, expected);
}
