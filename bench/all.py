#!/usr/bin/env python3
"""`--all` benchmark: ten registered repositories on one fake GitHub, drained
once, then what a timer's hourly `--resume --all` costs when nothing changed
(requests sent, wall time), beside the ten `--repo NAME --resume` runs that
ten per-repository timers would make; and a no-change discovery of all ten
(`--all --offline`) beside ten single discoveries.

    cargo build --release && cargo build --release --example fake-forge \
        && python3 bench/all.py [--repos 10] [--commits 2000] [--rounds 3]

The no-change runs use the default `--delay` (750 ms): a refresh of an
unchanged repository is one conditional request (304, not counted by GitHub's
primary limit), still paced, so the wall time is mostly that spacing.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import loadavg, log, machine, stop_fake  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "patina-bench-fake-token"


def make_repo(path, name, commits, items):
    """A repository whose commits mention numbers 1..items, via fast-import
    (consecutive commits to one branch chain by themselves)."""
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
    subprocess.run(["git", "-C", path, "remote", "add", "origin",
                    f"https://github.com/acme/{name}.git"], check=True)
    lines = []
    for i in range(1, commits + 1):
        msg = f"fix: change {i} (#{(i * 7) % items + 1})\n".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"committer B <b@b> {1_600_000_000 + i * 60} +0000\n".encode())
        lines.append(f"data {len(msg)}\n".encode() + msg)
        lines.append(b"\n")
    subprocess.run(["git", "-C", path, "fast-import", "--quiet"], input=b"".join(lines), check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/patina-forge"))
    ap.add_argument("--fake", default=os.path.join(ROOT, "target/release/examples/fake-forge"))
    ap.add_argument("--repos", type=int, default=10)
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pf-bench-all.")
    load_before = loadavg()
    names = [f"r{i:02}" for i in range(args.repos)]
    fake_log = os.path.join(work, "fake.log")
    fake_argv = [args.fake, "--items", str(args.items), "--rate-limit", "1000000000",
                 "--graphql-limit", "1000000000", "--token", TOKEN, "--log", fake_log]
    for name in names:
        fake_argv += ["--repo", f"acme/{name}"]
    fake = subprocess.Popen(fake_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        url = fake.stdout.readline().strip()
        home = os.path.join(work, "home")
        os.makedirs(home)
        env = dict(os.environ, PATINA_HOME=home, HOME=work, GITHUB_TOKEN=TOKEN, LC_ALL="C",
                   GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
        env.pop("GH_TOKEN", None)
        env.pop("PATINA_FORGE_API_URL", None)
        registry = ["version: 1", "repos:"]
        for name in names:
            path = os.path.join(work, "repos", name)
            make_repo(path, name, args.commits, args.items)
            registry += [f"  {name}:", f"    path: {path}", f"    github: acme/{name}"]
        with open(os.path.join(home, "registry.yaml"), "w") as f:
            f.write("\n".join(registry) + "\n")

        def requests():
            with open(fake_log) as f:
                return sum(1 for _ in f)

        def run(argv):
            start = time.perf_counter()
            out = subprocess.run(argv, env=env, cwd=work, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            wall = time.perf_counter() - start
            if out.returncode != 0:
                sys.exit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
            return wall

        # Each repository learns the fake's address once (kept with it).
        for name in names:
            run([args.bin, "--repo", name, "--api-url", url])
        log(f"draining {args.repos} repositories of {args.items} numbers (5 ms spacing)...")
        before = requests()
        first = run([args.bin, "--all", "--resume", "--delay", "5ms"])
        first_requests = requests() - before

        rows = []
        for label, argvs in [
            ("`--all --offline` (discovery, no change)", [[args.bin, "--all", "--offline"]]),
            (f"{args.repos} × `--repo NAME --offline`",
             [[args.bin, "--repo", n, "--offline"] for n in names]),
            ("`--resume --all` (no change)", [[args.bin, "--all", "--resume"]]),
            (f"{args.repos} × `--repo NAME --resume`",
             [[args.bin, "--repo", n, "--resume"] for n in names]),
        ]:
            walls, sent = [], []
            for _ in range(args.rounds):
                before = requests()
                walls.append(sum(run(argv) for argv in argvs))
                sent.append(requests() - before)
            rows.append((label, statistics.median(walls), min(walls), sent))
    finally:
        stop_fake(fake)
    shutil.rmtree(work, ignore_errors=True)

    print(f"- Machine: {machine()}; load average {load_before} before, {loadavg()} after.")
    print(f"- World: {args.repos} repositories of {args.commits} commits each, on one fake "
          f"GitHub with {args.items} numbers each; the first `--resume --all --delay 5ms` "
          f"drained them in {first:.1f} s with {first_requests} requests.")
    print()
    print("| run | median wall | min wall | requests (each round) |")
    print("| --- | --- | --- | --- |")
    for label, median, least, sent in rows:
        print(f"| {label} | {median * 1000:,.0f} ms | {least * 1000:,.0f} ms | "
              f"{', '.join(map(str, sent))} |")


if __name__ == "__main__":
    main()
