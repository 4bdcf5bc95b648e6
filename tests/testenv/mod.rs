//! A throw-away world for the integration tests: a git repository made with the
//! `git` CLI, an empty `PATINA_HOME`, a `HOME`, and the real `patina-forge`
//! binary run in a cleared-down environment (after fd's `tests/testenv`).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// The forge repository of `TestEnv::with_origin()`.
pub const FORGE: &str = "acme/widget";
/// The `origin` URL of `TestEnv::with_origin()`.
pub const ORIGIN: &str = "https://github.com/acme/widget.git";

/// Commit times start here and go up by `TICK` for every commit or merge.
const EPOCH: i64 = 1_700_000_000;
const TICK: i64 = 60;

pub struct TestEnv {
    _temp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    home: PathBuf,
    patina_home: PathBuf,
    clock: Cell<i64>,
    /// `PATINA_FORGE_API_URL` for runs: a closed loopback port unless a test
    /// points it at a fake forge, so that no test can reach the internet.
    api_url: RefCell<String>,
}

/// Nothing listens here: a request fails at once with "connection refused".
pub const NO_FORGE: &str = "http://127.0.0.1:9";

/// What one run of the binary left behind.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the process was killed by a signal.
    pub code: Option<i32>,
    what: String,
}

/// One row of `forge_refs`, with our added columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Ref {
    pub repo: String,
    pub number: i64,
    pub kind: String,
    pub discovered: String,
    pub source: Option<String>,
    pub resolved: Option<String>,
    pub error: Option<String>,
    pub commit_time: Option<i64>,
    pub pattern: Option<String>,
}

/// Every file and directory under the environment's root, with a hash of each
/// file's content: compare two to prove that a run wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Option<u64>>);

fn base_command(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

impl TestEnv {
    /// A git repository on `main` without commits and without `origin`.
    pub fn new() -> TestEnv {
        let temp = tempfile::Builder::new()
            .prefix("patina-forge-test.")
            .tempdir()
            .expect("temp dir");
        let root = temp.path().canonicalize().expect("canonical temp dir");
        let repo = root.join("repo");
        let home = root.join("home");
        let patina_home = root.join("patina-home");
        for dir in [&repo, &home, &patina_home] {
            fs::create_dir(dir).expect("create dir");
        }
        let env = TestEnv {
            _temp: temp,
            root,
            repo,
            home,
            patina_home,
            clock: Cell::new(EPOCH),
            api_url: RefCell::new(NO_FORGE.to_owned()),
        };
        env.git(&["init", "-q", "-b", "main"]);
        for (key, value) in [
            ("user.name", "Test Author"),
            ("user.email", "author@example.com"),
            ("commit.gpgsign", "false"),
            ("gc.auto", "0"),
            ("maintenance.auto", "false"),
        ] {
            env.git(&["config", key, value]);
        }
        env
    }

    /// `new()` with `origin` set to `ORIGIN`, so the forge repo is `FORGE`.
    pub fn with_origin() -> TestEnv {
        let env = TestEnv::new();
        env.set_origin(ORIGIN);
        env
    }

    /// The temp dir holding everything; not inside any git repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn patina_home(&self) -> &Path {
        &self.patina_home
    }

    /// The project's default database.
    pub fn db_path(&self) -> PathBuf {
        db_under(&self.repo)
    }

    // ---- git ----------------------------------------------------------------

    fn git_command(&self, dir: &Path, args: &[&str], time: Option<i64>) -> Command {
        let mut cmd = base_command("git", &self.home);
        cmd.current_dir(dir).args(args).env("GIT_EDITOR", "true");
        if let Some(t) = time {
            let date = format!("@{t} +0000");
            cmd.env("GIT_AUTHOR_DATE", &date)
                .env("GIT_COMMITTER_DATE", &date);
        }
        cmd
    }

    fn run_git(&self, mut cmd: Command, input: Option<&[u8]>, what: &str) -> String {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn git");
        if let Some(bytes) = input {
            child
                .stdin
                .take()
                .expect("git stdin")
                .write_all(bytes)
                .expect("write to git");
        }
        let out = child.wait_with_output().expect("wait for git");
        assert!(
            out.status.success(),
            "git {what} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Raw `git ARGS` in the repository; panics on failure; trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    /// Raw `git ARGS` in `dir`.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let cmd = self.git_command(dir, args, None);
        self.run_git(cmd, None, &args.join(" "))
    }

    /// Whether the repository's object database holds `sha`.
    pub fn has_object(&self, sha: &str) -> bool {
        self.git_command(&self.repo, &["cat-file", "-e", sha], None)
            .stderr(Stdio::null())
            .status()
            .expect("run git cat-file")
            .success()
    }

    /// Raw `git ARGS` in the repository with `input` on stdin (e.g. fast-import).
    pub fn git_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let cmd = self.git_command(&self.repo, args, None);
        self.run_git(cmd, Some(input), &args.join(" "))
    }

    /// The next commit time: fixed, and later than every time used so far.
    pub fn tick(&self) -> i64 {
        let t = self.clock.get() + TICK;
        self.clock.set(t);
        t
    }

    fn dated(&self, args: &[&str], time: i64) -> String {
        if time > self.clock.get() {
            self.clock.set(time);
        }
        let cmd = self.git_command(&self.repo, args, Some(time));
        self.run_git(cmd, None, &args.join(" "));
        self.git(&["rev-parse", "HEAD"])
    }

    /// An empty commit with message `msg` at the next tick; returns its sha.
    pub fn commit(&self, msg: &str) -> String {
        self.commit_at(msg, self.tick())
    }

    /// An empty commit with message `msg` dated `time` (unix seconds).
    pub fn commit_at(&self, msg: &str, time: i64) -> String {
        self.commit_bytes_at(msg.as_bytes(), time)
    }

    /// An empty commit whose message is exactly `msg` (any bytes, any size).
    pub fn commit_bytes_at(&self, msg: &[u8], time: i64) -> String {
        let file = self.root.join("commit-message");
        fs::write(&file, msg).expect("write commit message");
        let file = file.to_str().expect("utf-8 path").to_string();
        self.dated(
            &[
                "commit",
                "-q",
                "--allow-empty",
                "--cleanup=verbatim",
                "-F",
                &file,
            ],
            time,
        )
    }

    pub fn branch(&self, name: &str) {
        self.git(&["branch", name]);
    }

    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "-q", name]);
    }

    /// `git merge --no-ff -m MSG BRANCH` at the next tick; returns the merge sha.
    pub fn merge(&self, branch: &str, msg: &str) -> String {
        self.merge_with(&[branch], msg, &[])
    }

    /// An octopus merge of all `branches` into the current branch.
    pub fn octopus(&self, branches: &[&str], msg: &str) -> String {
        self.merge_with(branches, msg, &[])
    }

    /// `git merge --no-ff --no-edit -m MSG EXTRA… BRANCHES…` at the next tick.
    pub fn merge_with(&self, branches: &[&str], msg: &str, extra: &[&str]) -> String {
        let mut args = vec!["merge", "-q", "--no-ff", "--no-edit", "-m", msg];
        args.extend_from_slice(extra);
        args.extend_from_slice(branches);
        self.dated(&args, self.tick())
    }

    /// Sets (or replaces) the `origin` remote's URL; nothing is ever fetched.
    pub fn set_origin(&self, url: &str) {
        self.set_origin_in(&self.repo, url);
    }

    pub fn set_origin_in(&self, dir: &Path, url: &str) {
        let has_origin = self.git_in(dir, &["remote"]).lines().any(|r| r == "origin");
        if has_origin {
            self.git_in(dir, &["remote", "set-url", "origin", url]);
        } else {
            self.git_in(dir, &["remote", "add", "origin", url]);
        }
    }

    /// A second repository at `<root>/<folder>` with one commit (`first
    /// (#1)`), its `origin` naming `forge_repo` on github.com.
    pub fn clone_at(&self, folder: &str, forge_repo: &str) -> PathBuf {
        let dir = self.root.join(folder);
        self.git_in(
            &self.root,
            &["init", "-q", "-b", "main", dir.to_str().unwrap()],
        );
        self.git_in(
            &dir,
            &[
                "-c",
                "user.name=Test Author",
                "-c",
                "user.email=author@example.com",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "first (#1)",
            ],
        );
        self.set_origin_in(&dir, &format!("https://github.com/{forge_repo}.git"));
        dir
    }

    /// `$PATINA_HOME/registry.yaml` listing `entries` (name, clone path).
    pub fn write_registry(&self, entries: &[(&str, &Path)]) {
        let mut yaml = String::from("version: 1\nrepos:\n");
        for (name, path) in entries {
            yaml.push_str(&format!("  {name}:\n    path: {}\n", path.display()));
        }
        fs::write(self.patina_home.join("registry.yaml"), yaml).expect("write registry.yaml");
    }

    // ---- the binary ---------------------------------------------------------

    /// Runs the binary with `-C <repo>` prepended unless `args` name a target
    /// (`-C`, `--path`, `--repo`); the working directory is `root()`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        let names_target = args.iter().any(|a| {
            let a = a.to_string_lossy();
            a.starts_with("-C") || a.starts_with("--path") || a.starts_with("--repo")
        });
        let mut full: Vec<OsString> = Vec::new();
        if !names_target {
            full.push("-C".into());
            full.push(self.repo.clone().into());
        }
        full.extend(args);
        self.run_in(&self.root, full)
    }

    /// Runs the binary in `dir` with exactly `args`.
    pub fn run_in<I, S>(&self, dir: &Path, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        let what = format!(
            "patina-forge {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = base_command(env!("CARGO_BIN_EXE_patina-forge"), &self.home)
            .env("PATINA_HOME", &self.patina_home)
            .env("PATINA_FORGE_API_URL", &*self.api_url.borrow())
            .current_dir(dir)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run patina-forge");
        Output::of(out, what)
    }

    /// The binary with exactly `args`, run from `root()` (no repository
    /// there: `--all` lists the registry alone), without
    /// `PATINA_FORGE_API_URL`: each repository uses the API base it
    /// remembers, as a timer's run does.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        let mut cmd = base_command(env!("CARGO_BIN_EXE_patina-forge"), &self.home);
        cmd.env("PATINA_HOME", &self.patina_home)
            .current_dir(&self.root)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs [`TestEnv::bare_command`].
    pub fn run_bare(&self, args: &[&str]) -> Output {
        let out = self.bare_command(args).output().expect("run patina-forge");
        Output::of(out, format!("patina-forge {}", args.join(" ")))
    }

    /// Like [`TestEnv::run`], for a run that could hang: one still running
    /// after `patience` is ended by its PID and the test fails. A bound on
    /// hanging, not a claim on speed.
    pub fn run_or_hang<I, S>(&self, args: I, patience: std::time::Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        let what = format!("patina-forge {args:?}");
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run patina-forge");
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait for patina-forge").is_none() {
            if started.elapsed() > patience {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} still ran after {patience:?}: it hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child
            .wait_with_output()
            .expect("read patina-forge's output");
        Output::of(out, what)
    }

    /// The binary as [`TestEnv::run`] starts it (`-C <repo>` first, the
    /// same environment), for a test that starts it its own way.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = base_command(env!("CARGO_BIN_EXE_patina-forge"), &self.home);
        cmd.env("PATINA_HOME", &self.patina_home)
            .env("PATINA_FORGE_API_URL", &*self.api_url.borrow())
            .current_dir(&self.root)
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Points later runs at a (fake) forge's API base.
    pub fn set_api_url(&self, url: &str) {
        *self.api_url.borrow_mut() = url.to_owned();
    }

    // ---- the database -------------------------------------------------------

    /// Rows of `sql` on the project's database, every value as text (`NULL`
    /// for null). Panics when the database does not exist (never creates it).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        query_db(&self.db_path(), sql)
    }

    /// Runs `sql` (one or more statements) against the project's database.
    pub fn execute(&self, sql: &str) {
        open_db(&self.db_path())
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// All of `forge_refs` in the project's database, by repo and number.
    pub fn refs(&self) -> Vec<Ref> {
        refs_in(&self.db_path())
    }

    /// The ref numbers of `FORGE` in the project's database, ascending.
    pub fn numbers(&self) -> Vec<i64> {
        numbers_in(&self.db_path())
    }

    /// The row of `FORGE` `#number`, if any.
    pub fn find_ref(&self, number: i64) -> Option<Ref> {
        self.refs()
            .into_iter()
            .find(|r| r.repo == FORGE && r.number == number)
    }

    // ---- nothing written ----------------------------------------------------

    pub fn snapshot(&self) -> Snapshot {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<u64>>) {
            let mut entries: Vec<_> = fs::read_dir(dir)
                .expect("read dir")
                .map(|e| e.expect("dir entry").path())
                .collect();
            entries.sort();
            for path in entries {
                let rel = path.strip_prefix(base).expect("under root").to_path_buf();
                let meta = fs::symlink_metadata(&path).expect("metadata");
                if meta.is_dir() {
                    out.insert(rel, None);
                    walk(base, &path, out);
                } else {
                    let mut h = DefaultHasher::new();
                    fs::read(&path).unwrap_or_default().hash(&mut h);
                    out.insert(rel, Some(h.finish()));
                }
            }
        }
        let mut map = BTreeMap::new();
        walk(&self.root, &self.root, &mut map);
        Snapshot(map)
    }

    /// Panics, naming the differences, when anything under `root()` was
    /// created, removed or changed since `before` was taken.
    pub fn assert_unchanged(&self, before: &Snapshot) {
        let after = self.snapshot();
        if &after == before {
            return;
        }
        let mut diffs = Vec::new();
        for (path, v) in &after.0 {
            match before.0.get(path) {
                None => diffs.push(format!("created {}", path.display())),
                Some(old) if old != v => diffs.push(format!("changed {}", path.display())),
                _ => {}
            }
        }
        for path in before.0.keys() {
            if !after.0.contains_key(path) {
                diffs.push(format!("removed {}", path.display()));
            }
        }
        panic!("the run wrote to the world:\n  {}", diffs.join("\n  "));
    }
}

/// `<dir>/.patina/local/data/patina.db`
pub fn db_under(dir: &Path) -> PathBuf {
    dir.join(".patina/local/data/patina.db")
}

/// Our store beside the database at `db`: `<stem>-forge.db`.
pub fn store_of(db: &Path) -> PathBuf {
    let stem = db.file_stem().unwrap().to_string_lossy().into_owned();
    db.with_file_name(format!("{stem}-forge.db"))
}

/// Our store (the truth) with the database at `path` attached as `patina`,
/// when the store exists: unqualified names find our tables first, and
/// `eventlog`, which only patina's file has, there. Without a store, the
/// database alone.
fn open_db(path: &Path) -> Connection {
    assert!(path.is_file(), "no database at {}", path.display());
    let store = store_of(path);
    let main = if store.is_file() { &store } else { path };
    let conn = Connection::open_with_flags(
        main,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", main.display()));
    if main != path {
        conn.execute("ATTACH DATABASE ?1 AS patina", [path.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("attach {}: {e}", path.display()));
    }
    conn
}

/// Rows of `sql` on patina's file alone (what patina reads), every value as
/// text.
pub fn query_patina(path: &Path, sql: &str) -> Vec<Vec<String>> {
    assert!(path.is_file(), "no database at {}", path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    rows_of(&conn, sql)
}

pub fn query_db(path: &Path, sql: &str) -> Vec<Vec<String>> {
    rows_of(&open_db(path), sql)
}

fn rows_of(conn: &Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(f) => f.to_string(),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.collect::<rusqlite::Result<_>>()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn refs_in(path: &Path) -> Vec<Ref> {
    let conn = open_db(path);
    let sql = "SELECT repo, ref_number, ref_kind, discovered, source, resolved, error, \
               commit_time, pattern FROM forge_refs ORDER BY repo, ref_number";
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt
        .query_map([], |row| {
            Ok(Ref {
                repo: row.get(0)?,
                number: row.get(1)?,
                kind: row.get(2)?,
                discovered: row.get(3)?,
                source: row.get(4)?,
                resolved: row.get(5)?,
                error: row.get(6)?,
                commit_time: row.get(7)?,
                pattern: row.get(8)?,
            })
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.collect::<rusqlite::Result<_>>()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The ref numbers of `FORGE` in the database at `path`, ascending.
pub fn numbers_in(path: &Path) -> Vec<i64> {
    query_db(
        path,
        &format!("SELECT ref_number FROM forge_refs WHERE repo = '{FORGE}' ORDER BY ref_number"),
    )
    .into_iter()
    .map(|row| row[0].parse().expect("ref_number"))
    .collect()
}

impl Output {
    fn of(out: std::process::Output, what: String) -> Output {
        Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
            what,
        }
    }

    /// What ran, how it ended and what it printed, for a failed assertion.
    pub fn dump(&self) -> String {
        format!(
            "{} exited with {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// Stdout as the one JSON value it must be.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{}", self.dump()))
    }

    /// Stderr's lines that are not blank.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    pub fn assert_success(&self) -> &Self {
        self.assert_exit(0)
    }

    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n{}",
            self.dump()
        );
        self
    }

    /// Exit 1 with exactly one line on stderr, starting with `error: `.
    pub fn assert_error(&self) -> &Self {
        self.assert_exit(1);
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "expected one line `error: …` on stderr\n{}",
            self.dump()
        );
        self
    }

    /// Exit 2 (bad usage) with stderr starting with `error:`.
    pub fn assert_usage_error(&self) -> &Self {
        self.assert_exit(2);
        assert!(
            self.stderr.starts_with("error:"),
            "expected stderr to start with `error:`\n{}",
            self.dump()
        );
        self
    }

    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "expected stdout to contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn assert_stdout_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle),
            "expected stdout not to contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// The number (thousands separators allowed) right after `word` on the
    /// first stdout line that contains `marker`; `None` without such a line.
    pub fn number_after(&self, marker: &str, word: &str) -> Option<u64> {
        let line = self.stdout.lines().find(|l| l.contains(marker))?;
        let rest = &line[line.find(word)? + word.len()..];
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        token.parse().ok()
    }

    fn assert_number(&self, what: &str, marker: &str, word: &str, n: u64) -> &Self {
        assert_eq!(
            self.number_after(marker, word),
            Some(n),
            "expected {what} {n}\n{}",
            self.dump()
        );
        self
    }

    /// `Scanned N commits`
    pub fn assert_scanned(&self, n: u64) -> &Self {
        self.assert_number("scanned commits", "Scanned ", "Scanned ", n)
    }

    /// `Discovered N PR refs from commits`
    pub fn assert_prs(&self, n: u64) -> &Self {
        self.assert_number("new PR refs", " PR ref", "Discovered ", n)
    }

    /// `Discovered N issue refs from commits`
    pub fn assert_issues(&self, n: u64) -> &Self {
        self.assert_number("new issue refs", " issue ref", "Discovered ", n)
    }

    /// `Total: N pending`
    pub fn assert_total(&self, n: u64) -> &Self {
        self.assert_number("total pending", "Total: ", "Total: ", n)
    }

    /// The `(Y already known)` of all lines add up to `n` (absent means 0).
    pub fn assert_known(&self, n: u64) -> &Self {
        let known: u64 = self
            .stdout
            .lines()
            .filter(|l| l.contains(" already known"))
            .map(|l| {
                let head = &l[..l.find(" already known").unwrap()];
                let digits: String = head
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_digit() || *c == ',')
                    .filter(|c| *c != ',')
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect();
                digits
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("no number before `already known`\n{}", self.dump()))
            })
            .sum();
        assert_eq!(known, n, "expected {n} already known\n{}", self.dump());
        self
    }

    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}\n{}",
            self.dump()
        );
        self
    }
}
