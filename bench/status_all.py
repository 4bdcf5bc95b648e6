#!/usr/bin/env python3
"""`--status --all` on many repositories: the median wall time of the table
and of `--json`, beside a single `--status` for scale (one of the same
repositories, and one repository holding as many refs as all of them).

    cargo build --release && python3 bench/status_all.py

The world is built here, in a temporary folder: N git repositories (one
commit each, `origin` on github.com), registered in `registry.yaml`; each
store is created by one `--offline` discovery, then filled with SQL in our
store's schema: its share of the refs (a fifth settled, one in fifty
failed), a finished run, a refresh and a rate limit, as after a sync. No
request is sent. The contenders run interleaved, round after round, after
one untimed warm-up each.
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import loadavg, log, machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(*argv, cwd=None):
    subprocess.run(["git", *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def make_repo(path, origin):
    git("init", "-q", "-b", "main", path)
    git("-C", path, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q",
        "--allow-empty", "-m", "start")
    git("-C", path, "remote", "add", "origin", origin)


def fill(binary, env, repo, forge, refs, hour):
    """A store for `forge` holding `refs` refs, as after a sync `hour`
    hours ago (so that the repositories have different activity times)."""
    out = subprocess.run([binary, "-C", repo, "--offline"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"discovery in {repo} failed: {out.stderr.strip()}")
    conn = sqlite3.connect(os.path.join(repo, ".patina/local/data/patina-forge.db"))
    ago = f"-{hour} hours"
    conn.executemany(
        "INSERT OR IGNORE INTO forge_refs (repo, ref_number, ref_kind, discovered, pattern,"
        " resolved, error) VALUES (?, ?, 'unknown', datetime('now', '-2 days'), 'range', ?, ?)",
        ((forge, n,
          f"2026-01-01 00:00:00" if n % 5 == 0 or n % 50 == 1 else None,
          "HTTP 404" if n % 50 == 1 else None)
         for n in range(1, refs + 1)))
    conn.execute(
        "INSERT OR REPLACE INTO forge_sync_state (repo, newest_number, rate_remaining, rate_limit,"
        " rate_reset, rate_seen, refresh_at, refresh_changed, api, forge_kind, api_base)"
        " VALUES (?, ?, ?, 5000, strftime('%s', 'now', '+30 minutes'), datetime('now', ?),"
        " datetime('now', ?), 3, 'graphql', 'github', 'https://api.github.com')",
        (forge, refs, 4000 + hour, ago, ago))
    conn.execute(
        "INSERT INTO forge_runs (repo, pid, mode, started, ended, state, requests, resolved,"
        " failed) VALUES (?, 4242, 'sync', datetime('now', ?, '-10 minutes'), datetime('now', ?),"
        " 'finished', 50, ?, ?)",
        (forge, ago, ago, refs // 5, refs // 50))
    conn.commit()
    conn.close()


def timed(argv, env, cwd, expect=0):
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if out.returncode != expect:
        sys.exit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
    return wall, out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/patina-forge"))
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--refs", type=int, default=100_000, help="refs of all repositories together")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the world (its folder is printed)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="pf-bench-status-all.")
    # A copy, so that a concurrent `cargo build` cannot swap the binary mid-run.
    binary = os.path.join(work, "patina-forge")
    shutil.copy2(args.bin, binary)
    home = os.path.join(work, "patina-home")
    os.mkdir(home)
    env = dict(os.environ, PATINA_HOME=home, HOME=work, GIT_CONFIG_GLOBAL="/dev/null",
               GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    for var in ("GITHUB_TOKEN", "GH_TOKEN", "PATINA_FORGE_API_URL"):
        env.pop(var, None)

    started = time.perf_counter()
    share = args.refs // args.repos
    registry = ["repos:"]
    repos = []
    for i in range(args.repos):
        path = os.path.join(work, f"repo{i:02}")
        make_repo(path, f"https://github.com/acme/repo{i:02}.git")
        fill(binary, env, path, f"acme/repo{i:02}", share, hour=i)
        registry += [f"  r{i:02}:", f"    path: {path}"]
        repos.append(path)
    with open(os.path.join(home, "registry.yaml"), "w") as f:
        f.write("\n".join(registry) + "\n")
    # One repository with every ref, for a single --status of the same size.
    big = os.path.join(work, "big")
    make_repo(big, "https://github.com/acme/big.git")
    fill(binary, env, big, "acme/big", share * args.repos, hour=0)
    log(f"world built in {time.perf_counter() - started:.1f} s: {work}")

    contenders = [
        (f"`--status --all` ({args.repos} repositories)", [binary, "--status", "--all"]),
        (f"`--status --all --json`", [binary, "--status", "--all", "--json"]),
        (f"`--status` of one of them ({share:,} refs)", [binary, "-C", repos[0], "--status"]),
        (f"`--status` of one repository with {share * args.repos:,} refs",
         [binary, "-C", big, "--status"]),
    ]
    # The working folder is no repository, so --all lists the registry alone.
    times = {name: [] for name, _ in contenders}
    load_before = loadavg()
    for name, argv in contenders:
        _, out = timed(argv, env, work)
        if "--all" in argv and "--json" not in argv:
            table = out
    for _ in range(args.rounds):
        for name, argv in contenders:
            wall, _ = timed(argv, env, work)
            times[name].append(wall)
    load_after = loadavg()

    reference = statistics.median(times[contenders[3][0]])
    print(f"- Command: `python3 bench/status_all.py --repos {args.repos} --refs {args.refs} "
          f"--rounds {args.rounds}` (release build)")
    print(f"- Machine: {machine()}; load average {load_before} before, {load_after} after")
    print(f"- World: {args.repos} registered repositories with {share:,} refs each "
          f"({share * args.repos:,} in all); {args.rounds} interleaved rounds after a warm-up\n")
    print(f"| what | median wall (min, max) | × single `--status` of {share * args.repos:,} refs |")
    print("| --- | --- | ---: |")
    for name, _ in contenders:
        xs = times[name]
        median = statistics.median(xs)
        print(f"| {name} | {median * 1000:.1f} ms ({min(xs) * 1000:.1f}, {max(xs) * 1000:.1f}) "
              f"| {median / reference:.2f} |")
    log("\n" + table)
    if args.keep:
        log(f"kept: {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
