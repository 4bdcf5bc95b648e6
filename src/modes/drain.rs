//! Resolving the backlog against the forge: `--limit N` and `--resume` in
//! the foreground, `--sync` in a background process. Each holds the
//! repository's sync lock for the whole drain; the drain itself is
//! `crate::drain`'s.

use std::io::{self, Write};

use anyhow::Result;

use crate::ForgeOptions;
use crate::connect::{self, Connection, Purpose};
use crate::drain::{self, End, Options, Refresh};
use crate::forge::github;
use crate::forge::kind::ForgeKind;
use crate::home::PatinaHome;
use crate::store::Store;
use crate::target::Target;
use crate::{daemon, report, signals};

/// `--limit N`: at most `n` refs, in the foreground. Another sync holding
/// the repository is an error (exit 75).
pub fn limit(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    n: u64,
    out: &mut impl Write,
) -> Result<()> {
    let lock = daemon::SyncLock::acquire(home, &target.forge.repo)?;
    drain_holding(home, target, options, Some(n), "limit", lock, out)
}

/// `--resume`: everything pending, in the foreground.
pub fn resume(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    out: &mut impl Write,
) -> Result<()> {
    match daemon::SyncLock::acquire(home, &target.forge.repo) {
        Ok(lock) => drain_holding(home, target, options, None, "resume", lock, out),
        Err(e) => match e.downcast::<daemon::Busy>() {
            // Overlapping timer runs are harmless: one line, success.
            Ok(busy) => Ok(writeln!(out, "{busy}")?),
            Err(e) => Err(e),
        },
    }
}

/// `--sync`: everything that can fail early (the database, the forge's
/// address, the lock) is checked here, where the error reaches the terminal;
/// then the drain forks away before any thread or connection exists.
pub fn sync_in_background(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    out: &mut impl Write,
) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let pending = Store::open_unchecked(&target.db_path)?.pending(&repo)?;
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
            let result = drain_holding(home, target, options, None, "sync", lock, &mut log_out);
            if let Err(e) = &result {
                eprintln!("{}", report::stamped(&format!("sync failed: {e:#}")));
            }
            eprintln!("{}", report::stamped(&format!("sync of {repo} ended")));
            result
        }
    }
}

/// Drains in the foreground (`--limit`, `--resume`, and the background
/// child of `--sync`), holding `_lock` throughout.
fn drain_holding(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    limit: Option<u64>,
    mode: &'static str,
    _lock: daemon::SyncLock,
    out: &mut impl Write,
) -> Result<()> {
    signals::install()?;
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    report::opened(&target.db_path, store.adopted(), store.repaired());
    let Some(nothing_pending) = has_work(&store, &repo, store.pending(&repo)?, limit)? else {
        return Ok(writeln!(out, "{}", nothing_pending_line(&repo))?);
    };
    let Connection { forge, pace } = connect::connect(home, target, options, Purpose::Drain)?;
    let mut progress = report::Progress::new();
    let summary = drain::drain(
        &mut store,
        &forge,
        &pace,
        &mut progress,
        &repo,
        drain_options(options, &forge, limit, mode),
    )?;
    conclude(target, store.followed(), nothing_pending, &summary, out)
}

/// Whether a drain of `pending` refs has anything to do: `None` when
/// nothing is pending and there is nothing to refresh either (a bounded
/// drain does not refresh, and before anything was ever fetched there is
/// nothing to refresh); else whether nothing is pending (the drain is then a
/// refresh alone).
pub(crate) fn has_work(
    store: &Store,
    repo: &str,
    pending: u64,
    limit: Option<u64>,
) -> Result<Option<bool>> {
    let nothing_pending = pending == 0;
    if nothing_pending && (limit.is_some() || store.refresh_state(repo)?.mark.is_none()) {
        return Ok(None);
    }
    Ok(Some(nothing_pending))
}

/// What a drain with nothing to do says.
pub(crate) fn nothing_pending_line(repo: &str) -> String {
    format!("Nothing pending for {repo}. Run patina-forge to discover new refs.")
}

/// The drain's options for `--limit` (`limit`), `--resume` and `--sync`.
pub(crate) fn drain_options(
    options: &ForgeOptions,
    forge: &github::GitHub,
    limit: Option<u64>,
    mode: &'static str,
) -> Options {
    // A bounded drain stays bounded; the others end with a refresh.
    let refresh = match (limit, options.full) {
        (Some(_), _) => Refresh::No,
        (None, false) => Refresh::Changed,
        (None, true) => Refresh::Full,
    };
    let (graphql, api_note) = connect::choose_api(options.api, forge.kind(), forge.has_token());
    Options {
        limit,
        mode,
        refresh,
        graphql,
        api_note,
    }
}

/// A drain's closing lines, and its failure when the forge kept failing.
pub(crate) fn conclude(
    target: &Target,
    followed: u32,
    nothing_pending: bool,
    summary: &drain::Summary,
    out: &mut impl Write,
) -> Result<()> {
    let repo = target.forge.repo.to_string();
    if followed > 0 {
        report::note(&format!(
            "note: {} was deleted or replaced during the run; the run went on in the new \
             file, with everything projected into it again from the store (no request)",
            target.db_path.display()
        ));
    }
    match (nothing_pending, summary.refreshed) {
        // A timer's quiet run: one line.
        (true, Some(changed)) => writeln!(
            out,
            "Nothing pending for {repo}; the refresh brought {} ({})",
            report::count(changed, "new or changed item", "new or changed items"),
            report::count(summary.requests, "request", "requests")
        )?,
        _ => drain::print_summary(out, summary)?,
    }
    out.flush()?;
    if let Some(End::GaveUp(why)) = &summary.end {
        anyhow::bail!("{why}");
    }
    Ok(())
}
