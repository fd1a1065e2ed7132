"""vectro.merge: the shards of one compress, merged, are the bytes of a single run and of
the CLI's merge; a missing shard is named."""

import pytest

import vectro
from conftest import embeddings


def test_merge_equals_a_single_run_and_the_cli(tmp_path, cli):
    x = embeddings(900, 20, seed=5)
    ids = [f"row-{i}" for i in range(900)]
    for k in range(3):
        vectro.compress(x, tmp_path / "p" / "part-{shard}.vectro", "int4", chunk_rows=100,
                        shard=f"{k}/3", ids=ids, fsync=False)
    s = vectro.merge(tmp_path / "p", tmp_path / "py.vectro", fsync=False)
    assert (s["rows"], s["chunks"], len(s["parts"])) == (900, 9, 3)
    vectro.compress(x, tmp_path / "one.vectro", "int4", chunk_rows=100, ids=ids, fsync=False)
    cli("merge", tmp_path / "p", "--out", tmp_path / "cli.vectro")
    one = (tmp_path / "one.vectro").read_bytes()
    assert (tmp_path / "py.vectro").read_bytes() == one == (tmp_path / "cli.vectro").read_bytes()
    with pytest.raises(vectro.UsageError, match="exists"):
        vectro.merge(tmp_path / "p", tmp_path / "py.vectro")
    # a glob and a list of files work too, and force overwrites
    vectro.merge([str(tmp_path / "p" / "part-2.vectro"), str(tmp_path / "p" / "part-[01].vectro")],
                 tmp_path / "py.vectro", force=True, fsync=False)
    assert (tmp_path / "py.vectro").read_bytes() == one


def test_merge_names_a_missing_shard(tmp_path):
    x = embeddings(300, 8, seed=6)
    for k in (0, 2):
        vectro.compress(x, tmp_path / f"part-{k}.vectro", chunk_rows=50, shard=f"{k}/3", fsync=False)
    with pytest.raises(vectro.VectroError, match="1/3"):
        vectro.merge([tmp_path / "part-0.vectro", tmp_path / "part-2.vectro"], tmp_path / "m.vectro")
    assert not (tmp_path / "m.vectro").exists()
