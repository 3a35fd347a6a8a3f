"""Time RM-Tools' run_rmsynth + run_rmclean per spectrum on files a benchmark wrote.

Usage: rmtools_bench.py SETTINGS.json FILE... ; prints the mean seconds per spectrum.
"""
import json
import sys
import time

import numpy as np
from RMtools_1D.do_RMsynth_1D import run_rmsynth
from RMtools_1D.do_RMclean_1D import run_rmclean

s = json.load(open(sys.argv[1]))
spectra = [list(np.loadtxt(f, dtype="float64").T) for f in sys.argv[2:]]
quiet = lambda *a, **k: None
t0 = time.perf_counter()
for d in spectra:
    m, a = run_rmsynth(d, polyOrd=s["poly_ord"], nSamples=s["n_samples"], weightType="variance",
                       fitRMSF=s["fit_rmsf"], fit_function="log", verbose=False, log=quiet)
    run_rmclean(m, a, s["cutoff"], maxIter=s["max_iter"], gain=s["gain"], verbose=False, log=quiet)
print((time.perf_counter() - t0) / len(spectra))
