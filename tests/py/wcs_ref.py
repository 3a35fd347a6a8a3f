"""astropy's pixel -> world for headers a Rust test wrote.

Usage: wcs_ref.py CASES.json OUT.json
CASES.json: list of {"cards": {KEY: value, ...}, "pixels": [[x, y], ...]} with 0-based pixels.
OUT.json: per case, [[ra, dec], ...] in degrees (celestial axes only).
"""
import json
import sys
import warnings

from astropy.io import fits
from astropy.wcs import WCS


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        h = fits.Header()
        h["NAXIS"] = 2
        h["NAXIS1"] = 100
        h["NAXIS2"] = 100
        for k, v in c["cards"].items():
            h[k] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(h, naxis=2)
        xy = c["pixels"]
        world = w.wcs_pix2world([p[0] for p in xy], [p[1] for p in xy], 0)
        out.append([[float(a) % 360.0, float(b)] for a, b in zip(world[0], world[1])])
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
