"""RM-Tools' rmsynth3d and rmclean3d on arrakis's inputs, compared with arrakis's outputs.

  rmtools3d_ref.py synth Q.fits U.fits NOISE.dat PREFIX   (PREFIX = arrakis's output prefix)
  rmtools3d_ref.py clean PREFIX CUTOUT MAXITER GAIN
Prints one JSON object of comparison figures.
"""
import contextlib
import io
import json
import sys

import numpy as np
from astropy.io import fits

with contextlib.redirect_stdout(io.StringIO()):
    from RMtools_3D import do_RMclean_3D, do_RMsynth_3D


def freqs(h):
    n = h["NAXIS3"]
    return h["CRVAL3"] + h["CDELT3"] * (np.arange(n) + 1 - h["CRPIX3"])


def rel(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    same_nan = bool(np.array_equal(np.isfinite(a), np.isfinite(b)))
    scale = float(np.nanmax(np.abs(a))) or 1.0
    return float(np.max(np.abs(a[ok] - b[ok]))) / scale, same_nan


def synth(qf, uf, noise, prefix):
    q = fits.getdata(qf).astype(np.float64)
    u = fits.getdata(uf).astype(np.float64)
    f = freqs(fits.getheader(qf))
    rms = np.loadtxt(noise)
    with contextlib.redirect_stdout(io.StringIO()):
        (fdf, phi, rmsf, phi2, fwhm, _stat, lam0, _l2, dphi) = do_RMsynth_3D.run_rmsynth(
            q, u, f, dataI=None, rmsArr=rms, nSamples=5, weightType="variance",
            fitRMSF=False, nBits=32, verbose=False)
    out = {"nphi": int(phi.size), "lam0_rmtools": float(lam0)}
    h = fits.getheader(prefix + "FDF_real_dirty.fits")
    out["lam0_arrakis"] = float(h["LAMSQ0"])
    out["dphi_rel"] = abs(h["CDELT3"] - dphi) / dphi
    ours = fits.getdata(prefix + "FDF_real_dirty.fits") + 1j * fits.getdata(prefix + "FDF_im_dirty.fits")
    out["fdf_rel"], out["fdf_nan_same"] = rel(fdf.real, ours.real)
    out["fdf_im_rel"], _ = rel(fdf.imag, ours.imag)
    our_rmsf = fits.getdata(prefix + "RMSF_real.fits") + 1j * fits.getdata(prefix + "RMSF_im.fits")
    out["rmsf_rel"], _ = rel(rmsf.real, our_rmsf.real)
    out["rmsf_im_rel"], _ = rel(rmsf.imag, our_rmsf.imag)
    out["fwhm_rel"], _ = rel(np.asarray(fwhm, dtype=float), fits.getdata(prefix + "RMSF_FWHM.fits").astype(float))
    max_pi, peak_rm = do_RMsynth_3D.create_peak_maps(fdf, phi, 0)
    ours_peak = np.squeeze(fits.getdata(prefix + "FDF_peakRM.fits"))
    ok = np.isfinite(peak_rm)
    out["peak_rm_pixels"] = int(ok.sum())
    out["peak_rm_equal"] = int((ours_peak[ok] == peak_rm[ok]).sum())
    out["peak_rm_max_diff"] = float(np.max(np.abs(ours_peak[ok] - peak_rm[ok]))) if ok.any() else 0.0
    out["dphi"] = float(dphi)
    out["max_pi_rel"], _ = rel(max_pi, np.squeeze(fits.getdata(prefix + "FDF_maxPI.fits")))
    print(json.dumps(out))


def clean(prefix, cutoff, max_iter, gain):
    with contextlib.redirect_stdout(io.StringIO()):
        clean_fdf, cc, niter, _resid, _head = do_RMclean_3D.run_rmclean(
            prefix + "FDF_real_dirty.fits", prefix + "RMSF_real.fits", float(cutoff),
            maxIter=int(max_iter), gain=float(gain), nBits=32)
    ours = fits.getdata(prefix + "FDF_clean_real.fits") + 1j * fits.getdata(prefix + "FDF_clean_im.fits")
    our_cc = fits.getdata(prefix + "FDF_CC_real.fits") + 1j * fits.getdata(prefix + "FDF_CC_im.fits")
    our_n = np.squeeze(fits.getdata(prefix + "CLEAN_nIter.fits"))
    niter = np.squeeze(niter)
    ok = np.isfinite(our_n) & np.isfinite(niter)
    out = {}
    out["clean_rel"], _ = rel(np.squeeze(clean_fdf).real, ours.real)
    out["clean_im_rel"], _ = rel(np.squeeze(clean_fdf).imag, ours.imag)
    out["cc_tot_rel"], _ = rel(np.abs(np.squeeze(cc)).sum(axis=0), np.abs(our_cc).sum(axis=0))
    out["pixels"] = int(ok.sum())
    out["niter_equal"] = int((our_n[ok] == niter[ok]).sum())
    out["niter_total_rmtools"] = float(niter[ok].sum())
    out["niter_total_arrakis"] = float(our_n[ok].sum())
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "synth":
        synth(*sys.argv[2:6])
    else:
        clean(*sys.argv[2:6])
