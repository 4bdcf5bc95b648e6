//! `--status --all`: every registered repository (and the project run from)
//! in one table or one JSON object, newest activity first, with the budget
//! and pace ledger of each API host; a repository that cannot be read is a
//! row with its error and exit status 1. Stores are filled by real runs
//! against the fake forge; status itself writes nothing.

mod testenv;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fakeforge::{FakeForge, Item};
use serde_json::{Value, json};
use testenv::{Output, TestEnv, db_under, query_db};

/// Spacing for runs that are not about pacing.
const DELAY: &str = "10ms";

/// A fake whose hourly budget is large enough that spreading it asks for
/// less than `DELAY`, holding issues `1..=items` of each of `repos`.
fn forge_with(repos: &[(&str, u64)]) -> FakeForge {
    let forge = FakeForge::start();
    let (_, _, reset) = forge.rate_limit();
    forge.set_rate_limit(10_000_000, 10_000_000, reset);
    for (repo, items) in repos {
        forge.add_repo(repo);
        for n in 1..=*items {
            forge.put(repo, Item::issue(n, &format!("issue {n}")));
        }
    }
    forge
}

/// `-C dir ARGS --api-url URL --delay 10ms`, which must succeed.
fn run_at(env: &TestEnv, dir: &Path, forge: &FakeForge, args: &[&str]) {
    let url = forge.url();
    let mut full = vec!["-C", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--api-url", &url, "--delay", DELAY]);
    env.run_bare(&full).assert_exit(0);
}

/// (total, resolved, pending, failed) of `repo` as the store counts them.
fn store_counts(dir: &Path, repo: &str) -> (u64, u64, u64, u64) {
    let row = &query_db(
        &db_under(dir),
        &format!(
            "SELECT count(*), coalesce(sum(resolved IS NOT NULL AND error IS NULL), 0), \
             coalesce(sum(resolved IS NULL), 0), coalesce(sum(error IS NOT NULL), 0) \
             FROM forge_refs WHERE repo = '{repo}'"
        ),
    )[0];
    let n = |i: usize| row[i].parse::<u64>().unwrap();
    (n(0), n(1), n(2), n(3))
}

fn counts_of(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("total"), n("resolved"), n("pending"), n("failed"))
}

/// `1234567` → `1,234,567`, as the text output groups counts.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    groups.join(",")
}

/// `host:port` of the fake, as the pace ledger keys it.
fn host_of(forge: &FakeForge) -> String {
    forge.url().trim_start_matches("http://").to_owned()
}

/// The first word of each table row (the header and the lines under rows,
/// which start with spaces, left out), up to the blank line before the hosts.
fn table_labels(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn every_repository_in_one_table_newest_activity_first() {
    let env = TestEnv::with_origin();
    let forge = forge_with(&[("acme/alpha", 8), ("acme/beta", 6), ("acme/gamma", 4)]);
    forge.delete("acme/beta", 2);
    let alpha = env.clone_at("alpha", "acme/alpha");
    let beta = env.clone_at("beta", "acme/beta");
    let gamma = env.clone_at("gamma", "acme/gamma");
    let gone = env.clone_at("gone", "acme/gone");
    env.write_registry(&[
        ("alpha", &alpha),
        ("beta", &beta),
        ("gamma", &gamma),
        ("gone", &gone),
    ]);
    // The project run from: discovered offline, never drained.
    env.commit("project (#3)");
    env.run_bare(&["-C", env.repo().to_str().unwrap(), "--offline"])
        .assert_exit(0);

    // alpha: a part drained; gamma: discovered only (its API base given
    // once); beta, a second later: everything drained and refreshed, a
    // number of it gone from the forge.
    run_at(&env, &alpha, &forge, &[]);
    run_at(&env, &alpha, &forge, &["--limit", "3"]);
    run_at(&env, &gamma, &forge, &[]);
    std::thread::sleep(Duration::from_millis(1100));
    run_at(&env, &beta, &forge, &[]);
    run_at(&env, &beta, &forge, &["--resume"]);
    fs::remove_dir_all(&gone).unwrap();

    let dirs = [&beta, &alpha, &env.repo().to_owned(), &gamma];
    let stored: Vec<(u64, u64, u64, u64)> = dirs
        .iter()
        .zip(["acme/beta", "acme/alpha", "acme/widget", "acme/gamma"])
        .map(|(dir, repo)| store_counts(dir, repo))
        .collect();
    // From here on nothing may be created or written, the WAL files of a
    // store that a reader would leave behind included.
    let before = env.snapshot();
    let project = env.repo().to_str().unwrap();
    let out = env.run_bare(&["--status", "--all", "--json", "-C", project]);
    out.assert_exit(1);
    let v = out.json();
    let repos = v["repos"].as_array().expect("repos");
    let names: Vec<&Value> = repos.iter().map(|r| &r["name"]).collect();
    assert_eq!(
        names,
        [
            &json!("beta"),
            &json!("alpha"),
            &Value::Null,
            &json!("gamma"),
            &json!("gone")
        ],
        "newest activity first, then the never run by label\n{}",
        out.dump()
    );
    let repo_names: Vec<&Value> = repos.iter().map(|r| &r["repo"]).collect();
    assert_eq!(
        repo_names,
        [
            &json!("acme/beta"),
            &json!("acme/alpha"),
            &json!("acme/widget"),
            &json!("acme/gamma"),
            &Value::Null
        ]
    );

    // Each object is the single --status --json of that repository, plus
    // name, path and error; its counts are the store's.
    for ((object, dir), stored) in repos.iter().zip(dirs).zip(&stored) {
        let repo = object["repo"].as_str().unwrap();
        assert_eq!(&counts_of(object), stored, "{object}");
        assert_eq!(object["path"], json!(dir.to_str().unwrap()), "{object}");
        assert_eq!(object["error"], Value::Null, "{object}");
        let single = env.run_bare(&["-C", dir.to_str().unwrap(), "--status", "--json"]);
        single.assert_exit(0);
        let mut expected = single.json();
        let expected_map = expected.as_object_mut().unwrap();
        expected_map.insert("name".into(), object["name"].clone());
        expected_map.insert("path".into(), object["path"].clone());
        expected_map.insert("error".into(), Value::Null);
        assert_eq!(object, &expected, "the --all object of {repo}");
    }
    assert_eq!(counts_of(&repos[0]), (6, 5, 0, 1), "beta: {}", repos[0]);
    assert_eq!(repos[0]["last_run"]["state"], "finished");
    assert!(repos[0]["last_refresh"].is_object(), "{}", repos[0]);
    assert_eq!(counts_of(&repos[1]), (8, 3, 5, 0), "alpha: {}", repos[1]);
    assert_eq!(repos[2]["last_run"], Value::Null);
    assert_eq!(repos[3]["last_run"], Value::Null);

    // The deleted clone: its row, every field null but the ones added.
    let gone_row = repos[4].as_object().unwrap();
    assert_eq!(gone_row.len(), repos[0].as_object().unwrap().len());
    let why = gone_row["error"].as_str().expect("an error");
    assert!(why.contains(gone.to_str().unwrap()), "{why}");
    for (key, value) in gone_row {
        if !["name", "path", "error"].contains(&key.as_str()) {
            assert_eq!(value, &Value::Null, "{key} of the deleted clone");
        }
    }
    assert_eq!(out.stderr_lines(), [format!("error: gone: {why}")]);

    // Two API hosts: the fake's, remembered by every store that reached it,
    // with the freshest budget they hold; and github.com's default for the
    // project, which never asked.
    let hosts = v["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2, "{v}");
    let host = &hosts[0];
    assert_eq!(host["host"], json!(host_of(&forge)));
    assert_eq!(host["repos"], json!(["alpha", "beta", "gamma"]));
    assert_eq!(host["rate_limit"]["api"], json!("rest"));
    assert_eq!(hosts[1]["host"], json!("api.github.com"));
    assert_eq!(hosts[1]["repos"], json!(["acme/widget"]));
    assert_eq!(hosts[1]["rate_limit"], Value::Null);
    // Discovery's one request does not record the budget: gamma has none.
    let rates: Vec<(i64, i64)> = [&alpha, &beta, &gamma]
        .iter()
        .flat_map(|dir| {
            query_db(
                &db_under(dir),
                "SELECT rate_reset, rate_remaining FROM forge_sync_state \
                 WHERE rate_reset IS NOT NULL",
            )
        })
        .map(|row| (row[0].parse().unwrap(), row[1].parse().unwrap()))
        .collect();
    assert_eq!(rates.len(), 2, "{rates:?}");
    let (reset, remaining) = rates
        .iter()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .unwrap();
    assert_eq!(host["rate_limit"]["remaining"], json!(remaining), "{v}");
    assert_eq!(host["rate_limit"]["limit"], json!(10_000_000));
    let reset = UNIX_EPOCH + Duration::from_secs(*reset as u64);
    assert_eq!(
        host["rate_limit"]["reset"],
        json!(humantime::format_rfc3339_seconds(reset).to_string())
    );
    assert_eq!(host["waiting"], Value::Null);
    assert_eq!(host["secondary_limits"], json!(0));
    env.assert_unchanged(&before);

    // The table: the same order, the error under its row, the host's line.
    let text = env.run_bare(&["--status", "--all", "-C", project]);
    text.assert_exit(1);
    assert_eq!(
        table_labels(&text),
        ["beta", "alpha", "acme/widget", "gamma", "gone"],
        "{}",
        text.dump()
    );
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY "), "{}", text.dump());
    let gone_line = lines.iter().position(|l| l.starts_with("gone ")).unwrap();
    assert_eq!(lines[gone_line + 1], format!("  error: {why}"));
    let beta_line = lines.iter().find(|l| l.starts_with("beta ")).unwrap();
    let cells: Vec<&str> = beta_line.split_whitespace().collect();
    assert_eq!(
        &cells[1..7],
        ["github", "no", "5", "0", "1", "100%"],
        "{beta_line}"
    );
    assert_eq!(cells[7], "finished", "{beta_line}");
    let host_line = format!(
        "{}: {} of 10,000,000 left, resets ",
        host_of(&forge),
        thousands(*remaining)
    );
    assert!(
        text.stdout.lines().any(|l| l.starts_with(&host_line)),
        "expected a line starting {host_line:?}\n{}",
        text.dump()
    );
    assert_eq!(text.stderr_lines(), [format!("error: gone: {why}")]);
    env.assert_unchanged(&before);
}

#[test]
fn all_readable_is_exit_zero_and_hosts_come_from_the_ledger() {
    let env = TestEnv::new();
    let forge = forge_with(&[("acme/alpha", 3)]);
    let alpha = env.clone_at("alpha", "acme/alpha");
    let gamma = env.clone_at("gamma", "acme/gamma");
    env.write_registry(&[("alpha", &alpha), ("gamma", &gamma)]);
    run_at(&env, &alpha, &forge, &[]);
    run_at(&env, &alpha, &forge, &["--limit", "1"]);
    // gamma is on github.com: no request, its host is the kind's default.
    env.run_bare(&["-C", gamma.to_str().unwrap(), "--offline"])
        .assert_exit(0);

    // A secondary limit twice in a row holds every request for ten minutes.
    let host = host_of(&forge);
    let until = SystemTime::now() + Duration::from_secs(600);
    let until_ms = until.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let ledger = env
        .patina_home()
        .join(format!("run/pace-{}.json", host.replace(':', "_")));
    assert!(
        ledger.is_file(),
        "the run left no ledger at {}",
        ledger.display()
    );
    fs::write(
        &ledger,
        format!(
            "{{\"next_at_ms\":{until_ms},\"reason\":\"secondary rate limit\",\"strikes\":2}}\n"
        ),
    )
    .unwrap();

    let before = env.snapshot();
    let out = env.run_bare(&["--status", "--all", "--json"]);
    out.assert_exit(0);
    assert_eq!(out.stderr, "", "{}", out.dump());
    let v = out.json();
    let until =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(until_ms)).to_string();
    let hosts = v["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2, "{v}");
    assert_eq!(hosts[0]["host"], json!(host));
    assert_eq!(hosts[0]["repos"], json!(["alpha"]));
    assert_eq!(
        hosts[0]["waiting"],
        json!({"until": until, "reason": "secondary rate limit"})
    );
    assert_eq!(hosts[0]["next_slot"], json!(until));
    assert_eq!(hosts[0]["secondary_limits"], json!(2));
    assert!(hosts[0]["rate_limit"].is_object(), "{v}");
    assert_eq!(
        hosts[1],
        json!({"host": "api.github.com", "repos": ["gamma"], "rate_limit": null,
               "waiting": null, "next_slot": null, "secondary_limits": 0})
    );
    // The repository's own object says the same wait.
    let alpha_row = v["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "alpha")
        .unwrap();
    assert_eq!(alpha_row["waiting"], hosts[0]["waiting"]);

    let text = env.run_bare(&["--status", "--all"]);
    text.assert_exit(0);
    let clock = &until[11..16];
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{host}: ")))
        .unwrap_or_else(|| panic!("no line for {host}\n{}", text.dump()));
    assert!(
        line.ends_with(&format!(
            "; waiting until {clock} UTC (secondary rate limit); 2 secondary limits in a row"
        )),
        "{line}"
    );
    assert!(
        text.stdout
            .lines()
            .any(|l| l == "api.github.com: no budget seen yet"),
        "{}",
        text.dump()
    );
    env.assert_unchanged(&before);
}
