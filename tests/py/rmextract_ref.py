"""RM_ion from RMextract (the library FRion predicts with), for the reference comparison of
arrakis's ionosphere prediction. argv: IONEX directory, then JSON on stdin:
[[ra_deg, dec_deg, start_mjd_s, end_mjd_s], ...]; writes JSON [{"times": [...], "rm": [...]}].
ASKAP at its true position (26d42m15s S, 116.6589 E, 381 m) in ITRF, CODE maps, WMM, 300 s."""
import json
import logging
import sys

import numpy as np
import RMextract.getRM as getRM

logging.disable(logging.CRITICAL)
lat = np.radians(-(26 + 42 / 60 + 15 / 3600))
lon = np.radians(116.6589)
h = 381.0
a = 6378137.0
f = 1 / 298.257223563
e2 = f * (2 - f)
n = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
xyz = [
    (n + h) * np.cos(lat) * np.cos(lon),
    (n + h) * np.cos(lat) * np.sin(lon),
    (n * (1 - e2) + h) * np.sin(lat),
]
ionex_dir = sys.argv[1].rstrip("/") + "/"
out = []
for ra, dec, start, end in json.load(sys.stdin):
    res = getRM.getRM(
        ionexPath=ionex_dir,
        radec=[np.radians(ra), np.radians(dec)],
        timestep=300,
        timerange=[start, end],
        stat_positions=[xyz],
        prefix="codg",
        useEMM=False,
    )
    st = list(res["RM"].keys())[0]
    out.append(
        {
            "times": [float(t) for t in res["times"]],
            "rm": [float(v) for v in np.ravel(res["RM"][st])],
        }
    )
json.dump(out, sys.stdout)
