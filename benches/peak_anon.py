#!/usr/bin/env python3
"""Runs a command and reports its peak anonymous memory: the most `RssAnon` of
/proc/PID/status held while it ran (resident memory less the pages of mapped files, so a
memory-mapped input does not count), sampled every 20 ms, and its wall time.

    python3 benches/peak_anon.py OUT_FILE -- COMMAND ARGS...

The command's stdout goes to OUT_FILE; one line goes to stdout: `peak_anon_mib wall_s exit`.
A peak shorter than the sampling interval can be missed: a lower bound, as every sampler's.
"""
import subprocess
import sys
import time


def status_kib(pid, field):
    """A memory field of /proc/PID/status (`VmRSS`, `RssAnon`, …) in KiB; 0 once the process
    is gone. benches/spark_bench.py reads its processes' RSS through this too."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: peak_anon.py OUT_FILE -- COMMAND ARGS...")
    out, cmd = sys.argv[1], sys.argv[3:]
    start = time.monotonic()
    with open(out, "wb") as sink:
        p = subprocess.Popen(cmd, stdout=sink)
        peak = 0
        while p.poll() is None:
            peak = max(peak, status_kib(p.pid, "RssAnon"))
            time.sleep(0.02)
    wall = time.monotonic() - start
    print(f"{peak / 1024:.0f} {wall:.2f} {p.returncode}")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
