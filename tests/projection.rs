//! Our store is the truth; `patina.db` is a projection of it that patina
//! reads, and that patina may delete, rebuild or write over. These tests
//! read `patina.db` the way patina does (its semantic indexer, its search
//! hit lookup, its backlog counts, its event de-duplication, its FTS5
//! search), then do what patina does to the file, and check that one
//! `--resume` gives every read the same answer again without fetching
//! anything.

mod drive;
mod testenv;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drive::{Background, HANG_GUARD, Ran};
use fakeforge::{FakeForge, Item, Logged};
use rusqlite::Connection;
use testenv::{FORGE, TestEnv, query_patina, store_of};

const TOKEN: &str = "ghp_projectionTestToken0123456789";
const DELAY: &str = "1ms";
const ISSUES: [u64; 4] = [1, 2, 4, 5];
const PRS: [u64; 3] = [3, 6, 7];

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issues whose bodies have a word of their own, PRs whose comments do,
/// with approvals and linked issues only GraphQL brings.
fn forge() -> FakeForge {
    let forge = FakeForge::start();
    forge.add_repo(FORGE);
    forge.require_token(TOKEN);
    let reset = now_secs() + 3600;
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    forge.set_graphql_rate_limit(10_000_000, 10_000_000, reset);
    for n in ISSUES {
        let body = format!("the issue body says quokka{n}");
        forge.put(
            FORGE,
            Item::issue(n, &format!("Issue {n}")).body(Some(&body)),
        );
    }
    for n in PRS {
        forge.put(
            FORGE,
            Item::pr(n, &format!("PR {n}"))
                .body(Some("a plain body"))
                .comment(
                    Some("alice"),
                    &format!("said narwhal{n}"),
                    "2026-01-01T00:00:00Z",
                )
                .comment(None, "a word from a ghost", "2026-01-02T00:00:00Z")
                .review(Some("bob"), "APPROVED")
                .closes(&[1, 2]),
        );
    }
    forge
}

fn run(env: &TestEnv, forge: &FakeForge, args: &[&str]) -> Ran {
    drive::run_with(
        env,
        env.patina_home(),
        &forge.url(),
        &[("GITHUB_TOKEN", TOKEN)],
        args,
    )
}

/// A project whose every ref is resolved, with GraphQL's discussion.
fn drained(forge: &FakeForge) -> TestEnv {
    let env = TestEnv::with_origin();
    env.commit("fix: everything (#7)");
    run(&env, forge, &[]).ok();
    run(&env, forge, &["--resume", "--delay", DELAY]).ok();
    env
}

/// The answers patina's reads give on `patina.db` alone. Event `seq`s are
/// the file's own (a rebuilt file numbers them anew), so each read is keyed
/// by what it is about, and each `seq` checked to lead where it should.
#[derive(Debug, PartialEq)]
struct PatinaView {
    /// The semantic indexer: `forge.*` events with a title, by type and
    /// number: title and body.
    indexed: BTreeMap<(String, String), Vec<String>>,
    /// The search hit lookup by `seq` of each indexed event: type, number,
    /// timestamp, title, body.
    hits: BTreeMap<(String, String), Vec<String>>,
    /// The backlog counts per repository: total, resolved, pending, failed.
    counts: Vec<Vec<String>>,
    /// patina's item rows, without `event_seq`.
    issues: Vec<Vec<String>>,
    prs: Vec<Vec<String>>,
    /// Search: the URLs an FTS5 `MATCH` finds, per word.
    found: BTreeMap<String, Vec<String>>,
    /// The forge rows of `code_fts`, sorted.
    search_rows: Vec<Vec<String>>,
    /// The mark patina's forge scrape starts from.
    mark: Vec<Vec<String>>,
}

fn view(db: &Path) -> PatinaView {
    let q = |sql: &str| query_patina(db, sql);
    // patina's semantic indexer.
    let events = q(
        "SELECT seq, event_type, source_id, json_extract(data, '$.title'), \
         json_extract(data, '$.body') FROM eventlog \
         WHERE event_type IN ('forge.issue', 'forge.pr') \
           AND json_extract(data, '$.title') IS NOT NULL ORDER BY seq",
    );
    let mut indexed = BTreeMap::new();
    let mut hits = BTreeMap::new();
    for e in &events {
        // The newest event of an item wins, as for an indexer reading in order.
        indexed.insert((e[1].clone(), e[2].clone()), e[3..].to_vec());
        // The search hit lookup, by seq.
        let hit = q(&format!(
            "SELECT event_type, source_id, timestamp, json_extract(data, '$.title'), \
             json_extract(data, '$.body') FROM eventlog WHERE seq = {}",
            e[0]
        ));
        assert_eq!(hit.len(), 1, "seq {} leads nowhere", e[0]);
        assert_eq!(hit[0][..2], e[1..3], "seq {} leads elsewhere", e[0]);
        hits.insert((e[1].clone(), e[2].clone()), hit[0].clone());
    }
    // Every stored row's event is found by patina's de-duplication lookup,
    // and its `event_seq` is that event.
    for (table, kind, updated) in [
        ("forge_issues", "forge.issue", "updated_at"),
        ("forge_prs", "forge.pr", "NULL"),
    ] {
        for row in q(&format!(
            "SELECT number, event_seq, {updated} FROM {table} ORDER BY number"
        )) {
            let found = q(&format!(
                "SELECT seq, json_extract(data, '$.updated_at') FROM eventlog \
                 WHERE event_type = '{kind}' AND json_extract(data, '$.number') = {} \
                 ORDER BY seq DESC",
                row[0]
            ));
            assert!(!found.is_empty(), "#{}: no event by number", row[0]);
            assert_eq!(
                found[0][0], row[1],
                "#{}: event_seq is not its newest event",
                row[0]
            );
            if updated != "NULL" {
                let same = q(&format!(
                    "SELECT count(*) FROM eventlog WHERE event_type = '{kind}' \
                     AND json_extract(data, '$.number') = {} \
                     AND json_extract(data, '$.updated_at') = '{}'",
                    row[0], row[2]
                ));
                assert_eq!(same[0][0], "1", "#{}: de-duplication lookup", row[0]);
            }
        }
    }
    let counts = q(
        "SELECT repo, count(*), sum(resolved IS NOT NULL AND error IS NULL), \
         sum(resolved IS NULL), sum(error IS NOT NULL) FROM forge_refs GROUP BY repo",
    );
    let issues = q(
        "SELECT number, title, body, state, labels, author, created_at, updated_at, url \
         FROM forge_issues ORDER BY number",
    );
    let prs = q(
        "SELECT number, title, body, state, labels, author, created_at, merged_at, url, \
         linked_issues, approvals FROM forge_prs ORDER BY number",
    );
    let mut found = BTreeMap::new();
    for word in ISSUES
        .iter()
        .map(|n| format!("quokka{n}"))
        .chain(PRS.iter().map(|n| format!("narwhal{n}")))
        .chain(["ghost".to_string()])
    {
        found.insert(
            word.clone(),
            q(&format!(
                "SELECT file_path FROM code_fts WHERE code_fts MATCH '{word}' ORDER BY file_path"
            ))
            .into_iter()
            .map(|r| r[0].clone())
            .collect(),
        );
    }
    let search_rows = q(
        "SELECT event_type, file_path, symbol_name, content FROM code_fts \
         WHERE event_type LIKE 'forge.%' ORDER BY 1, 2",
    );
    let mark = q("SELECT value FROM scrape_meta WHERE key = 'last_processed_forge'");
    PatinaView {
        indexed,
        hits,
        counts,
        issues,
        prs,
        found,
        search_rows,
        mark,
    }
}

/// patina's schema alone: no table, column or version of ours.
fn assert_patina_schema_only(db: &Path) {
    let tables: Vec<String> = query_patina(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'code_fts_%' ORDER BY name",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert_eq!(
        tables,
        [
            "code_fts",
            "eventlog",
            "forge_issues",
            "forge_prs",
            "forge_refs",
            "scrape_meta"
        ]
    );
    let columns = |t: &str| -> Vec<String> {
        query_patina(db, &format!("SELECT name FROM pragma_table_info('{t}')"))
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(
        columns("forge_refs"),
        [
            "repo",
            "ref_number",
            "ref_kind",
            "discovered",
            "source",
            "resolved",
            "error"
        ]
    );
    assert_eq!(columns("forge_issues").len(), 10);
    assert_eq!(columns("forge_prs").len(), 12);
    assert_eq!(query_patina(db, "PRAGMA user_version")[0][0], "0");
}

/// Every request since the log was cleared is the refresh's conditional
/// first page, answered 304: nothing was fetched.
fn assert_nothing_fetched(requests: &[Logged]) {
    for r in requests.iter().filter(|r| r.path != fakeforge::IDLE_PROBE) {
        assert!(
            r.method == "GET" && r.path.contains("sort=updated") && r.status == 304,
            "a request beyond the refresh's unchanged page: {} {} → {}",
            r.method,
            r.path,
            r.status
        );
    }
}

/// After a run, `patina.db` alone holds everything: no WAL is left beside
/// it, and a copy of the file by itself has every item.
fn assert_whole_without_wal(scratch: &Path, db: &Path) {
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "a WAL is left: {}",
        wal.display()
    );
    let copy = scratch.join("copy-of-patina.db");
    std::fs::copy(db, &copy).unwrap();
    assert_eq!(
        query_patina(
            &copy,
            "SELECT (SELECT count(*) FROM forge_issues) + (SELECT count(*) FROM forge_prs)"
        ),
        [[(ISSUES.len() + PRS.len()).to_string()]]
    );
    std::fs::remove_file(&copy).unwrap();
}

/// The drained world, its view, and a run of `--resume` after `harm`, which
/// must give the same view with nothing fetched.
/// `note` is what the run must say on stderr about what it did.
fn survives(note: &str, harm: impl FnOnce(&TestEnv)) -> (TestEnv, FakeForge) {
    let forge = forge();
    let env = drained(&forge);
    let db = env.db_path();
    assert_whole_without_wal(env.root(), &db);
    let before = view(&db);
    assert_patina_schema_only(&db);
    assert_eq!(before.issues.len(), ISSUES.len());
    assert_eq!(before.prs.len(), PRS.len());
    for n in ISSUES {
        assert_eq!(
            before.found[&format!("quokka{n}")],
            [format!("{}/{FORGE}/issues/{n}", web(&forge))],
            "the issue is found by a word of its body"
        );
    }
    for n in PRS {
        assert_eq!(
            before.found[&format!("narwhal{n}")],
            [format!("{}/{FORGE}/pull/{n}", web(&forge))],
            "the PR is found by a word of one of its comments"
        );
    }
    for pr in &before.prs {
        assert_eq!(pr[9], "[1,2]", "linked issues: {pr:?}");
        assert_eq!(pr[10], "1", "approvals: {pr:?}");
    }

    harm(&env);
    forge.clear_log();
    let ran = run(&env, &forge, &["--resume", "--delay", DELAY]);
    ran.ok();
    assert!(
        ran.stderr.contains(note),
        "no note {note:?}\n{}",
        ran.dump()
    );
    forge.wait_idle();
    assert_nothing_fetched(&forge.requests());
    assert_eq!(view(&db), before, "patina's reads changed");
    assert_patina_schema_only(&db);
    (env, forge)
}

/// The web address the fake gives its items, before the repository.
fn web(_forge: &FakeForge) -> String {
    "https://github.com".to_string()
}

fn events(db: &Path) -> u64 {
    query_patina(db, "SELECT count(*) FROM eventlog")[0][0]
        .parse()
        .unwrap()
}

#[test]
fn patina_db_deleted_while_idle_is_rebuilt_without_a_request() {
    survives("written again from the store (no request)", |env| {
        let db = env.db_path();
        std::fs::remove_file(&db).unwrap();
        assert!(store_of(&db).is_file(), "our store stays");
    });
}

#[test]
fn patinas_insert_or_replace_is_repaired_without_new_events() {
    let mut events_after_harm = 0;
    let (env, _forge) = survives("written again from the store (no request)", |env| {
        let db = env.db_path();
        let conn = Connection::open(&db).unwrap();
        // patina's own forge scrape: whole rows, its column lists, a row
        // count for event_seq.
        conn.execute_batch(
            "INSERT OR REPLACE INTO forge_issues
                 (number, title, body, state, labels, author, created_at, updated_at, url,
                  event_seq)
             SELECT number, title, body, state, labels, author, created_at, updated_at, url, 1
             FROM forge_issues;
             INSERT OR REPLACE INTO forge_prs
                 (number, title, body, state, labels, author, created_at, merged_at, url,
                  linked_issues, approvals, event_seq)
             SELECT number, title, body, state, labels, author, created_at, merged_at, url,
                    '[]', 0, NULL
             FROM forge_prs;",
        )
        .unwrap();
        events_after_harm = events(&db);
    });
    assert_eq!(
        events(&env.db_path()),
        events_after_harm,
        "repairing appended events"
    );
}

#[test]
fn an_emptied_and_refilled_search_index_gets_its_forge_rows_back() {
    let (env, _forge) = survives("written again from the store (no request)", |env| {
        let conn = Connection::open(env.db_path()).unwrap();
        // patina's code scrape.
        conn.execute_batch(
            "DELETE FROM code_fts;
             INSERT INTO code_fts (symbol_name, file_path, content, event_type)
             VALUES ('main', 'src/main.rs', 'fn main() { quokka }', 'code.function'),
                    ('run', 'src/lib.rs', 'pub fn run()', 'code.function');",
        )
        .unwrap();
    });
    assert_eq!(
        query_patina(
            &env.db_path(),
            "SELECT symbol_name, file_path FROM code_fts WHERE event_type = 'code.function' \
             ORDER BY 1"
        ),
        [["main", "src/main.rs"], ["run", "src/lib.rs"]],
        "patina's own rows are untouched"
    );
}

#[test]
fn a_store_of_the_former_layout_moves_once_without_a_request() {
    // The former layout kept everything in patina.db: fold our store back
    // into it, as a build before the split would have left it.
    survives("data moved out of", |env| {
        let db = env.db_path();
        let store = store_of(&db);
        let conn = Connection::open(&db).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS own", [store.to_str().unwrap()])
            .unwrap();
        conn.execute_batch(
            "ALTER TABLE forge_refs ADD COLUMN commit_time INTEGER;
             ALTER TABLE forge_refs ADD COLUMN pattern TEXT;
             ALTER TABLE forge_refs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE forge_refs ADD COLUMN last_error TEXT;
             ALTER TABLE forge_refs ADD COLUMN next_attempt INTEGER;
             ALTER TABLE forge_refs ADD COLUMN moved_to TEXT;
             UPDATE forge_refs SET (commit_time, pattern, attempts, last_error, next_attempt,
                                    moved_to) =
                 (SELECT commit_time, pattern, attempts, last_error, next_attempt, moved_to
                  FROM own.forge_refs o
                  WHERE o.repo = forge_refs.repo AND o.ref_number = forge_refs.ref_number);
             ALTER TABLE forge_issues ADD COLUMN etag TEXT;
             ALTER TABLE forge_issues ADD COLUMN comment_count INTEGER;
             ALTER TABLE forge_issues ADD COLUMN closed_at TEXT;
             UPDATE forge_issues SET (etag, comment_count, closed_at) =
                 (SELECT etag, comment_count, closed_at FROM own.forge_issues o
                  WHERE o.number = forge_issues.number);
             ALTER TABLE forge_prs ADD COLUMN etag TEXT;
             ALTER TABLE forge_prs ADD COLUMN updated_at TEXT;
             ALTER TABLE forge_prs ADD COLUMN comment_count INTEGER;
             ALTER TABLE forge_prs ADD COLUMN closed_at TEXT;
             UPDATE forge_prs SET (etag, updated_at, comment_count, closed_at) =
                 (SELECT etag, updated_at, comment_count, closed_at FROM own.forge_prs o
                  WHERE o.number = forge_prs.number);
             CREATE TABLE forge_scanned_tips AS SELECT * FROM own.forge_scanned_tips;
             CREATE TABLE forge_sync_state AS SELECT * FROM own.forge_sync_state;
             CREATE TABLE forge_runs AS SELECT * FROM own.forge_runs;
             CREATE TABLE forge_comments AS SELECT * FROM own.forge_comments;
             PRAGMA user_version = 5;",
        )
        .unwrap();
        drop(conn);
        std::fs::remove_file(&store).unwrap();
    });
}

#[test]
fn patina_db_deleted_during_a_background_drain_loses_nothing() {
    let forge = forge();
    // Three listing pages, slowly, so that the drain is under way when the
    // file goes.
    const TOP: u64 = 257;
    for n in 8..=TOP {
        forge.put(FORGE, Item::issue(n, &format!("Issue {n}")));
    }
    let env = TestEnv::with_origin();
    env.commit(&format!("fix: everything (#{TOP})"));
    run(&env, &forge, &[]).ok();
    let db = env.db_path();
    forge.set_latency(Duration::from_millis(300));
    let cmd = drive::command(
        &env,
        env.patina_home(),
        &forge.url(),
        &[("GITHUB_TOKEN", TOKEN)],
        &["--resume", "--api", "rest", "--delay", DELAY],
    );
    let drain = Background::start(&env, cmd, "--resume (REST)".into(), "drain");
    let store = store_of(&db);
    let resolved = || -> u64 {
        testenv::query_db(
            &store,
            "SELECT count(*) FROM forge_refs WHERE resolved IS NOT NULL",
        )[0][0]
            .parse()
            .unwrap()
    };
    drive::wait_until("a page resolved", HANG_GUARD, || resolved() >= 2);
    std::fs::remove_file(&db).unwrap();
    let at_deletion = resolved();
    assert!(at_deletion < TOP, "the drain was over before the file went");
    drain.wait(HANG_GUARD).ok();
    forge.set_latency(Duration::ZERO);
    forge.wait_idle();
    // Nothing asked for twice.
    let mut asked: BTreeMap<String, u64> = BTreeMap::new();
    for r in forge.requests().iter().filter(|r| r.method == "GET") {
        *asked.entry(r.path.clone()).or_default() += 1;
    }
    asked.retain(|_, n| *n > 1);
    assert!(asked.is_empty(), "fetched twice: {asked:?}");
    // The file at the path holds everything, in patina's schema.
    assert!(db.is_file(), "the drain went on in a new patina.db");
    assert_patina_schema_only(&db);
    let v = view(&db);
    assert_eq!(v.issues.len() + v.prs.len(), TOP as usize);
    assert_eq!(v.counts[0][1..], ["257", "257", "0", "0"], "{:?}", v.counts);
    assert_eq!(v.indexed.len(), TOP as usize);
    assert_eq!(v.search_rows.len(), TOP as usize);
}

/// patina's own sync, looking at our PID file: it removes the file when it
/// cannot read a PID from it. Runs until `stop` is raised.
fn patinas_pid_check(path: std::path::PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut removed = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.trim().parse::<u32>().is_err()
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        removed
    })
}

#[test]
fn an_empty_pid_file_removed_by_patina_never_lets_a_second_sync_start() {
    let forge = forge();
    let env = drained(&forge);
    env.commit("fix: one more (#8)");
    forge.put(FORGE, Item::issue(8, "Issue 8"));
    run(&env, &forge, &["--offline"]).ok();
    let pid_file = env.patina_home().join("run/forge-sync-acme-widget.pid");
    // The request for #8 takes long: the first drain holds its lock meanwhile.
    forge.set_latency(Duration::from_secs(3));
    for round in 0..10 {
        // The moment: an empty PID file as a drain starts, and patina's check.
        std::fs::write(&pid_file, "").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let check = patinas_pid_check(pid_file.clone(), stop.clone());
        let cmd = drive::command(
            &env,
            env.patina_home(),
            &forge.url(),
            &[("GITHUB_TOKEN", TOKEN)],
            &["--limit", "1", "--delay", DELAY],
        );
        let first = Background::start(&env, cmd, "--limit 1".into(), &format!("first-{round}"));
        let asked = forge.requests().len();
        drive::wait_until("the first drain asks the forge", HANG_GUARD, || {
            forge.requests().len() > asked
        });
        stop.store(true, Ordering::Relaxed);
        check.join().unwrap();
        // It holds the lock on the file at the path, with its PID in it.
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        assert_eq!(
            text.trim(),
            first.pid().to_string(),
            "round {round}: PID file"
        );
        // Another --sync starts: it must find the lock held.
        let second = run(&env, &forge, &["--sync", "--delay", DELAY]);
        if let Some(pid) = second
            .stdout
            .strip_prefix("Syncing in background (PID ")
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        {
            // It started: end it by its PID before failing.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        second.exit(75);
        drop(first);
    }
}

#[test]
fn an_edited_item_keeps_one_search_row_with_its_new_words() {
    let forge = forge();
    let env = drained(&forge);
    let db = env.db_path();
    forge.put(
        FORGE,
        Item::issue(2, "Issue 2, edited").body(Some("now it says wombat")),
    );
    run(&env, &forge, &["--resume", "--delay", DELAY]).ok();
    let v = view(&db);
    assert_eq!(
        v.found["quokka2"],
        Vec::<String>::new(),
        "the old version is still found"
    );
    assert_eq!(
        query_patina(
            &db,
            "SELECT file_path, symbol_name FROM code_fts WHERE code_fts MATCH 'wombat'"
        ),
        [["https://github.com/acme/widget/issues/2", "Issue 2, edited"]]
    );
    assert_eq!(
        v.search_rows.len(),
        ISSUES.len() + PRS.len(),
        "one row per item"
    );
    assert_eq!(
        v.indexed[&("forge.issue".to_string(), "2".to_string())],
        ["Issue 2, edited", "now it says wombat"]
    );
}
