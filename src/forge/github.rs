//! GitHub's REST API, and the APIs shaped like it (GitHub Enterprise, and
//! Gitea's, whose issue objects and paging follow GitHub's): the URLs we ask,
//! and what each answer means for a ref. Classification is a pure function
//! of status, headers and body, so GitHub's rules for what an answer means
//! (see [`classify`]) are tested without a server.

use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};
use reqwest::{StatusCode, Url};

use super::decode::{MAX_RESET_AHEAD, reset_at};
use super::http::{Http, Reply};
use super::kind::ForgeKind;
use super::token::Token;
use crate::target::{ForgeName, redact};

/// What an answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx, with the body.
    Ok,
    /// 304: what we hold is current (and it cost nothing against the limit).
    NotModified,
    /// 301 and friends: the issue was transferred; here is where.
    Moved(Url),
    /// 404: no such number (or not visible to us).
    NotFound,
    /// 410: deleted.
    Gone,
    /// A rate limit: wait, then ask again. Never a failure of the ref.
    Limited(Limit),
    /// 401, or 403 that is not a rate limit: nothing will work until the
    /// token (or its permissions) change.
    Denied(String),
    /// Anything else (5xx, a 4xx we do not expect): try again later.
    Transient(String),
    /// No connection could be made (name resolution, refused, TLS): no
    /// request reached the forge, so no ref is to blame.
    Unreachable(String),
}

/// Which rate limit an answer hit: it decides how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The hourly budget is spent until `reset`.
    Primary {
        /// `x-ratelimit-reset`; an hour from now when it is missing.
        reset: SystemTime,
    },
    /// A secondary limit; `retry_after` when the server said how long.
    Secondary {
        /// The server's `retry-after`, in seconds as sent.
        retry_after: Option<Duration>,
    },
}

/// The `x-ratelimit-*` headers of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests left until `reset` (`x-ratelimit-remaining`).
    pub remaining: u64,
    /// The window's whole budget (`x-ratelimit-limit`).
    pub limit: u64,
    /// When the window starts over (`x-ratelimit-reset`, unix seconds).
    pub reset: SystemTime,
}

/// One answer, classified, with what the pacing and the listing need.
#[derive(Debug)]
pub struct Fetched {
    /// What the status and headers mean for the ref.
    pub answer: Answer,
    /// The HTTP status; 0 when no answer came (a transport failure).
    pub status: u16,
    /// As read, within the HTTP layer's cap; empty after a transport failure.
    pub body: Vec<u8>,
    /// Kept with the item, so that the next ask can be conditional.
    pub etag: Option<String>,
    /// The `x-ratelimit-*` headers, when all three came.
    pub rate: Option<RateInfo>,
    /// `Link: <…>; rel="next"`, exactly as given.
    pub next: Option<Url>,
}

/// The client of one forge repository's REST API (and GraphQL's):
/// GitHub, GitHub Enterprise, or Gitea, whose REST API is shaped like
/// GitHub's.
pub struct GitHub {
    http: Http,
    kind: ForgeKind,
    /// Ends with `/`, so that joining keeps any path prefix (`/api/v3/`).
    base: Url,
    repo: ForgeName,
}

/// The API base: `--api-url`/`PATINA_FORGE_API_URL` when given, else the
/// forge kind's for the host. Plain `http://` only to a loopback address
/// (tests, proxies on this machine): anywhere else the token would cross the
/// network in clear.
pub fn api_base(host: &str, given: Option<&str>, kind: ForgeKind) -> Result<Url> {
    let given_text = match given {
        Some(url) => url.trim().to_owned(),
        None => kind.default_base(host),
    };
    let mut url = Url::parse(&given_text)
        .map_err(|e| anyhow!("the API URL {:?} is not a URL: {e}", redact(&given_text)))?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "the API URL must not carry credentials: set {} instead",
            kind.token_vars()[0]
        );
    }
    // Only a checked URL is shown: no credentials in it.
    let text = url.as_str().to_owned();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => bail!(
            "refusing the plain-http API URL {text:?}: the token would cross the network \
             unencrypted (use https://, or a loopback address)"
        ),
        other => bail!("the API URL {text:?} has scheme {other:?}; expected https://"),
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("the API URL {text:?} must not have a query or fragment");
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl GitHub {
    /// A client of `repo` at `base` (see [`api_base`]); the token, if any, goes
    /// only to `base`'s origin, in the form `kind` takes it.
    pub fn new(
        base: Url,
        repo: ForgeName,
        token: Option<Token>,
        timeout: Duration,
        kind: ForgeKind,
    ) -> Result<Self> {
        let authorization = token.map(|t| t.authorization(kind)).transpose()?;
        Ok(Self {
            http: Http::new(&base, authorization, timeout)?,
            kind,
            base,
            repo,
        })
    }

    /// Whether requests carry a token: GraphQL needs one, and without one a
    /// private repository answers 404.
    pub fn has_token(&self) -> bool {
        self.http.has_authorization()
    }

    /// What the forge is: it decides the URLs, the page size and what an
    /// item needs after a REST answer.
    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// Items per listing page.
    pub fn per_page(&self) -> u32 {
        self.kind.per_page()
    }

    /// The API base, ending with `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `host[:port]` of the API: the key of its pace ledger.
    pub fn host_key(&self) -> String {
        crate::pace::host_key(&self.base)
    }

    fn url(&self, path: &str) -> Url {
        self.base
            .join(&format!(
                "repos/{}/{}/{path}",
                self.repo.owner, self.repo.name
            ))
            .expect("checked owner and name make a valid path")
    }

    /// The repository itself: asked once per run, to tell a missing number
    /// from a missing repository.
    pub fn repo_url(&self) -> Url {
        let mut url = self.url("");
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        url
    }

    /// One issue or PR: the issue endpoint answers for both, so one request
    /// classifies any `#N`.
    pub fn issue_url(&self, number: u32) -> Url {
        self.url(&format!("issues/{number}"))
    }

    /// One pull request: its merge state, when an issue answer lacks it.
    pub fn pull_url(&self, number: u32) -> Url {
        self.url(&format!("pulls/{number}"))
    }

    /// The newest issue or PR: one item, newest created first.
    pub fn newest_url(&self) -> Url {
        match self.kind {
            // Gitea lists newest first, and knows no `sort` here.
            ForgeKind::Gitea => self.url("issues?state=all&limit=1"),
            _ => self.url("issues?state=all&sort=created&direction=desc&per_page=1"),
        }
    }

    /// The first page of the listing, newest first: numbers descend, so the
    /// pages walk the backlog from the top down.
    pub fn first_page_url(&self) -> Url {
        let per_page = self.per_page();
        match self.kind {
            ForgeKind::Gitea => self.url(&format!("issues?state=all&limit={per_page}")),
            _ => self.url(&format!(
                "issues?state=all&sort=created&direction=desc&per_page={per_page}"
            )),
        }
    }

    /// What changed since `since` (RFC 3339): on GitHub oldest change first,
    /// so that the high-water mark can move page by page (Gitea lists newest
    /// first: see [`ForgeKind::updates_ascending`]); everything without
    /// `since`.
    pub fn updated_url(&self, since: Option<&str>) -> Url {
        let per_page = self.per_page();
        let mut url = match self.kind {
            ForgeKind::Gitea => self.url(&format!("issues?state=all&limit={per_page}")),
            _ => self.url(&format!(
                "issues?state=all&sort=updated&direction=asc&per_page={per_page}"
            )),
        };
        if let Some(since) = since {
            url.query_pairs_mut().append_pair("since", since);
        }
        url
    }

    /// The first comments of issue or PR `number` (Gitea: REST carries no
    /// discussion, and there is no GraphQL).
    pub fn comments_url(&self, number: u32) -> Url {
        self.url(&format!(
            "issues/{number}/comments?limit={}",
            super::graphql::COMMENTS
        ))
    }

    /// The reviews of PR `number` (Gitea).
    pub fn reviews_url(&self, number: u32) -> Url {
        self.url(&format!("pulls/{number}/reviews"))
    }

    /// GraphQL's endpoint: `/graphql` beside REST's root on github.com,
    /// `/api/graphql` beside `/api/v3` on GitHub Enterprise.
    pub fn graphql_url(&self) -> Url {
        let relative = if self.base.path().ends_with("/api/v3/") {
            "../graphql"
        } else {
            "graphql"
        };
        self.base.join(relative).expect("a relative path joins")
    }

    /// Asks for `numbers` in one GraphQL query; the answer classified as any
    /// other (a 200 may still carry errors: see [`super::graphql::decode`]).
    pub fn fetch_batch(&self, numbers: &[u32]) -> Result<Fetched> {
        let body = super::graphql::request_body(numbers, &self.repo.owner, &self.repo.name);
        let reply = self.http.post_json(&self.graphql_url(), body)?;
        Ok(fetched(reply, SystemTime::now(), self.kind))
    }

    /// Whether the listing's `next` may be followed: only on the API's own
    /// server, where the token belongs.
    pub fn may_follow(&self, url: &Url) -> bool {
        self.http.same_origin(url)
    }

    /// Sends one GET and classifies the answer. `Err` only for a transport
    /// failure, which is transient too but has no answer to classify.
    pub fn fetch(&self, url: &Url, etag: Option<&str>) -> Result<Fetched> {
        let reply = self.http.get(url, etag)?;
        Ok(fetched(reply, SystemTime::now(), self.kind))
    }
}

fn fetched(reply: Reply, now: SystemTime, kind: ForgeKind) -> Fetched {
    let answer = classify(&reply, now, kind);
    Fetched {
        status: reply.status.as_u16(),
        etag: reply.header("etag").map(str::to_owned),
        rate: rate_info(&reply, now),
        next: reply.header("link").and_then(next_link),
        answer,
        body: reply.body,
    }
}

/// What an answer means for a ref, by GitHub's rules, in this order. 2xx is
/// the answer; 304, what we hold is current (it costs nothing against the
/// limit); 301, 302, 307 and 308, a transfer to `Location`; 404 and 410 are
/// final for the number; 401 is a bad token. A 403 or 429 is a rate limit,
/// never a failure of the ref: with `retry-after`, a secondary limit of that
/// length; with `x-ratelimit-remaining: 0`, the primary limit until
/// `x-ratelimit-reset`; with a message about a rate limit, a secondary limit
/// of no given length. Any other 429 is a secondary limit too, any other 403
/// a refusal. 5xx and anything unexpected are transient: asked again later.
pub fn classify(reply: &Reply, now: SystemTime, kind: ForgeKind) -> Answer {
    let status = reply.status;
    match status.as_u16() {
        200..=299 => Answer::Ok,
        304 => Answer::NotModified,
        301 | 302 | 307 | 308 => match reply.header("location").map(Url::parse) {
            Some(Ok(to)) => Answer::Moved(to),
            _ => Answer::Transient(format!("{status} without a usable Location")),
        },
        404 => Answer::NotFound,
        410 => Answer::Gone,
        401 => Answer::Denied(format!(
            "{} rejected the token ({}): set {} to a valid token, or unset it",
            kind.name(),
            message_or(&reply.body, "Bad credentials"),
            kind.token_vars()[0]
        )),
        403 | 429 => {
            if let Some(limit) = rate_limited(reply, now) {
                Answer::Limited(limit)
            } else if status == StatusCode::TOO_MANY_REQUESTS {
                Answer::Limited(Limit::Secondary { retry_after: None })
            } else {
                Answer::Denied(format!(
                    "{} refused access (403: {}): the token needs read access to this \
                     repository's issues and pull requests",
                    kind.name(),
                    message_or(&reply.body, "Forbidden")
                ))
            }
        }
        500..=599 => Answer::Transient(format!("server error {status}")),
        _ => Answer::Transient(format!(
            "unexpected answer {status}: {}",
            message_or(&reply.body, "no message")
        )),
    }
}

/// A 403/429 that is a rate limit, primary or secondary.
fn rate_limited(reply: &Reply, now: SystemTime) -> Option<Limit> {
    if let Some(seconds) = reply
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Limit::Secondary {
            retry_after: Some(Duration::from_secs(seconds)),
        });
    }
    if reply.header("x-ratelimit-remaining").map(str::trim) == Some("0") {
        let reset = reply
            .header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            // No reset given: an hour is the longest a primary window lasts.
            .map_or(now + MAX_RESET_AHEAD, |secs| reset_at(secs, now));
        return Some(Limit::Primary { reset });
    }
    let message = message_or(&reply.body, "").to_ascii_lowercase();
    message
        .contains("rate limit")
        .then_some(Limit::Secondary { retry_after: None })
}

fn rate_info(reply: &Reply, now: SystemTime) -> Option<RateInfo> {
    let number = |name| {
        reply
            .header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(RateInfo {
        remaining: number("x-ratelimit-remaining")?,
        limit: number("x-ratelimit-limit")?,
        reset: reset_at(number("x-ratelimit-reset")?, now),
    })
}

/// GitHub's error bodies are `{"message": …}`; anything else is not shown
/// (it could be a whole HTML page).
fn message_or(body: &[u8], default: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|e| {
            e.message
                .chars()
                .take(200)
                .collect::<String>()
                .replace('\n', " ")
        })
        .unwrap_or_else(|| default.to_owned())
}

/// `<url>; rel="next", <url>; rel="last"` → the `next` URL.
pub fn next_link(header: &str) -> Option<Url> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map_or(rest.len(), |i| close + i);
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        if is_next {
            return Url::parse(target).ok();
        }
        rest = &rest[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use std::time::{Duration, UNIX_EPOCH};

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn final_answers() {
        let now = SystemTime::now();
        assert_eq!(
            classify(&reply(200, &[], "{}"), now, ForgeKind::Github),
            Answer::Ok
        );
        assert_eq!(
            classify(&reply(304, &[], ""), now, ForgeKind::Github),
            Answer::NotModified
        );
        assert_eq!(
            classify(&reply(404, &[], "{}"), now, ForgeKind::Github),
            Answer::NotFound
        );
        assert_eq!(
            classify(&reply(410, &[], "{}"), now, ForgeKind::Github),
            Answer::Gone
        );
        let moved = reply(
            301,
            &[("location", "https://api.github.com/repositories/1/issues/2")],
            "",
        );
        assert!(
            matches!(classify(&moved, now, ForgeKind::Github), Answer::Moved(u) if u.path() == "/repositories/1/issues/2")
        );
    }

    #[test]
    fn rate_limits_are_told_apart_from_denials() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let primary = reply(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1600"),
            ],
            r#"{"message":"API rate limit exceeded for user ID 1."}"#,
        );
        assert_eq!(
            classify(&primary, now, ForgeKind::Github),
            Answer::Limited(Limit::Primary {
                reset: UNIX_EPOCH + Duration::from_secs(1600)
            })
        );
        let secondary = reply(
            403,
            &[("x-ratelimit-remaining", "4000")],
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}"#,
        );
        assert_eq!(
            classify(&secondary, now, ForgeKind::Github),
            Answer::Limited(Limit::Secondary { retry_after: None })
        );
        let told = reply(429, &[("retry-after", "42")], "{}");
        assert_eq!(
            classify(&told, now, ForgeKind::Github),
            Answer::Limited(Limit::Secondary {
                retry_after: Some(Duration::from_secs(42))
            })
        );
        let denied = reply(
            403,
            &[("x-ratelimit-remaining", "4999")],
            r#"{"message":"Resource not accessible by integration"}"#,
        );
        assert!(
            matches!(classify(&denied, now, ForgeKind::Github), Answer::Denied(m) if m.contains("Resource not accessible"))
        );
        assert!(matches!(
            classify(&reply(401, &[], "{}"), now, ForgeKind::Github),
            Answer::Denied(_)
        ));
    }

    #[test]
    fn everything_else_is_transient() {
        let now = SystemTime::now();
        for status in [500, 502, 503, 504, 422, 400] {
            assert!(
                matches!(
                    classify(&reply(status, &[], "<html>"), now, ForgeKind::Github),
                    Answer::Transient(_)
                ),
                "{status}"
            );
        }
        assert!(matches!(
            classify(&reply(301, &[], ""), now, ForgeKind::Github),
            Answer::Transient(_)
        ));
    }

    #[test]
    fn next_link_is_taken_exactly() {
        let header = r#"<https://api.github.com/repositories/1/issues?state=all&per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues?state=all&per_page=100&page=175>; rel="last""#;
        assert_eq!(
            next_link(header).unwrap().as_str(),
            "https://api.github.com/repositories/1/issues?state=all&per_page=100&page=2"
        );
        let last_page =
            r#"<https://x/issues?page=1>; rel="first", <https://x/issues?page=174>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage <unclosed"), None);
    }

    #[test]
    fn api_bases() {
        assert_eq!(
            api_base("github.com", None, ForgeKind::Github)
                .unwrap()
                .as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            api_base("ghe.example.com", None, ForgeKind::GithubEnterprise)
                .unwrap()
                .as_str(),
            "https://ghe.example.com/api/v3/"
        );
        assert!(
            api_base(
                "github.com",
                Some("http://127.0.0.1:8080"),
                ForgeKind::Github
            )
            .is_ok()
        );
        assert!(
            api_base(
                "github.com",
                Some("http://localhost:8080/api"),
                ForgeKind::Github
            )
            .is_ok()
        );
        assert!(api_base("github.com", Some("http://example.com"), ForgeKind::Github).is_err());
        assert!(
            api_base(
                "github.com",
                Some("https://u:p@example.com"),
                ForgeKind::Github
            )
            .is_err()
        );
        assert!(api_base("github.com", Some("ftp://example.com"), ForgeKind::Github).is_err());
    }
}
