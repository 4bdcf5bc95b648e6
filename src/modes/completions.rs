//! `--completions SHELL`: the completion script, made from the same
//! definition as `--help`. Needs no repository.

use std::io::Write;

use anyhow::Result;

use crate::cli;

/// Writes `shell`'s completion script to `out`.
pub fn run(shell: clap_complete::Shell, out: &mut impl Write) -> Result<()> {
    clap_complete::generate(shell, &mut cli::command(), "patina-forge", out);
    Ok(())
}
