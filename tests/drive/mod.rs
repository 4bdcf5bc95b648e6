//! Running the binary the way the resolve, fault and pacing tests need:
//! against a fake forge, with a `PATINA_HOME` of the test's choosing and extra
//! environment (a token), in the foreground or in the background. Background
//! processes are killed and reaped by their own PID when dropped.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::testenv::TestEnv;

/// How long a process or a condition may take before the test calls it
/// hung. Generous on purpose: the binaries are debug builds on a few busy
/// cores, and this is a guard against hangs, not a claim about speed (those
/// belong in `bench/`).
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// What one run of the binary left behind (testenv's `Output` cannot be built
/// outside its module, and runs with a token need their own environment).
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    pub what: String,
}

impl Ran {
    pub fn dump(&self) -> String {
        format!(
            "{} exited with {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    pub fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n{}",
            self.dump()
        );
        self
    }

    pub fn ok(&self) -> &Self {
        self.exit(0)
    }

    /// Exit 1, and stderr is exactly one line, `error: …`; returns it.
    pub fn one_error_line(&self) -> &str {
        self.exit(1);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "expected exactly one line `error: …` on stderr\n{}",
            self.dump()
        );
        lines[0]
    }

    pub fn stdout_has_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l.trim_end() == line),
            "expected the line {line:?} on stdout\n{}",
            self.dump()
        );
        self
    }

    /// Exit 1 with one `error: …` line, the last on stderr. The lines before
    /// it may only be the drain's own stamped log lines (`2026-…Z #N: … (will
    /// retry)`) and the `note:` about a missing token. Returns the error line.
    pub fn fails_with_one_error_line(&self) -> &str {
        self.exit(1);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let errors = lines.iter().filter(|l| l.starts_with("error")).count();
        assert!(
            errors == 1 && lines.last().is_some_and(|l| l.starts_with("error: ")),
            "expected one `error: …` line, last on stderr\n{}",
            self.dump()
        );
        for line in &lines[..lines.len() - 1] {
            let stamped = line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[4] == b'-'
                && line[..20].ends_with('Z');
            assert!(
                stamped || line.starts_with("note: "),
                "unexpected stderr line {line:?}\n{}",
                self.dump()
            );
        }
        lines[lines.len() - 1]
    }

    /// (resolved, failed, pending, requests) from the closing lines.
    /// The closing lines, in order: `Resolved: …`, `Failed: N …`, `Pending: N`,
    /// `Requests: N`. Returns (resolved, failed, pending, requests).
    pub fn summary(&self) -> (u64, u64, u64, u64) {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with("Resolved: "))
            .unwrap_or_else(|| panic!("no `Resolved:` line\n{}", self.dump()));
        let labels = ["Resolved: ", "Failed: ", "Pending: ", "Requests: "];
        let mut numbers = [0u64; 4];
        for (i, label) in labels.iter().enumerate() {
            let line = lines.get(start + i).copied().unwrap_or("");
            assert!(
                line.starts_with(label),
                "expected {label:?} on the line after the previous summary line\n{}",
                self.dump()
            );
            let digits: String = line[label.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(|c| *c != ',')
                .collect();
            numbers[i] = digits
                .parse()
                .unwrap_or_else(|_| panic!("no number after {label:?}\n{}", self.dump()));
        }
        (numbers[0], numbers[1], numbers[2], numbers[3])
    }
}

/// The binary in `env`'s world (as testenv runs it: cleared environment,
/// `HOME`, the API URL, `-C <repo>`) with `patina_home`, plus `extra` variables.
pub fn command(
    env: &TestEnv,
    patina_home: &Path,
    api_url: &str,
    extra: &[(&str, &str)],
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patina-forge"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATINA_HOME", patina_home)
        .env("PATINA_FORGE_API_URL", api_url)
        .current_dir(env.root())
        .stdin(Stdio::null());
    for (key, value) in extra {
        cmd.env(key, value);
    }
    let mut full: Vec<OsString> = vec!["-C".into(), env.repo().into()];
    full.extend(args.iter().map(OsString::from));
    cmd.args(full);
    cmd
}

pub fn describe(args: &[&str]) -> String {
    format!("patina-forge {}", args.join(" "))
}

pub fn run_with(
    env: &TestEnv,
    patina_home: &Path,
    api_url: &str,
    extra: &[(&str, &str)],
    args: &[&str],
) -> Ran {
    let out = command(env, patina_home, api_url, extra, args)
        .output()
        .expect("run patina-forge");
    Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        what: describe(args),
    }
}

/// The binary running in the background. Dropping it kills and reaps it (by
/// its own PID), whether the test passed or not.
pub struct Background {
    child: Option<Child>,
    pid: u32,
    out: PathBuf,
    err: PathBuf,
    pub what: String,
}

impl Background {
    /// Spawns `cmd` (from [`command`]), its output kept in files named after
    /// `name` in `env`'s root.
    pub fn start(env: &TestEnv, mut cmd: Command, what: String, name: &str) -> Background {
        let out = env.root().join(format!("{name}.stdout"));
        let err = env.root().join(format!("{name}.stderr"));
        let child = cmd
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn patina-forge");
        Background {
            pid: child.id(),
            child: Some(child),
            out,
            err,
            what,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `kill -SIG <pid>`: this child only.
    pub fn signal(&self, signal: &str) {
        assert!(self.pid > 1);
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// What it has written to stderr so far (its log lines, e.g. `waiting
    /// 1m: secondary rate limit` once it is in a long wait).
    pub fn stderr_so_far(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("not reaped yet");
        child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit (at most `timeout`) and returns what it printed.
    pub fn wait(mut self, timeout: Duration) -> Ran {
        let deadline = Instant::now() + timeout;
        let status = loop {
            let child = self.child.as_mut().expect("not reaped yet");
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} hangs: still running after {timeout:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        Ran {
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            code: status.code(),
            what: self.what.clone(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `cond` until it holds; the condition is what the test waits for,
/// the 20 ms naps only pace the polling.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "hangs: still waiting for {what} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
