"""Azimuth and elevation of J2000 directions seen from ASKAP, by astropy (the reference for
arrakis's ionosphere geometry). Reads JSON [[ra_deg, dec_deg, mjd_utc], ...] on stdin, writes
JSON [[az_deg, el_deg], ...]: no refraction (pressure 0); IERS tables as bundled (no download)."""
import json
import sys
import warnings

import astropy.units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

iers.conf.auto_download = False
iers.conf.auto_max_age = None
warnings.simplefilter("ignore")

rows = json.load(sys.stdin)
askap = EarthLocation.from_geodetic(
    lon=116.6589 * u.deg, lat=-(26 + 42 / 60 + 15 / 3600) * u.deg, height=381 * u.m
)
out = []
for ra, dec, mjd in rows:
    t = Time(mjd, format="mjd", scale="utc")
    c = SkyCoord(ra * u.deg, dec * u.deg, frame="fk5", equinox="J2000").transform_to(
        AltAz(obstime=t, location=askap, pressure=0 * u.hPa)
    )
    out.append([c.az.deg, c.alt.deg])
json.dump(out, sys.stdout)
