#!/usr/bin/env python3
"""The phases of a `claimline load --json` report, in the order they run, for the benchmark
scripts (`throughput.sh`, `load.sh`): one line of comma-separated seconds.

    benches/phases.py REPORT.json    # setup,scan,history,commit,current
"""
import json
import sys

PHASES = ("setup", "scan", "history", "commit", "current")

with open(sys.argv[1]) as f:
    phases = json.load(f)["phases"]
print(",".join(str(phases[k]) for k in PHASES))
