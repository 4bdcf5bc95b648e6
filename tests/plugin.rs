//! patina runs patina-forge the way git runs its plugins, and timers and cron
//! run it from the units in contrib/: both are tested here end to end.

mod testenv;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fakeforge::{FakeForge, Item};
use testenv::{FORGE, TestEnv};

/// A minimal `patina`: exactly the PATH lookup and `exec` the plugin contract
/// describes, nothing more.
const DISPATCHER: &str = r#"#!/bin/sh
case "$1 $2" in
  "scrape forge") shift 2; exec patina-forge "$@" ;;
esac
case "$1" in
  forge) shift; exec patina-forge "$@" ;;
esac
echo "patina: no such command: $*" >&2
exit 1
"#;

/// A folder holding `patina` and `patina-forge`, for PATH.
fn plugin_path(env: &TestEnv) -> PathBuf {
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let patina = bin.join("patina");
    std::fs::write(&patina, DISPATCHER).unwrap();
    std::fs::set_permissions(&patina, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_patina-forge"), bin.join("patina-forge"))
        .unwrap();
    bin
}

/// Runs `program args` in `dir` with the environment patina would pass on.
fn run_with_path(
    env: &TestEnv,
    bin: &Path,
    dir: &Path,
    program: &str,
    args: &[&str],
    api: &str,
) -> Output {
    Command::new(bin.join(program))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", env.home())
        .env("PATINA_HOME", env.patina_home())
        .env("PATINA_FORGE_API_URL", api)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A background sync started through patina, killed by its PID if it is still
/// there when the test ends, pass or fail.
struct Background(Option<i32>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn forge_with_items(n: u64) -> FakeForge {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    // A large budget, reset within the hour as GitHub's: the ledger would
    // otherwise spread 5,000 requests over it.
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    for i in 1..=n {
        forge.put(FORGE, Item::issue(i, &format!("Issue {i}")));
    }
    forge
}

#[test]
fn patina_scrape_forge_and_patina_forge_run_the_plugin() {
    let env = TestEnv::with_origin();
    env.commit("fix: first (#1)");
    let forge = forge_with_items(3);
    let bin = plugin_path(&env);
    let sub = env.repo().join("sub");
    std::fs::create_dir_all(&sub).unwrap();

    // Same working directory: discovery from a subdirectory finds the project.
    let out = run_with_path(
        &env,
        &bin,
        &sub,
        "patina",
        &["scrape", "forge"],
        &forge.url(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Total: 3 pending"),
        "{}",
        text(&out.stdout)
    );

    let out = run_with_path(
        &env,
        &bin,
        env.repo(),
        "patina",
        &["scrape", "forge", "--status"],
        &forge.url(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Pending: 3"),
        "{}",
        text(&out.stdout)
    );

    let out = run_with_path(
        &env,
        &bin,
        env.repo(),
        "patina",
        &["forge", "--sync", "--delay", "10ms"],
        &forge.url(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let pid: i32 = stdout
        .split("PID ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no PID in {stdout:?}"));
    let _guard = Background(Some(pid));
    assert!(
        stdout.contains("Check: patina scrape forge --status"),
        "{stdout}"
    );

    // PATINA_HOME came through: the PID file and the log are where it says.
    let pid_file = env.patina_home().join("run/forge-sync-acme-widget.pid");
    assert!(pid_file.exists());
    // A guard against a hang, not a claim about speed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run_with_path(
            &env,
            &bin,
            env.repo(),
            "patina",
            &["forge", "--status", "--json"],
            &forge.url(),
        );
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        if status["pending"] == 0 && status["running"] == false {
            assert_eq!(status["resolved"], 3);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background sync hangs: not finished after 60 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        env.patina_home()
            .join("logs/forge-sync-acme-widget.log")
            .exists()
    );
}

#[test]
fn the_exit_status_comes_back_through_patina() {
    let env = TestEnv::with_origin();
    let bin = plugin_path(&env);
    let out = run_with_path(
        &env,
        &bin,
        env.repo(),
        "patina",
        &["forge", "--no-such-flag"],
        testenv::NO_FORGE,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run_with_path(
        &env,
        &bin,
        env.root(),
        "patina",
        &["scrape", "forge", "--status"],
        testenv::NO_FORGE,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
}

/// systemd's `%I`: the instance with its escaping undone, every `-` a `/`
/// (systemd.unit(5), as `systemd-escape -u` does).
fn unescaped(instance: &str) -> String {
    instance.replace('-', "/")
}

/// The `ExecStart=` of a unit, as arguments, with `%i` and `%I` expanded as
/// systemd expands them for `instance`.
fn exec_start(unit: &str, instance: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/systemd")
        .join(unit);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit} has no ExecStart"));
    let mut words = line.split_whitespace();
    let binary = words.next().unwrap();
    assert!(binary.ends_with("/patina-forge"), "{unit} runs {binary}");
    words
        .map(|w| {
            w.replace("%i", instance)
                .replace("%I", &unescaped(instance))
        })
        .collect()
}

/// A world with a reference repository registered as `acme-widget` (a
/// name with a `-`, as most are), its refs discovered, and a forge holding
/// them.
fn registered_world() -> (TestEnv, FakeForge) {
    let env = TestEnv::with_origin();
    env.commit("fix: first (#1)\n\nFixes #2");
    let forge = forge_with_items(2);
    env.set_api_url(&forge.url());
    std::fs::write(
        env.patina_home().join("registry.yaml"),
        format!(
            "repos:\n  acme-widget:\n    path: {}\n    github: acme/widget\n",
            env.repo().display()
        ),
    )
    .unwrap();
    env.run(["--offline"]).assert_success();
    (env, forge)
}

#[test]
fn the_units_run_resume_with_flags_that_exist() {
    let (env, _forge) = registered_world();

    // The templated unit, for the registered repository.
    let args = exec_start("patina-forge@.service", "acme-widget");
    assert!(args.contains(&"--resume".to_owned()), "{args:?}");
    let out = env.run_in(env.root(), &args);
    out.assert_success();
    assert_eq!(
        env.query("SELECT count(*) FROM forge_refs WHERE resolved IS NULL")[0][0],
        "0"
    );

    // The project unit runs in its WorkingDirectory: nothing pending now,
    // so a refresh and one line, success.
    let args = exec_start("patina-forge.service", "unused");
    let out = env.run_in(env.repo(), &args);
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("Nothing pending"), "{}", out.stdout);
}

/// A plist as Python's `plistlib` (what macOS's own tools agree with) reads
/// it, as JSON.
fn read_plist(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys\n\
             with open(sys.argv[1], 'rb') as f:\n    \
             print(json.dumps(plistlib.load(f)))",
        ])
        .arg(path)
        .output()
        .expect("python3 is needed to read the launchd plists with plistlib");
    assert!(
        out.status.success(),
        "{} is not a valid plist: {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The agents in contrib/launchd/, each read with plistlib and checked for
/// the keys that make it an hourly, low-priority background job, with the
/// arguments it runs (the binary first).
fn launchd_agents() -> Vec<(PathBuf, serde_json::Value, Vec<String>)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/launchd");
    let mut plists: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "plist"))
        .collect();
    plists.sort();
    plists
        .into_iter()
        .map(|path| {
            let plist = read_plist(&path);
            let what = path.display();
            let label = plist["Label"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: Label"));
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                format!("{label}.plist"),
                "launchctl finds an agent by its file named after its Label"
            );
            assert_eq!(plist["RunAtLoad"], true, "{what}");
            assert_eq!(plist["ProcessType"], "Background", "{what}");
            assert_eq!(plist["LowPriorityIO"], true, "{what}");
            assert!(plist["Nice"].as_i64().is_some_and(|n| n > 0), "{what}");
            let hourly = plist["StartInterval"] == 3600
                || plist["StartCalendarInterval"].as_object().is_some_and(|c| {
                    c.len() == 1 && c["Minute"].as_i64().is_some_and(|m| (0..60).contains(&m))
                });
            assert!(
                hourly,
                "{what}: neither StartInterval 3600 nor a minute of every hour"
            );
            let path_var = plist["EnvironmentVariables"]["PATH"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: EnvironmentVariables PATH"));
            for dir in ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"] {
                assert!(
                    path_var.split(':').any(|d| d == dir),
                    "{what}: PATH lacks {dir}"
                );
            }
            for key in ["StandardOutPath", "StandardErrorPath"] {
                let log = plist[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{what}: {key}"));
                assert!(
                    log.starts_with("/Users/me/.patina/logs/") && log.ends_with(".log"),
                    "{what}: {key} {log}"
                );
            }
            let argv: Vec<String> = plist["ProgramArguments"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: ProgramArguments"))
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            assert!(argv[0].ends_with("/patina-forge"), "{what}: {argv:?}");
            assert!(argv.contains(&"--resume".to_owned()), "{what}: {argv:?}");
            patina_forge::cli::command()
                .try_get_matches_from(&argv)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            (path, plist, argv)
        })
        .collect()
}

/// Every launchd agent in contrib/launchd/ is a plist with the keys that make
/// it an hourly, low-priority background job, and the project's and the
/// repository's ProgramArguments run `--resume` with flags patina-forge
/// accepts, against the fake forge (the agent for all: below).
#[test]
fn the_launchd_agents_parse_and_run_resume() {
    let (env, _forge) = registered_world();
    let agents = launchd_agents();
    let labels: Vec<&str> = agents
        .iter()
        .map(|(_, plist, _)| plist["Label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "patina-forge.all",
            "patina-forge.project",
            "patina-forge.repo.claude-code"
        ],
        "an agent for all, a project agent and a repository agent"
    );
    let mut runs = 0;
    for (_, plist, argv) in agents {
        if argv.contains(&"--all".to_owned()) {
            continue;
        }
        let mut args = argv[1..].to_vec();
        // The checked-in agent is for `claude-code`; the world has `acme-widget`.
        if let Some(at) = args.iter().position(|a| a == "--repo") {
            args[at + 1] = "acme-widget".to_owned();
        }
        let dir = match plist.get("WorkingDirectory") {
            Some(_) => env.repo(),
            None => env.root(),
        };
        let out = env.run_in(dir, &args);
        out.assert_success();
        runs += 1;
    }
    assert_eq!(runs, 2);
    assert_eq!(
        env.query("SELECT count(*) FROM forge_refs WHERE resolved IS NULL")[0][0],
        "0"
    );
}

/// The second repository of [`two_registered_world`].
const GADGET: &str = "acme/gadget";

/// A world with two reference repositories registered, `acme-widget` and
/// `acme-gadget`, both on the fake forge, each with refs discovered and
/// nothing resolved; returns the gadget's folder too.
fn two_registered_world() -> (TestEnv, FakeForge, PathBuf) {
    let env = TestEnv::with_origin();
    env.commit("fix: first (#1)\n\nFixes #2");
    let forge = forge_with_items(2);
    forge.add_repo(GADGET);
    for i in 1..=2 {
        forge.put(GADGET, Item::issue(i, &format!("Gadget {i}")));
    }
    env.set_api_url(&forge.url());

    let gadget = env.root().join("gadget");
    std::fs::create_dir_all(&gadget).unwrap();
    env.git_in(&gadget, &["init", "-q", "-b", "main"]);
    for (key, value) in [
        ("user.name", "Test Author"),
        ("user.email", "author@example.com"),
        ("commit.gpgsign", "false"),
    ] {
        env.git_in(&gadget, &["config", key, value]);
    }
    env.set_origin_in(&gadget, &format!("https://github.com/{GADGET}.git"));
    env.git_in(
        &gadget,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "fix: one (#1), two (#2)",
        ],
    );

    std::fs::write(
        env.patina_home().join("registry.yaml"),
        format!(
            "repos:\n  acme-widget:\n    path: {}\n    github: {FORGE}\n  \
             acme-gadget:\n    path: {}\n    github: {GADGET}\n",
            env.repo().display(),
            gadget.display()
        ),
    )
    .unwrap();
    env.run(["--offline"]).assert_success();
    env.run(["-C", gadget.to_str().unwrap(), "--offline"])
        .assert_success();
    (env, forge, gadget)
}

/// The pending refs of the database under `dir`, and whether `number` is
/// resolved there.
fn drained(dir: &Path, number: u64) -> (String, String) {
    let db = testenv::db_under(dir);
    let pending = testenv::query_db(
        &db,
        "SELECT count(*) FROM forge_refs WHERE resolved IS NULL",
    );
    let resolved = testenv::query_db(
        &db,
        &format!(
            "SELECT count(*) FROM forge_refs WHERE ref_number = {number} AND resolved IS NOT NULL"
        ),
    );
    (pending[0][0].clone(), resolved[0][0].clone())
}

/// The one job for all, as systemd, launchd and cron run it: each drains
/// both registered repositories in one run. Before each, both repositories
/// get a commit that mentions a new issue, so that each run has work in both.
#[test]
fn the_jobs_for_all_drain_every_registered_repository() {
    let (env, forge, gadget) = two_registered_world();
    let mut round = 2;
    let mut next_round = || {
        round += 1;
        env.commit(&format!("fix: widget round (#{round})"));
        env.git_in(
            &gadget,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("fix: gadget round (#{round})"),
            ],
        );
        forge.put(FORGE, Item::issue(round, &format!("Issue {round}")));
        forge.put(GADGET, Item::issue(round, &format!("Gadget {round}")));
        round
    };
    let check = |number: u64, what: &str| {
        for dir in [env.repo(), gadget.as_path()] {
            assert_eq!(
                drained(dir, number),
                ("0".to_owned(), "1".to_owned()),
                "{what}: {} not drained",
                dir.display()
            );
        }
    };

    // systemd: a user service runs in the home folder.
    let number = next_round();
    let args = exec_start("patina-forge-all.service", "unused");
    assert_eq!(args, ["--resume", "--all"]);
    env.run_in(env.home(), &args).assert_success();
    check(number, "patina-forge-all.service");

    // launchd: no WorkingDirectory, so a folder that is no repository.
    let number = next_round();
    let (_, _, argv) = launchd_agents()
        .into_iter()
        .find(|(_, plist, _)| plist["Label"] == "patina-forge.all")
        .expect("the agent for all");
    env.run_in(env.root(), &argv[1..]).assert_success();
    check(number, "patina-forge.all.plist");

    // cron: the line as cron's sh runs it, in the home folder, the binary
    // where the line names it and the output appended to the log.
    let number = next_round();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/cron/patina-forge.crontab"),
    )
    .unwrap();
    let line = example
        .lines()
        .find(|l| !l.starts_with('#') && l.contains(" --all "))
        .expect("the line for all");
    let mut command = line;
    for _ in 0..5 {
        let field = command.trim_start();
        command = &field[field.find(' ').unwrap()..];
    }
    let bin = env.home().join(".cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_patina-forge"), bin.join("patina-forge"))
        .unwrap();
    std::fs::create_dir_all(env.home().join(".patina/logs")).unwrap();
    let out = Command::new("sh")
        .args(["-c", command.trim()])
        .current_dir(env.home())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.home())
        .env("PATINA_HOME", env.patina_home())
        .env("PATINA_FORGE_API_URL", forge.url())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(env.home().join(".patina/logs/cron-all.log")).unwrap();
    assert!(out.status.success(), "{line}: {log}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "all goes to the log"
    );
    check(number, "the crontab line");
}

#[test]
fn a_failing_resume_says_why_in_one_line_and_exits_non_zero() {
    let env = TestEnv::with_origin();
    env.commit("fix: first (#1)");
    let forge = forge_with_items(1);
    forge.require_token("right");
    env.set_api_url(&forge.url());
    env.run(["--offline"]).assert_success();
    let out = Command::new(env!("CARGO_BIN_EXE_patina-forge"))
        .args(["-C", env.repo().to_str().unwrap(), "--resume"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("PATINA_HOME", env.patina_home())
        .env("PATINA_FORGE_API_URL", forge.url())
        .env("GITHUB_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("token"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "the token leaked: {stderr}");
}

#[test]
fn the_crontab_lines_parse_as_patina_forge_flags() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/cron/patina-forge.crontab");
    let text = std::fs::read_to_string(path).unwrap();
    let mut checked = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("patina-forge\""))
    {
        let after = line.split("patina-forge\"").nth(1).unwrap();
        let flags: Vec<&str> = after
            .split(">>")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert!(flags.contains(&"--resume"), "{line}");
        let mut argv = vec!["patina-forge"];
        argv.extend(&flags);
        patina_forge::cli::command()
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        checked += 1;
    }
    assert_eq!(
        checked, 3,
        "the example has a line for all, a project line and a reference-repository line"
    );
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_patina-forge"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let version = text(&out.stdout);
    let inner = version
        .trim()
        .strip_prefix(&format!("patina-forge {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version:?}"));
    // A checkout names its commit; a source tarball says it cannot.
    assert!(
        inner == "unknown commit"
            || (inner.len() == 12 && inner.chars().all(|c| c.is_ascii_hexdigit())),
        "{version:?}"
    );
}
