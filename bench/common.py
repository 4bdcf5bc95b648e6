"""What the benchmark scripts share: logging, probing tools and describing
the machine a number was measured on."""

import os
import platform
import subprocess
import sys


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def capture(*argv, cwd=None):
    """Output of a helper command, or None when it fails (version probes etc.)."""
    try:
        return subprocess.run(argv, cwd=cwd, check=True, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def loadavg():
    """1-minute load average: a busy machine (a concurrent build) shows here."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} × {model} (nproc {capture('nproc') or '?'}){mem}, " \
           f"{platform.system()} {platform.release()}"


def stop_fake(fake):
    """Ends an `examples/fake-forge` started with a pipe on its stdin: end of
    file asks it to stop; one that does not within 10 s is killed."""
    import subprocess
    fake.stdin.close()
    try:
        fake.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fake.kill()
        fake.wait()
