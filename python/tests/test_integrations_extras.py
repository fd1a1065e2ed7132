"""The loaders into vector databases are optional: `import vectro` imports no engine, and a
missing extra says which one to install (the loaders themselves are tested against the
engines by scripts/test_integrations.sh)."""

import subprocess
import sys

import numpy as np
import pytest

import vectro

ENGINES = ("pymilvus", "qdrant_edge", "qdrant_client", "lancedb", "pyarrow")


def test_import_vectro_imports_no_engine():
    code = (
        "import sys, vectro, vectro.integrations, vectro.integrations.milvus, "
        "vectro.integrations.qdrant, vectro.integrations.lancedb\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ENGINES!r}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "engine, module, call",
    [
        ("milvus", "pymilvus", lambda m, p: m.load(p, "c")),
        ("qdrant", "qdrant_edge", lambda m, p: m.load(p, str(p) + ".shard")),
        ("lancedb", "lancedb", lambda m, p: m.load(p, str(p) + ".lance", "t")),
    ],
)
def test_a_missing_extra_names_it(engine, module, call, tmp_path, monkeypatch):
    import importlib

    path = tmp_path / "x.vectro"
    vectro.compress(np.ones((4, 8), np.float32), path, fsync=False)
    mod = importlib.import_module(f"vectro.integrations.{engine}")
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(ImportError, match=rf"pip install vectro\[{engine}\]"):
        call(mod, path)
