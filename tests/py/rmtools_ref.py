"""Reference results from RM-Tools' Python API for the spectra a Rust test wrote.

Usage: rmtools_ref.py CASES.json OUT.json
CASES.json: list of {"file", "poly_ord", "fit_function", "n_samples", "dphi", "phi_max",
"weight_type", "fit_rmsf", "cutoff", "max_iter", "gain", "window"}.
Spectra are read as float64 and passed to run_rmsynth/run_rmclean (the API path Arrakis uses).
"""
import json
import sys

import numpy as np
from RMtools_1D.do_RMsynth_1D import run_rmsynth
from RMtools_1D.do_RMclean_1D import run_rmclean


def plain(v):
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if np.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        data = np.loadtxt(c["file"], dtype="float64").T
        m, a = run_rmsynth(
            list(data),
            polyOrd=c["poly_ord"],
            phiMax_radm2=c["phi_max"],
            dPhi_radm2=c["dphi"],
            nSamples=c["n_samples"],
            weightType=c["weight_type"],
            fitRMSF=c["fit_rmsf"],
            fit_function=c["fit_function"],
            verbose=False,
            log=lambda *x, **k: None,
        )
        mc, ac = run_rmclean(
            m,
            a,
            c["cutoff"],
            maxIter=c["max_iter"],
            gain=c["gain"],
            window=c["window"],
            verbose=False,
            log=lambda *x, **k: None,
        )
        out.append(
            {
                "synth": {k: plain(v) for k, v in m.items() if not isinstance(v, str)},
                "clean": {k: plain(v) for k, v in mc.items() if not isinstance(v, str)},
                "phi": plain(a["phiArr_radm2"]),
                "fdf_re": plain(a["dirtyFDF"].real),
                "fdf_im": plain(a["dirtyFDF"].imag),
                "rmsf_re": plain(a["RMSFArr"].real),
                "rmsf_im": plain(a["RMSFArr"].imag),
                "clean_re": plain(ac["cleanFDF"].real),
                "clean_im": plain(ac["cleanFDF"].imag),
            }
        )
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
