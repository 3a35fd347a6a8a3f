//! `arrakis simulate`: a small but physically honest ASKAP-like field, deterministic for a seed.
//!
//! Beams on a square footprint (pitch 0.9° low band, 0.6° mid) that overlap; each beam cube (I, Q,
//! U; float32; RA---SIN/DEC--SIN + FREQ) sees every source through a Gaussian primary beam of FWHM
//! 1.09 λ/D (D = 12 m) that narrows with frequency, convolved with the restoring beam (BMAJ, BMIN,
//! BPA). Sources: power-law Stokes I, Faraday-thin polarisation (some with a second Faraday
//! component, some unpolarised, some slightly extended), Gaussian noise per channel, a few flagged
//! (NaN) channels. Writes Arrakis's file names, RACS-low DR1 catalogue columns, `field.yaml`,
//! per-beam channel weights and `truth.csv`.
//! Must never: use unseeded randomness or wall-clock time (same arguments, same bytes).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::fits::{Cube, Header};
use crate::science::{ionex, ionosphere, C_M_S};
use crate::wcs::{separation_deg, Wcs};

/// Options of a simulated field.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Field name (directory name).
    pub field: String,
    /// Number of beams (square footprint, filled row by row).
    pub beams: usize,
    /// Number of islands.
    pub sources: usize,
    /// Channels.
    pub nchan: usize,
    /// Pixels per image side.
    pub npix: usize,
    /// `low` (743–1031 MHz) or `mid` (1296–1440 MHz).
    pub band: String,
    /// Random seed.
    pub seed: u64,
    /// Inject an ionospheric Faraday rotation into Q and U, per island along its line of sight
    /// through a simulated ionosphere, and write that ionosphere as IONEX maps (`IONEXdata/`);
    /// without it `ionosphere/rm_ion.txt` holds RM_ion = 0.
    pub ionosphere: bool,
    /// Inject instrumental leakage of Stokes I into Q and U of this fraction (at the beam's
    /// half-power radius; see [`sim_leakage`]) and write the holography model that describes it
    /// as `holography.fits` in ASKAP's layout.
    pub leakage: Option<f64>,
    /// The field centre (RA, Dec in degrees; default 189.375, −25).
    pub centre: Option<(f64, f64)>,
    /// Take the sources from the simulated sky of this seed (the same sources, with the same
    /// properties, in every field that covers them) instead of placing them for this field.
    pub sky_seed: Option<u64>,
}

impl SimOptions {
    /// The small field of `arrakis demo` and the CI regression test: 4 beams, 20 islands, 72
    /// RACS-low channels, 160-pixel images.
    pub fn small(field: &str, seed: u64) -> SimOptions {
        SimOptions {
            field: field.into(),
            beams: 4,
            sources: 20,
            nchan: 72,
            npix: 160,
            band: "low".into(),
            seed,
            ionosphere: false,
            leakage: None,
            centre: None,
            sky_seed: None,
        }
    }
}

/// A deterministic generator (SplitMix64) with Gaussian draws.
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0xA5A5_5A5A_DEAD_BEEF)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uniform()
    }
    /// Standard normal.
    pub fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One injected component.
#[derive(Clone, Debug)]
pub struct Truth {
    /// Component id (`Gaussian_ID`, the catalogue's `cat_id`).
    pub cat_id: String,
    /// Island id.
    pub source_id: String,
    /// Position, degrees.
    pub ra: f64,
    /// Position, degrees.
    pub dec: f64,
    /// Stokes I at the reference frequency, Jy.
    pub stokes_i: f64,
    /// Spectral index.
    pub spectral_index: f64,
    /// Fractional polarisation of the main Faraday component.
    pub fracpol: f64,
    /// Its RM, rad/m².
    pub rm: f64,
    /// Intrinsic angle ψ0, degrees.
    pub polangle_deg: f64,
    /// Second Faraday component: fractional polarisation (0 if none) and RM.
    pub fracpol2: f64,
    /// RM of the second component.
    pub rm2: f64,
    /// Intrinsic FWHM size (arcsec; 0 for a point source).
    pub size_arcsec: f64,
}

/// The channel frequencies of a band, Hz.
pub fn band_freqs(band: &str, nchan: usize) -> Vec<f64> {
    let (lo, bw) = if band == "mid" {
        (1296e6, 144e6)
    } else {
        (743e6, 288e6)
    };
    (0..nchan)
        .map(|k| lo + bw * (k as f64 + 0.5) / nchan as f64)
        .collect()
}

fn sexagesimal_name(ra: f64, dec: f64) -> String {
    let h = ra / 15.0;
    let (hh, mm) = (h.floor(), ((h - h.floor()) * 60.0).floor());
    let ss = ((h - hh) * 60.0 - mm) * 60.0;
    let sign = if dec < 0.0 { '-' } else { '+' };
    let d = dec.abs();
    let (dd, dm) = (d.floor(), ((d - d.floor()) * 60.0).floor());
    let ds = ((d - dd) * 60.0 - dm) * 60.0;
    format!(
        "J{hh:02}{mm:02}{:02}{sign}{dd:02}{dm:02}{:02}",
        ss.floor(),
        ds.floor()
    )
}

/// Why a field could not be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A beam cube could not be written.
    #[error(transparent)]
    Fits(#[from] crate::fits::FitsError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimulateError + '_ {
    move |source| SimulateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Start of the simulated scan, MJD in seconds (as CASA and FRion count it).
const SCAN_START_MJD_S: f64 = 5.0e9;

/// The simulated ionosphere's vertical TEC (TECU) at a time (MJD seconds) and geocentric
/// latitude and longitude (degrees): a daytime bulge following the Sun, weaker towards the poles
/// (solar-maximum levels, so that RM_ion is a few rad/m²).
fn sim_vtec(t: f64, lat: f64, lon: f64) -> f64 {
    let solar =
        std::f64::consts::TAU * (t / 86_400.0).fract() + lon.to_radians() - std::f64::consts::PI;
    (30.0 + 12.0 * solar.cos()) * (0.55 + 0.45 * lat.to_radians().cos()) + 0.1 * lat
}

/// Write the simulated field into `datadir/field`; returns the field directory.
/// One component of a simulated sky's island.
struct SkyComp {
    stokes_i: f64,
    spectral_index: f64,
    fracpol: f64,
    rm: f64,
    polangle_deg: f64,
    fracpol2: f64,
    rm2: f64,
    extended: bool,
}

/// One island of a simulated sky: the same in every field that covers it.
struct SkyIsland {
    ra: f64,
    dec: f64,
    comps: Vec<SkyComp>,
}

/// The candidates of one sky cell: Dec band `band` (degrees [band, band + 1)), RA cell `cell` of
/// the band's `n` equal cells, about `density` islands per square degree; drawn from the seed
/// and the cell alone, so any field computes the same ones.
fn sky_cell(seed: u64, band: i64, cell: i64, n: i64, density: f64) -> Vec<SkyIsland> {
    let mix = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        ^ ((band + 1000) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ ((cell + 1) as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    let mut rng = Rng::new(mix);
    let width = 360.0 / n as f64;
    let (d0, d1) = (band as f64, band as f64 + 1.0);
    // Area of the cell: width (in radians of RA) × (sin d1 − sin d0), in square degrees.
    let area = width.to_radians()
        * (d1.to_radians().sin() - d0.to_radians().sin())
        * (180.0 / std::f64::consts::PI).powi(2);
    let count = (density * area + rng.uniform()).floor() as usize;
    (0..count)
        .map(|_| {
            let ra = width * (cell as f64 + rng.uniform());
            // Uniform in area: sin(dec) uniform.
            let sd = d0.to_radians().sin()
                + rng.uniform() * (d1.to_radians().sin() - d0.to_radians().sin());
            let dec = sd.asin().to_degrees();
            let (two_comps, unpolarised) = (rng.uniform() < 1.0 / 9.0, rng.uniform() < 1.0 / 7.0);
            let comps = (0..if two_comps { 2 } else { 1 })
                .map(|_| {
                    let p = if unpolarised {
                        0.0
                    } else {
                        rng.range(0.02, 0.12)
                    };
                    let rm = rng.range(-150.0, 150.0);
                    let two = rng.uniform() < 0.1;
                    SkyComp {
                        stokes_i: (rng.range(0.04f64.ln(), 0.4f64.ln())).exp(),
                        spectral_index: rng.range(-1.1, -0.4),
                        fracpol: p,
                        rm,
                        polangle_deg: rng.range(0.0, 180.0),
                        fracpol2: if two { 0.5 * p } else { 0.0 },
                        rm2: if two {
                            rm + rng.range(60.0, 120.0)
                        } else {
                            0.0
                        },
                        extended: rng.uniform() < 0.2,
                    }
                })
                .collect();
            SkyIsland { ra, dec, comps }
        })
        .collect()
}

/// The islands of the sky of `seed` with Dec in [dec_lo, dec_hi] (and a margin), about
/// `density` per square degree: every cell's candidates, less each candidate with a component
/// within `gap` degrees of a component of one that comes before it (by band, cell, then draw;
/// a second component sits `offset` degrees east of the first): a rule each candidate's
/// neighbourhood decides, so every field drops the same ones. Such thinning keeps (1 −
/// e^(−λA))/A of λ candidates per unit area (A = π gap²), so candidates are drawn at the λ
/// that keeps `density`; the kept density cannot pass 0.9/A (about 11 per square degree
/// for the low band's sky).
fn sky_islands(
    seed: u64,
    density: f64,
    gap: f64,
    offset: f64,
    dec_lo: f64,
    dec_hi: f64,
) -> Vec<SkyIsland> {
    let area = std::f64::consts::PI * gap * gap;
    let density = -(1.0 - (density * area).min(0.9)).ln() / area;
    let bands =
        ((dec_lo - 1.0).floor().max(-90.0) as i64)..=((dec_hi + 1.0).floor().min(89.0) as i64);
    let mut all: Vec<SkyIsland> = Vec::new();
    for band in bands {
        let centre = (band as f64 + 0.5).to_radians().cos();
        let n = ((360.0 * centre).floor() as i64).max(1);
        for cell in 0..n {
            all.extend(sky_cell(seed, band, cell, n, density));
        }
    }
    // `all` is in (band, cell, draw) order; a grid of gap-sized cells finds the neighbours.
    let reach = gap + offset;
    let key = |s: &SkyIsland| {
        let c = s.dec.to_radians().cos().max(1e-3);
        (
            (s.ra * c / reach).floor() as i64,
            (s.dec / reach).floor() as i64,
        )
    };
    let comps = |s: &SkyIsland| -> Vec<(f64, f64)> {
        let c = s.dec.to_radians().cos().max(1e-3);
        (0..s.comps.len())
            .map(|k| (s.ra + k as f64 * offset / c, s.dec))
            .collect()
    };
    let near = |a: &SkyIsland, b: &SkyIsland| {
        comps(a).iter().any(|p| {
            comps(b)
                .iter()
                .any(|q| separation_deg(p.0, p.1, q.0, q.1) < gap)
        })
    };
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, s) in all.iter().enumerate() {
        grid.entry(key(s)).or_default().push(i);
    }
    let mut keep = vec![true; all.len()];
    for (i, s) in all.iter().enumerate() {
        let (kx, ky) = key(s);
        'near: for dx in -2..=2 {
            for dy in -1..=1 {
                for &j in grid
                    .get(&(kx + dx, ky + dy))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if j < i && near(s, &all[j]) {
                        keep[i] = false;
                        break 'near;
                    }
                }
            }
        }
    }
    all.into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}

/// The simulated instrumental leakage (L_Q, L_U: the apparent Q/I and U/I of an unpolarised
/// source) of beam `beam` at offset (l, m) degrees from its pointing (SIN direction cosines, l
/// east) and frequency `f`: a small on-axis term and a quadrupole growing with the square of the
/// offset, reaching `fraction` at `r0_deg` (the half-power radius at `f_ref`), rotated by 20° per
/// beam number (so a model applied to the wrong beam is wrong), with a linear frequency slope.
pub fn sim_leakage(fraction: f64, beam: usize, l: f64, m: f64, f: f64, f_ref: f64) -> (f64, f64) {
    let r0 = (1.09 * C_M_S / f_ref / 12.0).to_degrees() / 2.0;
    let (s, c) = (20.0 * beam as f64).to_radians().sin_cos();
    let (x, y) = ((c * l + s * m) / r0, (-s * l + c * m) / r0);
    let slope = 1.0 + 0.5 * (f - f_ref) / f_ref;
    (
        fraction * slope * (0.1 + x * x - y * y),
        fraction * slope * (0.05 + 2.0 * x * y),
    )
}

/// Direction cosines (degrees; l east, m north) of (ra, dec) about (ra0, dec0).
fn sim_lm(ra: f64, dec: f64, ra0: f64, dec0: f64) -> (f64, f64) {
    let (a, d, a0, d0) = (
        ra.to_radians(),
        dec.to_radians(),
        ra0.to_radians(),
        dec0.to_radians(),
    );
    let l = d.cos() * (a - a0).sin();
    let m = d.sin() * d0.cos() - d.cos() * d0.sin() * (a - a0).cos();
    (l.to_degrees(), m.to_degrees())
}

/// Write `holography.fits` in the layout of ASKAP's holography cubes (`akpb.iquv...cube.fits`):
/// axes RA---SIN, DEC--SIN (101 × 101 offsets about each beam's pointing, CRVAL 0, CRPIX 51),
/// FREQ (17 planes over the band), STOKES (I, Q, U, V) and BEAM (0..beams-1); I is the
/// Gaussian primary beam, Q and U are L_Q·I and L_U·I of [`sim_leakage`], V is 0.
fn write_holography(
    path: &Path,
    o: &SimOptions,
    fraction: f64,
    freqs: &[f64],
    f_ref: f64,
) -> Result<(), SimulateError> {
    let (n, crpix) = (101usize, 51.0);
    let step = if o.band == "mid" { 0.025 } else { 0.0345 };
    let nf = 17usize;
    let (f_lo, f_hi) = (freqs[0], freqs[freqs.len() - 1]);
    let df = (f_hi - f_lo) / (nf - 1) as f64;
    let mut data = Vec::with_capacity(o.beams * 4 * nf * n * n);
    for beam in 0..o.beams {
        for stokes in 0..4 {
            for k in 0..nf {
                let f = f_lo + df * k as f64;
                let fwhm = (1.09 * C_M_S / f / 12.0).to_degrees();
                for iy in 0..n {
                    for ix in 0..n {
                        // RA---SIN with CDELT1 < 0: l (east) grows to lower pixel numbers.
                        let l = -step * (ix as f64 + 1.0 - crpix);
                        let m = step * (iy as f64 + 1.0 - crpix);
                        let pb = (-4.0 * 2f64.ln() * (l * l + m * m) / (fwhm * fwhm)).exp();
                        let (lq, lu) = sim_leakage(fraction, beam, l, m, f, f_ref);
                        data.push(match stokes {
                            0 => pb,
                            1 => lq * pb,
                            2 => lu * pb,
                            _ => 0.0,
                        } as f32);
                    }
                }
            }
        }
    }
    let mut h = Header::default();
    for (i, (ctype, crval, crpix, cdelt)) in [
        ("RA---SIN", 0.0, crpix, -step),
        ("DEC--SIN", 0.0, crpix, step),
        ("FREQ", f_lo, 1.0, df),
        ("STOKES", 1.0, 1.0, 1.0),
        ("BEAM", 0.0, 1.0, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        h.set_str(&format!("CTYPE{}", i + 1), ctype, "");
        h.set_f64(&format!("CRVAL{}", i + 1), crval, "");
        h.set_f64(&format!("CRPIX{}", i + 1), crpix, "");
        h.set_f64(&format!("CDELT{}", i + 1), cdelt, "");
    }
    h.set_str("CUNIT1", "deg", "");
    h.set_str("CUNIT2", "deg", "");
    h.set_str("CUNIT3", "Hz", "");
    h.set_str("TELESCOP", "ASKAP", "");
    h.set_f64("HOLOSBID", 0.0, "simulated");
    h.history(&format!(
        "arrakis simulate: leakage {fraction} at the half-power radius, seed {}",
        o.seed
    ));
    let tmp = crate::atomic::temp_path_for(path);
    crate::fits::Image {
        shape: vec![n, n, nf, 4, o.beams],
        data,
        header: h,
    }
    .write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub fn simulate(datadir: &Path, o: &SimOptions) -> Result<PathBuf, SimulateError> {
    let dir = datadir.join(&o.field);
    std::fs::create_dir_all(dir.join("catalogue")).map_err(io(&dir))?;
    let mut rng = Rng::new(o.seed);
    let freqs = band_freqs(&o.band, o.nchan);
    let f_ref = freqs.iter().sum::<f64>() / freqs.len() as f64;
    let pitch = if o.band == "mid" { 0.6 } else { 0.9 };
    let side = (o.beams as f64).sqrt().ceil() as usize;
    let (ra0, dec0): (f64, f64) = o.centre.unwrap_or((189.375, -25.0));
    let cosd = dec0.to_radians().cos();
    let centres: Vec<(f64, f64)> = (0..o.beams)
        .map(|b| {
            let (r, c) = ((b / side) as f64, (b % side) as f64);
            let off = (side as f64 - 1.0) / 2.0;
            (ra0 + (c - off) * pitch / cosd, dec0 + (r - off) * pitch)
        })
        .collect();
    let cell = 2.4 * pitch / o.npix as f64;
    let bmaj = 3.0 * cell;
    let bmin = 0.8 * bmaj;
    let bpa: f64 = 30.0;
    // Channel noise (Jy/beam) and flagged channels.
    let sigma0 = 0.0015;
    let sigmas: Vec<f64> = (0..o.nchan)
        .map(|c| sigma0 * (1.0 + 0.25 * (c as f64 / 7.0).sin()))
        .collect();
    let mut flagged = Vec::new();
    while flagged.len() < (o.nchan / 24).max(1) {
        let c = (rng.uniform() * o.nchan as f64) as usize;
        if c > 0 && c + 1 < o.nchan && !flagged.contains(&c) {
            flagged.push(c);
        }
    }
    // Sources inside the footprint.
    let half = (side as f64 - 1.0) / 2.0 * pitch + 0.3;
    let mut truths: Vec<Truth> = Vec::new();
    let mut islands: Vec<(String, f64, f64, usize)> = Vec::new();
    // Islands so far on a grid of cells a little over the wanted gap, in degrees of Dec and of
    // RA scaled by the smallest cos(Dec) in the footprint: every island nearer than the gap is in
    // the 3×3 cells around a candidate. Distances use the haversine of `separation_deg` from
    // per-island half-angle sines and cosines, so a candidate costs no trigonometry per island.
    let want_gap = 5.0 * bmaj + 4.0 * bmaj;
    let cos_min = (dec0 - half)
        .to_radians()
        .cos()
        .min((dec0 + half).to_radians().cos());
    let grid_cell = 1.05 * want_gap;
    let cell_of = |ra: f64, dec: f64| {
        (
            ((ra - ra0) * cos_min / grid_cell).floor() as i64,
            ((dec - dec0) / grid_cell).floor() as i64,
        )
    };
    /// sin and cos of RA/2 and Dec/2, and cos Dec.
    fn halves(ra: f64, dec: f64) -> [f64; 5] {
        let (r, d) = (ra.to_radians() / 2.0, dec.to_radians() / 2.0);
        [r.sin(), r.cos(), d.sin(), d.cos(), (2.0 * d).cos()]
    }
    let mut grid: HashMap<(i64, i64), Vec<[f64; 5]>> = HashMap::new();
    if let Some(sky_seed) = o.sky_seed {
        // The sky's beam (that of the default 160-pixel images) sets its sizes and gaps, so
        // every field sees the same sources whatever its image size.
        let bmaj_ref = 3.0 * 2.4 * pitch / 160.0;
        let density = o.sources as f64 / (2.0 * half).powi(2);
        let sky = sky_islands(
            sky_seed,
            density,
            4.0 * bmaj_ref,
            4.0 * bmaj_ref,
            dec0 - half,
            dec0 + half,
        );
        let mut inside: Vec<&SkyIsland> = sky
            .iter()
            .filter(|s| {
                let dra = (s.ra - ra0 + 540.0).rem_euclid(360.0) - 180.0;
                (s.dec - dec0).abs() <= half && (dra * cosd).abs() <= half
            })
            .collect();
        inside.sort_by(|a, b| a.dec.total_cmp(&b.dec).then(a.ra.total_cmp(&b.ra)));
        for (i, isl) in inside.into_iter().enumerate() {
            let sid = format!("{}_{i:03}", sexagesimal_name(isl.ra, isl.dec));
            for (k, c) in isl.comps.iter().enumerate() {
                let cos_c = isl.dec.to_radians().cos();
                truths.push(Truth {
                    cat_id: format!("{sid}_c{}", k + 1),
                    source_id: sid.clone(),
                    ra: (isl.ra + k as f64 * 4.0 * bmaj_ref / cos_c).rem_euclid(360.0),
                    dec: isl.dec,
                    stokes_i: c.stokes_i,
                    spectral_index: c.spectral_index,
                    fracpol: c.fracpol,
                    rm: c.rm,
                    polangle_deg: c.polangle_deg,
                    fracpol2: c.fracpol2,
                    rm2: c.rm2,
                    size_arcsec: if c.extended {
                        1.5 * bmaj_ref * 3600.0
                    } else {
                        0.0
                    },
                });
            }
            islands.push((sid, isl.ra, isl.dec, isl.comps.len()));
        }
    }
    for i in 0..if o.sky_seed.is_some() { 0 } else { o.sources } {
        // Islands at least 5 beam widths apart where the footprint allows (otherwise the
        // candidate farthest from the others), so the truth is not confused by blends.
        let mut best = (0.0, 0.0, -1.0);
        for _ in 0..200 {
            let ddec = rng.range(-half, half);
            let dra = rng.range(-half, half) / cosd;
            let (ra, dec) = (ra0 + dra, dec0 + ddec);
            // The nearest island's distance when it is nearer than the gap; infinite when
            // none is, where only "more than the gap" matters.
            let (cx, cy) = cell_of(ra, dec);
            let c = halves(ra, dec);
            let h = (cx - 1..=cx + 1)
                .flat_map(|x| (cy - 1..=cy + 1).map(move |y| (x, y)))
                .filter_map(|k| grid.get(&k))
                .flatten()
                .map(|n| {
                    let sd = c[2] * n[3] - c[3] * n[2];
                    let sr = c[0] * n[1] - c[1] * n[0];
                    sd * sd + c[4] * n[4] * sr * sr
                })
                .fold(f64::INFINITY, f64::min);
            let gap = if h.is_finite() {
                (2.0 * h.sqrt().min(1.0).asin()).to_degrees()
            } else {
                f64::INFINITY
            };
            if gap > best.2 {
                best = (ra, dec, gap);
            }
            if gap > want_gap {
                break;
            }
        }
        let (ra, dec) = (best.0, best.1);
        grid.entry(cell_of(ra, dec))
            .or_default()
            .push(halves(ra, dec));
        let sid = format!("{}_{i:03}", sexagesimal_name(ra, dec));
        let n_comp = if i % 9 == 4 { 2 } else { 1 };
        for k in 0..n_comp {
            let (cra, cdec) = if k == 0 {
                (ra, dec)
            } else {
                (ra + 4.0 * bmaj / cosd, dec)
            };
            let unpolarised = i % 7 == 3;
            let two = i % 10 == 6;
            let p = if unpolarised {
                0.0
            } else {
                rng.range(0.02, 0.12)
            };
            let rm = rng.range(-150.0, 150.0);
            truths.push(Truth {
                cat_id: format!("{sid}_c{}", k + 1),
                source_id: sid.clone(),
                ra: cra,
                dec: cdec,
                stokes_i: (rng.range(0.04f64.ln(), 0.4f64.ln())).exp(),
                spectral_index: rng.range(-1.1, -0.4),
                fracpol: p,
                rm,
                polangle_deg: rng.range(0.0, 180.0),
                fracpol2: if two { 0.5 * p } else { 0.0 },
                rm2: if two {
                    rm + rng.range(60.0, 120.0)
                } else {
                    0.0
                },
                size_arcsec: if i % 5 == 2 { 1.5 * bmaj * 3600.0 } else { 0.0 },
            });
        }
        islands.push((sid, ra, dec, n_comp));
    }
    // The ionosphere. Without --ionosphere, none: theta = 1 and ionosphere/rm_ion.txt holds
    // RM_ion = 0. With it, a smooth global VTEC (`sim_vtec`) seen through the real geometry
    // (ASKAP, 450 km shell, WMM2020: `science::ionosphere`): each island's Q and U are rotated by
    // the true time average over the 900 s scan of exp(2i λ² RM_ion(t)) along its own line of
    // sight (10 s steps), IONEXdata/ holds the VTEC as CODE's daily IONEX maps (what the frion
    // stage predicts from with ion_source: ionex), ionosphere/rm_ion.txt the RM_ion of the field
    // centre every 60 s (for ion_source: file), and truth.csv each island's mean RM_ion.
    let rm_series = |ra: f64, dec: f64, times: &[f64]| -> Vec<f64> {
        times
            .iter()
            .map(|&t| {
                if !o.ionosphere {
                    return 0.0;
                }
                let g = ionosphere::geometry(&ionosphere::ASKAP, ra, dec, t);
                ionosphere::rm_ion(
                    &g,
                    sim_vtec(t, g.pierce.geocentric_lat_deg, g.pierce.lon_deg),
                )
            })
            .collect()
    };
    let fine: Vec<f64> = (0..90)
        .map(|k| SCAN_START_MJD_S + 10.0 * k as f64 + 5.0)
        .collect();
    let mut theta_of: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    let mut rm_ion_of: HashMap<String, f64> = HashMap::new();
    for (sid, ra, dec, _) in &islands {
        let rms = rm_series(*ra, *dec, &fine);
        rm_ion_of.insert(sid.clone(), rms.iter().sum::<f64>() / rms.len() as f64);
        let theta: Vec<(f64, f64)> = freqs
            .iter()
            .map(|&f| {
                if !o.ionosphere {
                    return (1.0, 0.0);
                }
                let l2 = (C_M_S / f).powi(2);
                let (mut re, mut im) = (0.0, 0.0);
                for rm in &rms {
                    let (s, c) = (2.0 * l2 * rm).sin_cos();
                    re += c;
                    im += s;
                }
                (re / rms.len() as f64, im / rms.len() as f64)
            })
            .collect();
        theta_of.insert(sid.clone(), theta);
    }
    let times: Vec<f64> = (0..16)
        .map(|k| SCAN_START_MJD_S + 60.0 * k as f64)
        .collect();
    let rm_ion = rm_series(ra0, dec0, &times);
    let mut ion_text =
        String::from("# RM_ion time series (arrakis simulate)\n# time_s rm_ion_rad_m2\n");
    for (t, rm) in times.iter().zip(&rm_ion) {
        let _ = writeln!(ion_text, "{t:.1} {rm:.6}");
    }
    std::fs::create_dir_all(dir.join("ionosphere")).map_err(io(&dir))?;
    write(&dir.join("ionosphere/rm_ion.txt"), &ion_text)?;
    if o.ionosphere {
        let ionex_dir = dir.join("IONEXdata");
        std::fs::create_dir_all(&ionex_dir).map_err(io(&ionex_dir))?;
        let (lat, lon) = (ionex::CODE_LAT, ionex::CODE_LON);
        let first_day = ((SCAN_START_MJD_S - 3600.0) / 86_400.0).floor() as i64;
        let last_day = ((SCAN_START_MJD_S + 900.0 + 3600.0) / 86_400.0).floor() as i64;
        for day in first_day..=last_day {
            let t0 = day as f64 * 86_400.0;
            let epochs: Vec<f64> = (0..25).map(|k| t0 + 3600.0 * k as f64).collect();
            let text = ionex::write(&epochs, lat, lon, &sim_vtec);
            write(&ionex_dir.join(ionex::legacy_name("codg", t0)), &text)?;
        }
    }
    // Beam cubes.
    for (b, &(bra, bdec)) in centres.iter().enumerate() {
        let wcs = Wcs {
            crval_ra: bra,
            crval_dec: bdec,
            crpix_x: o.npix as f64 / 2.0 + 1.0,
            crpix_y: o.npix as f64 / 2.0 + 1.0,
            cdelt_x: -cell,
            cdelt_y: cell,
            pc: crate::wcs::IDENTITY,
            crval_freq: freqs[0],
            crpix_freq: 1.0,
            cdelt_freq: if o.nchan > 1 {
                freqs[1] - freqs[0]
            } else {
                1e6
            },
        };
        for (si, stokes) in ["i", "q", "u"].iter().enumerate() {
            let n = o.npix * o.npix;
            let mut data = vec![0f32; n * o.nchan];
            let mut noise_rng =
                Rng::new(o.seed.wrapping_mul(1000).wrapping_add((b * 3 + si) as u64));
            for (c, plane) in data.chunks_mut(n).enumerate() {
                for v in plane.iter_mut() {
                    *v = (sigmas[c] * noise_rng.gauss()) as f32;
                }
            }
            for t in &truths {
                let r = separation_deg(bra, bdec, t.ra, t.dec);
                let Some((px, py)) = wcs.world_to_pix(t.ra, t.dec) else {
                    continue;
                };
                let src = t.size_arcsec / 3600.0;
                let (maj, min) = (
                    (bmaj * bmaj + src * src).sqrt(),
                    (bmin * bmin + src * src).sqrt(),
                );
                let peak_scale = (bmaj * bmin) / (maj * min);
                let (sa, ca) = (bpa + 90.0).to_radians().sin_cos();
                let (sx, sy) = (maj / 2.3548 / cell, min / 2.3548 / cell);
                let reach = (4.0 * sx).ceil() as i64;
                let (x0, y0) = (px.round() as i64, py.round() as i64);
                for (c, plane) in data.chunks_mut(n).enumerate() {
                    let f = freqs[c];
                    let lam2 = (C_M_S / f).powi(2);
                    let fwhm_pb = (1.09 * C_M_S / f / 12.0).to_degrees();
                    let pb = (-4.0 * 2f64.ln() * (r / fwhm_pb).powi(2)).exp();
                    let i_f = t.stokes_i * (f / f_ref).powf(t.spectral_index);
                    let chi = t.polangle_deg.to_radians() + t.rm * lam2;
                    let chi2 = t.polangle_deg.to_radians() + t.rm2 * lam2;
                    let pq = t.fracpol * (2.0 * chi).cos() + t.fracpol2 * (2.0 * chi2).cos();
                    let pu = t.fracpol * (2.0 * chi).sin() + t.fracpol2 * (2.0 * chi2).sin();
                    // The ionosphere multiplies P by theta.
                    let (tr, ti) = theta_of[&t.source_id][c];
                    // The instrument adds L_S·I to S in this beam (after the ionosphere: the
                    // leakage happens in the receiver).
                    let (lq, lu) = match o.leakage {
                        Some(fraction) => {
                            let (l, m) = sim_lm(t.ra, t.dec, bra, bdec);
                            sim_leakage(fraction, b, l, m, f, f_ref)
                        }
                        None => (0.0, 0.0),
                    };
                    let value = match si {
                        0 => i_f,
                        1 => i_f * (pq * tr - pu * ti + lq),
                        _ => i_f * (pq * ti + pu * tr + lu),
                    } * pb
                        * peak_scale;
                    for y in (y0 - reach).max(0)..(y0 + reach + 1).min(o.npix as i64) {
                        for x in (x0 - reach).max(0)..(x0 + reach + 1).min(o.npix as i64) {
                            // Elliptical Gaussian; x grows west, so flip to east-positive for the PA.
                            let (dx, dy) = (-(x as f64 - px), y as f64 - py);
                            let u = dx * ca + dy * sa;
                            let v = -dx * sa + dy * ca;
                            let g = (-(u * u) / (2.0 * sx * sx) - (v * v) / (2.0 * sy * sy)).exp();
                            plane[y as usize * o.npix + x as usize] += (value * g) as f32;
                        }
                    }
                }
            }
            for &c in &flagged {
                data[c * n..(c + 1) * n]
                    .iter_mut()
                    .for_each(|v| *v = f32::NAN);
            }
            let mut header = Header::default();
            wcs.to_header(&mut header);
            header.set_f64("BMAJ", bmaj, "deg");
            header.set_f64("BMIN", bmin, "deg");
            header.set_f64("BPA", bpa, "deg");
            header.set_str("BUNIT", "Jy/beam", "");
            header.set_str("BTYPE", "Intensity", "");
            header.set_str("STOKES", &stokes.to_uppercase(), "");
            header.set_str("OBJECT", &o.field, "");
            header.set_str("TELESCOP", "ASKAP", "");
            header.set_f64("RESTFREQ", f_ref, "Hz");
            header.history(&format!("arrakis simulate seed {} beam {b:02}", o.seed));
            let cube = Cube {
                nx: o.npix,
                ny: o.npix,
                nchan: o.nchan,
                data,
                header,
            };
            let name = format!(
                "image.restored.{stokes}.{}.contcube.beam{b:02}.conv.fits",
                o.field
            );
            let path = dir.join(&name);
            let tmp = crate::atomic::temp_path_for(&path);
            cube.write(&tmp)?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            let mut w = String::from("# Channel Weight\n");
            for (c, s) in sigmas.iter().enumerate() {
                let wt = if flagged.contains(&c) {
                    0.0
                } else {
                    1.0 / (s * s)
                };
                let _ = writeln!(w, "{c} {wt:.6e}");
            }
            write(
                &dir.join(format!(
                    "weights.restored.{stokes}.{}.contcube.beam{b:02}.conv.txt",
                    o.field
                )),
                &w,
            )?;
        }
    }
    if let Some(fraction) = o.leakage {
        write_holography(&dir.join("holography.fits"), o, fraction, &freqs, f_ref)?;
    }
    // Catalogues (RACS-low DR1 column names; fluxes in mJy, sizes in arcsec).
    let mut isl = String::from(
        "Source_ID,Source_Name,Tile_ID,RA,Dec,Total_flux_Source,Peak_flux,N_Gaus,S_Code\n",
    );
    // The component catalogue carries every column the final catalogue copies (RACS-low DR1's
    // Gaussian table): errors from the band-averaged noise, deconvolved sizes, the observation.
    let mut comp = String::from("Gaussian_ID,Source_ID,Source_Name,Tile_ID,SBID,Obs_Start_Time,N_Gaus,RA,Dec,E_RA,E_Dec,Total_flux_Gaussian,E_Total_flux_Gaussian,Peak_flux,E_Peak_flux,Maj,E_Maj,Min,E_Min,PA,E_PA,DC_Maj,E_DC_Maj,DC_Min,E_DC_Min,DC_PA,E_DC_PA,S_Code,Separation_Tile_Centre\n");
    let rms_mjy = 1e3 * sigma0 / (o.nchan as f64).sqrt();
    let sbid = 10000 + o.seed;
    let start_mjd = SCAN_START_MJD_S / 86400.0;
    for (sid, ra, dec, n) in &islands {
        let comps: Vec<&Truth> = truths.iter().filter(|t| &t.source_id == sid).collect();
        let total: f64 = comps.iter().map(|t| t.stokes_i * 1e3).sum();
        let _ = writeln!(
            isl,
            "{sid},{sid},{},{ra:.6},{dec:.6},{total:.3},{total:.3},{n},{}",
            o.field,
            if *n > 1 { "M" } else { "S" }
        );
        for t in comps {
            let maj = ((bmaj * 3600.0).powi(2) + t.size_arcsec.powi(2)).sqrt();
            let min = ((bmin * 3600.0).powi(2) + t.size_arcsec.powi(2)).sqrt();
            let flux = t.stokes_i * 1e3;
            // Condon (1997)-like errors: position ~ beam / (2 SNR), flux ~ rms, sizes ~ size/SNR.
            let snr = (flux / rms_mjy).max(1.0);
            let e_pos = maj / (2.0 * snr);
            let sep = crate::science::sky::separation_deg(ra0, dec0, t.ra, t.dec);
            let _ = writeln!(
                comp,
                "{},{sid},{sid},{},{sbid},{start_mjd:.6},{n},{:.6},{:.6},{e_pos:.3},{e_pos:.3},{flux:.3},{rms_mjy:.4},{flux:.3},{rms_mjy:.4},{maj:.2},{:.2},{min:.2},{:.2},{bpa:.1},{:.2},{:.2},{:.2},{:.2},{:.2},{:.1},{:.2},{},{sep:.5}",
                t.cat_id,
                o.field,
                t.ra,
                t.dec,
                maj / snr,
                min / snr,
                90.0 / snr,
                t.size_arcsec,
                maj / snr,
                t.size_arcsec,
                min / snr,
                if t.size_arcsec > 0.0 { bpa } else { 0.0 },
                90.0 / snr,
                if *n > 1 { "M" } else { "S" }
            );
        }
    }
    write(&dir.join("catalogue/islands.csv"), &isl)?;
    write(&dir.join("catalogue/components.csv"), &comp)?;
    let mut tr = String::from("cat_id,source_id,ra,dec,stokesI,reffreq,spectral_index,fracpol,rm,polangle,fracpol2,rm2,size_arcsec,rm_ion\n");
    for t in &truths {
        let _ = writeln!(
            tr,
            "{},{},{:.6},{:.6},{:.6},{f_ref:.1},{:.4},{:.5},{:.3},{:.3},{:.5},{:.3},{:.2},{:.4}",
            t.cat_id,
            t.source_id,
            t.ra,
            t.dec,
            t.stokes_i,
            t.spectral_index,
            t.fracpol,
            t.rm,
            t.polangle_deg,
            t.fracpol2,
            t.rm2,
            t.size_arcsec,
            rm_ion_of[&t.source_id]
        );
    }
    write(&dir.join("truth.csv"), &tr)?;
    let mut y = format!(
        "field: {}\nsbid: {}\nband: {}\nnchan: {}\ncentre: {{ra_deg: {ra0:.6}, dec_deg: {dec0:.6}}}\nscan_start_mjd_s: {SCAN_START_MJD_S:.1}\nscan_length_s: 900.0\npol_axis_deg: -45.0\nflagged_channels: {:?}\nbeams:\n",
        o.field, sbid, o.band, o.nchan, flagged
    );
    for (b, (ra, dec)) in centres.iter().enumerate() {
        let _ = writeln!(y, "  - {{beam: {b}, ra_deg: {ra:.6}, dec_deg: {dec:.6}}}");
    }
    write(&dir.join("field.yaml"), &y)?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), SimulateError> {
    crate::atomic::write_atomic(path, text.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The truth rows of a simulated field: (ra, dec, stokesI, fracpol, rm).
    fn truth(dir: &Path) -> Vec<[f64; 5]> {
        let text = std::fs::read_to_string(dir.join("truth.csv")).unwrap();
        text.lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let n = |k: usize| f[k].parse::<f64>().unwrap();
                [n(2), n(3), n(4), n(7), n(8)]
            })
            .collect()
    }

    fn field(data: &Path, name: &str, centre: (f64, f64), sky: u64) -> Vec<[f64; 5]> {
        let o = SimOptions {
            nchan: 8,
            npix: 48,
            centre: Some(centre),
            sky_seed: Some(sky),
            ..SimOptions::small(name, 1)
        };
        truth(&simulate(data, &o).unwrap())
    }

    #[test]
    fn fields_of_one_sky_seed_share_the_sources_where_they_overlap() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let shift = 1.0 / 25f64.to_radians().cos();
        let a = field(d, "A", (189.375, -25.0), 7);
        let b = field(d, "B", (189.375 + shift, -25.0), 7);
        let c = field(d, "C", (189.375 + shift, -25.0), 8);
        // About --sources islands each.
        assert!((12..=32).contains(&a.len()), "{}", a.len());
        let same =
            |x: &[f64; 5], y: &[f64; 5]| (x[0] - y[0]).abs() < 1e-5 && (x[1] - y[1]).abs() < 1e-5;
        // The overlap (0.5 deg of the 1.5 deg fields) holds sources both have, with the same
        // properties; none of them in the field of another sky.
        let shared: Vec<_> = a
            .iter()
            .filter_map(|x| b.iter().find(|y| same(x, y)).map(|y| (x, y)))
            .collect();
        assert!(!shared.is_empty());
        for (x, y) in &shared {
            assert_eq!((x[2], x[3], x[4]), (y[2], y[3], y[4]));
            assert!(x[0] > 189.375 + shift - 0.75 / 25f64.to_radians().cos() - 1e-6);
        }
        assert!(!a.iter().any(|x| c.iter().any(|y| same(x, y))));
        // Every component of a field is in its footprint, and none is listed twice.
        for (t, i) in a.iter().enumerate() {
            assert!((i[1] + 25.0).abs() <= 0.75 + 1e-9);
            assert!(!a[..t].iter().any(|j| same(i, j)));
        }
        // The same arguments give the same sky.
        let again = field(d, "A2", (189.375, -25.0), 7);
        assert_eq!(a, again);
    }
}
