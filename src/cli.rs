//! The command line, defined once: `--help`, the man page and (later) shell
//! completions are all generated from [`Cli`], so they cannot drift apart.

use std::path::PathBuf;

use clap::{ArgGroup, CommandFactory, Parser};

use crate::home;
use crate::target::ForgeName;

const ABOUT: &str = "Mine issue and pull-request refs from git history into patina's database";

const LONG_ABOUT: &str = "\
patina-forge keeps a local SQLite copy of the issues and pull requests that a \
repository's history points at (`fix: parser (#123)`, `Merge pull request #45 from …`, \
`Fixes #7`).

Run without a mode, it discovers: it walks the commits it has not scanned before \
(every commit reachable from HEAD on the first run), mines their messages for refs and \
adds the new ones to the backlog in the project's database, \
<root>/.patina/local/data/patina.db. Discovery needs no network and resolves nothing.

patina runs it as `patina scrape forge ARGS…`; it can also be run directly, from cron \
or from a systemd timer.";

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 failed (one line on stderr says what and what to do); 2 bad usage.

Environment: PATINA_HOME (default ~/.patina) holds registry.yaml and the reference \
repositories under cache/repos/.";

#[derive(Debug, Parser)]
#[command(
    name = "patina-forge",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    group(ArgGroup::new("target").args(["path", "repo"])),
)]
pub struct Cli {
    /// The project: a directory inside a git repository [default: the current directory]
    ///
    /// The repository root is found from it, also from a subdirectory. Bare repositories
    /// (mirrors) work too; their database lives under <git dir>/.patina/.
    #[arg(
        short = 'C',
        long = "path",
        value_name = "DIR",
        help_heading = "Target"
    )]
    pub path: Option<PathBuf>,

    /// A reference repository registered with patina
    ///
    /// Looked up as repos.NAME.path in $PATINA_HOME/registry.yaml, else as
    /// $PATINA_HOME/cache/repos/NAME. The entry's `github:` names the forge repository when
    /// the clone has no origin.
    #[arg(long, value_name = "NAME", value_parser = parse_repo_name, help_heading = "Target")]
    pub repo: Option<String>,

    /// The database to use instead of the project's
    ///
    /// Default: <project root>/.patina/local/data/patina.db (patina's own path).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub db: Option<PathBuf>,

    /// The forge repository, when origin does not tell (bare mirrors, forks, local remotes)
    ///
    /// Otherwise it is read from the `origin` remote: git@HOST:OWNER/REPO,
    /// ssh://[USER@]HOST[:PORT]/OWNER/REPO, https://HOST/OWNER/REPO or git://HOST/OWNER/REPO.
    #[arg(long, value_name = "OWNER/REPO", value_parser = parse_forge, help_heading = "Target")]
    pub forge: Option<ForgeName>,

    /// Show resolved / pending / failed refs of the backlog; reads only, never writes
    #[arg(long, help_heading = "Modes")]
    pub status: bool,

    /// With --status: print one JSON object instead of text (stable field names)
    #[arg(long, requires = "status", help_heading = "Output")]
    pub json: bool,
}

/// The clap command, for the man page and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

fn parse_repo_name(value: &str) -> Result<String, String> {
    home::check_name(value).map(|()| value.to_owned())
}

fn parse_forge(value: &str) -> Result<ForgeName, String> {
    ForgeName::parse(value)
}
