"""RM-Tools' 3D RM synthesis and RM-CLEAN timed on cubes arrakis wrote (for `arrakis bench rm3d`).

  rmtools3d_bench.py Q.fits U.fits NOISE.dat CUTOFF NPIX_CLEAN [REPEATS]
Prints JSON: synth_s (run_rmsynth on the whole cube), nphi, clean_s and clean_iters
(do_rmclean_hogbom on the first NPIX_CLEAN x NPIX_CLEAN pixels of its own FDF), each the
fastest of REPEATS runs (default 1); synth_first_s and clean_first_s are the first runs (what a
one-off `rmsynth3d` run costs).
"""
import contextlib
import io
import json
import sys
import time

import numpy as np
from astropy.io import fits

with contextlib.redirect_stdout(io.StringIO()):
    from RMtools_3D import do_RMsynth_3D
    from RMutils.util_RM import do_rmclean_hogbom

qf, uf, noise, cutoff, n = sys.argv[1:6]
repeats = int(sys.argv[6]) if len(sys.argv) > 6 else 1
h = fits.getheader(qf)
freqs = h["CRVAL3"] + h["CDELT3"] * (np.arange(h["NAXIS3"]) + 1 - h["CRPIX3"])
q = fits.getdata(qf)
u = fits.getdata(uf)
rms = np.loadtxt(noise)
times = []
for _ in range(repeats):
    fdf = rmsf = None
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fdf, phi, rmsf, phi2, fwhm, _s, lam0, _l2, dphi = do_RMsynth_3D.run_rmsynth(
            q, u, freqs, dataI=None, rmsArr=rms, nSamples=5, weightType="variance",
            fitRMSF=False, nBits=32, verbose=False)
    times.append(time.perf_counter() - t0)
synth, synth_first = min(times), times[0]
n = int(n)
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        clean, cc, iters, resid = do_rmclean_hogbom(
            dirtyFDF=np.ascontiguousarray(fdf[:, :n, :n]), phiArr_radm2=phi,
            RMSFArr=np.ascontiguousarray(rmsf[:, :n, :n]), phi2Arr_radm2=phi2,
            fwhmRMSFArr=np.ascontiguousarray(fwhm[:n, :n]), cutoff=float(cutoff), maxIter=1000,
            gain=0.1, verbose=False, doPlots=False, window=np.nan)
    times.append(time.perf_counter() - t0)
clean_s, clean_first = min(times), times[0]
print(json.dumps({"synth_s": synth, "synth_first_s": synth_first, "nphi": int(phi.size),
                  "clean_s": clean_s, "clean_first_s": clean_first,
                  "clean_iters": float(np.nansum(iters))}))
