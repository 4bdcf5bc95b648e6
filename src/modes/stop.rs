//! `--stop`: SIGTERM to the lock's holder, then wait until the lock is free.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use crate::daemon;
use crate::home::PatinaHome;
use crate::report;
use crate::store::Store;
use crate::target::Target;

/// Stops the target's background sync, waiting up to a minute, and says
/// how its run ended.
pub fn run(home: &PatinaHome, target: &Target, out: &mut impl Write) -> Result<()> {
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
