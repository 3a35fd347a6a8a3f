"""Write a tiny ASKAP-like measurement set for tests/imager.rs (python-casacore, Debian's
python3-casacore): a point source at the phase centre (RA 189, Dec -25) with the given Stokes
I, Q, U (linear feeds: XX = I+Q, XY = YX = U, YY = I-Q, WSClean's convention, in DATA and
CORRECTED_DATA), thermal noise, 6 antennas over ~3 km, 20 integrations of 30 s, N channels of
8 MHz from 800 MHz.

  make_ms.py NAME NCHAN I Q U [--askap P_DEG]

With --askap, the set is as ASKAP writes it: equatorial mounts, receptor angle 45 - P degrees,
and DATA only, holding ASKAP's correlations for polarisation-axis angle P (I = XX+YY,
Q = sin2P XX + cos2P (XY+YX) - sin2P YY, U = -cos2P XX + sin2P (XY+YX) + cos2P YY), which
fix_ms must rotate before WSClean sees the injected I, Q, U.
"""
import sys
import numpy as np
import casacore.tables as pt

name, nchan = sys.argv[1], int(sys.argv[2])
stokes_i, stokes_q, stokes_u = (float(x) for x in sys.argv[3:6])
askap_p = float(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--askap" else None
ra, dec = np.radians(189.0), np.radians(-25.0)
f0, df = 800e6, 8e6
freqs = f0 + df * np.arange(nchan)

desc = pt.required_ms_desc()
cols = [pt.makearrcoldesc("DATA", 0j, ndim=2, shape=[nchan, 4], valuetype="complex")]
if askap_p is None:
    cols.append(pt.makearrcoldesc("CORRECTED_DATA", 0j, ndim=2, shape=[nchan, 4], valuetype="complex"))
desc.update(pt.maketabdesc(cols))
dminfo = pt.makedminfo(desc)
ms = pt.default_ms(name, desc, dminfo)

# ASKAP-ish: antennas on a ~2 km spread, ITRF near Murchison.
nant = 6
rng = np.random.default_rng(3)
lon, lat, alt = np.radians(116.63), np.radians(-26.70), 360.0
R = 6378137.0 + alt
centre = np.array([R*np.cos(lat)*np.cos(lon), R*np.cos(lat)*np.sin(lon), R*np.sin(lat)])
east = np.array([-np.sin(lon), np.cos(lon), 0.0])
north = np.array([-np.sin(lat)*np.cos(lon), -np.sin(lat)*np.sin(lon), np.cos(lat)])
enu = rng.uniform(-1500, 1500, size=(nant, 2))
pos = np.array([centre + e*east + n*north for e, n in enu])
ant = pt.table(name + "/ANTENNA", readonly=False, ack=False)
ant.addrows(nant)
ant.putcol("POSITION", pos)
ant.putcol("NAME", [f"ak{i:02d}" for i in range(nant)])
ant.putcol("STATION", ["ASKAP"] * nant)
ant.putcol("TYPE", ["GROUND-BASED"] * nant)
ant.putcol("MOUNT", ["equatorial" if askap_p is not None else "ALT-AZ"] * nant)
ant.putcol("DISH_DIAMETER", np.full(nant, 12.0))
ant.close()

spw = pt.table(name + "/SPECTRAL_WINDOW", readonly=False, ack=False)
spw.addrows(1)
spw.putcol("NUM_CHAN", np.array([nchan]))
spw.putcol("CHAN_FREQ", freqs[np.newaxis, :])
spw.putcol("CHAN_WIDTH", np.full((1, nchan), df))
spw.putcol("EFFECTIVE_BW", np.full((1, nchan), df))
spw.putcol("RESOLUTION", np.full((1, nchan), df))
spw.putcol("REF_FREQUENCY", np.array([freqs[0]]))
spw.putcol("TOTAL_BANDWIDTH", np.array([df * nchan]))
spw.putcol("MEAS_FREQ_REF", np.array([5]))
spw.putcol("NAME", ["band"])
spw.close()

pol = pt.table(name + "/POLARIZATION", readonly=False, ack=False)
pol.addrows(1)
pol.putcol("NUM_CORR", np.array([4]))
pol.putcol("CORR_TYPE", np.array([[9, 10, 11, 12]]))
pol.putcol("CORR_PRODUCT", np.array([[[0, 0], [0, 1], [1, 0], [1, 1]]]))
pol.close()

dd = pt.table(name + "/DATA_DESCRIPTION", readonly=False, ack=False)
dd.addrows(1)
dd.putcol("SPECTRAL_WINDOW_ID", np.array([0]))
dd.putcol("POLARIZATION_ID", np.array([0]))
dd.close()

fld = pt.table(name + "/FIELD", readonly=False, ack=False)
fld.addrows(1)
for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
    fld.putcol(col, np.array([[[ra, dec]]]))
fld.putcol("NAME", ["RACS_TINY"])
fld.close()

feed = pt.table(name + "/FEED", readonly=False, ack=False)
feed.addrows(nant)
feed.putcol("ANTENNA_ID", np.arange(nant))
feed.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1))
feed.putcol("NUM_RECEPTORS", np.full(nant, 2))
feed.putcol("POLARIZATION_TYPE", np.array([["X", "Y"]] * nant))
if askap_p is None:
    feed.putcol("RECEPTOR_ANGLE", np.zeros((nant, 2)))
else:
    rec = np.radians(45.0 - askap_p)
    feed.putcol("RECEPTOR_ANGLE", np.array([[rec, rec + np.pi / 2]] * nant))
feed.putcol("TIME", np.full(nant, 5.0e9 + 300.0))
feed.putcol("INTERVAL", np.full(nant, 1.0e6))
feed.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=complex), (nant, 1, 1)))
feed.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
feed.close()

t0 = 5.0e9
ntime = 20
times = t0 + 30.0 * np.arange(ntime)
obs = pt.table(name + "/OBSERVATION", readonly=False, ack=False)
obs.addrows(1)
obs.putcol("TELESCOPE_NAME", ["ASKAP"])
obs.putcol("TIME_RANGE", np.array([[times[0], times[-1]]]))
obs.putcol("OBSERVER", ["arrakis"])
obs.putcol("PROJECT", ["test"])
obs.close()

# Baselines and UVW: the ENU baseline rotated to (u, v, w) for the field at hour angle H.
pairs = [(a, b) for a in range(nant) for b in range(a + 1, nant)]
rows = []
for k, t in enumerate(times):
    H = np.radians(-15.0 + 30.0 * k / ntime)
    for a, b in pairs:
        e, n = enu[b] - enu[a]
        # local (e, n, up=0) -> equatorial X, Y, Z (Thompson, Moran & Swenson 4.3)
        X = -n * np.sin(lat)
        Y = e
        Z = n * np.cos(lat)
        u = np.sin(H) * X + np.cos(H) * Y
        v = -np.sin(dec) * np.cos(H) * X + np.sin(dec) * np.sin(H) * Y + np.cos(dec) * Z
        w = np.cos(dec) * np.cos(H) * X - np.cos(dec) * np.sin(H) * Y + np.sin(dec) * Z
        rows.append((t, a, b, (u, v, w)))
nrow = len(rows)
ms.addrows(nrow)
ms.putcol("TIME", np.array([r[0] for r in rows]))
ms.putcol("TIME_CENTROID", np.array([r[0] for r in rows]))
ms.putcol("ANTENNA1", np.array([r[1] for r in rows]))
ms.putcol("ANTENNA2", np.array([r[2] for r in rows]))
ms.putcol("UVW", np.array([r[3] for r in rows]))
ms.putcol("INTERVAL", np.full(nrow, 30.0))
ms.putcol("EXPOSURE", np.full(nrow, 30.0))
ms.putcol("DATA_DESC_ID", np.zeros(nrow, dtype=int))
ms.putcol("FIELD_ID", np.zeros(nrow, dtype=int))
ms.putcol("SCAN_NUMBER", np.ones(nrow, dtype=int))
vis = np.zeros((nrow, nchan, 4), dtype=complex)
if askap_p is None:
    vis[:, :, 0] = stokes_i + stokes_q
    vis[:, :, 1] = stokes_u
    vis[:, :, 2] = stokes_u
    vis[:, :, 3] = stokes_i - stokes_q
else:
    s2, c2 = np.sin(np.radians(2 * askap_p)), np.cos(np.radians(2 * askap_p))
    delta = s2 * stokes_q - c2 * stokes_u      # XX - YY
    both = c2 * stokes_q + s2 * stokes_u       # XY + YX (V = 0: XY = YX)
    vis[:, :, 0] = (stokes_i + delta) / 2
    vis[:, :, 1] = both / 2
    vis[:, :, 2] = both / 2
    vis[:, :, 3] = (stokes_i - delta) / 2
# Thermal noise, so that the images have a background to measure.
noise = 0.05
vis += noise * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
ms.putcol("DATA", vis)
if askap_p is None:
    ms.putcol("CORRECTED_DATA", vis)
ms.putcol("FLAG", np.zeros((nrow, nchan, 4), dtype=bool))
ms.putcol("WEIGHT", np.ones((nrow, 4)))
ms.putcol("SIGMA", np.ones((nrow, 4)))
ms.close()
print(f"wrote {name}: {nrow} rows, {nchan} channels")
