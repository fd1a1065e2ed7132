#!/usr/bin/env python3
"""Regenerates tests/fixtures/npz_* with the reference int8 script (needs only numpy).

    python3 scripts/make_npz_fixtures.py

npz_input.npy            37 x 24 float32: mixed magnitudes, an all-zero row, exact ties
npz_reference.npz        int8_reference.py encode of it (np.savez: stored members)
npz_reference_recon.npy  int8_reference.py decode of that .npz
npz_deflated.npz         the same arrays written by np.savez_compressed (deflated members)
"""
import os
import subprocess
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
ref = os.path.join(root, "..", "shared", "reference", "int8_reference.py")
out = os.path.join(root, "tests", "fixtures")
os.makedirs(out, exist_ok=True)

rng = np.random.default_rng(8)
v = rng.standard_normal((37, 24)).astype(np.float32)
v *= (10.0 ** rng.uniform(-3, 3, size=(37, 1))).astype(np.float32)
v[3] = 0.0
v[5, :8] = [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5]
v[5, 8:] = 0.25
np.save(os.path.join(out, "npz_input.npy"), v)

npz = os.path.join(out, "npz_reference.npz")
recon = os.path.join(out, "npz_reference_recon.npy")
subprocess.run([sys.executable, ref, "encode", os.path.join(out, "npz_input.npy"), npz], check=True)
subprocess.run([sys.executable, ref, "decode", npz, recon], check=True)
z = np.load(npz)
np.savez_compressed(os.path.join(out, "npz_deflated.npz"), q=z["q"], scales=z["scales"], dims=z["dims"])
print("wrote fixtures to", out)
