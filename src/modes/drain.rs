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
    // A bounded drain stays bounded; the others end with a refresh.
    let refresh = match (limit, options.full) {
        (Some(_), _) => Refresh::No,
        (None, false) => Refresh::Changed,
        (None, true) => Refresh::Full,
    };
    signals::install()?;
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    report::opened(&target.db_path, store.adopted(), store.repaired());
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
    let Connection { forge, pace } = connect::connect(home, target, options, Purpose::Drain)?;
    let (graphql, api_note) = connect::choose_api(options.api, forge.kind(), forge.has_token());
    let mut progress = report::Progress::new();
    let summary = drain::drain(
        &mut store,
        &forge,
        &pace,
        &mut progress,
        &repo,
        Options {
            limit,
            mode,
            refresh,
            graphql,
            api_note,
        },
    )?;
    if store.followed() > 0 {
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
        _ => drain::print_summary(out, &summary)?,
    }
    out.flush()?;
    if let Some(End::GaveUp(why)) = &summary.end {
        anyhow::bail!("{why}");
    }
    Ok(())
}
