//! A world on the fake forge with every kind of outcome, and the check that a
//! database mirrors it exactly once a drain is over: every ref's outcome,
//! every stored field of every issue and PR, one event per item and version,
//! `PRAGMA integrity_check`. Shared by the crash and fault tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::testenv::{FORGE, query_db, query_patina};
use fakeforge::{FakeForge, Item, Kind};

/// Where transferred issues go.
pub const ELSEWHERE: &str = "acme/elsewhere";

/// What the forge says about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Answered with the item (issue or PR).
    Live,
    /// 410.
    Gone,
    /// 404.
    Missing,
    /// 301 to `ELSEWHERE` #`to`.
    Moved { to: u64 },
}

/// Fills the fake with numbers 1..=`top` of `FORGE`, each a deterministic
/// function of the number:
///
/// - n % 10 == 7: missing (404); n % 50 == 33: deleted (410); n % 200 == 111:
///   transferred to `ELSEWHERE` under the same number (301);
/// - n % 3 == 0: a PR, merged when even, closed when a multiple of 5, else
///   open; n % 45 == 0 also leaves `merged_at` out of the issue view (when
///   `ask_pulls`), so that the client must ask `/pulls/{n}` to tell merged
///   from closed;
/// - otherwise an issue, closed when n % 4 == 1;
/// - labels when n % 7 == 0, a deleted author when n % 11 == 0, no body when
///   n % 13 == 0, quotes, a backslash and non-ASCII in the title when n % 17 == 0.
pub fn populate(forge: &FakeForge, top: u64) -> BTreeMap<u64, Expect> {
    populate_with(forge, top, true)
}

/// `populate`, choosing whether some PRs need `/pulls/{n}`.
pub fn populate_with(forge: &FakeForge, top: u64, ask_pulls: bool) -> BTreeMap<u64, Expect> {
    forge.add_repo(FORGE);
    forge.add_repo(ELSEWHERE);
    let mut expect = BTreeMap::new();
    for n in 1..=top {
        if n % 10 == 7 {
            expect.insert(n, Expect::Missing);
            continue;
        }
        let title = if n % 17 == 0 {
            format!("Fix \"quoted\" \\ path — ünïcode ✓ {n}")
        } else {
            format!("Item number {n}")
        };
        let mut item = if n % 3 == 0 {
            let pr = Item::pr(n, &title);
            if n % 2 == 0 {
                pr.merged("2024-05-01T10:00:00Z")
            } else if n % 5 == 0 {
                pr.closed()
            } else {
                pr
            }
        } else {
            let issue = Item::issue(n, &title);
            if n % 4 == 1 { issue.closed() } else { issue }
        };
        if ask_pulls && n % 45 == 0 {
            item = item.with_field(
                "pull_request",
                json!({"url": format!("https://api.github.invalid/pulls/{n}")}),
            );
        }
        if n % 7 == 0 {
            item = item.labels(&["bug", "p1 urgent"]);
        }
        if n % 11 == 0 {
            item = item.author(None);
        }
        if n % 13 == 0 {
            item = item.body(None);
        }
        forge.put(FORGE, item);
        if n % 50 == 33 {
            forge.delete(FORGE, n);
            expect.insert(n, Expect::Gone);
        } else if n % 200 == 111 {
            forge.transfer(FORGE, n, ELSEWHERE, n);
            expect.insert(n, Expect::Moved { to: n });
        } else {
            expect.insert(n, Expect::Live);
        }
    }
    expect
}

/// How many of each outcome: (live, gone, missing, moved).
pub fn tally(expect: &BTreeMap<u64, Expect>) -> (usize, usize, usize, usize) {
    let of = |f: fn(&Expect) -> bool| expect.values().filter(|e| f(e)).count();
    (
        of(|e| *e == Expect::Live),
        of(|e| *e == Expect::Gone),
        of(|e| *e == Expect::Missing),
        of(|e| matches!(e, Expect::Moved { .. })),
    )
}

fn text(v: Option<&str>) -> String {
    v.map_or_else(|| "NULL".to_string(), str::to_string)
}

/// patina's state for the fake's item.
fn patina_state(item: &Item) -> &'static str {
    match (&item.kind, item.state.as_str()) {
        (_, "open") => "open",
        (
            Kind::Pr {
                merged_at: Some(_), ..
            },
            _,
        ) => "merged",
        _ => "closed",
    }
}

fn web_url(repo: &str, item: &Item) -> String {
    let kind = if item.is_pr() { "pull" } else { "issues" };
    format!("https://github.com/{repo}/{kind}/{}", item.number)
}

/// The item that answers for ref `n`, with the repository it lives in.
fn answering(forge: &FakeForge, n: u64, e: &Expect) -> Option<(String, Item)> {
    match e {
        Expect::Live => Some((
            FORGE.to_string(),
            forge
                .get(FORGE, n)
                .unwrap_or_else(|| panic!("#{n} is not live on the fake")),
        )),
        Expect::Moved { to } => Some((
            ELSEWHERE.to_string(),
            forge
                .get(ELSEWHERE, *to)
                .unwrap_or_else(|| panic!("{ELSEWHERE}#{to} is not live on the fake")),
        )),
        Expect::Gone | Expect::Missing => None,
    }
}

/// Panics, naming the first difference, unless the database at `db` holds
/// exactly what the fake holds for `expect`: nothing pending, every ref's
/// outcome, every field of every stored issue and PR, one event per item
/// (`updated_at` never changed here) pointing back at its row, integrity `ok`.
/// `foreign_events` is how many events of other types (not `forge.*`) must
/// be there untouched.
pub fn assert_mirrors(
    db: &Path,
    forge: &FakeForge,
    expect: &BTreeMap<u64, Expect>,
    foreign_events: u64,
) {
    assert_eq!(
        query_db(db, "PRAGMA integrity_check"),
        vec![vec!["ok".to_string()]],
        "integrity_check"
    );
    assert_eq!(
        query_db(db, "PRAGMA foreign_key_check"),
        Vec::<Vec<String>>::new(),
        "foreign_key_check"
    );

    // patina's file holds exactly what our store does, in patina's columns.
    for (table, columns) in [
        (
            "forge_refs",
            "repo, ref_number, ref_kind, discovered, source, resolved, error",
        ),
        (
            "forge_issues",
            "number, title, body, state, labels, author, created_at, updated_at, url, event_seq",
        ),
        (
            "forge_prs",
            "number, title, body, state, labels, author, created_at, merged_at, url, \
             linked_issues, approvals, event_seq",
        ),
    ] {
        let sql = format!("SELECT {columns} FROM {table} ORDER BY 1, 2");
        assert_eq!(
            query_patina(db, &sql),
            query_db(db, &sql),
            "{table}: patina.db is not the projection of the store"
        );
    }

    // Every ref: its outcome.
    let refs: BTreeMap<u64, Vec<String>> = query_db(
        db,
        &format!(
            "SELECT ref_number, ref_kind, resolved IS NOT NULL, error, moved_to, \
             next_attempt FROM forge_refs WHERE repo = '{FORGE}' ORDER BY ref_number"
        ),
    )
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), r[1..].to_vec()))
    .collect();
    assert_eq!(
        refs.keys().copied().collect::<BTreeSet<u64>>(),
        expect.keys().copied().collect::<BTreeSet<u64>>(),
        "the refs in the database are not the numbers of the world"
    );
    for (n, e) in expect {
        let row = &refs[n];
        let (kind, settled, error, moved_to, next_attempt) =
            (&row[0], &row[1], &row[2], &row[3], &row[4]);
        assert_eq!(settled, "1", "#{n} ({e:?}) is still pending: {row:?}");
        assert_eq!(next_attempt, "NULL", "#{n} ({e:?}) still deferred: {row:?}");
        match answering(forge, *n, e) {
            Some((repo, item)) => {
                let want_kind = if item.is_pr() { "pr" } else { "issue" };
                assert_eq!(kind, want_kind, "#{n} ({e:?}) kind: {row:?}");
                assert_eq!(error, "NULL", "#{n} ({e:?}) marked failed: {row:?}");
                let want_moved = match e {
                    Expect::Moved { .. } => web_url(&repo, &item),
                    _ => "NULL".to_string(),
                };
                assert_eq!(moved_to, &want_moved, "#{n} ({e:?}) moved_to: {row:?}");
            }
            None => {
                let code = if *e == Expect::Gone { "410" } else { "404" };
                assert!(
                    error.contains(code),
                    "#{n} ({e:?}) should be settled as failed with {code}: {row:?}"
                );
            }
        }
    }

    // Every stored issue and PR, every field.
    let issues = query_db(
        db,
        "SELECT number, title, body, state, labels, author, created_at, updated_at, url, \
         event_seq FROM forge_issues ORDER BY number",
    );
    let prs = query_db(
        db,
        "SELECT number, title, body, state, labels, author, created_at, merged_at, url, \
         updated_at, event_seq FROM forge_prs ORDER BY number",
    );
    let mut want_issues = Vec::new();
    let mut want_prs = Vec::new();
    for (n, e) in expect {
        let Some((repo, item)) = answering(forge, *n, e) else {
            continue;
        };
        // Stored in name order, whatever order the forge sent.
        let mut labels = item.labels.clone();
        labels.sort_by_key(|l| (l.to_lowercase(), l.clone()));
        let labels = serde_json::to_string(&labels).unwrap();
        let common = vec![
            n.to_string(),
            item.title.clone(),
            text(item.body.as_deref()),
            patina_state(&item).to_string(),
            labels,
            // A deleted account is `ghost`, as GitHub's REST API names it.
            item.author.clone().unwrap_or_else(|| "ghost".to_string()),
            item.created_at.clone(),
        ];
        let url = web_url(&repo, &item);
        match &item.kind {
            Kind::Issue => {
                let mut row = common;
                row.extend([item.updated_at.clone(), url]);
                want_issues.push(row);
            }
            Kind::Pr { merged_at, .. } => {
                let mut row = common;
                row.extend([text(merged_at.as_deref()), url, item.updated_at.clone()]);
                want_prs.push(row);
            }
        }
    }
    let without_seq = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect()
    };
    assert_eq!(
        without_seq(&issues),
        want_issues,
        "forge_issues differs from the fake"
    );
    assert_eq!(
        without_seq(&prs),
        want_prs,
        "forge_prs differs from the fake"
    );

    // One event per item and version; each row points at its event.
    let dupes = query_db(
        db,
        "SELECT source_id, data ->> '$.updated_at', count(*) FROM eventlog \
         WHERE event_type LIKE 'forge.%' GROUP BY 1, 2 HAVING count(*) > 1",
    );
    assert!(dupes.is_empty(), "duplicated events: {dupes:?}");
    let events: BTreeMap<String, Vec<String>> = query_db(
        db,
        "SELECT source_id, seq, event_type, timestamp, source_file, data FROM eventlog \
         WHERE event_type LIKE 'forge.%'",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1..].to_vec()))
    .collect();
    let stored = want_issues.len() + want_prs.len();
    assert_eq!(
        events.len(),
        stored,
        "not one forge event per stored item: {} events, {stored} items",
        events.len()
    );
    for (rows, kind) in [(&issues, "forge.issue"), (&prs, "forge.pr")] {
        for row in rows {
            let n = &row[0];
            let e = events.get(n).unwrap_or_else(|| panic!("no event for #{n}"));
            assert_eq!(
                &e[0],
                &row[row.len() - 1],
                "#{n}: event_seq is not its event"
            );
            assert_eq!(e[1], kind, "#{n}: event type");
            assert_eq!(e[2], row[6], "#{n}: event timestamp is not created_at");
            assert_eq!(e[3], row[8], "#{n}: event source_file is not the URL");
            let data: Value = serde_json::from_str(&e[4]).expect("event data is JSON");
            assert_eq!(data["number"], json!(n.parse::<u64>().unwrap()), "{data}");
            assert_eq!(data["title"], json!(row[1]), "#{n}: {data}");
            let null_or = |s: &str| if s == "NULL" { Value::Null } else { json!(s) };
            assert_eq!(data["body"], null_or(&row[2]), "#{n}: {data}");
            assert_eq!(data["state"], json!(row[3]), "#{n}: {data}");
            let labels: Value = serde_json::from_str(&row[4]).unwrap();
            assert_eq!(data["labels"], labels, "#{n}: {data}");
            assert_eq!(data["author"], null_or(&row[5]), "#{n}: {data}");
            let updated = if kind == "forge.issue" {
                &row[7]
            } else {
                &row[9]
            };
            assert_eq!(data["updated_at"], json!(updated), "#{n}: {data}");
        }
    }
    let foreign: u64 = query_db(
        db,
        "SELECT count(*) FROM eventlog WHERE event_type NOT LIKE 'forge.%'",
    )[0][0]
        .parse()
        .unwrap();
    assert_eq!(foreign, foreign_events, "events of other writers");
}
