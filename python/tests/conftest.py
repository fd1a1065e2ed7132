"""Shared fixtures: the repository's CLI binary and test fixtures, small random data."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def vectro_bin() -> pathlib.Path:
    """The `vectro` command line tool built from this repository (`cargo build --release`),
    or $VECTRO_BIN."""
    path = pathlib.Path(os.environ.get("VECTRO_BIN", ROOT / "target" / "release" / "vectro"))
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build --release` first, or set VECTRO_BIN")
    return path


@pytest.fixture(scope="session")
def cli(vectro_bin):
    """Runs the CLI; fails the test with its stderr if it fails."""

    def run(*args: str) -> str:
        r = subprocess.run([str(vectro_bin), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, f"vectro {' '.join(map(str, args))}: {r.stderr}"
        return r.stdout

    return run


def embeddings(rows: int, dims: int, seed: int = 0) -> np.ndarray:
    """Unit-length float32 rows with some structure (clusters), like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((16, dims), dtype=np.float32)
    x = centers[rng.integers(0, 16, rows)] + 0.5 * rng.standard_normal((rows, dims), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.fixture
def emb() -> np.ndarray:
    return embeddings(3000, 64)
