mod testenv;

use testenv::{FORGE, ORIGIN, TestEnv, db_under, numbers_in, query_db};

/// `YYYY-MM-DD HH:MM:SS`, as SQLite's `datetime('now')` writes it.
fn is_sqlite_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn first_run_writes_pending_refs_and_prints_counts() {
    let env = TestEnv::with_origin();
    let pr = env.commit("fix: crash on start (#12)");
    let issue = env.commit("feat: add widget\n\nCloses #7\n");
    env.commit("chore: nothing to see");

    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(3)
        .assert_prs(1)
        .assert_issues(1)
        .assert_total(2)
        .assert_known(0);

    let refs = env.refs();
    assert_eq!(refs.len(), 2, "{refs:#?}");
    for r in &refs {
        assert_eq!(r.repo, FORGE);
        assert_eq!(r.kind, "unknown");
        assert_eq!(r.resolved, None);
        assert_eq!(r.error, None);
        assert!(is_sqlite_datetime(&r.discovered), "{r:?}");
    }
    let seven = env.find_ref(7).expect("#7");
    assert_eq!(seven.source.as_deref(), Some(issue.as_str()));
    assert_eq!(seven.pattern.as_deref(), Some("closes"));
    let twelve = env.find_ref(12).expect("#12");
    assert_eq!(twelve.source.as_deref(), Some(pr.as_str()));
    assert_eq!(twelve.pattern.as_deref(), Some("pr-suffix"));
}

#[test]
fn commit_time_is_the_commits_unix_time() {
    let env = TestEnv::with_origin();
    env.commit_at("feat: x (#3)", 1_650_000_123);
    env.run::<_, &str>([]).assert_success();
    assert_eq!(
        env.find_ref(3).expect("#3").commit_time,
        Some(1_650_000_123)
    );
}

#[test]
fn database_has_patinas_tables_and_wal() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    env.run::<_, &str>([]).assert_success();

    let expected: &[(&str, &[&str])] = &[
        (
            "eventlog",
            &[
                "seq",
                "event_type",
                "timestamp",
                "source_id",
                "source_file",
                "data",
            ],
        ),
        ("scrape_meta", &["key", "value"]),
        (
            "forge_issues",
            &[
                "number",
                "title",
                "body",
                "state",
                "labels",
                "author",
                "created_at",
                "updated_at",
                "url",
                "event_seq",
            ],
        ),
        (
            "forge_prs",
            &[
                "number",
                "title",
                "body",
                "state",
                "labels",
                "author",
                "created_at",
                "merged_at",
                "url",
                "linked_issues",
                "approvals",
                "event_seq",
            ],
        ),
        (
            "forge_refs",
            &[
                "repo",
                "ref_number",
                "ref_kind",
                "discovered",
                "source",
                "resolved",
                "error",
            ],
        ),
    ];
    // patina's file has patina's schema, exactly: ours lives in our store.
    let patina = |sql: &str| testenv::query_patina(&env.db_path(), sql);
    for (table, columns) in expected {
        let info = patina(&format!("PRAGMA table_info({table})"));
        let names: Vec<&str> = info.iter().map(|row| row[1].as_str()).collect();
        assert_eq!(&names, columns, "{table}");
    }
    assert_eq!(patina("PRAGMA user_version"), [["0"]]);
    // Primary key of forge_refs is (repo, ref_number).
    let pk: Vec<(String, String)> = patina("PRAGMA table_info(forge_refs)")
        .into_iter()
        .filter(|row| row[5] != "0")
        .map(|row| (row[5].clone(), row[1].clone()))
        .collect();
    assert_eq!(
        pk,
        vec![
            ("1".to_string(), "repo".to_string()),
            ("2".to_string(), "ref_number".to_string())
        ]
    );
    let types: Vec<(String, String)> = env
        .query("PRAGMA main.table_info(forge_refs)")
        .into_iter()
        .map(|row| (row[1].clone(), row[2].to_uppercase()))
        .collect();
    assert!(
        types.contains(&("commit_time".into(), "INTEGER".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("pattern".into(), "TEXT".into())),
        "{types:?}"
    );
    assert_eq!(
        env.query("PRAGMA journal_mode"),
        vec![vec!["wal".to_string()]]
    );
    assert_eq!(patina("PRAGMA journal_mode"), [["wal"]]);
}

#[test]
fn subject_and_closing_patterns_land_in_the_db() {
    let env = TestEnv::with_origin();
    // PR refs: subject line only.
    env.commit("refactor: split (#12) (#34)");
    env.commit("Merge pull request #56 from acme/topic\n\nTopic work");
    env.commit("Auto merge of #78 - someone:branch, r=reviewer\n\nHomu did it");
    env.commit("Merge #90 #91\n\n90: one r=a\n91: two r=b");
    // Closing refs: anywhere, any case, optional colon.
    env.commit("work\n\nFixes #100");
    env.commit("work\n\ncloses: #101");
    env.commit("RESOLVED #102 in the subject");
    env.commit("work\n\nfixes acme/widget#103");
    env.commit("work\n\nFixes ACME/Widget#104");
    env.commit("work\n\nCloses https://github.com/acme/widget/issues/106");
    env.commit("work\n\nresolves https://github.com/acme/widget/pull/107");
    env.commit("work\n\nfixed #2147483647");
    // Near misses: none of these is a ref.
    env.commit("docs: mention (#200) in the middle");
    env.commit("fix (#201) trailing text");
    env.commit("body\n\nMerge pull request #202 from acme/not-subject");
    env.commit("body\n\nsome line (#203)");
    env.commit("work\n\nfixes other/repo#204");
    env.commit("work\n\nCloses https://github.com/other/repo/issues/205");
    env.commit("work\n\nprefixes #206");
    env.commit("work\n\nsee #207");
    env.commit("work\n\nfixes #0");
    env.commit("work\n\nfixes #2147483648");
    env.commit("work\n\nfixesx #208 and unfixes #209");

    env.run::<_, &str>([]).assert_success();

    assert_eq!(
        env.numbers(),
        vec![
            12, 34, 56, 78, 90, 91, 100, 101, 102, 103, 104, 106, 107, 2147483647
        ]
    );
    let expected = [
        (12, "pr-suffix"),
        (34, "pr-suffix"),
        (56, "merge-pr"),
        (78, "homu"),
        (90, "bors-ng"),
        (91, "bors-ng"),
        (100, "closes"),
        (101, "closes"),
        (102, "closes"),
        (103, "closes-repo"),
        (104, "closes-repo"),
        (106, "closes-url"),
        (107, "closes-url"),
        (2147483647, "closes"),
    ];
    for (n, pattern) in expected {
        let r = env.find_ref(n).unwrap_or_else(|| panic!("#{n}"));
        assert_eq!(r.pattern.as_deref(), Some(pattern), "#{n}: {r:?}");
    }
    let others = env.query(&format!(
        "SELECT repo, ref_number FROM forge_refs WHERE repo <> '{FORGE}'"
    ));
    assert!(others.is_empty(), "refs of other repos: {others:?}");
}

#[test]
fn pr_and_issue_counts_split_by_pattern() {
    let env = TestEnv::with_origin();
    env.commit("a (#1)");
    env.commit("b (#2)\n\nFixes #1");
    env.commit("c\n\nFixes #3 and closes #4");
    env.commit("d (#5)\n\nfixes #5");
    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(4)
        .assert_prs(3)
        .assert_issues(2)
        .assert_total(5);
    assert_eq!(env.numbers(), vec![1, 2, 3, 4, 5]);
}

#[test]
fn newest_commit_by_time_is_the_source() {
    let env = TestEnv::with_origin();
    let base = env.commit_at("base", 1_600_000_000);
    env.commit_at("old mention (#5)", 1_600_000_100);
    env.commit_at("first-parent mention\n\nfixes #5", 1_600_000_500);
    // The newest mention is on the merge's second parent.
    env.git(&["checkout", "-q", "-b", "side", &base]);
    let newest = env.commit_at("side mention (#5)", 1_600_000_900);
    env.checkout("main");
    env.merge("side", "Merge branch 'side'");

    env.run::<_, &str>([]).assert_success();
    let r = env.find_ref(5).expect("#5");
    assert_eq!(r.source.as_deref(), Some(newest.as_str()));
    assert_eq!(r.commit_time, Some(1_600_000_900));
}

#[test]
fn newer_mention_on_a_later_run_updates_source() {
    let env = TestEnv::with_origin();
    env.commit("a (#5)");
    env.run::<_, &str>([]).assert_success();
    let later = env.tick() + 1000;
    let sha = env.commit_at("b\n\nCloses #5", later);
    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(1)
        .assert_known(1)
        .assert_total(1);
    let r = env.find_ref(5).expect("#5");
    assert_eq!(r.source.as_deref(), Some(sha.as_str()));
    assert_eq!(r.commit_time, Some(later));
    assert_eq!(env.refs().len(), 1);
}

#[test]
fn incremental_run_adds_only_new_commits_refs() {
    let env = TestEnv::with_origin();
    env.commit("a (#1)");
    env.commit("b (#2)");
    env.run::<_, &str>([]).assert_success().assert_scanned(2);
    // Mark #1 settled: a rescan of old commits would count it as already known.
    env.execute(
        "UPDATE forge_refs SET resolved = '2024-01-01 00:00:00', ref_kind = 'pr' \
         WHERE ref_number = 1",
    );
    let before_two = env.find_ref(2).expect("#2");

    env.commit("c (#3)");
    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(1)
        .assert_prs(1)
        .assert_known(0)
        .assert_total(2);
    assert_eq!(env.numbers(), vec![1, 2, 3]);
    assert_eq!(env.find_ref(2).expect("#2"), before_two);
    let one = env.find_ref(1).expect("#1");
    assert_eq!(one.resolved.as_deref(), Some("2024-01-01 00:00:00"));
    assert_eq!(one.kind, "pr");
}

#[test]
fn nothing_new_says_so_and_changes_nothing() {
    let env = TestEnv::with_origin();
    env.commit("a (#1)");
    env.commit("b\n\nfixes #2");
    env.run::<_, &str>([]).assert_success();
    let refs = env.refs();

    let out = env.run::<_, &str>([]);
    out.assert_success();
    assert!(
        out.stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("No new commits since the last discovery")),
        "{}",
        out.stdout
    );
    assert_eq!(env.refs(), refs);
}

#[test]
fn merged_branch_dated_before_the_scanned_tip_is_found() {
    let env = TestEnv::with_origin();
    let base = env.commit_at("base (#1)", 1_600_000_000);
    env.commit_at("main work (#2)", 1_600_002_000);
    env.run::<_, &str>([]).assert_success();
    assert_eq!(env.numbers(), vec![1, 2]);

    // A topic branch, created after the run, whose commits are older than
    // the scanned tip.
    env.git(&["checkout", "-q", "-b", "topic", &base]);
    env.commit_at("topic one (#3)", 1_600_000_500);
    env.commit_at("topic two\n\nFixes #4", 1_600_000_600);
    env.checkout("main");
    env.merge("topic", "Merge branch 'topic'");

    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(3)
        .assert_prs(1)
        .assert_issues(1)
        .assert_total(4);
    assert_eq!(env.numbers(), vec![1, 2, 3, 4]);
}

#[test]
fn rewritten_history_keeps_every_reachable_ref_once() {
    let env = TestEnv::with_origin();
    let first = env.commit("one (#1)");
    env.commit("two (#2)");
    env.commit("three (#3)");
    env.run::<_, &str>([]).assert_success();

    env.git(&["reset", "-q", "--hard", &first]);
    let again = env.commit("two again (#2)");
    env.commit("four (#4)");
    env.commit("five\n\nfixes #5");
    env.run::<_, &str>([]).assert_success().assert_known(1);

    let numbers = env.numbers();
    for n in [1, 2, 4, 5] {
        assert_eq!(
            numbers.iter().filter(|&&m| m == n).count(),
            1,
            "#{n} in {numbers:?}"
        );
    }
    assert_eq!(
        env.find_ref(2).expect("#2").source.as_deref(),
        Some(again.as_str())
    );
}

#[test]
fn garbage_collected_tips_fall_back_to_a_full_walk() {
    let env = TestEnv::with_origin();
    let first = env.commit("one (#1)");
    let two = env.commit("two (#2)");
    let three = env.commit("three (#3)");
    env.run::<_, &str>([]).assert_success();

    env.git(&["reset", "-q", "--hard", &first]);
    env.commit("four (#4)");
    env.git(&["reflog", "expire", "--expire=now", "--all"]);
    env.git(&["gc", "-q", "--prune=now"]);
    for gone in [&two, &three] {
        assert!(!env.has_object(gone), "{gone} survived gc");
    }
    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(2)
        .assert_prs(1)
        .assert_known(1);
    let numbers = env.numbers();
    assert!(numbers.contains(&1) && numbers.contains(&4), "{numbers:?}");
}

#[test]
fn total_counts_only_pending_refs_of_this_forge() {
    let env = TestEnv::with_origin();
    env.commit("a (#1)");
    env.commit("b (#2)");
    env.run::<_, &str>([]).assert_success();
    env.execute(
        "UPDATE forge_refs SET resolved = '2024-01-01 00:00:00' WHERE ref_number = 1;
         INSERT INTO forge_refs (repo, ref_number, ref_kind, discovered)
             VALUES ('other/repo', 9, 'unknown', datetime('now'));",
    );
    env.commit("c (#3)");
    env.run::<_, &str>([]).assert_success().assert_total(2);
}

#[test]
fn thousands_get_separators() {
    let env = TestEnv::with_origin();
    let mut stream = String::new();
    for i in 1..=1234 {
        let msg = format!("change {i} (#{i})\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\ncommitter T <t@example.com> {} +0000\ndata {}\n{msg}",
            1_600_000_000 + i,
            msg.len()
        ));
        if i > 1 {
            stream.push_str(&format!("from :{}\n", i - 1));
        }
        stream.push('\n');
    }
    env.git_stdin(&["fast-import", "--quiet"], stream.as_bytes());

    env.run::<_, &str>([])
        .assert_success()
        .assert_stdout_contains("Scanned 1,234 ")
        .assert_stdout_contains("Discovered 1,234 PR ref")
        .assert_stdout_contains("Total: 1,234 pending")
        .assert_scanned(1234)
        .assert_prs(1234)
        .assert_issues(0)
        .assert_total(1234);
    assert_eq!(env.numbers().len(), 1234);
}

#[test]
fn shallow_clone_finds_the_refs_present_and_says_shallow() {
    let env = TestEnv::with_origin();
    for i in 1..=10 {
        env.commit(&format!("change (#{i})"));
    }
    let clone = env.root().join("shallow");
    let url = format!("file://{}", env.repo().display());
    env.git_in(
        env.root(),
        &["clone", "-q", "--depth", "5", &url, clone.to_str().unwrap()],
    );
    env.set_origin_in(&clone, ORIGIN);

    env.run(["-C", clone.to_str().unwrap()])
        .assert_success()
        .assert_stderr_contains("shallow");
    assert_eq!(numbers_in(&db_under(&clone)), vec![6, 7, 8, 9, 10]);
}

#[test]
fn empty_repository_has_no_refs() {
    let env = TestEnv::with_origin();
    env.run::<_, &str>([]).assert_success();
    assert!(env.refs().is_empty());
}

#[test]
fn ten_megabyte_message() {
    let env = TestEnv::with_origin();
    let mut msg = String::from("big change (#42)\n\n");
    let line = "lorem ipsum dolor sit amet, consectetur adipiscing elit #0\n";
    while msg.len() < 10 * 1024 * 1024 {
        msg.push_str(line);
    }
    msg.push_str("Fixes #43\n");
    env.commit_at(&msg, env.tick());
    env.commit("small (#44)");
    env.run::<_, &str>([]).assert_success().assert_scanned(2);
    assert_eq!(env.numbers(), vec![42, 43, 44]);
}

#[test]
fn octopus_merge() {
    let env = TestEnv::with_origin();
    env.commit("base");
    for (branch, n) in [("a", 1), ("b", 2), ("c", 3)] {
        env.git(&["checkout", "-q", "-b", branch, "main"]);
        env.commit(&format!("work on {branch} (#{n})"));
    }
    env.checkout("main");
    env.octopus(&["a", "b", "c"], "Merge #10 #11 #12");
    env.run::<_, &str>([])
        .assert_success()
        .assert_scanned(5)
        .assert_prs(6);
    assert_eq!(env.numbers(), vec![1, 2, 3, 10, 11, 12]);
    let parents = env.git(&["rev-list", "--parents", "-n", "1", "HEAD"]);
    // The merge and its four parents (main, a, b, c).
    assert_eq!(parents.split(' ').count(), 5, "not an octopus: {parents}");
}

#[test]
fn unrelated_roots() {
    let env = TestEnv::with_origin();
    env.commit("main root (#1)");
    env.git(&["checkout", "-q", "--orphan", "other"]);
    env.commit("other root\n\nCloses #2");
    env.commit("other work (#3)");
    env.checkout("main");
    env.merge_with(
        &["other"],
        "Merge pull request #4 from acme/other",
        &["--allow-unrelated-histories"],
    );
    env.run::<_, &str>([]).assert_success().assert_scanned(4);
    assert_eq!(env.numbers(), vec![1, 2, 3, 4]);
    let roots = env.git(&["rev-list", "--max-parents=0", "HEAD"]);
    assert_eq!(roots.lines().count(), 2);
}

#[test]
fn non_utf8_messages_are_read_lossily() {
    let env = TestEnv::with_origin();
    env.commit_bytes_at(
        b"caf\xe9: fix crash (#77)\n\n\xff\xfe Closes #78\n",
        env.tick(),
    );
    env.run::<_, &str>([]).assert_success();
    assert_eq!(env.numbers(), vec![77, 78]);
}

#[test]
fn runs_with_refs_of_another_forge_in_the_db_keep_them() {
    // A database shared with another forge repo's refs: discovery of this one
    // neither touches nor counts them.
    let env = TestEnv::with_origin();
    env.commit("a (#1)");
    env.run::<_, &str>([]).assert_success();
    env.execute(
        "INSERT INTO forge_refs (repo, ref_number, ref_kind, discovered)
             VALUES ('other/repo', 1, 'unknown', '2020-01-01 00:00:00');",
    );
    env.commit("b (#1)");
    env.run::<_, &str>([]).assert_success().assert_total(1);
    let other = query_db(
        &env.db_path(),
        "SELECT discovered, source FROM forge_refs WHERE repo = 'other/repo'",
    );
    assert_eq!(
        other,
        vec![vec!["2020-01-01 00:00:00".to_string(), "NULL".to_string()]]
    );
}

/// A history whose commit-graph still walks but whose commits cannot be
/// read: every reader thread fails. With more chunks than the readers and
/// their queue hold, the walk used to wait for room for ever.
#[test]
fn unreadable_commits_end_discovery_with_one_error_instead_of_a_hang() {
    let env = TestEnv::with_origin();
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    // The readers' chunks, the queue's (two a reader), one in hand, and more.
    let commits = (readers * 3 + 4) * 512;
    let mut stream = String::new();
    for i in 1..=commits {
        let msg = format!("change {i} (#{i})\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\ncommitter T <t@example.com> {} +0000\ndata {}\n{msg}",
            1_600_000_000 + i,
            msg.len()
        ));
        if i > 1 {
            stream.push_str(&format!("from :{}\n", i - 1));
        }
        stream.push('\n');
    }
    env.git_stdin(&["fast-import", "--quiet"], stream.as_bytes());
    env.git(&["commit-graph", "write", "--reachable"]);
    // Loose objects, so that single commits can go missing.
    let git_dir = env.repo().join(".git");
    let packs = env.root().join("packs");
    std::fs::rename(git_dir.join("objects/pack"), &packs).unwrap();
    std::fs::create_dir(git_dir.join("objects/pack")).unwrap();
    for pack in std::fs::read_dir(&packs).unwrap() {
        let pack = pack.unwrap().path();
        if pack.extension().is_some_and(|e| e == "pack") {
            env.git_stdin(&["unpack-objects", "-q"], &std::fs::read(&pack).unwrap());
        }
    }
    // HEAD stays readable; the next commits of the walk are gone.
    let ids = env.git(&["rev-list", "HEAD"]);
    for id in ids.lines().skip(1).take(readers * 512 * 2) {
        std::fs::remove_file(git_dir.join("objects").join(&id[..2]).join(&id[2..])).unwrap();
    }

    let out = env.run_or_hang(["--offline"], std::time::Duration::from_secs(120));
    out.assert_error()
        .assert_stderr_contains("cannot read commit")
        .assert_stderr_contains("git fsck");
    assert!(env.refs().is_empty(), "nothing recorded from a failed walk");
}
