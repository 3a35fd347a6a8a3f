"""A stand-in for WSClean in tests/imager.rs: writes the channel images WSClean would
(`{name}-{chan:04}-image.fits` for -pol i, `{name}-{chan:04}-Q-image.fits` and `-U-` for the
joined -pol qu run; axes RA, DEC, FREQ, STOKES) by taking the planes of the beam cube in
$FAKE_WSCLEAN_CUBES that matches the measurement set's beam and the polarisation, and records
its argv in $FAKE_WSCLEAN_LOG. It checks the arguments the imager must pass."""
import os
import re
import sys

import numpy as np
from astropy.io import fits

args = sys.argv[1:]
opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
ms = args[-1]
assert ms.endswith(".ms") and os.path.isdir(ms), f"last argument {ms} is not a measurement set"
name, pol, nchan = opt["-name"], opt["-pol"], int(opt["-channels-out"])
beam = re.search(r"beam(\d\d)", os.path.basename(ms)).group(1)
with open(os.environ["FAKE_WSCLEAN_LOG"], "a") as log:
    log.write(" ".join(sys.argv) + "\n")
# $FAKE_WSCLEAN_DIVERGE: "pol:size,..." runs that diverge (print a flux in KJy, then hang until
# killed, as a diverging WSClean keeps cleaning).
diverge = [d.split(":") for d in os.environ.get("FAKE_WSCLEAN_DIVERGE", "").split(",") if d]
if [pol, opt["-size"]] in diverge:
    print("  == Deconvolving (1) ==", flush=True)
    print(" Iteration 1200, scale 0 px : 3.2 KJy at 10,12", flush=True)
    import time
    time.sleep(60)
    sys.exit(0)
if pol == "qu":
    assert "-join-polarizations" in args, "the Q/U run must join polarisations"
    pols = [("q", "-Q")]
    pols.append(("u", "-U"))
else:
    assert pol == "i", pol
    pols = [("i", "")]
for stokes, tag in pols:
    src = [f for f in os.listdir(os.environ["FAKE_WSCLEAN_CUBES"])
           if f.startswith(f"image.restored.{stokes}.") and f"beam{beam}" in f]
    assert len(src) == 1, src
    with fits.open(os.path.join(os.environ["FAKE_WSCLEAN_CUBES"], src[0])) as h:
        data, hdr = h[0].data, h[0].header
    assert data.shape[0] == nchan, f"-channels-out {nchan} but the cube has {data.shape[0]}"
    for c in range(nchan):
        out = hdr.copy()
        out["NAXIS"] = 4
        out["CRVAL3"] = hdr["CRVAL3"] + (c + 1 - hdr["CRPIX3"]) * hdr["CDELT3"]
        out["CRPIX3"] = 1.0
        out["CTYPE4"], out["CRVAL4"], out["CDELT4"], out["CRPIX4"] = "STOKES", 1.0, 1.0, 1.0
        plane = data[c][np.newaxis, np.newaxis, :, :].astype(np.float32)
        fits.writeto(f"{name}-{c:04d}{tag}-image.fits", plane, out, overwrite=True)
print("fake wsclean: done")
