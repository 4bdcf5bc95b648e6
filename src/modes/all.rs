//! `--all`: every registered repository (and the project run from) with one
//! command. Each mode's own module does the work for one repository; this
//! one lists them, skips those another sync holds, keeps going past the ones
//! that fail, and says at the end which failed (exit status 1).
//!
//! The drain modes take turns: one request (a GraphQL batch) for each
//! repository in a round, so that a small backlog is done early beside a big
//! one. Every request still passes its API host's pace ledger, shared with
//! every other process, and each drain is told what the others plan for the
//! same host, so that the account's budget is spread over all of them.

use std::fs::File;
use std::io::{self, Write};
use std::time::SystemTime;

use anyhow::Result;

use crate::connect::{self, Connection, Purpose};
use crate::daemon::{self, Busy, SyncLock};
use crate::drain::{Session, Turn};
use crate::exit::ExitCode;
use crate::forge::github::GitHub;
use crate::home::PatinaHome;
use crate::pace::{self, Pace};
use crate::report::{self, Progress};
use crate::store::Store;
use crate::target::{Listed, Target};
use crate::{ForgeOptions, Mode, signals};

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
        Mode::Discover { offline } => discover(home, listed, options, offline, out),
        Mode::Limit(n) => foreground(home, listed, options, Some(n), out),
        Mode::Resume => foreground(home, listed, options, None, out),
        Mode::Sync => sync_in_background(home, listed, options, out),
        Mode::Stop => stop(home, listed, out),
        Mode::Generate(_) => unreachable!("needs no repository: handled before"),
    }
}

/// The repositories that failed, each with why: one line each on stderr at
/// the end, and exit status 1.
#[derive(Default)]
pub(super) struct Failures(Vec<(String, String)>);

impl Failures {
    pub(super) fn add(&mut self, label: &str, why: impl std::fmt::Display) {
        self.0.push((label.to_owned(), report::one_line(&why)));
    }

    /// The usable targets of `listed`, with their labels; the others are
    /// failures already.
    fn usable<'l>(&mut self, listed: &'l [Listed]) -> Vec<(String, &'l Target)> {
        let mut usable = Vec::with_capacity(listed.len());
        for entry in listed {
            match &entry.target {
                Ok(target) => usable.push((entry.label(), target)),
                Err(e) => self.add(&entry.label(), e),
            }
        }
        usable
    }

    /// Says which failed, and how the whole ended; `stamped` in a log.
    pub(super) fn close(self, stamped: bool) -> ExitCode {
        for (label, why) in &self.0 {
            let line = format!("error: {label}: {why}");
            match stamped {
                true => eprintln!("{}", report::stamped(&line)),
                false => eprintln!("{line}"),
            }
        }
        match self.0.is_empty() {
            true => ExitCode::Success,
            false => ExitCode::Failure,
        }
    }
}

/// Writes `text` to `out`, every line starting with `[label] `.
fn say(out: &mut impl Write, label: &str, text: &[u8]) -> io::Result<()> {
    for line in String::from_utf8_lossy(text).lines() {
        writeln!(out, "[{label}] {line}")?;
    }
    Ok(())
}

/// Discovery for each: the walk, then (unless `offline`) the newest number.
fn discover(
    home: &PatinaHome,
    listed: &[Listed],
    options: &ForgeOptions,
    offline: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let mut failures = Failures::default();
    for (label, target) in failures.usable(listed) {
        let mut text = Vec::new();
        let done = super::discover::run(home, target, options, offline, &mut text);
        say(out, &label, &text)?;
        if let Err(e) = done {
            failures.add(&label, e);
        }
    }
    Ok(failures.close(false))
}

/// `--stop --all`: the `--sync --all` process first, then any other sync
/// of a listed repository.
fn stop(home: &PatinaHome, listed: &[Listed], out: &mut impl Write) -> Result<ExitCode> {
    let mut failures = Failures::default();
    let patience = std::time::Duration::from_secs(60);
    let mut stopped = 0;
    match daemon::stop_at(&home.all_pid_file(), patience) {
        Ok(Some(pid)) => {
            stopped += 1;
            writeln!(out, "Stopped PID {pid} (the sync of all repositories)")?;
        }
        Ok(None) => {}
        Err(e) => failures.add("all", e),
    }
    for entry in listed {
        let Ok(target) = &entry.target else { continue };
        match daemon::stop(home, &target.forge.repo, patience) {
            Ok(Some(pid)) => {
                stopped += 1;
                writeln!(out, "[{}] Stopped PID {pid}", entry.label())?;
            }
            Ok(None) => {}
            Err(e) => failures.add(&entry.label(), e),
        }
    }
    if stopped == 0 && failures.0.is_empty() {
        writeln!(out, "No sync running for any repository")?;
    }
    Ok(failures.close(false))
}

/// `--resume --all` and `--limit N --all`, in the foreground. They hold the
/// all-repositories lock, so that they never run beside `--sync --all`:
/// `--resume` then says so and succeeds, as overlapping timer runs should.
fn foreground(
    home: &PatinaHome,
    listed: &[Listed],
    options: &ForgeOptions,
    limit: Option<u64>,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let _lock = match SyncLock::acquire_at(home, &home.all_pid_file()) {
        Ok(lock) => lock,
        Err(e) => {
            let busy = for_all(e.downcast::<Busy>()?);
            if limit.is_some() {
                return Err(busy.into());
            }
            writeln!(out, "{busy}")?;
            return Ok(ExitCode::Success);
        }
    };
    signals::install()?;
    let mode = if limit.is_some() { "limit" } else { "resume" };
    let mut failures = Failures::default();
    drain_all(
        home,
        listed,
        options,
        limit,
        mode,
        Voice::Here,
        out,
        &mut failures,
    )?;
    Ok(failures.close(false))
}

/// A lock held by a sync of all repositories: `--status --all` shows it.
fn for_all(busy: Busy) -> Busy {
    Busy {
        check: "--status --all",
        ..busy
    }
}

/// `--sync --all`: the all-repositories lock is taken here, where a second
/// one fails at the terminal (exit 75); the drain forks away before any
/// thread, connection or database is open, as `--sync` does.
fn sync_in_background(
    home: &PatinaHome,
    listed: &[Listed],
    options: &ForgeOptions,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let lock = SyncLock::acquire_at(home, &home.all_pid_file()).map_err(|e| {
        match e.downcast::<Busy>() {
            Ok(busy) => for_all(busy).into(),
            Err(e) => e,
        }
    })?;
    home.logs_dir()?;
    let log = home.all_log_file();
    out.flush()?;
    match daemon::detach(lock, &log)? {
        daemon::Detached::Parent { pid } => {
            // Those that cannot be synced are known already: said here too,
            // so that whoever started it sees them.
            let mut failures = Failures::default();
            let usable = failures.usable(listed).len();
            writeln!(
                out,
                "Syncing {} in background (PID {pid})",
                report::count(usable as u64, "repository", "repositories")
            )?;
            writeln!(
                out,
                "Log: {} (each repository's own too: --log --all)",
                log.display()
            )?;
            writeln!(out, "Check: patina-forge --status --all")?;
            Ok(failures.close(false))
        }
        daemon::Detached::Child(_lock) => {
            signals::install()?;
            eprintln!(
                "{}",
                report::stamped(&format!(
                    "sync of all repositories started: PID {}, {}",
                    std::process::id(),
                    report::count(listed.len() as u64, "repository", "repositories")
                ))
            );
            let mut log_out = report::Stamped::new(io::stdout());
            let mut failures = Failures::default();
            let result = drain_all(
                home,
                listed,
                options,
                None,
                "sync",
                Voice::Logs,
                &mut log_out,
                &mut failures,
            );
            if let Err(e) = &result {
                eprintln!("{}", report::stamped(&format!("sync failed: {e:#}")));
            }
            let failed = failures.0.len();
            let code = failures.close(true);
            eprintln!(
                "{}",
                report::stamped(&format!(
                    "sync of all repositories ended ({} failed)",
                    failed
                ))
            );
            result.map(|()| code)
        }
    }
}

/// Where a repository's lines go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Voice {
    /// In the foreground: to stdout (progress to stderr), each line
    /// starting with `[label] `.
    Here,
    /// In the background: to the repository's own log, as a `--sync` of it
    /// alone would write them, and one line at its end to the all log.
    Logs,
}

/// What a repository being drained needs, owned here and lent to its
/// [`Session`].
struct Owned {
    store: Store,
    forge: GitHub,
    pace: Pace,
    progress: Progress,
}

/// What is said of a repository being drained.
struct Seat<'l> {
    label: String,
    target: &'l Target,
    nothing_pending: bool,
    /// Its own log (`Voice::Logs`).
    log: Option<File>,
    /// Held until the drain ends.
    _lock: SyncLock,
}

impl Seat<'_> {
    /// Says `text` of this repository where `voice` says.
    fn say(&mut self, voice: Voice, out: &mut impl Write, text: &[u8]) -> io::Result<()> {
        match (&mut self.log, voice) {
            (Some(log), Voice::Logs) => report::Stamped::new(log).write_all(text),
            _ => say(out, &self.label, text),
        }
    }
}

/// Readies every listed repository (its lock, discovery, its forge), then
/// drains them all, a turn each in a round.
#[allow(clippy::too_many_arguments)]
fn drain_all(
    home: &PatinaHome,
    listed: &[Listed],
    options: &ForgeOptions,
    limit: Option<u64>,
    mode: &'static str,
    voice: Voice,
    out: &mut impl Write,
    failures: &mut Failures,
) -> Result<()> {
    let mut seats = Vec::new();
    let mut owned = Vec::new();
    let mut skipped = 0;
    for (label, target) in failures.usable(listed) {
        let lock = match SyncLock::acquire(home, &target.forge.repo) {
            Ok(lock) => lock,
            Err(e) => match e.downcast::<Busy>() {
                Ok(busy) => {
                    skipped += 1;
                    let pid = busy.pid.map(|p| format!(" (PID {p})")).unwrap_or_default();
                    writeln!(out, "[{label}] skipped: another sync holds it{pid}")?;
                    continue;
                }
                Err(e) => {
                    failures.add(&label, e);
                    continue;
                }
            },
        };
        let log = match voice {
            Voice::Here => None,
            Voice::Logs => {
                let path = home.log_file(&target.forge.repo.owner, &target.forge.repo.name);
                match daemon::open_log(&path) {
                    Ok(file) => Some(file),
                    Err(e) => {
                        failures.add(&label, e);
                        continue;
                    }
                }
            }
        };
        let mut seat = Seat {
            label,
            target,
            nothing_pending: false,
            log,
            _lock: lock,
        };
        match ready(home, &mut seat, options, limit, mode, voice, out) {
            Ok(Some(ready)) => {
                seats.push(seat);
                owned.push(ready);
            }
            Ok(None) => {}
            Err(e) => {
                let _ = seat.say(voice, out, format!("failed: {e:#}\n").as_bytes());
                failures.add(&seat.label, e);
            }
        }
    }
    let drained = seats.len();
    let turns = Turns {
        home,
        options,
        limit,
        mode,
        voice,
    };
    turns.take(&mut seats, &mut owned, out, failures)?;
    writeln!(
        out,
        "All repositories: {} drained, {} skipped (another sync holds them), {} failed",
        drained,
        skipped,
        failures.0.len()
    )?;
    Ok(())
}

/// Opens the repository's store, discovers its new commits (no request),
/// and connects to its forge; `None` when there is nothing to drain.
fn ready(
    home: &PatinaHome,
    seat: &mut Seat<'_>,
    options: &ForgeOptions,
    limit: Option<u64>,
    mode: &'static str,
    voice: Voice,
    out: &mut impl Write,
) -> Result<Option<Owned>> {
    let target = seat.target;
    let repo = target.forge.repo.to_string();
    let mut store = Store::open(&target.db_path)?;
    report::opened(&target.db_path, store.adopted(), store.repaired());
    let outcome = crate::discover::discover(target, &mut store)?;
    let mut text = Vec::new();
    if outcome.shallow {
        writeln!(
            text,
            "warning: {} is a shallow clone: only the commits present were scanned",
            target.root.display()
        )?;
    }
    report::discovery_commits(&mut text, &outcome)?;
    let pending = store.pending(&repo)?;
    if mode == "sync" {
        writeln!(
            text,
            "sync of {repo} started: PID {} (--sync --all), {} pending",
            std::process::id(),
            report::thousands(pending)
        )?;
    }
    let Some(nothing_pending) = super::drain::has_work(&store, &repo, pending, limit)? else {
        writeln!(text, "{}", super::drain::nothing_pending_line(&repo))?;
        seat.say(voice, out, &text)?;
        return Ok(None);
    };
    seat.say(voice, out, &text)?;
    seat.nothing_pending = nothing_pending;
    let Connection { forge, pace } = connect::connect(home, target, options, Purpose::Drain)?;
    let progress = match voice {
        Voice::Here => Progress::lines(format!("[{}] ", seat.label), None),
        Voice::Logs => Progress::lines(
            String::new(),
            seat.log.as_ref().map(File::try_clone).transpose()?,
        ),
    };
    Ok(Some(Owned {
        store,
        forge,
        pace,
        progress,
    }))
}

/// How the drains take their turns.
struct Turns<'a> {
    home: &'a PatinaHome,
    options: &'a ForgeOptions,
    limit: Option<u64>,
    mode: &'static str,
    voice: Voice,
}

impl Turns<'_> {
    /// The drains, a turn each in a round, until every one has ended. A
    /// drain that waits (refs that failed for now), or whose API host the
    /// ledger holds back (a rate limit, the reserve), lets the others go
    /// meanwhile: one host's wait does not stop the others' drains.
    fn take(
        &self,
        seats: &mut [Seat<'_>],
        owned: &mut [Owned],
        out: &mut impl Write,
        failures: &mut Failures,
    ) -> Result<()> {
        let hosts: Vec<String> = owned.iter().map(|o| o.forge.host_key()).collect();
        let mut sessions: Vec<Option<Session<'_>>> = Vec::new();
        for (seat, o) in seats.iter_mut().zip(owned.iter_mut()) {
            let repo = seat.target.forge.repo.to_string();
            let options =
                super::drain::drain_options(self.options, &o.forge, self.limit, self.mode);
            match Session::start(
                &mut o.store,
                &o.forge,
                &o.pace,
                &mut o.progress,
                &repo,
                options,
            ) {
                Ok(session) => sessions.push(Some(session)),
                Err(e) => {
                    failures.add(&seat.label, e);
                    sessions.push(None);
                }
            }
        }
        let count = sessions.len();
        let mut ready_at: Vec<Option<SystemTime>> = vec![None; count];
        // The hold each drain was told of, so that it is said once.
        let mut told: Vec<Option<SystemTime>> = vec![None; count];
        loop {
            let planned: Vec<u64> = sessions
                .iter()
                .map(|s| s.as_ref().map_or(0, Session::planned_requests))
                .collect();
            let mut live = 0;
            let mut turned = false;
            for i in 0..count {
                let Some(session) = sessions[i].as_mut() else {
                    continue;
                };
                live += 1;
                let stopping = signals::stop_requested();
                let waiting = ready_at[i].is_some_and(|at| at > SystemTime::now());
                if waiting && !stopping {
                    continue;
                }
                ready_at[i] = None;
                if let Some((until, reason)) = pace::waiting(self.home, &hosts[i])
                    && !stopping
                {
                    if told[i] != Some(until) {
                        told[i] = Some(until);
                        session.log(&format!(
                            "waiting until {} for {}: {reason}",
                            pace::clock_time(until),
                            hosts[i]
                        ));
                    }
                    ready_at[i] = Some(until);
                    continue;
                }
                let others = (0..count)
                    .filter(|&j| j != i && hosts[j] == hosts[i])
                    .map(|j| planned[j])
                    .sum();
                session.set_others_planned(others);
                turned = true;
                match session.turn() {
                    Turn::Again => {}
                    Turn::Wait(until) => ready_at[i] = Some(until),
                    Turn::Ended => {
                        let session = sessions[i].take().expect("live");
                        let followed = session.followed();
                        let result = session.finish();
                        conclude(&mut seats[i], followed, result, self.voice, out, failures)?;
                    }
                }
            }
            if live == 0 {
                return Ok(());
            }
            if !turned {
                // Every drain waits: until the first can go on.
                let until = ready_at.iter().flatten().min().copied();
                if let Some(until) = until
                    && !crate::drain::sleep_until(until)
                {
                    sessions.iter_mut().flatten().for_each(Session::interrupt);
                }
            }
        }
    }
}

/// A repository's closing lines, where its voice says; a failure is added
/// to `failures`.
fn conclude(
    seat: &mut Seat<'_>,
    followed: u32,
    result: Result<crate::drain::Summary>,
    voice: Voice,
    out: &mut impl Write,
    failures: &mut Failures,
) -> Result<()> {
    let mut text = Vec::new();
    let outcome = result.and_then(|summary| {
        super::drain::conclude(
            seat.target,
            followed,
            seat.nothing_pending,
            &summary,
            &mut text,
        )
    });
    if let Err(e) = &outcome {
        writeln!(text, "failed: {e:#}")?;
    }
    let repo = seat.target.forge.repo.to_string();
    if voice == Voice::Logs {
        writeln!(text, "sync of {repo} ended")?;
        let first = String::from_utf8_lossy(&text)
            .lines()
            .find(|l| l.starts_with("Resolved") || l.starts_with("Nothing pending"))
            .map(str::to_owned);
        let line = match (&outcome, first) {
            (Err(_), _) => "failed (see its log)".to_owned(),
            (Ok(()), Some(line)) => line,
            (Ok(()), None) => "ended".to_owned(),
        };
        writeln!(out, "[{}] {line}", seat.label)?;
    }
    seat.say(voice, out, &text)?;
    if let Err(e) = outcome {
        failures.add(&seat.label, e);
    }
    Ok(())
}
