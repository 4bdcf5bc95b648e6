//! The fake GitHub of the integration tests as a standalone server, for
//! benchmarks that run the real binary against a large repository:
//!
//! ```text
//! cargo build --release --example fake-forge
//! target/release/examples/fake-forge --repo acme/widget --items 17488 [--pr-every 3]
//!     [--missing-every 50] [--deleted-every 200] [--port P] [--latency-ms 0]
//!     [--rate-limit 5000] [--token T] [--log FILE]
//! ```
//!
//! The first line on stdout is the API base (`http://127.0.0.1:PORT`). It
//! serves until its stdin reaches end of file (keep a pipe open to it; with
//! stdin from /dev/null it exits at once), then prints a summary to stderr:
//! total requests, counted requests, and how many of each status. SIGTERM ends
//! it at once without the summary (std cannot catch signals without `unsafe`);
//! `--log FILE` is written line by line (`ms status path`), so it is complete
//! up to that moment either way.
//!
//! Items, for n in 1..=items: a multiple of `--deleted-every` is deleted (410),
//! else a multiple of `--missing-every` does not exist (404), else a multiple
//! of `--pr-every` is a PR (every other one merged, the rest open or closed),
//! else an issue (every fourth closed). The same arguments give the same data.

#[path = "../tests/fakeforge/mod.rs"]
mod fakeforge;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, LineWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use fakeforge::{FakeForge, Item, default_created};

struct Args {
    repo: String,
    items: u64,
    pr_every: u64,
    missing_every: u64,
    deleted_every: u64,
    port: u16,
    latency_ms: u64,
    rate_limit: u64,
    token: Option<String>,
    log: Option<String>,
}

const USAGE: &str = "usage: fake-forge --repo OWNER/NAME --items N [--pr-every 3] [--missing-every 50] \
[--deleted-every 200] [--port 0] [--latency-ms 0] [--rate-limit 5000] [--token T] [--log FILE]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        repo: String::new(),
        items: 0,
        pr_every: 3,
        missing_every: 50,
        deleted_every: 200,
        port: 0,
        latency_ms: 0,
        rate_limit: 5_000,
        token: None,
        log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--repo" => args.repo = value,
            "--items" => args.items = number(&value)?,
            "--pr-every" => args.pr_every = number(&value)?,
            "--missing-every" => args.missing_every = number(&value)?,
            "--deleted-every" => args.deleted_every = number(&value)?,
            "--port" => {
                args.port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port: {value:?}"))?
            }
            "--latency-ms" => args.latency_ms = number(&value)?,
            "--rate-limit" => args.rate_limit = number(&value)?,
            "--token" => args.token = Some(value),
            "--log" => args.log = Some(value),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let valid = args
        .repo
        .split_once('/')
        .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'));
    if !valid {
        return Err(format!("--repo OWNER/NAME is required\n{USAGE}"));
    }
    Ok(args)
}

/// `every` = 0 turns a rule off.
fn multiple(n: u64, every: u64) -> bool {
    every > 0 && n.is_multiple_of(every)
}

fn fill(forge: &FakeForge, args: &Args) {
    forge.add_repo(&args.repo);
    for n in 1..=args.items {
        if multiple(n, args.deleted_every) {
            forge.delete(&args.repo, n);
            continue;
        }
        if multiple(n, args.missing_every) {
            continue;
        }
        // Closed a day after creation, so the dates stay in number order.
        let closed = default_created(n + 144);
        let item = if multiple(n, args.pr_every) {
            let pr = Item::pr(n, &format!("Pull request {n}"));
            match (n / args.pr_every.max(1)) % 4 {
                0 | 2 => pr.merged(&closed),
                1 => pr,
                _ => pr.closed_at(&closed),
            }
        } else {
            let issue = Item::issue(n, &format!("Issue {n}")).labels(&["bug"]);
            if n % 4 == 0 {
                issue.closed_at(&closed)
            } else {
                issue
            }
        };
        forge.put(&args.repo, item);
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let forge = match FakeForge::start_on(args.port) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-forge: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.log {
        match File::create(path) {
            Ok(file) => forge.log_to(Box::new(LineWriter::new(file))),
            Err(e) => {
                eprintln!("fake-forge: cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let reset = forge.rate_limit().2;
    forge.set_rate_limit(args.rate_limit, args.rate_limit, reset);
    forge.set_latency(Duration::from_millis(args.latency_ms));
    if let Some(token) = &args.token {
        forge.require_token(token);
    }
    fill(&forge, &args);

    // The URL is the first stdout line; flush it so that a harness reading a
    // pipe sees it now, not at exit.
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "{}", forge.url());
    let _ = stdout.flush();

    // Serve until stdin ends: the harness closes the pipe (or dies) to stop us.
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());

    let log = forge.requests();
    drop(forge);
    let counted = log.iter().filter(|l| l.counted).count();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for entry in &log {
        *by_status.entry(entry.status).or_default() += 1;
    }
    let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    eprintln!(
        "fake-forge: {} requests, {counted} counted; by status: {}",
        log.len(),
        if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        }
    );
    ExitCode::SUCCESS
}
