//! `--all`: every registered repository (and the project run from) with one
//! command. Each mode's own module does the work for one repository; this
//! one lists them, skips those another sync holds, keeps going past the ones
//! that fail, and says at the end which failed (exit status 1).

use std::io::Write;

use anyhow::Result;

use crate::exit::ExitCode;
use crate::home::PatinaHome;
use crate::target::Listed;
use crate::{ForgeOptions, Mode};

/// Runs `mode` for every repository of `listed`.
pub fn run(
    home: &PatinaHome,
    listed: &[Listed],
    mode: &Mode,
    options: &ForgeOptions,
    out: &mut impl Write,
) -> Result<ExitCode> {
    if listed.is_empty() {
        anyhow::bail!(
            "no repositories: {} lists none (`patina repo add` registers one) and the current \
             directory is not a patina project (use -C DIR)",
            home.registry().display()
        );
    }
    match *mode {
        Mode::Status { json } => super::status::run_all(home, listed, options, json, out),
        Mode::Log { lines, follow } => super::log::run_all(home, listed, lines, follow, out),
        _ => anyhow::bail!("--all is not built for this mode yet"),
    }
}
