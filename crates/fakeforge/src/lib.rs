//! A fake of GitHub's REST API on 127.0.0.1, for the integration tests (and the
//! `fake-forge` example used by benchmarks). It answers the endpoints the
//! client uses with GitHub's own example bodies (`tests/fixtures/`), keeps a
//! primary rate limit, and injects the faults a real forge and a real network
//! produce. It also serves GitHub's `POST /graphql` for issues and PRs
//! (`graphql.rs`: a real parser, validator and executor for a subset of
//! GitHub's schema, with GraphQL's own points budget). Nothing here touches
//! the internet. It can also be a GitHub Enterprise Server (the same API
//! under `/api/v3`) or a Gitea / Forgejo (Gitea's own shapes under
//! `/api/v1`): see `gitea.rs` for those flavours.
//!
//! Use it from an integration test (a dev-dependency of the root package):
//!
//! ```ignore
//! let forge = FakeForge::start();                     // 127.0.0.1:<free port>
//! forge.put("acme/widget", Item::pr(12, "Fix").merged("2024-05-01T10:00:00Z"));
//! forge.push_fault(Fault::Status(502));               // the next request gets a 502
//! // … run the binary with --api-url forge.url() …
//! assert!(forge.requests().iter().all(|r| r.header("user-agent").is_some()));
//! ```
//!
//! # API
//!
//! ```text
//! FakeForge::start() -> FakeForge                     binds 127.0.0.1:0 (panics if it can't)
//! FakeForge::start_on(port: u16) -> io::Result<FakeForge>
//! FakeForge::start_gitea() / start_ghe() -> FakeForge as Gitea (Forgejo) / GitHub Enterprise (`gitea.rs`)
//! FakeForge::start_as(Flavour) -> FakeForge           Flavour::GitHub (default) | GitHubEnterprise | Gitea
//! FakeForge::start_on_as(port, Flavour) -> io::Result<FakeForge>
//! url(&self) -> String                                the API base: "http://127.0.0.1:PORT" (GitHub),
//!                                                     "…/api/v3" (GHE), "…/api/v1" (Gitea)
//! root_url(&self) -> String                           "http://127.0.0.1:PORT" in every flavour (web URLs)
//! flavour(&self) -> Flavour
//! set_rate_limiting(&self, on: bool)                  off: no x-ratelimit-* headers, no primary-limit
//!                                                     refusal, /rate_limit 404 (GHE's "disabled"; Gitea: always off)
//! set_server_version(&self, &str)                     GHE's installed_version ("3.12.0"), Gitea's version ("1.21.11")
//! off_host_url(&self) -> Option<String>               "http://127.0.0.2:PORT2" (RedirectOffHost target)
//! add_repo(&self, "owner/name") -> u64                the repository id (used in /repositories/{id}/…)
//! repo_id(&self, "owner/name") -> Option<u64>
//! put(&self, repo, Item)                              insert or replace (replace bumps updated_at → ETag)
//! get(&self, repo, number) -> Option<Item>            what the fake holds now (None: missing, deleted, moved)
//! delete(&self, repo, number)                         GET → 410 (Gitea: 404)
//! transfer(&self, repo, number, to_repo, new_number)  GET → 301 to {base}/repositories/{to_id}/issues/{new}
//!                                                     (Gitea: 404, it cannot transfer issues)
//! requests(&self) -> Vec<Logged>                      every request received, in order
//! clear_log(&self)
//! log_to(&self, Box<dyn Write + Send>)                also write "ms status path" per request
//! require_token(&self, token)                         else 401 Bad credentials (Gitea: its own 401s)
//! set_rate_limit(&self, limit, remaining, reset_epoch_secs)
//! rate_limit(&self) -> (limit, remaining, reset)      the current numbers
//! push_fault(&self, Fault)                            queued; consumed one per request (not /rate_limit),
//!                                                     in the order requests are decided: with requests in
//!                                                     flight at once, aim with push_fault_on
//! push_fault_on(&self, path_contains, Fault)          queued for the next request whose target contains it
//!                                                     ("/graphql" aims at GraphQL; every fault applies there)
//! clear_faults(&self)                                 queued and random faults, and any secondary wait
//! set_fault_rate(&self, seed, FaultRates)             seeded random faults (splitmix64)
//! set_latency(&self, Duration)                        every answer delayed
//! wait_idle(&self)                                    every request sent before is logged and no
//!                                                     connection is left (its own probe, IDLE_PROBE,
//!                                                     is logged too)
//! set_graphql_rate_limit(&self, limit, remaining, reset_epoch_secs)   GraphQL's own points (default 5000/hour)
//! graphql_rate_limit(&self) -> (limit, remaining, reset)
//! set_graphql_latency_per_alias(&self, Duration)      GraphQL answers delayed per item lookup in the query
//! set_graphql_slow_over(&self, aliases, Duration)     … and by this much when it has more lookups than that
//! disable_graphql(&self)                              /graphql → 404 on REST's terms (GHE with GraphQL off)
//! graphql_queries(&self) -> Vec<String>               every `query` POSTed to /graphql, in order
//!                                                     (clear_log clears them too)
//! Item::issue(n, title) / Item::pr(n, title)          then .merged(at) .closed() .closed_at(at) .labels(&[..])
//!                                                     .author(Option<&str>) .body(Option<&str>) .created(at)
//!                                                     .updated(at) .with_field(key, Value) .without_field(key)
//!                                                     .comment(author: Option<&str>, body, created_at)
//!                                                     .review(author: Option<&str>, "APPROVED"|"CHANGES_REQUESTED"|…)
//!                                                     .closes(&[n]) .closes_in("owner/name", n)
//! Logged { method, path, headers, at, status, counted, off_host } and .header(name)
//! iso(secs) / parse_iso(s)                            GitHub's timestamp format, both ways
//! default_created(n) -> String                        the default created_at of item n
//! ```
//!
//! Threads are named `ff{PORT}-accept`, `ff{PORT}-off` and `ff{PORT}-conn`
//! (one per connection), so a test can count this fake's live threads in
//! `/proc/self/task/*/comm`; `Drop` joins them all.
//!
//! # What it answers, in the order it decides
//!
//! (As github.com. GHE decides the same way on the path with `/api/v3`
//! taken off (`/api/graphql` → `/graphql`), a path outside it being 404;
//! Gitea skips steps 2 and 3 and answers step 7 with `gitea.rs`. Faults,
//! the log and `push_fault_on` see the path as sent. `gitea.rs` says what
//! each flavour changes.)
//!
//! 1. Requests to the off-host listener (127.0.0.2) are answered from the same
//!    data, with no checks, no faults and no counting; they are logged with
//!    `off_host: true` so a test can see whether `Authorization` leaked there.
//! 2. No `User-Agent` → 403 (GitHub's front end refuses those).
//! 3. `POST /graphql` only (unless `disable_graphql`): no `Authorization` →
//!    401 "This endpoint requires you to be authenticated." (with or without
//!    `require_token`); a wrong token → 401 "Bad credentials"; the GraphQL
//!    budget at 0 before its reset → 200 `{"errors":[{"type":"RATE_LIMITED",
//!    "code":"graphql_rate_limit",…}]}`. No fault is consumed.
//! 4. `require_token` set and no `Authorization: Bearer <t>` / `token <t>` → 401
//!    (the flavour's probe, `/meta` or `/api/v1/version`, is answered when no
//!    `Authorization` is sent at all).
//! 5. Waits in force, except for `/rate_limit`: remaining 0 before the reset →
//!    403 with the primary-limit message (not for `/graphql`, whose budget is
//!    its own; not with rate limiting off); within a secondary limit's
//!    `retry-after` → the same 403/429 again. These consume no fault: a
//!    client that retries early is refused, as GitHub refuses it, and the log
//!    shows it.
//! 6. The first queued fault whose filter matches, else a random fault. On
//!    `/graphql`, `PrimaryLimit` empties the GraphQL budget and answers
//!    RATE_LIMITED, `WrongTypes` retypes every `number`/`title` in `data`.
//! 7. The endpoint: `GET /repos/{o}/{r}`, `…/issues/{n}`, `…/pulls/{n}`,
//!    `…/issues?state&sort&direction&since&per_page&page`, the same under
//!    `/repositories/{id}/…`, `GET /rate_limit` (its `graphql` resource is
//!    the fake's), `GET /meta` (a small github.com body: no
//!    `installed_version`), and `POST /graphql` (the body read by
//!    `Content-Length`; see `graphql.rs` for the schema and the error
//!    shapes). Anything else → 404 JSON.
//!
//! Counting (`Logged::counted`, and one off `remaining`): every answer from
//! step 7 except 304 and `/rate_limit`, and the faults that GitHub would have
//! answered from the application (`Status`, `Malformed`, `Html`, `WrongTypes`,
//! `Huge`, `RedirectOffHost`, `Raw`). Not counted: 401, the missing-User-Agent 403,
//! every rate-limit refusal, `Reset` and `Hang` (status 0 in the log). On
//! `/graphql` the same answers are charged the query's cost in points to the
//! GraphQL budget instead (`counted` says whether points were taken; a query
//! that does not parse or validate costs none). The cost is GitHub's rule:
//! the requests its connections need (a connection under N parent nodes
//! counts N, the dearer member of a union counts), / 100, rounded, at least 1.
//! A query dearer than what is left still runs (`used` passes `limit`, as on
//! GitHub); the next one is refused.
//!
//! Every HTTP answer carries `x-ratelimit-limit/-remaining/-used/-reset`,
//! `x-ratelimit-resource: core` (`graphql` and that budget's numbers for every
//! answer to `POST /graphql`), `date`, `x-github-request-id`, a content-type
//! (`application/json; charset=utf-8` except the `Html` fault) and
//! `connection: close`; the connection is closed after every answer. (GHE
//! adds `x-github-enterprise-version` and, with rate limiting off, drops the
//! `x-ratelimit-*` ones; Gitea sends its own set, see `gitea.rs`.)
//!
//! # What GitHub does that the fake does not
//!
//! - One window for all of REST: no 60/hour unauthenticated limit, no separate
//!   search budget, and the windows (REST's and GraphQL's) start when the fake
//!   starts (GitHub's start with the first request).
//! - Secondary limits only as injected faults (no concurrency or
//!   points-per-minute accounting); a secondary limit without `retry-after` is
//!   not enforced afterwards (GitHub would want at least a minute).
//! - No keep-alive, no HTTP/2, no compression, no TLS; `Last-Modified` /
//!   `If-Modified-Since` are not sent or honoured; ETags do not vary with the
//!   token or `Accept` header; only `If-None-Match` is.
//! - No list filters other than state/sort/direction/since (no labels,
//!   creator, milestone…); `sort=comments` sorts like `created`.
//! - 404 for a private repository without access and 404 for a transfer into
//!   a repository the caller can't read are not modelled (404 only when the
//!   number does not exist; transfer always answers 301).
//! - Owner/name lookups are case-insensitive, as on GitHub, but redirects for
//!   renamed repositories are not modelled.
//! - Only GET and HEAD are served, and POST on `/graphql` (anything else is
//!   404, its body read and ignored); no comments, reviews, timeline or search
//!   endpoints (REST's `comments` count is right).
//! - GraphQL serves a subset of GitHub's schema: `rateLimit`, `repository`
//!   and, under it, `issueOrPullRequest` / `issue` / `pullRequest`, with the
//!   fields `graphql.rs` lists; connections take `first` and `after` (no
//!   `last`, `before`, `orderBy`); no mutations, introspection, `node`,
//!   `viewer` or `search`, and no `rateLimit(dryRun:)`. A field GitHub has
//!   but the fake does not gets the unknown-field error. Validation covers
//!   graphql-ruby's usual rules (fields, arguments, selections, fragments,
//!   variables, fields that merge one level deep), not every one.
//! - GraphQL's other end of `closes_in` (a repository or issue the fake does
//!   not hold) is answered as a plain open issue titled "Issue #n". A PR that
//!   closes nothing has no links (GitHub also links by closing keywords).
//! - GitHub has been seen to send `"type": "RATE_LIMIT"` as well as
//!   `RATE_LIMITED`; the fake sends only the latter. A GraphQL query that
//!   GitHub times out (10 s) is not modelled (`set_graphql_slow_over` delays,
//!   it does not fail). `with_field`/`without_field` change REST only.
//! - The primary limit is always refused with 403 (GitHub may also use 429).
//! - A PR that is deleted or transferred answers 404 on `/pulls/{n}` (GitHub
//!   can do neither to a PR).
//! - `/meta` is a small part of GitHub's (fingerprints and a few IP ranges).
//!   What GHE and Gitea do that their flavours do not: see `gitea.rs`.

mod clock;
mod gitea;
mod graphql;
mod http;
mod render;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use clock::{iso, parse_iso};
pub use gitea::Flavour;
use http::{Incoming, Request, Response, Stop, lock};
use render::{DOCS, Place, Templates};

/// The declared length of the `Huge` fault's body: 1 GiB.
pub const HUGE_LEN: u64 = 1 << 30;
/// The first repository id handed out; later ones count up.
const FIRST_REPO_ID: u64 = 100_001;
/// Default timestamps: item #n was created at this instant plus n × 10 min,
/// so that creation order is number order, as on GitHub.
const DEFAULT_EPOCH: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z
/// GitHub's primary-limit window.
const WINDOW_SECS: u64 = 3_600;
/// Default page size and largest allowed, as GitHub documents them.
const PER_PAGE_DEFAULT: usize = 30;
const PER_PAGE_MAX: usize = 100;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// An issue or PR as the fake holds it. Dates are GitHub's
/// `YYYY-MM-DDTHH:MM:SSZ` strings and are sent as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub number: u64,
    pub kind: Kind,
    pub title: String,
    /// `None` sends `"body": null` (the schema allows it).
    pub body: Option<String>,
    /// "open" or "closed".
    pub state: String,
    pub labels: Vec<String>,
    /// `None` is a deleted account: REST's user `ghost`, GraphQL's `null`.
    /// A login ending in `[bot]` is a bot: REST's `type: "Bot"`, GraphQL's
    /// `Bot` named without the suffix.
    pub author: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    /// In the order added; REST sends their count, GraphQL the comments.
    pub comments: Vec<Comment>,
    /// GraphQL only (`reviews`); meaningful on a PR.
    pub reviews: Vec<Review>,
    /// The issues a PR closes (GraphQL `closingIssuesReferences`):
    /// (`None`: this repository, or `Some("owner/name")`, number).
    pub closes: Vec<(Option<String>, u64)>,
    /// Applied last to both shapes: `Some(v)` sets the key, `None` removes it
    /// (for odd shapes: an absent `body`, an unexpected `state_reason`, …).
    pub overrides: Vec<(String, Option<Value>)>,
}

/// A comment on an issue or PR. Its GraphQL id is `IC_{repo id}_{n}_{k}`,
/// k counting from 1 in the order added.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// `None`: a deleted account (`author: null`).
    pub author: Option<String>,
    pub body: String,
    pub created_at: String,
}

/// A review of a PR. Its GraphQL id is `PRR_{repo id}_{n}_{k}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub author: Option<String>,
    /// GitHub's `PullRequestReviewState`: "APPROVED", "CHANGES_REQUESTED",
    /// "COMMENTED", "DISMISSED" or "PENDING".
    pub state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Issue,
    /// `merged` and `merged_at` are separate because GitHub's own example
    /// contradicts itself (`merged: false` with a `merged_at`).
    Pr {
        merged_at: Option<String>,
        merged: bool,
    },
}

/// The default creation time of item `n` (see `DEFAULT_EPOCH`).
pub fn default_created(n: u64) -> String {
    iso(DEFAULT_EPOCH + (n as i64) * 600)
}

impl Item {
    /// An open issue by `octocat`, created and updated at `default_created(n)`.
    pub fn issue(number: u64, title: &str) -> Item {
        let at = default_created(number);
        Item {
            number,
            kind: Kind::Issue,
            title: title.to_string(),
            body: Some(format!("Body of #{number}.")),
            state: "open".to_string(),
            labels: Vec::new(),
            author: Some("octocat".to_string()),
            created_at: at.clone(),
            updated_at: at,
            closed_at: None,
            comments: Vec::new(),
            reviews: Vec::new(),
            closes: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// An open, unmerged PR; otherwise as `issue`.
    pub fn pr(number: u64, title: &str) -> Item {
        Item {
            kind: Kind::Pr {
                merged_at: None,
                merged: false,
            },
            ..Item::issue(number, title)
        }
    }

    pub fn is_pr(&self) -> bool {
        matches!(self.kind, Kind::Pr { .. })
    }

    /// Merged (and so closed) at `at`; makes the item a PR.
    pub fn merged(self, at: &str) -> Item {
        Item {
            kind: Kind::Pr {
                merged_at: Some(at.to_string()),
                merged: true,
            },
            ..self.closed_at(at)
        }
    }

    /// Closed at its `updated_at` (a closed, unmerged PR stays unmerged).
    pub fn closed(self) -> Item {
        let at = self.updated_at.clone();
        self.closed_at(&at)
    }

    /// Closed at `at`; `updated_at` moves up to `at` if it was earlier.
    pub fn closed_at(mut self, at: &str) -> Item {
        self.state = "closed".to_string();
        self.closed_at = Some(at.to_string());
        if parse_iso(at) > parse_iso(&self.updated_at) {
            self.updated_at = at.to_string();
        }
        self
    }

    pub fn labels(mut self, names: &[&str]) -> Item {
        self.labels = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `None`: the author's account was deleted (REST's user `ghost`,
    /// GraphQL's `null`); `name[bot]`: a GitHub App's bot.
    pub fn author(mut self, login: Option<&str>) -> Item {
        self.author = login.map(str::to_string);
        self
    }

    pub fn body(mut self, body: Option<&str>) -> Item {
        self.body = body.map(str::to_string);
        self
    }

    pub fn created(mut self, at: &str) -> Item {
        self.created_at = at.to_string();
        self
    }

    pub fn updated(mut self, at: &str) -> Item {
        self.updated_at = at.to_string();
        self
    }

    /// Adds a comment (`None`: by a deleted account).
    pub fn comment(mut self, author: Option<&str>, body: &str, created_at: &str) -> Item {
        self.comments.push(Comment {
            author: author.map(str::to_string),
            body: body.to_string(),
            created_at: created_at.to_string(),
        });
        self
    }

    /// Adds a review; panics on a state GitHub does not have.
    pub fn review(mut self, author: Option<&str>, state: &str) -> Item {
        const STATES: [&str; 5] = [
            "APPROVED",
            "CHANGES_REQUESTED",
            "COMMENTED",
            "DISMISSED",
            "PENDING",
        ];
        assert!(STATES.contains(&state), "no review state {state:?}");
        self.reviews.push(Review {
            author: author.map(str::to_string),
            state: state.to_string(),
        });
        self
    }

    /// Links issues of the same repository that this PR closes.
    pub fn closes(mut self, numbers: &[u64]) -> Item {
        self.closes.extend(numbers.iter().map(|n| (None, *n)));
        self
    }

    /// Links an issue in another repository (`owner/name`) that this PR closes.
    pub fn closes_in(mut self, repo: &str, number: u64) -> Item {
        self.closes.push((Some(repo.to_string()), number));
        self
    }

    pub fn with_field(mut self, key: &str, value: Value) -> Item {
        self.overrides.push((key.to_string(), Some(value)));
        self
    }

    pub fn without_field(mut self, key: &str) -> Item {
        self.overrides.push((key.to_string(), None));
        self
    }
}

/// A fault injected in place of the normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// That status with a JSON `{"message": …}` body (500, 502, 503, …).
    Status(u16),
    /// Read the request, close without answering; the unread request makes
    /// the kernel send a TCP RST ("connection reset by peer").
    Reset,
    /// Read the request, then say nothing for the duration, then close.
    Hang(Duration),
    /// 200, JSON content-type, the real body cut in half.
    Malformed,
    /// 200 with a captive portal's HTML page (text/html).
    Html,
    /// 200 with the real JSON but `number` a string and `title` a number.
    WrongTypes,
    /// 403 "You have exceeded a secondary rate limit…", `retry-after` when
    /// Some; for that long, every request (but /rate_limit) gets it again.
    SecondaryLimit { retry_after: Option<u64> },
    /// The same as 429.
    TooMany { retry_after: Option<u64> },
    /// 403 "API rate limit exceeded…", remaining 0, reset = now + n seconds
    /// (whole epoch seconds): the budget really is empty until then.
    PrimaryLimit { reset_in_secs: u64 },
    /// 200 declaring `content-length: 1073741824`, then bytes about 16 MB/s
    /// until the client hangs up (or the fake stops).
    Huge,
    /// 301 to the same path on `off_host_url()` (127.0.0.2), another host.
    RedirectOffHost,
    /// Exactly this answer: the status, these headers (before the usual
    /// ones, so they are the values a client reads first) and these bytes
    /// as the body; a JSON content-type unless `headers` name one. For
    /// hostile answers: JSON nested 10,000 deep, numbers that overflow,
    /// absurd `retry-after` or `x-ratelimit-*` values.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// Random faults per request (`set_fault_rate`). The probabilities are of one
/// draw, tried in the order server_error, reset, malformed; `slow` is a second
/// draw that delays whatever the answer is.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// 500, 502 or 503 (chosen evenly).
    pub server_error: f64,
    pub reset: f64,
    pub malformed: f64,
    /// (probability, delay)
    pub slow: Option<(f64, Duration)>,
    /// Every n-th request (of those faults may hit) gets a secondary limit …
    pub secondary_every: Option<u64>,
    /// … with this `retry-after` (default `Some(1)`: short enough for tests,
    /// long enough to catch a client that does not wait).
    pub secondary_retry_after: Option<u64>,
}

impl Default for FaultRates {
    fn default() -> FaultRates {
        FaultRates {
            server_error: 0.0,
            reset: 0.0,
            malformed: 0.0,
            slow: None,
            secondary_every: None,
            secondary_retry_after: Some(1),
        }
    }
}

/// One request as received, with what was answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// The request target: path with query, as sent.
    pub path: String,
    /// Lower-case names, in the order sent.
    pub headers: Vec<(String, String)>,
    /// When the request head had arrived.
    pub at: Instant,
    /// The status answered; 0 when nothing was (Reset, Hang).
    pub status: u16,
    /// Whether it used one unit of the primary limit (see the module docs).
    pub counted: bool,
    /// Received by the 127.0.0.2 listener (after `RedirectOffHost`).
    pub off_host: bool,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

enum Entry {
    // Boxed: an item is large next to the tombstones.
    Live(Box<Item>),
    Deleted,
    Moved { repo_id: u64, number: u64 },
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    items: BTreeMap<u64, Entry>,
    templates: Templates,
}

impl Repo {
    fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

struct Rate {
    limit: u64,
    remaining: u64,
    /// Epoch seconds.
    reset: u64,
}

impl Rate {
    /// A new window once the reset time has passed.
    fn roll(&mut self, now: f64) {
        if now >= self.reset as f64 {
            self.remaining = self.limit;
            self.reset = now.floor() as u64 + WINDOW_SECS;
        }
    }
}

struct Penalty {
    until: Instant,
    status: u16,
}

struct Queued {
    path_contains: Option<String>,
    fault: Fault,
}

/// splitmix64: tiny, and the same sequence for a seed on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Random {
    rng: SplitMix64,
    rates: FaultRates,
    seen: u64,
}

struct State {
    repos: Vec<Repo>,
    by_name: HashMap<String, usize>,
    token: Option<String>,
    rate: Rate,
    penalty: Option<Penalty>,
    faults: VecDeque<Queued>,
    random: Option<Random>,
    latency: Duration,
    request_seq: u64,
    graphql: graphql::Gql,
    /// The flavour's settings (`gitea.rs`).
    flavoured: gitea::Knobs,
}

impl State {
    fn repo_index(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(&full_name.to_ascii_lowercase()).copied()
    }

    fn repo_by_id(&self, id: u64) -> Option<&Repo> {
        self.repos.iter().find(|r| r.id == id)
    }

    fn take_fault(&mut self, target: &str, is_rate_limit: bool) -> Option<Fault> {
        let pos = self.faults.iter().position(|q| match &q.path_contains {
            Some(s) => target.contains(s.as_str()),
            // Unfiltered faults skip /rate_limit, so that a client checking its
            // budget first does not eat the fault meant for the real request.
            None => !is_rate_limit,
        })?;
        self.faults.remove(pos).map(|q| q.fault)
    }

    /// The random fault for this request, if any, and the extra delay.
    fn random_fault(&mut self) -> (Option<Fault>, Duration) {
        let Some(r) = &mut self.random else {
            return (None, Duration::ZERO);
        };
        r.seen += 1;
        // Always three draws, whatever the outcome, so that one seed gives one
        // sequence of faults for one sequence of requests.
        let (pick, which, slow_draw) = (r.rng.next_f64(), r.rng.next_u64(), r.rng.next_f64());
        let rates = &r.rates;
        let delay = match rates.slow {
            Some((p, d)) if slow_draw < p => d,
            _ => Duration::ZERO,
        };
        if rates
            .secondary_every
            .is_some_and(|n| n > 0 && r.seen % n == 0)
        {
            let retry_after = rates.secondary_retry_after;
            return (Some(Fault::SecondaryLimit { retry_after }), delay);
        }
        let fault = if pick < rates.server_error {
            Some(Fault::Status([500, 502, 503][(which % 3) as usize]))
        } else if pick < rates.server_error + rates.reset {
            Some(Fault::Reset)
        } else if pick < rates.server_error + rates.reset + rates.malformed {
            Some(Fault::Malformed)
        } else {
            None
        };
        (fault, delay)
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

struct Shared {
    /// The API base: the root, plus `/api/v3` (GHE) or `/api/v1` (Gitea).
    base: String,
    /// `http://127.0.0.1:PORT`.
    root: String,
    flavour: Flavour,
    /// `ff{port}`: the start of every thread's name, so that a test can find
    /// this fake's threads (Linux shows 15 characters of a name).
    threads: String,
    off_base: Option<String>,
    started: Instant,
    stop: Stop,
    state: Mutex<State>,
    log: Mutex<Vec<Logged>>,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// What to do with a connection once the request is decided.
enum Action {
    Answer {
        response: Response,
        delay: Duration,
    },
    Reset,
    Hang(Duration),
    /// Send this head, then stream the endless body.
    Huge(Response),
}

impl Action {
    fn status(&self) -> u16 {
        match self {
            Action::Answer { response, .. } | Action::Huge(response) => response.status,
            Action::Reset | Action::Hang(_) => 0,
        }
    }
}

/// The fake server. Dropping it stops every thread and closes the listeners.
pub struct FakeForge {
    shared: Arc<Shared>,
    acceptors: Vec<(SocketAddr, JoinHandle<()>)>,
}

impl FakeForge {
    /// Starts on 127.0.0.1 at a free port; panics if it cannot bind.
    pub fn start() -> FakeForge {
        FakeForge::start_on(0).expect("bind the fake forge on 127.0.0.1")
    }

    /// Starts on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16) -> io::Result<FakeForge> {
        FakeForge::start_on_as(port, Flavour::GitHub)
    }

    /// Starts on 127.0.0.1:`port` (0: any free port) as `flavour` (`gitea.rs`).
    pub fn start_on_as(port: u16, flavour: Flavour) -> io::Result<FakeForge> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        // The second host for RedirectOffHost. 127.0.0.2 is loopback on Linux;
        // elsewhere the bind may fail and only that fault is unavailable.
        let off = TcpListener::bind(("127.0.0.2", 0))
            .and_then(|l| Ok((l.local_addr()?, l)))
            .ok();
        let shared = Arc::new(Shared {
            base: format!("http://{addr}{}", flavour.api_prefix()),
            root: format!("http://{addr}"),
            flavour,
            threads: format!("ff{}", addr.port()),
            off_base: off.as_ref().map(|(a, _)| format!("http://{a}")),
            started: Instant::now(),
            stop: Stop::default(),
            state: Mutex::new(State {
                repos: Vec::new(),
                by_name: HashMap::new(),
                token: None,
                rate: Rate {
                    limit: 5_000,
                    remaining: 5_000,
                    reset: clock::now_secs() as u64 + WINDOW_SECS,
                },
                penalty: None,
                faults: VecDeque::new(),
                random: None,
                latency: Duration::ZERO,
                request_seq: 0,
                graphql: graphql::Gql::new(),
                flavoured: gitea::Knobs::new(flavour),
            }),
            log: Mutex::new(Vec::new()),
            sink: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
        });
        let mut acceptors = Vec::new();
        let mut listeners = vec![(addr, listener, false)];
        if let Some((off_addr, off_listener)) = off {
            listeners.push((off_addr, off_listener, true));
        }
        for (addr, listener, off_host) in listeners {
            let s = Arc::clone(&shared);
            let role = if off_host { "off" } else { "accept" };
            let handle = thread::Builder::new()
                .name(format!("{}-{role}", shared.threads))
                .spawn(move || accept_loop(s, listener, off_host))?;
            acceptors.push((addr, handle));
        }
        Ok(FakeForge { shared, acceptors })
    }

    /// The API base (no trailing slash): `http://127.0.0.1:PORT` for GitHub,
    /// plus `/api/v3` for GHE and `/api/v1` for Gitea (`root_url` is the host).
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The other host that `Fault::RedirectOffHost` points at.
    pub fn off_host_url(&self) -> Option<String> {
        self.shared.off_base.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Adds the repository if new; returns its id either way.
    pub fn add_repo(&self, repo: &str) -> u64 {
        let mut st = self.state();
        self.ensure_repo(&mut st, repo)
    }

    fn ensure_repo(&self, st: &mut State, repo: &str) -> u64 {
        if let Some(i) = st.repo_index(repo) {
            return st.repos[i].id;
        }
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .unwrap_or_else(|| panic!("repository must be owner/name, not {repo:?}"));
        let id = FIRST_REPO_ID + st.repos.len() as u64;
        st.repos.push(Repo {
            id,
            owner: owner.to_string(),
            name: name.to_string(),
            items: BTreeMap::new(),
            templates: Templates::new(&self.shared.base, repo),
        });
        st.by_name
            .insert(repo.to_ascii_lowercase(), st.repos.len() - 1);
        id
    }

    pub fn repo_id(&self, repo: &str) -> Option<u64> {
        let st = self.state();
        st.repo_index(repo).map(|i| st.repos[i].id)
    }

    /// Inserts the item, adding the repository if needed. Replacing a live
    /// item moves `updated_at` to the latest of the given one, the old one
    /// plus a second, and now, as an edit on GitHub does (so the ETag changes
    /// and a `since` list from before the edit includes it).
    pub fn put(&self, repo: &str, mut item: Item) {
        let mut st = self.state();
        self.ensure_repo(&mut st, repo);
        let i = st.repo_index(repo).expect("just added");
        let items = &mut st.repos[i].items;
        if let Some(Entry::Live(old)) = items.get(&item.number) {
            item.updated_at = bumped(&item.updated_at, &old.updated_at);
        }
        items.insert(item.number, Entry::Live(Box::new(item)));
    }

    /// The item as held now; `None` for missing, deleted and transferred.
    pub fn get(&self, repo: &str, number: u64) -> Option<Item> {
        let st = self.state();
        let i = st.repo_index(repo)?;
        match st.repos[i].items.get(&number)? {
            Entry::Live(item) => Some(Item::clone(item)),
            _ => None,
        }
    }

    /// From now on `GET …/issues/{number}` answers 410 "Issue was deleted"
    /// (whether or not the item existed).
    pub fn delete(&self, repo: &str, number: u64) {
        let mut st = self.state();
        self.ensure_repo(&mut st, repo);
        let i = st.repo_index(repo).expect("just added");
        st.repos[i].items.insert(number, Entry::Deleted);
    }

    /// Moves a live item to `to_repo` as `new_number` (adding that repository
    /// if needed); the old URL answers 301 to the new one. Panics if the item
    /// is not live in `repo`: that is a mistake in the test.
    pub fn transfer(&self, repo: &str, number: u64, to_repo: &str, new_number: u64) {
        let mut st = self.state();
        let to_id = self.ensure_repo(&mut st, to_repo);
        let from = st
            .repo_index(repo)
            .unwrap_or_else(|| panic!("transfer from unknown repository {repo}"));
        let moved = Entry::Moved {
            repo_id: to_id,
            number: new_number,
        };
        let Some(Entry::Live(mut item)) = st.repos[from].items.insert(number, moved) else {
            panic!("transfer of {repo}#{number}, which is not a live item");
        };
        item.number = new_number;
        item.updated_at = bumped(&item.updated_at, &item.updated_at);
        let to = st.repo_index(to_repo).expect("just added");
        st.repos[to].items.insert(new_number, Entry::Live(item));
    }

    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.shared.log).clone()
    }

    /// Also clears `graphql_queries`.
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
        self.clear_graphql_queries();
    }

    /// Also writes one line per request, `ms status path` (ms since start,
    /// status 0 for no answer), flushed as it goes.
    pub fn log_to(&self, sink: Box<dyn Write + Send>) {
        *lock(&self.shared.sink) = Some(sink);
    }

    pub fn require_token(&self, token: &str) {
        self.state().token = Some(token.to_string());
    }

    /// Sets the primary limit. `reset_epoch_secs` is wall-clock epoch seconds;
    /// once it has passed, `remaining` refills to `limit` for a new hour.
    pub fn set_rate_limit(&self, limit: u64, remaining: u64, reset_epoch_secs: u64) {
        self.state().rate = Rate {
            limit,
            remaining: remaining.min(limit),
            reset: reset_epoch_secs,
        };
    }

    /// (limit, remaining, reset) as they are now.
    pub fn rate_limit(&self) -> (u64, u64, u64) {
        let mut st = self.state();
        st.rate.roll(clock::now_f64());
        (st.rate.limit, st.rate.remaining, st.rate.reset)
    }

    /// Queues a fault for the next request other than `/rate_limit`.
    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(Queued {
            path_contains: None,
            fault,
        });
    }

    /// Queues a fault for the next request whose target (path and query)
    /// contains `path_contains` (this one can hit `/rate_limit`).
    pub fn push_fault_on(&self, path_contains: &str, fault: Fault) {
        self.state().faults.push_back(Queued {
            path_contains: Some(path_contains.to_string()),
            fault,
        });
    }

    /// Drops queued and random faults and any secondary-limit wait in force.
    pub fn clear_faults(&self) {
        let mut st = self.state();
        st.faults.clear();
        st.random = None;
        st.penalty = None;
    }

    /// Random faults from now on (not on `/rate_limit`), after the queued ones.
    pub fn set_fault_rate(&self, seed: u64, spec: FaultRates) {
        self.state().random = Some(Random {
            rng: SplitMix64(seed),
            rates: spec,
            seen: 0,
        });
    }

    /// Every answer is delayed by `d` (on top of any `slow` fault).
    pub fn set_latency(&self, d: Duration) {
        self.state().latency = d;
    }

    /// Waits until every request sent to the fake before this call is in
    /// its log, including those of a process that just died, and no
    /// connection thread is left. A request of the caller's own
    /// ([`IDLE_PROBE`], logged too) is answered only after every connection
    /// queued before it (the listen queue is first in, first out); then no
    /// `ff{PORT}-conn` thread may be alive.
    pub fn wait_idle(&self) {
        use std::io::Read;
        let root = self.root_url();
        let addr = root.trim_start_matches("http://");
        let mut probe = TcpStream::connect(addr).expect("connect to the fake");
        write!(
            probe,
            "GET {IDLE_PROBE} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: fakeforge-idle\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("send the probe");
        let mut answer = Vec::new();
        probe
            .read_to_end(&mut answer)
            .expect("read the probe's answer");
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "the probe was not answered"
        );
        // Closed at once: the fake lingers for a client's close (up to 2 s).
        drop(probe);
        let port = addr.rsplit(':').next().unwrap_or_default();
        let name = format!("ff{port}-conn");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir("/proc/self/task").unwrap().any(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim_end() == name)
        }) {
            assert!(
                Instant::now() < deadline,
                "the fake's connections did not end"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The target of [`FakeForge::wait_idle`]'s own request, for tests to leave
/// out of what they count.
pub const IDLE_PROBE: &str = "/rate_limit?probe=idle";

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.shared.stop.set();
        for (addr, handle) in self.acceptors.drain(..) {
            // `accept` has no timeout: a connection wakes it to see the flag.
            // If even that fails, leave the thread rather than hang the test.
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                let _ = handle.join();
            }
        }
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        for handle in conns {
            let _ = handle.join();
        }
    }
}

/// max(given, old + 1 s, now), as a timestamp.
fn bumped(given: &str, old: &str) -> String {
    let given = parse_iso(given).unwrap_or(0);
    let old = parse_iso(old).unwrap_or(0);
    iso(given.max(old + 1).max(clock::now_secs()))
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, off_host: bool) {
    for conn in listener.incoming() {
        if shared.stop.is_set() {
            break;
        }
        let Ok(stream) = conn else {
            // EMFILE and the like: back off instead of spinning.
            if shared.stop.sleep(Duration::from_millis(10)) {
                break;
            }
            continue;
        };
        let s = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("{}-conn", shared.threads))
            .spawn(move || serve(s, stream, off_host));
        if let Ok(handle) = spawned {
            let mut conns = lock(&shared.conns);
            // Finished threads need no join; keeping them would grow without
            // bound over a long benchmark.
            conns.retain(|h| !h.is_finished());
            conns.push(handle);
        }
    }
}

fn serve(shared: Arc<Shared>, mut stream: TcpStream, off_host: bool) {
    let stop = &shared.stop;
    let _ = stream.set_read_timeout(Some(http::POLL));
    let _ = stream.set_write_timeout(Some(http::POLL));
    let _ = stream.set_nodelay(true);
    let request = match http::peek_request(&stream, stop) {
        Incoming::Gone => return,
        Incoming::Invalid {
            status,
            method,
            target,
        } => {
            let response = shared.invalid(status, &method, &target, off_host);
            http::drain_available(&mut stream);
            if http::write_all(&mut stream, &with_body(&response), stop).is_ok() {
                http::finish(&mut stream, stop);
            }
            return;
        }
        Incoming::Request(r) => r,
    };
    let mut request = request;
    if !http::read_body(&mut stream, &mut request, stop) {
        return;
    }
    let action = shared.decide(&request, off_host);
    match action {
        // Closing with the request still unread: the kernel sends an RST.
        Action::Reset => drop(stream),
        Action::Hang(d) => {
            if http::consume(&mut stream, &request, stop) {
                stop.sleep(d);
            }
        }
        Action::Answer { response, delay } => {
            if !http::consume(&mut stream, &request, stop) || stop.sleep(delay) {
                return;
            }
            let bytes = if request.method == "HEAD" {
                let len = response.body.as_ref().map(|b| b.len() as u64);
                response.head(len)
            } else {
                with_body(&response)
            };
            if http::write_all(&mut stream, &bytes, stop).is_ok() {
                http::finish(&mut stream, stop);
            }
        }
        Action::Huge(head) => {
            if http::consume(&mut stream, &request, stop) {
                stream_huge(&mut stream, &head, stop);
            }
        }
    }
}

fn with_body(response: &Response) -> Vec<u8> {
    match &response.body {
        Some(body) => {
            let mut bytes = response.head(Some(body.len() as u64));
            bytes.extend_from_slice(body);
            bytes
        }
        None => response.head(None),
    }
}

/// The `Huge` fault's body: a JSON-looking start, then filler, about 16 KiB
/// per millisecond, until the client hangs up, the fake stops, or 1 GiB.
fn stream_huge(stream: &mut TcpStream, head: &Response, stop: &Stop) {
    const CHUNK: usize = 16 * 1024;
    let prefix = br#"{"number":1,"title":""#;
    let mut first = head.head(Some(HUGE_LEN));
    first.extend_from_slice(prefix);
    if http::write_all(stream, &first, stop).is_err() {
        return;
    }
    let filler = vec![b'x'; CHUNK];
    let mut sent = prefix.len() as u64;
    while sent < HUGE_LEN {
        let n = CHUNK.min((HUGE_LEN - sent) as usize);
        if http::write_all(stream, &filler[..n], stop).is_err()
            || stop.sleep(Duration::from_millis(1))
        {
            return;
        }
        sent += n as u64;
    }
}

fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise JSON")
}

/// A JSON answer (headers other than content-type are added later).
fn json_response(status: u16, value: &Value) -> Response {
    let mut response =
        Response::new(status).header("content-type", "application/json; charset=utf-8");
    response.body = Some(json_body(value));
    response
}

fn error_json(status: u16, message: &str, doc: &str) -> Response {
    json_response(
        status,
        &json!({
            "message": message,
            "documentation_url": format!("{DOCS}{doc}"),
            "status": status.to_string(),
        }),
    )
}

fn not_found(doc: &str) -> Response {
    error_json(404, "Not Found", doc)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 wants
/// for this header; `*` matches any current representation).
fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// 200 with an ETag, or 304 when the client already has it.
fn cacheable(request: &Request, value: &Value) -> Response {
    let body = json_body(value);
    let etag = render::etag(&body);
    if etag_matches(request.header("if-none-match"), &etag) {
        return Response::new(304).header("etag", etag);
    }
    let mut response = Response::new(200)
        .header("content-type", "application/json; charset=utf-8")
        .header("etag", etag);
    response.body = Some(body);
    response
}

/// Percent-decoding for query values (GitHub clients encode `:` in `since`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// GitHub's `Link` header for page `page` of `last`: the numeric
/// `/repositories/{id}` form, the request's other parameters kept in their
/// order with `page` moved to the end, rels in GitHub's order
/// prev, next, last, first; `None` when everything fits on page 1.
fn link_header(base: &str, repo_id: u64, query: &str, page: usize, last: usize) -> Option<String> {
    if page <= 1 && last <= 1 {
        return None;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("page"))
        .collect();
    let mut prefix = kept.join("&");
    if !prefix.is_empty() {
        prefix.push('&');
    }
    let link = |p: usize, rel: &str| {
        format!("<{base}/repositories/{repo_id}/issues?{prefix}page={p}>; rel=\"{rel}\"")
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(link(page - 1, "prev"));
    }
    if page < last {
        rels.push(link(page + 1, "next"));
        rels.push(link(last, "last"));
    }
    if page > 1 {
        rels.push(link(1, "first"));
    }
    Some(rels.join(", "))
}

const SECONDARY_MESSAGE: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID";

const CAPTIVE_PORTAL: &str = "<!DOCTYPE html>\n<html><head><title>Welcome to Airport Wi-Fi</title></head>\n<body><h1>Sign in to continue</h1><form method=\"post\" action=\"/login\"><input name=\"room\"><button>Connect</button></form></body></html>\n";

impl Shared {
    fn place<'a>(&'a self, repo: &'a Repo, full_name: &'a str) -> Place<'a> {
        Place {
            base: &self.base,
            full_name,
            repo_id: repo.id,
        }
    }

    /// Logs a request that could not be parsed and builds its answer.
    fn invalid(&self, status: u16, method: &str, target: &str, off_host: bool) -> Response {
        let mut st = lock(&self.state);
        let message = http::reason(status);
        let mut response = error_json(status, message, "");
        self.finish_headers(&mut st, &mut response, false);
        self.record(Logged {
            method: method.to_string(),
            path: target.to_string(),
            headers: Vec::new(),
            at: Instant::now(),
            status,
            counted: false,
            off_host,
        });
        response
    }

    /// The headers every answer carries; called after any counting, so that
    /// `remaining` includes this request. `graphql`: the numbers of the
    /// GraphQL budget instead of REST's `core`.
    fn finish_headers(&self, st: &mut State, response: &mut Response, graphql: bool) {
        st.request_seq += 1;
        if self.flavour == Flavour::Gitea {
            gitea::finish_headers(response);
            return;
        }
        let limited = gitea::limited(self.flavour, st);
        let rate = &st.rate;
        let (limit, remaining, used, reset, resource) = if graphql {
            graphql::headers(st)
        } else {
            let used = rate.limit.saturating_sub(rate.remaining);
            (rate.limit, rate.remaining, used, rate.reset, "core")
        };
        let extra = [
            ("date", clock::http_date(clock::now_secs())),
            ("x-github-api-version-selected", "2022-11-28".to_string()),
            (
                "x-github-request-id",
                format!("FAKE:{:08X}", st.request_seq),
            ),
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-used", used.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-resource", resource.to_string()),
        ];
        for (name, value) in extra {
            if limited || !name.starts_with("x-ratelimit-") {
                response.headers.push((name.to_string(), value));
            }
        }
        if self.flavour == Flavour::GitHubEnterprise {
            let version = st.flavoured.version.clone();
            response
                .headers
                .push(("x-github-enterprise-version".to_string(), version));
        }
        if response.get_header("content-type").is_none() {
            response.headers.push((
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ));
        }
    }

    fn record(&self, entry: Logged) {
        if let Some(sink) = lock(&self.sink).as_mut() {
            let ms = entry.at.duration_since(self.started).as_millis();
            let _ = writeln!(sink, "{ms} {} {}", entry.status, entry.path);
            let _ = sink.flush();
        }
        lock(&self.log).push(entry);
    }

    /// Decides the answer (see the module docs for the order), counts it,
    /// and logs it, all under the state lock so the log order is the order
    /// of decisions.
    fn decide(&self, request: &Request, off_host: bool) -> Action {
        let at = Instant::now();
        let mut st = lock(&self.state);
        st.rate.roll(clock::now_f64());
        // The request with GHE's or Gitea's API prefix taken off (`gitea.rs`);
        // the log and fault filters see it as sent.
        let view = gitea::view(self.flavour, request);
        // A POST to /graphql (unless disabled), parsed once for all checks.
        let call = match self.flavour {
            Flavour::Gitea => None,
            _ => graphql::Call::read(&mut st, &view, off_host),
        };
        let (mut action, counted) =
            self.decide_locked(&mut st, &view, &request.target, off_host, call.as_ref());
        let counted = match &call {
            Some(call) => counted && call.charge(&mut st),
            None => {
                if counted {
                    st.rate.remaining = st.rate.remaining.saturating_sub(1);
                }
                counted
            }
        };
        if let Action::Answer { response, .. } | Action::Huge(response) = &mut action {
            self.finish_headers(&mut st, response, call.is_some());
        }
        self.record(Logged {
            method: request.method.clone(),
            path: request.target.clone(),
            headers: request.headers.clone(),
            at,
            status: action.status(),
            counted,
            off_host,
        });
        action
    }

    /// (what to do, whether it is counted); counting itself is the caller's.
    /// `request` is the flavour's view of it, `target` the target as sent.
    /// `call`: the request is a GraphQL query (see `graphql.rs`).
    fn decide_locked(
        &self,
        st: &mut State,
        request: &Request,
        target: &str,
        off_host: bool,
        call: Option<&graphql::Call>,
    ) -> (Action, bool) {
        let answer = |response: Response, delay: Duration| Action::Answer { response, delay };
        if off_host {
            return (answer(self.route(st, request), Duration::ZERO), false);
        }
        let latency = st.latency;
        if self.flavour != Flavour::Gitea && request.header("user-agent").is_none_or(str::is_empty)
        {
            let message = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.";
            return (answer(error_json(403, message, ""), latency), false);
        }
        // Without rate limiting (GHE), the budget's refusal (a 200) is not sent.
        if call.is_some()
            && let Some(refused) = graphql::gate(st, request)
                .filter(|r| r.status != 200 || gitea::limited(self.flavour, st))
        {
            return (answer(refused, latency), false);
        }
        if let Some(token) = &st.token
            && !authorized(request.header("authorization"), token)
            && !(gitea::is_probe(self.flavour, st, request)
                && request.header("authorization").is_none())
        {
            let response = self.unauthorized(request);
            return (answer(response, latency), false);
        }
        let is_rate_limit = request.path() == "/rate_limit";
        if !is_rate_limit {
            if st.rate.remaining == 0 && call.is_none() && gitea::limited(self.flavour, st) {
                return (answer(primary_limit(request), latency), false);
            }
            if let Some(p) = &st.penalty {
                let now = Instant::now();
                if now < p.until {
                    let left = (p.until - now).as_secs_f64().ceil() as u64;
                    let response = self.secondary(p.status, Some(left.max(1)));
                    return (answer(response, latency), false);
                }
                st.penalty = None;
            }
        }
        let (fault, slow) = match st.take_fault(target, is_rate_limit) {
            Some(f) => (Some(f), Duration::ZERO),
            None if is_rate_limit => (None, Duration::ZERO),
            None => st.random_fault(),
        };
        let delay = latency + slow + call.map_or(Duration::ZERO, |c| c.delay(st));
        let Some(fault) = fault else {
            let response = self.route(st, request);
            let counted = !is_rate_limit && response.status != 304;
            return (answer(response, delay), counted);
        };
        match fault {
            Fault::Status(code) => {
                let message = match code {
                    500 => "Server Error",
                    _ => http::reason(code),
                };
                (answer(self.status_fault(code, message), delay), true)
            }
            Fault::Reset => (Action::Reset, false),
            Fault::Hang(d) => (Action::Hang(d), false),
            Fault::Malformed => {
                let body = json_body(&self.some_json(st, request));
                let mut response =
                    Response::new(200).header("content-type", "application/json; charset=utf-8");
                response.body = Some(body[..body.len() / 2].to_vec());
                (answer(response, delay), true)
            }
            Fault::Html => {
                let mut response =
                    Response::new(200).header("content-type", "text/html; charset=utf-8");
                response.body = Some(CAPTIVE_PORTAL.as_bytes().to_vec());
                (answer(response, delay), true)
            }
            Fault::WrongTypes => {
                let mut value = self.some_json(st, request);
                let retype = |v: &mut Value| {
                    if let Value::Object(o) = v {
                        let number = o.get("number").map(|n| n.to_string()).unwrap_or_default();
                        o.insert("number".into(), json!(number));
                        o.insert("title".into(), json!(12345));
                    }
                };
                match &mut value {
                    whole if call.is_some() => graphql::retype(whole),
                    Value::Array(items) => items.iter_mut().for_each(retype),
                    other => retype(other),
                }
                (answer(json_response(200, &value), delay), true)
            }
            Fault::SecondaryLimit { retry_after } | Fault::TooMany { retry_after } => {
                let status = if matches!(fault, Fault::TooMany { .. }) {
                    429
                } else {
                    403
                };
                if let Some(secs) = retry_after.filter(|s| *s > 0) {
                    st.penalty = Some(Penalty {
                        until: Instant::now() + Duration::from_secs(secs),
                        status,
                    });
                }
                (answer(self.secondary(status, retry_after), delay), false)
            }
            Fault::PrimaryLimit { reset_in_secs } if call.is_some() => {
                graphql::exhaust(st, reset_in_secs);
                (answer(graphql::rate_limited(), delay), false)
            }
            Fault::PrimaryLimit { reset_in_secs } => {
                st.rate.remaining = 0;
                st.rate.reset = clock::now_secs() as u64 + reset_in_secs;
                (answer(primary_limit(request), delay), false)
            }
            Fault::Huge => {
                let head =
                    Response::new(200).header("content-type", "application/json; charset=utf-8");
                (Action::Huge(head), true)
            }
            Fault::RedirectOffHost => {
                let off = self
                    .off_base
                    .as_deref()
                    .expect("RedirectOffHost needs a listener on 127.0.0.2");
                let location = format!("{off}{target}");
                let response = moved(&location);
                (answer(response, delay), true)
            }
            Fault::Raw {
                status,
                headers,
                body,
            } => {
                let mut response = Response::new(status);
                response.headers = headers;
                response.body = Some(body);
                (answer(response, delay), true)
            }
        }
    }

    /// The JSON the request would get, for faults that damage it; an issue
    /// when the request has no JSON answer of its own.
    fn some_json(&self, st: &State, request: &Request) -> Value {
        let response = self.route(st, request);
        if response.status == 200
            && let Some(v) = response
                .body
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
        {
            return v;
        }
        let templates = Templates::new(&self.base, "octocat/Hello-World");
        let at = Place {
            base: &self.base,
            full_name: "octocat/Hello-World",
            repo_id: 1,
        };
        render::issue(&templates, &at, &Item::issue(1347, "Found a bug"))
    }

    /// The normal answer for a request (no side effects: counting is done by
    /// the caller, and faults reuse this to damage the real body).
    fn route(&self, st: &State, request: &Request) -> Response {
        if self.flavour == Flavour::Gitea {
            return gitea::route(self, st, request);
        }
        if graphql::serves(st, request) {
            return graphql::respond(st, request);
        }
        if request.method != "GET" && request.method != "HEAD" {
            return not_found("");
        }
        let segments: Vec<&str> = request.path().split('/').skip(1).collect();
        match segments.as_slice() {
            ["meta"] => json_response(200, &gitea::meta(self.flavour, st)),
            ["rate_limit"] if !gitea::limited(self.flavour, st) => gitea::rate_limiting_off(),
            ["rate_limit"] => {
                let r = &st.rate;
                let graphql = graphql::numbers(st);
                json_response(
                    200,
                    &render::rate_limit(r.limit, r.remaining, r.reset, graphql),
                )
            }
            ["repos", owner, name, rest @ ..] => match st.repo_index(&format!("{owner}/{name}")) {
                Some(i) => self.repo_route(&st.repos[i], rest, request),
                None => not_found("/repos/repos#get-a-repository"),
            },
            ["repositories", id, rest @ ..] => {
                match id.parse().ok().and_then(|id| st.repo_by_id(id)) {
                    Some(repo) => self.repo_route(repo, rest, request),
                    None => not_found("/repos/repos#get-a-repository"),
                }
            }
            _ => not_found(""),
        }
    }

    fn repo_route(&self, repo: &Repo, rest: &[&str], request: &Request) -> Response {
        let full_name = repo.full_name();
        let at = self.place(repo, &full_name);
        match rest {
            [] => {
                let open = repo
                    .items
                    .values()
                    .filter(|e| matches!(e, Entry::Live(i) if i.state == "open"))
                    .count();
                let value = render::repository(&self.base, &repo.owner, &repo.name, repo.id, open);
                json_response(200, &self.web(value))
            }
            ["issues"] => self.list(repo, &at, request),
            ["issues", n] => {
                let doc = "/issues/issues#get-an-issue";
                let Ok(n) = n.parse::<u64>() else {
                    return not_found(doc);
                };
                match repo.items.get(&n) {
                    None => not_found(doc),
                    Some(Entry::Deleted) => error_json(410, "Issue was deleted", doc),
                    Some(Entry::Moved { repo_id, number }) => moved(&format!(
                        "{}/repositories/{repo_id}/issues/{number}",
                        self.base
                    )),
                    Some(Entry::Live(item)) => {
                        let value = render::issue(&repo.templates, &at, item);
                        cacheable(request, &self.web(value))
                    }
                }
            }
            ["pulls", n] => {
                let doc = "/pulls/pulls#get-a-pull-request";
                match n.parse::<u64>().ok().and_then(|n| repo.items.get(&n)) {
                    Some(Entry::Live(item)) if item.is_pr() => {
                        let value = render::pull(&repo.templates, &at, item);
                        cacheable(request, &self.web(value))
                    }
                    _ => not_found(doc),
                }
            }
            _ => not_found(""),
        }
    }

    /// `GET /repos/{o}/{r}/issues`: issues and PRs together, newest first by
    /// default, `state=open` by default, as GitHub lists them.
    fn list(&self, repo: &Repo, at: &Place, request: &Request) -> Response {
        let doc = "/issues/issues#list-repository-issues";
        let invalid = |field: &str| {
            json_response(
                422,
                &json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "Issue", "field": field, "code": "invalid"}],
                    "documentation_url": format!("{DOCS}{doc}"),
                    "status": "422",
                }),
            )
        };
        let (mut state, mut sort, mut descending) = ("open".to_string(), "created", true);
        let (mut since, mut per_page, mut page) = (None, PER_PAGE_DEFAULT, 1);
        for (key, value) in query_params(request.query()) {
            match key.as_str() {
                "state" if ["open", "closed", "all"].contains(&value.as_str()) => state = value,
                "state" => return invalid("state"),
                "sort" => {
                    sort = match value.as_str() {
                        "created" | "comments" => "created",
                        "updated" => "updated",
                        _ => return invalid("sort"),
                    }
                }
                "direction" => {
                    descending = match value.as_str() {
                        "desc" => true,
                        "asc" => false,
                        _ => return invalid("direction"),
                    }
                }
                "since" => match parse_iso(&value) {
                    Some(t) => since = Some(t),
                    None => return invalid("since"),
                },
                // GitHub ignores a per_page or page it cannot read.
                "per_page" => {
                    if let Ok(n) = value.parse::<usize>() {
                        per_page = if n == 0 {
                            PER_PAGE_DEFAULT
                        } else {
                            n.min(PER_PAGE_MAX)
                        };
                    }
                }
                "page" => page = value.parse::<usize>().unwrap_or(1).max(1),
                _ => {}
            }
        }
        let time = |s: &str| parse_iso(s).unwrap_or(0);
        let mut items: Vec<&Item> = repo
            .items
            .values()
            .filter_map(|e| match e {
                Entry::Live(item) => Some(&**item),
                _ => None,
            })
            .filter(|i| state == "all" || i.state == state)
            .filter(|i| since.is_none_or(|s| time(&i.updated_at) >= s))
            .collect();
        let key = |i: &Item| {
            let t = if sort == "updated" {
                &i.updated_at
            } else {
                &i.created_at
            };
            (time(t), i.number)
        };
        items.sort_by_key(|i| key(i));
        if descending {
            items.reverse();
        }
        let last = items.len().div_ceil(per_page).max(1);
        let page_items: Vec<Value> = items
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(|item| render::issue(&repo.templates, at, item))
            .collect();
        let mut response = cacheable(request, &self.web(Value::Array(page_items)));
        if let Some(link) = link_header(&self.base, repo.id, request.query(), page, last) {
            response.headers.push(("link".to_string(), link));
        }
        response
    }
}

fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some((scheme, value)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        && value.trim() == token
}

fn moved(location: &str) -> Response {
    let mut response = json_response(
        301,
        &json!({
            "message": "Moved Permanently",
            "url": location,
            "documentation_url": format!("{DOCS}/guides/best-practices-for-using-the-rest-api#follow-redirects"),
        }),
    );
    response
        .headers
        .push(("location".to_string(), location.to_string()));
    response
}

/// GitHub's primary-limit answer; the wording differs with and without a token.
fn primary_limit(request: &Request) -> Response {
    let message = if request.header("authorization").is_some() {
        "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID FAKE and timestamp."
    } else {
        "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)"
    };
    json_response(
        403,
        &json!({
            "message": message,
            "documentation_url": format!("{DOCS}/overview/rate-limits-for-the-rest-api"),
        }),
    )
}

fn secondary_limit(status: u16, retry_after: Option<u64>) -> Response {
    let mut response = json_response(
        status,
        &json!({
            "message": format!("{SECONDARY_MESSAGE} FAKE."),
            "documentation_url": format!("{DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"),
        }),
    );
    if let Some(secs) = retry_after {
        response
            .headers
            .push(("retry-after".to_string(), secs.to_string()));
    }
    response
}
