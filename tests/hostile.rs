//! Hostile input, end to end: names that try to become paths (on the command
//! line, in `origin`'s URL, in `registry.yaml`), state files replaced by
//! symlinks, a database that cannot be written or stays locked, and answers
//! from the forge built to hurt (a 1 GiB body, JSON nested 10,000 deep,
//! numbers that overflow, absurd rate-limit headers, links and redirects to
//! another host). Each is refused or survived the documented way: a usage
//! error (2) or one `error:` line (1), nothing written where it should not
//! be, a transient failure that a later try settles, no crash.
//!
//! What other files test already, and is not repeated here: `bad_input.rs`
//! (five bad `--forge`/`--repo` values, unsupported remote URLs, a non-SQLite
//! file at the database path), `resolve.rs` (a 301 to another host with a
//! token), `resolve_faults.rs` (`Huge`, `Html`, `WrongTypes`, `Malformed` on
//! single requests), `targeting.rs` (registry paths that are fine).

mod drive;
mod testenv;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drive::Ran;
use fakeforge::{FakeForge, Fault, Item};
use serde_json::json;
use testenv::{FORGE, TestEnv};

const DELAY: &str = "5ms";
const PATIENCE: Duration = Duration::from_secs(60);
/// `PATINA_FORGE_TEST_RETRY_BASE` where a test needs a ref that failed for
/// now to be due by the next run (the default is 30 s): longer than the
/// moment between a failure and the run's next choice, shorter than what a
/// test wants to wait.
const RETRY_BASE: &str = "2s";

// ---- the world ---------------------------------------------------------------------

fn roomy() -> FakeForge {
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.add_repo(FORGE);
    forge
}

/// A project mentioning #3000, #2000 and #1000 (sparse: single requests;
/// #1000 the newest mention, asked first), the fake holding them,
/// discovered offline.
fn world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    let forge = roomy();
    for n in [3000, 2000, 1000] {
        forge.put(FORGE, Item::issue(n, &format!("Issue {n}")));
        env.commit(&format!("change (#{n})"));
    }
    run(&env, &forge, &["--offline"]).ok();
    (env, forge)
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), &forge.url(), &[], args)
}

fn run_with(env: &TestEnv, forge: &FakeForge, extra: &[(&str, &str)], args: &[&str]) -> Ran {
    drive::run_with(env, env.patina_home(), &forge.url(), extra, args)
}

fn count(env: &TestEnv, sql: &str) -> u64 {
    env.query(sql)[0][0].parse().unwrap()
}

fn pending(env: &TestEnv) -> u64 {
    count(
        env,
        &format!("SELECT count(*) FROM forge_refs WHERE repo = '{FORGE}' AND resolved IS NULL"),
    )
}

fn short(s: &str) -> String {
    let s = format!("{s:?}");
    if s.len() > 60 {
        format!("{}…({} bytes)", &s[..60], s.len())
    } else {
        s
    }
}

// ---- 1. names that try to become paths -----------------------------------------------

/// Values of `--forge` that must never reach a file name. (NUL cannot reach
/// the binary at all: argv and the environment are C strings.)
fn hostile_forge_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "..",
        ".",
        "acme/..",
        "../acme",
        "acme/.",
        "../../../../etc/passwd",
        "acme/widget/../../x",
        "acme/a\nb",
        "acme/a\rb",
        "acme/a\tb",
        "acme/a b",
        "acme\\widget/x",
        "acme/%2e%2e",
        "acme/ünïcode",
        "acme/a:b",
        "acme/a*b",
        "acme/$(id)",
        "acme/`id`",
        "acme/",
        "/widget",
        "acme//widget",
        "acme/.git/x",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("acme/{}", "x".repeat(101)));
    v.push(format!("{}/widget", "o".repeat(101)));
    v.push(format!("acme/{}", "x".repeat(100_000)));
    v
}

#[test]
fn hostile_forge_and_repo_values_are_usage_errors_that_touch_nothing() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    let cached = env.patina_home().join("cache/repos");
    fs::create_dir_all(&cached).unwrap();
    let mut tried = 0;
    for value in hostile_forge_values() {
        for args in [
            vec!["--forge", value.as_str()],
            vec!["--forge", value.as_str(), "--limit", "1"],
            vec!["--repo", value.as_str()],
            vec!["--repo", value.as_str(), "--sync"],
        ] {
            // `acme/…` is a fine --repo value only in its first part: the
            // slash makes every one of these a bad name anyway.
            let before = env.snapshot();
            let out = env.run(&args);
            out.assert_usage_error();
            env.assert_unchanged(&before);
            tried += 1;
        }
    }
    for value in ["..", ".", "../x", "x\ny", "x/y", "x y", "ünï"] {
        let before = env.snapshot();
        env.run(["--repo", value]).assert_usage_error();
        env.assert_unchanged(&before);
        tried += 1;
    }
    eprintln!("hostile --forge/--repo values: {tried} runs");
}

/// GitHub's limits are 39 and 100 characters; the check allows 100 for
/// both. The longest names make the longest state file names
/// (`forge-sync-<100>-<100>.pid`, 216 bytes): they must still work.
#[test]
fn the_longest_allowed_names_work_end_to_end() {
    let env = TestEnv::new();
    let owner = "o".repeat(100);
    let name = "r".repeat(100);
    let repo = format!("{owner}/{name}");
    let forge = roomy();
    forge.put(&repo, Item::issue(1, "Long"));
    env.commit("x (#1)");
    run(&env, &forge, &["--forge", &repo, "--offline"]).ok();
    let out = run(
        &env,
        &forge,
        &["--forge", &repo, "--limit", "1", "--delay", DELAY],
    );
    out.ok();
    assert_eq!(out.summary().0, 1, "{}", out.dump());
    let pid = env
        .patina_home()
        .join(format!("run/forge-sync-{owner}-{name}.pid"));
    assert!(pid.exists(), "{}", pid.display());
}

#[test]
fn hostile_remote_urls_are_refused_with_one_line_and_touch_nothing() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    let long = "x".repeat(10_000);
    let urls = [
        "https://github.com/../../etc/passwd".to_string(),
        "https://github.com/acme/..".to_string(),
        "https://github.com/../widget".to_string(),
        "https://github.com/acme/.".to_string(),
        "https://github.com/%2e%2e/%2e%2e".to_string(),
        "https://github.com/acme/%2e%2e".to_string(),
        "git@github.com:acme/../../x".to_string(),
        "git@github.com:../widget.git".to_string(),
        "ssh://git@github.com/acme/../x.git".to_string(),
        "https://github.com/acme/wid\nget".to_string(),
        "https://github.com/acme/wid get".to_string(),
        "https://github.com/acme/widget?x=../../y".to_string(),
        "https://github.com/acme/widget#../../y".to_string(),
        "https://github.com/acme\\..\\x/y".to_string(),
        "https://gith ub.com/acme/widget".to_string(),
        "https://../acme/widget".to_string(),
        "https://./acme/widget".to_string(),
        "git@..:acme/widget.git".to_string(),
        "ssh://git@-oops/acme/widget".to_string(),
        "https://a..b/acme/widget".to_string(),
        "https://github.com/ünï/widget".to_string(),
        format!("https://github.com/acme/{long}"),
        format!("https://github.com/{long}/widget"),
        format!("https://{long}.com/acme/widget"),
    ];
    for url in &urls {
        env.set_origin(url);
        let before = env.snapshot();
        let out = env.run(Vec::<&str>::new());
        out.assert_error().assert_stderr_contains("--forge");
        env.assert_unchanged(&before);
    }
    eprintln!("hostile origin URLs: {}", urls.len());
}

#[test]
fn hostile_registry_entries_are_refused_with_one_line_and_touch_nothing() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    let registry = env.patina_home().join("registry.yaml");
    let long = "x".repeat(5_000);
    // `github:` values (YAML double-quoted, so escapes reach the parser).
    let values = [
        r"../../etc/passwd",
        r"acme/..",
        r"acme/../x",
        r"acme/wid\0get",
        r"acme/wid\nget",
        r"acme/wid get",
        r"acme/widget/extra",
        r"acme",
        r"",
        r"/acme/widget",
    ];
    let mut tried = 0;
    for value in values
        .iter()
        .map(|s| s.to_string())
        .chain([format!("acme/{long}")])
    {
        fs::write(
            &registry,
            format!(
                "repos:\n  widget:\n    path: {}\n    github: \"{value}\"\n",
                env.repo().display()
            ),
        )
        .unwrap();
        let before = env.snapshot();
        let out = env.run(["--repo", "widget"]);
        out.assert_error()
            .assert_stderr_contains("registry.yaml names the forge repository");
        env.assert_unchanged(&before);
        tried += 1;
    }
    // A path that is no repository, or nothing at all.
    for path in ["/", "/nonexistent/../../etc", "\"\"", &format!("/{long}")] {
        fs::write(
            &registry,
            format!("repos:\n  widget:\n    path: {path}\n    github: {FORGE}\n"),
        )
        .unwrap();
        let before = env.snapshot();
        env.run(["--repo", "widget"]).assert_error();
        env.assert_unchanged(&before);
        tried += 1;
    }
    // Not YAML at all, or YAML nested 10,000 deep: an error, not a crash.
    for text in [
        "repos: [unclosed\n".to_string(),
        format!("repos: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        format!(
            "repos:\n  widget: {}\n",
            "{a: ".repeat(10_000) + &"}".repeat(10_000)
        ),
        "\u{0}\u{1}\u{2}binary".to_string(),
    ] {
        fs::write(&registry, &text).unwrap();
        let before = env.snapshot();
        let out = env.run(["--repo", "widget"]);
        out.assert_error();
        env.assert_unchanged(&before);
        tried += 1;
    }
    eprintln!("hostile registry entries: {tried}");
}

/// The registry is the user's own file: a path outside
/// `$PATINA_HOME/cache/repos` is taken as registered (patina registers
/// repositories anywhere), and only that repository's `.patina/` is written.
#[test]
fn a_registry_path_outside_the_cache_writes_only_inside_that_repository() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let elsewhere = env.root().join("elsewhere");
    env.git_in(
        env.root(),
        &[
            "clone",
            "-q",
            env.repo().to_str().unwrap(),
            elsewhere.to_str().unwrap(),
        ],
    );
    env.set_origin_in(&elsewhere, testenv::ORIGIN);
    fs::write(
        env.patina_home().join("registry.yaml"),
        format!(
            "repos:\n  widget:\n    path: {}/../elsewhere\n    github: {FORGE}\n",
            env.repo().display()
        ),
    )
    .unwrap();
    let before = files(env.root());
    env.run(["--repo", "widget", "--offline"]).assert_success();
    let new: Vec<PathBuf> = files(env.root())
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new.is_empty());
    let inside = elsewhere.join(".patina");
    assert!(
        new.iter().all(|p| p.starts_with(&inside)),
        "written outside {}: {new:#?}",
        inside.display()
    );
    assert!(testenv::db_under(&elsewhere).is_file());
}

/// Every path under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

// ---- 2. state files replaced by symlinks -----------------------------------------------

const PRECIOUS: &str = "precious: must stay exactly as it is\n";

/// A file outside `$PATINA_HOME` that a symlink in its place points at.
fn victim(env: &TestEnv, name: &str) -> PathBuf {
    let path = env.root().join(name);
    fs::write(&path, PRECIOUS).unwrap();
    path
}

fn assert_victim_untouched(path: &Path, link: &Path) {
    assert_eq!(
        fs::read_to_string(path).unwrap(),
        PRECIOUS,
        "{} was written through {}",
        path.display(),
        link.display()
    );
    assert!(
        fs::symlink_metadata(link).unwrap().file_type().is_symlink(),
        "{} was replaced",
        link.display()
    );
}

fn private_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.patina_home().join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn a_pid_file_replaced_by_a_symlink_is_never_followed() {
    let (env, forge) = world();
    let target = victim(&env, "victim-pid");
    let link = private_dir(&env, "run").join("forge-sync-acme-widget.pid");
    symlink(&target, &link).unwrap();
    for args in [
        &["--limit", "1", "--delay", DELAY][..],
        &["--resume", "--delay", DELAY],
        &["--sync", "--delay", DELAY],
    ] {
        let out = run(&env, &forge, args);
        let line = out.fails_with_one_error_line().to_owned();
        assert!(line.contains("PID file"), "{}", out.dump());
        assert_victim_untouched(&target, &link);
    }
    // Readers refuse it too, and write nothing.
    for args in [&["--status"][..], &["--status", "--json"], &["--stop"]] {
        let out = run(&env, &forge, args);
        out.fails_with_one_error_line();
        assert_victim_untouched(&target, &link);
    }
    assert_eq!(pending(&env), 3, "a run went ahead without its lock");
    assert!(forge.requests().is_empty());

    // A dangling symlink: its target is not created either.
    let absent = env.root().join("absent-target");
    fs::remove_file(&link).unwrap();
    symlink(&absent, &link).unwrap();
    run(&env, &forge, &["--limit", "1", "--delay", DELAY]).fails_with_one_error_line();
    assert!(
        !absent.exists(),
        "the dangling symlink's target was created"
    );
}

#[test]
fn a_log_replaced_by_a_symlink_is_never_written_nor_truncated() {
    let (env, forge) = world();
    let target = victim(&env, "victim-log");
    let link = private_dir(&env, "logs").join("forge-sync-acme-widget.log");
    symlink(&target, &link).unwrap();
    let out = run(&env, &forge, &["--sync", "--delay", DELAY]);
    out.fails_with_one_error_line();
    assert!(
        !out.stdout.contains("Syncing in background"),
        "{}",
        out.dump()
    );
    assert_victim_untouched(&target, &link);
    assert_eq!(pending(&env), 3);
    assert!(forge.requests().is_empty());
}

#[test]
fn log_refuses_a_symlinked_log() {
    let (env, forge) = world();
    let target = victim(&env, "victim-log");
    let link = private_dir(&env, "logs").join("forge-sync-acme-widget.log");
    symlink(&target, &link).unwrap();
    let out = run(&env, &forge, &["--log"]);
    assert!(
        !out.stdout.contains("precious"),
        "--log printed the symlink's target\n{}",
        out.dump()
    );
    out.fails_with_one_error_line();
}

#[test]
fn a_pace_ledger_replaced_by_a_symlink_is_never_followed() {
    let (env, forge) = world();
    let target = victim(&env, "victim-ledger");
    let port = forge.url().rsplit(':').next().unwrap().to_string();
    let link = private_dir(&env, "run").join(format!("pace-127.0.0.1_{port}.json"));
    symlink(&target, &link).unwrap();
    for args in [&["--limit", "1", "--delay", DELAY][..], &[]] {
        let out = run(&env, &forge, args);
        assert_victim_untouched(&target, &link);
        if args.is_empty() {
            // Discovery keeps the commit refs and says why the range is missing.
            out.ok();
            assert!(out.stderr.contains("pace ledger"), "{}", out.dump());
        } else {
            let line = out.fails_with_one_error_line().to_owned();
            assert!(line.contains("pace ledger"), "{}", out.dump());
        }
    }
    assert!(
        forge.requests().is_empty(),
        "a request left without its slot"
    );
}

#[test]
fn state_folders_replaced_by_symlinks_are_refused() {
    let (env, forge) = world();
    for dir in ["run", "logs"] {
        let elsewhere = env.root().join(format!("elsewhere-{dir}"));
        fs::create_dir(&elsewhere).unwrap();
        let link = env.patina_home().join(dir);
        symlink(&elsewhere, &link).unwrap();
        let args: &[&str] = if dir == "run" {
            &["--limit", "1", "--delay", DELAY]
        } else {
            &["--sync", "--delay", DELAY]
        };
        let line = run(&env, &forge, args)
            .fails_with_one_error_line()
            .to_owned();
        assert!(line.contains("symlink"), "{line}");
        assert_eq!(
            fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "something was created in the symlinked {dir}/"
        );
        fs::remove_file(&link).unwrap();
    }
    assert_eq!(pending(&env), 3);
}

// ---- 3. the database: read-only, locked -------------------------------------------------

/// Runs the binary as `nobody` when the test runs as root (root writes
/// read-only files anyway), after handing the world to it.
fn run_unprivileged(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    let mut cmd = drive::command(env, env.patina_home(), &forge.url(), &[], args);
    if is_root() {
        // SAFETY: setgroups/setgid/setuid are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                use nix::libc;
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(NOBODY) != 0
                    || libc::setuid(NOBODY) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("run patina-forge");
    Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        what: drive::describe(args),
    }
}

const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    // SAFETY: no arguments, no failure.
    unsafe { nix::libc::geteuid() == 0 }
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

fn file_bytes(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

#[test]
fn a_read_only_database_fails_with_one_line_and_is_left_as_it_was() {
    let (env, forge) = world();
    // Settle one ref, so the database holds a run and an item.
    run(&env, &forge, &["--limit", "1", "--delay", DELAY]).ok();
    // A new commit, so that discovery has something to write.
    env.commit("later (#4000)");
    // Fold the WAL in: the file alone is the database.
    env.execute("PRAGMA wal_checkpoint(TRUNCATE)");
    if is_root() {
        chown_tree(env.root(), NOBODY);
    }
    let db = env.db_path();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o444)).unwrap();
    let before = file_bytes(&db);
    let mut tried = 0;
    for args in [
        &["--limit", "1", "--delay", DELAY][..],
        &["--resume", "--delay", DELAY],
        &["--offline"],
    ] {
        let out = run_unprivileged(&env, &forge, args);
        let line = out.fails_with_one_error_line().to_owned();
        assert!(
            line.contains(&db.display().to_string()) || line.contains("read"),
            "the error does not say which database or why\n{}",
            out.dump()
        );
        assert_eq!(file_bytes(&db), before, "{} changed the database", out.what);
        tried += 1;
    }
    // Status only reads: it works on a read-only database.
    let out = run_unprivileged(&env, &forge, &["--status", "--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (v["resolved"].clone(), v["pending"].clone()),
        (json!(1), json!(2)),
        "{v}"
    );
    assert_eq!(file_bytes(&db), before);
    // Writable again (SQLite gave its -wal and -shm the database's mode):
    // nothing was lost, the rest drains.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        if Path::new(&p).exists() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let out = run_unprivileged(&env, &forge, &["--resume", "--delay", DELAY]);
    out.ok();
    assert_eq!(pending(&env), 0, "{}", out.dump());
    eprintln!("read-only database: {tried} modes refused");
}

#[test]
fn a_database_locked_for_long_fails_with_one_line_and_loses_nothing() {
    let (env, forge) = world();
    run(&env, &forge, &["--limit", "1", "--delay", DELAY]).ok();
    let refs_before = env.refs();
    // Another process (here: this one) holds the write lock until the test
    // lets it go, after every run below has ended: longer than the client's
    // 10 s busy timeout, however long the runs take to start.
    let db = env.db_path();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute(
            "INSERT INTO scrape_meta (key, value) VALUES ('test.holder', 'x')",
            [],
        )
        .unwrap();
        locked_tx.send(()).unwrap();
        // Released by the test, or by its end (a failed assertion drops the
        // sender).
        let _ = release_rx.recv();
        tx.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    // Status reads while the lock is held: the lock is not released before
    // the writers below have ended, so a status that waited for it would
    // fail after its busy timeout instead of answering.
    let status = run(&env, &forge, &["--status", "--json"]);
    status.ok();
    // Writers give up after their busy timeout, each with one line.
    let started = Instant::now();
    let runs: Vec<_> = [vec!["--limit", "1", "--delay", DELAY], vec!["--offline"]]
        .into_iter()
        .enumerate()
        .map(|(i, args)| {
            let url = forge.url();
            let cmd_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let cmd = drive::command(
                &env,
                env.patina_home(),
                &url,
                &[],
                &cmd_args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let name = format!("locked-{i}");
            drive::Background::start(&env, cmd, drive::describe(&args), &name)
        })
        .collect();
    for bg in runs {
        // The lock is never released while they run: each ends by giving up.
        let ran = bg.wait(PATIENCE);
        let took = started.elapsed();
        let line = ran.fails_with_one_error_line().to_owned();
        assert!(line.contains("locked"), "{}", ran.dump());
        assert!(
            line.contains("run the same command again"),
            "{}",
            ran.dump()
        );
        // Not at once: after waiting out the busy timeout (a lower bound;
        // that it gave up at all, with the lock still held, is the rest).
        assert!(
            took >= Duration::from_secs(9),
            "{} gave up after {took:?}, before its 10 s busy timeout",
            ran.what
        );
    }
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(env.refs(), refs_before, "a locked run changed the backlog");
    assert!(forge.requests().len() <= 2, "{:?}", forge.requests());
    let out = run(&env, &forge, &["--resume", "--delay", DELAY]);
    out.ok();
    assert_eq!(pending(&env), 0);
}

// ---- 4. answers built to hurt ---------------------------------------------------------

/// The largest resident set of any child waited for so far (KiB).
fn children_max_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<nix::libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { nix::libc::getrusage(nix::libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call.
    unsafe { usage.assume_init() }.ru_maxrss
}

fn raw(status: u16, body: impl Into<Vec<u8>>) -> Fault {
    Fault::Raw {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn nested(depth: usize) -> Vec<String> {
    vec![
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        // Deep inside an otherwise good issue.
        format!(
            "{{\"number\":1000,\"title\":\"t\",\"state\":\"open\",\"created_at\":\"2020-01-01T00:00:00Z\",\
             \"updated_at\":\"2020-01-01T00:00:00Z\",\"html_url\":\"https://github.com/acme/widget/issues/1000\",\
             \"labels\":[{}{}]}}",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
    ]
}

/// An issue whose `number` is `number` (raw JSON text).
fn issue_with_number(number: &str) -> String {
    format!(
        "{{\"number\":{number},\"title\":\"t\",\"state\":\"open\",\"created_at\":\"2020-01-01T00:00:00Z\",\
         \"updated_at\":\"2020-01-01T00:00:00Z\",\"html_url\":\"https://github.com/acme/widget/issues/1000\"}}"
    )
}

fn overflowing_bodies() -> Vec<String> {
    [
        "1e400",
        "-1e400",
        "99999999999999999999",
        "18446744073709551616",
        "-1",
        "0",
        "2147483648",
        "4294967297",
        "1.5",
        "1e3",
        "\"1000\"",
        "null",
    ]
    .iter()
    .map(|n| issue_with_number(n))
    .chain([
        "{\"number\":1000,\"title\":\"t\",\"state\":\"open\",\"created_at\":\"2020-01-01T00:00:00Z\",\
         \"updated_at\":\"2020-01-01T00:00:00Z\",\"html_url\":\"h\",\"comments\":1e400}"
            .to_string(),
    ])
    .collect()
}

/// Each body answers the request for #1000 once (a 200); the client must
/// count it a transient failure (`(will retry)`), store nothing from it,
/// never crash, and settle #1000 once the forge answers properly. One world
/// per body, all at once: each failure costs the client's 2 s backoff.
fn bodies_are_transient(bodies: &[String]) -> usize {
    std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| scope.spawn(move || body_is_transient(body)))
            .collect();
        for h in handles {
            h.join().expect("a body's check panicked");
        }
    });
    bodies.len()
}

fn body_is_transient(body: &str) {
    let (env, forge) = world();
    forge.push_fault_on("/issues/1000", raw(200, body.as_bytes()));
    // #1000 first; the limit is reached with the next one, #2000, chosen
    // at once while #1000's retry is still RETRY_BASE away: #1000 is asked
    // once in this run, and due (by the client's own schedule, shortened)
    // when the next run starts.
    let out = run_with(
        &env,
        &forge,
        &[("PATINA_FORGE_TEST_RETRY_BASE", RETRY_BASE)],
        &["--limit", "1", "--delay", DELAY],
    );
    out.ok();
    assert!(
        out.stderr.contains("#1000: malformed response body"),
        "body {} was not a transient failure\n{}",
        short(body),
        out.dump()
    );
    let row = env.query(&format!(
        "SELECT attempts, error FROM forge_refs WHERE repo = '{FORGE}' AND ref_number = 1000"
    ));
    assert_eq!(
        row,
        vec![vec!["1".to_string(), "NULL".to_string()]],
        "{}",
        short(body)
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM forge_issues WHERE number NOT IN (2000, 3000)"
        ),
        0,
        "something was stored from {}",
        short(body)
    );
    run(&env, &forge, &["--resume", "--delay", DELAY]).ok();
    assert_eq!(pending(&env), 0, "{}", short(body));
}

/// An integer too large for any type in a field the client does not read is
/// skipped like the rest of that field: the item is good. (A float out of
/// range is refused wherever it is: see `overflowing_bodies`.)
#[test]
fn a_huge_integer_in_an_ignored_field_is_harmless() {
    let (env, forge) = world();
    let body = "{\"number\":1000,\"title\":\"t\",\"state\":\"open\",\"created_at\":\"2020-01-01T00:00:00Z\",\
        \"updated_at\":\"2020-01-01T00:00:00Z\",\"html_url\":\"h\",\"x_unread\":99999999999999999999999,\
        \"user\":{\"login\":\"x\",\"x_unread\":99999999999999999999999}}";
    forge.push_fault_on("/issues/1000", raw(200, body.as_bytes()));
    let out = run(&env, &forge, &["--limit", "3", "--delay", DELAY]);
    out.ok();
    assert!(!out.stderr.contains("will retry"), "{}", out.dump());
    assert_eq!(pending(&env), 0);
    assert_eq!(
        env.query("SELECT author FROM forge_issues WHERE number = 1000"),
        vec![vec!["x".to_string()]]
    );
}

#[test]
fn json_nested_10000_deep_is_a_transient_failure_not_a_crash() {
    let n = bodies_are_transient(&nested(10_000));
    eprintln!("nested bodies: {n}");
}

#[test]
fn numbers_that_overflow_are_transient_failures_not_crashes() {
    let n = bodies_are_transient(&overflowing_bodies());
    eprintln!("overflowing bodies: {n}");
}

/// A listing page (and discovery's one request) answered with hostile
/// bodies: the listing is asked again, discovery keeps the commit refs.
#[test]
fn hostile_listing_and_discovery_answers_are_survived() {
    let mut bodies = nested(10_000);
    bodies.push(format!("[{}]", issue_with_number("1e400")));
    bodies.push(format!("[{}]", issue_with_number("99999999999999999999")));
    std::thread::scope(|scope| {
        for body in &bodies {
            scope.spawn(move || listing_body_is_survived(body));
        }
    });
}

fn listing_body_is_survived(body: &str) {
    {
        let env = TestEnv::with_origin();
        let forge = roomy();
        for n in 1..=150 {
            forge.put(FORGE, Item::issue(n, "Dense"));
        }
        env.commit("x (#1)");
        // Discovery's request gets the body: the range is not added, the
        // commit ref is kept.
        forge.push_fault_on("per_page=1", raw(200, body.as_bytes()));
        let out = run(&env, &forge, &[]);
        out.ok();
        assert!(
            out.stderr.contains("note: the number range"),
            "{}",
            out.dump()
        );
        assert_eq!(pending(&env), 1);
        run(&env, &forge, &[]).ok();
        assert_eq!(pending(&env), 150);
        // The first listing page gets it: asked again, then all settle.
        forge.push_fault_on("per_page=100", raw(200, body.as_bytes()));
        let out = run(&env, &forge, &["--resume", "--delay", DELAY]);
        out.ok();
        assert!(out.stderr.contains("listing: malformed"), "{}", out.dump());
        assert_eq!(pending(&env), 0, "{}", short(body));
    }
}

#[test]
fn a_one_gib_answer_is_refused_everywhere_without_reading_it() {
    let rss_before = children_max_rss_kib();
    let env = TestEnv::with_origin();
    let forge = roomy();
    for n in 1..=150 {
        forge.put(FORGE, Item::issue(n, "Dense"));
    }
    env.commit("x (#1)");
    // Discovery.
    forge.push_fault_on("per_page=1", Fault::Huge);
    let out = run(&env, &forge, &[]);
    out.ok();
    assert!(
        out.stderr.contains("1073741824-byte body"),
        "{}",
        out.dump()
    );
    run(&env, &forge, &[]).ok();
    // A listing page, then the refresh's first page.
    forge.push_fault_on("sort=created&direction=desc&per_page=100", Fault::Huge);
    forge.push_fault_on("sort=updated", Fault::Huge);
    let out = run(&env, &forge, &["--resume", "--delay", DELAY]);
    out.ok();
    // Refused on its header, before a byte of the body is read: "announced"
    // is the client's word for the declared length (a body read past the
    // cap is "the body is over the …-byte cap").
    assert_eq!(
        out.stderr
            .matches("announced a 1073741824-byte body")
            .count(),
        2,
        "{}",
        out.dump()
    );
    assert_eq!(pending(&env), 0);
    let rss = children_max_rss_kib();
    assert!(
        rss < 128 * 1024,
        "a child's resident set reached {rss} KiB (before: {rss_before} KiB)"
    );
}

// ---- 5. absurd rate-limit headers ------------------------------------------------------

fn with_headers(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Raw {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

const SECONDARY_BODY: &str = r#"{"message":"You have exceeded a secondary rate limit."}"#;

/// The line a run logs when it starts a wait worth mentioning (over 3 s)
/// before its next request: `… waiting 1m: secondary rate limit`.
const LONG_WAIT: &str = " waiting ";

/// Runs `--limit 3 --delay <delay>` with `fault` on #1000's request until it
/// either ends by itself or announces a long wait before its next request
/// (then it is stopped, as a wait it must keep may be endless): exit 0, no
/// panic, and whether it was waiting.
fn survives(what: &str, fault: Option<Fault>, delay: &str) -> bool {
    let (env, forge) = world();
    if let Some(fault) = fault {
        forge.push_fault_on("/issues/1000", fault);
    }
    let all = ["--limit", "3", "--delay", delay];
    let cmd = drive::command(&env, env.patina_home(), &forge.url(), &[], &all);
    let mut bg = drive::Background::start(&env, cmd, what.to_string(), "absurd");
    let mut waiting = false;
    drive::wait_until(&format!("{what}: an end or a long wait"), PATIENCE, || {
        waiting = bg.stderr_so_far().contains(LONG_WAIT);
        waiting || !bg.running()
    });
    if waiting {
        bg.signal("TERM");
    }
    let out = bg.wait(PATIENCE);
    assert_eq!(out.code, Some(0), "{what}\n{}", out.dump());
    assert!(!out.stderr.contains("panicked"), "{what}\n{}", out.dump());
    waiting
}

/// `retry-after` and `x-ratelimit-remaining` of u64::MAX, garbage in them,
/// and a `--delay` of centuries: no crash; an absurd wait is kept (the run
/// announces it and is still waiting when stopped), never wrapped around
/// into no wait; absurd budgets make no wait (the run ends by itself).
#[test]
fn absurd_waits_never_crash_and_are_kept() {
    let max = u64::MAX.to_string();
    let cases: Vec<(&str, Fault, bool)> = vec![
        (
            "retry-after u64::MAX",
            with_headers(403, &[("retry-after", &max)], SECONDARY_BODY),
            true,
        ),
        (
            "retry-after 1e400 (not a number: a secondary limit of a minute)",
            with_headers(403, &[("retry-after", "1e400")], SECONDARY_BODY),
            true,
        ),
        (
            "x-ratelimit-remaining u64::MAX",
            with_headers(
                200,
                &[("x-ratelimit-remaining", &max)],
                &issue_with_number("1000"),
            ),
            false,
        ),
        (
            "x-ratelimit-remaining -5",
            with_headers(
                200,
                &[("x-ratelimit-remaining", "-5")],
                &issue_with_number("1000"),
            ),
            false,
        ),
    ];
    for (what, fault, waits) in cases {
        assert_eq!(survives(what, Some(fault), DELAY), waits, "{what}");
    }
    // More milliseconds than u64 holds.
    assert!(survives("--delay 600000000y", None, "600000000y"));
}

/// A reset time too large for the clock: no crash.
#[test]
fn a_reset_beyond_the_clock_never_crashes_the_client() {
    let max = u64::MAX.to_string();
    let body = issue_with_number("1000");
    survives(
        "x-ratelimit-reset u64::MAX",
        Some(with_headers(200, &[("x-ratelimit-reset", &max)], &body)),
        DELAY,
    );
    survives(
        "primary limit until u64::MAX",
        Some(with_headers(
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &max)],
            r#"{"message":"API rate limit exceeded"}"#,
        )),
        DELAY,
    );
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The one pace ledger of the run (one API host), as text; empty before it exists.
fn pace_ledger(env: &TestEnv) -> String {
    let Ok(dir) = fs::read_dir(env.patina_home().join("run")) else {
        return String::new();
    };
    dir.flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("pace-"))
        .and_then(|e| fs::read_to_string(e.path()).ok())
        .unwrap_or_default()
}

/// A reset in the year 10,000 fits the clock but no calendar `--status`
/// prints, and would hold the shared ledger for millennia: what a server
/// says of its reset is taken up to an hour ahead, GitHub's longest window.
#[test]
fn a_reset_ten_thousand_years_ahead_is_taken_as_an_hour() {
    let year_10000 = "253402300800";
    let (env, forge) = world();
    forge.push_fault_on(
        "/issues/1000",
        with_headers(
            200,
            &[
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-reset", year_10000),
            ],
            &issue_with_number("1000"),
        ),
    );
    run(&env, &forge, &["--limit", "1", "--delay", DELAY]).ok();
    let in_an_hour = now_secs() + 3600;
    let out = run(&env, &forge, &["--status", "--json"]);
    out.ok();
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let reset = status["rate_limit"]["reset"].as_str().unwrap_or_default();
    let reset = humantime::parse_rfc3339(reset)
        .unwrap_or_else(|e| panic!("reset {reset:?}: {e}\n{}", out.dump()));
    let reset = reset.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(
        reset <= in_an_hour + 5,
        "reset {reset}, now + 1 h {in_an_hour}"
    );
    run(&env, &forge, &["--status"]).ok();

    // A primary limit until then holds every process's ledger an hour at most.
    forge.push_fault_on(
        "/issues/2000",
        with_headers(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", year_10000),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        ),
    );
    let cmd = drive::command(
        &env,
        env.patina_home(),
        &forge.url(),
        &[],
        &["--limit", "1", "--delay", DELAY],
    );
    let mut bg = drive::Background::start(&env, cmd, "primary limit".into(), "year-10000");
    let held_until = loop {
        let text = pace_ledger(&env);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if value["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rate limit"))
        {
            break value["next_at_ms"].as_u64().unwrap() / 1000;
        }
        assert!(bg.running(), "the run ended without holding the ledger");
        std::thread::sleep(Duration::from_millis(20));
    };
    bg.signal("TERM");
    bg.wait(PATIENCE);
    assert!(
        held_until <= now_secs() + 3600 + 5,
        "held until {held_until}: beyond an hour"
    );
}

// ---- 6. links and redirects to another host ------------------------------------------

const TOKEN: &str = "ghp_hostileTESTtoken0000000000000000";

/// A fake that wants `TOKEN` and serves REST only (the point here is REST's
/// links and redirects), and the URL of its other host, 127.0.0.2.
fn guarded_forge() -> (FakeForge, String) {
    let forge = roomy();
    forge.disable_graphql();
    forge.require_token(TOKEN);
    let off = forge.off_host_url().expect(
        "127.0.0.2 must be bindable: the fake's second host listens there \
         (127.0.0.0/8 is loopback on Linux)",
    );
    (forge, off)
}

fn assert_nothing_off_host(forge: &FakeForge, out: &Ran) {
    let log = forge.requests();
    let off_host: Vec<_> = log.iter().filter(|r| r.off_host).collect();
    assert!(
        off_host.is_empty(),
        "followed to another host: {off_host:#?}"
    );
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));
}

/// A listing page whose `Link: rel="next"` points at another host: its
/// items are kept, the next page is not asked there, the rest is asked one
/// by one on the API's own host.
#[test]
fn a_listing_link_to_another_host_is_never_followed_with_the_token() {
    let (forge, off) = guarded_forge();
    let env = TestEnv::with_origin();
    for n in 1..=150 {
        forge.put(FORGE, Item::issue(n, "Dense"));
    }
    env.commit("x (#1)");
    let token = [("GITHUB_TOKEN", TOKEN)];
    run_with(&env, &forge, &token, &[]).ok();
    assert_eq!(pending(&env), 150);
    let page: Vec<String> = (51..=150)
        .rev()
        .map(|n| issue_with_number(&n.to_string()))
        .collect();
    forge.push_fault_on(
        "sort=created&direction=desc&per_page=100",
        with_headers(
            200,
            &[(
                "link",
                &format!("<{off}/repositories/1/issues?state=all&page=2>; rel=\"next\""),
            )],
            &format!("[{}]", page.join(",")),
        ),
    );
    let out = run_with(&env, &forge, &token, &["--limit", "150", "--delay", DELAY]);
    out.ok();
    assert_nothing_off_host(&forge, &out);
    assert!(
        out.stderr.contains("on another host: not followed"),
        "{}",
        out.dump()
    );
    assert_eq!(pending(&env), 0, "{}", out.dump());
}

/// 301s whose `Location` leads elsewhere (another host, credentials, another
/// port or scheme, a file, a relative path) are not followed: the ref stays
/// pending with its error, not failed. A healthy ref follows each, so that
/// no five failures come in a row (the run would give up).
#[test]
fn redirects_elsewhere_are_never_followed_with_the_token() {
    let (forge, off) = guarded_forge();
    let env = TestEnv::with_origin();
    let port: u16 = forge.url().rsplit(':').next().unwrap().parse().unwrap();
    let numbers = [5000, 6000, 7000, 8000, 9000, 9100];
    for n in numbers {
        forge.put(FORGE, Item::issue(n, "Redirected"));
        forge.put(FORGE, Item::issue(n + 50, "Healthy"));
        env.commit(&format!("x (#{})", n + 50));
        env.commit(&format!("x (#{n})"));
    }
    let token = [("GITHUB_TOKEN", TOKEN)];
    run_with(&env, &forge, &token, &["--offline"]).ok();
    let locations = [
        format!("{off}/repositories/1/issues/1"),
        format!("http://user:pass@127.0.0.2:{port}/x"),
        format!(
            "http://127.0.0.1:{}/x",
            if port == 65_535 { 1 } else { port + 1 }
        ),
        format!("https://127.0.0.1:{port}/x"),
        "file:///etc/passwd".to_string(),
        "/repositories/1/issues/1".to_string(),
    ];
    for (n, location) in numbers.iter().zip(&locations) {
        forge.push_fault_on(
            &format!("/issues/{n}"),
            with_headers(301, &[("location", location)], "{}"),
        );
    }
    let out = run_with(&env, &forge, &token, &["--limit", "6", "--delay", DELAY]);
    out.ok();
    assert_nothing_off_host(&forge, &out);
    let paths: Vec<String> = forge
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p != "/graphql")
        .collect();
    assert_eq!(
        paths,
        numbers
            .iter()
            .rev()
            .flat_map(|n| [*n, n + 50])
            .map(|n| format!("/repos/{FORGE}/issues/{n}"))
            .collect::<Vec<_>>(),
        "the twelve requests, no redirect followed"
    );
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) FROM forge_refs WHERE repo = '{FORGE}' AND ref_number % 100 = 0 \
                 AND resolved IS NULL AND error IS NULL AND attempts = 1 AND last_error IS NOT NULL"
            )
        ),
        6,
        "{}",
        out.dump()
    );
}

/// A process the test started, ended by its PID when the test ends.
struct Child(std::process::Child);

impl Child {
    fn start(program: &str, args: &[&str]) -> Child {
        Child(
            std::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {program}: {e}")),
        )
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--stop` where the lock is held by something that is not our sync and the
/// PID file says a number it was never meant to: `0` (which `kill` reads as
/// the whole process group) or a live process that does not hold the lock.
/// Nothing is signalled; the error says why and how to find the holder.
#[test]
fn stop_signals_only_the_process_that_holds_the_lock() {
    let env = TestEnv::with_origin();
    let run_dir = private_dir(&env, "run");
    let pid_file = run_dir.join("forge-sync-acme-widget.pid");
    fs::write(&pid_file, "").unwrap();
    // The lock's holder: flock(1) keeps the file open and locked.
    let mut holder = Child::start(
        "flock",
        &["--exclusive", pid_file.to_str().unwrap(), "sleep", "600"],
    );
    let mut bystander = Child::start("sleep", &["600"]);
    while fs::File::open(&pid_file).unwrap().try_lock_shared().is_ok() {
        assert!(holder.alive(), "flock ended before it took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    for written in ["0".to_owned(), bystander.0.id().to_string()] {
        fs::write(&pid_file, format!("{written}\n")).unwrap();
        // In a process group of its own: were `kill(0)` sent, it would
        // reach this run alone, not the test.
        let out = env.command(["--stop"]).process_group(0).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{written}: {stderr}");
        assert!(
            stderr.contains("not signalling it") && stderr.contains("fuser"),
            "{written}: {stderr}"
        );
        assert!(holder.alive() && bystander.alive(), "{written}: signalled");
    }
}
