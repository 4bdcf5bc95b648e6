//! The fake GitHub of the integration tests as a standalone server, for
//! benchmarks that run the real binary against a large repository:
//!
//! ```text
//! cargo build --release --example fake-forge
//! target/release/examples/fake-forge --repo acme/widget [--repo …] --items 17488 [--pr-every 3]
//!     [--missing-every 50] [--deleted-every 200] [--port P] [--latency-ms 0]
//!     [--rate-limit 5000] [--graphql-limit N] [--token T] [--log FILE]
//! ```
//!
//! The first line on stdout is the API base (`http://127.0.0.1:PORT`). It
//! serves until its stdin reaches end of file (keep a pipe open to it; with
//! stdin from /dev/null it exits at once), then prints a summary to stderr:
//! first `fake-forge: graphql: Q queries, P points spent`, then (always the
//! last line) `fake-forge: T requests, C counted; by status: S: n, …`. Q is
//! the requests logged as `POST /graphql`; P is the GraphQL budget's limit
//! minus what is left of it at exit, which is the sum of the queries' costs
//! (`rateLimit.cost`) as long as the fake's hour has not rolled over and the
//! budget was not overdrawn; the line says so when either happened. C counts
//! the REST requests charged to `--rate-limit` and the GraphQL queries charged
//! points. SIGTERM ends it at once without the summary (std cannot catch
//! signals without `unsafe`); `--log FILE` is written line by line (`ms status
//! path`, with no method: a GraphQL query is `… 200 /graphql`), so it is
//! complete up to that moment either way.
//!
//! `--rate-limit N` is REST's hourly budget; `--graphql-limit N` GraphQL's
//! hourly points (default: the same N as `--rate-limit`).
//!
//! Items, for n in 1..=items: a multiple of `--deleted-every` is deleted (410),
//! else a multiple of `--missing-every` does not exist (404), else a multiple
//! of `--pr-every` is a PR (every other one merged, the rest open or closed),
//! else an issue (every fourth closed). The same arguments give the same data.
//!
//! The discussion, a function of n alone (GraphQL serves all of it; REST only
//! the comment count). Comment k of item n is created k minutes after it;
//! `null` is a deleted account (GitHub shows `ghost`):
//!
//! - every PR: 2 comments, `Comment 1 on #n — looks right.` by `reviewer{n % 5}`
//!   (`null` when n is a multiple of 7) and `Comment 2 on #n: thanks.` by
//!   `octocat`;
//! - reviews: a merged PR has one CHANGES_REQUESTED (`reviewer0`), then one
//!   APPROVED (`reviewer1`), and a second APPROVED (`reviewer2`) when n is even
//!   (so 1 or 2 approvals); an open PR one COMMENTED (`reviewer3`); a closed,
//!   unmerged PR one CHANGES_REQUESTED (`reviewer4`): no approvals;
//! - linked issues (`closingIssuesReferences`): a merged or open PR closes
//!   n − 1 when that number is an issue here, and a merged PR with an even n
//!   also n − 2 when that is an issue; a closed, unmerged PR closes nothing;
//! - an issue whose n is a multiple of 5 has one comment, `Comment 1 on #n.`
//!   by `user1` (`null` when n is a multiple of 7); a multiple of 25 has 23,
//!   `Comment k on #n.` by `user{k % 4}` (the first `null` likewise): more
//!   than a query's first 20;
//! - other issues have none.
//!
//! At 17,488 items that is about 24,000 comments, built in milliseconds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, LineWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use fakeforge::{FakeForge, Item, default_created, iso, parse_iso};

struct Args {
    /// Every `--repo`, each holding the same items.
    repos: Vec<String>,
    items: u64,
    pr_every: u64,
    missing_every: u64,
    deleted_every: u64,
    port: u16,
    latency_ms: u64,
    rate_limit: u64,
    /// `None`: the same as `rate_limit`.
    graphql_limit: Option<u64>,
    token: Option<String>,
    log: Option<String>,
}

const USAGE: &str = "usage: fake-forge --repo OWNER/NAME [--repo …] --items N [--pr-every 3] [--missing-every 50] \
[--deleted-every 200] [--port 0] [--latency-ms 0] [--rate-limit 5000] [--graphql-limit N] [--token T] \
[--log FILE]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        repos: Vec::new(),
        items: 0,
        pr_every: 3,
        missing_every: 50,
        deleted_every: 200,
        port: 0,
        latency_ms: 0,
        rate_limit: 5_000,
        graphql_limit: None,
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
            "--repo" => args.repos.push(value),
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
            "--graphql-limit" => args.graphql_limit = Some(number(&value)?),
            "--token" => args.token = Some(value),
            "--log" => args.log = Some(value),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let valid = |repo: &String| {
        repo.split_once('/')
            .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
    };
    if args.repos.is_empty() || !args.repos.iter().all(valid) {
        return Err(format!("--repo OWNER/NAME is required\n{USAGE}"));
    }
    Ok(args)
}

/// `every` = 0 turns a rule off.
fn multiple(n: u64, every: u64) -> bool {
    every > 0 && n.is_multiple_of(every)
}

/// What the fake holds at number n.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Deleted,
    Missing,
    Pr,
    Issue,
}

fn slot(n: u64, args: &Args) -> Slot {
    if multiple(n, args.deleted_every) {
        Slot::Deleted
    } else if multiple(n, args.missing_every) {
        Slot::Missing
    } else if multiple(n, args.pr_every) {
        Slot::Pr
    } else {
        Slot::Issue
    }
}

/// `minutes` after item n's creation, as GitHub writes times.
fn after(n: u64, minutes: u64) -> String {
    let created = parse_iso(&default_created(n)).expect("default_created is ISO 8601");
    iso(created + (minutes as i64) * 60)
}

/// A deleted account (`None`) when n is a multiple of 7, else `login`.
fn or_ghost(n: u64, login: &str) -> Option<&str> {
    (!n.is_multiple_of(7)).then_some(login)
}

/// The PR at n with its discussion (see the header).
fn pr(n: u64, args: &Args) -> Item {
    // Closed a day after creation, so the dates stay in number order.
    let closed = default_created(n + 144);
    let reviewer = format!("reviewer{}", n % 5);
    let pr = Item::pr(n, &format!("Pull request {n}"))
        .comment(
            or_ghost(n, &reviewer),
            &format!("Comment 1 on #{n} — looks right."),
            &after(n, 1),
        )
        .comment(
            Some("octocat"),
            &format!("Comment 2 on #{n}: thanks."),
            &after(n, 2),
        );
    let issue = |k: Option<u64>| k.is_some_and(|k| k >= 1 && slot(k, args) == Slot::Issue);
    match (n / args.pr_every.max(1)) % 4 {
        0 | 2 => {
            let mut pr = pr
                .merged(&closed)
                .review(Some("reviewer0"), "CHANGES_REQUESTED")
                .review(Some("reviewer1"), "APPROVED");
            if n.is_multiple_of(2) {
                pr = pr.review(Some("reviewer2"), "APPROVED");
                if issue(n.checked_sub(2)) {
                    pr = pr.closes(&[n - 2]);
                }
            }
            if issue(n.checked_sub(1)) {
                pr = pr.closes(&[n - 1]);
            }
            pr
        }
        1 => {
            let pr = pr.review(Some("reviewer3"), "COMMENTED");
            if issue(n.checked_sub(1)) {
                pr.closes(&[n - 1])
            } else {
                pr
            }
        }
        _ => pr
            .closed_at(&closed)
            .review(Some("reviewer4"), "CHANGES_REQUESTED"),
    }
}

/// The issue at n with its comments (see the header).
fn issue(n: u64) -> Item {
    let mut issue = Item::issue(n, &format!("Issue {n}")).labels(&["bug"]);
    if n.is_multiple_of(4) {
        issue = issue.closed_at(&default_created(n + 144));
    }
    if n.is_multiple_of(25) {
        for k in 1..=23 {
            let login = format!("user{}", k % 4);
            let author = if k == 1 {
                or_ghost(n, &login)
            } else {
                Some(login.as_str())
            };
            issue = issue.comment(author, &format!("Comment {k} on #{n}."), &after(n, k));
        }
    } else if n.is_multiple_of(5) {
        issue = issue.comment(
            or_ghost(n, "user1"),
            &format!("Comment 1 on #{n}."),
            &after(n, 1),
        );
    }
    issue
}

fn fill(forge: &FakeForge, args: &Args) {
    for repo in &args.repos {
        forge.add_repo(repo);
        for n in 1..=args.items {
            match slot(n, args) {
                Slot::Deleted => forge.delete(repo, n),
                Slot::Missing => {}
                Slot::Pr => forge.put(repo, pr(n, args)),
                Slot::Issue => forge.put(repo, issue(n)),
            }
        }
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
    let graphql_limit = args.graphql_limit.unwrap_or(args.rate_limit);
    let graphql_reset = forge.graphql_rate_limit().2;
    forge.set_graphql_rate_limit(graphql_limit, graphql_limit, graphql_reset);
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
    let (limit, remaining, reset) = forge.graphql_rate_limit();
    drop(forge);
    let queries = log
        .iter()
        .filter(|l| l.method == "POST" && l.path.split('?').next() == Some("/graphql"))
        .count();
    // limit − remaining is the sum of the costs charged, unless the hour rolled
    // over (then it counts from the roll) or the budget ran dry (then more
    // was charged than it shows).
    let mut caveats = Vec::new();
    if reset != graphql_reset {
        caveats.push("the hour rolled over: points since then");
    }
    if remaining == 0 && queries > 0 {
        caveats.push("budget exhausted: at least that many");
    }
    eprintln!(
        "fake-forge: graphql: {queries} queries, {} points spent{}",
        limit - remaining,
        if caveats.is_empty() {
            String::new()
        } else {
            format!(" ({})", caveats.join("; "))
        }
    );
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
