#![warn(missing_docs)]

//! patina-forge: mine issue and pull-request refs from git history into
//! patina's SQLite store, and resolve them against the forge within its rate
//! limits. `main.rs` turns the command line into a [`Config`] and hands it to
//! [`run`], which hands it to the mode's module in [`modes`]; the modes that
//! talk to the forge reach it through [`connect`]. See ARCHITECTURE.md for
//! the map, and `docs/contracts.md` for what users, timers and patina rely
//! on.

pub mod cli;
pub mod connect;
pub mod daemon;
pub mod discover;
pub mod drain;
pub mod exit;
pub mod forge;
pub mod home;
pub mod item;
pub mod manpage;
pub mod modes;
pub mod pace;
pub mod report;
pub mod schedule;
pub mod signals;
pub mod store;
pub mod target;

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Result;

use crate::exit::ExitCode;
use crate::forge::kind::ForgeKind;
use crate::home::PatinaHome;
use crate::target::{Target, TargetSpec};

/// One run, decided from the command line.
#[derive(Debug)]
pub struct Config {
    /// Which repository, which database, which forge repository.
    pub target: TargetSpec,
    /// What to do with them.
    pub mode: Mode,
    /// How to reach the forge, for the modes that do.
    pub forge: ForgeOptions,
}

/// What one run does: one mode flag at most; none is discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// No mode flag: mine new commits into the backlog.
    Discover {
        /// `--offline`: no request, so the number range is not learned.
        offline: bool,
    },
    /// `--status`: counts, runs and whether a sync runs; reads only.
    Status {
        /// `--json`: one object, for scripts.
        json: bool,
    },
    /// `--limit N`: settle at most N refs in the foreground.
    Limit(u64),
    /// `--sync`: drain everything in a background process.
    Sync,
    /// `--resume`: drain everything in the foreground; for timers.
    Resume,
    /// `--log`: the end of the sync log.
    Log {
        /// `--lines N`: how many lines from the end.
        lines: usize,
        /// `--follow`: then keep printing what is appended.
        follow: bool,
    },
    /// `--stop`: end the background sync after its request in flight.
    Stop,
    /// `--generate KIND [NAME]` (or `--completions SHELL`): a file made from
    /// the binary; needs no repository, also with `--all`.
    Generate(cli::Generate),
}

/// How to reach the forge.
#[derive(Debug, Clone)]
pub struct ForgeOptions {
    /// `--api-url` (or `PATINA_FORGE_API_URL`); else the forge kind's
    /// default for the host.
    pub api_url: Option<String>,
    /// `--forge-kind`; else remembered, named by the host, or asked.
    pub forge_kind: Option<ForgeKind>,
    /// `--delay`: the least spacing between two requests to one API host.
    pub delay: Duration,
    /// `--reserve`: the part of the account's budget kept for other tools.
    pub reserve: pace::Reserve,
    /// `--timeout`: the longest wait for one answer.
    pub timeout: Duration,
    /// `--api`: GraphQL, REST, or whichever the token and the forge allow.
    pub api: cli::ApiChoice,
    /// Refresh everything, not only what changed (`--full`).
    pub full: bool,
}

impl TryFrom<cli::Cli> for Config {
    type Error = clap::Error;

    /// Fails, as clap would, on a `--generate` clap cannot check alone.
    fn try_from(cli: cli::Cli) -> Result<Self, clap::Error> {
        let mode = if cli.status {
            Mode::Status { json: cli.json }
        } else if let Some(n) = cli.limit {
            Mode::Limit(n)
        } else if cli.sync {
            Mode::Sync
        } else if cli.resume {
            Mode::Resume
        } else if cli.log {
            Mode::Log {
                lines: cli.lines,
                follow: cli.follow,
            }
        } else if cli.stop {
            Mode::Stop
        } else if let Some(values) = &cli.generate {
            Mode::Generate(cli::Generate::parse(values, cli.all).map_err(|message| {
                cli::command().error(clap::error::ErrorKind::ValueValidation, message)
            })?)
        } else if let Some(shell) = cli.completions {
            if cli.all {
                return Err(cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--completions takes no --all",
                ));
            }
            Mode::Generate(cli::Generate::Completion(shell))
        } else {
            Mode::Discover {
                offline: cli.offline,
            }
        };
        Ok(Config {
            target: TargetSpec {
                path: cli.path,
                repo: cli.repo,
                db: cli.db,
                forge: cli.forge,
                all: cli.all,
            },
            mode,
            forge: ForgeOptions {
                api_url: cli.api_url,
                forge_kind: cli.forge_kind,
                delay: cli.delay,
                reserve: cli.reserve,
                timeout: cli.timeout,
                api: cli.api,
                full: cli.full,
            },
        })
    }
}

/// Runs the mode `config` names. A mode that returns ends in
/// [`ExitCode::Success`]; a failure comes back as an error, which
/// `main.rs` turns into one line on stderr and exit status 1, or 75 for
/// [`daemon::Busy`].
pub fn run(config: Config) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if let Mode::Generate(what) = &config.mode {
        // Needs no repository: made from the binary alone.
        modes::generate::run(what, &mut out)?;
        out.flush()?;
        return Ok(ExitCode::Success);
    }
    let home = PatinaHome::from_env()?;
    if config.target.all {
        let listed = Target::resolve_all(&config.target, &home)?;
        let code = modes::all::run(&home, &listed, &config.mode, &config.forge, &mut out)?;
        out.flush()?;
        return Ok(code);
    }
    let target = Target::resolve(&config.target, &home)?;
    let (home, target, options, out) = (&home, &target, &config.forge, &mut out);
    match config.mode {
        Mode::Discover { offline } => modes::discover::run(home, target, options, offline, out)?,
        Mode::Status { json } => modes::status::run(home, target, options, json, out)?,
        Mode::Limit(n) => modes::drain::limit(home, target, options, n, out)?,
        Mode::Resume => modes::drain::resume(home, target, options, out)?,
        Mode::Sync => modes::drain::sync_in_background(home, target, options, out)?,
        Mode::Log { lines, follow } => modes::log::run(home, target, lines, follow, out)?,
        Mode::Stop => modes::stop::run(home, target, out)?,
        Mode::Generate(_) => unreachable!("handled before the target is resolved"),
    }
    out.flush()?;
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::schedule::Scope;

    fn config(args: &[&str]) -> Config {
        let cli =
            cli::Cli::try_parse_from(std::iter::once("patina-forge").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        Config::try_from(cli).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn each_mode_flag_names_its_mode() {
        for (args, mode) in [
            (&[][..], Mode::Discover { offline: false }),
            (&["--offline"][..], Mode::Discover { offline: true }),
            (&["--status"][..], Mode::Status { json: false }),
            (&["--status", "--json"][..], Mode::Status { json: true }),
            (&["--limit", "7"][..], Mode::Limit(7)),
            (&["--sync"][..], Mode::Sync),
            (&["--resume"][..], Mode::Resume),
            (&["--resume", "--full"][..], Mode::Resume),
            (
                &["--log"][..],
                Mode::Log {
                    lines: 20,
                    follow: false,
                },
            ),
            (
                &["--log", "--lines", "3", "--follow"][..],
                Mode::Log {
                    lines: 3,
                    follow: true,
                },
            ),
            (&["--stop"][..], Mode::Stop),
            (
                &["--completions", "bash"][..],
                Mode::Generate(cli::Generate::Completion(clap_complete::Shell::Bash)),
            ),
            (
                &["--generate", "complete-bash"][..],
                Mode::Generate(cli::Generate::Completion(clap_complete::Shell::Bash)),
            ),
            (
                &["--generate", "man"][..],
                Mode::Generate(cli::Generate::Man),
            ),
            (
                &["--generate", "systemd-units", "claude-code"][..],
                Mode::Generate(cli::Generate::SystemdUnits(Scope::Repo(
                    "claude-code".into(),
                ))),
            ),
            (
                &["--generate", "launchd-plist", "a.b_c"][..],
                Mode::Generate(cli::Generate::LaunchdPlist(Scope::Repo("a.b_c".into()))),
            ),
            (
                &["--generate", "crontab", "x"][..],
                Mode::Generate(cli::Generate::Crontab(Scope::Repo("x".into()))),
            ),
            (
                &["--generate", "systemd-units", "--all"][..],
                Mode::Generate(cli::Generate::SystemdUnits(Scope::All)),
            ),
            (
                &["--all", "--generate", "launchd-plist"][..],
                Mode::Generate(cli::Generate::LaunchdPlist(Scope::All)),
            ),
            (
                &["--generate", "crontab", "--all"][..],
                Mode::Generate(cli::Generate::Crontab(Scope::All)),
            ),
        ] {
            assert_eq!(config(args).mode, mode, "{args:?}");
        }
    }

    /// `--all` picks the scheduler files for every repository; it cannot go
    /// with NAME, and means nothing to the man page or a completion.
    #[test]
    fn generate_takes_name_or_all() {
        for args in [
            &["--generate", "crontab", "x", "--all"][..],
            &["--generate", "systemd-units"][..],
            &["--generate", "man", "--all"][..],
            &["--generate", "complete-bash", "--all"][..],
            &["--completions", "bash", "--all"][..],
        ] {
            let cli = cli::Cli::try_parse_from(
                std::iter::once("patina-forge").chain(args.iter().copied()),
            )
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let err = Config::try_from(cli).expect_err(&format!("{args:?}"));
            assert!(err.to_string().contains("--all"), "{args:?}: {err}");
        }
    }

    #[test]
    fn two_modes_are_refused() {
        for args in [
            &["--status", "--sync"][..],
            &["--limit", "1", "--resume"][..],
            &["--offline", "--stop"][..],
            &["--generate", "man", "--status"][..],
            &["--completions", "bash", "--generate", "man"][..],
        ] {
            let parsed = cli::Cli::try_parse_from(
                std::iter::once("patina-forge").chain(args.iter().copied()),
            );
            assert!(parsed.is_err(), "{args:?}");
        }
    }

    #[test]
    fn the_target_and_the_forge_options_are_carried_over() {
        let given = config(&[
            "--repo",
            "mirror",
            "--db",
            "/tmp/x.db",
            "--forge",
            "owner/name",
            "--forge-kind",
            "gitea",
            "--delay",
            "2s",
            "--api",
            "rest",
            "--resume",
            "--full",
        ]);
        assert_eq!(given.target.repo.as_deref(), Some("mirror"));
        assert_eq!(
            given.target.db.as_deref(),
            Some(std::path::Path::new("/tmp/x.db"))
        );
        assert_eq!(
            given.target.forge.map(|f| f.to_string()).as_deref(),
            Some("owner/name")
        );
        assert_eq!(given.target.path, None);
        assert_eq!(given.forge.forge_kind, Some(ForgeKind::Gitea));
        assert_eq!(given.forge.delay, Duration::from_secs(2));
        assert_eq!(given.forge.api, cli::ApiChoice::Rest);
        assert!(given.forge.full);
        let defaults = config(&[]);
        assert_eq!(defaults.forge.forge_kind, None);
        assert_eq!(defaults.forge.delay, Duration::from_millis(750));
        assert_eq!(defaults.forge.api, cli::ApiChoice::Auto);
        assert!(!defaults.forge.full);
    }
}
