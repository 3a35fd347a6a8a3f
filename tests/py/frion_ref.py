"""FRion's own functions on arrakis's inputs, for tests/frion.rs.

  frion_ref.py series IN.json        -> JSON {theta_re, theta_im, q, u} (numeric_integration,
                                        correct_cubes on the given Q/U values)
  frion_ref.py files Q U PRED QOURS UOURS -> JSON {max_abs_diff, max_abs, n}: FRion's
                                        apply_correction_to_files on Q/U with the prediction file,
                                        compared with arrakis's corrected cubes
"""
import json
import os
import sys
import tempfile

import contextlib
import io

import numpy as np
from astropy.io import fits

# FRion prints a notice on stdout when RMextract (only needed for IONEX predictions) is missing.
with contextlib.redirect_stdout(io.StringIO()):
    from FRion import correct, predict


def series(path):
    d = json.load(open(path))
    times = np.array(d["times"], dtype=float)
    rms = np.array(d["rms"], dtype=float)
    freqs = np.array(d["freqs"], dtype=float)
    theta = predict.numeric_integration(times, rms, freqs)
    q = np.array(d["q"], dtype=float)
    u = np.array(d["u"], dtype=float)
    qc, uc = correct.correct_cubes(q, u, theta)
    print(json.dumps({"theta_re": theta.real.tolist(), "theta_im": theta.imag.tolist(),
                      "q": qc.tolist(), "u": uc.tolist()}))


def files(q, u, pred, q_ours, u_ours):
    with tempfile.TemporaryDirectory() as tmp:
        qo, uo = os.path.join(tmp, "q.fits"), os.path.join(tmp, "u.fits")
        correct.apply_correction_to_files(q, u, pred, qo, uo, overwrite=True)
        worst, biggest, n = 0.0, 0.0, 0
        for theirs, ours in ((qo, q_ours), (uo, u_ours)):
            a = fits.getdata(theirs).astype(np.float64)
            b = fits.getdata(ours).astype(np.float64)
            if a.shape != b.shape:
                raise SystemExit(f"shape {a.shape} (FRion) vs {b.shape} (arrakis) for {ours}")
            ok = np.isfinite(a)
            if not np.array_equal(ok, np.isfinite(b)):
                raise SystemExit(f"NaN pixels differ in {ours}")
            worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]))))
            biggest = max(biggest, float(np.max(np.abs(a[ok]))))
            n += int(ok.sum())
        print(json.dumps({"max_abs_diff": worst, "max_abs": biggest, "n": n}))


if __name__ == "__main__":
    if sys.argv[1] == "series":
        series(sys.argv[2])
    elif sys.argv[1] == "files":
        files(*sys.argv[2:7])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
