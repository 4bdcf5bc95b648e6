//! `--log`: the end of the background sync's log, and with `--follow` what
//! it writes next.

use std::io::Write;

use anyhow::Result;

use crate::home::PatinaHome;
use crate::target::Target;
use crate::{report, signals};

/// Prints the last `lines` lines of the target's sync log; with `follow`,
/// what is appended until SIGINT or SIGTERM.
pub fn run(
    home: &PatinaHome,
    target: &Target,
    lines: usize,
    follow: bool,
    out: &mut impl Write,
) -> Result<()> {
    if follow {
        // Ctrl-C ends the following cleanly.
        signals::install()?;
    }
    let log = home.log_file(&target.forge.repo.owner, &target.forge.repo.name);
    report::tail_log(out, &log, lines, follow)
}

/// `--log --all`: the logs of every repository of `listed` and of
/// `--sync --all`, interleaved by time.
pub fn run_all(
    _home: &PatinaHome,
    _listed: &[crate::target::Listed],
    _lines: usize,
    _follow: bool,
    _out: &mut impl Write,
) -> Result<crate::exit::ExitCode> {
    anyhow::bail!("--log --all is not built yet")
}
