//! The token never shows: with `GITHUB_TOKEN` (or `GH_TOKEN`) set and the
//! fake requiring it, every mode is run (discovery, `--status`, `--status
//! --json`, `--limit`, `--sync` then its end, `--log`, `--stop`, `--resume`)
//! and so are failing runs with a wrong token; then stdout and stderr of
//! every run, the sync log, the database and its `-wal`/`-shm` (as bytes and
//! as SQL text), and every file under `$PATINA_HOME` and the project's
//! `.patina/` are searched: neither token is anywhere. The state folders and
//! files are owner-only (0700, 0600) even when the binary runs under
//! `umask 000`, so that a file created with the default mode would show.
//!
//! The detached syncs are the binary's grandchildren: this test process
//! makes itself a child subreaper so that they are re-parented to it, and a
//! guard kills and reaps each by its own PID when the test ends.

mod drive;
mod testenv;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drive::Ran;
use fakeforge::{FakeForge, Item};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use testenv::{FORGE, TestEnv};

const SECRET: &str = "ghp_S3CRETtokenAbCdEf0123456789xyzQ";
const WRONG: &str = "ghp_WR0NGtokenZyXwVu9876543210abcdR";
const DELAY: &str = "5ms";
const PATIENCE: Duration = Duration::from_secs(60);

// ---- the detached syncs ----------------------------------------------------------

fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// A detached sync, killed (SIGKILL) and reaped by its PID on drop unless
/// it was waited for.
struct Daemon {
    pid: i32,
    done: Option<WaitStatus>,
}

impl Daemon {
    /// The PID that `--sync` printed.
    fn of(out: &Ran) -> Daemon {
        let pid = out
            .stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix("Syncing in background (PID ")?
                    .strip_suffix(')')?
                    .parse::<i32>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no `Syncing in background (PID N)`\n{}", out.dump()));
        Daemon { pid, done: None }
    }

    fn wait(&mut self, timeout: Duration) -> WaitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    self.done = Some(status);
                    return status;
                }
                Err(e) => panic!("waitpid {}: {e}", self.pid),
            }
            assert!(Instant::now() < deadline, "sync {} still running", self.pid);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.done.is_none() {
            let pid = Pid::from_raw(self.pid);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

// ---- running ---------------------------------------------------------------------

/// The binary under `umask 000`, with `token` as (variable, value).
fn run(env: &TestEnv, forge: &FakeForge, token: Option<(&str, &str)>, args: &[&str]) -> Ran {
    let extra: Vec<(&str, &str)> = token.into_iter().collect();
    let mut cmd = drive::command(env, env.patina_home(), &forge.url(), &extra, args);
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            Ok(())
        });
    }
    let out = cmd.output().expect("run patina-forge");
    Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        what: drive::describe(args),
    }
}

fn status_json(env: &TestEnv, forge: &FakeForge) -> serde_json::Value {
    let out = run(
        env,
        forge,
        Some(("GITHUB_TOKEN", SECRET)),
        &["--status", "--json"],
    );
    out.ok();
    serde_json::from_str(out.stdout.trim()).expect("one JSON object")
}

fn wait_idle(env: &TestEnv, forge: &FakeForge) {
    drive::wait_until("the sync to end", PATIENCE, || {
        status_json(env, forge)["running"] == false
    });
}

fn pending(env: &TestEnv) -> u64 {
    env.query("SELECT count(*) FROM forge_refs WHERE resolved IS NULL")[0][0]
        .parse()
        .unwrap()
}

// ---- where a secret could hide -------------------------------------------------------

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let meta = fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every text value of every table of our store and of the database, as
/// SQL sees it.
fn all_text(db: &Path) -> String {
    let tables = testenv::query_db(
        db,
        "SELECT 'main', name FROM main.sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         UNION ALL
         SELECT 'patina', name FROM patina.sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    );
    let mut text = String::new();
    for t in tables {
        for row in testenv::query_db(db, &format!("SELECT * FROM {}.\"{}\"", t[0], t[1])) {
            text.push_str(&row.join("\u{1f}"));
            text.push('\n');
        }
    }
    text
}

/// Neither secret in any output, any file under `$PATINA_HOME` or the
/// project's `.patina/` (database, WAL, shared memory, log, ledger, PID
/// file), nor in any value the database holds. Returns the files searched.
fn assert_nowhere(env: &TestEnv, secrets: &[&str], outputs: &[Ran]) -> usize {
    for out in outputs {
        for s in secrets {
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "a token leaked into the output of {}\n{}",
                out.what,
                out.dump()
            );
        }
    }
    let mut files = Vec::new();
    files_under(env.patina_home(), &mut files);
    files_under(&env.repo().join(".patina"), &mut files);
    for path in &files {
        let bytes = fs::read(path).unwrap_or_default();
        for s in secrets {
            assert!(
                !contains(&bytes, s),
                "a token leaked into {}",
                path.display()
            );
        }
    }
    let text = all_text(&env.db_path());
    for s in secrets {
        assert!(!text.contains(s), "a token is in the database's values");
    }
    files.len()
}

/// `run/` and `logs/` are 0700; every file in them 0600.
fn assert_owner_only(env: &TestEnv) -> Vec<String> {
    let mut seen = Vec::new();
    for dir in ["run", "logs"] {
        let dir = env.patina_home().join(dir);
        let mode = fs::metadata(&dir)
            .expect("state folder")
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        for f in files {
            let mode = fs::symlink_metadata(&f).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
            seen.push(f.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    seen.sort();
    seen
}

// ---- the test ------------------------------------------------------------------------

#[test]
fn no_mode_shows_the_token_anywhere_and_state_files_are_owner_only() {
    become_subreaper();
    let env = TestEnv::with_origin();
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.require_token(SECRET);
    for n in 1..=250 {
        let item = if n % 3 == 0 {
            Item::pr(n, "A PR").merged("2024-05-01T10:00:00Z")
        } else {
            Item::issue(n, "An issue")
        };
        forge.put(FORGE, item);
    }
    env.commit("fix: one (#12)");
    env.commit("fix: two\n\nCloses #999");
    let good = Some(("GITHUB_TOKEN", SECRET));
    let wrong = Some(("GITHUB_TOKEN", WRONG));
    let mut outputs = Vec::new();

    // Discovery learns the range with the token.
    let out = run(&env, &forge, good, &[]);
    out.ok();
    assert!(out.stdout.contains("(1..250)"), "{}", out.dump());
    outputs.push(out);
    for args in [&["--status"][..], &["--status", "--json"]] {
        let out = run(&env, &forge, good, args);
        out.ok();
        outputs.push(out);
    }
    let out = run(&env, &forge, good, &["--limit", "20", "--delay", DELAY]);
    out.ok();
    outputs.push(out);

    // --sync, to its end.
    let out = run(&env, &forge, good, &["--sync", "--delay", DELAY]);
    out.ok();
    let mut daemon = Daemon::of(&out);
    outputs.push(out);
    assert_eq!(
        daemon.wait(PATIENCE),
        WaitStatus::Exited(Pid::from_raw(daemon.pid), 0)
    );
    assert_eq!(pending(&env), 0);
    for args in [&["--log"][..], &["--log", "--lines", "3"]] {
        let out = run(&env, &forge, good, args);
        out.ok();
        assert!(!out.stdout.is_empty(), "{}", out.dump());
        outputs.push(out);
    }

    // --stop a sync that is slowed down.
    env.commit("fix: three (#77)");
    for n in 251..=400 {
        forge.put(FORGE, Item::issue(n, "Later"));
    }
    let out = run(&env, &forge, good, &[]);
    out.ok();
    outputs.push(out);
    forge.set_latency(Duration::from_millis(400));
    let before = forge.requests().len();
    let out = run(&env, &forge, good, &["--sync", "--delay", DELAY]);
    out.ok();
    let mut daemon = Daemon::of(&out);
    outputs.push(out);
    drive::wait_until("the sync's first request", PATIENCE, || {
        forge.requests().len() > before
    });
    let out = run(&env, &forge, good, &["--stop"]);
    out.ok();
    assert!(out.stdout.starts_with("Stopped PID "), "{}", out.dump());
    outputs.push(out);
    assert_eq!(
        daemon.wait(PATIENCE),
        WaitStatus::Exited(Pid::from_raw(daemon.pid), 0)
    );
    forge.set_latency(Duration::ZERO);

    // --resume, from GH_TOKEN this time.
    let out = run(
        &env,
        &forge,
        Some(("GH_TOKEN", SECRET)),
        &["--resume", "--delay", DELAY],
    );
    out.ok();
    outputs.push(out);
    assert_eq!(pending(&env), 0);
    let authorized = forge.requests();
    assert!(
        authorized
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {SECRET}"))),
        "a request went without the token"
    );

    // A wrong token, in every mode that asks the forge.
    env.commit("fix: four (#401)");
    forge.put(FORGE, Item::issue(401, "Newest"));
    let out = run(&env, &forge, wrong, &[]);
    out.ok();
    assert!(out.stderr.contains("note: "), "{}", out.dump());
    outputs.push(out);
    for args in [
        &["--limit", "5", "--delay", DELAY][..],
        &["--resume", "--delay", DELAY],
    ] {
        let out = run(&env, &forge, wrong, args);
        out.fails_with_one_error_line();
        outputs.push(out);
    }
    let out = run(&env, &forge, wrong, &["--sync", "--delay", DELAY]);
    out.ok();
    let mut daemon = Daemon::of(&out);
    outputs.push(out);
    assert_eq!(
        daemon.wait(PATIENCE),
        WaitStatus::Exited(Pid::from_raw(daemon.pid), 1)
    );
    wait_idle(&env, &forge);
    let out = run(&env, &forge, wrong, &["--log", "--lines", "5"]);
    out.ok();
    assert!(out.stdout.contains("sync failed"), "{}", out.dump());
    outputs.push(out);
    let out = run(&env, &forge, wrong, &["--status", "--json"]);
    out.ok();
    outputs.push(out);

    // The binary checkpoints on close: whatever it wrote is in the files
    // searched, not in a WAL left beside them.
    let searched = assert_nowhere(&env, &[SECRET, WRONG], &outputs);
    let state = assert_owner_only(&env);
    let port = forge.url().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        state,
        vec![
            "forge-sync-acme-widget.log".to_string(),
            "forge-sync-acme-widget.pid".to_string(),
            format!("pace-127.0.0.1_{port}.json"),
        ],
        "the state files"
    );
    eprintln!(
        "secrets: {} runs, {searched} files searched, {} requests with the token",
        outputs.len(),
        authorized.len()
    );
}

/// A token in `origin`'s URL (as some CI systems set it) is redacted from
/// every message and stored nowhere.
#[test]
fn credentials_in_the_remote_url_show_nowhere() {
    let env = TestEnv::new();
    env.commit("fix: one (#1)");
    let forge = FakeForge::start();
    forge.put(FORGE, Item::issue(1, "One"));
    let mut outputs = Vec::new();
    // Accepted: the forge repository is read from it.
    env.set_origin(&format!(
        "https://x-access-token:{SECRET}@github.com/acme/widget.git"
    ));
    let out = run(&env, &forge, None, &[]);
    out.ok();
    outputs.push(out);
    let out = run(&env, &forge, None, &["--limit", "5", "--delay", DELAY]);
    out.ok();
    outputs.push(out);
    // Refused: the message shows the URL without them.
    env.set_origin(&format!(
        "https://x-access-token:{SECRET}@github.com/only-one"
    ));
    let out = run(&env, &forge, None, &[]);
    let line = out.one_error_line().to_owned();
    assert!(line.contains("***@github.com/only-one"), "{}", out.dump());
    outputs.push(out);
    assert_nowhere(&env, &[SECRET], &outputs);
    // Nothing sent the credentials to the forge either.
    for r in forge.requests() {
        assert!(r.headers.iter().all(|(_, v)| !v.contains(SECRET)), "{r:?}");
    }
}

/// A token that is not one line of visible characters (a newline, as
/// `$(cat file)` can leave) is never sent nor printed: the run goes on as
/// without a token (and says so), and the forge that wants one refuses it.
#[test]
fn a_malformed_token_is_neither_sent_nor_printed() {
    let env = TestEnv::with_origin();
    env.commit("fix: one (#1)");
    let forge = FakeForge::start();
    forge.require_token(SECRET);
    forge.put(FORGE, Item::issue(1, "One"));
    run(&env, &forge, None, &["--offline"]).ok();
    let bad = format!("{SECRET}\nsecond-line");
    let out = run(
        &env,
        &forge,
        Some(("GITHUB_TOKEN", &bad)),
        &["--limit", "1", "--delay", DELAY],
    );
    out.fails_with_one_error_line();
    assert!(
        out.stderr.contains("note: no GitHub token"),
        "{}",
        out.dump()
    );
    let log = forge.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].header("authorization"), None, "{log:?}");
    assert_nowhere(&env, &[SECRET, "second-line"], &[out]);
}

/// Credentials written into `--api-url` are refused; the message must not
/// repeat them, whatever else is wrong with the URL.
#[test]
fn credentials_in_the_api_url_are_never_printed() {
    let env = TestEnv::with_origin();
    env.commit("fix: one (#1)");
    let forge = FakeForge::start();
    run(&env, &forge, None, &["--offline"]).ok();
    let mut outputs = Vec::new();
    for url in [
        format!("https://user:{SECRET}@127.0.0.1:9/"),
        format!("http://user:{SECRET}@example.com/"),
        format!("ftp://user:{SECRET}@example.com/"),
        format!("https://user:{SECRET}@exa mple.com/"),
    ] {
        let out = run(
            &env,
            &forge,
            None,
            &["--limit", "1", "--delay", DELAY, "--api-url", &url],
        );
        out.fails_with_one_error_line();
        outputs.push(out);
    }
    assert_nowhere(&env, &[SECRET], &outputs);
}
