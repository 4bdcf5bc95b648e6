#!/usr/bin/env python3
"""Projection benchmark: what keeping patina.db a projection of our store
costs, and what rebuilding it costs when patina deleted or overwrote it.

    cargo build --release && cargo build --release --example fake-forge \
        && python3 bench/projection.py

One drain (GraphQL, with the discussion) of a 17,488-number repository from
the fake forge fills our store and patina.db; both files are then kept as a
snapshot, and every row below starts from a fresh copy of it. The rows run
interleaved, A B C D E A B C D E ..., and report the median and minimum wall
time of the whole process and the requests the fake received (from its log).

  A  nothing to do: `--limit 1` with nothing pending (the projection check
     every writing run makes on open, then the checkpoint on close)
  B  patina.db deleted (as `patina repo update` does): `--limit 1` rebuilds
     the whole projection
  C  code_fts emptied and refilled with code rows (patina's code scrape):
     `--limit 1` writes the forge rows again
  D  patina's own forge scrape wrote every row over ours (INSERT OR REPLACE
     with its column lists): `--limit 1` repairs them, no event appended
  E  a refresh that finds nothing changed: `--resume` (one conditional
     request, answered 304)
  F  for scale: `--status`, a process that opens our store read-only and
     writes nothing

Then, on a copy of the snapshot with Python's sqlite3 (the same SQL the
binary runs): the code_fts upkeep of one item (delete its row found through
the index by its URL, insert the new one) over every item, and the
checkpoint of a WAL after a run that stored a page of 100 items.
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

from common import capture, loadavg, log, machine, stop_fake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORGE = "acme/widget"
TOKEN = "patina-bench-fake-token"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/patina-forge"))
    ap.add_argument("--fake", default=os.path.join(ROOT, "target/release/examples/fake-forge"))
    ap.add_argument("--items", type=int, default=17_488)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pf-bench-projection.")
    binary = os.path.join(work, "patina-forge")
    shutil.copy2(args.bin, binary)
    load_before = loadavg()
    fake_log = os.path.join(work, "fake.log")
    fake = subprocess.Popen(
        [args.fake, "--repo", FORGE, "--items", str(args.items), "--missing-every", "500",
         "--deleted-every", "700", "--rate-limit", "1000000000", "--graphql-limit", "1000000000",
         "--token", TOKEN, "--log", fake_log],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = fake.stdout.readline().strip()
        repo = os.path.join(work, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
        subprocess.run(["git", "-C", repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit",
                        "-q", "--allow-empty", "-m", "fix: start (#1)"], check=True)
        env = dict(os.environ, PATINA_HOME=os.path.join(work, "home"), HOME=work,
                   GITHUB_TOKEN=TOKEN, PATINA_FORGE_API_URL=url, LC_ALL="C",
                   GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
        env.pop("GH_TOKEN", None)
        base = [binary, "-C", repo, "--forge", FORGE]
        data = os.path.join(repo, ".patina/local/data")
        db = os.path.join(data, "patina.db")

        def requests():
            with open(fake_log) as f:
                return sum(1 for _ in f)

        def run(argv):
            start = time.perf_counter()
            out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
            wall = time.perf_counter() - start
            if out.returncode != 0:
                sys.exit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
            return wall

        run(base)
        log("draining (GraphQL, 5 ms spacing)...")
        drain_wall = run(base + ["--resume", "--delay", "5ms"])
        snap = os.path.join(work, "snapshot")
        shutil.copytree(data, snap)
        items = count(db, "SELECT (SELECT count(*) FROM forge_issues) + (SELECT count(*) FROM forge_prs)")
        events = count(db, "SELECT count(*) FROM eventlog")
        log(f"drained {items} items in {drain_wall:.1f} s")

        def restore():
            shutil.rmtree(data)
            shutil.copytree(snap, data)

        def harm_none():
            pass

        def harm_delete():
            os.remove(db)

        def harm_code_scrape():
            with sqlite3.connect(db) as c:
                c.execute("DELETE FROM code_fts")
                c.executemany("INSERT INTO code_fts (symbol_name, file_path, content, event_type)"
                              " VALUES (?, ?, ?, 'code.function')",
                              ((f"f{i}", f"src/m{i % 100}.rs", f"fn f{i}() {{}}") for i in range(20_000)))
            c.close()

        def harm_replace():
            with sqlite3.connect(db) as c:
                c.executescript(
                    "INSERT OR REPLACE INTO forge_issues (number, title, body, state, labels, author,"
                    " created_at, updated_at, url, event_seq) SELECT number, title, body, state,"
                    " labels, author, created_at, updated_at, url, 1 FROM forge_issues;"
                    "INSERT OR REPLACE INTO forge_prs (number, title, body, state, labels, author,"
                    " created_at, merged_at, url, linked_issues, approvals, event_seq) SELECT number,"
                    " title, body, state, labels, author, created_at, merged_at, url, '[]', 0, NULL"
                    " FROM forge_prs;")
            c.close()

        rows = [
            ("A nothing to do (`--limit 1`): the check on open", harm_none, ["--limit", "1"]),
            ("B patina.db deleted: the whole projection (`--limit 1`)", harm_delete, ["--limit", "1"]),
            ("C code_fts emptied, 20,000 code rows: forge rows again (`--limit 1`)", harm_code_scrape,
             ["--limit", "1"]),
            ("D every row replaced by patina's forge scrape (`--limit 1`)", harm_replace,
             ["--limit", "1"]),
            ("E a refresh, nothing changed (`--resume`)", harm_none, ["--resume", "--delay", "5ms"]),
            ("F for scale: `--status` (reads our store only; no check, no write)", harm_none,
             ["--status"]),
        ]
        times = {name: [] for name, _, _ in rows}
        asked = {name: [] for name, _, _ in rows}
        checks = {name: set() for name, _, _ in rows}
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for name, harm, extra in rows:
                restore()
                harm()
                before = requests()
                times[name].append(run(base + extra))
                time.sleep(0.05)
                asked[name].append(requests() - before)
                checks[name].add((
                    count(db, "SELECT (SELECT count(*) FROM forge_issues) + (SELECT count(*) FROM forge_prs)"),
                    count(db, "SELECT count(*) FROM eventlog"),
                    count(db, "SELECT count(*) FROM code_fts WHERE event_type LIKE 'forge.%'"),
                    count(db, "SELECT count(*) FROM forge_prs WHERE approvals > 0"),
                    os.path.exists(db + "-wal") and os.path.getsize(db + "-wal") > 0,
                ))
        restore()
        fts = fts_upkeep(data)
        check = check_cost(data)
        ckpt = checkpoint_cost(data, work)
        load_after = loadavg()
    finally:
        stop_fake(fake)

    version = capture(binary, "--version") or "?"
    head = capture("git", "-C", ROOT, "rev-parse", "--short", "HEAD") or "?"
    print(f"### Projection benchmark ({time.strftime('%Y-%m-%d')})\n")
    print(f"- Command (from the crate root): `python3 bench/projection.py --rounds {args.rounds}`")
    print(f"- Machine: {machine()}; load average {load_before} before, {load_after} after")
    print(f"- patina-forge {version} (crate HEAD {head}); SQLite of Python (micro rows) "
          f"{sqlite3.sqlite_version}")
    print(f"- Fake: `examples/fake-forge.rs`, {args.items} numbers (404 every 500th, 410 every "
          f"700th), GraphQL with its discussion; the first drain took {drain_wall:.1f} s and "
          f"stored {items} items, {events} events")
    print()
    print("| row | median wall | min | requests | after: items, events, code_fts forge rows, "
          "PRs with approvals, WAL left |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, _, _ in rows:
        t = times[name]
        print(f"| {name} | {statistics.median(t) * 1000:.0f} ms | {min(t) * 1000:.0f} ms | "
              f"{'/'.join(str(n) for n in sorted(set(asked[name])))} | "
              f"{'; '.join(str(c) for c in sorted(checks[name]))} |")
    print()
    print(f"- code_fts upkeep, one item at a time as a drain does it (delete its row found "
          f"through the index by the URL's last segment, insert the new one), over all {fts[0]} items in one "
          f"transaction: {fts[1] * 1000:.0f} ms, {fts[1] / fts[0] * 1e6:.0f} µs an item")
    print(f"- code_fts check on open (forge rows counted per type through the index): "
          f"{fts[2] * 1000:.2f} ms median")
    print(f"- the projection check's comparison (refs, items with their events; SQL of "
          f"`project::reconcile`, nothing to repair): {check * 1000:.1f} ms median")
    print(f"- checkpoint after a run that stored a page of 100 items (both files): "
          f"{ckpt[0] * 1000:.1f} ms median; after 1,000 items: {ckpt[1] * 1000:.1f} ms")


def count(db, sql):
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def fts_upkeep(data):
    """Per-item upkeep over every item, as `project::fts_item` runs it, and
    the open-time check, as `project::fts_whole` runs it."""
    c = sqlite3.connect(os.path.join(data, "patina.db"))
    rows = c.execute(
        "SELECT 'forge.issue', url, title, coalesce(body, '') FROM forge_issues UNION ALL "
        "SELECT 'forge.pr', url, title, coalesce(body, '') || ' ' FROM forge_prs").fetchall()
    start = time.perf_counter()
    c.execute("BEGIN")
    for kind, url, title, content in rows:
        last = url.rstrip("/").rsplit("/", 1)[-1]
        phrase = 'file_path : "' + last.replace('"', '""') + '"'
        c.execute("DELETE FROM code_fts WHERE rowid IN (SELECT rowid FROM code_fts WHERE code_fts "
                  "MATCH ?) AND file_path = ? AND event_type = ?", (phrase, url, kind))
        c.execute("INSERT INTO code_fts (symbol_name, file_path, content, event_type) "
                  "VALUES (?, ?, ?, ?)", (title, url, content, kind))
    c.execute("ROLLBACK")
    upkeep = time.perf_counter() - start
    checks = []
    for _ in range(20):
        start = time.perf_counter()
        c.execute("SELECT (SELECT count(*) FROM code_fts WHERE code_fts MATCH "
                  "'event_type : \"forge.issue\"'), "
                  "(SELECT count(*) FROM code_fts WHERE code_fts MATCH "
                  "'event_type : \"forge.pr\"')").fetchone()
        checks.append(time.perf_counter() - start)
    c.close()
    return len(rows), upkeep, statistics.median(checks)


def check_cost(data):
    """The comparisons `project::reconcile` makes when nothing differs."""
    c = sqlite3.connect(os.path.join(data, "patina-forge.db"))
    c.execute("ATTACH DATABASE ? AS patina", (os.path.join(data, "patina.db"),))
    sqls = [
        "SELECT count(*) FROM main.forge_refs m LEFT JOIN patina.forge_refs p"
        " ON p.repo = m.repo AND p.ref_number = m.ref_number WHERE p.ref_number IS NULL"
        " OR p.ref_kind IS NOT m.ref_kind OR p.discovered IS NOT m.discovered"
        " OR p.source IS NOT m.source OR p.resolved IS NOT m.resolved OR p.error IS NOT m.error",
        "SELECT m.number FROM main.forge_issues m LEFT JOIN patina.forge_issues p ON p.number = m.number"
        " LEFT JOIN patina.eventlog e ON e.seq = p.event_seq WHERE p.number IS NULL"
        " OR p.title IS NOT m.title OR p.body IS NOT m.body OR p.state IS NOT m.state"
        " OR p.labels IS NOT m.labels OR p.author IS NOT m.author OR p.created_at IS NOT m.created_at"
        " OR p.updated_at IS NOT m.updated_at OR p.url IS NOT m.url OR e.seq IS NULL"
        " OR e.event_type IS NOT 'forge.issue' OR e.source_id IS NOT CAST(m.number AS TEXT)"
        " OR e.data ->> '$.updated_at' IS NOT m.updated_at",
        "SELECT m.number FROM main.forge_prs m LEFT JOIN patina.forge_prs p ON p.number = m.number"
        " LEFT JOIN patina.eventlog e ON e.seq = p.event_seq WHERE p.number IS NULL"
        " OR p.title IS NOT m.title OR p.body IS NOT m.body OR p.state IS NOT m.state"
        " OR p.labels IS NOT m.labels OR p.author IS NOT m.author OR p.created_at IS NOT m.created_at"
        " OR p.merged_at IS NOT m.merged_at OR p.url IS NOT m.url"
        " OR p.linked_issues IS NOT m.linked_issues OR p.approvals IS NOT m.approvals"
        " OR e.seq IS NULL OR e.event_type IS NOT 'forge.pr'"
        " OR e.source_id IS NOT CAST(m.number AS TEXT) OR e.data ->> '$.updated_at' IS NOT m.updated_at",
    ]
    walls = []
    for _ in range(10):
        start = time.perf_counter()
        for sql in sqls:
            rows = c.execute(sql).fetchall()
            assert rows in ([(0,)], []), rows
        walls.append(time.perf_counter() - start)
    c.close()
    return statistics.median(walls)


def checkpoint_cost(data, work):
    """The checkpoint on close after a run that stored `n` items: their rows
    in both files, their events and search rows, as the projection writes."""
    out = []
    for n in (100, 1000):
        walls = []
        for _ in range(5):
            copy = os.path.join(work, "ckpt")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(data, copy)
            c = sqlite3.connect(os.path.join(copy, "patina-forge.db"), isolation_level=None)
            c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA synchronous = NORMAL")
            c.execute("ATTACH DATABASE ? AS patina", (os.path.join(copy, "patina.db"),))
            c.execute("PRAGMA patina.journal_mode = WAL")
            c.execute("PRAGMA patina.synchronous = NORMAL")
            numbers = [r[0] for r in c.execute(f"SELECT number FROM forge_issues LIMIT {n}")]
            for i in range(0, len(numbers), 100):
                c.execute("BEGIN IMMEDIATE")
                for k in numbers[i:i + 100]:
                    c.execute("UPDATE main.forge_issues SET title = title || ' ' WHERE number = ?", (k,))
                    c.execute("UPDATE patina.forge_issues SET title = title || ' ' WHERE number = ?", (k,))
                    c.execute("INSERT INTO patina.eventlog (event_type, timestamp, source_id, data) "
                              "VALUES ('forge.issue', '2026-01-01T00:00:00Z', ?, json_object('number', ?))",
                              (str(k), k))
                    c.execute("INSERT INTO patina.code_fts (symbol_name, file_path, content, event_type)"
                              " VALUES ('t', 'u', 'some words of a body', 'forge.issue')")
                c.execute("COMMIT")
            start = time.perf_counter()
            c.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchall()
            c.execute("PRAGMA patina.wal_checkpoint(PASSIVE)").fetchall()
            walls.append(time.perf_counter() - start)
            c.close()
        out.append(statistics.median(walls))
    return out


if __name__ == "__main__":
    main()
