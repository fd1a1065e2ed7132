"""The runnable examples of docs/vector-stores.md and docs/ray.md run as written."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


@pytest.mark.parametrize("name", ["langchain_store.py", "llama_index_store.py", "ray_compress.py"])
def test_example_runs(name, tmp_path):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip()
