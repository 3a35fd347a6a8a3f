"""Independent check of the FITS files a build writes, with astropy (and rmtable).

Usage: check_fits.py FIELD_DIR [COLUMNS.json]

COLUMNS.json (written by the Rust test from the catalogue's column table): a list of
{"name", "unit", "ucd", "kind"}; every column must be in the FITS file and the VOTable in that
order with that unit, UCD and type.

Beam cubes, cutouts and mosaics must open with a valid celestial SIN + FREQ WCS; a cutout must be
exactly the beam cube's pixels at the place its WCS says; the Stokes I mosaic must show each bright
injected source at its catalogue position with its injected flux; the catalogue must read back
with its units, equal the CSV, and load as an RMTable within the standard's limits. Prints one
line per check and exits non-zero on the first failure.
"""

import csv
import glob
import io
import os
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check_wcs(path):
    with fits.open(path) as hdul:
        h = hdul[0].header
        data = hdul[0].data
    if h["NAXIS"] != 3:
        fail(f"{path}: NAXIS={h['NAXIS']}, expected 3")
    if data.dtype.kind != "f" or data.dtype.itemsize != 4:
        fail(f"{path}: data type {data.dtype}, expected float32")
    w = WCS(h)
    ctypes = list(w.wcs.ctype)
    if ctypes != ["RA---SIN", "DEC--SIN", "FREQ"]:
        fail(f"{path}: CTYPEs {ctypes}")
    if not w.has_celestial or w.wcs.spec != 2:
        fail(f"{path}: WCS lacks a celestial or spectral part")
    for k in ("BMAJ", "BMIN", "BPA", "BUNIT"):
        if k not in h:
            fail(f"{path}: missing {k}")
    if sum(1 for c in h.cards if c.keyword == "COMMENT" and "Flexible Image" in str(c.value)) > 1:
        fail(f"{path}: the standard FITS COMMENT is repeated")
    return h, data, w


def main(field_dir):
    field = os.path.basename(os.path.normpath(field_dir))
    truth = list(csv.DictReader(open(os.path.join(field_dir, "truth.csv"))))
    beams = sorted(glob.glob(os.path.join(field_dir, "image.restored.*.beam*.conv.fits")))
    if not beams:
        fail(f"no beam cubes in {field_dir}")
    cubes = {}
    for p in beams:
        cubes[os.path.basename(p)] = check_wcs(p)
    print(f"ok: {len(beams)} beam cubes have RA---SIN/DEC--SIN/FREQ WCS, beam and units")

    # Cutouts: the same pixels as the beam cube where the cutout's WCS puts them.
    cutouts = sorted(glob.glob(os.path.join(field_dir, "cutouts", "*", "*.cutout.image.*.beam*.conv.fits")))
    if not cutouts:
        fail("no cutouts")
    for p in cutouts:
        h, data, w = check_wcs(p)
        beam_name = os.path.basename(p).split(".cutout.", 1)[1]
        bh, bdata, bw = cubes[beam_name]
        if data.shape[1] * data.shape[2] <= 1:
            continue  # an off-image island: a 1x1 NaN placeholder
        ra, dec = w.celestial.pixel_to_world_values(0.0, 0.0)
        x0, y0 = (float(v) for v in bw.celestial.world_to_pixel_values(ra, dec))
        if abs(x0 - round(x0)) > 1e-6 or abs(y0 - round(y0)) > 1e-6:
            fail(f"{p}: pixel (0,0) lands at ({x0}, {y0}) in {beam_name}, not on a pixel")
        x0, y0 = int(round(x0)), int(round(y0))
        ny, nx = data.shape[1:]
        want = bdata[:, y0 : y0 + ny, x0 : x0 + nx]
        if want.shape != data.shape or not np.array_equal(want, data, equal_nan=True):
            fail(f"{p}: pixels differ from {beam_name}[:, {y0}:{y0 + ny}, {x0}:{x0 + nx}]")
        fw = w.spectral.pixel_to_world_values(np.arange(data.shape[0]))
        fb = bw.spectral.pixel_to_world_values(np.arange(data.shape[0]))
        if not np.allclose(fw, fb, rtol=0, atol=1e-3):
            fail(f"{p}: frequency axis differs from the beam cube's")
    print(f"ok: {len(cutouts)} cutouts are their beam cubes' pixels where their WCS says")

    # Mosaics: valid WCS; bright point sources at their positions with the injected flux.
    mosaics = sorted(glob.glob(os.path.join(field_dir, "cutouts", "*", "*.cutout.image.restored.i.*.linmos.fits")))
    if not mosaics:
        fail("no Stokes I mosaics")
    checked = 0
    for t in truth:
        if float(t["size_arcsec"]) > 0 or float(t["stokesI"]) < 0.03:
            continue
        src = t["source_id"]
        ps = [p for p in mosaics if os.path.basename(p).startswith(src + ".")]
        if len(ps) != 1:
            continue
        h, data, w = check_wcs(ps[0])
        x, y = (float(v) for v in w.celestial.world_to_pixel_values(float(t["ra"]), float(t["dec"])))
        xi, yi = int(round(x)), int(round(y))
        ny, nx = data.shape[1:]
        if not (0 <= xi < nx and 0 <= yi < ny):
            fail(f"{ps[0]}: {t['cat_id']} at pixel ({x:.2f}, {y:.2f}) lies outside the mosaic")
        # The brightest pixel near the catalogue position (within 3 pixels) is the one it names.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            img = np.nanmean(data, axis=0)
        y_lo, x_lo = max(yi - 3, 0), max(xi - 3, 0)
        box = img[y_lo : yi + 4, x_lo : xi + 4]
        by, bx = np.unravel_index(np.nanargmax(box), box.shape)
        px, py = bx + x_lo, by + y_lo
        if abs(px - x) > 1.0 or abs(py - y) > 1.0:
            fail(f"{ps[0]}: peak at ({px}, {py}), {t['cat_id']} at ({x:.2f}, {y:.2f})")
        freqs = w.spectral.pixel_to_world_values(np.arange(data.shape[0]))
        model = float(t["stokesI"]) * (freqs / float(t["reffreq"])) ** float(t["spectral_index"])
        # The pixel centre is up to half a pixel off the source: it sees the restoring beam there.
        pra, pdec = (float(v) for v in w.celestial.pixel_to_world_values(xi, yi))
        dx = (pra - float(t["ra"])) * np.cos(np.radians(float(t["dec"])))
        dy = pdec - float(t["dec"])
        pa = np.radians(h["BPA"])
        # Offsets along the major (PA east of north) and minor axes.
        d_maj = dx * np.sin(pa) + dy * np.cos(pa)
        d_min = dx * np.cos(pa) - dy * np.sin(pa)
        k = 4 * np.log(2)
        response = np.exp(-k * ((d_maj / h["BMAJ"]) ** 2 + (d_min / h["BMIN"]) ** 2))
        got = np.nanmedian(data[:, yi, xi] / (model * response))
        # Regridding (bicubic) onto the mosaic grid, noise and a neighbouring component in the
        # same island move it by a few per cent.
        if not 0.9 < got < 1.1:
            fail(f"{ps[0]}: {t['cat_id']} peak is {got:.3f} of its injected flux")
        checked += 1
    if checked < 3:
        fail(f"only {checked} bright point sources checked in the mosaics")
    print(f"ok: {checked} bright point sources sit in their mosaics at the right place and flux")
    for p in glob.glob(os.path.join(field_dir, "cutouts", "*", "*.linmos.fits")):
        check_wcs(p)

    # The catalogue: units, same values as the CSV, and an RMTable within the standard's limits.
    cat_path = os.path.join(field_dir, f"{field}.catalogue.fits")
    cat = Table.read(cat_path)
    want_units = {
        "ra": u.deg,
        "dec": u.deg,
        "rm": u.rad / u.m**2,
        "rm_err": u.rad / u.m**2,
        "polint": u.Jy / u.beam,
        "stokesI": u.Jy / u.beam,
        "polangle": u.deg,
        "reffreq_pol": u.Hz,
        "rmsf_fwhm": u.rad / u.m**2,
        "refwave_sq_pol": u.m**2,
        "minfreq": u.Hz,
        "channelwidth": u.Hz,
    }
    for col, unit in want_units.items():
        if cat[col].unit is None or cat[col].unit != unit:
            fail(f"{cat_path}: column {col} has unit {cat[col].unit}, expected {unit}")
    q = cat["rm"].quantity
    if q.unit.physical_type != (u.rad / u.m**2).physical_type:
        fail(f"{cat_path}: rm is not a Faraday depth")
    rows = list(csv.DictReader(open(os.path.join(field_dir, f"{field}.catalogue.csv"))))
    if len(rows) != len(cat):
        fail(f"{cat_path}: {len(cat)} rows, the CSV has {len(rows)}")
    if sorted(r["cat_id"] for r in rows) != sorted(str(c) for c in cat["cat_id"]):
        fail(f"{cat_path}: cat_id differs from the CSV")
    if sorted(r["cat_id"] for r in rows) != sorted(t["cat_id"] for t in truth):
        fail("the catalogue's cat_id values are not truth.csv's")
    by_id = {str(c["cat_id"]): c for c in cat}
    for r in rows:
        c = by_id[r["cat_id"]]
        for col in ("ra", "dec", "rm", "rm_err", "polint", "fracpol", "stokesI"):
            a = float(r[col]) if r[col] != "" else np.nan
            b = float(c[col])
            if not (np.isnan(a) and np.isnan(b)) and a != b:
                fail(f"{r['cat_id']}: {col} is {b} in FITS, {a} in CSV")
    print(f"ok: the catalogue ({len(cat)} rows) reads back with units and equals the CSV")

    import rmtable

    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        with redirect_stdout(io.StringIO()) as out:
            t = rmtable.RMTable.read(cat_path)
            t.verify_limits()
            t.verify_standard_strings()
            t.verify_ucds()
            t.verify_columns()
    text = out.getvalue()
    if "All columns conform with standard." not in text:
        fail(f"rmtable verify_limits: {text.strip()}")
    if "No problems found with standardized string entries." not in text or "non-standard" in text:
        fail(f"rmtable verify_standard_strings: {text.strip()}")
    if "Missing columns: []" not in text and "Columns inconsistent" in text:
        fail(f"rmtable verify_columns: {text.strip()}")
    if t["rm"].unit != u.rad / u.m**2:
        fail(f"rmtable reads rm in {t['rm'].unit}")
    if t["rm_method"][0] != "RM Synthesis - Fractional polarization":
        fail(f"rm_method is {t['rm_method'][0]!r}")
    print("ok: rmtable reads the catalogue; limits, standard strings, UCDs and columns pass")

    # The VOTable: the same rows, units and UCDs, Arrakis's PARAMs, provenance.
    from astropy.io.votable import parse

    xml_path = os.path.join(field_dir, f"{field}.catalogue.xml")
    vo = parse(xml_path)
    vt = vo.get_first_table()
    params = {p.name: p.value for p in vt.params}
    for need in ("Catalogue_Name", "Indexed_Fields", "Principal_Fields"):
        if need not in params:
            fail(f"{xml_path}: no PARAM {need}")
    infos = {i.name: i.value for i in vo.resources[0].infos}
    for need in ("ARRAKISV", "PARAMDIG", "DATE"):
        if need not in infos:
            fail(f"{xml_path}: no INFO {need} (provenance)")
    hdr = fits.getheader(cat_path, 1)
    for need in ("ARRAKISV", "PARAMDIG", "DATE", "VERSION"):
        if need not in hdr:
            fail(f"{cat_path}: no header keyword {need} (provenance)")
    vtab = vt.to_table()
    if len(vtab) != len(cat):
        fail(f"{xml_path}: {len(vtab)} rows, the FITS file has {len(cat)}")
    for col in ("rm", "polint", "fracpol", "sigma_add", "snr_polint"):
        a = np.asarray(vtab[col], dtype=float)
        b = np.asarray(cat[col], dtype=float)
        if not np.array_equal(a, b, equal_nan=True):
            fail(f"{xml_path}: column {col} differs from the FITS file")
    print(f"ok: the VOTable ({len(vtab)} rows) equals the FITS table and carries PARAMs and provenance")

    if len(sys.argv) > 2:
        import json

        spec = json.load(open(sys.argv[2]))
        names = [c["name"] for c in spec]
        if list(cat.colnames) != names:
            fail(f"{cat_path}: columns {list(cat.colnames)}, expected {names}")
        if list(vtab.colnames) != names:
            fail(f"{xml_path}: columns differ from the column table")
        kinds = {"F64": "f8", "F32": "f4", "I64": "i8", "I32": "i4", "Bool": "b1", "Str": "U"}
        for i, c in enumerate(spec):
            col = cat[c["name"]]
            want = kinds[c["kind"]]
            got = col.dtype.str[1:] if want != "U" else ("U" if col.dtype.kind in "US" else col.dtype.str)
            if want == "b1":
                got = "b1" if col.dtype.kind == "b" else col.dtype.str
            if got != want:
                fail(f"{cat_path}: {c['name']} has dtype {col.dtype}, expected {want}")
            want_unit = u.Unit(c["unit"]) if c["unit"] else None
            if (col.unit is None) != (want_unit is None) or (want_unit is not None and col.unit != want_unit):
                fail(f"{cat_path}: {c['name']} has unit {col.unit}, expected {c['unit']!r}")
            if hdr.get(f"TUCD{i + 1}", "") != c["ucd"]:
                fail(f"{cat_path}: {c['name']} has UCD {hdr.get(f'TUCD{i + 1}')!r}, expected {c['ucd']!r}")
            field = vt.get_field_by_id_or_name(c["name"])
            if (field.ucd or "") != c["ucd"]:
                fail(f"{xml_path}: {c['name']} has UCD {field.ucd!r}")
            if not field.description:
                fail(f"{xml_path}: {c['name']} has no description")
        print(f"ok: all {len(spec)} columns in order, with their dtypes, units and UCDs (FITS and VOTable)")


if __name__ == "__main__":
    main(sys.argv[1])
