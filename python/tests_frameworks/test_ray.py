"""vectro.ray.compress_dataset on a local Ray cluster: the merged shards are the bytes of
one vectro.compress of the same rows, ids included."""

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import pytest
import ray

import vectro
from vectro.ray import compress_dataset, shard_plan


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def rows(n, dims, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(dtype)


def uneven_blocks(x, sizes, ids=None):
    """A dataset whose blocks have the given row counts (not on chunk boundaries)."""
    parts, at = [], 0
    for s in sizes:
        part = {"embedding": x[at : at + s]}
        if ids is not None:
            part["doc_id"] = np.asarray(ids[at : at + s])
        parts.append(ray.data.from_numpy(part["embedding"]) if ids is None else ray.data.from_items(
            [{"embedding": part["embedding"][i], "doc_id": part["doc_id"][i].item()} for i in range(s)],
            override_num_blocks=1,
        ))
        at += s
    assert at == len(x)
    ds = parts[0]
    return ds.union(*parts[1:]) if len(parts) > 1 else ds


def test_shard_plan_is_the_cli_plan(tmp_path):
    x = rows(1000, 8)
    for k, (a, b) in enumerate(shard_plan(1000, 64, 3)):
        vectro.compress(x, tmp_path / f"p{k}.vectro", chunk_rows=64, shard=f"{k}/3", fsync=False)
        c = vectro.open(tmp_path / f"p{k}.vectro")
        assert (c.first_row, c.first_row + len(c)) == (a, b)
    with pytest.raises(ValueError):
        shard_plan(100, 64, 3)


@pytest.mark.parametrize("codec", ["int8", "int4:rotate=1", "binary"])
def test_merged_shards_equal_one_run_with_string_ids(tmp_path, codec):
    x = rows(1000, 24, seed=1)
    ids = [f"doc-{i:05d}" for i in range(1000)]
    ds = uneven_blocks(x, [300, 50, 450, 200], ids=ids)
    got = compress_dataset(
        ds, tmp_path / "ray.vectro", codec, column="embedding", id_column="doc_id", chunk_rows=64, fsync=False
    )
    assert len(got["shards"]) == 4 and got["rows"] == 1000
    vectro.compress(x, tmp_path / "one.vectro", codec, chunk_rows=64, ids=ids, name="<ray-dataset>", fsync=False)
    assert (tmp_path / "ray.vectro").read_bytes() == (tmp_path / "one.vectro").read_bytes()
    c = vectro.open(tmp_path / "ray.vectro")
    assert c.ids(0, 3) == ids[:3] and c.ids(997, 1000) == ids[997:]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".vectro-ray-")]  # parts removed


def test_default_chunking_integer_ids_float16_and_shard_count(tmp_path):
    x = rows(6000, 384, seed=2, dtype=np.float16)  # two default chunks of float32-sized rows
    ids = np.arange(10**9, 10**9 + 6000, dtype=np.uint64)
    ds = ray.data.from_numpy(x).repartition(5)
    ds = ds.zip(ray.data.from_numpy(ids).repartition(5).rename_columns({"data": "id"}))
    got = compress_dataset(ds, tmp_path / "ray.vectro", column="data", id_column="id", fsync=False)
    chunks = -(-6000 // ((4 << 20) // (384 * 4)))  # 2730 rows a chunk: 3 chunks
    assert len(got["shards"]) == min(5, chunks)
    vectro.compress(x, tmp_path / "one.vectro", ids=ids, name="<ray-dataset>", fsync=False)
    assert (tmp_path / "ray.vectro").read_bytes() == (tmp_path / "one.vectro").read_bytes()


def test_pq_with_a_codebook_trained_once(tmp_path):
    x = rows(2000, 16, seed=3)
    vectro.train(x, tmp_path / "cb.vcb", "pq:m=4,nbits=4")
    ds = ray.data.from_numpy(x).repartition(3)
    with pytest.raises(ValueError, match="codebook"):
        compress_dataset(ds, tmp_path / "no.vectro", "pq:m=4,nbits=4")
    compress_dataset(ds, tmp_path / "ray.vectro", codebook=tmp_path / "cb.vcb", chunk_rows=100, fsync=False)
    vectro.compress(x, tmp_path / "one.vectro", codebook=tmp_path / "cb.vcb", chunk_rows=100, name="<ray-dataset>", fsync=False)
    assert (tmp_path / "ray.vectro").read_bytes() == (tmp_path / "one.vectro").read_bytes()


def test_bad_input_is_named(tmp_path):
    x = rows(300, 8, seed=4)
    x[123, 5] = np.nan
    with pytest.raises(vectro.BadInputError, match="row 123, column 5"):
        compress_dataset(ray.data.from_numpy(x).repartition(2), tmp_path / "bad.vectro", chunk_rows=50, fsync=False)
    assert not (tmp_path / "bad.vectro").exists()
    with pytest.raises(ValueError, match="no column 'vec'"):
        compress_dataset(ray.data.from_numpy(x[:10]), tmp_path / "bad.vectro", column="vec")
    (tmp_path / "exists.vectro").write_bytes(b"x")
    with pytest.raises(vectro.UsageError, match="force"):
        compress_dataset(ray.data.from_numpy(x[:10]), tmp_path / "exists.vectro")


def test_a_shard_costs_memory_for_its_rows_only(tmp_path):
    # A task maps the whole input's size but writes (and compress reads) only its shard:
    # shard 0 of 80 of a 4 GB input must not bring the 4 GB into memory.
    import subprocess
    import sys

    code = f"""
import resource, numpy as np, vectro
from vectro.ray import _virtual_rows
x = _virtual_rows(8_000_000, 128, np.dtype("<f4"))   # 4.1 GB of address space
x[:100_000] = np.random.default_rng(0).standard_normal((100_000, 128), dtype=np.float32)
s = vectro.compress(x, r"{tmp_path}/p-{{shard}}.vectro", shard="0/80", chunk_rows=100_000, fsync=False)
assert s["rows"] == 100_000
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mb = int(r.stdout.split()[-1])
    assert peak_mb < 1000, f"peak RSS {peak_mb} MB for a 51 MB shard of a 4 GB input"


def test_a_rerun_redoes_only_the_missing_shards(tmp_path):
    x = rows(800, 12, seed=7)
    ids = [f"r{i}" for i in range(800)]
    ds = uneven_blocks(x, [200, 200, 200, 200], ids=ids)
    parts = tmp_path / "parts"
    first = compress_dataset(ds, tmp_path / "a.vectro", column="embedding", id_column="doc_id",
                             chunk_rows=50, parts_dir=parts, fsync=False)
    assert first["parts_dir"] == str(parts) and len(first["shards"]) == 4
    os.unlink(first["shards"][2]["output"])  # as if that task had failed
    again = compress_dataset(ds, tmp_path / "a.vectro", column="embedding", id_column="doc_id",
                             chunk_rows=50, parts_dir=parts, force=True, fsync=False)
    assert [s["already_complete"] for s in again["shards"]] == [True, True, False, True]
    vectro.compress(x, tmp_path / "one.vectro", chunk_rows=50, ids=ids, name="<ray-dataset>", fsync=False)
    assert (tmp_path / "a.vectro").read_bytes() == (tmp_path / "one.vectro").read_bytes()
