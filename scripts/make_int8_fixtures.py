#!/usr/bin/env python3
"""Regenerates tests/fixtures/int8_* from shared/reference/int8_reference.py.

Run from the repo root: python3 scripts/make_int8_fixtures.py
The tests read the committed outputs, so they need no Python.
"""
import importlib.util
import pathlib

import numpy as np

root = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("ref", root.parent / "shared/reference/int8_reference.py")
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

rng = np.random.default_rng(7)
dims = 37
rows = []
# Exact .5 ties: max 127 * 2^k gives scale 2^k exactly, so v/scale lands on x.5.
for k in (-3, 0, 5):
    s = np.float32(2.0 ** k)
    r = (np.arange(dims, dtype=np.float32) - 18) + np.float32(0.5)
    r[0] = 127
    rows.append(r * s)
    rows.append(-r * s)
rows.append(np.zeros(dims, np.float32))                      # all-zero row: scale 1.0
rows.append(np.full(dims, 3.25, np.float32))                  # constant row
rows.append(np.float32(1e-30) * rng.standard_normal(dims).astype(np.float32))  # tiny
rows.append(np.float32(1e30) * rng.standard_normal(dims).astype(np.float32))   # huge
sub = np.zeros(dims, np.float32)                              # max|v|/127 underflows to 0
sub[::3] = np.float32(1.4e-45)
rows.append(sub)
one_hot = np.zeros(dims, np.float32)
one_hot[5] = -2.0
rows.append(one_hot)
rows.extend(rng.standard_normal((40, dims)).astype(np.float32))
rows.extend((rng.standard_normal((20, dims)) * rng.uniform(0.01, 100, (20, 1))).astype(np.float32))
v = np.stack(rows).astype(np.float32)

with np.errstate(all="ignore"):
    q, s = ref.quantize(v)
recon = ref.reconstruct(q, s)
out = root / "tests/fixtures"
np.save(out / "int8_input.npy", v)
np.save(out / "int8_codes.npy", q)
np.save(out / "int8_scales.npy", s)
np.save(out / "int8_recon.npy", recon)
# The same input as other dtypes, for the reader's conversions.
np.save(out / "int8_input_f64.npy", v.astype(np.float64))
np.save(out / "int8_input_be.npy", v.astype(">f4"))
print(f"wrote fixtures for {v.shape}")
