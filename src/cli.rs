//! The command line, defined once: `--help`, the man page and (later) shell
//! completions are all generated from [`Cli`], so they cannot drift apart.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, CommandFactory, Parser};

use crate::home;
use crate::schedule::Scope;
use crate::target::ForgeName;

const ABOUT: &str = "Mine issue and pull-request refs from git history into patina's database";

const LONG_ABOUT: &str = "\
patina-forge keeps a local SQLite copy of the issues and pull requests that a \
repository's history points at (`fix: parser (#123)`, `Merge pull request #45 from …`, \
`Fixes #7`).

Run without a mode, it discovers: it walks the commits it has not scanned before \
(every commit reachable from HEAD on the first run), mines their messages for refs and \
adds the new ones to the backlog in the project's database, \
<root>/.patina/local/data/patina.db. With one request it also learns the newest issue \
number N and adds 1..N (--offline skips that). Discovery resolves nothing.

--limit N resolves refs against the forge, paced so that the account's rate limit is \
never exceeded, even with several repositories syncing at once.

patina runs it as `patina scrape forge ARGS…`; it can also be run directly, from cron \
or from a systemd timer.";

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 failed (one line on stderr says what and what to do; with --all, one \
for each repository that failed); 2 bad usage; 75 another sync holds this repository, or with \
--all the all-repositories lock (--sync, --limit; --resume says so and exits 0).

Environment: PATINA_HOME (default ~/.patina) holds registry.yaml, the reference \
repositories under cache/repos/, and run/ (the sync lock and the pace ledger). The token \
comes from GITHUB_TOKEN, else GH_TOKEN, else `gh auth token`; without one GitHub allows \
60 requests an hour. It is never taken from the command line.";

/// `--version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PATINA_FORGE_COMMIT"),
    ")"
);

/// The command line as clap parses it; [`crate::Config`] is what a run
/// makes of it. `--help` takes its texts from `ABOUT` and `LONG_ABOUT`, not
/// from this comment.
#[derive(Debug, Parser)]
#[command(
    name = "patina-forge",
    version = VERSION,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    group(ArgGroup::new("target").args(["path", "repo"])),
    group(ArgGroup::new("mode").args(["status", "limit", "sync", "resume", "log", "stop", "generate", "completions"])),
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

    /// Every repository registered with patina, and the project run from, with any mode
    ///
    /// The repositories listed in $PATINA_HOME/registry.yaml (cache/repos/ folders that it
    /// does not list are not included), and the project in -C DIR or the current directory
    /// when it is one (a git repository with patina's .patina/ folder) and is not listed.
    /// Discovery (the walk, which costs no request) runs for each before --resume, --sync and
    /// --limit N (N refs for each repository), which drain them in one process, taking turns
    /// one request (a GraphQL batch) at a time, under the one account-wide pace and
    /// --reserve. A repository that another sync holds is skipped with one line; one that
    /// fails (its clone is gone, the forge says it does not exist) is reported and the rest
    /// go on: the exit status is then 1, with one line on stderr for each. --sync --all holds
    /// a lock of its own (a second one exits 75) and logs to logs/forge-sync-all.log, each
    /// repository's lines going to its own log; --log --all interleaves them by time.
    #[arg(long, conflicts_with_all = ["repo", "db", "forge"], help_heading = "Target")]
    pub all: bool,

    /// The database to use instead of the project's
    ///
    /// Default: <project root>/.patina/local/data/patina.db (patina's own path). patina-forge
    /// keeps its own store beside it, named after it (/x/foo.db: /x/foo-forge.db), and
    /// projects into the database what patina reads.
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

    /// Resolve at most N pending refs in the foreground, then exit
    ///
    /// Newest mentioning commit first, then the rest of the number range from the top
    /// down. Dense runs of numbers are listed 100 per request; the rest are asked one
    /// by one. A progress bar on a terminal, plain lines otherwise; Ctrl-C stops after
    /// the request in flight and keeps everything fetched.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Modes")]
    pub limit: Option<u64>,

    /// Drain the whole backlog in the background: print its PID and log, return at once
    ///
    /// The background process holds the repository's lock (a second --sync or --limit
    /// exits 75), writes to $PATINA_HOME/logs/forge-sync-OWNER-REPO.log, and ends after
    /// the request in flight on SIGTERM or --stop, keeping everything fetched.
    #[arg(long, help_heading = "Modes")]
    pub sync: bool,

    /// Drain everything pending in the foreground, then exit; for cron and timers
    ///
    /// When a sync already holds the repository it says so in one line and exits 0, so
    /// overlapping timer runs are harmless. Continues an interrupted drain from what the
    /// database holds: nothing fetched is fetched again.
    #[arg(long, help_heading = "Modes")]
    pub resume: bool,

    /// Print the end of the sync log
    ///
    /// $PATINA_HOME/logs/forge-sync-OWNER-REPO.log. With --all, every listed repository's log
    /// and --sync --all's own (logs/forge-sync-all.log), merged by the time each line starts
    /// with, every line led by [NAME] ([all] for the whole run's).
    #[arg(long, help_heading = "Modes")]
    pub log: bool,

    /// With --log: how many lines
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        requires = "log",
        help_heading = "Output"
    )]
    pub lines: usize,

    /// With --log: keep printing new lines until interrupted
    #[arg(long, requires = "log", help_heading = "Output")]
    pub follow: bool,

    /// Ask a background sync to stop after its request in flight, and wait until it has
    ///
    /// The process that holds the repository's lock: during --sync --all, that is the sync of
    /// all repositories, which then stops as a whole. --stop --all stops it, and any other sync
    /// of a listed repository.
    #[arg(long, help_heading = "Modes")]
    pub stop: bool,

    /// Print a file made from this binary, and exit: the man page, a completion script,
    /// or what runs --resume hourly for every registered repository (--all) or for the
    /// reference repository NAME
    ///
    /// KIND is man, complete-bash, complete-zsh or complete-fish; or, with --all or NAME:
    /// systemd-units (a sh script that writes the user units into ~/.config/systemd/user/
    /// and enables patina-forge-all.timer, or patina-forge@NAME.timer), launchd-plist (a
    /// macOS LaunchAgents plist, patina-forge.all or patina-forge.repo.NAME) or crontab (a
    /// crontab line). --all is one job that runs --resume --all: every repository in one
    /// process, under one pace; NAME, a repository on a schedule of its own. The scheduler
    /// files name this binary where it is; needs no repository.
    #[arg(
        long,
        value_names = ["KIND", "NAME"],
        num_args = 1..=2,
        help_heading = "Modes"
    )]
    pub generate: Option<Vec<String>>,

    /// The same as --generate complete-SHELL, kept for scripts written before it
    #[arg(long, value_name = "SHELL", hide = true)]
    pub completions: Option<clap_complete::Shell>,

    /// With --resume or --sync: refresh everything, not only what changed since the last
    /// refresh (still paced)
    #[arg(long, help_heading = "Forge")]
    pub full: bool,

    /// Discovery without any request: skip learning the newest issue number
    #[arg(long, conflicts_with = "mode", help_heading = "Forge")]
    pub offline: bool,

    /// What the forge is, when its host does not tell: github, github-enterprise or gitea
    ///
    /// github-enterprise is any other host speaking GitHub's API (REST at /api/v3, GraphQL
    /// at /api/graphql); gitea is Gitea, Forgejo or Codeberg (REST at /api/v1). github.com
    /// and codeberg.org are known; any other host is asked once (Gitea answers
    /// /api/v1/version, GitHub Enterprise /api/v3/meta) and the answer is kept in the
    /// database. This overrides both.
    #[arg(
        long,
        value_name = "KIND",
        value_enum,
        hide_possible_values = true,
        help_heading = "Forge"
    )]
    pub forge_kind: Option<crate::forge::kind::ForgeKind>,

    /// The forge's API base [default: the one the repository's latest run used, else
    /// https://api.github.com, https://HOST/api/v3 for GitHub Enterprise, https://HOST/api/v1
    /// for Gitea]
    ///
    /// Kept with the repository, so that it need not be given again (--all takes each
    /// repository's own). Plain http:// is accepted only for a loopback address.
    #[arg(
        long,
        value_name = "URL",
        env = "PATINA_FORGE_API_URL",
        help_heading = "Forge"
    )]
    pub api_url: Option<String>,

    /// Least spacing between two requests to one API host, shared by every
    /// patina-forge process of this user
    ///
    /// Server signals (retry-after, an exhausted budget, secondary limits) stretch it;
    /// nothing shortens it. A humantime duration: 750ms, 2s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "750ms", value_parser = humantime::parse_duration, help_heading = "Forge")]
    pub delay: Duration,

    /// Part of the account's rate limit left to your other tools (gh, CI, editors)
    ///
    /// While the budget left above it covers the work, requests go at the --delay spacing;
    /// when it would not, what is left above it is spread until the limit resets; at the
    /// reserve, nothing is sent until the reset (--status says until when). A percentage of
    /// the limit (10%) or a count of requests (GraphQL: points).
    #[arg(long, value_name = "COUNT|PERCENT", default_value = "10%", value_parser = crate::pace::Reserve::parse, help_heading = "Forge")]
    pub reserve: crate::pace::Reserve,

    /// Longest wait for one answer, before it counts as a failure and is asked again
    ///
    /// A GraphQL batch that times out is asked again smaller. A humantime duration.
    #[arg(long, value_name = "DURATION", default_value = "30s", env = "PATINA_FORGE_TIMEOUT", value_parser = humantime::parse_duration, help_heading = "Forge")]
    pub timeout: Duration,

    /// Which of GitHub's APIs resolves the backlog: auto, graphql or rest
    ///
    /// auto: GraphQL batches (up to 100 refs a request, with comments, approvals and
    /// linked issues) when a token is set and the host serves GraphQL, else REST.
    #[arg(
        long,
        value_name = "API",
        value_enum,
        default_value_t = ApiChoice::Auto,
        hide_possible_values = true,
        help_heading = "Forge"
    )]
    pub api: ApiChoice,

    /// With --status: print one JSON object instead of text (stable field names)
    ///
    /// Fields (more may be added, none renamed): repo ("owner/name"), running (bool),
    /// pid (number or null), total, resolved, pending, failed (counted as patina counts:
    /// failed = settled as not found or deleted; pending = not resolved yet), percent,
    /// rate_per_min (measured over the latest run, or null), eta_seconds (or null),
    /// last_error (or null), rate_limit ({remaining, limit, reset (RFC 3339)} as last seen,
    /// or null), last_run ({state: running|finished|interrupted|failed, started, ended}, or
    /// null), last_refresh ({at, changed}, or null), api ("graphql" or "rest", as the latest
    /// drain used, or null), api_note (why REST, or null), forge_kind ("github",
    /// "github-enterprise" or "gitea", or null), api_base (or null), waiting ({until (RFC
    /// 3339), reason} while the API host's rate limit holds every request back, or null).
    ///
    /// With --all, one object {"repos": [...], "hosts": [...]}. repos: the object above for
    /// each repository, newest activity first, plus name (in registry.yaml, or null for the
    /// project), path (its clone) and error (null, or why it could not be read; every other
    /// field is then null but repo, when known). hosts: one object per API host: host
    /// ("api.github.com", "HOST:PORT"), repos (the names of those using it), rate_limit
    /// ({remaining, limit, reset, api ("graphql": points, or "rest")}, the freshest the
    /// repositories saw, or null), waiting (as above, or null), next_slot (when the next
    /// request may leave, RFC 3339, or null when now), secondary_limits (in a row).
    #[arg(long, requires = "status", help_heading = "Output")]
    pub json: bool,
}

/// The clap command, for the man page and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// What `--generate` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generate {
    /// `man`: the man page.
    Man,
    /// `complete-SHELL`: a completion script.
    Completion(clap_complete::Shell),
    /// `systemd-units NAME|--all`: a script installing the units, enabling
    /// NAME's timer or the one for all.
    SystemdUnits(Scope),
    /// `launchd-plist NAME|--all`: the LaunchAgents plist.
    LaunchdPlist(Scope),
    /// `crontab NAME|--all`: the crontab line.
    Crontab(Scope),
}

impl Generate {
    /// Reads `--generate KIND [NAME]`, with `all` for `--all`; the error says
    /// what is allowed.
    pub fn parse(values: &[String], all: bool) -> Result<Self, String> {
        use clap_complete::Shell;
        let (kind, name) = match values {
            [kind] => (kind.as_str(), None),
            [kind, name] => (kind.as_str(), Some(name.as_str())),
            _ => {
                return Err("--generate takes KIND, and NAME or --all for a scheduler file".into());
            }
        };
        let plain = match kind {
            "man" => Some(Generate::Man),
            "complete-bash" => Some(Generate::Completion(Shell::Bash)),
            "complete-zsh" => Some(Generate::Completion(Shell::Zsh)),
            "complete-fish" => Some(Generate::Completion(Shell::Fish)),
            _ => None,
        };
        if let Some(plain) = plain {
            return match (name, all) {
                (None, false) => Ok(plain),
                (Some(name), _) => Err(format!("--generate {kind} takes no NAME (got {name:?})")),
                (None, true) => Err(format!("--generate {kind} takes no --all")),
            };
        }
        let scheduler: fn(Scope) -> Generate = match kind {
            "systemd-units" => Generate::SystemdUnits,
            "launchd-plist" => Generate::LaunchdPlist,
            "crontab" => Generate::Crontab,
            _ => {
                return Err(format!(
                    "--generate {kind:?}: KIND is one of man, complete-bash, complete-zsh, \
                     complete-fish, systemd-units, launchd-plist, crontab"
                ));
            }
        };
        let scope = match (name, all) {
            (Some(name), false) => {
                crate::schedule::check_repo_name(name)
                    .map_err(|e| format!("--generate {kind}: the repository name: {e}"))?;
                Scope::Repo(name.to_owned())
            }
            (None, true) => Scope::All,
            (Some(name), true) => {
                return Err(format!(
                    "--generate {kind} takes NAME ({name:?}) or --all, not both"
                ));
            }
            (None, false) => {
                return Err(format!(
                    "--generate {kind} needs the NAME of a reference repository registered with \
                     patina, or --all for one job that runs every registered repository"
                ));
            }
        };
        Ok(scheduler(scope))
    }
}

fn parse_repo_name(value: &str) -> Result<String, String> {
    home::check_name(value).map(|()| value.to_owned())
}

fn parse_forge(value: &str) -> Result<ForgeName, String> {
    ForgeName::parse(value)
}

/// `--api`. The variants' docs describe the values in zsh and fish
/// completions, as [`crate::forge::kind::ForgeKind`]'s do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiChoice {
    /// GraphQL when a token is set and the forge serves it, else REST
    Auto,
    /// GraphQL batches; refused without a token or on Gitea
    Graphql,
    /// REST alone, even with a token
    Rest,
}
