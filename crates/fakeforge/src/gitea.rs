//! Flavours: the fake as github.com (the default), as a GitHub Enterprise
//! Server, or as a Gitea / Forgejo / Codeberg server, over the same data
//! (repositories, items with their comments and reviews, tombstones), the
//! same faults, request log and `require_token`.
//!
//! ```ignore
//! let gitea = FakeForge::start_gitea();      // url() = http://127.0.0.1:PORT/api/v1
//! let ghe = FakeForge::start_ghe();          // url() = http://127.0.0.1:PORT/api/v3
//! ghe.set_rate_limiting(false);              // GHE with rate limiting turned off
//! let either = FakeForge::start_as(Flavour::Gitea);
//! // root_url() = http://127.0.0.1:PORT for all three
//! ```
//!
//! The flavour is chosen at start and does not change: `url()` (the API base
//! a client is given) and every URL in the bodies depend on it.
//!
//! # Probing "what is this host" (each flavour answers its own, 404 the rest)
//!
//! ```text
//!                      GitHub            GitHubEnterprise                      Gitea
//! GET /meta            200 github.com's  404 (outside /api/v3)                 404 HTML (web)
//! GET /api/v3/meta     404 JSON          200 {"verifiable_password_            404 HTML (web)
//!                                            authentication":true,
//!                                            "installed_version":"3.12.0"}
//! GET /api/v1/version  404 JSON          404 JSON                              200 {"version":"1.21.11"}
//! ```
//!
//! The probes are answered without a token even under `require_token` (a
//! wrong token is still 401), except by a GHE in private mode
//! (`set_private_mode`), which refuses them with 401 like everything else. `set_server_version` changes "3.12.0" /
//! "1.21.11" (e.g. `"7.0.5+gitea-1.21.11"` for a Forgejo).
//!
//! # GitHub Enterprise (`Flavour::GitHubEnterprise`)
//!
//! GitHub's REST endpoints under `/api/v3/…` (`/api/v3/repos/{o}/{r}/…`,
//! `/api/v3/repositories/{id}/…`, `/api/v3/rate_limit`, `/api/v3/meta`) and
//! GraphQL at `POST /api/graphql`; any other path is 404 (JSON), including
//! `/repos/…`, `/graphql` and `/api/v3/graphql`. Every API URL in bodies,
//! `Link` and `Location` is under `{root}/api/v3`; web URLs (`html_url`…)
//! are `{root}/…` in REST bodies (GraphQL's `url` stays `https://github.com/…`).
//! Every answer also carries `x-github-enterprise-version: 3.12.0`.
//!
//! `set_rate_limiting(false)` ("rate limiting disabled" in the management
//! console): no `x-ratelimit-*` header on any answer, never a primary-limit
//! refusal (REST or GraphQL's `RATE_LIMITED`; a `PrimaryLimit` fault still
//! answers once), and `GET /api/v3/rate_limit` is 404 `{"message":"Rate
//! limiting is not enabled.","documentation_url":…}` as on GHES. Secondary
//! limits and 429s injected as faults are still answered and enforced.
//!
//! # Gitea (`Flavour::Gitea`): Gitea 1.21 / Forgejo 7
//!
//! Everything under `/api/v1`; GET and HEAD only. Bodies have Go's fields
//! (serde sorts the keys), `content-type: application/json;charset=utf-8`;
//! headers `date`, `cache-control: max-age=0, private, must-revalidate,
//! no-transform`, `x-frame-options: SAMEORIGIN`; no `x-ratelimit-*`, no
//! `x-github-*`, no ETag (`If-None-Match` is ignored, never a 304).
//!
//! ```text
//! GET /api/v1/version                          {"version":"1.21.11"}
//! GET /api/v1/repos/{o}/{r}                    repository: id owner{user} name full_name html_url url clone_url
//!                                              ssh_url default_branch open_issues_count (issues) open_pr_counter …
//! GET /api/v1/repos/{o}/{r}/issues/{n}         issue or PR (below); 404 for missing, deleted and transferred
//! GET /api/v1/repos/{o}/{r}/issues?state=open|closed|all&type=issues|pulls&since&before&page&limit
//! GET /api/v1/repos/{o}/{r}/issues/{n}/comments?since&before    every comment, oldest first
//! GET /api/v1/repos/{o}/{r}/pulls/{n}/reviews?page&limit        PR only (404 for an issue)
//! ```
//!
//! - Issue: `id` (repo id × 10⁷ + n), `url` (`{api}/repos/{o}/{r}/issues/{n}`,
//!   PRs too), `html_url` (`{root}/{o}/{r}/issues/{n}`, a PR `…/pulls/{n}`),
//!   `number`, `user`, `original_author` "", `original_author_id` 0, `title`,
//!   `body` (null held → ""), `ref` "", `assets` [], `labels` [{`id`, `name`,
//!   `exclusive` false, `is_archived` false, `color` (6 hex digits from the
//!   name, no `#`), `description` "", `url` `{api}/repos/{o}/{r}/labels/{id}`}],
//!   `milestone` null, `assignee` null, `assignees` null, `state`
//!   open/closed, `is_locked` false, `comments` (count), `created_at`,
//!   `updated_at`, `closed_at` (null when open), `due_date` null,
//!   `pull_request` (null for an issue, as Gitea sends it; a PR: {`merged`,
//!   `merged_at` (null unless merged), `draft` false, `html_url`}),
//!   `repository` {`id`, `name`, `owner`, `full_name`}, `pin_order` 0; then
//!   `with_field` / `without_field` apply.
//! - User: {`id`, `login`, `login_name` "", `source_id` 0, `full_name` "",
//!   `email` `{login}@noreply.localhost`, `avatar_url`, `html_url`
//!   `{root}/{login}`, `language` "", `is_admin` false, `last_login`
//!   "0001-01-01T00:00:00Z", `created`, `restricted`, `active`,
//!   `prohibit_login`, `location`, `website`, `description`, `visibility`
//!   "public", `followers_count`, `following_count`, `starred_repos_count`,
//!   `username`} (what an anonymous caller sees); a deleted account (`None`)
//!   is Gitea's ghost: `id` -1, `login` "Ghost".
//! - Comment: {`id` (issue id × 1000 + k), `html_url`
//!   `{item html_url}#issuecomment-{id}`, `pull_request_url` (the PR's
//!   html_url, "" on an issue), `issue_url` (the issue's html_url, "" on a
//!   PR), `user`, `original_author` "", `original_author_id` 0, `body`,
//!   `assets` [], `created_at`, `updated_at` (= created_at)}; header
//!   `x-total-count`.
//! - Review: {`id` (issue id × 1000 + 500 + k), `user`, `team` null, `state`,
//!   `body` "", `commit_id` (40 hex digits), `stale` false, `official` (true
//!   for APPROVED and REQUEST_CHANGES), `dismissed`, `comments_count` 0,
//!   `submitted_at` and `updated_at` (the PR's created_at + k minutes),
//!   `html_url` `{pr html_url}#issuecomment-{id}`, `pull_request_url`}. The
//!   held GitHub states map to Gitea's: APPROVED → APPROVED,
//!   CHANGES_REQUESTED → REQUEST_CHANGES, COMMENTED → COMMENT, PENDING →
//!   PENDING, DISMISSED → APPROVED with `dismissed: true`. Header
//!   `x-total-count`; `page`/`limit` as for issues (no `Link`).
//! - The list: `state` open (default, and any unknown value), closed, all;
//!   `type` issues or pulls (anything else: both); `since` / `before`
//!   (RFC 3339, inclusive, on `updated_at`; unreadable → 422 `{"message":
//!   "parsing time …","url":…}`); newest created first (ties: higher number
//!   first); `limit` ≤ 0 or absent → 30, capped at 50 (Gitea's
//!   `MAX_RESPONSE_ITEMS`); `page` ≤ 0 or absent → 1. Headers:
//!   `x-total-count` (all matching items), `access-control-expose-headers`
//!   (`Link, X-Total-Count`, or `X-Total-Count` without a Link), and `link`,
//!   exactly as Gitea builds it: rels in the order next, last, first, prev,
//!   joined by "," (no space), each `<{root}/api/v1{path}?{query}>` where
//!   query is the request's parameters re-encoded as Go's `url.Values`
//!   (keys sorted, values `QueryEscape`d, so `limit=100` stays in the link
//!   although 50 are sent) with `page` set; no header when page 1 holds
//!   everything. A page past the end is empty and links as the last page.
//! - Errors: 404 `{"errors":null,"message":"The target couldn't be
//!   found.","url":"{root}/api/swagger"}` (missing, deleted, transferred,
//!   unknown repository or path under `/api/v1`; Gitea has no 410 and no
//!   issue transfer); outside `/api/v1` a 404 HTML page (Gitea's web side);
//!   `require_token`: no `Authorization` → 401 `{"message":"token is
//!   required","url":…}`, a wrong one → 401 `{"message":"user does not exist
//!   [uid: 0, name: ]","url":…}` (`token <t>` and `Bearer <t>` are both
//!   accepted). No User-Agent check.
//! - Faults apply as for GitHub; `Status(code)` answers Gitea's
//!   `{"message":…,"url":…}`; `TooMany` / `SecondaryLimit` answer as a proxy
//!   in front of Gitea would: nginx's HTML error page (429 / 403), with
//!   `retry-after` when given, enforced for that long. `PrimaryLimit` is
//!   GitHub's and answers GitHub's 403 once (nothing is refused after it).
//!
//! # What real servers do that the fake does not
//!
//! - Gitea: timestamps carry the server's zone offset (`+02:00`) where the
//!   fake sends the held `…Z` strings; pending reviews are shown only to
//!   their author (the fake lists them to everyone); review requests
//!   (`REQUEST_REVIEW`) are not modelled; no `q`, `labels`, `milestones`,
//!   `created_by`… filters; no `/pulls/{n}`, `/repositories/{id}`, search,
//!   timeline or `/api/forgejo/v1/version`; `?token=` / `?access_token=`
//!   query credentials are not accepted; other methods on a known path are
//!   404 (Gitea says 405); repository renames do not redirect; an invalid
//!   `since` message is shorter than Go's.
//! - GHE: the body of `/api/v3/meta` has only those two fields; web URLs in
//!   GraphQL answers stay on github.com; a non-API path is JSON 404 (GHES
//!   serves its web UI there).

use std::borrow::Cow;

use serde_json::{Value, json};

use super::http::{Request, Response};
use super::render::fnv;
use super::{
    Entry, FakeForge, Item, Kind, Repo, Shared, State, clock, iso, json_response, parse_iso,
    percent_decode,
};

/// Which forge the fake is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// github.com: the API at the root, `POST /graphql`.
    #[default]
    GitHub,
    /// GitHub Enterprise Server: `/api/v3/…` and `POST /api/graphql`.
    GitHubEnterprise,
    /// Gitea 1.21 / Forgejo 7 / Codeberg: `/api/v1/…`.
    Gitea,
}

impl Flavour {
    /// The path of the API base under the root: "", "/api/v3" or "/api/v1".
    pub fn api_prefix(self) -> &'static str {
        match self {
            Flavour::GitHub => "",
            Flavour::GitHubEnterprise => "/api/v3",
            Flavour::Gitea => "/api/v1",
        }
    }
}

/// Gitea's page size when `limit` is missing, and its largest
/// (`[api] DEFAULT_PAGING_NUM`, `MAX_RESPONSE_ITEMS`).
const GITEA_PAGE_DEFAULT: i64 = 30;
const GITEA_PAGE_MAX: i64 = 50;
const GITEA_VERSION: &str = "1.21.11";
const GHE_VERSION: &str = "3.12.0";
const GITEA_JSON: &str = "application/json;charset=utf-8";
/// Where a request outside the flavour's API is routed: no route matches it.
const OUTSIDE: &str = "/:outside-the-api";

/// The flavour's settings in `State`.
pub(super) struct Knobs {
    /// GitHub's primary limit and `x-ratelimit-*` headers (never on Gitea).
    rate_limiting: bool,
    /// GHE's `installed_version`, Gitea's `version`.
    pub(super) version: String,
    /// GHE's private mode: with `require_token`, the probe is refused
    /// without a token too.
    pub(super) private_mode: bool,
}

impl Knobs {
    pub(super) fn new(flavour: Flavour) -> Knobs {
        Knobs {
            rate_limiting: flavour != Flavour::Gitea,
            version: match flavour {
                Flavour::Gitea => GITEA_VERSION,
                _ => GHE_VERSION,
            }
            .to_string(),
            private_mode: false,
        }
    }
}

impl FakeForge {
    /// Starts as `flavour` on 127.0.0.1 at a free port; panics if it cannot bind.
    pub fn start_as(flavour: Flavour) -> FakeForge {
        FakeForge::start_on_as(0, flavour).expect("bind the fake forge on 127.0.0.1")
    }

    /// A fake Gitea / Forgejo: `url()` is `http://127.0.0.1:PORT/api/v1`.
    pub fn start_gitea() -> FakeForge {
        FakeForge::start_as(Flavour::Gitea)
    }

    /// A fake GitHub Enterprise Server: `url()` is `http://127.0.0.1:PORT/api/v3`.
    pub fn start_ghe() -> FakeForge {
        FakeForge::start_as(Flavour::GitHubEnterprise)
    }

    pub fn flavour(&self) -> Flavour {
        self.shared.flavour
    }

    /// `http://127.0.0.1:PORT`: the host's root, where web URLs point (for
    /// GitHub the same as `url()`).
    pub fn root_url(&self) -> String {
        self.shared.root.clone()
    }

    /// GitHub's primary limit and `x-ratelimit-*` headers on or off (on by
    /// default; off is GHE's "rate limiting disabled"). Gitea has none:
    /// turning them on there panics.
    pub fn set_rate_limiting(&self, on: bool) {
        assert!(
            !(on && self.shared.flavour == Flavour::Gitea),
            "Gitea has no rate limiting to turn on"
        );
        self.state().flavoured.rate_limiting = on;
    }

    /// GHE's private mode, as most company servers run: every API call
    /// without a token is 401, `GET /api/v3/meta` included (each answer,
    /// the 401s too, still carries `x-github-enterprise-version`). Takes
    /// effect with `require_token`.
    pub fn set_private_mode(&self, on: bool) {
        assert!(
            self.shared.flavour == Flavour::GitHubEnterprise,
            "private mode is GitHub Enterprise's"
        );
        self.state().flavoured.private_mode = on;
    }

    /// GHE's `installed_version` (and `x-github-enterprise-version`), or
    /// Gitea's `version`; defaults "3.12.0" and "1.21.11".
    pub fn set_server_version(&self, version: &str) {
        self.state().flavoured.version = version.to_string();
    }
}

/// Whether GitHub's primary limit and its headers are in force.
pub(super) fn limited(flavour: Flavour, st: &State) -> bool {
    flavour != Flavour::Gitea && st.flavoured.rate_limiting
}

/// The request as the router sees it: for GHE and Gitea the API prefix
/// removed (`/api/graphql` → `/graphql` for GHE), and anything outside the
/// API moved where nothing matches. GitHub's requests are unchanged.
pub(super) fn view(flavour: Flavour, request: &Request) -> Cow<'_, Request> {
    let path = request.path();
    let inner = match flavour {
        Flavour::GitHub => return Cow::Borrowed(request),
        Flavour::GitHubEnterprise if path == "/api/graphql" => "/graphql".to_string(),
        Flavour::GitHubEnterprise | Flavour::Gitea => {
            match path.strip_prefix(flavour.api_prefix()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') && rest != "/graphql" => rest.to_string(),
                _ => format!("{OUTSIDE}{path}"),
            }
        }
    };
    let mut inside = request.clone();
    inside.target = match request.target.split_once('?') {
        Some((_, query)) => format!("{inner}?{query}"),
        None => inner,
    };
    Cow::Owned(inside)
}

/// A "what is this host" probe, answered without a token.
pub(super) fn is_probe(flavour: Flavour, st: &State, view: &Request) -> bool {
    if st.flavoured.private_mode {
        return false;
    }
    let probe = match flavour {
        Flavour::Gitea => "/version",
        _ => "/meta",
    };
    view.path() == probe
}

/// `GET /meta` of GitHub (a small github.com body) and GHE.
pub(super) fn meta(flavour: Flavour, st: &State) -> Value {
    if flavour == Flavour::GitHubEnterprise {
        return json!({
            "verifiable_password_authentication": true,
            "installed_version": st.flavoured.version,
        });
    }
    json!({
        "verifiable_password_authentication": false,
        "ssh_key_fingerprints": {
            "SHA256_ECDSA": "p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
            "SHA256_ED25519": "+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
            "SHA256_RSA": "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        },
        "hooks": ["192.30.252.0/22"],
        "web": ["192.30.252.0/22"],
        "api": ["192.30.252.0/22"],
        "git": ["192.30.252.0/22"],
    })
}

/// GHES's `/api/v3/rate_limit` with rate limiting disabled.
pub(super) fn rate_limiting_off() -> Response {
    json_response(
        404,
        &json!({
            "message": "Rate limiting is not enabled.",
            "documentation_url": "https://docs.github.com/enterprise-server@3.12/rest/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user",
        }),
    )
}

impl Shared {
    /// GHE: web URLs (`https://github.com/…` in GitHub's examples) on this
    /// host. Other flavours: unchanged.
    pub(super) fn web(&self, mut value: Value) -> Value {
        if self.flavour == Flavour::GitHubEnterprise {
            let root = format!("{}/", self.root);
            rewrite_strings(&mut value, &|s| {
                s.strip_prefix("https://github.com/")
                    .map(|rest| format!("{root}{rest}"))
            });
        }
        value
    }

    /// `require_token`'s refusal in this flavour's words.
    pub(super) fn unauthorized(&self, request: &Request) -> Response {
        if self.flavour != Flavour::Gitea {
            return super::error_json(401, "Bad credentials", "");
        }
        let message = if request.header("authorization").is_some() {
            "user does not exist [uid: 0, name: ]"
        } else {
            "token is required"
        };
        self.gitea_error(401, message)
    }

    /// The `Status` fault's body.
    pub(super) fn status_fault(&self, code: u16, message: &str) -> Response {
        match self.flavour {
            Flavour::Gitea => self.gitea_error(code, if code == 500 { "" } else { message }),
            _ => super::error_json(code, message, ""),
        }
    }

    /// A secondary limit or 429 (fault, or its wait in force): GitHub's, or
    /// on Gitea what a proxy in front of it sends.
    pub(super) fn secondary(&self, status: u16, retry_after: Option<u64>) -> Response {
        if self.flavour != Flavour::Gitea {
            return super::secondary_limit(status, retry_after);
        }
        let title = format!("{status} {}", super::http::reason(status));
        let page = format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        );
        let mut response = Response::new(status).header("content-type", "text/html");
        response.body = Some(page.into_bytes());
        if let Some(secs) = retry_after {
            response
                .headers
                .push(("retry-after".to_string(), secs.to_string()));
        }
        response
    }

    fn gitea_error(&self, status: u16, message: &str) -> Response {
        gitea_json(
            status,
            &json!({"message": message, "url": format!("{}/api/swagger", self.root)}),
        )
    }

    fn gitea_not_found(&self) -> Response {
        gitea_json(
            404,
            &json!({
                "errors": null,
                "message": "The target couldn't be found.",
                "url": format!("{}/api/swagger", self.root),
            }),
        )
    }
}

/// The headers of every Gitea answer (content-type unless set).
pub(super) fn finish_headers(response: &mut Response) {
    let extra = [
        ("date", clock::http_date(clock::now_secs())),
        (
            "cache-control",
            "max-age=0, private, must-revalidate, no-transform".to_string(),
        ),
        ("x-frame-options", "SAMEORIGIN".to_string()),
    ];
    for (name, value) in extra {
        response.headers.push((name.to_string(), value));
    }
    if response.get_header("content-type").is_none() {
        response
            .headers
            .push(("content-type".to_string(), GITEA_JSON.to_string()));
    }
}

fn rewrite_strings(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| rewrite_strings(i, f)),
        _ => {}
    }
}

fn gitea_json(status: u16, value: &Value) -> Response {
    let mut response = Response::new(status).header("content-type", GITEA_JSON);
    response.body = Some(serde_json::to_vec(value).expect("serialise JSON"));
    response
}

// ---------------------------------------------------------------------------
// Gitea's router and bodies
// ---------------------------------------------------------------------------

/// Where an item lives, for Gitea's URLs and ids.
struct At<'a> {
    /// `http://127.0.0.1:PORT` (Gitea's `AppURL` without the slash).
    root: &'a str,
    /// `{root}/api/v1`.
    api: &'a str,
    repo: &'a Repo,
}

impl At<'_> {
    fn full_name(&self) -> String {
        self.repo.full_name()
    }

    fn api_repo(&self) -> String {
        format!("{}/repos/{}", self.api, self.full_name())
    }

    fn html(&self, item: &Item) -> String {
        let web = if item.is_pr() { "pulls" } else { "issues" };
        format!("{}/{}/{web}/{}", self.root, self.full_name(), item.number)
    }

    fn item_id(&self, number: u64) -> u64 {
        self.repo.id * 10_000_000 + number
    }
}

/// The answer to a request (its view: `/api/v1` removed) on a Gitea fake.
pub(super) fn route(shared: &Shared, st: &State, request: &Request) -> Response {
    let path = request.path();
    if path.starts_with(OUTSIDE) {
        let mut response = Response::new(404).header("content-type", "text/html; charset=utf-8");
        response.body = Some(WEB_NOT_FOUND.as_bytes().to_vec());
        return response;
    }
    if request.method != "GET" && request.method != "HEAD" {
        return shared.gitea_not_found();
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        ["version"] => gitea_json(200, &json!({"version": st.flavoured.version})),
        ["repos", owner, name, rest @ ..] => match st.repo_index(&format!("{owner}/{name}")) {
            Some(i) => {
                let at = At {
                    root: &shared.root,
                    api: &shared.base,
                    repo: &st.repos[i],
                };
                repo_route(shared, &at, rest, request)
            }
            None => shared.gitea_not_found(),
        },
        _ => shared.gitea_not_found(),
    }
}

fn repo_route(shared: &Shared, at: &At, rest: &[&str], request: &Request) -> Response {
    let live = |n: &str| match n.parse::<u64>().ok().and_then(|n| at.repo.items.get(&n)) {
        Some(Entry::Live(item)) => Some(&**item),
        _ => None,
    };
    let params = go_query(request.query());
    match rest {
        [] => gitea_json(200, &repository(at)),
        ["issues"] => list(shared, at, request, &params),
        ["issues", n] => match live(n) {
            Some(item) => gitea_json(200, &issue(at, item)),
            None => shared.gitea_not_found(),
        },
        ["issues", n, "comments"] => match live(n) {
            Some(item) => {
                let (since, before) = match since_before(&params) {
                    Ok(window) => window,
                    Err(message) => return shared.gitea_error(422, &message),
                };
                let html = at.html(item);
                let comments: Vec<Value> = item
                    .comments
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| in_window(&c.created_at, since, before))
                    .map(|(k, c)| {
                        let id = at.item_id(item.number) * 1000 + k as u64 + 1;
                        let (pr_url, issue_url) = if item.is_pr() {
                            (html.as_str(), "")
                        } else {
                            ("", html.as_str())
                        };
                        json!({
                            "id": id,
                            "html_url": format!("{html}#issuecomment-{id}"),
                            "pull_request_url": pr_url,
                            "issue_url": issue_url,
                            "user": user(at.root, c.author.as_deref()),
                            "original_author": "",
                            "original_author_id": 0,
                            "body": c.body,
                            "assets": [],
                            "created_at": c.created_at,
                            "updated_at": c.created_at,
                        })
                    })
                    .collect();
                let total = comments.len();
                with_total(gitea_json(200, &Value::Array(comments)), total, false)
            }
            None => shared.gitea_not_found(),
        },
        ["pulls", n, "reviews"] => match live(n).filter(|i| i.is_pr()) {
            Some(item) => {
                let (page, size) = paging(&params);
                let all: Vec<Value> = (0..item.reviews.len())
                    .map(|k| review(at, item, k))
                    .collect();
                let total = all.len();
                let shown: Vec<Value> = all
                    .into_iter()
                    .skip((page - 1).saturating_mul(size))
                    .take(size)
                    .collect();
                with_total(gitea_json(200, &Value::Array(shown)), total, false)
            }
            None => shared.gitea_not_found(),
        },
        _ => shared.gitea_not_found(),
    }
}

fn with_total(mut response: Response, total: usize, link: bool) -> Response {
    response
        .headers
        .push(("x-total-count".to_string(), total.to_string()));
    let expose = if link {
        "Link, X-Total-Count"
    } else {
        "X-Total-Count"
    };
    response.headers.push((
        "access-control-expose-headers".to_string(),
        expose.to_string(),
    ));
    response
}

/// The query as Go's `url.ParseQuery` reads it: `+` is a space.
fn go_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            (decode(k), decode(v))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// `ctx.FormString`: the first value, or "".
fn form<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// `ctx.FormInt`: 0 when absent or unreadable.
fn form_int(params: &[(String, String)], key: &str) -> i64 {
    form(params, key).parse().unwrap_or(0)
}

/// (page ≥ 1, page size) from `page` and `limit`, as `GetListOptions`.
fn paging(params: &[(String, String)]) -> (usize, usize) {
    let limit = form_int(params, "limit");
    let size = if limit <= 0 {
        GITEA_PAGE_DEFAULT
    } else {
        limit.min(GITEA_PAGE_MAX)
    };
    (form_int(params, "page").max(1) as usize, size as usize)
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.Values.Encode` of `params` with `page` set to `page`.
fn encode_with_page(params: &[(String, String)], page: i64) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "page")
        .cloned()
        .collect();
    pairs.push(("page".to_string(), page.to_string()));
    // Stable: a key's values keep their order, as in Go's map of slices.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Gitea's `genAPILinks`: its paginator, its rel order, "," between.
fn link_header(url: &str, params: &[(String, String)], total: i64, size: i64) -> Option<String> {
    let pages = if total == 0 {
        1
    } else {
        (total + size - 1) / size
    };
    let current = form_int(params, "page").max(1).min(pages);
    let has_next = total > current * size;
    let is_last = total == 0 || (total > (current - 1) * size && !has_next);
    let link =
        |page: i64, rel: &str| format!("<{url}?{}>; rel=\"{rel}\"", encode_with_page(params, page));
    let mut links = Vec::new();
    if has_next {
        links.push(link(current + 1, "next"));
    }
    if !is_last {
        links.push(link(pages, "last"));
    }
    if current != 1 {
        links.push(link(1, "first"));
    }
    if current > 1 {
        links.push(link(current - 1, "prev"));
    }
    (!links.is_empty()).then(|| links.join(","))
}

/// `since` and `before` as epoch seconds (`GetQueryBeforeSince`).
fn since_before(params: &[(String, String)]) -> Result<(Option<i64>, Option<i64>), String> {
    let read = |key: &str| {
        let v = form(params, key);
        if v.is_empty() {
            return Ok(None);
        }
        parse_iso(v).map(Some).ok_or_else(|| {
            format!("parsing time \"{v}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{v}\" as \"2006\"")
        })
    };
    let before = read("before")?;
    Ok((read("since")?, before))
}

fn in_window(at: &str, since: Option<i64>, before: Option<i64>) -> bool {
    let t = parse_iso(at).unwrap_or(0);
    since.is_none_or(|s| t >= s) && before.is_none_or(|b| t <= b)
}

fn list(shared: &Shared, at: &At, request: &Request, params: &[(String, String)]) -> Response {
    let (since, before) = match since_before(params) {
        Ok(window) => window,
        Err(message) => return shared.gitea_error(422, &message),
    };
    let state = match form(params, "state") {
        "closed" => Some("closed"),
        "all" => None,
        _ => Some("open"),
    };
    let pulls = match form(params, "type") {
        "pulls" => Some(true),
        "issues" => Some(false),
        _ => None,
    };
    let time = |s: &str| parse_iso(s).unwrap_or(0);
    let mut items: Vec<&Item> = at
        .repo
        .items
        .values()
        .filter_map(|e| match e {
            Entry::Live(item) => Some(&**item),
            _ => None,
        })
        .filter(|i| state.is_none_or(|s| i.state == s))
        .filter(|i| pulls.is_none_or(|p| i.is_pr() == p))
        .filter(|i| in_window(&i.updated_at, since, before))
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse((time(&i.created_at), i.number)));
    let (page, size) = paging(params);
    let total = items.len();
    let shown: Vec<Value> = items
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|item| issue(at, item))
        .collect();
    let url = format!("{}{}", shared.base, request.path());
    let link = link_header(&url, params, total as i64, size as i64);
    let mut response = with_total(gitea_json(200, &Value::Array(shown)), total, link.is_some());
    if let Some(link) = link {
        response.headers.push(("link".to_string(), link));
    }
    response
}

fn small_id(name: &str) -> u64 {
    fnv(name.as_bytes(), 0) % 100_000_000 + 1
}

/// A user as an anonymous caller sees it; `None` is Gitea's ghost.
fn user(root: &str, login: Option<&str>) -> Value {
    let (id, login, created) = match login {
        Some(login) => (small_id(login) as i64, login, "2020-01-01T00:00:00Z"),
        None => (-1, "Ghost", "1970-01-01T00:00:00Z"),
    };
    let avatar = if id < 0 {
        format!("{root}/assets/img/avatar_default.png")
    } else {
        format!(
            "{root}/avatars/{:032x}",
            u128::from(fnv(login.as_bytes(), 1))
        )
    };
    json!({
        "id": id,
        "login": login,
        "login_name": "",
        "source_id": 0,
        "full_name": "",
        "email": format!("{}@noreply.localhost", login.to_ascii_lowercase()),
        "avatar_url": avatar,
        "html_url": format!("{root}/{login}"),
        "language": "",
        "is_admin": false,
        "last_login": "0001-01-01T00:00:00Z",
        "created": created,
        "restricted": false,
        "active": false,
        "prohibit_login": false,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
        "username": login,
    })
}

fn labels(at: &At, names: &[String]) -> Value {
    names
        .iter()
        .map(|name| {
            let id = small_id(name);
            json!({
                "id": id,
                "name": name,
                "exclusive": false,
                "is_archived": false,
                "color": format!("{:06x}", fnv(name.as_bytes(), 7) & 0xff_ffff),
                "description": "",
                "url": format!("{}/labels/{id}", at.api_repo()),
            })
        })
        .collect()
}

fn issue(at: &At, item: &Item) -> Value {
    let n = item.number;
    let pull_request = match &item.kind {
        Kind::Issue => Value::Null,
        Kind::Pr { merged_at, merged } => json!({
            "merged": merged,
            "merged_at": if *merged { json!(merged_at) } else { Value::Null },
            "draft": false,
            "html_url": at.html(item),
        }),
    };
    let mut v = json!({
        "id": at.item_id(n),
        "url": format!("{}/issues/{n}", at.api_repo()),
        "html_url": at.html(item),
        "number": n,
        "user": user(at.root, item.author.as_deref()),
        "original_author": "",
        "original_author_id": 0,
        "title": item.title,
        "body": item.body.as_deref().unwrap_or(""),
        "ref": "",
        "assets": [],
        "labels": labels(at, &item.labels),
        "milestone": null,
        "assignee": null,
        "assignees": null,
        "state": item.state,
        "is_locked": false,
        "comments": item.comments.len(),
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "closed_at": item.closed_at,
        "due_date": null,
        "pull_request": pull_request,
        "repository": {
            "id": at.repo.id,
            "name": at.repo.name,
            "owner": at.repo.owner,
            "full_name": at.full_name(),
        },
        "pin_order": 0,
    });
    if let Value::Object(map) = &mut v {
        for (key, value) in &item.overrides {
            match value {
                Some(value) => {
                    map.insert(key.clone(), value.clone());
                }
                None => {
                    map.remove(key);
                }
            }
        }
    }
    v
}

/// Review `k` (from 0) of a PR.
fn review(at: &At, item: &Item, k: usize) -> Value {
    let r = &item.reviews[k];
    let id = at.item_id(item.number) * 1000 + 500 + k as u64 + 1;
    let (state, dismissed) = match r.state.as_str() {
        "CHANGES_REQUESTED" => ("REQUEST_CHANGES", false),
        "COMMENTED" => ("COMMENT", false),
        "DISMISSED" => ("APPROVED", true),
        other => (other, false),
    };
    let at_time = iso(parse_iso(&item.created_at).unwrap_or(0) + 60 * (k as i64 + 1));
    let html = at.html(item);
    json!({
        "id": id,
        "user": user(at.root, r.author.as_deref()),
        "team": null,
        "state": state,
        "body": "",
        "commit_id": format!("{:016x}{:016x}{:08x}", fnv(&id.to_le_bytes(), 1), fnv(&id.to_le_bytes(), 2), item.number),
        "stale": false,
        "official": matches!(state, "APPROVED" | "REQUEST_CHANGES"),
        "dismissed": dismissed,
        "comments_count": 0,
        "submitted_at": at_time,
        "updated_at": at_time,
        "html_url": format!("{html}#issuecomment-{id}"),
        "pull_request_url": html,
    })
}

fn repository(at: &At) -> Value {
    let full = at.full_name();
    let open = |pr: bool| {
        at.repo
            .items
            .values()
            .filter(|e| matches!(e, Entry::Live(i) if i.state == "open" && i.is_pr() == pr))
            .count()
    };
    let mut owner = user(at.root, Some(&at.repo.owner));
    owner["visibility"] = json!("public");
    let mut v = json!({
        "id": at.repo.id,
        "owner": owner,
        "name": at.repo.name,
        "full_name": full,
        "description": "",
        "empty": false,
        "private": false,
        "fork": false,
        "template": false,
        "parent": null,
        "mirror": false,
        "size": 0,
        "language": "",
        "languages_url": format!("{}/languages", at.api_repo()),
        "html_url": format!("{}/{full}", at.root),
        "url": at.api_repo(),
        "link": "",
        "ssh_url": format!("git@127.0.0.1:{full}.git"),
        "clone_url": format!("{}/{full}.git", at.root),
        "original_url": "",
        "website": "",
        "stars_count": 0,
        "forks_count": 0,
        "watchers_count": 0,
        "open_issues_count": open(false),
        "open_pr_counter": open(true),
        "release_counter": 0,
        "default_branch": "main",
        "archived": false,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "archived_at": "1970-01-01T00:00:00Z",
        "permissions": {"admin": false, "push": false, "pull": true},
    });
    // In two parts: one `json!` this long passes the macro recursion limit.
    let settings = json!({
        "has_issues": true,
        "internal_tracker": {
            "enable_time_tracker": true,
            "allow_only_contributors_to_track_time": true,
            "enable_issue_dependencies": true,
        },
        "has_wiki": true,
        "has_pull_requests": true,
        "has_projects": true,
        "has_releases": true,
        "has_packages": true,
        "has_actions": true,
        "ignore_whitespace_conflicts": false,
        "allow_merge_commits": true,
        "allow_rebase": true,
        "allow_rebase_explicit": true,
        "allow_squash_merge": true,
        "allow_rebase_update": true,
        "default_delete_branch_after_merge": false,
        "default_merge_style": "merge",
        "default_allow_maintainer_edit": false,
        "avatar_url": "",
        "internal": false,
        "mirror_interval": "",
        "mirror_updated": "0001-01-01T00:00:00Z",
        "repo_transfer": null,
    });
    if let (Value::Object(v), Value::Object(more)) = (&mut v, settings) {
        v.extend(more);
    }
    v
}

const WEB_NOT_FOUND: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head><meta charset=\"utf-8\"><title>Page Not Found - Gitea: Git with a cup of tea</title></head>\n<body><div class=\"page-content status-page-404\"><p>The page you are trying to reach either <strong>does not exist</strong> or <strong>you are not authorized</strong> to view it.</p></div></body>\n</html>\n";
