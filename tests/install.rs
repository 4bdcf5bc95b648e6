//! What an installation needs comes from the binary (`--generate`), and the
//! copies in the repository (`contrib/`, which the Debian package and the
//! README's examples use) are that output: these tests fail when one is
//! stale.
//!
//! Regenerate them with: `PATINA_FORGE_BLESS=1 cargo test --test install`

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use patina_forge::schedule::{self, Program};

/// The home folder the checked-in launchd plists are written for (launchd
/// takes only absolute paths).
const MACOS_HOME: &str = "/Users/me";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn bless() -> bool {
    std::env::var_os("PATINA_FORGE_BLESS").is_some()
}

/// Fails unless the checked-in `relative` is `fresh`; rewrites it when blessing.
fn assert_checked_in(relative: &str, fresh: &str) {
    let path = repo_file(relative);
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{relative} is stale: run `PATINA_FORGE_BLESS=1 cargo test --test install` and commit it\n\
         --- checked in\n{checked_in}\n--- generated\n{fresh}"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn generate(binary: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .arg("--generate")
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run patina-forge")
}

fn generated(binary: &Path, home: &Path, args: &[&str]) -> String {
    let out = generate(binary, home, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A home folder with the built binary in `~/.cargo/bin`, where `cargo
/// install` puts it: the scheduler files name the binary where it runs.
struct CargoHome {
    _temp: tempfile::TempDir,
    home: PathBuf,
    binary: PathBuf,
}

impl CargoHome {
    fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().join("home");
        let bin = home.join(".cargo/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let binary = bin.join("patina-forge");
        // Not a symlink: the running binary is found by its real path.
        if std::fs::hard_link(env!("CARGO_BIN_EXE_patina-forge"), &binary).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_patina-forge"), &binary).unwrap();
        }
        CargoHome {
            _temp: temp,
            home,
            binary,
        }
    }

    fn generated(&self, args: &[&str]) -> String {
        generated(&self.binary, &self.home, args)
    }
}

#[test]
fn the_completion_scripts_are_current() {
    let home = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_patina-forge"));
    for (kind, file) in [
        ("complete-bash", "contrib/completions/patina-forge.bash"),
        ("complete-zsh", "contrib/completions/_patina-forge"),
        ("complete-fish", "contrib/completions/patina-forge.fish"),
    ] {
        let script = generated(binary, home.path(), &[kind]);
        assert!(script.contains("--generate"), "{kind}");
        assert!(!script.contains(env!("CARGO_MANIFEST_DIR")), "{kind}");
        assert_checked_in(file, &script);
    }
    // The older spelling prints the same script.
    let out = Command::new(binary)
        .args(["--completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        generated(binary, home.path(), &["complete-bash"])
    );
}

#[test]
fn the_checked_in_units_are_the_generated_ones() {
    let cargo = Program::new(
        Path::new("/home/me/.cargo/bin/patina-forge"),
        Path::new("/home/me"),
    )
    .unwrap();
    let system = Program::new(Path::new("/usr/bin/patina-forge"), Path::new("/home/me")).unwrap();
    for (program, folder) in [(cargo, "contrib/systemd"), (system.clone(), "contrib/deb")] {
        let units = schedule::systemd_units(&program);
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "patina-forge-all.service",
                "patina-forge-all.timer",
                "patina-forge@.service",
                "patina-forge@.timer",
                "patina-forge.service",
                "patina-forge.timer"
            ]
        );
        for unit in units {
            assert_checked_in(&format!("{folder}/{}", unit.name), &unit.text);
        }
    }
    // The Debian package installs every unit: `cargo deb` takes what
    // [package.metadata.deb] lists, and nothing else.
    let manifest = std::fs::read_to_string(repo_file("Cargo.toml")).unwrap();
    for unit in schedule::systemd_units(&system) {
        let asset = format!(
            "[\"contrib/deb/{}\", \"usr/lib/systemd/user/\", \"644\"]",
            unit.name
        );
        assert!(
            manifest.contains(&asset),
            "Cargo.toml's [package.metadata.deb] assets lack {asset}"
        );
    }
    let program = Program::new(
        Path::new(&format!("{MACOS_HOME}/.cargo/bin/patina-forge")),
        Path::new(MACOS_HOME),
    )
    .unwrap();
    let project = schedule::launchd_project_plist(
        &program,
        Path::new(MACOS_HOME),
        Path::new(&format!("{MACOS_HOME}/src/project")),
    )
    .unwrap();
    assert_checked_in("contrib/launchd/patina-forge.project.plist", &project);
}

/// `--generate systemd-units NAME | sh` writes the template units of
/// `contrib/systemd/` into the user's folder and enables NAME's timer, and
/// `--generate systemd-units --all | sh` the units for all and their timer;
/// each nothing else.
#[test]
fn the_systemd_script_installs_the_units_and_enables_the_timer() {
    for (args, units, timer) in [
        (
            &["systemd-units", "claude-code"][..],
            ["patina-forge@.service", "patina-forge@.timer"],
            "patina-forge@claude-code.timer",
        ),
        (
            &["systemd-units", "--all"][..],
            ["patina-forge-all.service", "patina-forge-all.timer"],
            "patina-forge-all.timer",
        ),
    ] {
        let cargo = CargoHome::new();
        let script = cargo.generated(args);
        assert!(
            !script.contains(cargo.home.to_str().unwrap()),
            "the home folder is %h: {script}"
        );

        // A systemctl that records what it is asked.
        let fake = cargo.home.join("fake-bin");
        std::fs::create_dir_all(&fake).unwrap();
        let systemctl = fake.join("systemctl");
        std::fs::write(
            &systemctl,
            "#!/bin/sh\necho \"$@\" >> \"$HOME/systemctl.log\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut sh = Command::new("sh")
            .env_clear()
            .env("HOME", &cargo.home)
            .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        sh.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(sh.wait().unwrap().success(), "{args:?}");

        let installed = cargo.home.join(".config/systemd/user");
        let mut names: Vec<String> = std::fs::read_dir(&installed)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, units, "{args:?}");
        for name in names {
            assert_eq!(
                std::fs::read_to_string(installed.join(&name)).unwrap(),
                std::fs::read_to_string(repo_file(&format!("contrib/systemd/{name}"))).unwrap(),
                "{name}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(cargo.home.join("systemctl.log")).unwrap(),
            format!("--user enable --now {timer}\n"),
            "{args:?}"
        );
    }
}

#[test]
fn the_launchd_plist_and_the_crontab_line_are_the_checked_in_ones() {
    let cargo = CargoHome::new();
    let home = cargo.home.to_str().unwrap();
    let example = std::fs::read_to_string(repo_file("contrib/cron/patina-forge.crontab")).unwrap();
    for (scope, plist_file) in [
        ("claude-code", "patina-forge.repo.claude-code.plist"),
        ("--all", "patina-forge.all.plist"),
    ] {
        let plist = cargo.generated(&["launchd-plist", scope]);
        assert!(
            plist.contains(&format!("<string>{home}/.cargo/bin/patina-forge</string>")),
            "{plist}"
        );
        assert_checked_in(
            &format!("contrib/launchd/{plist_file}"),
            &plist.replace(home, MACOS_HOME),
        );

        let crontab = cargo.generated(&["crontab", scope]);
        assert!(!crontab.contains(home), "{crontab}");
        let job = crontab
            .lines()
            .find(|line| !line.starts_with('#'))
            .expect("a job line");
        assert!(
            example.lines().any(|line| line == job),
            "contrib/cron/patina-forge.crontab lacks the generated line:\n{job}"
        );
    }
}

/// A binary outside the home folder is named by its absolute path.
#[test]
fn a_binary_outside_the_home_folder_is_named_by_its_path() {
    let cargo = CargoHome::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = generated(&cargo.binary, elsewhere.path(), &["crontab", "x"]);
    let path = cargo.binary.to_str().unwrap();
    assert!(
        out.contains(&format!(" \"{path}\" --repo x --resume ")),
        "{out}"
    );
    let out = generated(&cargo.binary, elsewhere.path(), &["systemd-units", "--all"]);
    assert!(
        out.contains(&format!("\nExecStart={path} --resume --all\n")),
        "{out}"
    );
}

/// A name that could break out of a unit file, XML or a crontab line is
/// refused as bad usage, before anything is printed; so are NAME with
/// --all, neither, and --all where it means nothing.
#[test]
fn names_that_could_inject_are_refused_as_bad_usage() {
    let cargo = CargoHome::new();
    for kind in ["systemd-units", "launchd-plist", "crontab"] {
        for name in [
            "a b",
            "x\nExecStartPre=/bin/false",
            "x</string><string>--full",
            "x;id",
            "x%n",
            "$(id)",
            "-x",
            "../x",
            "",
        ] {
            let out = generate(&cargo.binary, &cargo.home, &[kind, name]);
            assert_eq!(out.status.code(), Some(2), "{kind} {name:?}");
            assert!(out.stdout.is_empty(), "{kind} {name:?}");
            let stderr = text(&out.stderr);
            // clap takes `-x` for a flag before the name is looked at.
            let says = if name.starts_with('-') {
                "'-x'"
            } else {
                "name"
            };
            assert!(
                stderr.starts_with("error: ") && stderr.contains(says),
                "{kind} {name:?}: {stderr}"
            );
        }
        // Neither NAME nor --all: the error names both.
        let out = generate(&cargo.binary, &cargo.home, &[kind]);
        assert_eq!(out.status.code(), Some(2), "{kind} without NAME");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("NAME") && stderr.contains("--all"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "{kind}");
    }
    for (args, says) in [
        (&["man", "x"][..], "takes no NAME"),
        (&["complete-powershell"][..], "KIND is one of"),
        (&["crontab", "x", "--all"][..], "not both"),
        (&["systemd-units", "--all", "--repo", "x"][..], "--repo"),
        (&["man", "--all"][..], "takes no --all"),
        (&["complete-bash", "--all"][..], "takes no --all"),
    ] {
        let out = generate(&cargo.binary, &cargo.home, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}

/// `--generate KIND --all` lists nothing and opens nothing: it works where no
/// repository is and with a registry that cannot be read.
#[test]
fn all_needs_no_repository_and_no_registry() {
    let cargo = CargoHome::new();
    let patina_home = cargo.home.join(".patina");
    std::fs::create_dir_all(&patina_home).unwrap();
    std::fs::write(patina_home.join("registry.yaml"), "repos: [not: {a map").unwrap();
    for kind in ["systemd-units", "launchd-plist", "crontab"] {
        let out = Command::new(&cargo.binary)
            .args(["--generate", kind, "--all"])
            .current_dir(&cargo.home)
            .env_clear()
            .env("HOME", &cargo.home)
            .env("PATINA_HOME", &patina_home)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("--all"), "{kind}");
    }
}

/// A home folder whose path would have to be escaped is refused with a
/// reason, not written into a file.
#[test]
fn an_unplain_home_folder_is_refused() {
    let cargo = CargoHome::new();
    let odd = cargo.home.join("a b");
    std::fs::create_dir_all(&odd).unwrap();
    let out = generate(&cargo.binary, &odd, &["launchd-plist", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("cannot be written"),
        "{stderr}"
    );
}
