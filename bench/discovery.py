#!/usr/bin/env python3
"""Discovery benchmark: patina-forge against `git log` on the same repository.

    python3 bench/discovery.py                      # 300k commits, 5 rounds
    python3 bench/discovery.py --commits 20000 --rounds 3 --reuse

Rows, interleaved A B C D A B C D ... so that machine noise hits all alike:
  A  git log --format=%B HEAD > /dev/null              (the baseline: reads every message)
  B  full discovery into a fresh db
  C  incremental: db knows the old tip, repository has --new more commits
  D  nothing new: C run again on the db C left

Each child is started (fork + exec) and reaped with os.wait4 by a lean runner
process: wall time from perf_counter, peak RSS from ru_maxrss. Every discovery
run's db is checked against planted.json (the exact set of true ref numbers the
generator wrote); a mismatch exits non-zero after the timings are printed.
Output: a Markdown block for BENCHMARKS.md on stdout, progress on stderr.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

from common import capture, loadavg, log, machine

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
FORGE = "acme/widget"
TARGET_FULL_RATIO = 0.7  # full discovery wall <= 0.7 x git log wall
TARGET_SMALL_MS = 20.0  # incremental and nothing-new runs


# --------------------------------------------------------------------------
# measuring one child
# --------------------------------------------------------------------------
# Peak RSS from wait4 is not the child's alone: Linux folds into it the RSS of
# the memory image the child had before exec. With posix_spawn (vfork) that is
# the parent's whole peak, with fork a copy of the parent's heap. So children
# are started by this lean runner (python -I -S: ~5 MiB), not by the main
# process with its planted-ref sets; the floor left is reported (/bin/true).
RUNNER = r"""
import os, sys, time
for line in sys.stdin:
    out, err, *argv = line.rstrip("\n").split("\t")
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    sys.stdout.write(f"{wall!r} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}\n")
    sys.stdout.flush()
"""


class Runner:
    """Runs one child at a time in the lean runner process and returns
    (wall seconds, peak RSS KiB, exit code) measured there with wait4."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", RUNNER],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def measure(self, argv, stdout_path, stderr_path):
        fields = [stdout_path, stderr_path, *argv]
        assert not any("\t" in f or "\n" in f for f in fields), fields
        self.proc.stdin.write("\t".join(fields) + "\n")
        self.proc.stdin.flush()
        wall, rss, code = self.proc.stdout.readline().split()
        return float(wall), int(rss), int(code)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Row:
    """Samples of one benchmark row."""

    def __init__(self, key, label):
        self.key, self.label = key, label
        self.walls, self.rss = [], []
        self.failures = []  # correctness or exit-status problems, any round

    def add(self, wall, rss):
        self.walls.append(wall)
        self.rss.append(rss)

    @property
    def median(self):
        return statistics.median(self.walls) if self.walls else None


# --------------------------------------------------------------------------
# repositories
# --------------------------------------------------------------------------
def read_meta(repo):
    try:
        with open(os.path.join(repo, "planted.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def repo_ok(repo, commits):
    """A generated repository with the expected count whose HEAD is what the
    generator recorded (so a half-finished or hand-edited one is redone)."""
    meta = read_meta(repo)
    return (meta is not None and meta.get("commits") == commits
            and capture("git", "-C", repo, "rev-parse", "HEAD") == meta.get("head"))


def generate(args, base, plus):
    """(Re)create the base repository and its copy with --new more commits.
    Returns the seconds spent generating the base (None when reused)."""
    gen = [sys.executable, os.path.join(BENCH, "gen-repo.py")]
    gen_secs = None
    if args.reuse and repo_ok(base, args.commits):
        log(f"reusing {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
        log(f"generating {base} ({args.commits} commits) ...")
        t = time.perf_counter()
        subprocess.run(gen + [base, str(args.commits), str(args.seed)], check=True)
        gen_secs = time.perf_counter() - t
    if args.reuse and gen_secs is None and repo_ok(plus, args.commits + args.new):
        log(f"reusing {plus}")
    else:
        shutil.rmtree(plus, ignore_errors=True)
        log(f"copying to {plus} and appending {args.new} commits ...")
        # a full copy, not a clone: same pack and commit-graph as the base, plus
        # one small pack of new commits, like a clone after a fetch
        subprocess.run(["cp", "-a", base, plus], check=True)
        subprocess.run(gen + ["--append", str(args.new), plus, str(args.seed + 1)], check=True)
    return gen_secs


def repo_shape(repo, meta):
    pack_dir = os.path.join(repo, ".git", "objects", "pack")
    packs = [f for f in os.listdir(pack_dir) if f.endswith(".pack")]
    size = sum(os.path.getsize(os.path.join(pack_dir, f)) for f in packs)
    graph = os.path.exists(os.path.join(repo, ".git", "objects", "info", "commit-graph"))
    merges = capture("git", "-C", repo, "rev-list", "--merges", "--count", "HEAD")
    roots = capture("git", "-C", repo, "rev-list", "--max-parents=0", "--count", "HEAD")
    octo = capture("git", "-C", repo, "rev-list", "--min-parents=3", "--count", "HEAD")
    return (f"{meta['commits']} commits ({merges} merges, {octo} octopus, {roots} roots), "
            f"{len(packs)} pack{'s' if len(packs) != 1 else ''} of {size / 2**20:.0f} MiB"
            f"{' + commit-graph' if graph else ''}, {meta['planted_refs']} planted refs")


# --------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------
NUMBER_COLUMNS = ("number", "num", "ref_number", "issue_number", "ref_num", "issue", "pr", "n")


def db_refs(db):
    """(row count, set of numbers or None when no number column is recognisable)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count = con.execute("SELECT count(*) FROM forge_refs WHERE repo=?", (FORGE,)).fetchone()[0]
        cols = [r[1] for r in con.execute("PRAGMA table_info(forge_refs)")]
        col = next((c for c in NUMBER_COLUMNS if c in cols), None)
        nums = None
        if col:
            nums = {r[0] for r in con.execute(
                f'SELECT "{col}" FROM forge_refs WHERE repo=?', (FORGE,))}
        return count, nums
    finally:
        con.close()


def check_db(db, planted):
    """Empty string when the db holds exactly the planted refs, else why not."""
    if not os.path.exists(db):
        return "no db file was written"
    try:
        count, nums = db_refs(db)
    except sqlite3.Error as e:
        return f"cannot read forge_refs: {e}"
    if nums is not None and nums != planted:
        missing, extra = sorted(planted - nums), sorted(nums - planted)
        return (f"{len(missing)} planted refs missing (e.g. {missing[:5]}), "
                f"{len(extra)} unplanted refs found (e.g. {extra[:5]})")
    if count != len(planted):
        return f"{count} rows for {FORGE}, {len(planted)} refs planted"
    return ""


def explain(repo, numbers, limit=5):
    """Where the disputed numbers appear in the history: one line per number,
    so a mismatch can be judged (generator bug or miner bug) at a glance.
    A `#N` or `/N` occurrence is preferred over the same digits in a branch name."""
    want = set(numbers[:limit])
    out = subprocess.run(["git", "-C", repo, "log", "-z", "--format=%h%n%B", "HEAD"],
                         check=True, stdout=subprocess.PIPE).stdout.decode(errors="replace")
    seen = {}  # number -> (preferred?, text)
    for entry in out.split("\0"):
        sha, _, body = entry.strip("\n").partition("\n")
        for line in body.split("\n"):
            for m in re.finditer(r"([#/]?)(\d+)", line):
                n, strong = int(m.group(2)), bool(m.group(1))
                if n in want and (n not in seen or strong and not seen[n][0]):
                    seen[n] = (strong, f"{sha}: {line.strip()[:100]}")
    return [f"  #{n}: {seen[n][1] if n in seen else 'not found in any message'}"
            for n in sorted(want)]


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def fmt_ms(s):
    return "n/a" if s is None else f"{s * 1000:.1f} ms" if s < 10 else f"{s:.2f} s"


def fmt_rss(kib):
    return f"{kib / 1024:.1f} MiB"


def report(args, rows, shape, plus_shape, gen_secs, binary_note, problems, planted_counts,
           floor_kib, load):
    git_row = rows["git"]
    base_med, base_rss = git_row.median, max(git_row.rss) if git_row.rss else None
    cmd = shlex.join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)]
                     + sys.argv[1:])
    gitv = (capture("git", "--version") or "git ?").replace("git version ", "git ")
    rustv = capture("rustc", "--version") or "rustc ?"
    print(f"### Discovery benchmark ({time.strftime('%Y-%m-%d')})\n")
    print(f"- Command (from the crate root): `{cmd}`")
    print(f"- Machine: {machine()}; load average {load[0]} before, {load[1]} after")
    print(f"- Tools: {gitv}, {rustv}, {binary_note}")
    print(f"- Repository: {shape}")
    print(f"- Incremental copy: {plus_shape}; the {args.new} new commits include a merge of "
          f"a branch dated older than the old tip")
    if gen_secs is not None:
        print(f"- Generation: {gen_secs:.1f} s (`bench/gen-repo.py`, seed {args.seed})")
    print(f"- {args.rounds} interleaved rounds after one warm-up of each; page cache warm; "
          f"RSS floor of the method (`true`): {fmt_rss(floor_kib)}\n")
    print("| run | median wall | min wall | max RSS | vs git log (wall / RSS) | target | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- | :---: |")
    targets = {"git": "baseline",
               "full": f"≤ {TARGET_FULL_RATIO}× git log wall, RSS ≤ git log",
               "inc": f"< {TARGET_SMALL_MS:.0f} ms, RSS ≤ git log",
               "none": f"< {TARGET_SMALL_MS:.0f} ms, RSS ≤ git log"}
    missed = []
    for key, row in rows.items():
        if not row.walls:
            print(f"| {row.label} | n/a | n/a | n/a | | {targets[key]} | — |")
            continue
        med, rss = row.median, max(row.rss)
        ratio = f"{med / base_med:.2f}× / {rss / base_rss:.2f}×" if base_med else ""
        if key == "git":
            ok, ratio = "", "1×"
        else:
            rss_ok = base_rss is not None and rss <= base_rss
            wall_ok = (base_med is not None and med <= TARGET_FULL_RATIO * base_med
                       if key == "full" else med * 1000 < TARGET_SMALL_MS)
            ok = "✅" if wall_ok and rss_ok and not row.failures else "❌"
            if ok == "❌":
                missed.append(row.label)
        print(f"| {row.label} | {fmt_ms(med)} | {fmt_ms(min(row.walls))} | {fmt_rss(rss)} "
              f"| {ratio} | {targets[key]} | {ok} |")
    print()
    if problems:
        print("**Correctness: FAILED**\n")
        for p in problems:
            print(f"- {p}")
    elif rows["full"].walls:
        print(f"Correctness: every discovery db held exactly the planted refs "
              f"({planted_counts[0]} after the full run, {planted_counts[1]} after the "
              f"incremental ones).")
    return missed


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--commits", type=int, default=300_000, help="history size (default 300000)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "patina-forge"),
                    help="patina-forge binary (default target/release/patina-forge)")
    ap.add_argument("--work", default=os.path.join(BENCH, "work"),
                    help="repositories, dbs and logs (default bench/work)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep existing generated repositories with the right commit count")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--new", type=int, default=100,
                    help="commits added for the incremental run (default 100)")
    ap.add_argument("--git-only", action="store_true", help="only the git log baseline")
    ap.add_argument("--strict", action="store_true",
                    help="also exit non-zero when a performance target is missed")
    args = ap.parse_args()

    # sampled before generating, which would otherwise show up as our own load
    load_before = loadavg()
    if load_before != "?" and float(load_before) > 0.5:
        log(f"warning: load average {load_before}; timings will be noisy")
    work = os.path.abspath(args.work)
    os.makedirs(os.path.join(work, "dbs"), exist_ok=True)
    base = os.path.join(work, f"repo-{args.commits}-s{args.seed}")
    plus = f"{base}-plus{args.new}"
    gen_secs = generate(args, base, plus)
    meta, plus_meta = read_meta(base), read_meta(plus)
    planted, plus_planted = set(meta["refs"]), set(plus_meta["refs"])
    shape, plus_shape = repo_shape(base, meta), repo_shape(plus, plus_meta)

    dbs = os.path.join(work, "dbs")
    snap, full_db, inc_db = (os.path.join(dbs, n) for n in ("snapshot.db", "full.db", "inc.db"))
    out_txt, err_txt = os.path.join(work, "stdout.txt"), os.path.join(work, "stderr.txt")
    git = shutil.which("git")
    binary = os.path.abspath(args.bin)

    def rm_db(path):
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    def copy_db(src, dst):
        rm_db(dst)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(src + suffix):
                shutil.copyfile(src + suffix, dst + suffix)

    def forge(repo, db):
        # --offline: what is measured is the walk and the database writes; the
        # one request for the number range would time the network instead.
        return [binary, "-C", repo, "--forge", FORGE, "--db", db, "--offline"]

    runner = Runner()
    rows = {"git": Row("git", "`git log --format=%B HEAD > /dev/null`"),
            "full": Row("full", "full discovery, fresh db"),
            "inc": Row("inc", f"incremental, {args.new} new commits"),
            "none": Row("none", "nothing new")}
    floor = []  # peak RSS of /bin/true started the same way: the method's floor
    true_bin = shutil.which("true")
    failures = {}  # message -> rounds, so a failure repeated every round is one line

    def fail(row, rnd, why):
        row.failures.append(why)
        failures.setdefault(f"{row.label}: {why}", []).append(rnd)

    def run(row, argv, rnd, db=None, expect=None, stdout=out_txt, show=False):
        """One timed run (round 0 is the warm-up and not recorded); checks the
        db afterwards. Returns whether the process exited 0."""
        wall, rss, code = runner.measure(argv, stdout, err_txt)
        if show:
            with open(stdout, errors="replace") as f:
                log(f"{row.label} said:\n  " + "\n  ".join(f.read().splitlines()[:10]))
        if code != 0:
            with open(err_txt, errors="replace") as f:
                tail = f.read().strip().splitlines()[-3:]
            fail(row, rnd, f"exit {code}: {' | '.join(tail)}")
            return False
        if rnd > 0:
            row.add(wall, rss)
        if expect is not None:
            why = check_db(db, expect)
            if why:
                fail(row, rnd, why)
        return True

    def git_log(rnd):
        run(rows["git"], [git, "-C", base, "log", "--format=%B", "HEAD"], rnd, stdout=os.devnull)

    # warm-up (round 0): fills the page cache and takes the db snapshot that
    # every incremental repetition starts from ("db knows the old tip")
    binary_note = "patina-forge: not run (--git-only)"
    git_log(0)
    forge_ok = not args.git_only
    if forge_ok and not os.access(binary, os.X_OK):
        binary_note = f"patina-forge: {binary} not found"
        fail(rows["full"], 0, f"{binary} does not exist (cargo build --release)")
        forge_ok = False
    elif forge_ok:
        ver = capture(binary, "--version") or "patina-forge (no --version)"
        commit = capture("git", "-C", ROOT, "rev-parse", "--short", "HEAD")
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary)))
        binary_note = ver + (f" (crate HEAD {commit}, binary built {built})" if commit else "")
        # run a private copy: a concurrent `cargo build` must not swap the
        # binary between rounds
        shutil.copy2(binary, os.path.join(work, "patina-forge"))
        binary = os.path.join(work, "patina-forge")
        rm_db(snap)
        # a wrong count still gives timings; no db at all means nothing to time
        forge_ok = run(rows["full"], forge(base, snap), 0, snap, planted, show=True) \
            and os.path.exists(snap)

    for rnd in range(1, args.rounds + 1):
        log(f"round {rnd}/{args.rounds}")
        floor.append(runner.measure([true_bin], os.devnull, os.devnull)[1])
        git_log(rnd)
        if not forge_ok:
            continue
        rm_db(full_db)
        run(rows["full"], forge(base, full_db), rnd, full_db, planted)
        copy_db(snap, inc_db)
        if run(rows["inc"], forge(plus, inc_db), rnd, inc_db, plus_planted, show=rnd == 1):
            run(rows["none"], forge(plus, inc_db), rnd, inc_db, plus_planted, show=rnd == 1)
    runner.close()
    problems = [f"{msg} (round{'s' if len(r) > 1 else ''} {', '.join(map(str, r))})"
                for msg, r in failures.items()]

    # on a wrong count, show where a few disputed numbers occur in the history
    if forge_ok:
        try:
            _, nums = db_refs(snap)
        except sqlite3.Error:
            nums = None
        if nums is not None and nums != planted:
            details = ["missing from the db:"] + explain(base, sorted(planted - nums))
            details += ["not planted but in the db:"] + explain(base, sorted(nums - planted))
            log("\n".join(details))
            problems.append("where some disputed numbers occur (full run):\n\n  ```\n"
                            + "\n".join("  " + d for d in details) + "\n  ```")

    missed = report(args, rows, shape, plus_shape, gen_secs, binary_note, problems,
                    (len(planted), len(plus_planted)), max(floor),
                    (load_before, loadavg()))
    if problems:
        log(f"FAILED: {len(problems)} problem(s), see above")
        sys.exit(1)
    if args.strict and missed:
        log(f"targets missed: {', '.join(missed)}")
        sys.exit(3)


if __name__ == "__main__":
    main()
