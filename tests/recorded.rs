//! Answers recorded from api.github.com, not written by us: the npm package
//! `@octokit/fixtures` (pinned in `tools/octokit-fixtures/package-lock.json`),
//! through the project's own decoders. Every issue and PR object anywhere in
//! its scenarios decodes to what it says; its paginate-issues scenario's
//! `Link` headers, followed by the listing's parser, ask for exactly the
//! pages GitHub was asked for; every recorded status is classified as the
//! drain must take it (a renamed repository's 301 and 307 as moves).
//!
//! The package is installed by `.ci/run` (`npm ci --prefix
//! tools/octokit-fixtures`); when it is missing the test installs it the same
//! way, and fails, saying what to do, where npm is not there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use patina_forge::forge::github::{Answer, classify, next_link};
use patina_forge::forge::http::Reply;
use patina_forge::forge::kind::ForgeKind;
use patina_forge::forge::{Item, Kind, MergedAt};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The issue objects in @octokit/fixtures 23.1.2 (it records no PR through
/// the issue endpoints): 16 in the normalized recordings (1 created in
/// add-labels-to-issue, 13 over 5 pages in paginate-issues, 2 search hits)
/// and 32 in the raw ones, which also hold the answers to creating them
/// and lock-issue's.
const ISSUE_OBJECTS: usize = 48;

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/octokit-fixtures")
}

/// `scenarios/api.github.com` of the installed package, installing it first
/// (once per test binary) if it is not there.
fn scenarios() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tools = tools_dir();
        let dir = tools.join("node_modules/@octokit/fixtures/scenarios/api.github.com");
        if !dir.is_dir() {
            let status = Command::new("npm")
                .args([
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--prefix",
                ])
                .arg(&tools)
                .status()
                .unwrap_or_else(|e| {
                    panic!(
                        "these tests read @octokit/fixtures, and npm cannot be run ({e}): \
                         install Node.js and npm, or run `npm ci --prefix tools/octokit-fixtures`"
                    )
                });
            assert!(
                status.success(),
                "`npm ci --prefix tools/octokit-fixtures` failed ({status})"
            );
        }
        assert!(dir.is_dir(), "no {} after npm ci", dir.display());
        dir
    })
}

/// Every recording of every scenario: (file, recordings).
fn recordings() -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios())
        .unwrap()
        .flat_map(|scenario| {
            let scenario = scenario.unwrap().path();
            ["normalized-fixture.json", "raw-fixture.json"].map(|f| scenario.join(f))
        })
        .filter(|f| f.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "too few scenarios: {files:?}");
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let Value::Array(recorded) = serde_json::from_str(&text).unwrap() else {
                panic!("{} is not a list of recordings", f.display());
            };
            (f.display().to_string(), recorded)
        })
        .collect()
}

/// Every object below `value` shaped like GitHub's issue (PRs come as issues
/// on these endpoints).
fn issue_objects<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            let issue_like = ["number", "title", "state", "html_url", "user", "labels"]
                .iter()
                .all(|k| map.contains_key(*k));
            if issue_like {
                found.push(value);
            }
            map.values().for_each(|v| issue_objects(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| issue_objects(v, found)),
        _ => {}
    }
}

#[test]
fn every_recorded_issue_and_pr_decodes_to_what_it_says() {
    let mut decoded = 0;
    for (file, recorded) in recordings() {
        for recording in &recorded {
            let mut found = Vec::new();
            issue_objects(&recording["response"], &mut found);
            for raw in found {
                let what = format!("{file}: #{}", raw["number"]);
                let item = Item::from_github(raw.to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{what} does not decode: {e}\n{raw:#}"));
                assert_eq!(
                    Some(u64::from(item.number)),
                    raw["number"].as_u64(),
                    "{what}"
                );
                assert_eq!(Some(item.title.as_str()), raw["title"].as_str(), "{what}");
                assert_eq!(Some(item.state()), raw["state"].as_str(), "{what}");
                assert_eq!(Some(item.url.as_str()), raw["html_url"].as_str(), "{what}");
                assert_eq!(
                    Some(item.author.as_str()),
                    raw["user"]["login"].as_str(),
                    "{what}"
                );
                let mut labels: Vec<&str> = raw["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|l| l["name"].as_str())
                    .collect();
                labels.sort_by_key(|l| (l.to_lowercase(), *l));
                assert_eq!(item.labels, labels, "{what}");
                assert_eq!(
                    item.body.as_deref(),
                    raw["body"].as_str().filter(|b| !b.is_empty()),
                    "{what}"
                );
                assert_eq!(Some(item.updated_at.as_str()), raw["updated_at"].as_str());
                let pr = raw.get("pull_request").is_some();
                assert_eq!(item.is_pr(), pr, "{what}");
                if !pr {
                    assert_eq!(item.kind, Kind::Issue, "{what}");
                } else if raw["pull_request"].get("merged_at").is_none() {
                    assert_eq!(
                        item.kind,
                        Kind::Pr {
                            merged_at: MergedAt::Unknown
                        }
                    );
                }
                decoded += 1;
            }
        }
    }
    println!("decoded {decoded} recorded issue and PR objects");
    assert_eq!(decoded, ISSUE_OBJECTS);
}

/// The scenario's requests in order, each with its answer's `Link`.
fn paginate_issues() -> Vec<(String, String, Value)> {
    let text = std::fs::read_to_string(scenarios().join("paginate-issues/normalized-fixture.json"))
        .unwrap();
    let recorded: Vec<Value> = serde_json::from_str(&text).unwrap();
    recorded
        .into_iter()
        .map(|r| {
            let link = r["headers"]["link"].as_str().unwrap_or("").to_owned();
            (
                r["path"].as_str().unwrap().to_owned(),
                link,
                r["response"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_recorded_link_headers_lead_through_every_page_and_stop_at_the_last() {
    let pages = paginate_issues();
    assert_eq!(pages.len(), 5);
    let mut numbers = Vec::new();
    for (i, (path, link, body)) in pages.iter().enumerate() {
        let items = Item::list_from_github(body.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("page {path} does not decode: {e}"));
        numbers.extend(items.iter().map(|item| item.number));
        let next = next_link(link);
        match pages.get(i + 1) {
            // Exactly the URL GitHub was asked next: taken as given, by the
            // repository's id (`/repositories/1000/…`), not rebuilt.
            Some((next_path, ..)) => {
                let next = next.unwrap_or_else(|| panic!("no next page after {path}: {link}"));
                assert_eq!(next.host_str(), Some("api.github.com"));
                let asked = match next.query() {
                    Some(q) => format!("{}?{q}", next.path()),
                    None => next.path().to_owned(),
                };
                assert_eq!(&asked, next_path, "after {path}");
            }
            None => assert_eq!(next, None, "the last page has no next: {link}"),
        }
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=13).collect::<Vec<u32>>());
}

fn reply(recording: &Value) -> Reply {
    let mut headers = HeaderMap::new();
    if let Some(map) = recording["headers"].as_object() {
        for (name, value) in map {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
    }
    Reply {
        status: StatusCode::from_u16(recording["status"].as_u64().unwrap() as u16).unwrap(),
        headers,
        body: match &recording["response"] {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        },
    }
}

#[test]
fn every_recorded_status_is_taken_as_the_drain_must_take_it() {
    let now = SystemTime::now();
    let mut moves = Vec::new();
    let mut seen = 0;
    for (file, recorded) in recordings() {
        if !file.ends_with("normalized-fixture.json") {
            continue;
        }
        for recording in &recorded {
            let answer = classify(&reply(recording), now, ForgeKind::Github);
            let status = recording["status"].as_u64().unwrap();
            let what = format!("{file}: {} {}", recording["method"], recording["path"]);
            match status {
                200..=299 => assert!(matches!(answer, Answer::Ok), "{what}: {answer:?}"),
                301 | 302 | 307 => match answer {
                    Answer::Moved(to) => moves.push((status, to.to_string())),
                    other => panic!("{what}: {other:?}"),
                },
                404 => assert!(matches!(answer, Answer::NotFound), "{what}: {answer:?}"),
                _ => assert!(!matches!(answer, Answer::Ok), "{what}: {answer:?}"),
            }
            seen += 1;
        }
    }
    assert!(seen >= 70, "{seen} recordings");
    // The renamed repository: GET and PATCH by the old name lead to its id.
    assert!(
        moves.contains(&(301, "https://api.github.com/repositories/1000".to_owned())),
        "{moves:?}"
    );
    assert!(
        moves.contains(&(307, "https://api.github.com/repositories/1000".to_owned())),
        "{moves:?}"
    );
}
