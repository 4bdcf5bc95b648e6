//! `--generate KIND [NAME|--all]`: the files an installation needs, made
//! from the binary itself, so that `cargo install` alone is enough: the man
//! page and the completion scripts from the same definition as `--help`, and
//! the scheduler files from [`crate::schedule`] for the binary where it runs.
//! Needs no repository, not even with `--all`: nothing is listed or opened.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{self, Generate};
use crate::{manpage, schedule};

/// Writes what `what` names to `out`.
pub fn run(what: &Generate, out: &mut impl Write) -> Result<()> {
    let text = match what {
        Generate::Man => manpage::render(),
        Generate::Completion(shell) => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cli::command(), "patina-forge", &mut script);
            String::from_utf8(script).context("a completion script is UTF-8")?
        }
        Generate::SystemdUnits(scope) => {
            schedule::systemd_script(&schedule::Program::current()?, scope)?
        }
        Generate::LaunchdPlist(scope) => {
            let home = dirs::home_dir().context("cannot find the home folder: set HOME")?;
            schedule::launchd_plist(&schedule::Program::current()?, &home, scope)?
        }
        Generate::Crontab(scope) => schedule::crontab(&schedule::Program::current()?, scope)?,
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
