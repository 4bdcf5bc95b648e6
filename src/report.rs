//! What a person or a script reads: the discovery summary and the status.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::discover::Outcome;
use crate::store::{Counts, Rate, Repaired, RunRow};

/// `1 commit`, `18,335 commits`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { singular } else { plural }
    )
}

/// `18335` → `18,335`: every count we print is grouped so.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What discovery found in the commits it walked.
pub fn discovery_commits(out: &mut impl Write, outcome: &Outcome) -> io::Result<()> {
    if outcome.unborn {
        return writeln!(out, "No commits yet: nothing to discover");
    }
    if outcome.commits == 0 {
        return writeln!(out, "No new commits since the last discovery");
    }
    let commits = if outcome.incremental {
        count(outcome.commits, "new commit", "new commits")
    } else {
        count(outcome.commits, "commit", "commits")
    };
    writeln!(out, "Scanned {commits}")?;
    let r = &outcome.recorded;
    let prs = count(r.pr_new, "PR ref", "PR refs");
    writeln!(
        out,
        "Discovered {prs} from commits{}",
        already_known(r.pr_known)
    )?;
    let issues = count(r.issue_new, "issue ref", "issue refs");
    writeln!(
        out,
        "Discovered {issues} from commits{}",
        already_known(r.issue_known)
    )
}

/// The closing line of discovery, with the next step.
pub fn discovery_total(out: &mut impl Write, pending: u64) -> io::Result<()> {
    match pending {
        0 => writeln!(out, "Total: 0 pending. Nothing to fetch."),
        n => writeln!(out, "Total: {} pending. Run --sync to fetch.", thousands(n)),
    }
}

fn already_known(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({} already known)", thousands(n)),
    }
}

/// How far back "recent" goes for a running sync's rate.
const RECENT: Duration = Duration::from_secs(10 * 60);

/// `--status --json`: the field names are a contract with scripts and patina
/// (see `docs/contracts.md`); add, never rename.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `owner/name` on the forge.
    pub repo: String,
    /// Whether a process holds the sync lock: the lock says, not a PID.
    pub running: bool,
    /// The holder's PID, from the PID file; null when none runs.
    pub pid: Option<u32>,
    /// `total`, `resolved`, `pending` and `failed`, as patina counts them.
    #[serde(flatten)]
    pub counts: Counts,
    /// Settled refs (resolved and failed) of the total, rounded down.
    pub percent: u64,
    /// Refs settled a minute, measured: over the last ten minutes of a
    /// running sync, else over the latest run. Null under half a minute or
    /// with nothing settled, when it would be noise.
    pub rate_per_min: Option<f64>,
    /// Pending refs at that rate; null without a rate.
    pub eta_seconds: Option<u64>,
    /// The latest run's last error, transient ones included (or null).
    pub last_error: Option<String>,
    /// The rate-limit budget as last seen (GraphQL's points after a
    /// GraphQL drain).
    pub rate_limit: Option<RateLimit>,
    /// The latest drain (or null before the first).
    pub last_run: Option<LastRun>,
    /// When the last refresh ran and how many items it brought (or null).
    pub last_refresh: Option<LastRefresh>,
    /// The API the latest drain resolved through: "graphql" or "rest" (or null).
    pub api: Option<String>,
    /// Why REST, when it is ("no token", "--api rest", the host's answer).
    pub api_note: Option<String>,
    /// "github", "github-enterprise" or "gitea" (or null before it is known).
    pub forge_kind: Option<String>,
    /// Where the forge's API answered when its kind was asked (or null).
    pub api_base: Option<String>,
    /// A wait the API host's pace ledger imposes on every process, when it
    /// ends more than a few seconds from now (or null).
    pub waiting: Option<Waiting>,
}

/// A wait in the pace ledger: no request to the host before `until`.
#[derive(Debug, Serialize)]
pub struct Waiting {
    /// RFC 3339.
    pub until: String,
    /// Why, as the ledger says it ("waiting for the rate limit to reset at
    /// 14:05 UTC; …", "spreading the … requests left …").
    pub reason: String,
}

/// The last refresh that ran to its end.
#[derive(Debug, Serialize)]
pub struct LastRefresh {
    /// RFC 3339.
    pub at: String,
    /// Items it found new or changed on the forge.
    pub changed: u64,
}

impl LastRefresh {
    /// `None` before the first refresh finished.
    pub fn from_state(state: &crate::store::RefreshState) -> Option<Self> {
        Some(Self {
            at: rfc3339(state.at.as_deref()?),
            changed: state.changed.unwrap_or(0),
        })
    }
}

/// The rate-limit budget the forge last announced.
#[derive(Debug, Serialize)]
pub struct RateLimit {
    /// Requests (or points) left until `reset`.
    pub remaining: u64,
    /// The window's whole budget.
    pub limit: u64,
    /// RFC 3339.
    pub reset: String,
}

/// The latest drain, as `forge_runs` records it.
#[derive(Debug, Serialize)]
pub struct LastRun {
    /// `running`, `finished`, `interrupted` or `failed`.
    pub state: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339; null while running.
    pub ended: Option<String>,
}

impl LastRun {
    /// `running` is the lock's word: a row still saying "running" whose
    /// lock is free belonged to a process that was killed.
    pub fn from_row(run: RunRow, running: bool) -> Self {
        let state = if run.state == "running" && !running {
            "interrupted".to_owned()
        } else {
            run.state
        };
        Self {
            state,
            started: rfc3339(&run.started),
            ended: run.ended.as_deref().map(rfc3339),
        }
    }
}

impl From<Rate> for RateLimit {
    fn from(rate: Rate) -> Self {
        Self {
            remaining: rate.remaining,
            limit: rate.limit,
            reset: humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(rate.reset.max(0) as u64),
            )
            .to_string(),
        }
    }
}

fn parse_sqlite_time(sqlite: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(&rfc3339(sqlite)).ok()
}

/// SQLite's `YYYY-MM-DD HH:MM:SS` (UTC) as RFC 3339.
fn rfc3339(sqlite: &str) -> String {
    match sqlite.split_once(' ') {
        Some((date, time)) => format!("{date}T{time}Z"),
        None => sqlite.to_owned(),
    }
}

impl Status {
    /// Rate and ETA, measured, never assumed from the delay (a listing
    /// settles 100 refs a request). A running sync is measured over its
    /// recent past: `recent` refs settled since [`Status::recent_since`]; a
    /// finished one over its whole run.
    pub fn measure(&mut self, run: &RunRow, recent: Option<u64>, now: SystemTime) {
        let Some(started) = parse_sqlite_time(&run.started) else {
            return;
        };
        let (settled, since) = match (self.running, recent) {
            (true, Some(recent)) => (recent, started.max(now - RECENT)),
            _ => (run.resolved + run.failed, started),
        };
        let until = match (
            self.running,
            run.ended.as_deref().and_then(parse_sqlite_time),
        ) {
            (false, Some(ended)) => ended,
            _ => now,
        };
        let seconds = until
            .duration_since(since)
            .unwrap_or_default()
            .as_secs_f64();
        // Under half a minute, or nothing done yet, a rate would be noise.
        if seconds < 30.0 || settled == 0 {
            return;
        }
        let per_min = settled as f64 * 60.0 / seconds;
        self.rate_per_min = Some((per_min * 10.0).round() / 10.0);
        if self.counts.pending > 0 {
            self.eta_seconds = Some((self.counts.pending as f64 * 60.0 / per_min).ceil() as u64);
        }
    }

    /// Where the recent past of a running sync starts, as SQLite writes times.
    pub fn recent_since(run: &RunRow, now: SystemTime) -> String {
        let since = parse_sqlite_time(&run.started)
            .map_or(now - RECENT, |started| started.max(now - RECENT));
        humantime::format_rfc3339_seconds(since)
            .to_string()
            .replacen('T', " ", 1)
            .trim_end_matches('Z')
            .to_owned()
    }

    /// The status of `repo` from its counts alone: nothing running, nothing
    /// measured yet.
    pub fn new(repo: String, counts: Counts) -> Self {
        let settled = counts.resolved + counts.failed;
        let percent = (settled.min(counts.total) * 100)
            .checked_div(counts.total)
            .unwrap_or(0);
        Self {
            repo,
            running: false,
            pid: None,
            counts,
            percent,
            rate_per_min: None,
            eta_seconds: None,
            last_error: None,
            rate_limit: None,
            last_run: None,
            last_refresh: None,
            api: None,
            api_note: None,
            forge_kind: None,
            api_base: None,
            waiting: None,
        }
    }

    /// `--status --json`: one object on one line.
    pub fn write_json(&self, out: &mut impl Write) -> Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)?;
        Ok(())
    }

    /// `--status`: one `Name: value` line each; what is not known is left out.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let c = &self.counts;
        writeln!(out, "Forge: {}", self.repo)?;
        match (self.running, self.pid, &self.last_run) {
            (true, Some(pid), _) => writeln!(out, "Syncing: PID {pid} running")?,
            (true, None, _) => writeln!(out, "Syncing: running")?,
            (false, _, Some(run)) => writeln!(
                out,
                "Syncing: not running (last run {}, {})",
                run.state,
                run.ended.as_deref().unwrap_or(&run.started)
            )?,
            (false, _, None) => writeln!(out, "Syncing: not running")?,
        }
        writeln!(
            out,
            "Progress: {} / {} ({}%)",
            thousands(c.resolved + c.failed),
            thousands(c.total),
            self.percent
        )?;
        if let Some(rate) = self.rate_per_min {
            writeln!(out, "Rate: ~{} refs/min", thousands(rate.round() as u64))?;
        }
        if let Some(eta) = self.eta_seconds {
            // Minutes are precise enough for hours of work.
            let eta = std::time::Duration::from_secs(eta.div_ceil(60) * 60);
            writeln!(out, "ETA: ~{} remaining", humantime::format_duration(eta))?;
        }
        writeln!(out, "Resolved: {}", thousands(c.resolved))?;
        writeln!(out, "Pending: {}", thousands(c.pending))?;
        writeln!(out, "Failed: {}", thousands(c.failed))?;
        if let Some(error) = &self.last_error {
            writeln!(out, "Last error: {error}")?;
        }
        if let Some(refresh) = &self.last_refresh {
            writeln!(
                out,
                "Last refresh: {} ({})",
                refresh.at,
                count(
                    refresh.changed,
                    "new or changed item",
                    "new or changed items"
                )
            )?;
        }
        match (self.forge_kind.as_deref(), self.api_base.as_deref()) {
            (Some(kind), Some(base)) => writeln!(out, "Forge kind: {kind} ({base})")?,
            (Some(kind), None) => writeln!(out, "Forge kind: {kind}")?,
            _ => {}
        }
        match (self.api.as_deref(), self.api_note.as_deref()) {
            (Some("graphql"), _) => writeln!(out, "API: GraphQL batches")?,
            (Some(api), Some(note)) => writeln!(out, "API: {} ({note})", api.to_uppercase())?,
            (Some(api), None) => writeln!(out, "API: {}", api.to_uppercase())?,
            (None, _) => {}
        }
        if let Some(waiting) = &self.waiting {
            match waiting.reason.strip_prefix("waiting ") {
                Some(rest) => writeln!(out, "Waiting: {rest}")?,
                None => writeln!(out, "Waiting: until {} ({})", waiting.until, waiting.reason)?,
            }
        }
        if let Some(rate) = &self.rate_limit {
            let unit = if self.api.as_deref() == Some("graphql") {
                " points"
            } else {
                ""
            };
            writeln!(
                out,
                "Rate limit: {} / {}{unit} left, resets {}",
                thousands(rate.remaining),
                thousands(rate.limit),
                rate.reset
            )?;
        }
        Ok(())
    }
}

/// A remark on stderr: as it is on a terminal, stamped anywhere else (a log).
pub fn note(message: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("{message}");
    } else {
        eprintln!("{}", stamped(message));
    }
}

/// Notes of what opening the store did to patina's file: the former
/// layout moved out of it, and what it lacked (patina deleted, rebuilt or
/// wrote over it) written again.
pub fn opened(db: &std::path::Path, adopted: bool, repaired: Repaired) {
    if adopted {
        note(&format!(
            "note: patina-forge's data moved out of {} into {}, once; {} keeps patina's \
             schema alone",
            db.display(),
            crate::store::store_path(db).display(),
            db.display()
        ));
    }
    if repaired.is_empty() {
        return;
    }
    let mut what = Vec::new();
    if repaired.items > 0 {
        what.push(count(repaired.items, "item", "items"));
    }
    if repaired.refs > 0 {
        what.push(count(repaired.refs, "ref", "refs"));
    }
    if repaired.search {
        what.push("the search rows".to_string());
    }
    note(&format!(
        "note: {} lacked {} of the store's; written again from the store (no request)",
        db.display(),
        what.join(", ")
    ));
}

/// An error (its causes after colons, with `{:#}`) as one line, so that
/// cron mails and journals stay readable.
pub fn one_line(err: &dyn std::fmt::Display) -> String {
    format!("{err:#}").replace('\n', " ")
}

/// A line for logs: RFC 3339 UTC time first, so that any line can be placed.
pub fn stamped(message: &str) -> String {
    format!(
        "{} {message}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    )
}

/// Progress of a drain: a bar on a terminal, plain stamped lines (at most one
/// every few seconds) anywhere else, so that logs stay readable.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    last_line: std::time::Instant,
    /// Starts every plain line (`--all`: `[repository] `).
    prefix: String,
    /// Where plain lines go instead of stderr (`--sync --all`: the
    /// repository's own log).
    sink: Option<std::fs::File>,
}

/// Plain progress lines come no more often than this.
const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Progress {
    /// A bar when stderr is a terminal, lines otherwise.
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} refs  {per_sec}  eta {eta}  {msg}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self {
            bar,
            total: 0,
            done: 0,
            last_line: std::time::Instant::now(),
            prefix: String::new(),
            sink: None,
        }
    }

    /// Plain lines only, each starting with `prefix`, to `sink` or else to
    /// stderr: one repository's progress among others' (`--all`).
    pub fn lines(prefix: String, sink: Option<std::fs::File>) -> Self {
        Self {
            bar: None,
            prefix,
            sink,
            ..Self::new()
        }
    }

    fn line(&mut self, message: &str) {
        let line = stamped(&format!("{}{message}", self.prefix));
        match &mut self.sink {
            // A log that cannot be written must not end the drain.
            Some(file) => drop(writeln!(file, "{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// `total` refs to settle: the bar's length.
    pub fn start(&mut self, total: u64) {
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Refs settled so far.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = std::time::Instant::now();
                self.line(&format!(
                    "progress: {} / {} refs",
                    thousands(done),
                    thousands(self.total)
                ));
            }
            None => {}
        }
    }

    /// A message that must be seen (a wait, a retry), above the bar.
    pub fn log(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => self.line(message),
        }
    }

    /// Clears the bar, so that the summary starts on a clean line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// A writer that starts every line with an RFC 3339 UTC time: what the
/// background sync prints on stdout lands in its log readable and placeable.
pub struct Stamped<W: Write> {
    inner: W,
    at_line_start: bool,
}

impl<W: Write> Stamped<W> {
    /// Stamps each line written to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            at_line_start: true,
        }
    }
}

impl<W: Write> Write for Stamped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for line in buf.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                write!(
                    self.inner,
                    "{} ",
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                )?;
            }
            self.inner.write_all(line)?;
            self.at_line_start = line.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `--log`: the last `lines` lines of the log, then, with `follow`, what is
/// appended until interrupted. Reads only the end of a large log.
pub fn tail_log(
    out: &mut impl Write,
    path: &std::path::Path,
    lines: usize,
    follow: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::{Read, Seek, SeekFrom};

    let mut file = match crate::home::open_private_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !follow => {
            writeln!(
                out,
                "No sync log yet ({}). Start one with --sync.",
                path.display()
            )?;
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // --follow waits for the first sync to create it.
            loop {
                if crate::signals::stop_requested() {
                    return Ok(());
                }
                std::thread::sleep(FOLLOW_NAP);
                if let Ok(file) = crate::home::open_private_read(path) {
                    break file;
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let len = file.metadata()?.len();
    // Lines are short; 256 bytes a line is a generous window.
    let window = (lines as u64).saturating_mul(256).max(4096);
    let start = len.saturating_sub(window);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let text = String::from_utf8_lossy(&tail);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        // The first line of the window is probably cut.
        all.remove(0);
    }
    for line in &all[all.len().saturating_sub(lines)..] {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut position = len;
    let mut buf = Vec::new();
    while !crate::signals::stop_requested() {
        let now = file.metadata()?.len();
        if now < position {
            // Truncated or replaced: start over from its beginning.
            position = 0;
        }
        if now > position {
            file.seek(SeekFrom::Start(position))?;
            buf.clear();
            (&mut file).take(now - position).read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            out.flush()?;
            position = now;
        }
        std::thread::sleep(FOLLOW_NAP);
    }
    Ok(())
}

const FOLLOW_NAP: std::time::Duration = std::time::Duration::from_millis(200);

/// One repository of `--status --all`: its status, or why it could not be
/// read.
pub struct Row {
    /// How output names it: the registry's name, else the forge repository.
    pub label: String,
    /// Its name in `registry.yaml`; `None` for the project run from.
    pub name: Option<String>,
    /// Its clone's folder.
    pub path: String,
    /// Its status; or the forge repository when it is known, and why the
    /// repository could not be read.
    pub outcome: std::result::Result<Status, (Option<String>, String)>,
}

impl Row {
    /// When anything last happened: the latest of the last run's end (its
    /// start while it runs) and the last refresh; RFC 3339, which sorts as
    /// text.
    fn activity(&self) -> Option<&str> {
        let status = self.outcome.as_ref().ok()?;
        let run = status
            .last_run
            .as_ref()
            .map(|run| run.ended.as_deref().unwrap_or(&run.started));
        let refresh = status.last_refresh.as_ref().map(|r| r.at.as_str());
        run.max(refresh)
    }
}

/// The single `--status --json` object, with `name`, `path` and `error`
/// added, its fields in the single object's order. A repository that could
/// not be read has every field of the single object null but `repo` (when
/// the forge repository is known).
impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        use serde_json::Value;
        let fields = match &self.outcome {
            Ok(status) => serde_json::to_value(status).map_err(S::Error::custom)?,
            Err(_) => Value::Null,
        };
        let mut map = serializer.serialize_map(None)?;
        for key in status_fields() {
            match (&self.outcome, key.as_str()) {
                (Ok(_), _) => map.serialize_entry(&key, &fields[key.as_str()])?,
                (Err((repo, _)), "repo") => map.serialize_entry(&key, repo)?,
                (Err(_), _) => map.serialize_entry(&key, &Value::Null)?,
            }
        }
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("path", &self.path)?;
        map.serialize_entry("error", &self.outcome.as_ref().err().map(|(_, why)| why))?;
        map.end()
    }
}

/// The field names of `--status --json`, in its order (`serde_json`'s
/// `Value` sorts them).
fn status_fields() -> Vec<String> {
    let text =
        serde_json::to_string(&Status::new(String::new(), Counts::default())).unwrap_or_default();
    let mut fields: Vec<String> = match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    fields.sort_by_key(|key| text.find(&format!("\"{key}\":")));
    fields
}

/// The order of `--status --all`: newest activity first; repositories that
/// never ran (and those that could not be read) last, by label.
pub fn by_activity(rows: &[Row]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&rows[a], &rows[b]);
        b.activity()
            .cmp(&a.activity())
            .then_with(|| a.label.cmp(&b.label))
    });
    order
}

/// One API host of `--status --all`: the budget its repositories last saw
/// and what its pace ledger holds.
#[derive(Debug, Serialize)]
pub struct Host {
    /// The ledger's key: the API's host, with `:port` when not the default.
    pub host: String,
    /// The labels of the repositories whose requests go there.
    pub repos: Vec<String>,
    /// The freshest budget among them (or null before any was seen).
    pub rate_limit: Option<HostRate>,
    /// A wait the ledger imposes on every process, when it ends more than a
    /// few seconds from now (or null).
    pub waiting: Option<Waiting>,
    /// When the next request to the host may leave, when that is later
    /// than now (RFC 3339, or null).
    pub next_slot: Option<String>,
    /// Secondary limits in a row without a success between (each doubles
    /// the wait after the next one).
    pub secondary_limits: u32,
}

/// A host's budget as a repository's latest drain saw it.
#[derive(Debug, Serialize)]
pub struct HostRate {
    /// Requests (or points) left until `reset`.
    pub remaining: u64,
    /// The window's whole budget.
    pub limit: u64,
    /// RFC 3339.
    pub reset: String,
    /// "graphql" (points) or "rest" (requests), as that drain counted; or
    /// null when not recorded.
    pub api: Option<String>,
}

/// `--status --all`: every repository, newest activity first, and every
/// API host they use.
pub struct AllStatus<'a> {
    /// In the order they are printed.
    pub rows: Vec<&'a Row>,
    /// By host name.
    pub hosts: Vec<Host>,
}

impl AllStatus<'_> {
    /// `--status --all --json`: `{"repos": [...], "hosts": [...]}` on one
    /// line.
    pub fn write_json(&self, out: &mut impl Write) -> Result<()> {
        #[derive(Serialize)]
        struct Json<'a> {
            repos: &'a [&'a Row],
            hosts: &'a [Host],
        }
        serde_json::to_writer(
            &mut *out,
            &Json {
                repos: &self.rows,
                hosts: &self.hosts,
            },
        )?;
        writeln!(out)?;
        Ok(())
    }

    /// `--status --all`: a table of plain columns (times in UTC, as
    /// `MM-DD HH:MM` this year and as a date before), a line under a row
    /// for its error, then one line per API host.
    pub fn write_text(&self, out: &mut impl Write, now: SystemTime) -> io::Result<()> {
        let year = &humantime::format_rfc3339_seconds(now).to_string()[..4];
        let short = |rfc: &str| short_time(rfc, year);
        const HEADER: [&str; 9] = [
            "REPOSITORY",
            "KIND",
            "SYNC",
            "RESOLVED",
            "PENDING",
            "FAILED",
            "DONE",
            "LAST RUN (UTC)",
            "REFRESHED (UTC)",
        ];
        // Counts are right-aligned.
        const RIGHT: [bool; 9] = [false, false, false, true, true, true, true, false, false];
        let mut table: Vec<[String; 9]> = vec![HEADER.map(str::to_owned)];
        let mut notes: Vec<Option<String>> = vec![None];
        for row in &self.rows {
            let dash = || "-".to_owned();
            match &row.outcome {
                Ok(s) => {
                    let c = &s.counts;
                    let sync = match (s.running, s.pid) {
                        (true, Some(pid)) => format!("PID {pid}"),
                        (true, None) => "running".to_owned(),
                        (false, _) => "no".to_owned(),
                    };
                    let run = match &s.last_run {
                        Some(run) => format!(
                            "{} {}",
                            run.state,
                            short(run.ended.as_deref().unwrap_or(&run.started))
                        ),
                        None => "never".to_owned(),
                    };
                    table.push([
                        row.label.clone(),
                        s.forge_kind.clone().unwrap_or_else(dash),
                        sync,
                        thousands(c.resolved),
                        thousands(c.pending),
                        thousands(c.failed),
                        format!("{}%", s.percent),
                        run,
                        s.last_refresh.as_ref().map_or_else(dash, |r| short(&r.at)),
                    ]);
                    notes.push(s.last_error.as_ref().map(|e| format!("last error: {e}")));
                }
                Err((_, why)) => {
                    let mut cells: [String; 9] = std::array::from_fn(|_| dash());
                    cells[0] = row.label.clone();
                    table.push(cells);
                    notes.push(Some(format!("error: {why}")));
                }
            }
        }
        let mut widths = [0usize; 9];
        for cells in &table {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for (cells, note) in table.iter().zip(&notes) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                if RIGHT[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
            if let Some(note) = note {
                writeln!(out, "  {note}")?;
            }
        }
        if !self.hosts.is_empty() {
            writeln!(out)?;
        }
        let now = humantime::format_rfc3339_seconds(now).to_string();
        for host in &self.hosts {
            let mut line = format!("{}: ", host.host);
            match &host.rate_limit {
                Some(rate) => {
                    let unit = if rate.api.as_deref() == Some("graphql") {
                        " points"
                    } else {
                        ""
                    };
                    let (remaining, limit) = (thousands(rate.remaining), thousands(rate.limit));
                    if rate.reset > now {
                        line.push_str(&format!(
                            "{remaining} of {limit}{unit} left, resets {}",
                            clock(&rate.reset)
                        ));
                    } else {
                        line.push_str(&format!(
                            "{remaining} of {limit}{unit} left when last seen; the window reset \
                             at {}",
                            clock(&rate.reset)
                        ));
                    }
                }
                None => line.push_str("no budget seen yet"),
            }
            if let Some(waiting) = &host.waiting {
                line.push_str(&format!(
                    "; waiting until {} ({})",
                    clock(&waiting.until),
                    waiting.reason
                ));
            }
            if host.secondary_limits > 0 {
                line.push_str(&format!(
                    "; {} in a row",
                    count(
                        host.secondary_limits.into(),
                        "secondary limit",
                        "secondary limits"
                    )
                ));
            }
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// `2026-12-05T17:04:09Z` → `12-05 17:04` in `year`, else `2025-12-05`.
fn short_time(rfc3339: &str, year: &str) -> String {
    match (rfc3339.get(..4), rfc3339.get(5..10), rfc3339.get(11..16)) {
        (Some(y), Some(day), Some(time)) if y == year => format!("{day} {time}"),
        (Some(_), _, _) if rfc3339.len() >= 10 => rfc3339[..10].to_owned(),
        _ => rfc3339.to_owned(),
    }
}

/// `2026-12-05T17:04:09Z` → `17:04 UTC`.
fn clock(rfc3339: &str) -> String {
    match rfc3339.get(11..16) {
        Some(time) => format!("{time} UTC"),
        None => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_by_three() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (18335, "18,335"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn percent_counts_settled_refs() {
        let status = Status::new(
            "o/r".into(),
            Counts {
                total: 18335,
                resolved: 4000,
                pending: 13814,
                failed: 521,
            },
        );
        assert_eq!(status.percent, 24);
        assert_eq!(Status::new("o/r".into(), Counts::default()).percent, 0);
    }
}
