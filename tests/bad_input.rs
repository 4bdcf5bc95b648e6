mod testenv;

use std::fs;

use testenv::{FORGE, TestEnv};

/// Bytes that are not an SQLite database (no `SQLite format 3` header).
fn garbage() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}

const BAD_NAMES: [&str; 5] = ["a/..", "a b/c", "a/b/c", "../x", "a/b c"];

#[test]
fn not_a_git_repository() {
    let env = TestEnv::with_origin();
    let plain = env.root().join("plain");
    fs::create_dir(&plain).unwrap();
    let before = env.snapshot();

    env.run_in(&plain, Vec::<&str>::new()).assert_error();
    env.assert_unchanged(&before);
    env.run(["-C", plain.to_str().unwrap()]).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn missing_directory() {
    let env = TestEnv::with_origin();
    let before = env.snapshot();
    let missing = env.root().join("no/such/dir");
    env.run(["-C", missing.to_str().unwrap()]).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn no_origin_and_no_forge() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    let before = env.snapshot();
    env.run(Vec::<&str>::new()).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn unsupported_remote_urls_point_at_forge_flag() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    for url in [
        "/srv/mirrors/widget.git",
        "file:///srv/mirrors/widget.git",
        "https://github.com/only-one-part",
        "https://github.com/a/b/c",
        "https://github.com/acme/..",
        "../sibling/repo",
    ] {
        env.set_origin(url);
        let before = env.snapshot();
        env.run(Vec::<&str>::new())
            .assert_error()
            .assert_stderr_contains("--forge");
        env.assert_unchanged(&before);
    }
}

#[test]
fn repo_naming_nothing_registered() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    fs::write(
        env.patina_home().join("registry.yaml"),
        format!(
            "repos:\n  widget:\n    path: {}\n    github: {FORGE}\n",
            env.repo().display()
        ),
    )
    .unwrap();
    let before = env.snapshot();
    env.run(["--repo", "gadget"]).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn repo_without_any_registry() {
    let env = TestEnv::with_origin();
    let before = env.snapshot();
    env.run(["--repo", "widget"]).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn database_folder_that_cannot_be_created() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let file = env.root().join("regular-file");
    fs::write(&file, b"not a directory\n").unwrap();
    let db = file.join("sub/patina.db");
    let before = env.snapshot();
    env.run(["--db", db.to_str().unwrap()]).assert_error();
    env.assert_unchanged(&before);
}

#[test]
fn non_sqlite_file_at_the_default_db_path() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    fs::create_dir_all(env.db_path().parent().unwrap()).unwrap();
    fs::write(env.db_path(), garbage()).unwrap();
    let before = env.snapshot();

    env.run(Vec::<&str>::new()).assert_error();
    assert_eq!(fs::read(env.db_path()).unwrap(), garbage());
    env.assert_unchanged(&before);
}

#[test]
fn non_sqlite_file_at_the_db_flag_path() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let db = env.root().join("junk.db");
    fs::write(&db, garbage()).unwrap();
    let before = env.snapshot();

    env.run(["--db", db.to_str().unwrap()]).assert_error();
    assert_eq!(fs::read(&db).unwrap(), garbage());
    env.assert_unchanged(&before);
}

#[test]
fn bad_forge_values_are_usage_errors() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    for value in BAD_NAMES {
        let before = env.snapshot();
        env.run(["--forge", value]).assert_usage_error();
        env.assert_unchanged(&before);
    }
}

#[test]
fn bad_forge_values_are_usage_errors_even_with_an_origin() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    for value in BAD_NAMES {
        let before = env.snapshot();
        env.run(["--forge", value]).assert_usage_error();
        env.assert_unchanged(&before);
    }
}

#[test]
fn bad_repo_values_are_usage_errors() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    // A repository where `cache/repos/../x` would lead, so that only the
    // name check can stop the run.
    let escaped = env.patina_home().join("cache/x");
    fs::create_dir_all(env.patina_home().join("cache/repos")).unwrap();
    env.git_in(
        env.root(),
        &[
            "clone",
            "-q",
            env.repo().to_str().unwrap(),
            escaped.to_str().unwrap(),
        ],
    );
    env.set_origin_in(&escaped, testenv::ORIGIN);
    for value in BAD_NAMES {
        let before = env.snapshot();
        env.run(["--repo", value]).assert_usage_error();
        env.assert_unchanged(&before);
    }
}

#[test]
fn unknown_flags_are_usage_errors() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    for flag in ["--frobnicate", "-Z", "--repo-name=x"] {
        let before = env.snapshot();
        env.run([flag]).assert_usage_error();
        env.assert_unchanged(&before);
    }
}

#[test]
fn help_mentions_every_long_flag() {
    let env = TestEnv::new();
    let before = env.snapshot();
    let out = env.run_in(env.root(), ["--help"]);
    out.assert_success();
    for flag in ["--path", "--repo", "--db", "--forge", "--status", "--json"] {
        out.assert_stdout_contains(flag);
    }
    env.assert_unchanged(&before);
}
