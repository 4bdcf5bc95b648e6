//! patina-forge: mine issue and pull-request refs from git history into
//! patina's SQLite store. `main.rs` turns the command line into a [`Config`]
//! and hands it to [`run`]; see ARCHITECTURE.md for the map.

pub mod cli;
pub mod discover;
pub mod exit;
pub mod home;
pub mod report;
pub mod store;
pub mod target;

use std::io::{self, Write};

use anyhow::Result;

use crate::exit::ExitCode;
use crate::home::PatinaHome;
use crate::store::Store;
use crate::target::{Target, TargetSpec};

/// One run, decided from the command line.
#[derive(Debug)]
pub struct Config {
    pub target: TargetSpec,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Discover,
    Status { json: bool },
}

impl From<cli::Cli> for Config {
    fn from(cli: cli::Cli) -> Self {
        let mode = if cli.status {
            Mode::Status { json: cli.json }
        } else {
            Mode::Discover
        };
        Config {
            target: TargetSpec {
                path: cli.path,
                repo: cli.repo,
                db: cli.db,
                forge: cli.forge,
            },
            mode,
        }
    }
}

pub fn run(config: Config) -> Result<ExitCode> {
    let home = PatinaHome::from_env()?;
    let target = Target::resolve(&config.target, &home)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match config.mode {
        Mode::Discover => {
            let mut store = Store::open(&target.db_path)?;
            let outcome = discover::discover(&target, &mut store)?;
            if outcome.shallow {
                eprintln!(
                    "warning: {} is a shallow clone: only the commits present were scanned \
                     (`git fetch --unshallow` brings the rest)",
                    target.root.display()
                );
            }
            let pending = store.pending(&target.forge.repo.to_string())?;
            report::discovery(&mut out, &outcome, pending)?;
        }
        Mode::Status { json } => {
            let repo = target.forge.repo.to_string();
            let counts = match Store::open_read_only(&target.db_path)? {
                Some(store) => store.counts(&repo)?,
                None => Default::default(),
            };
            let status = report::Status::new(repo, counts);
            if json {
                status.write_json(&mut out)?;
            } else {
                status.write_text(&mut out)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::Success)
}
