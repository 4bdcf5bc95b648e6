//! `--status`: the backlog's counts, the latest run and whether a sync runs,
//! as text or JSON; with `--all`, one table of every repository and the
//! budget left per API host. Reads only, never writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use crate::ForgeOptions;
use crate::daemon;
use crate::exit::ExitCode;
use crate::forge::kind::ForgeKind;
use crate::home::PatinaHome;
use crate::pace;
use crate::report;
use crate::store::Store;
use crate::target::{Forge, Listed, Target};

/// The key of the pace ledger of the repository's API host: `--api-url`'s
/// host, else where the API answered when its kind was asked, else the
/// kind's default for the host. `None` before the kind is known.
fn api_host(forge: &Forge, options: &ForgeOptions, status: &report::Status) -> Option<String> {
    let base = match (&options.api_url, &status.api_base) {
        (Some(base), _) | (None, Some(base)) => base.clone(),
        (None, None) => ForgeKind::parse(status.forge_kind.as_deref()?)?.default_base(&forge.host),
    };
    let url = reqwest::Url::parse(&base).ok()?;
    Some(pace::host_key(&url))
}

/// What a pace ledger holds back, as status says it.
fn waiting((until, reason): (SystemTime, String)) -> report::Waiting {
    report::Waiting {
        until: humantime::format_rfc3339_seconds(until).to_string(),
        reason,
    }
}

/// A repository's status and the API host its requests go to.
pub struct Status {
    /// As `--status --json` prints it.
    pub report: report::Status,
    /// The key of its API host's pace ledger; `None` before its forge's
    /// kind is known.
    pub host: Option<String>,
}

/// The status of `target`: what `--status` prints, and each row of
/// `--status --all`. The lock, not a PID, says whether a sync runs.
pub fn status_of(home: &PatinaHome, target: &Target, options: &ForgeOptions) -> Result<Status> {
    read(home, &target.forge, &target.db_path, options)
}

/// [`status_of`] from what it needs of the target (a `Target` holds a
/// repository that cannot be shared between threads).
fn read(
    home: &PatinaHome,
    forge: &Forge,
    db_path: &Path,
    options: &ForgeOptions,
) -> Result<Status> {
    // A store read without its WAL is read again when a writer started
    // meanwhile; the next reading goes through the WAL it made.
    let mut tries = 0;
    loop {
        tries += 1;
        let (status, wal_appeared) = read_once(home, forge, db_path, options)?;
        if !wal_appeared || tries == 3 {
            return Ok(status);
        }
    }
}

fn read_once(
    home: &PatinaHome,
    forge: &Forge,
    db_path: &Path,
    options: &ForgeOptions,
) -> Result<(Status, bool)> {
    let repo = forge.repo.to_string();
    let holder = daemon::holder(home, &forge.repo)?;
    let mut host = None;
    let mut wal_appeared = false;
    let mut status = match Store::open_read_only(db_path)? {
        Some(store) => {
            let mut status = report::Status::new(repo.clone(), store.counts(&repo)?);
            let state = store.sync_state(&repo)?;
            status.rate_limit = state.rate.map(report::RateLimit::from);
            status.api = state.api;
            status.api_note = state.api_note;
            status.forge_kind = state.forge_kind;
            status.api_base = state.api_base;
            if status.forge_kind.is_none()
                && let Some(kind) = ForgeKind::known(&forge.host)
            {
                status.forge_kind = Some(kind.as_str().to_owned());
            }
            status.last_refresh = report::LastRefresh::from_state(&store.refresh_state(&repo)?);
            host = api_host(forge, options, &status);
            status.waiting = host
                .as_deref()
                .and_then(|host| pace::waiting(home, host))
                .map(waiting);
            if let Some(run) = store.latest_run(&repo)? {
                let now = SystemTime::now();
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
            wal_appeared = store.wal_appeared();
            status
        }
        None => report::Status::new(repo, Default::default()),
    };
    if let Some(busy) = holder {
        status.running = true;
        status.pid = busy.pid;
    }
    Ok((
        Status {
            report: status,
            host,
        },
        wal_appeared,
    ))
}

/// Prints the target's status, as text or as one JSON object.
pub fn run(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let status = status_of(home, target, options)?.report;
    if json {
        status.write_json(out)?;
    } else {
        status.write_text(out)?;
    }
    Ok(())
}

/// `--status --all`: one table (or one JSON object) for every repository
/// of `listed`, newest activity first, and the budget left per API host.
/// A repository that cannot be read is a row with its error, and a line on
/// stderr; the exit status is then 1.
pub fn run_all(
    home: &PatinaHome,
    listed: &[Listed],
    options: &ForgeOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let statuses = read_all(home, listed, options);
    let mut rows = Vec::with_capacity(listed.len());
    let mut hosts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (listed, status) in listed.iter().zip(statuses) {
        let (outcome, host) = match (status, &listed.target) {
            (Ok(status), _) => (Ok(status.report), status.host),
            (Err(e), Ok(target)) => (
                Err((Some(target.forge.repo.to_string()), report::one_line(&e))),
                None,
            ),
            (Err(e), Err(_)) => (Err((None, report::one_line(&e))), None),
        };
        if let Some(host) = host {
            hosts.entry(host).or_default().push(rows.len());
        }
        rows.push(report::Row {
            label: listed.label(),
            name: listed.name.clone(),
            path: listed.path.display().to_string(),
            outcome,
        });
    }
    let hosts: Vec<report::Host> = hosts
        .into_iter()
        .map(|(host, members)| host_status(home, host, &members, &rows))
        .collect();
    let order = report::by_activity(&rows);
    let all = report::AllStatus {
        rows: order.iter().map(|&i| &rows[i]).collect(),
        hosts,
    };
    if json {
        all.write_json(out)?;
    } else {
        all.write_text(out, SystemTime::now())?;
    }
    out.flush()?;
    let mut failures = super::all::Failures::default();
    for row in &all.rows {
        if let Err((_, why)) = &row.outcome {
            failures.add(&row.label, why);
        }
    }
    Ok(failures.close(false))
}

/// Every repository's status, on as many threads as there are cores (at
/// most 4), each taking its share in order: each is a few files opened and
/// counted, independent of the others.
fn read_all(home: &PatinaHome, listed: &[Listed], options: &ForgeOptions) -> Vec<Result<Status>> {
    // What a thread needs of a target (a `Target` holds a repository that
    // cannot be shared between threads), or why there is none.
    let jobs: Vec<Result<(Forge, &Path), String>> = listed
        .iter()
        .map(|l| match &l.target {
            Ok(t) => Ok((t.forge.clone(), t.db_path.as_path())),
            Err(e) => Err(report::one_line(e)),
        })
        .collect();
    let read_share = |share: &[Result<(Forge, &Path), String>]| -> Vec<Result<Status>> {
        share
            .iter()
            .map(|job| match job {
                Ok((forge, db)) => read(home, forge, db, options),
                Err(why) => Err(anyhow::anyhow!("{why}")),
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4)
        .min(jobs.len().max(1));
    let share = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(share)
            .map(|jobs| scope.spawn(move || read_share(jobs)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// What the rows of `members` and the ledger say of one API host.
fn host_status(
    home: &PatinaHome,
    host: String,
    members: &[usize],
    rows: &[report::Row],
) -> report::Host {
    // The freshest budget: the latest window, and in it the least left
    // (what is left only goes down until the reset).
    let rate_limit = members
        .iter()
        .filter_map(|&i| rows[i].outcome.as_ref().ok())
        .filter_map(|s| Some((s.rate_limit.as_ref()?, &s.api)))
        .max_by(|(a, _), (b, _)| a.reset.cmp(&b.reset).then(b.remaining.cmp(&a.remaining)))
        .map(|(rate, api)| report::HostRate {
            remaining: rate.remaining,
            limit: rate.limit,
            reset: rate.reset.clone(),
            api: api.clone(),
        });
    let ledger = pace::read_ledger(home, &host);
    let now = SystemTime::now();
    let next_slot = ledger
        .as_ref()
        .map(|l| l.next_at)
        .filter(|&at| at > now)
        .map(|at| humantime::format_rfc3339_seconds(at).to_string());
    report::Host {
        waiting: ledger.as_ref().and_then(|l| l.waiting(now)).map(waiting),
        host,
        repos: members.iter().map(|&i| rows[i].label.clone()).collect(),
        rate_limit,
        next_slot,
        secondary_limits: ledger.map_or(0, |l| l.strikes),
    }
}
