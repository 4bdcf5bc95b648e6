mod testenv;

use std::fs;
use std::path::Path;

use serde_json::Value;
use testenv::{FORGE, Output, TestEnv};

/// The first number after `label` on the line that holds it
/// (thousands separators allowed).
fn count_after(out: &Output, label: &str) -> u64 {
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", out.stdout));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    let token = rest.split_whitespace().next().unwrap_or("");
    token
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {line:?}"))
}

/// `Progress: S / T (P%)` as (S, T, P).
fn progress(out: &Output) -> (u64, u64, f64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Progress: "))
        .unwrap_or_else(|| panic!("no Progress line in:\n{}", out.stdout));
    let rest = &line[line.find("Progress: ").unwrap() + "Progress: ".len()..];
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    assert!(
        tokens.len() >= 4
            && tokens[1] == "/"
            && tokens[3].starts_with('(')
            && tokens[3].ends_with("%)"),
        "not `Progress: S / T (P%)`: {line:?}"
    );
    let num = |t: &str| -> u64 { t.replace(',', "").parse().expect(line) };
    let pct: f64 = tokens[3][1..tokens[3].len() - 2].parse().expect(line);
    (num(tokens[0]), num(tokens[2]), pct)
}

fn status_json(env: &TestEnv, extra: &[&str]) -> Value {
    let mut args = vec!["--status", "--json"];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    out.assert_success();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", out.stdout))
}

/// The fields that hold for any status of a repository without a sync.
fn assert_idle_fields(v: &Value) {
    assert!(v.is_object(), "{v}");
    assert_eq!(v["repo"], FORGE, "{v}");
    assert_eq!(v["running"], false, "{v}");
    for key in [
        "pid",
        "rate_per_min",
        "eta_seconds",
        "last_error",
        "rate_limit",
        "last_run",
    ] {
        assert!(
            v.get(key).is_some_and(Value::is_null),
            "{key} not null: {v}"
        );
    }
    for key in ["total", "resolved", "pending", "failed", "percent"] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
}

fn assert_counts(v: &Value, total: u64, resolved: u64, pending: u64, failed: u64) {
    assert_eq!(v["total"].as_u64(), Some(total), "total: {v}");
    assert_eq!(v["resolved"].as_u64(), Some(resolved), "resolved: {v}");
    assert_eq!(v["pending"].as_u64(), Some(pending), "pending: {v}");
    assert_eq!(v["failed"].as_u64(), Some(failed), "failed: {v}");
}

/// Discovers refs #1..=n (all pending) in the project's database.
fn discover(env: &TestEnv, n: i64) {
    for i in 1..=n {
        env.commit(&format!("change {i} (#{i})"));
    }
    env.run(Vec::<&str>::new()).assert_success();
    assert_eq!(env.numbers(), (1..=n).collect::<Vec<_>>());
}

fn settle(env: &TestEnv) {
    // 1-3 resolved; 4-5 failed for good (settled with an error); 6-10 pending.
    env.execute(
        "UPDATE forge_refs SET resolved = '2024-05-01 10:00:00', ref_kind = 'pr'
             WHERE ref_number IN (1, 2, 3);
         UPDATE forge_refs SET resolved = '2024-05-01 10:00:01', error = 'HTTP 404'
             WHERE ref_number IN (4, 5);",
    );
}

#[test]
fn status_without_a_database_reads_zeros_and_creates_nothing() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let before = env.snapshot();

    let out = env.run(["--status"]);
    out.assert_success();
    assert_eq!(count_after(&out, "Pending:"), 0);
    assert_eq!(count_after(&out, "Resolved:"), 0);
    assert_eq!(count_after(&out, "Failed:"), 0);
    let (s, t, _) = progress(&out);
    assert_eq!((s, t), (0, 0));
    env.assert_unchanged(&before);

    let v = status_json(&env, &[]);
    assert_idle_fields(&v);
    assert_counts(&v, 0, 0, 0, 0);
    env.assert_unchanged(&before);
    assert!(!env.db_path().exists());
}

#[test]
fn status_counts_as_patina_counts() {
    let env = TestEnv::with_origin();
    discover(&env, 10);
    settle(&env);

    let out = env.run(["--status"]);
    out.assert_success();
    assert_eq!(count_after(&out, "Pending:"), 5);
    assert_eq!(count_after(&out, "Resolved:"), 3);
    assert_eq!(count_after(&out, "Failed:"), 2);
    let (s, t, pct) = progress(&out);
    assert_eq!((s, t), (5, 10));
    assert!((pct - 50.0).abs() < 0.5, "percent {pct}");

    let v = status_json(&env, &[]);
    assert_idle_fields(&v);
    assert_counts(&v, 10, 3, 5, 2);
    let pct = v["percent"].as_f64().expect("percent is a number");
    assert!((pct - 50.0).abs() < 0.5, "percent {pct}");
}

#[test]
fn an_error_without_resolved_is_failed_and_still_pending() {
    let env = TestEnv::with_origin();
    discover(&env, 4);
    env.execute("UPDATE forge_refs SET error = 'boom' WHERE ref_number = 1;");

    let out = env.run(["--status"]);
    out.assert_success();
    assert_eq!(count_after(&out, "Pending:"), 4);
    assert_eq!(count_after(&out, "Resolved:"), 0);
    assert_eq!(count_after(&out, "Failed:"), 1);

    let v = status_json(&env, &[]);
    assert_counts(&v, 4, 0, 4, 1);
}

#[test]
fn status_counts_only_this_forge_repo() {
    let env = TestEnv::with_origin();
    discover(&env, 3);
    env.execute(
        "UPDATE forge_refs SET resolved = '2024-05-01 10:00:00' WHERE ref_number = 1;
         INSERT INTO forge_refs (repo, ref_number, ref_kind, discovered, resolved, error)
         VALUES ('other/repo', 1, 'unknown', '2024-01-01 00:00:00', NULL, NULL),
                ('other/repo', 2, 'issue', '2024-01-01 00:00:00', '2024-01-02 00:00:00', NULL),
                ('other/repo', 3, 'unknown', '2024-01-01 00:00:00', '2024-01-02 00:00:00', 'HTTP 410');",
    );

    let out = env.run(["--status"]);
    out.assert_success();
    assert_eq!(count_after(&out, "Pending:"), 2);
    assert_eq!(count_after(&out, "Resolved:"), 1);
    assert_eq!(count_after(&out, "Failed:"), 0);
    assert_counts(&status_json(&env, &[]), 3, 1, 2, 0);
}

#[test]
fn status_never_writes_the_database() {
    let env = TestEnv::with_origin();
    discover(&env, 6);
    settle(&env);
    let bytes = fs::read(env.db_path()).unwrap();
    let rows = env.query("SELECT * FROM forge_refs ORDER BY repo, ref_number");
    let bytes_after_query = fs::read(env.db_path()).unwrap();
    assert_eq!(
        bytes, bytes_after_query,
        "the test's own read changed the file"
    );

    env.run(["--status"]).assert_success();
    status_json(&env, &[]);
    assert_eq!(fs::read(env.db_path()).unwrap(), bytes);
    assert_eq!(
        env.query("SELECT * FROM forge_refs ORDER BY repo, ref_number"),
        rows
    );
}

#[test]
fn status_reads_the_db_flag_database() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    env.commit("y (#2)");
    let db = env.root().join("other/forge.db");
    env.run(["--db", db.to_str().unwrap()]).assert_success();
    assert!(!env.db_path().exists());

    let v = status_json(&env, &["--db", db.to_str().unwrap()]);
    assert_counts(&v, 2, 0, 2, 0);
    assert!(!env.db_path().exists());
}

#[test]
fn status_without_a_database_at_the_db_flag_path_creates_nothing() {
    let env = TestEnv::with_origin();
    let db = env.root().join("missing/forge.db");
    let before = env.snapshot();
    let v = status_json(&env, &["--db", db.to_str().unwrap()]);
    assert_counts(&v, 0, 0, 0, 0);
    env.assert_unchanged(&before);
    assert!(!Path::new(&db).exists());
}
