//! patina-forge: mine issue and pull-request refs from git history into
//! patina's SQLite store, and resolve them against the forge within its rate
//! limits. `main.rs` turns the command line into a [`Config`] and hands it to
//! [`run`]; see ARCHITECTURE.md for the map.

pub mod cli;
pub mod daemon;
pub mod discover;
pub mod exit;
pub mod forge;
pub mod home;
pub mod item;
pub mod pace;
pub mod report;
pub mod signals;
pub mod store;
pub mod sync;
pub mod target;

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Result;

use crate::exit::ExitCode;
use crate::forge::github::{self, Answer, GitHub};
use crate::forge::kind::{self, ForgeKind};
use crate::forge::{Item, token};
use crate::home::PatinaHome;
use crate::pace::{Pace, Turn};
use crate::store::{Store, SyncState};
use crate::target::{Target, TargetSpec};

/// One run, decided from the command line.
#[derive(Debug)]
pub struct Config {
    pub target: TargetSpec,
    pub mode: Mode,
    pub forge: ForgeOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Discover { offline: bool },
    Status { json: bool },
    Limit(u64),
    Sync,
    Resume,
    Log { lines: usize, follow: bool },
    Stop,
    Completions(clap_complete::Shell),
}

/// How to reach the forge.
#[derive(Debug, Clone)]
pub struct ForgeOptions {
    pub api_url: Option<String>,
    pub forge_kind: Option<ForgeKind>,
    pub delay: Duration,
    pub timeout: Duration,
    pub api: cli::ApiChoice,
    /// Refresh everything, not only what changed (`--full`).
    pub full: bool,
}

impl From<cli::Cli> for Config {
    fn from(cli: cli::Cli) -> Self {
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
        } else if let Some(shell) = cli.completions {
            Mode::Completions(shell)
        } else {
            Mode::Discover {
                offline: cli.offline,
            }
        };
        Config {
            target: TargetSpec {
                path: cli.path,
                repo: cli.repo,
                db: cli.db,
                forge: cli.forge,
            },
            mode,
            forge: ForgeOptions {
                api_url: cli.api_url,
                forge_kind: cli.forge_kind,
                delay: cli.delay,
                timeout: cli.timeout,
                api: cli.api,
                full: cli.full,
            },
        }
    }
}

pub fn run(config: Config) -> Result<ExitCode> {
    if let Mode::Completions(shell) = config.mode {
        // Needs no repository: made from the same definition as --help.
        clap_complete::generate(
            shell,
            &mut cli::command(),
            "patina-forge",
            &mut io::stdout(),
        );
        return Ok(ExitCode::Success);
    }
    let home = PatinaHome::from_env()?;
    let target = Target::resolve(&config.target, &home)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match config.mode {
        Mode::Discover { offline } => discover(&home, &target, &config.forge, offline, &mut out)?,
        Mode::Status { json } => status(&home, &target, json, &mut out)?,
        Mode::Limit(n) => {
            let lock = daemon::SyncLock::acquire(&home, &target.forge.repo)?;
            drain(
                &home,
                &target,
                &config.forge,
                Some(n),
                "limit",
                lock,
                &mut out,
            )?;
        }
        Mode::Resume => match daemon::SyncLock::acquire(&home, &target.forge.repo) {
            Ok(lock) => drain(
                &home,
                &target,
                &config.forge,
                None,
                "resume",
                lock,
                &mut out,
            )?,
            Err(e) => match e.downcast::<daemon::Busy>() {
                // Overlapping timer runs are harmless: one line, success.
                Ok(busy) => writeln!(out, "{busy}")?,
                Err(e) => return Err(e),
            },
        },
        Mode::Sync => sync_in_background(&home, &target, &config.forge, &mut out)?,
        Mode::Log { lines, follow } => {
            if follow {
                // Ctrl-C ends the following cleanly.
                signals::install()?;
            }
            let log = home.log_file(&target.forge.repo.owner, &target.forge.repo.name);
            report::tail_log(&mut out, &log, lines, follow)?;
        }
        Mode::Stop => stop(&home, &target, &mut out)?,
        Mode::Completions(_) => unreachable!("handled before the target is resolved"),
    }
    out.flush()?;
    Ok(ExitCode::Success)
}

/// Drains in the foreground (`--limit`, `--resume`, and the background
/// child of `--sync`), holding `_lock` throughout.
fn drain(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    limit: Option<u64>,
    mode: &'static str,
    _lock: daemon::SyncLock,
    out: &mut impl Write,
) -> Result<()> {
    // A bounded drain stays bounded; the others end with a refresh.
    let refresh = match (limit, options.full) {
        (Some(_), _) => sync::Refresh::No,
        (None, false) => sync::Refresh::Changed,
        (None, true) => sync::Refresh::Full,
    };
    signals::install()?;
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    // Nothing to drain, and nothing to refresh (a bounded drain does not,
    // and before anything was ever fetched there is nothing to refresh).
    let nothing_pending = store.pending(&repo)? == 0;
    if nothing_pending && (limit.is_some() || store.refresh_state(&repo)?.mark.is_none()) {
        writeln!(
            out,
            "Nothing pending for {repo}. Run patina-forge to discover new refs."
        )?;
        return Ok(());
    }
    let (forge, pace) = connect(home, target, options, true)?;
    let (graphql, api_note) = match (options.api, forge.has_token()) {
        (cli::ApiChoice::Rest, _) => (false, Some("--api rest".to_owned())),
        _ if !forge.kind().has_graphql() => (false, Some("Gitea has no GraphQL".to_owned())),
        (_, true) => (true, None),
        (_, false) => (false, Some("no token".to_owned())),
    };
    let mut progress = report::Progress::new();
    let summary = sync::drain(
        &mut store,
        &forge,
        &pace,
        &mut progress,
        &repo,
        sync::Options {
            limit,
            mode,
            refresh,
            graphql,
            api_note,
        },
    )?;
    match (nothing_pending, summary.refreshed) {
        // A timer's quiet run: one line.
        (true, Some(changed)) => writeln!(
            out,
            "Nothing pending for {repo}; the refresh brought {} ({})",
            report::count(changed, "new or changed item", "new or changed items"),
            report::count(summary.requests, "request", "requests")
        )?,
        _ => sync::print_summary(out, &summary)?,
    }
    out.flush()?;
    if let Some(sync::End::GaveUp(why)) = &summary.end {
        anyhow::bail!("{why}");
    }
    Ok(())
}

/// `--sync`: everything that can fail early (the database, the forge's
/// address, the lock) is checked here, where the error reaches the terminal;
/// then the drain forks away before any thread or connection exists.
fn sync_in_background(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    out: &mut impl Write,
) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let pending = Store::open(&target.db_path)?.pending(&repo)?;
    // The kind may need asking, over the network: the child does that.
    github::api_base(
        &target.forge.host,
        options.api_url.as_deref(),
        ForgeKind::Github,
    )?;
    let lock = daemon::SyncLock::acquire(home, &target.forge.repo)?;
    home.logs_dir()?;
    let log = home.log_file(&target.forge.repo.owner, &target.forge.repo.name);
    out.flush()?;
    match daemon::detach(lock, &log)? {
        daemon::Detached::Parent { pid } => {
            writeln!(out, "Syncing in background (PID {pid})")?;
            writeln!(out, "Log: {}", log.display())?;
            writeln!(out, "Check: patina scrape forge --status")?;
            Ok(())
        }
        daemon::Detached::Child(lock) => {
            eprintln!(
                "{}",
                report::stamped(&format!(
                    "sync of {repo} started: PID {}, {} pending",
                    std::process::id(),
                    report::thousands(pending)
                ))
            );
            let mut log_out = report::Stamped::new(io::stdout());
            let result = drain(home, target, options, None, "sync", lock, &mut log_out);
            if let Err(e) = &result {
                eprintln!("{}", report::stamped(&format!("sync failed: {e:#}")));
            }
            eprintln!("{}", report::stamped(&format!("sync of {repo} ended")));
            result
        }
    }
}

/// `--stop`: SIGTERM to the lock's holder, then wait until the lock is free.
fn stop(home: &PatinaHome, target: &Target, out: &mut impl Write) -> Result<()> {
    let repo = target.forge.repo.to_string();
    match daemon::stop(home, &target.forge.repo, Duration::from_secs(60))? {
        None => writeln!(out, "No sync running for {repo}")?,
        Some(pid) => {
            write!(out, "Stopped PID {pid}")?;
            if let Some(run) = Store::open_read_only(&target.db_path)?
                .map(|s| s.latest_run(&repo))
                .transpose()?
                .flatten()
            {
                write!(
                    out,
                    ": run {}, {} resolved, {} failed, {} requests",
                    run.state,
                    report::thousands(run.resolved),
                    report::thousands(run.failed),
                    report::thousands(run.requests)
                )?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn discover(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    offline: bool,
    out: &mut impl Write,
) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    let outcome = discover::discover(target, &mut store)?;
    if outcome.shallow {
        eprintln!(
            "warning: {} is a shallow clone: only the commits present were scanned \
             (`git fetch --unshallow` brings the rest)",
            target.root.display()
        );
    }
    report::discovery_commits(out, &outcome)?;
    if !offline {
        match newest_number(home, target, options) {
            Ok(Some(newest)) => {
                let added = store.add_range(&repo, newest)?;
                writeln!(
                    out,
                    "Discovered {} (1..{newest})",
                    report::count(added, "issue ref", "issue refs")
                )?;
            }
            Ok(None) => writeln!(out, "The forge has no issues or pull requests yet")?,
            Err(why) => eprintln!("note: the number range is not in the backlog yet: {why:#}"),
        }
    }
    // A reader maps the index it counts; the writer stays open so that the
    // WAL's index needs no rebuilding for it.
    let pending = match Store::open_read_only(&target.db_path)? {
        Some(reader) => reader.pending(&repo)?,
        None => 0,
    };
    report::discovery_total(out, pending)?;
    Ok(())
}

/// Discovery waits for no rate limit: it is meant to return at once.
const DISCOVERY_MAX_WAIT: Duration = Duration::from_secs(5);

/// The newest issue or PR number, with one request.
fn newest_number(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
) -> Result<Option<u32>> {
    let (forge, pace) = connect(home, target, options, false)?;
    match pace.wait_turn(Some(DISCOVERY_MAX_WAIT), &mut |_, _| {})? {
        Turn::Go => {}
        Turn::Stopped => anyhow::bail!("interrupted"),
        Turn::TooLong(wait) => anyhow::bail!(
            "the forge's rate limit asks for a {} wait; the next sync will learn it",
            humantime::format_duration(Duration::from_secs(wait.as_secs()))
        ),
    }
    let fetched = forge.fetch(&forge.newest_url(), None)?;
    if let Some(rate) = fetched.rate {
        pace.budget(rate.remaining, rate.reset)?;
    }
    match fetched.answer {
        Answer::Ok => {
            let items = Item::list_from_github(&fetched.body).map_err(|e| anyhow::anyhow!(e))?;
            Ok(items.iter().map(|i| i.number).max())
        }
        Answer::NotFound => anyhow::bail!(
            "{} was not found on the forge (check --forge or origin; a private repository needs {})",
            target.forge.repo,
            forge.kind().token_vars()[0]
        ),
        Answer::Limited(limit) => {
            // The next drain, in this process or another, must honour it too.
            let waited = match limit {
                github::Limit::Primary { reset } => pace.hold_until(
                    reset + Duration::from_secs(1),
                    "the rate limit is used up until its reset",
                )?,
                github::Limit::Secondary { retry_after } => {
                    pace.secondary_limit(retry_after, "secondary rate limit")?
                }
            };
            anyhow::bail!(
                "the forge asks for a {} pause (rate limit); the next sync will learn it",
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            )
        }
        Answer::Denied(why) | Answer::Transient(why) => anyhow::bail!("{why}"),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// The API client and the pace ledger for the target's forge. `draining`
/// runs say once that a missing token means a small budget.
fn connect(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    draining: bool,
) -> Result<(GitHub, Pace)> {
    // What the database knows of the forge, read once for both questions.
    let known = Store::open_read_only(&target.db_path)?
        .map(|store| store.sync_state(&target.forge.repo.to_string()))
        .transpose()?
        .unwrap_or_default();
    let kind = forge_kind(home, target, options, &known)?;
    let base = github::api_base(&target.forge.host, options.api_url.as_deref(), kind)?;
    let token = token::find(&target.forge.host, kind);
    if draining && options.api == cli::ApiChoice::Graphql && !kind.has_graphql() {
        anyhow::bail!("--api graphql: {} has no GraphQL API", kind.name());
    }
    if token.is_none() && draining && options.api == cli::ApiChoice::Graphql {
        anyhow::bail!(
            "--api graphql needs a token: set GITHUB_TOKEN (or GH_TOKEN, or run `gh auth login`)"
        );
    }
    if token.is_none() && draining {
        report::note(&match kind {
            ForgeKind::Gitea => "note: no Gitea token (GITEA_TOKEN or FORGEJO_TOKEN): only \
                                 public repositories can be read"
                .to_owned(),
            _ => format!(
                "note: no {} token ({} or `gh auth login`): GitHub allows 60 requests an hour \
                 without one",
                kind.name(),
                kind.token_vars().join(", ")
            ),
        });
    }
    let forge = GitHub::new(
        base,
        target.forge.repo.clone(),
        token,
        options.timeout,
        kind,
    )?;
    remember_forge(target, &forge, &known)?;
    let pace = Pace::new(home, &forge.host_key(), options.delay)?;
    Ok((forge, pace))
}

/// Keeps what the forge is and where its API answers, for status and for the
/// next run (which then asks the host nothing).
fn remember_forge(target: &Target, forge: &GitHub, known: &SyncState) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let (kind, base) = (forge.kind().as_str(), forge.base().as_str());
    let base = base.trim_end_matches('/');
    if known.forge_kind.as_deref() != Some(kind) || known.api_base.as_deref() != Some(base) {
        Store::open(&target.db_path)?.write(|w| w.set_forge(&repo, kind, base))?;
    }
    Ok(())
}

/// What the forge is: `--forge-kind`, else what the database remembers,
/// else what its host name tells, else what the host answers when asked
/// (remembered by [`connect`]).
fn forge_kind(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    known: &SyncState,
) -> Result<ForgeKind> {
    if let Some(kind) = options.forge_kind {
        return Ok(kind);
    }
    let host = &target.forge.host;
    if let Some(kind) = known.forge_kind.as_deref().and_then(ForgeKind::parse) {
        return Ok(kind);
    }
    if let Some(kind) = ForgeKind::known(host) {
        return Ok(kind);
    }
    let given = options
        .api_url
        .as_deref()
        .map(|url| github::api_base(host, Some(url), ForgeKind::Github))
        .transpose()?;
    let detected = kind::detect(host, given.as_ref(), &mut |url| {
        let pace = Pace::new(home, &crate::pace::host_key(url), options.delay)?;
        match pace.wait_turn(None, &mut |_, _| {})? {
            Turn::Go => Ok(()),
            _ => anyhow::bail!("interrupted"),
        }
    })?;
    report::note(&format!(
        "note: {host} is {} (API at {}); remembered in the database",
        detected.kind.name(),
        detected.base
    ));
    Ok(detected.kind)
}

fn status(home: &PatinaHome, target: &Target, json: bool, out: &mut impl Write) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let holder = daemon::holder(home, &target.forge.repo)?;
    let mut status = match Store::open_read_only(&target.db_path)? {
        Some(store) => {
            let mut status = report::Status::new(repo.clone(), store.counts(&repo)?);
            let state = store.sync_state(&repo)?;
            status.rate_limit = state.rate.map(report::RateLimit::from);
            status.api = state.api;
            status.api_note = state.api_note;
            status.forge_kind = state.forge_kind;
            status.api_base = state.api_base;
            if status.forge_kind.is_none()
                && let Some(kind) = ForgeKind::known(&target.forge.host)
            {
                status.forge_kind = Some(kind.as_str().to_owned());
            }
            status.last_refresh = report::LastRefresh::from_state(&store.refresh_state(&repo)?);
            if let Some(run) = store.latest_run(&repo)? {
                let now = std::time::SystemTime::now();
                status.running = holder.is_some();
                let recent = match holder {
                    Some(_) => {
                        Some(store.settled_since(&repo, &report::Status::recent_since(&run, now))?)
                    }
                    None => None,
                };
                status.measure(&run, recent, now);
                status.last_error = run.last_error.clone();
                status.last_run = Some(report::LastRun::from_row(run, holder.is_some()));
            }
            status
        }
        None => report::Status::new(repo, Default::default()),
    };
    if let Some(busy) = holder {
        status.running = true;
        status.pid = busy.pid;
    }
    if json {
        status.write_json(out)?;
    } else {
        status.write_text(out)?;
    }
    Ok(())
}
