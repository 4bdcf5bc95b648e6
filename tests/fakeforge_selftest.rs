//! Tests of the fake GitHub itself (the `fakeforge` crate,
//! `crates/fakeforge/`), spoken to with raw HTTP over std's `TcpStream`, so
//! that what is checked is the bytes a real client would get, not what
//! another client library makes of them. They live in the root package so
//! that `cargo test --locked` (which tests only the root package) runs them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fakeforge::{FakeForge, Fault, FaultRates, Item, default_created, iso, parse_iso};
use serde_json::Value;

const R: &str = "acme/widget";
const UA: &str = "patina-forge-selftest";
/// How long a read from the fake may block before the test calls it hung.
/// A guard, not a claim about speed: what the fake must be quick about is
/// checked as an order of events or as a lower bound.
const HANG_GUARD: Duration = Duration::from_secs(60);

// ---- a tiny raw client -------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .parse()
            .expect("numeric header")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `rel` → URL from the `link` header.
    fn links(&self) -> HashMap<String, String> {
        let Some(link) = self.header("link") else {
            return HashMap::new();
        };
        link.split(", ")
            .map(|part| {
                let (url, rel) = part.split_once("; rel=").expect("link part");
                let url = url.trim_start_matches('<').trim_end_matches('>');
                (rel.trim_matches('"').to_string(), url.to_string())
            })
            .collect()
    }
}

/// `http://127.0.0.1:PORT/path` → ("127.0.0.1:PORT", "/path").
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// A connection whose reads give up after `HANG_GUARD` (an error:
/// `WouldBlock` / `TimedOut`).
fn connect(host: &str) -> TcpStream {
    let stream = TcpStream::connect(host).expect("connect to the fake");
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Whether a read error is the `HANG_GUARD` timeout.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends raw bytes, reads until the server closes.
fn exchange(host: &str, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = connect(host);
    stream.write_all(request)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

/// Parses a whole answer and checks its framing: content-length must match.
fn parse(bytes: &[u8]) -> Resp {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).expect("UTF-8 head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().expect("status code");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let body = bytes[split + 4..].to_vec();
    let resp = Resp {
        status,
        headers,
        body,
    };
    match resp.header("content-length") {
        Some(len) => assert_eq!(len.parse::<usize>().unwrap(), resp.body.len(), "framing"),
        None => assert!(resp.body.is_empty(), "body without content-length"),
    }
    assert_eq!(resp.header("connection"), Some("close"));
    resp
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: api.github.com\r\nAccept: application/vnd.github+json\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// GET `path` (or a full URL) with a User-Agent and `headers`.
fn try_get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Resp> {
    let url = if path.starts_with("http://") {
        path.to_string()
    } else {
        format!("{base}{path}")
    };
    let (host, path) = split_url(&url);
    let mut all = vec![("User-Agent", UA)];
    all.extend_from_slice(headers);
    let bytes = exchange(&host, &request_bytes("GET", &path, &all))?;
    if bytes.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(parse(&bytes))
}

fn get_with(f: &FakeForge, path: &str, headers: &[(&str, &str)]) -> Resp {
    try_get_with(&f.url(), path, headers)
        .unwrap_or_else(|e| panic!("no answer to {path} (the fake hangs if timed out): {e}"))
}

fn get(f: &FakeForge, path: &str) -> Resp {
    get_with(f, path, &[])
}

fn host(f: &FakeForge) -> String {
    split_url(&f.url()).0
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn sleep_until_epoch(secs: u64) {
    while now_f64() < secs as f64 {
        thread::sleep(Duration::from_millis(20));
    }
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|i| i["number"].as_u64().expect("number"))
        .collect()
}

fn forge_with(items: impl IntoIterator<Item = Item>) -> FakeForge {
    let f = FakeForge::start();
    f.add_repo(R);
    for item in items {
        f.put(R, item);
    }
    f
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

// ---- shapes ------------------------------------------------------------------

#[test]
fn issue_has_github_shape_and_our_values() {
    let f = forge_with([Item::issue(7, "Crash on start")
        .labels(&["bug", "p1"])
        .author(Some("alice"))
        .closed()]);
    let r = get(&f, "/repos/acme/widget/issues/7");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let etag = r.header("etag").expect("etag");
    assert!(etag.starts_with("W/\"") && etag.len() == 64 + 4, "{etag}");
    let v = r.json();
    assert_eq!(v["number"], 7);
    assert_eq!(v["title"], "Crash on start");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["state_reason"], "completed");
    assert_eq!(v["user"]["login"], "alice");
    assert_eq!(v["labels"][0]["name"], "bug");
    assert_eq!(v["labels"][1]["name"], "p1");
    assert_eq!(v["created_at"], default_created(7));
    assert_eq!(v["closed_at"], default_created(7));
    assert_eq!(v["html_url"], "https://github.com/acme/widget/issues/7");
    assert_eq!(v["url"], format!("{}/repos/acme/widget/issues/7", f.url()));
    assert!(
        v.get("pull_request").is_none(),
        "an issue has no pull_request"
    );
    let example: Value =
        serde_json::from_str(include_str!("fixtures/issues__get.200.default.json")).unwrap();
    for key in keys(&example) {
        assert!(
            key == "pull_request" || v.get(&key).is_some(),
            "missing {key}"
        );
    }
    // Nothing of the example's repository is left in a URL.
    assert!(!String::from_utf8_lossy(&r.body).contains("Hello-World"));
    assert!(!String::from_utf8_lossy(&r.body).contains("api.github.com"));
}

#[test]
fn pr_shapes_on_issues_and_pulls_endpoints() {
    let f = forge_with([
        Item::pr(8, "Add x").merged("2024-05-01T10:00:00Z"),
        Item::pr(9, "Still open"),
        Item::pr(10, "Abandoned").closed(),
        Item::issue(11, "Just an issue"),
    ]);
    let merged = get(&f, "/repos/acme/widget/issues/8").json();
    assert_eq!(merged["state"], "closed");
    assert_eq!(merged["html_url"], "https://github.com/acme/widget/pull/8");
    let pr = &merged["pull_request"];
    assert_eq!(pr["merged_at"], "2024-05-01T10:00:00Z");
    assert_eq!(pr["url"], format!("{}/repos/acme/widget/pulls/8", f.url()));
    assert_eq!(pr["html_url"], "https://github.com/acme/widget/pull/8");
    assert_eq!(pr["diff_url"], "https://github.com/acme/widget/pull/8.diff");

    let open = get(&f, "/repos/acme/widget/issues/9").json();
    assert_eq!(open["state"], "open");
    assert!(open["pull_request"].is_object());
    assert!(open["pull_request"]["merged_at"].is_null());

    let r = get(&f, "/repos/acme/widget/pulls/8");
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some());
    let v = r.json();
    assert_eq!(v["number"], 8);
    assert_eq!(v["merged"], true);
    assert_eq!(v["merged_at"], "2024-05-01T10:00:00Z");
    assert_eq!(v["html_url"], "https://github.com/acme/widget/pull/8");
    assert_eq!(
        v["issue_url"],
        format!("{}/repos/acme/widget/issues/8", f.url())
    );
    assert_eq!(v["merge_commit_sha"].as_str().map(str::len), Some(40));
    assert_eq!(v["base"]["repo"]["full_name"], "acme/widget");
    let example: Value =
        serde_json::from_str(include_str!("fixtures/pulls__get.200.default.json")).unwrap();
    assert_eq!(keys(&v), keys(&example));

    let abandoned = get(&f, "/repos/acme/widget/pulls/10").json();
    assert_eq!(abandoned["state"], "closed");
    assert_eq!(abandoned["merged"], false);
    assert!(abandoned["merged_at"].is_null());
    assert!(abandoned["merge_commit_sha"].is_null());

    assert_eq!(get(&f, "/repos/acme/widget/pulls/11").status, 404);
    assert_eq!(get(&f, "/repos/acme/widget/pulls/12").status, 404);
}

#[test]
fn ghost_user_null_body_and_overrides() {
    let f = forge_with([
        Item::issue(1, "By a deleted account")
            .author(None)
            .body(None),
        Item::issue(2, "Odd shape")
            .without_field("body")
            .with_field("state_reason", Value::from("not_planned")),
    ]);
    let v = get(&f, "/repos/acme/widget/issues/1").json();
    // GitHub's REST API names a deleted account's user `ghost`.
    assert_eq!(v["user"]["login"], "ghost");
    assert_eq!(v["user"]["id"], 10137);
    assert_eq!(v["user"]["type"], "User");
    assert!(v.get("body").is_some_and(Value::is_null));
    let v = get(&f, "/repos/acme/widget/issues/2").json();
    assert!(v.get("body").is_none());
    assert_eq!(v["state_reason"], "not_planned");
}

/// A bot is `name[bot]` of type `Bot` in REST and a `Bot` named `name` in
/// GraphQL; a deleted account is REST's `ghost` and GraphQL's `null`.
#[test]
fn bots_and_deleted_accounts_as_each_api_names_them() {
    let f = forge_with([Item::pr(1, "Bump serde")
        .author(Some("dependabot[bot]"))
        .comment(
            Some("github-actions[bot]"),
            "Checks passed.",
            "2024-01-01T00:00:00Z",
        )
        .comment(None, "Gone.", "2024-01-01T01:00:00Z")]);
    let v = get(&f, "/repos/acme/widget/issues/1").json();
    assert_eq!(v["user"]["login"], "dependabot[bot]");
    assert_eq!(v["user"]["type"], "Bot");
    let answer = graphql(
        &f,
        "query($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { \
         issueOrPullRequest(number: 1) { ... on PullRequest { author { __typename login } \
         comments(first: 5) { nodes { author { __typename login } } } } } } }",
        serde_json::json!({"owner": "acme", "name": "widget"}),
    )
    .json();
    let pr = &answer["data"]["repository"]["issueOrPullRequest"];
    assert_eq!(
        pr["author"],
        serde_json::json!({"__typename": "Bot", "login": "dependabot"})
    );
    let comments = &pr["comments"]["nodes"];
    assert_eq!(comments[0]["author"]["login"], "github-actions");
    assert_eq!(comments[0]["author"]["__typename"], "Bot");
    assert!(comments[1]["author"].is_null());
}

// ---- outcomes: 404, 410, 301 ------------------------------------------------------

#[test]
fn not_found_gone_and_moved() {
    let f = forge_with((1..=4).map(|n| Item::issue(n, "x")));
    let id = f.repo_id(R).unwrap();

    let r = get(&f, "/repos/acme/widget/issues/999");
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["message"], "Not Found");
    assert_eq!(v["status"], "404");
    assert!(v["documentation_url"].is_string());
    assert_eq!(get(&f, "/repos/nobody/nothing/issues/1").status, 404);
    assert_eq!(get(&f, "/repos/acme/widget/issues/abc").status, 404);
    assert_eq!(get(&f, "/no/such/endpoint").status, 404);
    assert_eq!(get(&f, "/no/such/endpoint").json()["message"], "Not Found");
    // Owner and name are case-insensitive, as on GitHub.
    assert_eq!(get(&f, "/repos/ACME/Widget/issues/1").status, 200);

    f.delete(R, 2);
    let r = get(&f, "/repos/acme/widget/issues/2");
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["message"], "Issue was deleted");
    assert!(f.get(R, 2).is_none());

    f.transfer(R, 3, "other/place", 40);
    let to_id = f.repo_id("other/place").unwrap();
    let r = get(&f, "/repos/acme/widget/issues/3");
    assert_eq!(r.status, 301);
    let location = format!("{}/repositories/{to_id}/issues/40", f.url());
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.json()["url"], location.as_str());
    let moved = get(&f, &location);
    assert_eq!(moved.status, 200);
    let v = moved.json();
    assert_eq!(v["number"], 40);
    assert_eq!(v["html_url"], "https://github.com/other/place/issues/40");
    assert_eq!(v["url"], format!("{}/repos/other/place/issues/40", f.url()));
    assert!(f.get(R, 3).is_none());
    assert_eq!(f.get("other/place", 40).unwrap().title, "x");

    // The numeric form answers the same as the named one.
    let named = get(&f, "/repos/acme/widget/issues/1");
    let numeric = get(&f, &format!("/repositories/{id}/issues/1"));
    assert_eq!(numeric.status, 200);
    assert_eq!(named.body, numeric.body);
    assert_eq!(get(&f, "/repositories/999999/issues/1").status, 404);

    // Deleted and transferred numbers are not listed.
    let listed = numbers(&get(&f, "/repos/acme/widget/issues?state=all").json());
    assert_eq!(listed, vec![4, 1]);
}

#[test]
fn repository_object() {
    let f = forge_with([Item::issue(1, "open"), Item::issue(2, "shut").closed()]);
    let r = get(&f, "/repos/acme/widget");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["id"], f.repo_id(R).unwrap());
    assert_eq!(v["name"], "widget");
    assert_eq!(v["full_name"], "acme/widget");
    assert_eq!(v["owner"]["login"], "acme");
    assert_eq!(v["html_url"], "https://github.com/acme/widget");
    assert_eq!(v["private"], false);
    assert_eq!(v["open_issues_count"], 1);
}

// ---- lists ---------------------------------------------------------------------

#[test]
fn list_pages_and_github_link_header() {
    let f = forge_with((1..=250).map(|n| {
        if n % 3 == 0 {
            Item::pr(n, "pr")
        } else {
            Item::issue(n, "issue")
        }
    }));
    let id = f.repo_id(R).unwrap();
    let b = format!(
        "{}/repositories/{id}/issues?state=all&per_page=100",
        f.url()
    );

    let p1 = get(&f, "/repos/acme/widget/issues?state=all&per_page=100");
    assert_eq!(p1.status, 200);
    let n1 = numbers(&p1.json());
    assert_eq!(n1.len(), 100);
    assert_eq!((n1[0], n1[99]), (250, 151), "newest first");
    assert_eq!(
        p1.header("link"),
        Some(format!("<{b}&page=2>; rel=\"next\", <{b}&page=3>; rel=\"last\"").as_str())
    );
    assert!(
        p1.json()[0].get("pull_request").is_none(),
        "250 is an issue"
    );
    assert!(p1.json()[1]["pull_request"].is_object(), "249 is a PR");

    let next = p1.links()["next"].clone();
    let p2 = get(&f, &next);
    assert_eq!(p2.status, 200);
    assert_eq!(numbers(&p2.json()), (51..=150).rev().collect::<Vec<_>>());
    assert_eq!(
        p2.header("link"),
        Some(
            format!(
                "<{b}&page=1>; rel=\"prev\", <{b}&page=3>; rel=\"next\", \
                 <{b}&page=3>; rel=\"last\", <{b}&page=1>; rel=\"first\""
            )
            .as_str()
        )
    );

    let p3 = get(&f, &p2.links()["next"]);
    assert_eq!(numbers(&p3.json()), (1..=50).rev().collect::<Vec<_>>());
    assert_eq!(
        p3.header("link"),
        Some(format!("<{b}&page=2>; rel=\"prev\", <{b}&page=1>; rel=\"first\"").as_str())
    );
    assert!(!p3.links().contains_key("next"));

    let p4 = get(
        &f,
        "/repos/acme/widget/issues?state=all&per_page=100&page=4",
    );
    assert_eq!(p4.json(), Value::Array(vec![]));

    // Following `next` visits every item once, in three requests.
    f.clear_log();
    let mut seen = Vec::new();
    let mut url = format!(
        "{}/repos/acme/widget/issues?state=all&per_page=100",
        f.url()
    );
    loop {
        let page = get(&f, &url);
        seen.extend(numbers(&page.json()));
        match page.links().get("next") {
            Some(next) => url = next.clone(),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=250).collect::<Vec<_>>());
    assert_eq!(f.requests().len(), 3);

    let asc = numbers(&get(&f, "/repos/acme/widget/issues?state=all&direction=asc").json());
    assert_eq!(asc, (1..=30).collect::<Vec<_>>(), "per_page defaults to 30");
    let clamped = get(&f, "/repos/acme/widget/issues?state=all&per_page=500");
    assert_eq!(
        numbers(&clamped.json()).len(),
        100,
        "per_page is capped at 100"
    );
}

#[test]
fn list_state_since_and_sort() {
    let f = forge_with((1..=5).map(|n| {
        let item = Item::issue(n, "x").updated(&format!("2024-01-0{}T00:00:00Z", 6 - n));
        if n == 2 { item.closed() } else { item }
    }));
    let list = |q: &str| get(&f, &format!("/repos/acme/widget/issues?{q}"));
    assert_eq!(
        numbers(&list("").json()),
        vec![5, 4, 3, 1],
        "state=open by default"
    );
    assert_eq!(numbers(&list("state=closed").json()), vec![2]);
    assert_eq!(numbers(&list("state=all").json()), vec![5, 4, 3, 2, 1]);
    // Item n was updated on 2024-01-(6-n): since keeps updated_at >= since.
    let since = "state=all&since=2024-01-03T00:00:00Z";
    assert_eq!(numbers(&list(since).json()), vec![3, 2, 1]);
    let encoded = "state=all&since=2024-01-03T00%3A00%3A00Z";
    assert_eq!(numbers(&list(encoded).json()), vec![3, 2, 1]);
    let by_updated = "state=all&sort=updated&direction=asc";
    assert_eq!(numbers(&list(by_updated).json()), vec![5, 4, 3, 2, 1]);
    for bad in [
        "since=yesterday",
        "state=bogus",
        "sort=size",
        "direction=up",
    ] {
        let r = list(bad);
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.json()["message"], "Validation Failed");
    }
    // A page that fits is sent without a Link header.
    assert!(list("state=all").header("link").is_none());
}

// ---- ETags ---------------------------------------------------------------------

#[test]
fn etag_gives_304_that_is_not_counted() {
    let f = forge_with([Item::issue(1, "a"), Item::issue(2, "b")]);
    let r1 = get(&f, "/repos/acme/widget/issues/1");
    let etag = r1.header("etag").unwrap().to_string();
    let remaining = r1.num("x-ratelimit-remaining");

    let r2 = get_with(
        &f,
        "/repos/acme/widget/issues/1",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r2.status, 304);
    assert!(r2.body.is_empty());
    assert_eq!(r2.header("etag"), Some(etag.as_str()));
    assert_eq!(r2.num("x-ratelimit-remaining"), remaining, "304 is free");
    // The strong form of the same tag matches too (weak comparison).
    let strong = etag.trim_start_matches("W/");
    let r3 = get_with(
        &f,
        "/repos/acme/widget/issues/1",
        &[("If-None-Match", strong)],
    );
    assert_eq!(r3.status, 304);
    let log = f.requests();
    assert_eq!(
        log.iter()
            .map(|l| (l.status, l.counted))
            .collect::<Vec<_>>(),
        vec![(200, true), (304, false), (304, false)]
    );

    // Replacing the item bumps updated_at to now, so the ETag changes and a
    // `since` from before the edit lists it.
    let before = iso(now_f64() as i64 - 5);
    f.put(R, Item::issue(1, "a"));
    let bumped = f.get(R, 1).unwrap().updated_at;
    assert!(parse_iso(&bumped) > parse_iso(&default_created(1)));
    let r4 = get_with(
        &f,
        "/repos/acme/widget/issues/1",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r4.status, 200);
    assert_ne!(r4.header("etag"), Some(etag.as_str()));
    assert_eq!(r4.json()["updated_at"], bumped.as_str());
    let since = get(&f, &format!("/repos/acme/widget/issues?since={before}"));
    assert_eq!(numbers(&since.json()), vec![1]);

    // List pages have ETags too.
    let page = get(&f, "/repos/acme/widget/issues?state=all");
    let tag = page.header("etag").unwrap().to_string();
    let again = get_with(
        &f,
        "/repos/acme/widget/issues?state=all",
        &[("If-None-Match", &tag)],
    );
    assert_eq!(again.status, 304);
}

// ---- the primary rate limit -------------------------------------------------------

#[test]
fn rate_limit_headers_and_endpoint() {
    let f = forge_with([Item::issue(1, "a")]);
    let start = now_f64() as u64;
    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.num("x-ratelimit-limit"), 5000);
    assert_eq!(r.num("x-ratelimit-remaining"), 4999);
    assert_eq!(r.num("x-ratelimit-used"), 1);
    let reset = r.num("x-ratelimit-reset");
    assert!((start + 3599..=start + 3601).contains(&reset), "{reset}");
    assert_eq!(r.header("x-ratelimit-resource"), Some("core"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));

    let rl = get(&f, "/rate_limit");
    assert_eq!(rl.status, 200);
    assert_eq!(rl.num("x-ratelimit-remaining"), 4999, "/rate_limit is free");
    let v = rl.json();
    assert_eq!(v["resources"]["core"]["remaining"], 4999);
    assert_eq!(v["resources"]["core"]["used"], 1);
    assert_eq!(v["resources"]["core"]["reset"], reset);
    assert_eq!(v["rate"]["limit"], 5000);
    assert!(v["resources"]["graphql"].is_object(), "the example's shape");
    assert!(!f.requests()[1].counted);
    assert_eq!(f.rate_limit(), (5000, 4999, reset));
}

#[test]
fn rate_limit_counts_down_refuses_at_zero_then_refills() {
    let f = forge_with([Item::issue(1, "a")]);
    let reset = now_f64() as u64 + 2;
    f.set_rate_limit(10, 2, reset);
    let path = "/repos/acme/widget/issues/1";
    assert_eq!(get(&f, path).num("x-ratelimit-remaining"), 1);
    assert_eq!(get(&f, path).num("x-ratelimit-remaining"), 0);

    // A queued fault waits: a refused request consumes none.
    f.push_fault(Fault::Status(500));
    let refused = get(&f, path);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.num("x-ratelimit-remaining"), 0);
    assert_eq!(refused.num("x-ratelimit-reset"), reset);
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("API rate limit exceeded for "),
        "{message}"
    );
    assert!(!f.requests().last().unwrap().counted);
    // /rate_limit still answers while limited.
    let rl = get(&f, "/rate_limit");
    assert_eq!(rl.status, 200);
    assert_eq!(rl.json()["resources"]["core"]["remaining"], 0);

    sleep_until_epoch(reset);
    let after = get(&f, path);
    assert_eq!(after.status, 500, "the queued fault comes after the wait");
    assert_eq!(after.num("x-ratelimit-remaining"), 9);
    let ok = get(&f, path);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.num("x-ratelimit-remaining"), 8);
    assert!(ok.num("x-ratelimit-reset") >= reset + 3599);
}

// ---- faults --------------------------------------------------------------------

#[test]
fn status_faults_come_in_order_and_skip_rate_limit() {
    let f = forge_with([Item::issue(1, "a"), Item::issue(2, "b")]);
    let path = "/repos/acme/widget/issues/1";
    for code in [500, 502, 503] {
        f.push_fault(Fault::Status(code));
    }
    assert_eq!(
        get(&f, "/rate_limit").status,
        200,
        "/rate_limit takes no fault"
    );
    for code in [500, 502, 503] {
        let r = get(&f, path);
        assert_eq!(r.status, code);
        assert!(r.json()["message"].is_string());
        assert!(r.header("x-ratelimit-remaining").is_some());
    }
    assert_eq!(get(&f, path).status, 200);
    assert!(f.requests().iter().skip(1).all(|l| l.counted));

    f.push_fault_on("/issues/2", Fault::Status(503));
    assert_eq!(get(&f, path).status, 200);
    assert_eq!(get(&f, "/repos/acme/widget/issues/2").status, 503);
    f.push_fault_on("/rate_limit", Fault::Status(502));
    assert_eq!(get(&f, "/rate_limit").status, 502);
}

#[test]
fn reset_fault_resets_the_connection() {
    let f = forge_with([Item::issue(1, "a")]);
    f.push_fault(Fault::Reset);
    let request = request_bytes("GET", "/repos/acme/widget/issues/1", &[("User-Agent", UA)]);
    let result = exchange(&host(&f), &request);
    match result {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        Ok(bytes) => panic!("expected a reset, got {} bytes", bytes.len()),
    }
    let log = f.requests();
    assert_eq!((log[0].status, log[0].counted), (0, false));
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);
}

#[test]
fn hang_fault_says_nothing_then_closes() {
    let f = forge_with([Item::issue(1, "a")]);
    f.push_fault(Fault::Hang(Duration::from_millis(500)));
    let started = Instant::now();
    let mut stream = connect(&host(&f));
    stream
        .write_all(&request_bytes(
            "GET",
            "/repos/acme/widget/issues/1",
            &[("User-Agent", UA)],
        ))
        .unwrap();
    // A client with a shorter timeout gives up first …
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).expect_err("nothing to read yet");
    assert!(matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    // … and one that waits sees the connection close without a byte, no
    // sooner than the hang.
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the fake closes the connection after the hang (it hangs for good if timed out)");
    assert!(rest.is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert_eq!(f.requests()[0].status, 0);
}

#[test]
fn malformed_html_and_wrong_types_faults() {
    let f = forge_with([Item::issue(5, "five"), Item::issue(6, "six")]);
    let path = "/repos/acme/widget/issues/5";
    let good = get(&f, path);

    f.push_fault(Fault::Malformed);
    let r = get(&f, path);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert!(good.body.starts_with(&r.body) && r.body.len() < good.body.len());

    f.push_fault(Fault::Html);
    let r = get(&f, path);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&r.body).contains("<html>"));

    f.push_fault(Fault::WrongTypes);
    let v = get(&f, path).json();
    assert_eq!(v["number"], "5");
    assert!(v["title"].is_number());

    f.push_fault(Fault::WrongTypes);
    let list = get(&f, "/repos/acme/widget/issues").json();
    for item in list.as_array().unwrap() {
        assert!(item["number"].is_string() && item["title"].is_number());
    }
    assert!(f.requests().iter().all(|l| l.counted));
}

#[test]
fn secondary_limit_fault_is_enforced_for_retry_after() {
    let f = forge_with([Item::issue(1, "a")]);
    let path = "/repos/acme/widget/issues/1";
    f.push_fault(Fault::SecondaryLimit {
        retry_after: Some(1),
    });
    let r = get(&f, path);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.num("x-ratelimit-remaining") > 0);
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("You have exceeded a secondary rate limit"));
    let waited_from = Instant::now();
    // Retrying early is refused again, as GitHub does.
    let early = get(&f, path);
    assert_eq!(early.status, 403);
    assert_eq!(early.header("retry-after"), Some("1"));
    thread::sleep(Duration::from_secs(1).saturating_sub(waited_from.elapsed()));
    assert_eq!(get(&f, path).status, 200);
    let log = f.requests();
    assert_eq!(
        log.iter()
            .map(|l| (l.status, l.counted))
            .collect::<Vec<_>>(),
        vec![(403, false), (403, false), (200, true)]
    );

    f.push_fault(Fault::SecondaryLimit { retry_after: None });
    let r = get(&f, path);
    assert_eq!(r.status, 403);
    assert!(r.header("retry-after").is_none());
    assert_eq!(
        get(&f, path).status,
        200,
        "no retry-after, nothing enforced"
    );
}

#[test]
fn too_many_fault_and_clear_faults() {
    let f = forge_with([Item::issue(1, "a")]);
    let path = "/repos/acme/widget/issues/1";
    f.push_fault(Fault::TooMany {
        retry_after: Some(30),
    });
    f.push_fault(Fault::Status(500));
    let r = get(&f, path);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );
    assert_eq!(get(&f, path).status, 429, "still waiting");
    f.clear_faults();
    assert_eq!(
        get(&f, path).status,
        200,
        "the wait and the queued 500 are gone"
    );
}

#[test]
fn primary_limit_fault_empties_the_budget_until_reset() {
    let f = forge_with([Item::issue(1, "a")]);
    let path = "/repos/acme/widget/issues/1";
    f.push_fault(Fault::PrimaryLimit { reset_in_secs: 1 });
    let r = get(&f, path);
    assert_eq!(r.status, 403);
    assert_eq!(r.num("x-ratelimit-remaining"), 0);
    let reset = r.num("x-ratelimit-reset");
    let now = now_f64() as u64;
    assert!((now..=now + 1).contains(&reset), "reset {reset}, now {now}");
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("API rate limit exceeded for 127.0.0.1"),
        "{message}"
    );
    let with_token = get_with(&f, path, &[("Authorization", "Bearer abc")]);
    assert_eq!(with_token.status, 403, "still empty");
    let message = with_token.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("API rate limit exceeded for user ID"),
        "{message}"
    );
    sleep_until_epoch(reset);
    let ok = get(&f, path);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.num("x-ratelimit-remaining"), 4999);
}

#[test]
fn huge_fault_streams_until_the_client_hangs_up() {
    let f = forge_with([Item::issue(1, "a")]);
    f.push_fault(Fault::Huge);
    let mut stream = connect(&host(&f));
    stream
        .write_all(&request_bytes(
            "GET",
            "/repos/acme/widget/issues/1",
            &[("User-Agent", UA)],
        ))
        .unwrap();
    // It keeps streaming (2 MiB is past any socket buffer); how fast is for
    // the benchmarks.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < 2 * 1024 * 1024 {
        let n = stream
            .read(&mut buf)
            .expect("more of the body (the stream stalls if timed out)");
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got[..2048]).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(head.contains("content-length: 1073741824"), "{head}");
    assert!(body.starts_with("{\"number\":1,\"title\":\"xxx"));
    drop(stream);
    // The fake notices the hang-up and goes on serving.
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);
    assert_eq!(f.requests()[0].status, 200);
}

#[test]
fn redirect_off_host_shows_whether_credentials_followed() {
    let f = forge_with([Item::issue(1, "a")]);
    let off = f.off_host_url().expect("a listener on 127.0.0.2");
    assert!(off.starts_with("http://127.0.0.2:"));
    let path = "/repos/acme/widget/issues/1";
    f.push_fault(Fault::RedirectOffHost);
    f.push_fault(Fault::RedirectOffHost);
    let r = get_with(&f, path, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(r.status, 301);
    let location = r.header("location").unwrap().to_string();
    assert_eq!(location, format!("{off}{path}"));

    // A careless client follows with the token, a careful one without.
    let leaked = get_with(&f, &location, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(leaked.status, 200);
    assert_eq!(leaked.json()["number"], 1);
    let r = get(&f, path);
    assert_eq!(r.status, 301);
    let clean = get(&f, r.header("location").unwrap());
    assert_eq!(clean.status, 200);

    let off_log: Vec<_> = f.requests().into_iter().filter(|l| l.off_host).collect();
    assert_eq!(off_log.len(), 2);
    assert_eq!(off_log[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(off_log[1].header("authorization"), None);
    assert!(off_log.iter().all(|l| !l.counted && l.path == path));
}

/// Statuses of `n` requests; 0 where the connection was reset.
fn statuses(f: &FakeForge, n: usize) -> Vec<u16> {
    (0..n)
        .map(
            |_| match try_get_with(&f.url(), "/repos/acme/widget/issues/1", &[]) {
                Ok(r) => r.status,
                Err(_) => 0,
            },
        )
        .collect()
}

#[test]
fn random_faults_follow_the_seed() {
    let rates = FaultRates {
        server_error: 0.2,
        reset: 0.1,
        malformed: 0.1,
        secondary_every: Some(7),
        secondary_retry_after: None,
        ..FaultRates::default()
    };
    let run = |seed| {
        let f = forge_with([Item::issue(1, "a")]);
        f.set_fault_rate(seed, rates.clone());
        let got = statuses(&f, 42);
        let logged: Vec<u16> = f.requests().iter().map(|l| l.status).collect();
        assert_eq!(got, logged);
        got
    };
    let a = run(42);
    assert_eq!(a, run(42), "same seed, same faults");
    assert_ne!(a, run(43), "another seed, other faults");
    for i in (6..42).step_by(7) {
        assert_eq!(a[i], 403, "every 7th request is a secondary limit: {a:?}");
    }
    let errors = a.iter().filter(|s| [500, 502, 503].contains(s)).count();
    let resets = a.iter().filter(|s| **s == 0).count();
    assert!((2..=18).contains(&errors), "{a:?}");
    assert!(resets >= 1, "{a:?}");
    assert!(a.iter().filter(|s| **s == 200).count() >= 10, "{a:?}");
}

#[test]
fn slow_faults_and_latency_delay_answers() {
    let f = forge_with([Item::issue(1, "a")]);
    let path = "/repos/acme/widget/issues/1";
    let timed = |f: &FakeForge| {
        let started = Instant::now();
        assert_eq!(get(f, path).status, 200);
        started.elapsed()
    };
    // Lower bounds: the delay is applied. (That an answer without one is
    // quick is a speed claim: the benchmarks measure it.)
    f.set_latency(Duration::from_millis(200));
    let t = timed(&f);
    assert!(t >= Duration::from_millis(200), "{t:?}");
    // Set back to zero, it is gone: an hour's latency would outlast the
    // read's hang guard.
    f.set_latency(Duration::from_secs(3_600));
    f.set_latency(Duration::ZERO);
    timed(&f);
    f.set_fault_rate(
        1,
        FaultRates {
            slow: Some((1.0, Duration::from_millis(150))),
            ..FaultRates::default()
        },
    );
    let t = timed(&f);
    assert!(t >= Duration::from_millis(150), "{t:?}");
}

// ---- credentials and the front door ------------------------------------------------

#[test]
fn require_token_accepts_bearer_and_token_forms() {
    let f = forge_with([Item::issue(1, "a")]);
    f.require_token("s3cret");
    let path = "/repos/acme/widget/issues/1";
    let r = get(&f, path);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Bad credentials");
    assert_eq!(get(&f, "/rate_limit").status, 401);
    assert_eq!(
        get_with(&f, path, &[("Authorization", "Bearer s3cret")]).status,
        200
    );
    assert_eq!(
        get_with(&f, path, &[("Authorization", "token s3cret")]).status,
        200
    );
    assert_eq!(
        get_with(&f, path, &[("Authorization", "Bearer wrong")]).status,
        401
    );
    assert_eq!(
        get_with(&f, path, &[("Authorization", "s3cret")]).status,
        401
    );
    let counted: Vec<bool> = f.requests().iter().map(|l| l.counted).collect();
    assert_eq!(counted, vec![false, false, true, true, false, false]);
}

#[test]
fn missing_user_agent_is_refused_and_logged() {
    let f = forge_with([Item::issue(1, "a")]);
    let bytes = exchange(
        &host(&f),
        &request_bytes("GET", "/repos/acme/widget/issues/1", &[]),
    )
    .unwrap();
    let r = parse(&bytes);
    assert_eq!(r.status, 403);
    assert!(r.json()["message"].as_str().unwrap().contains("User-Agent"));
    let empty = request_bytes("GET", "/repos/acme/widget/issues/1", &[("User-Agent", "")]);
    assert_eq!(parse(&exchange(&host(&f), &empty).unwrap()).status, 403);
    let log = f.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].status, log[0].counted), (403, false));
    assert_eq!(log[0].header("user-agent"), None);
}

// ---- the request log -----------------------------------------------------------

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn request_log_records_everything_in_order() {
    let f = forge_with([Item::issue(1, "a")]);
    let sink = Shared::default();
    f.log_to(Box::new(sink.clone()));
    let before = Instant::now();
    get_with(
        &f,
        "/repos/acme/widget/issues/1",
        &[("X-Custom-Thing", "Yes")],
    );
    thread::sleep(Duration::from_millis(30));
    get(&f, "/repos/acme/widget/issues?state=all&per_page=100");
    get(&f, "/repos/acme/widget/issues/2");
    let after = Instant::now();

    let log = f.requests();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|l| l.method == "GET" && !l.off_host));
    assert_eq!(log[0].path, "/repos/acme/widget/issues/1");
    assert_eq!(
        log[1].path,
        "/repos/acme/widget/issues?state=all&per_page=100"
    );
    assert_eq!(log[0].header("x-custom-thing"), Some("Yes"));
    assert_eq!(log[0].header("X-Custom-Thing"), Some("Yes"));
    assert!(
        log[0]
            .headers
            .iter()
            .all(|(n, _)| *n == n.to_ascii_lowercase())
    );
    assert_eq!(log[0].header("user-agent"), Some(UA));
    assert_eq!(
        log.iter().map(|l| l.status).collect::<Vec<_>>(),
        vec![200, 200, 404]
    );
    assert!(before <= log[0].at && log[2].at <= after);
    assert!(log[1].at.duration_since(log[0].at) >= Duration::from_millis(30));

    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 3 && l[0].parse::<u64>().is_ok())
    );
    assert_eq!(lines[2][1..], ["404", "/repos/acme/widget/issues/2"]);

    f.clear_log();
    assert!(f.requests().is_empty());
}

// ---- HTTP handling ---------------------------------------------------------------

#[test]
fn connections_are_served_concurrently() {
    let f = forge_with([Item::issue(1, "a")]);
    // A half-sent request does not block another connection.
    let mut slow = connect(&host(&f));
    slow.write_all(b"GET /repos/acme/widget/issues/1 HTTP/1.1\r\nHost: x\r\nUser-")
        .unwrap();
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);
    thread::sleep(Duration::from_millis(20));
    slow.write_all(format!("Agent: {UA}\r\n\r\n").as_bytes())
        .unwrap();
    let mut bytes = Vec::new();
    slow.read_to_end(&mut bytes).unwrap();
    assert_eq!(parse(&bytes).status, 200);

    // A slow answer does not hold up another, slow or not: the second is
    // answered while the first is still in its delay (an hour: it ends only
    // when the fake is dropped).
    f.clear_log();
    f.set_latency(Duration::from_secs(3_600));
    let url = f.url();
    let first = thread::spawn(move || try_get_with(&url, "/repos/acme/widget/issues/1", &[]));
    while f.requests().is_empty() {
        thread::sleep(Duration::from_millis(5));
    }
    f.set_latency(Duration::from_millis(300));
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);
    assert!(
        !first.is_finished(),
        "the first answer came before its delay"
    );
    drop(f);
    let cut = first.join().unwrap();
    assert!(
        cut.as_ref().is_err_and(|e| !timed_out(e)),
        "the first connection was not closed by the drop: {cut:?}"
    );
}

#[test]
fn odd_requests_get_sensible_answers() {
    let f = forge_with([Item::issue(1, "a")]);
    let h = host(&f);
    let big = "x".repeat(70 * 1024);
    let req = request_bytes(
        "GET",
        "/repos/acme/widget/issues/1",
        &[("User-Agent", UA), ("X-Big", &big)],
    );
    assert_eq!(parse(&exchange(&h, &req).unwrap()).status, 431);

    let post = b"POST /repos/acme/widget/issues HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"title\":\"new\"}";
    let r = parse(&exchange(&h, post).unwrap());
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Not Found");

    let absolute = format!("{}/repos/acme/widget/issues/1", f.url());
    let req = request_bytes("GET", &absolute, &[("User-Agent", UA)]);
    assert_eq!(parse(&exchange(&h, &req).unwrap()).status, 200);

    assert_eq!(parse(&exchange(&h, b"HELLO\r\n\r\n").unwrap()).status, 400);

    let head = request_bytes("HEAD", "/repos/acme/widget/issues/1", &[("User-Agent", UA)]);
    let bytes = exchange(&h, &head).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK") && text.ends_with("\r\n\r\n"));
    assert!(text.contains("content-length: "));

    let log = f.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[1].method, "POST");
}

/// Threads of the fake on `port` that are alive (they are named `ff{port}-…`).
fn fake_threads(port: &str) -> usize {
    let prefix = format!("ff{port}-");
    std::fs::read_dir("/proc/self/task")
        .expect("Linux /proc")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(&prefix))
        .count()
}

#[test]
fn drop_stops_every_thread_and_the_listener() {
    let f = forge_with([Item::issue(1, "a")]);
    let h = host(&f);
    let port = h.rsplit(':').next().unwrap().to_string();
    let req = request_bytes("GET", "/repos/acme/widget/issues/1", &[("User-Agent", UA)]);
    // One fault at a time, each taken before the next request goes out:
    // queued faults go to requests in the order they are decided.
    // A hang of an hour: the drop must end it, not wait it out.
    f.push_fault(Fault::Hang(Duration::from_secs(3_600)));
    let hung = {
        let (h, req) = (h.clone(), req.clone());
        thread::spawn(move || exchange(&h, &req))
    };
    while f.requests().is_empty() {
        thread::sleep(Duration::from_millis(5));
    }
    // A Huge answer to a client that reads nothing: the fake is stuck writing.
    f.push_fault(Fault::Huge);
    let mut stuck = connect(&h);
    stuck.write_all(&req).unwrap();
    while f.requests().len() < 2 {
        thread::sleep(Duration::from_millis(5));
    }
    // A connection that sends nothing, and one that sends half a request.
    let _idle = connect(&h);
    let mut half = connect(&h);
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);
    let deadline = Instant::now() + HANG_GUARD;
    // Acceptors for both hosts, plus hung, stuck, idle and half (the get's
    // thread may take a moment to see the client's close and end).
    while fake_threads(&port) != 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fake_threads(&port), 6);

    // The drop returns (within the hang guard: a drop that waited for the
    // hour-long hang fails here as hung), having joined every thread.
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        drop(f);
        let _ = dropped_tx.send(());
    });
    dropped_rx
        .recv_timeout(HANG_GUARD)
        .expect("dropping the fake hangs");
    assert_eq!(fake_threads(&port), 0, "every thread joined");
    // The hung request was cut off by the drop: closed without a byte, not
    // timed out by this side.
    let got = hung.join().unwrap();
    assert!(
        got.as_ref().is_ok_and(Vec::is_empty),
        "the hung connection was not closed by the drop: {got:?}"
    );
    let refused = TcpStream::connect(&h).expect_err("the listener is closed");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let _ = stuck.shutdown(Shutdown::Both);
}

// ---- dates ---------------------------------------------------------------------

#[test]
fn timestamps_round_trip() {
    assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(iso(951_825_600), "2000-02-29T12:00:00Z");
    for secs in (0..4_102_444_800_i64).step_by(7_777_777) {
        assert_eq!(parse_iso(&iso(secs)), Some(secs));
    }
    let utc = parse_iso("2024-01-01T00:00:00Z");
    assert_eq!(parse_iso("2024-01-01T02:00:00+02:00"), utc);
    assert_eq!(parse_iso("2023-12-31T19:00:00-0500"), utc);
    assert_eq!(parse_iso("2024-01-01T00:00:00.123Z"), utc);
    assert_eq!(parse_iso("2024-01-01"), utc);
    for bad in [
        "",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00Q",
    ] {
        assert_eq!(parse_iso(bad), None, "{bad}");
    }
    assert_eq!(default_created(1), "2020-01-01T00:10:00Z");
}

// ---- GraphQL -------------------------------------------------------------------

const TOKEN: &str = "Bearer t0ken";

/// POST `body` to `path` with a User-Agent, a JSON content type, its length
/// and `headers`.
fn try_post(f: &FakeForge, path: &str, body: &[u8], headers: &[(&str, &str)]) -> io::Result<Resp> {
    let len = body.len().to_string();
    let mut all = vec![
        ("User-Agent", UA),
        ("Content-Type", "application/json"),
        ("Content-Length", len.as_str()),
    ];
    all.extend_from_slice(headers);
    let mut bytes = request_bytes("POST", path, &all);
    bytes.extend_from_slice(body);
    let answer = exchange(&host(f), &bytes)?;
    if answer.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(parse(&answer))
}

/// POST a GraphQL query with variables and a token.
fn graphql(f: &FakeForge, query: &str, variables: Value) -> Resp {
    let body = serde_json::json!({"query": query, "variables": variables});
    try_post(
        f,
        "/graphql",
        body.to_string().as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap_or_else(|e| panic!("no answer to the query (the fake hangs if timed out): {e}"))
}

/// The client's batch query for `numbers`, written out by hand: the fake is
/// checked against the query's shape, not against the client's code.
fn batch_query(numbers: &[u64]) -> String {
    let mut q = String::from(
        "query($owner: String!, $name: String!) {\n  rateLimit { cost remaining resetAt limit }\n  repository(owner: $owner, name: $name) {\n",
    );
    for n in numbers {
        q.push_str(&format!(
            "    n{n}: issueOrPullRequest(number: {n}) {{ ...item }}\n"
        ));
    }
    q.push_str(BATCH_FRAGMENT);
    q
}

const BATCH_FRAGMENT: &str = "  }
}
fragment item on IssueOrPullRequest {
  __typename
  ... on Issue {
    number title body url createdAt updatedAt
    issueState: state
    author { login }
    labels(first: 50) { nodes { name } }
    comments(first: 20) { totalCount nodes { id author { login } body createdAt } }
  }
  ... on PullRequest {
    number title body url createdAt updatedAt
    prState: state
    merged mergedAt
    author { login }
    labels(first: 50) { nodes { name } }
    comments(first: 20) { totalCount nodes { id author { login } body createdAt } }
    reviews(states: APPROVED) { totalCount }
    closingIssuesReferences(first: 25) { nodes { number repository { nameWithOwner } } }
  }
}
";

fn acme() -> Value {
    serde_json::json!({"owner": "acme", "name": "widget"})
}

fn rate_of(r: &Resp) -> (u64, u64, u64, u64) {
    assert_eq!(r.header("x-ratelimit-resource"), Some("graphql"));
    (
        r.num("x-ratelimit-limit"),
        r.num("x-ratelimit-remaining"),
        r.num("x-ratelimit-used"),
        r.num("x-ratelimit-reset"),
    )
}

#[test]
fn graphql_batch_query_answers_a_mixed_batch() {
    let f = forge_with([
        Item::issue(1, "Crash")
            .labels(&["bug", "p1"])
            .author(Some("alice"))
            .comment(Some("bob"), "Same here", "2024-02-01T10:00:00Z")
            .comment(None, "From a deleted account", "2024-02-02T10:00:00Z")
            .closed(),
        Item::pr(2, "Open PR")
            .author(Some("bob"))
            .review(Some("carol"), "APPROVED")
            .review(Some("dave"), "CHANGES_REQUESTED")
            .review(None, "APPROVED")
            .review(Some("erin"), "COMMENTED"),
        Item::pr(3, "Abandoned").closed(),
        Item::pr(4, "Fix crash")
            .merged("2024-05-01T10:00:00Z")
            .closes(&[1])
            .closes_in("other/lib", 9),
        Item::issue(7, "Orphan").author(None).body(None),
        Item::issue(8, "Moved"),
    ]);
    f.delete(R, 6);
    f.transfer(R, 8, "acme/elsewhere", 1);
    let query = batch_query(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let r = graphql(&f, &query, acme());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let (limit, remaining, used, reset) = rate_of(&r);
    assert_eq!((limit, remaining, used), (5000, 4999, 1));
    let v = r.json();
    assert_eq!(
        v["data"]["rateLimit"],
        serde_json::json!({"cost": 1, "remaining": 4999, "resetAt": iso(reset as i64), "limit": 5000})
    );
    let repo = &v["data"]["repository"];
    assert_eq!(
        repo["n1"],
        serde_json::json!({
            "__typename": "Issue",
            "number": 1,
            "title": "Crash",
            "body": "Body of #1.",
            "url": "https://github.com/acme/widget/issues/1",
            "createdAt": default_created(1),
            "updatedAt": default_created(1),
            "issueState": "CLOSED",
            "author": {"login": "alice"},
            "labels": {"nodes": [{"name": "bug"}, {"name": "p1"}]},
            "comments": {"totalCount": 2, "nodes": [
                {"id": "IC_100001_1_1", "author": {"login": "bob"}, "body": "Same here",
                 "createdAt": "2024-02-01T10:00:00Z"},
                {"id": "IC_100001_1_2", "author": null, "body": "From a deleted account",
                 "createdAt": "2024-02-02T10:00:00Z"},
            ]},
        })
    );
    assert_eq!(
        repo["n4"],
        serde_json::json!({
            "__typename": "PullRequest",
            "number": 4,
            "title": "Fix crash",
            "body": "Body of #4.",
            "url": "https://github.com/acme/widget/pull/4",
            "createdAt": default_created(4),
            "updatedAt": "2024-05-01T10:00:00Z",
            "prState": "MERGED",
            "merged": true,
            "mergedAt": "2024-05-01T10:00:00Z",
            "author": {"login": "octocat"},
            "labels": {"nodes": []},
            "comments": {"totalCount": 0, "nodes": []},
            "reviews": {"totalCount": 0},
            "closingIssuesReferences": {"nodes": [
                {"number": 1, "repository": {"nameWithOwner": "acme/widget"}},
                {"number": 9, "repository": {"nameWithOwner": "other/lib"}},
            ]},
        })
    );
    // Approvals: only APPROVED reviews, a deleted reviewer's included.
    assert_eq!(repo["n2"]["reviews"], serde_json::json!({"totalCount": 2}));
    assert_eq!(
        (&repo["n2"]["prState"], &repo["n2"]["merged"]),
        (&Value::from("OPEN"), &Value::from(false))
    );
    assert!(repo["n2"]["mergedAt"].is_null());
    assert_eq!(repo["n3"]["prState"], "CLOSED");
    assert_eq!(repo["n3"]["merged"], false);
    assert_eq!(repo["n7"]["author"], Value::Null);
    assert_eq!(repo["n7"]["body"], "", "body is String!: null becomes \"\"");
    for missing in ["n5", "n6", "n8"] {
        assert!(repo.get(missing).is_some_and(Value::is_null), "{missing}");
    }
    let not_found = |n: u64, line: u64| {
        serde_json::json!({
            "type": "NOT_FOUND",
            "path": ["repository", format!("n{n}")],
            "locations": [{"line": line, "column": 5}],
            "message": format!("Could not resolve to an issue or pull request with the number of {n}."),
        })
    };
    assert_eq!(
        v["errors"],
        serde_json::json!([not_found(5, 8), not_found(6, 9), not_found(8, 11)])
    );
    // Keys come in query order, as GraphQL wants.
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.starts_with(r#"{"data":{"rateLimit":{"cost":1,"remaining":4999,"#));
    assert!(text.contains(r#""n1":{"__typename":"Issue","number":1,"title":"Crash","#));
    assert!(text.find(r#""n7""#) < text.find(r#""n8""#));

    let log = f.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/graphql")
    );
    assert_eq!((log[0].status, log[0].counted), (200, true));
    assert_eq!(log[0].header("authorization"), Some(TOKEN));
    assert_eq!(f.graphql_queries(), vec![query]);
    assert_eq!(f.graphql_rate_limit(), (5000, 4999, reset));
    assert_eq!(f.rate_limit().1, 5000, "REST's budget is another one");

    // REST counts the comments too.
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").json()["comments"], 2);
    assert_eq!(get(&f, "/repos/acme/widget/pulls/4").json()["comments"], 0);
    f.clear_log();
    assert!(f.graphql_queries().is_empty());
}

#[test]
fn graphql_aliases_variables_and_both_fragment_kinds() {
    let f = forge_with([
        Item::issue(1, "One").closed(),
        Item::pr(2, "Two")
            .labels(&["a", "b"])
            .review(Some("carol"), "APPROVED")
            .review(Some("dave"), "CHANGES_REQUESTED")
            .review(Some("erin"), "COMMENTED")
            .closes(&[1, 3]),
        Item::issue(3, "Third"),
    ]);
    let query = r#"
# A named operation among two, with comments, commas and every kind of selection.
query Details($owner: String!, $name: String!, $n: Int!, $withBody: Boolean = false,
              $states: [PullRequestReviewState!]) {
  repository(owner: $owner, name: $name) {
    nameWithOwner, name, owner { login __typename }
    first: issue(number: $n) { ...core body @include(if: $withBody) }
    second: pullRequest(number: 2) {
      ... on PullRequest { ...core state }
      ... { isDraft title @skip(if: true) }
      reviews(first: 10, states: $states) { totalCount nodes { state author { login } } }
      closingIssuesReferences(first: 5) { totalCount nodes { number title state } }
      labels(first: 1) { totalCount nodes { name } pageInfo { hasNextPage endCursor } }
      repository { nameWithOwner }
    }
    either: issueOrPullRequest(number: 1) {
      __typename
      ... on Issue { stateReason closed closedAt }
    }
  }
}
fragment core on IssueOrPullRequest {
  __typename
  ... on Issue { number title }
  ... on PullRequest { number title merged }
}
query Other { rateLimit { cost } }
"#;
    let body = serde_json::json!({
        "query": query,
        "operationName": "Details",
        "variables": {"owner": "ACME", "name": "Widget", "n": 1,
                      "states": ["APPROVED", "CHANGES_REQUESTED"]},
    });
    let r = try_post(
        &f,
        "/graphql",
        body.to_string().as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v.get("errors").is_none(), "{v}");
    let repo = &v["data"]["repository"];
    let cursor = repo["second"]["labels"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    assert_eq!(
        v["data"],
        serde_json::json!({"repository": {
            "nameWithOwner": "acme/widget",
            "name": "widget",
            "owner": {"login": "acme", "__typename": "Organization"},
            "first": {"__typename": "Issue", "number": 1, "title": "One"},
            "second": {
                "__typename": "PullRequest", "number": 2, "title": "Two", "merged": false,
                "state": "OPEN",
                "isDraft": false,
                "reviews": {"totalCount": 2, "nodes": [
                    {"state": "APPROVED", "author": {"login": "carol"}},
                    {"state": "CHANGES_REQUESTED", "author": {"login": "dave"}},
                ]},
                "closingIssuesReferences": {"totalCount": 2, "nodes": [
                    {"number": 1, "title": "One", "state": "CLOSED"},
                    {"number": 3, "title": "Third", "state": "OPEN"},
                ]},
                "labels": {"totalCount": 2, "nodes": [{"name": "a"}],
                           "pageInfo": {"hasNextPage": true, "endCursor": cursor}},
                "repository": {"nameWithOwner": "acme/widget"},
            },
            "either": {"__typename": "Issue", "stateReason": "COMPLETED", "closed": true,
                       "closedAt": default_created(1)},
        }})
    );
    // The same with the variable set: the @include'd field appears.
    let body = serde_json::json!({
        "query": query,
        "operationName": "Details",
        "variables": {"owner": "acme", "name": "widget", "n": 1, "withBody": true},
    });
    let r = try_post(
        &f,
        "/graphql",
        body.to_string().as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    let v = r.json();
    assert_eq!(v["data"]["repository"]["first"]["body"], "Body of #1.");
    assert_eq!(
        v["data"]["repository"]["second"]["reviews"]["totalCount"], 3,
        "no states: every review"
    );
    // The other operation, by name.
    let body = serde_json::json!({"query": query, "operationName": "Other"});
    let r = try_post(
        &f,
        "/graphql",
        body.to_string().as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    assert_eq!(
        r.json(),
        serde_json::json!({"data": {"rateLimit": {"cost": 1}}})
    );
    // The next page, through the cursor; edges as well as nodes.
    let page2 = "query($after: String) { repository(owner: \"acme\", name: \"widget\") {
        pullRequest(number: 2) { labels(first: 1, after: $after) {
            edges { node { name } } pageInfo { hasNextPage hasPreviousPage } } } } }";
    let v = graphql(&f, page2, serde_json::json!({"after": cursor})).json();
    assert_eq!(
        v["data"]["repository"]["pullRequest"]["labels"],
        serde_json::json!({"edges": [{"node": {"name": "b"}}],
                           "pageInfo": {"hasNextPage": false, "hasPreviousPage": true}})
    );
    // Block strings, escapes, booleans and null as arguments.
    let odd = "{ repository(owner: \"\"\"\n    acme\n  \"\"\", name: \"wid\\u0067et\", followRenames: true) {
        pullRequest(number: 2) { labels(first: 1, after: null) { totalCount nodes { name } } } } }";
    let v = graphql(&f, odd, Value::Null).json();
    assert_eq!(
        v["data"]["repository"]["pullRequest"]["labels"],
        serde_json::json!({"totalCount": 2, "nodes": [{"name": "a"}]}),
        "{v}"
    );
    // A bare selection set, and __typename of the root.
    let v = graphql(&f, "{ __typename }", Value::Null).json();
    assert_eq!(v, serde_json::json!({"data": {"__typename": "Query"}}));
}

#[test]
fn graphql_unknown_fields_get_githubs_error_and_cost_nothing() {
    let f = forge_with([Item::issue(1, "One")]);
    let query = batch_query(&[1]).replace("issueState: state\n", "issueState: state\n    bogus\n");
    let r = graphql(&f, &query, acme());
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v,
        serde_json::json!({"errors": [{
            "path": ["fragment item", "... on Issue", "bogus"],
            "extensions": {"code": "undefinedField", "typeName": "Issue", "fieldName": "bogus"},
            "locations": [{"line": 12, "column": 5}],
            "message": "Field 'bogus' doesn't exist on type 'Issue'",
        }]})
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.starts_with(r#"{"errors":[{"path":["#), "{text}");
    // In the operation itself, under aliases; every error is reported.
    let v = graphql(
        &f,
        "{ rl: rateLimit { c: cost nope } viewer { login } }",
        Value::Null,
    )
    .json();
    assert_eq!(
        v,
        serde_json::json!({"errors": [
            {"path": ["query", "rl", "nope"],
             "extensions": {"code": "undefinedField", "typeName": "RateLimit", "fieldName": "nope"},
             "locations": [{"line": 1, "column": 27}],
             "message": "Field 'nope' doesn't exist on type 'RateLimit'"},
            {"path": ["query", "viewer"],
             "extensions": {"code": "undefinedField", "typeName": "Query", "fieldName": "viewer"},
             "locations": [{"line": 1, "column": 34}],
             "message": "Field 'viewer' doesn't exist on type 'Query'"},
        ]})
    );
    assert_eq!(f.graphql_rate_limit().1, 5000, "nothing charged");
    assert!(f.requests().iter().all(|l| l.status == 200 && !l.counted));
}

#[test]
fn graphql_validation_follows_githubs_rules() {
    let f = forge_with([Item::pr(2, "Two")]);
    let errors = |query: &str, variables: Value| -> Vec<Value> {
        let v = graphql(&f, query, variables).json();
        assert!(v.get("data").is_none(), "{v}");
        v["errors"].as_array().expect("errors").clone()
    };
    let messages = |errs: &[Value]| -> Vec<String> {
        errs.iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    // `state` has two types on the union's members: it must be aliased apart.
    let e = errors(
        "{ repository(owner: \"acme\", name: \"widget\") { issueOrPullRequest(number: 2) {
             ... on Issue { state } ... on PullRequest { state } } } }",
        Value::Null,
    );
    assert_eq!(
        messages(&e),
        ["Field 'state' has a return_type conflict: `IssueState!` or `PullRequestState!`?"]
    );
    assert_eq!(e[0]["extensions"]["code"], "returnTypeConflict");
    // Variables: declared and used, with the right types and values.
    let e = errors(&batch_query(&[2]), serde_json::json!({"owner": "acme"}));
    assert_eq!(
        e,
        vec![serde_json::json!({
            "message": "Variable $name of type String! was provided invalid value",
            "locations": [{"line": 1, "column": 24}],
            "extensions": {"value": null,
                           "problems": [{"path": [], "explanation": "Expected value to not be null"}]},
        })]
    );
    let e = errors(
        "query($n: Int, $unused: String) { repository(owner: \"acme\", name: $name) { issue(number: $n) { title } } }",
        Value::Null,
    );
    assert_eq!(
        messages(&e),
        [
            "Variable $name is used by anonymous query but not declared",
            "Nullability mismatch on variable $n and argument number (Int / Int!)",
            "Variable $unused is declared by anonymous query but not used",
        ]
    );
    // Arguments and selections.
    let e = errors(
        "{ repository(owner: \"acme\") { issue(number: \"2\", foo: 1) { author } } }",
        Value::Null,
    );
    assert_eq!(
        messages(&e),
        [
            "Field 'repository' is missing required arguments: name",
            "Argument 'number' on Field 'issue' has an invalid value (\"2\"). Expected type 'Int!'.",
            "Field 'issue' doesn't accept argument 'foo'",
            "Field must have selections (field 'author' returns Actor but has no selections. Did you mean 'author { ... }'?)",
        ]
    );
    // Fragments: defined, used, on a type that can be there.
    let e = errors(
        "{ rateLimit { ...nope ... on Issue { title } } } fragment unused on Issue { title }",
        Value::Null,
    );
    assert_eq!(
        messages(&e),
        [
            "Fragment nope was used, but not defined",
            "Fragment on Issue can't be spread inside RateLimit",
            "Fragment unused was defined, but not used",
        ]
    );
    // GitHub's own: at most 100 per page, and a page size for every list.
    let e = errors(
        "{ repository(owner: \"acme\", name: \"widget\") { pullRequest(number: 2) {
             labels(first: 101) { nodes { name } } comments { nodes { body } } } } }",
        Value::Null,
    );
    assert_eq!(
        e,
        vec![
            serde_json::json!({
                "type": "EXCESSIVE_PAGINATION",
                "path": ["repository", "pullRequest", "labels"],
                "locations": [{"line": 2, "column": 14}],
                "message": "Requesting 101 records on the `labels` connection exceeds the `first` limit of 100 records.",
            }),
            serde_json::json!({
                "type": "MISSING_PAGINATION_BOUNDARIES",
                "path": ["repository", "pullRequest", "comments"],
                "locations": [{"line": 2, "column": 52}],
                "message": "You must provide a `first` or `last` value to properly paginate the `comments` connection.",
            }),
        ]
    );
    // A count alone needs no page size (as the batch query's `reviews`).
    let v = graphql(
        &f,
        "{ repository(owner: \"acme\", name: \"widget\") { pullRequest(number: 2) { comments { totalCount } } } }",
        Value::Null,
    )
    .json();
    assert_eq!(
        v["data"]["repository"]["pullRequest"]["comments"]["totalCount"],
        0
    );
    assert_eq!(
        f.graphql_rate_limit().1,
        4999,
        "only the valid query was charged"
    );
}

#[test]
fn graphql_syntax_errors_and_bad_bodies() {
    let f = forge_with([Item::issue(1, "One")]);
    let v = graphql(&f, "query { rateLimit { cost } } }", Value::Null).json();
    assert_eq!(
        v,
        serde_json::json!({"errors": [{
            "message": "Parse error on \"}\" (RCURLY) at [1, 30]",
            "locations": [{"line": 1, "column": 30}],
        }]})
    );
    let v = graphql(
        &f,
        "{\n  repository(owner: \"a\" name: \"b\") {\n    issue(number: 1 { title }",
        Value::Null,
    )
    .json();
    assert_eq!(
        v["errors"][0]["message"],
        "Parse error on \"{\" (LCURLY) at [3, 21]"
    );
    let v = graphql(&f, "{ rateLimit { cost }", Value::Null).json();
    assert_eq!(
        v,
        serde_json::json!({"errors": [{"message": "Unexpected end of document", "locations": []}]})
    );
    let v = graphql(&f, "{ rateLimit { cost % } }", Value::Null).json();
    assert_eq!(
        v["errors"][0]["message"],
        "Parse error on \"%\" (UNKNOWN_CHAR) at [1, 20]"
    );
    let r = try_post(&f, "/graphql", b"{not json", &[("Authorization", TOKEN)]).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Problems parsing JSON");
    let r = try_post(
        &f,
        "/graphql",
        b"{\"variables\": {}}",
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"errors": [{"message": "A query attribute must be specified and must be a string."}]})
    );
    let queries = f.graphql_queries();
    assert_eq!(queries.len(), 6);
    assert_eq!(queries[0], "query { rateLimit { cost } } }");
    assert_eq!(queries[4..], ["{not json", "{\"variables\": {}}"]);
    assert_eq!(f.graphql_rate_limit().1, 5000);
}

#[test]
fn graphql_repository_not_found_and_case_insensitive_names() {
    let f = forge_with([Item::issue(1, "One")]);
    let v = graphql(
        &f,
        &batch_query(&[1]),
        serde_json::json!({"owner": "acme", "name": "nothing"}),
    )
    .json();
    assert!(v["data"]["rateLimit"]["cost"] == 1);
    assert!(v["data"].get("repository").is_some_and(Value::is_null));
    assert_eq!(
        v["errors"],
        serde_json::json!([{
            "type": "NOT_FOUND",
            "path": ["repository"],
            "locations": [{"line": 3, "column": 3}],
            "message": "Could not resolve to a Repository with the name 'acme/nothing'.",
        }])
    );
    let v = graphql(
        &f,
        &batch_query(&[1]),
        serde_json::json!({"owner": "ACME", "name": "Widget"}),
    )
    .json();
    assert_eq!(v["data"]["repository"]["n1"]["title"], "One");
    assert!(v.get("errors").is_none());
}

#[test]
fn graphql_budget_is_its_own_and_runs_out() {
    let f = forge_with([Item::issue(1, "One")]);
    let reset = now_f64() as u64 + 3600;
    f.set_graphql_rate_limit(5000, 2, reset);
    // REST's budget being empty does not stop GraphQL.
    f.set_rate_limit(5000, 0, reset);
    let one = batch_query(&[1]);
    let r = graphql(&f, &one, acme());
    assert_eq!(rate_of(&r), (5000, 1, 4999, reset));
    assert_eq!(r.json()["data"]["rateLimit"]["remaining"], 1);
    assert_eq!(rate_of(&graphql(&f, &one, acme())), (5000, 0, 5000, reset));

    f.push_fault(Fault::Status(502));
    let refused = graphql(&f, &one, acme());
    assert_eq!(refused.status, 200);
    assert_eq!(
        String::from_utf8(refused.body.clone()).unwrap(),
        r#"{"errors":[{"type":"RATE_LIMITED","code":"graphql_rate_limit","message":"API rate limit already exceeded for user ID 1."}]}"#
    );
    assert_eq!(rate_of(&refused), (5000, 0, 5000, reset));
    assert!(!f.requests().last().unwrap().counted);
    assert_eq!(f.graphql_rate_limit(), (5000, 0, reset));
    let rl = get(&f, "/rate_limit").json();
    assert_eq!(
        rl["resources"]["graphql"],
        serde_json::json!({"limit": 5000, "used": 5000, "remaining": 0, "reset": reset})
    );
    assert_eq!(rl["resources"]["core"]["remaining"], 0);
    f.clear_faults();

    // A query dearer than what is left still runs, as on GitHub (used can
    // pass the limit); the next one is refused.
    f.set_graphql_rate_limit(5000, 3, reset);
    let numbers: Vec<u64> = (1..=100).collect();
    let r = graphql(&f, &batch_query(&numbers), acme());
    assert_eq!(r.json()["data"]["rateLimit"]["cost"], 4);
    assert_eq!(rate_of(&r), (5000, 0, 5001, reset));
    assert_eq!(
        graphql(&f, &one, acme()).json()["errors"][0]["type"],
        "RATE_LIMITED"
    );

    // A new window after the reset.
    let soon = now_f64() as u64 + 1;
    f.set_graphql_rate_limit(10, 0, soon);
    assert_eq!(
        graphql(&f, &one, acme()).json()["errors"][0]["type"],
        "RATE_LIMITED"
    );
    sleep_until_epoch(soon);
    let r = graphql(&f, &one, acme());
    assert_eq!(r.status, 200);
    let (limit, remaining, used, new_reset) = rate_of(&r);
    assert_eq!((limit, remaining, used), (10, 9, 1));
    assert!(new_reset >= soon + 3599, "{new_reset}");
}

#[test]
fn graphql_cost_is_githubs_arithmetic() {
    let f = forge_with([Item::pr(2, "Two")]);
    let with_counts = |numbers: &[u64]| {
        batch_query(numbers).replace(
            "rateLimit { cost remaining resetAt limit }",
            "rateLimit { cost remaining used nodeCount }",
        )
    };
    // One alias: 4 connections (the PullRequest side, the dearer one) →
    // 4 requests / 100 → rounds to 0 → at least 1.
    let v = graphql(&f, &with_counts(&[2]), acme()).json();
    assert_eq!(
        v["data"]["rateLimit"],
        serde_json::json!({"cost": 1, "remaining": 4999, "used": 1, "nodeCount": 95})
    );
    // A hundred: 400 requests → 4 points; nodes 100 × (50 + 20 + 25).
    let numbers: Vec<u64> = (1..=100).collect();
    let r = graphql(&f, &with_counts(&numbers), acme());
    assert_eq!(
        r.json()["data"]["rateLimit"],
        serde_json::json!({"cost": 4, "remaining": 4995, "used": 5, "nodeCount": 9500})
    );
    assert_eq!(r.num("x-ratelimit-remaining"), 4995);
    // Nested: the inner connections count once per outer node:
    // 1 + 100 + 100 = 201 requests → 2 points; 100 + 100×100 + 100×100 nodes.
    let nested = "{ rateLimit { cost nodeCount } repository(owner: \"acme\", name: \"widget\") {
        pullRequest(number: 2) { closingIssuesReferences(first: 100) { nodes {
            labels(first: 100) { nodes { name } } comments(first: 100) { totalCount } } } } } }";
    let v = graphql(&f, nested, Value::Null).json();
    assert_eq!(
        v["data"]["rateLimit"],
        serde_json::json!({"cost": 2, "nodeCount": 20100})
    );
    assert_eq!(f.graphql_rate_limit().1, 4993);
}

#[test]
fn graphql_faults_apply_to_the_endpoint() {
    let f = forge_with([Item::issue(1, "One")]);
    let one = batch_query(&[1]);
    let body = serde_json::json!({"query": one, "variables": acme()}).to_string();
    let post = || try_post(&f, "/graphql", body.as_bytes(), &[("Authorization", TOKEN)]);

    f.push_fault_on("/graphql", Fault::Status(502));
    let r = post().unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-ratelimit-resource"), Some("graphql"));
    assert_eq!(post().unwrap().status, 200, "one fault, one request");

    f.push_fault(Fault::Hang(Duration::from_millis(400)));
    let started = Instant::now();
    let err = post().expect_err("no answer");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(started.elapsed() >= Duration::from_millis(380));
    assert_eq!(f.requests().last().unwrap().status, 0);

    // The body is read, yet a reset is still a reset.
    f.push_fault_on("/graphql", Fault::Reset);
    assert_eq!(
        post().expect_err("reset").kind(),
        io::ErrorKind::ConnectionReset
    );

    f.push_fault_on("/graphql", Fault::Malformed);
    let r = post().unwrap();
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert!(r.body.starts_with(br#"{"data":{"rateLimit":"#));

    f.push_fault_on("/graphql", Fault::WrongTypes);
    let v = post().unwrap().json();
    assert_eq!(v["data"]["repository"]["n1"]["number"], "1");
    assert_eq!(v["data"]["repository"]["n1"]["title"], 12345);

    f.push_fault_on("/graphql", Fault::PrimaryLimit { reset_in_secs: 60 });
    let r = post().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["errors"][0]["type"], "RATE_LIMITED");
    assert_eq!(r.num("x-ratelimit-remaining"), 0);
    assert_eq!(f.graphql_rate_limit().1, 0);
    assert_eq!(f.rate_limit().1, 5000, "REST's budget untouched");

    // Charged: the 502, the good answer, the malformed and mistyped ones.
    let counted: Vec<(u16, bool)> = f.requests().iter().map(|l| (l.status, l.counted)).collect();
    assert_eq!(
        counted,
        [
            (502, true),
            (200, true),
            (0, false),
            (0, false),
            (200, true),
            (200, true),
            (200, false)
        ]
    );
}

#[test]
fn graphql_big_batches_can_be_made_slow() {
    let f = forge_with([Item::issue(1, "One")]);
    let timed = |n: u64| {
        let numbers: Vec<u64> = (1..=n).collect();
        let started = Instant::now();
        assert_eq!(graphql(&f, &batch_query(&numbers), acme()).status, 200);
        started.elapsed()
    };
    // Up to the threshold, no delay: an hour's would outlast the read's
    // hang guard.
    f.set_graphql_slow_over(10, Duration::from_secs(3_600));
    timed(10);
    // Over it, the delay (a lower bound; how little the rest costs is for
    // the benchmarks).
    f.set_graphql_slow_over(10, Duration::from_millis(400));
    let t = timed(11);
    assert!(t >= Duration::from_millis(400), "{t:?}");
    f.set_graphql_slow_over(usize::MAX, Duration::ZERO);
    f.set_graphql_latency_per_alias(Duration::from_millis(40));
    let t = timed(5);
    assert!(t >= Duration::from_millis(200), "{t:?}");
}

#[test]
fn graphql_can_be_disabled_and_wants_credentials() {
    let f = forge_with([Item::issue(1, "One")]);
    let body = serde_json::json!({"query": "{ rateLimit { cost } }"}).to_string();
    let r = try_post(&f, "/graphql", body.as_bytes(), &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "message": "This endpoint requires you to be authenticated.",
            "documentation_url": "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql",
        })
    );
    f.require_token("s3cret");
    let r = try_post(
        &f,
        "/graphql",
        body.as_bytes(),
        &[("Authorization", "Bearer wrong")],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Bad credentials");
    let r = try_post(
        &f,
        "/graphql",
        body.as_bytes(),
        &[("Authorization", "bearer s3cret")],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(f.graphql_queries().len(), 3);
    let counted: Vec<bool> = f.requests().iter().map(|l| l.counted).collect();
    assert_eq!(counted, [false, false, true]);

    // GraphQL turned off: an unknown path, on REST's terms.
    f.disable_graphql();
    let r = try_post(
        &f,
        "/graphql",
        body.as_bytes(),
        &[("Authorization", "Bearer s3cret")],
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Not Found");
    assert_eq!(r.header("x-ratelimit-resource"), Some("core"));
    assert_eq!(r.num("x-ratelimit-remaining"), 4999);
    assert_eq!(
        f.graphql_queries().len(),
        3,
        "not a GraphQL request any more"
    );
}

// ---- flavours: GitHub Enterprise and Gitea (crates/fakeforge/src/gitea.rs) ---

fn gitea_with(items: impl IntoIterator<Item = Item>) -> FakeForge {
    let f = FakeForge::start_gitea();
    f.add_repo(R);
    for item in items {
        f.put(R, item);
    }
    f
}

/// Gitea's issue id (as GitHub's: repository id × 10⁷ + n).
fn item_id(f: &FakeForge, n: u64) -> u64 {
    f.repo_id(R).unwrap() * 10_000_000 + n
}

fn assert_no_rate_limit_headers(r: &Resp) {
    let named: Vec<&str> = r
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("x-ratelimit") || n.starts_with("x-github"))
        .collect();
    assert!(named.is_empty(), "unexpected headers {named:?}");
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort_unstable();
    v.into_iter().map(str::to_string).collect()
}

#[test]
fn flavours_set_url_root_and_answer_their_own_probes() {
    let github = FakeForge::start();
    let ghe = FakeForge::start_ghe();
    let gitea = FakeForge::start_gitea();
    assert_eq!(github.flavour(), fakeforge::Flavour::GitHub);
    assert_eq!(ghe.flavour(), fakeforge::Flavour::GitHubEnterprise);
    assert_eq!(gitea.flavour(), fakeforge::Flavour::Gitea);
    assert_eq!(github.url(), github.root_url());
    assert_eq!(ghe.url(), format!("{}/api/v3", ghe.root_url()));
    assert_eq!(gitea.url(), format!("{}/api/v1", gitea.root_url()));
    assert!(gitea.root_url().starts_with("http://127.0.0.1:"));
    let probe =
        |f: &FakeForge, path: &str| try_get_with(&f.root_url(), path, &[]).expect("an answer");

    // github.com: /meta, without installed_version; the others are 404 JSON.
    let r = probe(&github, "/meta");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["verifiable_password_authentication"], false);
    assert!(v.get("installed_version").is_none());
    assert!(v["ssh_key_fingerprints"]["SHA256_ED25519"].is_string());
    for path in ["/api/v3/meta", "/api/v1/version"] {
        let r = probe(&github, path);
        assert_eq!(
            (r.status, r.json()["message"].clone()),
            (404, "Not Found".into())
        );
    }

    // GHE: /api/v3/meta only.
    let r = probe(&ghe, "/api/v3/meta");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"verifiable_password_authentication": true, "installed_version": "3.12.0"})
    );
    assert_eq!(r.header("x-github-enterprise-version"), Some("3.12.0"));
    for path in ["/meta", "/api/v1/version", "/api/v3/version"] {
        let r = probe(&ghe, path);
        assert_eq!(
            (r.status, r.json()["message"].clone()),
            (404, "Not Found".into())
        );
    }
    ghe.set_server_version("3.13.1");
    assert_eq!(
        probe(&ghe, "/api/v3/meta").json()["installed_version"],
        "3.13.1"
    );

    // Gitea: /api/v1/version; outside /api/v1 is its web side (HTML 404).
    let r = probe(&gitea, "/api/v1/version");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"version":"1.21.11"}"#);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    assert_no_rate_limit_headers(&r);
    for path in ["/meta", "/api/v3/meta", "/rate_limit", "/version"] {
        let r = probe(&gitea, path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(String::from_utf8_lossy(&r.body).contains("Page Not Found"));
    }
    let r = probe(&gitea, "/api/v1/meta");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "The target couldn't be found.");
    gitea.set_server_version("7.0.5+gitea-1.21.11");
    assert_eq!(
        probe(&gitea, "/api/v1/version").json()["version"],
        "7.0.5+gitea-1.21.11"
    );

    // Probes need no token, but a wrong one is refused.
    for (f, path) in [
        (&github, "/meta"),
        (&ghe, "/api/v3/meta"),
        (&gitea, "/api/v1/version"),
    ] {
        f.require_token("s3cret");
        assert_eq!(probe(f, path).status, 200, "{path}");
        let wrong = try_get_with(&f.root_url(), path, &[("Authorization", "token nope")]).unwrap();
        assert_eq!(wrong.status, 401, "{path}");
    }
}

#[test]
fn gitea_issue_and_pr_shapes() {
    let f = gitea_with([
        Item::issue(1, "Crash on start")
            .labels(&["bug", "ui"])
            .body(None)
            .comment(Some("alice"), "same here", "2020-02-01T00:00:00Z"),
        Item::issue(2, "Old")
            .author(None)
            .closed_at("2020-03-01T00:00:00Z"),
        Item::pr(3, "Open PR"),
        Item::pr(4, "Closed PR").closed_at("2020-03-02T00:00:00Z"),
        Item::pr(5, "Merged PR").merged("2020-03-03T00:00:00Z"),
    ]);
    let root = f.root_url();
    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    assert_eq!(r.header("etag"), None);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=0, private, must-revalidate, no-transform")
    );
    assert!(r.header("date").is_some());
    assert_no_rate_limit_headers(&r);
    let v = r.json();
    assert_eq!(
        keys(&v),
        sorted(vec![
            "id",
            "url",
            "html_url",
            "number",
            "user",
            "original_author",
            "original_author_id",
            "title",
            "body",
            "ref",
            "assets",
            "labels",
            "milestone",
            "assignee",
            "assignees",
            "state",
            "is_locked",
            "comments",
            "created_at",
            "updated_at",
            "closed_at",
            "due_date",
            "pull_request",
            "repository",
            "pin_order",
        ])
    );
    assert_eq!(v["id"], item_id(&f, 1));
    assert_eq!(v["number"], 1);
    assert_eq!(v["title"], "Crash on start");
    assert_eq!(v["body"], "", "Gitea's body is a string, never null");
    assert_eq!(v["state"], "open");
    assert_eq!(v["comments"], 1);
    assert_eq!(v["created_at"], default_created(1));
    assert_eq!(v["updated_at"], default_created(1));
    assert_eq!(v["closed_at"], Value::Null);
    assert_eq!(
        v["pull_request"],
        Value::Null,
        "an issue: null, as Gitea sends it"
    );
    assert_eq!(
        v["url"],
        format!("{root}/api/v1/repos/acme/widget/issues/1")
    );
    assert_eq!(v["html_url"], format!("{root}/acme/widget/issues/1"));
    assert_eq!(v["assets"], serde_json::json!([]));
    assert_eq!(v["assignees"], Value::Null);
    assert_eq!(
        v["repository"],
        serde_json::json!({"id": f.repo_id(R).unwrap(), "name": "widget", "owner": "acme", "full_name": "acme/widget"})
    );
    // The user, as an anonymous caller sees it.
    let user = &v["user"];
    assert_eq!(
        keys(user),
        sorted(vec![
            "id",
            "login",
            "login_name",
            "source_id",
            "full_name",
            "email",
            "avatar_url",
            "html_url",
            "language",
            "is_admin",
            "last_login",
            "created",
            "restricted",
            "active",
            "prohibit_login",
            "location",
            "website",
            "description",
            "visibility",
            "followers_count",
            "following_count",
            "starred_repos_count",
            "username",
        ])
    );
    assert_eq!(user["login"], "octocat");
    assert_eq!(user["username"], "octocat");
    assert!(user["id"].as_i64().unwrap() > 0);
    assert_eq!(user["html_url"], format!("{root}/octocat"));
    assert_eq!(user["email"], "octocat@noreply.localhost");
    // Labels are objects.
    let labels = v["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    for (label, name) in labels.iter().zip(["bug", "ui"]) {
        assert_eq!(
            keys(label),
            sorted(vec![
                "id",
                "name",
                "exclusive",
                "is_archived",
                "color",
                "description",
                "url"
            ])
        );
        assert_eq!(label["name"], name);
        let color = label["color"].as_str().unwrap();
        assert!(
            color.len() == 6 && color.chars().all(|c| c.is_ascii_hexdigit()),
            "{color}"
        );
        let id = label["id"].as_u64().unwrap();
        assert_eq!(
            label["url"],
            format!("{root}/api/v1/repos/acme/widget/labels/{id}")
        );
    }

    // A deleted account is Gitea's ghost; closed issues have closed_at.
    let v = get(&f, "/repos/acme/widget/issues/2").json();
    assert_eq!(v["user"]["id"], -1);
    assert_eq!(v["user"]["login"], "Ghost");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["closed_at"], "2020-03-01T00:00:00Z");
    assert_eq!(v["body"], "Body of #2.");

    // PRs: /issues/{n} answers them, with pull_request.merged.
    let pr = |n: u64| get(&f, &format!("/repos/acme/widget/issues/{n}")).json();
    let html = |n: u64| format!("{root}/acme/widget/pulls/{n}");
    let open = pr(3);
    assert_eq!(open["html_url"], html(3));
    assert_eq!(
        open["url"],
        format!("{root}/api/v1/repos/acme/widget/issues/3")
    );
    assert_eq!(
        open["pull_request"],
        serde_json::json!({"merged": false, "merged_at": null, "draft": false, "html_url": html(3)})
    );
    assert_eq!(
        (open["state"].as_str(), &open["closed_at"]),
        (Some("open"), &Value::Null)
    );
    let closed = pr(4);
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["closed_at"], "2020-03-02T00:00:00Z");
    assert_eq!(closed["pull_request"]["merged"], false);
    assert_eq!(closed["pull_request"]["merged_at"], Value::Null);
    let merged = pr(5);
    assert_eq!(merged["state"], "closed");
    assert_eq!(merged["closed_at"], "2020-03-03T00:00:00Z");
    assert_eq!(
        merged["pull_request"],
        serde_json::json!({"merged": true, "merged_at": "2020-03-03T00:00:00Z", "draft": false, "html_url": html(5)})
    );

    // The repository object.
    let v = get(&f, "/repos/acme/widget").json();
    assert_eq!(v["full_name"], "acme/widget");
    assert_eq!(v["html_url"], format!("{root}/acme/widget"));
    assert_eq!(v["url"], format!("{root}/api/v1/repos/acme/widget"));
    assert_eq!(v["clone_url"], format!("{root}/acme/widget.git"));
    assert_eq!(v["owner"]["login"], "acme");
    assert_eq!(v["open_issues_count"], 1, "open issues only");
    assert_eq!(v["open_pr_counter"], 1);
    assert_eq!(v["default_branch"], "main");

    // Overrides apply to Gitea's shape too; the log has the path as sent.
    f.put(R, Item::issue(6, "odd").with_field("state", "weird".into()));
    assert_eq!(
        get(&f, "/repos/acme/widget/issues/6").json()["state"],
        "weird"
    );
    assert!(f.requests().iter().all(|l| l.path.starts_with("/api/v1/")));
}

#[test]
fn gitea_missing_deleted_and_transferred_are_404() {
    let f = gitea_with((1..=3).map(|n| Item::issue(n, "x")));
    let root = f.root_url();
    f.delete(R, 2);
    f.transfer(R, 3, "other/place", 9);
    let not_found = serde_json::json!({
        "errors": null,
        "message": "The target couldn't be found.",
        "url": format!("{root}/api/swagger"),
    });
    for path in [
        "/repos/acme/widget/issues/2",
        "/repos/acme/widget/issues/3",
        "/repos/acme/widget/issues/999",
        "/repos/acme/widget/issues/abc",
        "/repos/acme/widget/issues/2/comments",
        "/repos/nobody/nothing/issues/1",
        "/repos/acme/widget/pulls/1",
        "/no/such/endpoint",
    ] {
        let r = get(&f, path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), not_found, "{path}");
        assert_no_rate_limit_headers(&r);
    }
    // Case-insensitive names; the transferred one lives on in its new home.
    assert_eq!(get(&f, "/repos/ACME/Widget/issues/1").status, 200);
    let v = get(&f, "/repos/other/place/issues/9").json();
    assert_eq!(v["html_url"], format!("{root}/other/place/issues/9"));
    // Not listed either.
    let listed = numbers(&get(&f, "/repos/acme/widget/issues?state=all").json());
    assert_eq!(listed, vec![1]);
}

/// Gitea's `Link`: "," between rels, in the order next, last, first, prev.
fn gitea_links(r: &Resp) -> Vec<(String, String)> {
    let Some(link) = r.header("link") else {
        return Vec::new();
    };
    link.split(',')
        .map(|part| {
            let (url, rel) = part.split_once("; rel=").expect("link part");
            let url = url.trim_start_matches('<').trim_end_matches('>');
            (rel.trim_matches('"').to_string(), url.to_string())
        })
        .collect()
}

#[test]
fn gitea_list_pages_by_limit_with_link_and_total_count() {
    // 120 items; every 3rd a PR, every 4th closed; created in number order.
    let f = gitea_with((1..=120).map(|n| {
        let item = if n % 3 == 0 {
            Item::pr(n, "pr")
        } else {
            Item::issue(n, "issue")
        };
        if n % 4 == 0 { item.closed() } else { item }
    }));
    let list = format!("{}/api/v1/repos/acme/widget/issues", f.root_url());

    // limit over 50 is capped at 50; the link keeps the limit asked for,
    // Go orders the keys.
    let r = get(&f, "/repos/acme/widget/issues?state=all&limit=100");
    assert_eq!(r.status, 200);
    assert_eq!(numbers(&r.json()), (71..=120).rev().collect::<Vec<_>>());
    assert_eq!(r.header("x-total-count"), Some("120"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Link, X-Total-Count")
    );
    assert_eq!(
        r.header("link"),
        Some(
            format!(
                "<{list}?limit=100&page=2&state=all>; rel=\"next\",<{list}?limit=100&page=3&state=all>; rel=\"last\""
            )
            .as_str()
        )
    );
    assert_no_rate_limit_headers(&r);

    let r = get(&f, "/repos/acme/widget/issues?state=all&limit=100&page=2");
    assert_eq!(numbers(&r.json()), (21..=70).rev().collect::<Vec<_>>());
    let rels: Vec<(String, String)> = gitea_links(&r);
    let at = |p: u32| format!("{list}?limit=100&page={p}&state=all");
    assert_eq!(
        rels,
        vec![
            ("next".to_string(), at(3)),
            ("last".to_string(), at(3)),
            ("first".to_string(), at(1)),
            ("prev".to_string(), at(1)),
        ]
    );

    let r = get(&f, "/repos/acme/widget/issues?state=all&limit=100&page=3");
    assert_eq!(numbers(&r.json()), (1..=20).rev().collect::<Vec<_>>());
    assert_eq!(
        gitea_links(&r),
        vec![("first".to_string(), at(1)), ("prev".to_string(), at(2))]
    );

    // Past the end: empty, linked as the last page.
    let r = get(&f, "/repos/acme/widget/issues?state=all&limit=100&page=9");
    assert_eq!(r.json(), serde_json::json!([]));
    assert_eq!(r.header("x-total-count"), Some("120"));
    assert_eq!(
        gitea_links(&r),
        vec![("first".to_string(), at(1)), ("prev".to_string(), at(2))]
    );

    // Defaults: state=open, 30 a page, page 1.
    let r = get(&f, "/repos/acme/widget/issues");
    let open: Vec<u64> = (1..=120).rev().filter(|n| n % 4 != 0).collect();
    assert_eq!(numbers(&r.json()), open[..30].to_vec());
    assert_eq!(r.header("x-total-count"), Some("90"));
    assert_eq!(
        r.header("link"),
        Some(format!("<{list}?page=2>; rel=\"next\",<{list}?page=3>; rel=\"last\"").as_str())
    );

    // type and state filters; everything on one page: no Link.
    let r = get(
        &f,
        "/repos/acme/widget/issues?state=all&type=pulls&limit=50",
    );
    assert_eq!(
        numbers(&r.json()),
        (1..=120).rev().filter(|n| n % 3 == 0).collect::<Vec<_>>()
    );
    assert_eq!(r.header("x-total-count"), Some("40"));
    assert_eq!(r.header("link"), None);
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("X-Total-Count")
    );
    let r = get(
        &f,
        "/repos/acme/widget/issues?state=closed&type=issues&limit=50",
    );
    let want: Vec<u64> = (1..=120)
        .rev()
        .filter(|n| n % 4 == 0 && n % 3 != 0)
        .collect();
    assert_eq!(numbers(&r.json()), want);
    assert!(r.json()[0]["pull_request"].is_null());
    // An unknown state is open, an unknown type is both.
    let r = get(
        &f,
        "/repos/acme/widget/issues?state=bogus&type=bogus&limit=50",
    );
    assert_eq!(r.header("x-total-count"), Some("90"));

    // since / before on updated_at, inclusive; the link re-encodes them.
    let since = default_created(100);
    let r = get(
        &f,
        &format!("/repos/acme/widget/issues?state=all&since={since}&limit=5"),
    );
    assert_eq!(numbers(&r.json()), vec![120, 119, 118, 117, 116]);
    assert_eq!(r.header("x-total-count"), Some("21"));
    let escaped = since.replace(':', "%3A");
    assert_eq!(
        gitea_links(&r)[0],
        (
            "next".to_string(),
            format!("{list}?limit=5&page=2&since={escaped}&state=all")
        )
    );
    let before = default_created(10);
    let r = get(
        &f,
        &format!(
            "/repos/acme/widget/issues?state=all&before={before}&since={}",
            default_created(8)
        ),
    );
    assert_eq!(numbers(&r.json()), vec![10, 9, 8]);
    let r = get(&f, "/repos/acme/widget/issues?since=yesterday");
    assert_eq!(r.status, 422);
    let v = r.json();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("parsing time \"yesterday\"")
    );
    assert_eq!(v["url"], format!("{}/api/swagger", f.root_url()));
}

#[test]
fn gitea_comments_and_reviews() {
    let f = gitea_with([
        Item::issue(1, "issue")
            .comment(Some("alice"), "first", "2020-02-01T00:00:00Z")
            .comment(None, "second", "2020-02-02T00:00:00Z"),
        Item::pr(2, "pr")
            .comment(Some("bob"), "looks good", "2020-02-03T00:00:00Z")
            .review(Some("alice"), "APPROVED")
            .review(Some("bob"), "CHANGES_REQUESTED")
            .review(None, "COMMENTED")
            .review(Some("carol"), "DISMISSED")
            .review(Some("dave"), "PENDING"),
        Item::pr(3, "no reviews"),
    ]);
    let root = f.root_url();

    let r = get(&f, "/repos/acme/widget/issues/1/comments");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-total-count"), Some("2"));
    assert_no_rate_limit_headers(&r);
    let v = r.json();
    let comments = v.as_array().unwrap();
    assert_eq!(comments.len(), 2);
    let id = item_id(&f, 1) * 1000 + 1;
    let c = &comments[0];
    assert_eq!(
        keys(c),
        sorted(vec![
            "id",
            "html_url",
            "pull_request_url",
            "issue_url",
            "user",
            "original_author",
            "original_author_id",
            "body",
            "assets",
            "created_at",
            "updated_at",
        ])
    );
    assert_eq!(c["id"], id);
    assert_eq!(c["body"], "first");
    assert_eq!(c["user"]["login"], "alice");
    assert_eq!(c["created_at"], "2020-02-01T00:00:00Z");
    assert_eq!(c["updated_at"], "2020-02-01T00:00:00Z");
    assert_eq!(
        c["html_url"],
        format!("{root}/acme/widget/issues/1#issuecomment-{id}")
    );
    assert_eq!(c["issue_url"], format!("{root}/acme/widget/issues/1"));
    assert_eq!(c["pull_request_url"], "");
    assert_eq!(comments[1]["user"]["login"], "Ghost");
    assert_eq!(comments[1]["user"]["id"], -1);
    // since filters; a PR's comments point at the PR.
    let r = get(
        &f,
        "/repos/acme/widget/issues/1/comments?since=2020-02-02T00:00:00Z",
    );
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let c = &get(&f, "/repos/acme/widget/issues/2/comments").json()[0];
    assert_eq!(c["pull_request_url"], format!("{root}/acme/widget/pulls/2"));
    assert_eq!(c["issue_url"], "");

    // Reviews: Gitea's states; a dismissal keeps its state, marked dismissed.
    let r = get(&f, "/repos/acme/widget/pulls/2/reviews");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-total-count"), Some("5"));
    let v = r.json();
    let reviews = v.as_array().unwrap();
    let seen: Vec<(&str, &str, bool)> = reviews
        .iter()
        .map(|r| {
            (
                r["user"]["login"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
                r["dismissed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alice", "APPROVED", false),
            ("bob", "REQUEST_CHANGES", false),
            ("Ghost", "COMMENT", false),
            ("carol", "APPROVED", true),
            ("dave", "PENDING", false),
        ]
    );
    let first = &reviews[0];
    assert_eq!(
        keys(first),
        sorted(vec![
            "id",
            "user",
            "team",
            "state",
            "body",
            "commit_id",
            "stale",
            "official",
            "dismissed",
            "comments_count",
            "submitted_at",
            "updated_at",
            "html_url",
            "pull_request_url",
        ])
    );
    let rid = item_id(&f, 2) * 1000 + 501;
    assert_eq!(first["id"], rid);
    assert_eq!(first["official"], true);
    assert_eq!(first["team"], Value::Null);
    assert_eq!(first["commit_id"].as_str().unwrap().len(), 40);
    let created = parse_iso(&default_created(2)).unwrap();
    assert_eq!(first["submitted_at"], iso(created + 60));
    assert_eq!(reviews[4]["submitted_at"], iso(created + 300));
    assert_eq!(
        first["pull_request_url"],
        format!("{root}/acme/widget/pulls/2")
    );
    assert_eq!(
        first["html_url"],
        format!("{root}/acme/widget/pulls/2#issuecomment-{rid}")
    );
    // Paged by limit/page; an issue has no reviews endpoint.
    let r = get(&f, "/repos/acme/widget/pulls/2/reviews?limit=2&page=2");
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(r.json()[0]["state"], "COMMENT");
    assert_eq!(r.header("x-total-count"), Some("5"));
    assert_eq!(
        get(&f, "/repos/acme/widget/pulls/3/reviews").json(),
        serde_json::json!([])
    );
    assert_eq!(get(&f, "/repos/acme/widget/pulls/1/reviews").status, 404);
    assert_eq!(get(&f, "/repos/acme/widget/pulls/99/reviews").status, 404);
}

#[test]
fn gitea_token_forms_and_refusals() {
    let f = gitea_with([Item::issue(1, "x")]);
    let swagger = format!("{}/api/swagger", f.root_url());
    // No User-Agent needed on Gitea.
    let bytes = exchange(
        &host(&f),
        &request_bytes("GET", "/api/v1/repos/acme/widget/issues/1", &[]),
    )
    .unwrap();
    assert_eq!(parse(&bytes).status, 200);

    f.require_token("s3cret");
    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "token is required", "url": swagger})
    );
    let r = get_with(
        &f,
        "/repos/acme/widget/issues/1",
        &[("Authorization", "token nope")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "user does not exist [uid: 0, name: ]", "url": swagger})
    );
    assert_no_rate_limit_headers(&r);
    for header in ["token s3cret", "Bearer s3cret", "bearer s3cret"] {
        let r = get_with(
            &f,
            "/repos/acme/widget/issues/1",
            &[("Authorization", header)],
        );
        assert_eq!(r.status, 200, "{header}");
    }
    let statuses: Vec<u16> = f.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [200, 401, 401, 200, 200, 200]);
}

#[test]
fn gitea_faults_and_a_proxy_429_with_retry_after() {
    let f = gitea_with([Item::issue(1, "x"), Item::issue(2, "y")]);
    let path = "/repos/acme/widget/issues/1";

    // A proxy's 429: HTML, retry-after, and enforced for that long.
    f.push_fault(Fault::TooMany {
        retry_after: Some(1),
    });
    let r = get(&f, path);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("<h1>429 Too Many Requests</h1>"));
    assert_no_rate_limit_headers(&r);
    let again = get(&f, path);
    assert_eq!(again.status, 429, "within retry-after");
    assert_eq!(again.header("retry-after"), Some("1"));
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&f, path).status, 200);

    // Status faults in Gitea's words; aimed faults match the path as sent.
    f.push_fault_on("/api/v1/repos/acme/widget/issues/2", Fault::Status(502));
    assert_eq!(get(&f, path).status, 200);
    let r = get(&f, "/repos/acme/widget/issues/2");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Bad Gateway", "url": format!("{}/api/swagger", f.root_url())})
    );
    f.push_fault(Fault::WrongTypes);
    let v = get(&f, path).json();
    assert_eq!(v["number"], "1");
    assert_eq!(v["title"], 12345);

    // No primary limit: an empty budget refuses nothing on Gitea.
    f.set_rate_limit(5_000, 0, now_f64() as u64 + 3_600);
    let r = get(&f, path);
    assert_eq!(r.status, 200);
    assert_no_rate_limit_headers(&r);
}

#[test]
fn ghe_serves_github_under_api_v3() {
    let f = FakeForge::start_ghe();
    f.add_repo(R);
    f.put(R, Item::issue(1, "Bug").labels(&["bug"]));
    f.put(R, Item::pr(2, "Fix").merged("2020-03-03T00:00:00Z"));
    f.put(R, Item::issue(3, "Moving"));
    let (root, api) = (f.root_url(), f.url());
    let id = f.repo_id(R).unwrap();

    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-github-enterprise-version"), Some("3.12.0"));
    assert_eq!(r.num("x-ratelimit-remaining"), 4_999);
    assert!(r.header("etag").is_some());
    let v = r.json();
    assert_eq!(v["url"], format!("{api}/repos/acme/widget/issues/1"));
    assert_eq!(v["html_url"], format!("{root}/acme/widget/issues/1"));
    assert_eq!(v["user"]["html_url"], format!("{root}/octocat"));
    assert_eq!(v["labels"][0]["name"], "bug");
    let v = get(&f, "/repos/acme/widget/issues/2").json();
    assert_eq!(
        v["pull_request"]["html_url"],
        format!("{root}/acme/widget/pull/2")
    );
    assert_eq!(
        v["pull_request"]["url"],
        format!("{api}/repos/acme/widget/pulls/2")
    );
    let v = get(&f, "/repos/acme/widget/pulls/2").json();
    assert_eq!(v["merged"], true);
    assert_eq!(v["html_url"], format!("{root}/acme/widget/pull/2"));
    let v = get(&f, "/repos/acme/widget").json();
    assert_eq!(v["url"], format!("{api}/repos/acme/widget"));
    assert_eq!(v["html_url"], format!("{root}/acme/widget"));

    // Link and Location under /api/v3.
    let r = get(&f, "/repos/acme/widget/issues?state=all&per_page=1");
    assert_eq!(
        r.links()["next"],
        format!("{api}/repositories/{id}/issues?state=all&per_page=1&page=2")
    );
    f.transfer(R, 3, "acme/other", 7);
    let r = get(&f, "/repos/acme/widget/issues/3");
    assert_eq!(r.status, 301);
    let to = f.repo_id("acme/other").unwrap();
    let location = format!("{api}/repositories/{to}/issues/7");
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(get(&f, &location).json()["number"], 7);
    assert_eq!(
        get(&f, "/rate_limit").json()["resources"]["core"]["limit"],
        5_000
    );

    // Outside /api/v3 nothing is served.
    for path in [
        "/repos/acme/widget/issues/1",
        "/rate_limit",
        "/api/v3x/meta",
    ] {
        let r = try_get_with(&root, path, &[]).unwrap();
        assert_eq!(r.status, 404, "{path}");
    }

    // GraphQL at /api/graphql only.
    let body = serde_json::json!({
        "query": "query { repository(owner: \"acme\", name: \"widget\") { issueOrPullRequest(number: 2) { ... on PullRequest { number merged } } } }",
    })
    .to_string();
    let r = try_post(
        &f,
        "/api/graphql",
        body.as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"]["repository"]["issueOrPullRequest"],
        serde_json::json!({"number": 2, "merged": true})
    );
    assert_eq!(r.header("x-ratelimit-resource"), Some("graphql"));
    for path in ["/graphql", "/api/v3/graphql"] {
        let r = try_post(&f, path, body.as_bytes(), &[("Authorization", TOKEN)]).unwrap();
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(f.graphql_queries().len(), 1);
    // The log and fault filters see the path as sent.
    assert!(f.requests().iter().any(|l| l.path == "/api/graphql"));
    f.push_fault_on("/api/v3/repos/acme/widget/issues/1", Fault::Status(503));
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 503);
}

#[test]
fn ghe_with_rate_limiting_disabled() {
    let f = FakeForge::start_ghe();
    f.add_repo(R);
    f.put(R, Item::issue(1, "Bug"));
    f.set_rate_limiting(false);
    let far = now_f64() as u64 + 3_600;
    f.set_rate_limit(5_000, 0, far);
    f.set_graphql_rate_limit(5_000, 0, far);

    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.status, 200, "an empty budget refuses nothing");
    assert!(r.headers.iter().all(|(n, _)| !n.starts_with("x-ratelimit")));
    assert_eq!(r.header("x-github-enterprise-version"), Some("3.12.0"));
    let r = get(&f, "/rate_limit");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Rate limiting is not enabled.");

    let body = serde_json::json!({
        "query": "query { repository(owner: \"acme\", name: \"widget\") { issue(number: 1) { number } } }",
    })
    .to_string();
    let r = try_post(
        &f,
        "/api/graphql",
        body.as_bytes(),
        &[("Authorization", TOKEN)],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["repository"]["issue"]["number"], 1);
    assert!(r.headers.iter().all(|(n, _)| !n.starts_with("x-ratelimit")));
    // GraphQL's auth still applies.
    let r = try_post(&f, "/api/graphql", body.as_bytes(), &[]).unwrap();
    assert_eq!(r.status, 401);

    // Injected secondary limits are still answered; a primary-limit fault
    // answers once and refuses nothing after.
    f.push_fault(Fault::SecondaryLimit { retry_after: None });
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 403);
    f.push_fault(Fault::PrimaryLimit { reset_in_secs: 600 });
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 403);
    assert_eq!(get(&f, "/repos/acme/widget/issues/1").status, 200);

    // Back on: headers and refusals return.
    f.set_rate_limiting(true);
    let r = get(&f, "/repos/acme/widget/issues/1");
    assert_eq!(r.status, 403);
    assert_eq!(r.num("x-ratelimit-remaining"), 0);
}
