"""arrakis fix_ms: an ASKAP measurement set made ready for WSClean, as a new measurement set (the
original is only read). Run by the fix_ms builtin with python-casacore:

    python3 fix_ms.py SOURCE_MS OUTPUT_MS DATA_COLUMN

1. Beam pointing (fixms' fix_ms_dir): each FIELD's PHASE_DIR, DELAY_DIR and REFERENCE_DIR move
   to the beam's own centre, from the FEED table's BEAM_OFFSET of antenna 0 at the time of the
   field's first antenna-0 autocorrelation; FEED's BEAM_OFFSET becomes 0. Needs equatorial
   mounts (ASKAP's roll axis tracks the sky).
2. Correlations (fixms' fix_ms_corrs): ASKAP forms I = XX+YY, Q = sin2P XX + cos2P (XY+YX) -
   sin2P YY, U = -cos2P XX + sin2P (XY+YX) + cos2P YY, V = -i XY + i YX with P = 45 deg - the
   receptor angle; WSClean expects XX = I+Q, XY = U+iV, YX = U-iV, YY = I-Q with I = (XX+YY)/2.
   DATA is rotated and written to DATA_COLUMN. The FEED table then advertises P = 0
   (RECEPTOR_ANGLE 45 deg) and keeps the original in INSTRUMENT_RECEPTOR_ANGLE.

The correction is always computed from DATA and the original angles (INSTRUMENT_RECEPTOR_ANGLE
and FIELD_OLD when the set was fixed before), so fixing a fixed set gives the same result.
Prints one JSON line: {"pol_axis_deg": P, "beam": FEED1, "fields_moved": N}.
"""
import json
import math
import shutil
import sys

import numpy as np
import casacore.tables as pt


def fail(msg):
    print(f"fix_ms: {msg}", file=sys.stderr)
    sys.exit(2)


src, out, column = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(out, ignore_errors=True)
with pt.table(src, ack=False) as t:
    t.copy(out, deep=True, valuecopy=True)

ms = pt.table(out, readonly=False, ack=False)
names = ms.colnames()
if "DATA" not in names:
    fail(f"{src}: no DATA column to correct")
feed1 = np.unique(ms.getcol("FEED1"))
feed2 = np.unique(ms.getcol("FEED2"))
if len(feed1) != 1 or list(feed1) != list(feed2):
    fail(f"{src}: FEED1/FEED2 hold {sorted(set(feed1) | set(feed2))}; a beam's measurement set has one feed (beam)")
beam = int(feed1[0])

# --- 1. beam pointing ------------------------------------------------------------------------
ant = pt.table(f"{out}/ANTENNA", ack=False)
mounts = [m.strip().lower() for m in ant.getcol("MOUNT")]
ant.close()
if any(m != "equatorial" for m in mounts):
    fail(f"{src}: ANTENNA MOUNT is {sorted(set(mounts))}, not 'equatorial': only ASKAP's equatorial (roll-axis) mounts are supported (set skip_fix_ms: true to image it as it is)")
feed = pt.table(f"{out}/FEED", readonly=False, ack=False)
fnames = feed.colnames()
field = pt.table(f"{out}/FIELD", readonly=False, ack=False)
old = pt.table(f"{src}/FIELD_OLD", ack=False) if pt.tableexists(f"{src}/FIELD_OLD") else None
phase0 = (old or field).getcol("PHASE_DIR")
if old is not None:
    old.close()
feed_old = pt.table(f"{src}/FEED_OLD", ack=False) if pt.tableexists(f"{src}/FEED_OLD") else None
ftab = feed_old or feed
f_ant, f_id = ftab.getcol("ANTENNA_ID"), ftab.getcol("FEED_ID")
f_time, f_int = ftab.getcol("TIME"), ftab.getcol("INTERVAL")
f_off = ftab.getcol("BEAM_OFFSET")
if feed_old is not None:
    feed_old.close()
rows = np.where((f_ant == 0) & (f_id == beam))[0]
moved = 0
new_dir = phase0.copy()
field_id, a1, a2, fd1, times = (ms.getcol(c) for c in ("FIELD_ID", "ANTENNA1", "ANTENNA2", "FEED1", "TIME"))
for f in range(phase0.shape[0]):
    auto = np.where((field_id == f) & (fd1 == beam) & (a1 == 0) & (a2 == 0))[0]
    if len(auto) == 0 or len(rows) == 0:
        continue
    t0 = times[auto[0]]
    inside = [r for r in rows if f_time[r] - f_int[r] / 2 < t0 < f_time[r] + f_int[r] / 2]
    r = inside[0] if inside else rows[-1]
    dx, dy = f_off[r][0]
    ra0, dec0 = phase0[f][0]
    dec = math.asin(math.cos(dx) * math.sin(dec0 + dy))
    ra = ra0 + math.atan2(-math.sin(dx), math.cos(dx) * math.cos(dec0 + dy))
    ra = (ra + math.pi) % (2 * math.pi) - math.pi
    if ra == -math.pi:
        ra = math.pi
    new_dir[f][0] = [ra, dec]
    moved += 1
for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
    field.putcol(col, new_dir)
field.close()
feed.putcol("BEAM_OFFSET", np.zeros_like(feed.getcol("BEAM_OFFSET")))

# --- 2. correlations -------------------------------------------------------------------------
source_angles = feed.getcol("INSTRUMENT_RECEPTOR_ANGLE") if "INSTRUMENT_RECEPTOR_ANGLE" in fnames else feed.getcol("RECEPTOR_ANGLE")
mine = source_angles[np.where(feed.getcol("FEED_ID") == beam)[0], 0]
if len(mine) == 0:
    fail(f"{src}: the FEED table has no row for feed {beam}")
if np.ptp(mine) > 1e-9:
    fail(f"{src}: the receptor angles of feed {beam} differ between antennas ({np.degrees(mine.min())} to {np.degrees(mine.max())} deg)")
P = 45.0 - math.degrees(mine[0])
s, c = math.sin(math.radians(2 * P)), math.cos(math.radians(2 * P))
M = np.array([
    [1 + s, c, c, 1 - s],
    [-c, 1 + s, s - 1, c],
    [-c, s - 1, 1 + s, c],
    [1 - s, -c, -c, 1 + s],
], dtype=np.complex128)
pol = pt.table(f"{out}/POLARIZATION", ack=False)
corr = list(pol.getcol("CORR_TYPE")[0])
pol.close()
if corr != [9, 10, 11, 12]:
    fail(f"{src}: correlations {corr}, expected linear XX, XY, YX, YY (9, 10, 11, 12)")
if column not in ms.colnames():
    desc = ms.getcoldesc("DATA")
    desc["name"] = column
    ms.addcols(pt.maketabdesc(pt.makecoldesc(column, desc)))
step = 10000
for start in range(0, ms.nrows(), step):
    n = min(step, ms.nrows() - start)
    data = ms.getcol("DATA", startrow=start, nrow=n)
    fixed = np.einsum("ij,rcj->rci", M, data).astype(data.dtype)
    ms.putcol(column, fixed, startrow=start, nrow=n)
if "INSTRUMENT_RECEPTOR_ANGLE" not in fnames:
    desc = feed.getcoldesc("RECEPTOR_ANGLE")
    desc["name"] = "INSTRUMENT_RECEPTOR_ANGLE"
    feed.addcols(pt.maketabdesc(pt.makecoldesc("INSTRUMENT_RECEPTOR_ANGLE", desc)))
feed.putcol("INSTRUMENT_RECEPTOR_ANGLE", source_angles)
now = np.zeros_like(source_angles)
now[:, 0] = math.radians(45.0)
now[:, 1] = math.radians(135.0)
feed.putcol("RECEPTOR_ANGLE", now)
feed.close()
ms.close()
print(json.dumps({"pol_axis_deg": P, "beam": beam, "fields_moved": moved}))
