//! `--status`: the backlog's counts, the latest run and whether a sync runs,
//! as text or JSON. Reads only, never writes.

use std::io::Write;

use anyhow::Result;

use crate::ForgeOptions;
use crate::daemon;
use crate::forge::kind::ForgeKind;
use crate::home::PatinaHome;
use crate::pace;
use crate::report;
use crate::store::Store;
use crate::target::Target;

/// What the pace ledger of the repository's API host holds back, read
/// without creating anything: the host is `--api-url`'s, else where the API
/// answered when its kind was asked, else the kind's default for the host.
fn waiting(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    status: &report::Status,
) -> Option<report::Waiting> {
    let base = match (&options.api_url, &status.api_base) {
        (Some(base), _) | (None, Some(base)) => base.clone(),
        (None, None) => {
            ForgeKind::parse(status.forge_kind.as_deref()?)?.default_base(&target.forge.host)
        }
    };
    let url = reqwest::Url::parse(&base).ok()?;
    let (until, reason) = pace::waiting(home, &pace::host_key(&url))?;
    Some(report::Waiting {
        until: humantime::format_rfc3339_seconds(until).to_string(),
        reason,
    })
}

/// Prints the target's status, as text or as one JSON object. The lock,
/// not a PID, says whether a sync runs.
pub fn run(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
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
            status.waiting = waiting(home, target, options, &status);
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

/// `--status --all`: one table (or one JSON object) for every repository
/// of `listed`, and the budget left per API host.
pub fn run_all(
    _home: &PatinaHome,
    _listed: &[crate::target::Listed],
    _options: &ForgeOptions,
    _json: bool,
    _out: &mut impl Write,
) -> Result<crate::exit::ExitCode> {
    anyhow::bail!("--status --all is not built yet")
}
