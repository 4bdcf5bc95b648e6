//! `--log`: the end of the background sync's log, and with `--follow` what
//! it writes next; with `--all`, every repository's log and `--sync --all`'s
//! own, interleaved by time.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Result;

use crate::exit::ExitCode;
use crate::home::PatinaHome;
use crate::target::{Listed, Target};
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

/// `--log --all`: the last `lines` lines of the logs of every repository of
/// `listed` and of `--sync --all` (`[all]`), merged by the RFC 3339 time
/// each line starts with, each prefixed with `[label] `; with `follow`, the
/// lines any of them gets next (also a log that appears later), until
/// SIGINT or SIGTERM. A repository whose log cannot be named or read is one
/// line on stderr and exit status 1.
pub fn run_all(
    home: &PatinaHome,
    listed: &[Listed],
    lines: usize,
    follow: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    if follow {
        signals::install()?;
    }
    let mut failed = false;
    let mut sources = vec![Source::new("all".to_owned(), home.all_log_file())];
    for entry in listed {
        match &entry.target {
            Ok(target) => {
                let path = home.log_file(&target.forge.repo.owner, &target.forge.repo.name);
                // Two entries for one forge repository share its log.
                if !sources.iter().any(|s| s.path == path) {
                    sources.push(Source::new(entry.label(), path));
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {}: {}", entry.label(), report::one_line(e));
            }
        }
    }

    let mut tails = Vec::with_capacity(sources.len());
    for source in &mut sources {
        match source.tail(lines, follow) {
            Ok(lines) => tails.push(lines),
            Err(e) => {
                failed |= source.report(&e);
                tails.push(Vec::new());
            }
        }
    }
    if !follow && sources.iter().all(|s| !s.exists) {
        writeln!(
            out,
            "No sync log yet (in {}). Start one with --sync --all.",
            home.all_log_file()
                .parent()
                .unwrap_or(home.all_log_file().as_path())
                .display()
        )?;
        return Ok(exit(failed));
    }
    let merged = merge(tails);
    for (source, line) in &merged[merged.len().saturating_sub(lines)..] {
        writeln!(out, "[{}] {line}", sources[*source].label)?;
    }
    out.flush()?;

    while follow && !signals::stop_requested() {
        std::thread::sleep(FOLLOW_NAP);
        let mut fresh = Vec::with_capacity(sources.len());
        for source in &mut sources {
            match source.read_new() {
                Ok(lines) => fresh.push(lines),
                Err(e) => {
                    failed |= source.report(&e);
                    fresh.push(Vec::new());
                }
            }
        }
        let merged = merge(fresh);
        for (source, line) in &merged {
            writeln!(out, "[{}] {line}", sources[*source].label)?;
        }
        if !merged.is_empty() {
            out.flush()?;
        }
    }
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::Failure
    } else {
        ExitCode::Success
    }
}

const FOLLOW_NAP: std::time::Duration = std::time::Duration::from_millis(200);

/// Bytes read at a time from a log's end, backwards.
const CHUNK: u64 = 64 * 1024;

/// A line and the time it is placed at: its own stamp, else the previous
/// line's.
type Timed = (Option<SystemTime>, String);

/// One log being read.
struct Source {
    label: String,
    path: PathBuf,
    /// Read up to here (the end of the last whole line).
    position: u64,
    /// The time of the last line read, for an unstamped line that follows.
    last: Option<SystemTime>,
    exists: bool,
    /// An error was said once already (it is not repeated every poll).
    reported: bool,
}

impl Source {
    fn new(label: String, path: PathBuf) -> Self {
        Self {
            label,
            path,
            position: 0,
            last: None,
            exists: false,
            reported: false,
        }
    }

    /// Says `err` on stderr once; whether it was said now.
    fn report(&mut self, err: &io::Error) -> bool {
        if self.reported {
            return true;
        }
        self.reported = true;
        eprintln!(
            "error: {}: cannot read {}: {err}",
            self.label,
            self.path.display()
        );
        true
    }

    /// Opens the log; `None` while it does not exist.
    fn open(&mut self) -> io::Result<Option<std::fs::File>> {
        match crate::home::open_private_read(&self.path) {
            Ok(file) => {
                self.exists = true;
                Ok(Some(file))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The last `lines` lines, reading only as much of the end as they
    /// take. With `follow`, a last line without its newline yet is left
    /// for [`Source::read_new`].
    fn tail(&mut self, lines: usize, follow: bool) -> io::Result<Vec<Timed>> {
        let Some(mut file) = self.open()? else {
            return Ok(Vec::new());
        };
        let len = file.metadata()?.len();
        let mut start = len;
        let mut buf: Vec<u8> = Vec::new();
        // Back until the window holds a newline before the `lines` last
        // lines (the end's own newline is one more), or the file's start.
        while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= lines {
            let from = start.saturating_sub(CHUNK);
            let mut chunk = vec![0; (start - from) as usize];
            file.seek(SeekFrom::Start(from))?;
            file.read_exact(&mut chunk)?;
            chunk.extend_from_slice(&buf);
            buf = chunk;
            start = from;
        }
        let mut end = buf.len();
        if follow {
            end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        }
        self.position = start + end as u64;
        let mut text = &buf[..end];
        if start > 0 {
            // The window's first line is cut.
            text = text
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |i| &text[i + 1..]);
        }
        let mut timed = self.stamp(text);
        let keep = timed.len().saturating_sub(lines);
        timed.drain(..keep);
        Ok(timed)
    }

    /// The whole lines appended since the last read; a log that was
    /// truncated or replaced by a shorter one is read from its start.
    fn read_new(&mut self) -> io::Result<Vec<Timed>> {
        let Some(mut file) = self.open()? else {
            return Ok(Vec::new());
        };
        let len = file.metadata()?.len();
        if len < self.position {
            self.position = 0;
        }
        if len == self.position {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(self.position))?;
        let mut buf = Vec::new();
        (&mut file)
            .take(len - self.position)
            .read_to_end(&mut buf)?;
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.position += end as u64;
        Ok(self.stamp(&buf[..end]))
    }

    /// Each line of `text` with its time: its stamp, else the previous
    /// line's (lines before the first stamp take the first stamp's).
    fn stamp(&mut self, text: &[u8]) -> Vec<Timed> {
        let text = String::from_utf8_lossy(text);
        let mut timed: Vec<Timed> = text
            .lines()
            .map(|line| {
                if let Some(at) = stamp_of(line) {
                    self.last = Some(at);
                }
                (self.last, line.to_owned())
            })
            .collect();
        if let Some(first) = timed.iter().find_map(|(at, _)| *at) {
            for (at, _) in timed.iter_mut().take_while(|(at, _)| at.is_none()) {
                *at = Some(first);
            }
        }
        timed
    }
}

/// The RFC 3339 time a log line starts with (`2026-11-28T04:49:53Z …`).
fn stamp_of(line: &str) -> Option<SystemTime> {
    let word = line.split_once(' ').map_or(line, |(word, _)| word);
    let bytes = word.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[10] != b'T' {
        return None;
    }
    humantime::parse_rfc3339(word).ok()
}

/// The logs' lines in one list, by time; each log's own order is kept, and
/// of lines with equal times the earlier log's come first. Each line comes
/// with the index of its log.
fn merge(logs: Vec<Vec<Timed>>) -> Vec<(usize, String)> {
    let total = logs.iter().map(Vec::len).sum();
    let mut merged = Vec::with_capacity(total);
    let mut logs: Vec<std::iter::Peekable<std::vec::IntoIter<Timed>>> =
        logs.into_iter().map(|l| l.into_iter().peekable()).collect();
    loop {
        let mut next: Option<(usize, Option<SystemTime>)> = None;
        for (i, log) in logs.iter_mut().enumerate() {
            if let Some((at, _)) = log.peek()
                && next.is_none_or(|(_, best)| *at < best)
            {
                next = Some((i, *at));
            }
        }
        let Some((i, _)) = next else { break };
        if let Some((_, line)) = logs[i].next() {
            merged.push((i, line));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<SystemTime> {
        Some(humantime::parse_rfc3339(text).unwrap())
    }

    #[test]
    fn merging_keeps_each_logs_order_and_puts_ties_in_log_order() {
        let a = vec![
            (at("2026-01-01T00:00:02Z"), "a1".to_owned()),
            (
                at("2026-01-01T00:00:01Z"),
                "a2 (a clock set back)".to_owned(),
            ),
        ];
        let b = vec![
            (at("2026-01-01T00:00:00Z"), "b1".to_owned()),
            (at("2026-01-01T00:00:02Z"), "b2".to_owned()),
        ];
        let merged: Vec<String> = merge(vec![a, b]).into_iter().map(|(_, l)| l).collect();
        assert_eq!(merged, ["b1", "a1", "a2 (a clock set back)", "b2"]);
    }

    #[test]
    fn a_line_without_a_stamp_keeps_the_previous_time() {
        let mut source = Source::new("x".into(), PathBuf::new());
        let timed = source
            .stamp(b"continued\n2026-01-01T00:00:05Z one\nno stamp\n2026-01-01T00:00:07Z two\n");
        let times: Vec<_> = timed.iter().map(|(t, _)| *t).collect();
        let five = at("2026-01-01T00:00:05Z");
        assert_eq!(times, [five, five, five, at("2026-01-01T00:00:07Z")]);
        assert_eq!(stamp_of("2026-01-01 00:00:05 x"), None);
        assert_eq!(stamp_of("[all] 2026-01-01T00:00:05Z"), None);
    }
}
