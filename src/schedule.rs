//! The scheduler files that run `patina-forge --resume` hourly: systemd user
//! units, a launchd agent, a crontab line, each for one reference repository
//! or for all of them (`--resume --all`, one process). `--generate` prints
//! them for the binary that runs it, and the copies in `contrib/` are these
//! same texts for `~/.cargo/bin/patina-forge` (and `/usr/bin/patina-forge`
//! for the Debian package), so the two cannot drift apart.
//!
//! Everything that goes into a file is checked first: a repository name and
//! a path may hold only characters that mean nothing to a unit file, to XML
//! and to a crontab line or the shell it runs in.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::home;

/// `PATH` for a launchd agent, which starts with launchd's own short one:
/// Homebrew's folders (Apple silicon, then Intel) first, so that `gh auth
/// token` finds `gh`.
pub const LAUNCHD_PATH: &str = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Where the binary is, as the scheduler files name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The absolute path of the binary.
    path: PathBuf,
    /// The user's home folder, when the binary is inside it (systemd says
    /// `%h/…` and cron `"$HOME/…"`, so the files do not name the user).
    home: Option<PathBuf>,
}

impl Program {
    /// The binary at `path`, for the user whose home is `home`. Both must
    /// be absolute and plain (see [`check_path`]).
    pub fn new(path: &Path, home: &Path) -> Result<Self> {
        check_path(path).context("the path of patina-forge")?;
        check_path(home).context("the home folder")?;
        let inside = path
            .strip_prefix(home)
            .is_ok_and(|rest| !rest.as_os_str().is_empty());
        Ok(Self {
            path: path.to_owned(),
            home: inside.then(|| home.to_owned()),
        })
    }

    /// The running binary, for the user running it.
    pub fn current() -> Result<Self> {
        let path = std::env::current_exe().context("cannot find the path of patina-forge")?;
        let home = dirs::home_dir().context("cannot find the home folder: set HOME")?;
        Self::new(&path, &home)
    }

    /// The path relative to the home folder, when it is inside it.
    fn in_home(&self) -> Option<String> {
        let home = self.home.as_ref()?;
        Some(self.path.strip_prefix(home).ok()?.to_str()?.to_owned())
    }

    fn absolute(&self) -> &str {
        self.path.to_str().expect("checked: ASCII")
    }

    /// As a unit's `ExecStart=` names it.
    fn systemd(&self) -> String {
        match self.in_home() {
            Some(rest) => format!("%h/{rest}"),
            None => self.absolute().to_owned(),
        }
    }

    /// As a crontab line names it, quoted for the shell cron runs.
    fn cron(&self) -> String {
        match self.in_home() {
            Some(rest) => format!("\"$HOME/{rest}\""),
            None => format!("\"{}\"", self.absolute()),
        }
    }
}

/// A path that may go into a unit file, a plist and a crontab line as it is:
/// absolute, of ASCII letters, digits and `/ . _ + -` alone. `%` means
/// something to systemd and to cron, `$`, spaces and quotes to the shell and
/// systemd, `&` and `<` to XML; none of them can slip through.
pub fn check_path(path: &Path) -> Result<()> {
    let text = path.to_str().unwrap_or("");
    if !path.is_absolute()
        || text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-'))
    {
        bail!(
            "{} cannot be written into a unit file, a plist or a crontab line as it is \
             (only an absolute path of A-Z a-z 0-9 / . _ + - can)",
            path.display()
        );
    }
    Ok(())
}

/// A reference repository's name as the scheduler files may carry it:
/// patina's name rules ([`home::check_name`]), and no leading `-`, which
/// `--repo` would take for a flag.
pub fn check_repo_name(name: &str) -> Result<(), String> {
    home::check_name(name)?;
    if name.starts_with('-') {
        return Err(format!(
            "{name:?} is not a valid name (it cannot start with `-`)"
        ));
    }
    Ok(())
}

/// Which repositories a scheduler file runs `--resume` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `NAME`: one reference repository registered with patina, on a
    /// schedule of its own (`--repo NAME --resume`).
    Repo(String),
    /// `--all`: every repository registered with patina, drained by one
    /// process under one pace (`--resume --all`).
    All,
}

impl Scope {
    /// The name, checked, when there is one.
    fn checked(&self) -> Result<Option<&str>> {
        match self {
            Scope::Repo(name) => {
                check_repo_name(name).map_err(anyhow::Error::msg)?;
                Ok(Some(name))
            }
            Scope::All => Ok(None),
        }
    }
}

/// The minute of the hour at which the launchd agent and the crontab line
/// for all repositories run. One job has nobody of its own to spread over
/// the hour with; off the full hour, when many machines' own jobs start.
pub const ALL_MINUTE: u32 = 17;

/// The minute of the hour at which NAME's launchd agent and crontab line
/// run: the same for a name on every machine, and different names spread
/// over the hour (what `RandomizedDelaySec=` does for the systemd timer), so
/// that many repositories do not all ask the forge at once.
pub fn minute(name: &str) -> u32 {
    // FNV-1a: small, stable across releases and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % 60
}

/// A file to write, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its name, without a folder.
    pub name: String,
    /// Its content.
    pub text: String,
}

/// The six systemd user units: `patina-forge-all.service` and `.timer` for
/// every registered repository at once, `patina-forge@.service` and `.timer`
/// for a reference repository on its own schedule (the instance is its
/// name), `patina-forge.service` and `.timer` for the project in one folder.
pub fn systemd_units(program: &Program) -> Vec<File> {
    let exec = program.systemd();
    // `%i`, not `%I`: the unescaped form turns every `-` of a name into `/`.
    let all_service = format!(
        "\
# patina-forge for every reference repository registered with patina (`patina repo add`),
# in one process: patina-forge-all.service resolves what is pending for each, taking turns
# under one pace, and exits. Started by patina-forge-all.timer; see the README and
# patina-forge(1). patina-forge@NAME.timer runs one repository on a schedule of its own,
# patina-forge.timer a project folder.
[Unit]
Description=patina-forge: resolve the forge backlogs of every registered repository
Documentation=man:patina-forge(1)

[Service]
Type=oneshot
# Exits 0 when every repository is done (one that another sync holds is skipped with
# one line), and 1 with one line on stderr for each that failed (the unit is then failed).
ExecStart={exec} --resume --all
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
# Draining many repositories at the account's pace can take hours, so no start timeout:
# a oneshot's default (systemd.service(5)), written out because no drain may be cut off.
# A timer that elapses during a run leaves it running and starts no second one.
TimeoutStartSec=infinity
# SIGTERM ends the drain after the request in flight (30 s at the most).
TimeoutStopSec=45
"
    );
    let all_timer = "\
# Runs patina-forge-all.service every hour; a laptop that slept catches up.
[Unit]
Description=Hourly patina-forge --resume --all
Documentation=man:patina-forge(1)

[Timer]
OnCalendar=hourly
# Not on the full hour with every other hourly job, nor at the second other machines ask.
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
"
    .to_owned();
    let template_service = format!(
        "\
# patina-forge for a reference repository registered with patina (`patina repo add`),
# on a schedule of its own (patina-forge-all.timer covers every repository at once):
# patina-forge@NAME.service resolves what is pending for NAME and exits.
# Started by patina-forge@NAME.timer; see the README and patina-forge(1).
[Unit]
Description=patina-forge: resolve the forge backlog of %i
Documentation=man:patina-forge(1)

[Service]
Type=oneshot
# --resume exits 0 with one line when a sync already holds the repository,
# and non-zero with one line on stderr when it fails (the unit is then failed).
ExecStart={exec} --repo %i --resume
# A background job: it must not slow down the desktop it runs on.
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
# SIGTERM ends the drain after the request in flight (30 s at the most).
TimeoutStopSec=45
"
    );
    let template_timer = "\
# Runs patina-forge@NAME.service every hour; a laptop that slept catches up.
[Unit]
Description=Hourly patina-forge --resume for %i
Documentation=man:patina-forge(1)

[Timer]
OnCalendar=hourly
# Many timers of one user must not all ask the forge at the same second.
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
"
    .to_owned();
    let project_service = format!(
        "\
# patina-forge for the project in one folder: set WorkingDirectory= to it
# (a copy in ~/.config/systemd/user/, or `systemctl --user edit patina-forge.service`).
[Unit]
Description=patina-forge: resolve the forge backlog of the project in %h/src/project
Documentation=man:patina-forge(1)

[Service]
Type=oneshot
WorkingDirectory=%h/src/project
ExecStart={exec} --resume
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
TimeoutStopSec=45
"
    );
    let project_timer = "\
# Runs patina-forge.service every hour; a laptop that slept catches up.
[Unit]
Description=Hourly patina-forge --resume for the project in %h/src/project
Documentation=man:patina-forge(1)

[Timer]
OnCalendar=hourly
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
"
    .to_owned();
    [
        ("patina-forge-all.service", all_service),
        ("patina-forge-all.timer", all_timer),
        ("patina-forge@.service", template_service),
        ("patina-forge@.timer", template_timer),
        ("patina-forge.service", project_service),
        ("patina-forge.timer", project_timer),
    ]
    .into_iter()
    .map(|(name, text)| File {
        name: name.to_owned(),
        text,
    })
    .collect()
}

/// `--generate systemd-units NAME|--all`: a `sh` script that writes the
/// units of the scope into the user's systemd folder (the reference
/// repositories' templates, or the units for all) and enables its timer. A
/// script, because a timer is two files; the units are in it verbatim, in
/// quoted here-documents that the shell does not expand.
pub fn systemd_script(program: &Program, scope: &Scope) -> Result<String> {
    let (header, prefix, timer) = match scope.checked()? {
        Some(name) => (
            format!(
                "patina-forge's systemd user units for reference repositories, and the hourly\n\
                 # timer of {name}. Run it: patina-forge --generate systemd-units {name} | sh"
            ),
            "patina-forge@",
            format!("patina-forge@{name}.timer"),
        ),
        None => (
            "patina-forge's systemd user units for every registered repository, and their\n\
             # hourly timer. Run it: patina-forge --generate systemd-units --all | sh"
                .to_owned(),
            "patina-forge-all.",
            "patina-forge-all.timer".to_owned(),
        ),
    };
    let mut script = format!(
        "\
#!/bin/sh
# {header}
set -eu
dir=\"${{XDG_CONFIG_HOME:-$HOME/.config}}/systemd/user\"
mkdir -p \"$dir\"
"
    );
    for unit in systemd_units(program)
        .into_iter()
        .filter(|unit| unit.name.starts_with(prefix))
    {
        script.push_str(&format!(
            "cat > \"$dir/{}\" <<'UNIT'\n{}UNIT\n",
            unit.name, unit.text
        ));
    }
    script.push_str(&format!("systemctl --user enable --now '{timer}'\n"));
    Ok(script)
}

/// A launchd agent's label: `patina-forge.repo.NAME` for a reference
/// repository, `patina-forge.all` for all; the plist is
/// `~/Library/LaunchAgents/LABEL.plist`.
pub fn launchd_label(scope: &Scope) -> String {
    match scope {
        Scope::Repo(name) => format!("patina-forge.repo.{name}"),
        Scope::All => "patina-forge.all".to_owned(),
    }
}

/// `--generate launchd-plist NAME|--all`: the LaunchAgents plist that runs
/// `--repo NAME --resume` or `--resume --all` hourly. launchd expands
/// neither `~` nor `$HOME`, so the paths are the user's own, absolute.
pub fn launchd_plist(program: &Program, home: &Path, scope: &Scope) -> Result<String> {
    let name = scope.checked()?;
    check_path(home).context("the home folder")?;
    let home = home.to_str().expect("checked: ASCII");
    let (args, minute, log) = match name {
        Some(name) => (vec!["--repo", name, "--resume"], minute(name), name),
        None => (vec!["--resume", "--all"], ALL_MINUTE, "all"),
    };
    Ok(plist(
        &launchd_label(scope),
        program.absolute(),
        &args,
        None,
        minute,
        &format!("{home}/.patina/logs/launchd-{log}.log"),
    ))
}

/// One agent. Every value was checked to hold no XML metacharacter.
fn plist(
    label: &str,
    program: &str,
    args: &[&str],
    working_directory: Option<&str>,
    minute: u32,
    log: &str,
) -> String {
    let mut arguments = format!("        <string>{program}</string>\n");
    for arg in args {
        arguments.push_str(&format!("        <string>{arg}</string>\n"));
    }
    let working_directory = working_directory
        .map(|dir| format!("    <key>WorkingDirectory</key>\n    <string>{dir}</string>\n"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{label}</string>
    <key>ProgramArguments</key>
    <array>
{arguments}    </array>
{working_directory}    <key>StartCalendarInterval</key>
    <dict>
        <key>Minute</key>
        <integer>{minute}</integer>
    </dict>
    <key>RunAtLoad</key>
    <true/>
    <key>ProcessType</key>
    <string>Background</string>
    <key>LowPriorityIO</key>
    <true/>
    <key>Nice</key>
    <integer>10</integer>
    <key>ExitTimeOut</key>
    <integer>45</integer>
    <key>EnvironmentVariables</key>
    <dict>
        <key>PATH</key>
        <string>{LAUNCHD_PATH}</string>
    </dict>
    <key>StandardOutPath</key>
    <string>{log}</string>
    <key>StandardErrorPath</key>
    <string>{log}</string>
</dict>
</plist>
"#
    )
}

/// The agent for the project in one folder (`contrib/launchd/`): the same
/// as a repository's, run in `dir` without `--repo`.
pub fn launchd_project_plist(program: &Program, home: &Path, dir: &Path) -> Result<String> {
    check_path(home).context("the home folder")?;
    check_path(dir).context("the project folder")?;
    let home = home.to_str().expect("checked: ASCII");
    Ok(plist(
        "patina-forge.project",
        program.absolute(),
        &["--resume"],
        Some(dir.to_str().expect("checked: ASCII")),
        0,
        &format!("{home}/.patina/logs/launchd-project.log"),
    ))
}

/// `--generate crontab NAME|--all`: a comment and the line that runs
/// `--repo NAME --resume` or `--resume --all` hourly, its output appended to
/// a log (cron would mail it). For `crontab -e`, or
/// `(crontab -l; patina-forge --generate crontab NAME) | crontab -`.
pub fn crontab(program: &Program, scope: &Scope) -> Result<String> {
    let bin = program.cron();
    Ok(match scope.checked()? {
        Some(name) => format!(
            "# patina-forge for the reference repository {name}, every hour (logs/ must exist).\n\
             {minute} * * * * {bin} --repo {name} --resume >> \"$HOME/.patina/logs/cron-{name}.log\" 2>&1\n",
            minute = minute(name),
        ),
        None => format!(
            "# patina-forge for every repository registered with patina, in one process, every hour\n\
             # (logs/ must exist).\n\
             {ALL_MINUTE} * * * * {bin} --resume --all >> \"$HOME/.patina/logs/cron-all.log\" 2>&1\n",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(path: &str) -> Program {
        Program::new(Path::new(path), Path::new("/home/me")).unwrap()
    }

    #[test]
    fn a_binary_in_the_home_folder_is_named_from_it() {
        let cargo = program("/home/me/.cargo/bin/patina-forge");
        assert_eq!(cargo.systemd(), "%h/.cargo/bin/patina-forge");
        assert_eq!(cargo.cron(), "\"$HOME/.cargo/bin/patina-forge\"");
        let system = program("/usr/bin/patina-forge");
        assert_eq!(system.systemd(), "/usr/bin/patina-forge");
        assert_eq!(system.cron(), "\"/usr/bin/patina-forge\"");
        // A sibling whose name starts like the home folder is not in it.
        let other = program("/home/meg/bin/patina-forge");
        assert_eq!(other.systemd(), "/home/meg/bin/patina-forge");
    }

    #[test]
    fn paths_that_would_mean_something_in_a_file_are_refused() {
        for bad in [
            "relative/patina-forge",
            "/home/me/my bin/patina-forge",
            "/home/me/100%/patina-forge",
            "/home/me/$x/patina-forge",
            "/home/me/a&b/patina-forge",
            "/home/me/<x>/patina-forge",
            "/home/me/\"q\"/patina-forge",
            "/home/me/new\nline",
            "/home/me/été/patina-forge",
        ] {
            let err = Program::new(Path::new(bad), Path::new("/home/me")).unwrap_err();
            assert!(
                format!("{err:#}").contains("cannot be written"),
                "{bad}: {err:#}"
            );
        }
        assert!(Program::new(Path::new("/usr/bin/patina-forge"), Path::new("/home/a b")).is_err());
    }

    #[test]
    fn names_that_could_inject_are_refused() {
        let cargo = program("/home/me/.cargo/bin/patina-forge");
        for bad in [
            "", "-x", "--resume", "a b", "a;b", "a\nb", "a%b", "a&b", "a<b", "a'b", "$(id)", "..",
            "a/b",
        ] {
            let bad = Scope::Repo(bad.to_owned());
            assert!(systemd_script(&cargo, &bad).is_err(), "{bad:?}");
            assert!(
                launchd_plist(&cargo, Path::new("/home/me"), &bad).is_err(),
                "{bad:?}"
            );
            assert!(crontab(&cargo, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn all_is_one_job_that_runs_resume_all() {
        let cargo = program("/home/me/.cargo/bin/patina-forge");
        let script = systemd_script(&cargo, &Scope::All).unwrap();
        let written: Vec<&str> = script
            .lines()
            .filter_map(|line| line.strip_prefix("cat > \"$dir/"))
            .collect();
        assert_eq!(
            written,
            [
                "patina-forge-all.service\" <<'UNIT'",
                "patina-forge-all.timer\" <<'UNIT'"
            ]
        );
        assert!(script.contains("\nExecStart=%h/.cargo/bin/patina-forge --resume --all\n"));
        assert!(script.contains("\nTimeoutStartSec=infinity\n"));
        assert!(script.ends_with("\nsystemctl --user enable --now 'patina-forge-all.timer'\n"));

        let plist = launchd_plist(&cargo, Path::new("/home/me"), &Scope::All).unwrap();
        assert!(
            plist.contains("<string>patina-forge.all</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<string>--resume</string>\n        <string>--all</string>\n"),
            "{plist}"
        );
        assert!(!plist.contains("--repo"), "{plist}");

        let line = crontab(&cargo, &Scope::All).unwrap();
        assert!(
            line.contains(&format!(
                "\n{ALL_MINUTE} * * * * \"$HOME/.cargo/bin/patina-forge\" --resume --all >> "
            )),
            "{line}"
        );
    }

    #[test]
    fn minutes_spread_over_the_hour() {
        let minutes: std::collections::BTreeSet<u32> =
            (0..200).map(|i| minute(&format!("repo-{i}"))).collect();
        assert!(minutes.iter().all(|&m| m < 60));
        assert!(minutes.len() > 40, "{minutes:?}");
        assert_eq!(minute("claude-code"), minute("claude-code"));
    }
}
