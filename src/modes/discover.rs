//! Discovery, the mode without a flag: mine the commits not scanned before
//! into the backlog, then (unless `--offline`) learn the newest issue number
//! with one request and add the range up to it.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use crate::ForgeOptions;
use crate::connect::{self, Connection, Purpose};
use crate::forge::Item;
use crate::forge::github::{self, Answer};
use crate::home::PatinaHome;
use crate::pace::{Budget, Turn};
use crate::report;
use crate::store::Store;
use crate::target::Target;

/// Discovers into the target's database, then prints the counts and the
/// next step. A failed request for the newest number is a note, not a
/// failure: what the walk found is kept.
pub fn run(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    offline: bool,
    out: &mut impl Write,
) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    report::opened(&target.db_path, store.adopted(), store.repaired());
    let outcome = crate::discover::discover(target, &mut store)?;
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

/// The newest issue or PR number, with one request.
fn newest_number(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
) -> Result<Option<u32>> {
    let Connection { forge, pace } = connect::connect(home, target, options, Purpose::Probe)?;
    match pace.wait_turn(Purpose::Probe.max_wait(), &mut |_, _| {})? {
        Turn::Go => {}
        Turn::Stopped => anyhow::bail!("interrupted"),
        Turn::TooLong(wait) => anyhow::bail!(
            "the forge's rate limit asks for a {} wait; the next sync will learn it",
            humantime::format_duration(Duration::from_secs(wait.as_secs()))
        ),
    }
    let fetched = forge.fetch(&forge.newest_url(), None)?;
    if let Some(rate) = fetched.rate {
        // The one request discovery sends: nothing more is planned.
        pace.budget(Budget::requests(rate.remaining, rate.limit, rate.reset), 0)?;
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
