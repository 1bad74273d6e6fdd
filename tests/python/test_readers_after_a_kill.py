"""The Parquet dataset as readers see it after a load killed at each of its fault points:
pyarrow's dataset reader and DuckDB's glob both read whole files only, holding exactly the runs
committed so far (issue 14: a killed load left `_part-*.parquet` files that DuckDB counted)."""

import os
import subprocess

import duckdb
import pyarrow.dataset as ds
import pytest

POINTS = [
    ("scan.batch", False),
    ("load.before-commit", False),
    ("load.commit", False),
    ("load.between-commits", True),
    ("parquet.publish", True),
    ("current.swap", True),
]


def load(cli, source, out, run_id, fault=None):
    env = dict(os.environ)
    env.pop("CLAIMLINE_FAULT", None)
    if fault:
        env["CLAIMLINE_FAULT"] = fault
    return subprocess.run([str(cli), "load", str(source), "--out", str(out), "--run-id", run_id],
                          capture_output=True, text=True, env=env)


def committed_rows(out, table):
    """Rows of `table` by pyarrow's dataset reader and by DuckDB's README glob, per run."""
    root = out / "parquet" / table
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    by_pyarrow = dataset.to_table(columns=["run"]).column("run").to_pylist()
    con = duckdb.connect()
    by_duckdb = con.execute(
        f"SELECT run, count(*) FROM read_parquet('{root}/*/part-*.parquet', "
        "hive_partitioning = true) GROUP BY run ORDER BY run").fetchall()
    # DuckDB's glob of every file, hidden names included, must see the same.
    everything = con.execute(
        f"SELECT run, count(*) FROM read_parquet('{out}/parquet/{table}/*/*', "
        "hive_partitioning = true) GROUP BY run ORDER BY run").fetchall()
    assert everything == by_duckdb
    counts = {}
    for run in by_pyarrow:
        counts[run] = counts.get(run, 0) + 1
    assert sorted(counts.items()) == by_duckdb
    return dict(by_duckdb)


@pytest.mark.parametrize("point,committed", POINTS)
def test_readers_see_only_whole_committed_runs_after_a_kill(point, committed, repo, cli,
                                                           tmp_path):
    first, second = repo / "sample-data/generated/v2", repo / "sample-data/generated/v3"
    out = tmp_path / "out"
    assert load(cli, first, out, "r1").returncode == 0
    before = committed_rows(out, "cclf1")
    killed = load(cli, second, out, "r2", fault=point)
    assert killed.returncode != 0 and f"fault point {point} reached" in killed.stderr
    after = committed_rows(out, "cclf1")
    if point == "parquet.publish":
        # One table's partition of r2 may already be in place: only whole files either way, and
        # the run completes on the next command.
        assert after["r1"] == before["r1"]
    elif point == "current.swap":
        # Killed after the commit, while `current/` was being refreshed: r2 is whole.
        assert after["r1"] == before["r1"] and after["r2"] > 0
    else:
        assert after == before
    # The next command repairs (or removes) what the killed one left.
    assert load(cli, repo / "sample-data/generated/v1", out, "r3").returncode == 0
    runs = committed_rows(out, "cclf1")
    assert ("r2" in runs) == committed
    assert runs["r1"] == before["r1"]
