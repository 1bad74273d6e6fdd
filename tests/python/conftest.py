"""Shared fixtures: the repository, the CLI binary `cargo test` built, and running it."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `claimline` binary (built by `cargo build`, which the test command runs first)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        binary = target / profile / "claimline"
        if binary.is_file():
            return binary
    pytest.fail("no claimline binary: run `cargo build -p claimline` first")


@pytest.fixture(scope="session")
def run_cli(cli):
    def run(*args, cwd=None, check=True):
        out = subprocess.run([str(cli), *map(str, args)], cwd=cwd, capture_output=True,
                             text=True)
        if check and out.returncode != 0:
            raise AssertionError(f"claimline {' '.join(map(str, args))}: {out.stderr}")
        return out
    return run


@pytest.fixture(scope="session")
def seven_year_export(tmp_path_factory, run_cli) -> Path:
    """A small synthetic seven-year v2 export (every claim type, versions, cancels)."""
    out = tmp_path_factory.mktemp("synth") / "export"
    run_cli("synth", "--benes", "4", "--years", "7", "--seed", "11", "--out", out)
    return out
