"""A stand-in for FRion's frion_predict in tests/frion.rs: checks the arguments the frion stage
passes (-F cube, -d start end, -t ASKAP, --timestep, -P, -s file), that it runs where IONEXdata/
is, and writes FRion's prediction format for a constant RM_ion of 2 rad/m^2."""
import os
import sys

import numpy as np
from astropy.io import fits

a = sys.argv[1:]
opt = {a[i]: a[i + 1] for i in range(len(a) - 1) if a[i].startswith("-")}
assert os.path.isdir("IONEXdata"), "not run in the field directory"
assert a[a.index("-d") + 2] and opt["-t"] == "ASKAP" and "--timestep" in opt and "-P" in opt
h = fits.getheader(opt["-F"])
assert ".restored.q." in opt["-F"], opt["-F"]
f = h["CRVAL3"] + h["CDELT3"] * (np.arange(h["NAXIS3"]) + 1 - h["CRPIX3"])
l2 = (299792458.0 / f) ** 2
theta = np.exp(2j * l2 * 2.0)
np.savetxt(opt["-s"], list(zip(f, theta.real, theta.imag)))
