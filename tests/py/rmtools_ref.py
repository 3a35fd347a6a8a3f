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
from RMutils.util_misc import fit_StokesI_model


def moved(params, x, fit_function):
    """The Stokes I coefficients with the reference frequency moved by the factor x (RM-Tools'
    renormalize_StokesI_model, values only)."""
    a, b, c, d, f, g = params
    if fit_function == "linear":
        return np.array([a * x**5, b * x**4, c * x**3, d * x**2, f * x, g])
    l = np.log10(x)
    return np.array(
        [
            a,
            5 * a * l + b,
            10 * a * l**2 + 4 * b * l + c,
            10 * a * l**3 + 6 * b * l**2 + 3 * c * l + d,
            5 * a * l**4 + 4 * b * l**3 + 3 * c * l**2 + 2 * d * l + f,
            g * 10 ** (a * l**5 + b * l**4 + c * l**3 + d * l**2 + f * l),
        ]
    )


def propagated_errors(data, c, freq0):
    """RM-Tools' own fit (its covariance), moved to freq0 with the full first-order propagation
    J C Jᵀ (central differences). RM-Tools' renormalize_StokesI_model drops the ln 10 factors
    of C0's error for a log model, so its polyCoefferr[5] is not this."""
    freq, i, di = data[0], data[1], data[4]
    r = fit_StokesI_model(freq, i, di, c["poly_ord"], c["fit_function"])
    x = freq0 / r.reference_frequency_Hz
    p0 = np.asarray(r.params, dtype=float)
    jac = np.zeros((6, 6))
    for j in range(6):
        h = 1e-6 * max(abs(p0[j]), 1e-6)
        up, dn = p0.copy(), p0.copy()
        up[j] += h
        dn[j] -= h
        jac[:, j] = (moved(up, x, c["fit_function"]) - moved(dn, x, c["fit_function"])) / (2 * h)
    cov = jac @ np.asarray(r.pcov, dtype=float) @ jac.T
    return [float(v) for v in np.sqrt(np.maximum(np.diag(cov), 0))]


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
        extra = {}
        if len(data) == 7:
            extra["polyCoefferr_propagated"] = propagated_errors(data, c, m["freq0_Hz"])
        out.append(
            {
                **extra,
                "synth": {k: plain(v) for k, v in m.items()},
                "clean": {k: plain(v) for k, v in mc.items()},
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
