//! Tests of the fake GitHub itself (`tests/fakeforge/`), spoken to with raw
//! HTTP over std's `TcpStream`, so that what is checked is the bytes a real
//! client would get, not what another client library makes of them.

mod fakeforge;

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

fn connect(host: &str) -> TcpStream {
    let stream = TcpStream::connect(host).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
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
    try_get_with(&f.url(), path, headers).expect("an answer")
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
    assert!(v["user"].is_null());
    assert!(v.get("body").is_some_and(Value::is_null));
    let v = get(&f, "/repos/acme/widget/issues/2").json();
    assert!(v.get("body").is_none());
    assert_eq!(v["state_reason"], "not_planned");
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
    // … and one that waits sees the connection close without a byte.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
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
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < 2 * 1024 * 1024 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
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
    assert!(timed(&f) < Duration::from_millis(150));
    f.set_latency(Duration::from_millis(200));
    let t = timed(&f);
    assert!(
        t >= Duration::from_millis(200) && t < Duration::from_millis(900),
        "{t:?}"
    );
    f.set_latency(Duration::ZERO);
    f.set_fault_rate(
        1,
        FaultRates {
            slow: Some((1.0, Duration::from_millis(150))),
            ..FaultRates::default()
        },
    );
    let t = timed(&f);
    assert!(
        t >= Duration::from_millis(150) && t < Duration::from_millis(900),
        "{t:?}"
    );
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

    // Two slow answers overlap in time.
    f.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let url = f.url();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || {
                try_get_with(&url, "/repos/acme/widget/issues/1", &[])
                    .unwrap()
                    .status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(550), "{took:?}");
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
    f.push_fault(Fault::Hang(Duration::from_secs(30)));
    let hung = {
        let (h, req) = (h.clone(), req.clone());
        thread::spawn(move || {
            let started = Instant::now();
            let got = exchange(&h, &req);
            (got.map(|b| b.len()).unwrap_or(0), started.elapsed())
        })
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
    let deadline = Instant::now() + Duration::from_secs(2);
    // Acceptors for both hosts, plus hung, stuck, idle and half (the get's
    // thread may take a moment to see the client's close and end).
    while fake_threads(&port) != 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fake_threads(&port), 6);

    let started = Instant::now();
    drop(f);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "drop took {took:?}");
    assert_eq!(fake_threads(&port), 0, "every thread joined");
    let (bytes, waited) = hung.join().unwrap();
    assert_eq!(bytes, 0);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
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
