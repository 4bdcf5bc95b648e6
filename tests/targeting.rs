mod testenv;

use std::fs;
use std::path::Path;

use testenv::{FORGE, ORIGIN, TestEnv, db_under, numbers_in, query_db};

fn write_registry(env: &TestEnv, yaml: &str) {
    fs::write(env.patina_home().join("registry.yaml"), yaml).expect("write registry.yaml");
}

fn repos_in(db: &Path) -> Vec<String> {
    query_db(db, "SELECT DISTINCT repo FROM forge_refs ORDER BY repo")
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

#[test]
fn path_from_a_subdirectory_finds_the_root() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let sub = env.repo().join("src/deep");
    fs::create_dir_all(&sub).unwrap();

    env.run(["-C", sub.to_str().unwrap()]).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert!(!sub.join(".patina").exists());
    assert!(!env.repo().join("src/.patina").exists());
}

#[test]
fn long_path_flag() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let sub = env.repo().join("docs");
    fs::create_dir_all(&sub).unwrap();
    env.run(["--path", sub.to_str().unwrap()]).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert!(!sub.join(".patina").exists());
}

#[test]
fn current_directory_is_the_default() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let sub = env.repo().join("a/b");
    fs::create_dir_all(&sub).unwrap();
    env.run_in(&sub, Vec::<&str>::new()).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert!(!sub.join(".patina").exists());
}

#[test]
fn repo_from_registry_path_with_github_forge() {
    // No origin: the registry's `github:` names the forge.
    let env = TestEnv::new();
    env.commit("x (#1)");
    write_registry(
        &env,
        &format!(
            "repos:\n  widget:\n    path: {}\n    github: {FORGE}\n",
            env.repo().display()
        ),
    );
    env.run(["--repo", "widget"]).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert_eq!(repos_in(&env.db_path()), vec![FORGE.to_string()]);
}

#[test]
fn repo_from_cache_directory() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    env.commit("y (#2)");
    let cached = env.patina_home().join("cache/repos/widget");
    fs::create_dir_all(cached.parent().unwrap()).unwrap();
    env.git_in(
        env.root(),
        &[
            "clone",
            "-q",
            env.repo().to_str().unwrap(),
            cached.to_str().unwrap(),
        ],
    );
    env.set_origin_in(&cached, ORIGIN);

    env.run(["--repo", "widget"]).assert_success();
    assert_eq!(numbers_in(&db_under(&cached)), vec![1, 2]);
    assert!(!env.db_path().exists());
}

#[test]
fn registry_path_wins_over_cache_directory() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let cached = env.patina_home().join("cache/repos/widget");
    fs::create_dir_all(cached.parent().unwrap()).unwrap();
    env.git_in(
        env.root(),
        &[
            "clone",
            "-q",
            env.repo().to_str().unwrap(),
            cached.to_str().unwrap(),
        ],
    );
    env.set_origin_in(&cached, ORIGIN);
    write_registry(
        &env,
        &format!("repos:\n  widget:\n    path: {}\n", env.repo().display()),
    );

    env.run(["--repo", "widget"]).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert!(!db_under(&cached).exists());
}

#[test]
fn db_flag_puts_the_database_elsewhere() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    let db = env.root().join("elsewhere/nested/forge.db");
    env.run(["--db", db.to_str().unwrap()]).assert_success();
    assert_eq!(numbers_in(&db), vec![1]);
    assert!(!env.db_path().exists());
    assert!(!env.repo().join(".patina").exists());
}

#[test]
fn bare_repository_keeps_the_db_in_the_git_dir() {
    let env = TestEnv::with_origin();
    env.commit("x (#1)");
    env.commit("y\n\nfixes #2");
    let bare = env.root().join("bare.git");
    env.git_in(
        env.root(),
        &[
            "clone",
            "-q",
            "--bare",
            env.repo().to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    env.set_origin_in(&bare, ORIGIN);

    env.run(["-C", bare.to_str().unwrap()]).assert_success();
    assert_eq!(numbers_in(&db_under(&bare)), vec![1, 2]);
}

#[test]
fn accepted_remote_urls_name_the_forge() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    let cases = [
        ("git@github.com:scp-org/scp.repo.git", "scp-org/scp.repo"),
        ("git@github.com:scp-org/no_suffix", "scp-org/no_suffix"),
        (
            "ssh://git@github.com/ssh-org/ssh-repo.git",
            "ssh-org/ssh-repo",
        ),
        (
            "ssh://git@git.example.com:2222/port.org/port_repo.git",
            "port.org/port_repo",
        ),
        ("ssh://github.com/nouser/repo", "nouser/repo"),
        (
            "https://github.com/https-org/https-repo.git",
            "https-org/https-repo",
        ),
        ("https://github.com/slash/repo/", "slash/repo"),
        ("https://git.example.com/plain/repo", "plain/repo"),
        ("git://github.com/gitproto/repo", "gitproto/repo"),
    ];
    for (i, (url, forge)) in cases.iter().enumerate() {
        env.set_origin(url);
        let db = env.root().join(format!("db-{i}/patina.db"));
        env.run(["--db", db.to_str().unwrap()]).assert_success();
        assert_eq!(repos_in(&db), vec![forge.to_string()], "origin {url}");
    }
    assert!(!env.db_path().exists());
}

#[test]
fn forge_flag_when_origin_is_missing() {
    let env = TestEnv::new();
    env.commit("x (#1)");
    env.run(["--forge", FORGE]).assert_success();
    assert_eq!(env.numbers(), vec![1]);
    assert_eq!(repos_in(&env.db_path()), vec![FORGE.to_string()]);
}

#[test]
fn forge_flag_when_origin_does_not_tell() {
    let env = TestEnv::new();
    env.set_origin("/srv/mirrors/widget.git");
    env.commit("x (#1)");
    env.run(["--forge", FORGE]).assert_success();
    assert_eq!(repos_in(&env.db_path()), vec![FORGE.to_string()]);
}
