"""Shared fixtures: the real data root and one small model trained through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.datasets.paths import DataRootError, resolve_data_root

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    try:
        return resolve_data_root()
    except DataRootError:
        return None


DATA_ROOT = _data_root()
NO_DATA_REASON = ("real data root not found (set HYDROLENS_DATA_ROOT or place ../shared/data beside "
                  "the repository; see README 'Data')")
needs_data = pytest.mark.skipif(DATA_ROOT is None, reason=NO_DATA_REASON)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root; skips the test when absent."""
    if DATA_ROOT is None:
        pytest.skip(NO_DATA_REASON)
    return DATA_ROOT


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `hydrolens ARGS` in a subprocess (the console script's module), capturing output."""
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_root):
    """A 5-basin, 1-epoch δ model trained and evaluated through the CLI (session-wide).

    Returns the core.runs.Run; its store root is ``trained_run.path.parent``. The CLI's output is
    attached as ``trained_run.cli_output``.
    """
    from core.runs import RunStore

    store_dir = tmp_path_factory.mktemp("runs")
    proc = run_cli("train", "--basins", "5", "--epochs", "1", "--out", str(store_dir),
                   "--data-root", str(data_root), "--no-progress", "--name", "ci")
    assert proc.returncode == 0, f"hydrolens train failed:\n{proc.stdout}\n{proc.stderr}"
    runs = RunStore(store_dir).list()
    assert len(runs) == 1
    run = RunStore(store_dir).get(runs[0].run_id)
    run.cli_output = proc.stdout
    return run
