//! `linmos` (per island and Stokes): the primary-beam-weighted, inverse-variance mosaic of the
//! island's cutouts (yandasoft linmos's weighting) on the grid of the largest cutout, with its
//! weight cube.
//!
//! Must never: write anywhere but its temporary outputs.

use std::path::{Path, PathBuf};

use super::io::{memo_by_file, read_weights_shared};
use super::params::{LINMOS_CUTOFF, LINMOS_REGRID};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Header, Image, PlaneReader, Spectra};
use crate::rules::{Contract, SlotSpec};
use crate::science::layout::{ChannelGroups, CHANNEL_GROUP, CHANNEL_RUN as RUN};
use crate::science::primary_beam::{
    blend, offset_lm_deg, primary_beam_fwhm_deg, rotate_lm, BeamModel, FreqIndex, PLANE_Q, PLANE_U,
};
use crate::science::regrid::{stencil, Method, Tap};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "linmos",
    version: 7,
    params: &[&LINMOS_CUTOFF, &LINMOS_REGRID],
    inputs: &[
        SlotSpec::required(
            "cutouts",
            "the island's cutout of this Stokes parameter in every beam",
        ),
        SlotSpec::required(
            "weights",
            "each cutout's channel weights, in the same order",
        ),
        SlotSpec::optional("holography", "a holography primary-beam model (FITS)"),
        SlotSpec::optional(
            "stokes_i",
            "the island's Stokes I cutouts (for Q and U: leakage removal with the holography)",
        ),
    ],
    outputs: &["mosaic", "weight"],
    open: false,
};

/// The beam number in a cutout's name (`....beamNN.conv.fits`).
fn beam_number(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    let rest = &name[name.rfind(".beam")? + 5..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Read a holography primary-beam model, in either of two layouts:
/// - ASKAP's holography cube (`akpb.iquv...cube.fits`, what Arrakis's `holofile` names): five
///   axes `RA---SIN`, `DEC--SIN` (offsets from each beam's pointing in degrees, CRVAL 0),
///   `FREQ` (Hz), `STOKES` (1..4 = I, Q, U, V) and `BEAM` (the ASKAP beam number): the I
///   plane is the primary beam, Q and U the leakage of Stokes I into them;
/// - a primary beam alone: axes (`L-OFFSET` deg, `M-OFFSET` deg, `FREQ` Hz[, `BEAM`]); without
///   the beam axis one pattern serves every beam.
pub fn read_beam_model(path: &Path) -> Result<BeamModel, StageError> {
    let img = Image::read(path)?;
    let h = &img.header;
    let bad = |what: String| {
        StageError::file(
            path,
            None,
            format!(
                "{what}; a holography model is ASKAP's cube (axes RA---SIN, DEC--SIN, FREQ, STOKES, BEAM) or a primary beam (axes L-OFFSET deg, M-OFFSET deg, FREQ Hz[, BEAM])"
            ),
        )
    };
    let axis = |i: usize| -> Result<(f64, f64), StageError> {
        let key = |k: &str| format!("{k}{i}");
        let crval = h.get_f64(&key("CRVAL")).unwrap_or(0.0);
        let crpix = h.get_f64(&key("CRPIX")).unwrap_or(1.0);
        let cdelt = h
            .get_f64(&key("CDELT"))
            .filter(|d| *d != 0.0)
            .ok_or_else(|| bad(format!("{} is missing or zero", key("CDELT"))))?;
        // Value of the first sample (pixel 1) and the step.
        Ok((crval + (1.0 - crpix) * cdelt, cdelt))
    };
    let ctype = |i: usize| {
        h.get_str(&format!("CTYPE{i}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let askap = ctype(1).starts_with("RA---");
    let wanted: &[&str] = if askap {
        &["RA---SIN", "DEC--SIN", "FREQ", "STOKES", "BEAM"]
    } else {
        &["L-OFFSET", "M-OFFSET", "FREQ", "BEAM"]
    };
    let ndim = img.shape.len();
    let fits_dims = if askap {
        ndim == 5
    } else {
        ndim == 3 || ndim == 4
    };
    if !fits_dims {
        return Err(bad(format!("{ndim} axes")));
    }
    for (i, want) in wanted.iter().enumerate().take(ndim) {
        let got = ctype(i + 1);
        if got != *want {
            return Err(bad(format!("CTYPE{} is '{got}', expected '{want}'", i + 1)));
        }
    }
    let (l0, dl) = axis(1)?;
    let (m0, dm) = axis(2)?;
    let (f0, df) = if img.shape[2] > 1 {
        axis(3)?
    } else {
        (h.get_f64("CRVAL3").unwrap_or(0.0), 1.0)
    };
    let beam_axis = if askap { 5 } else { 4 };
    let (shared, beam0, nb) = if ndim >= beam_axis {
        let (b0, db) = if img.shape[beam_axis - 1] > 1 {
            axis(beam_axis)?
        } else {
            (h.get_f64(&format!("CRVAL{beam_axis}")).unwrap_or(0.0), 1.0)
        };
        if db != 1.0 || b0 < 0.0 || b0.fract() != 0.0 {
            return Err(bad(
                "the BEAM axis must count beams from a whole number in steps of 1".into(),
            ));
        }
        (false, b0 as usize, img.shape[beam_axis - 1])
    } else {
        (true, 0, 1)
    };
    let nstokes = if askap {
        let (s0, ds) = if img.shape[3] > 1 {
            axis(4)?
        } else {
            (1.0, 1.0)
        };
        if s0 != 1.0 || ds != 1.0 || img.shape[3] < 3 {
            return Err(bad(format!(
                "the STOKES axis must hold I, Q, U[, V] (values 1, 2, 3[, 4]); it starts at {s0} in steps of {ds} with {} planes",
                img.shape[3]
            )));
        }
        img.shape[3]
    } else {
        1
    };
    Ok(BeamModel {
        shape: [img.shape[0], img.shape[1], img.shape[2], nb],
        nstokes,
        data: img.data,
        l0_deg: l0,
        dl_deg: dl,
        m0_deg: m0,
        dm_deg: dm,
        f0_hz: f0,
        df_hz: df,
        beam0,
        shared,
    })
}

/// The error for a beam the holography lacks.
fn no_beam(ctx: &ActionCtx, beam: usize) -> StageError {
    StageError::data(format!(
        "{}: the holography model has no beam {beam}; give a model that covers every beam, or drop holofile to use the Gaussian beam",
        ctx.target
    ))
}

/// One beam's cutout of the island: its shape and header, and its pixels, read a run of
/// channels at a time as the mosaic is made.
struct Cutout {
    nx: usize,
    ny: usize,
    nchan: usize,
    header: Header,
    pixels: CutoutPixels,
}

/// Where a [`Cutout`]'s pixels come from.
enum CutoutPixels {
    /// The file, open: each run of channels decoded out of it (a plain cube's map) as spectra.
    File(Box<PlaneReader>),
    /// Held as spectra (`data[p·nchan + ch]`): the leakage removed from them.
    Held(Vec<f32>),
}

impl Cutout {
    /// Open a cutout (its pixels are read as they are mixed).
    fn open(path: &Path) -> Result<Cutout, StageError> {
        let mut r = PlaneReader::open(path)?;
        Ok(Cutout {
            nx: r.nx,
            ny: r.ny,
            nchan: r.nchan,
            header: std::mem::take(&mut r.header),
            pixels: CutoutPixels::File(Box::new(r)),
        })
    }

    /// A cutout held as spectra.
    fn held(s: Spectra) -> Cutout {
        Cutout {
            nx: s.nx,
            ny: s.ny,
            nchan: s.nchan,
            header: s.header,
            pixels: CutoutPixels::Held(s.data),
        }
    }

    /// The whole cutout as spectra, read now (the cutout is left without its pixels: make it
    /// again with [`Cutout::held`]).
    fn take_spectra(&mut self) -> Result<Spectra, StageError> {
        let data = match &mut self.pixels {
            CutoutPixels::File(r) => r.spectra()?,
            CutoutPixels::Held(d) => std::mem::take(d),
        };
        Ok(Spectra {
            nx: self.nx,
            ny: self.ny,
            nchan: self.nchan,
            data,
            header: std::mem::take(&mut self.header),
        })
    }

    /// Channels `chans` of every pixel laid out as [`ChannelGroups`] into `out` (see
    /// [`PlaneReader::groups_of`]).
    fn groups_of(
        &mut self,
        chans: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), StageError> {
        match &mut self.pixels {
            CutoutPixels::File(r) => r.groups_of(chans, out)?,
            CutoutPixels::Held(d) => ChannelGroups::from_spectra(d, self.nchan, chans, out),
        }
        Ok(())
    }
}

/// The angle (radians) the holography is rotated by for these cutouts: α = P − (−45°), P the
/// polarisation-axis angle the imager wrote as `INSTRUMENT_RECEPTOR_ANGLE` (degrees); cutouts
/// without it are taken at fixms's common case P = −45° (α = 0). Every cutout must agree.
fn receptor_rotation(images: &[PathBuf], cubes: &[(Cutout, Wcs)]) -> Result<f64, StageError> {
    let mut first: Option<(f64, &Path)> = None;
    for (p, (c, _)) in images.iter().zip(cubes) {
        let angle = c
            .header
            .get_f64("INSTRUMENT_RECEPTOR_ANGLE")
            .unwrap_or(-45.0);
        match first {
            None => first = Some((angle, p)),
            Some((a, q)) if (a - angle).abs() > 1e-6 => {
                return Err(StageError::file(
                    p,
                    None,
                    format!(
                        "INSTRUMENT_RECEPTOR_ANGLE is {angle} deg but {} has {a}; the beams of a field are imaged with one polarisation-axis angle (image them again)",
                        q.display()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok((first.map_or(-45.0, |(a, _)| a) + 45.0).to_radians())
}

/// Why leakage cannot be removed from a cutout.
enum LeakageError {
    /// The I cutout does not match (the message).
    Shape(String),
    /// The model lacks the beam.
    NoBeam,
}

/// Remove the leakage of Stokes I into `cube` (Stokes plane `plane` of the model) in place:
/// S(x, ν) −= L_S(ℓ, m, ν) · I(x, ν) per pixel and channel of this beam's cutout, (ℓ, m) the
/// pixel's offset from the beam's pointing (the cutout's CRVAL) rotated by `alpha`, L_S =
/// H_S / H_I of the holography (yandasoft linmos's `removeleakage`, before any weighting).
#[allow(clippy::too_many_arguments)]
fn remove_leakage(
    cube: &mut Spectra,
    wcs: &Wcs,
    icube: &Spectra,
    ipath: &Path,
    model: &BeamModel,
    beam: usize,
    plane: usize,
    alpha: f64,
) -> Result<(), LeakageError> {
    if (icube.nx, icube.ny, icube.nchan) != (cube.nx, cube.ny, cube.nchan) {
        return Err(LeakageError::Shape(format!(
            "{}x{}x{} pixels, but its Stokes I cutout {} has {}x{}x{}; they must match to remove the leakage",
            cube.nx,
            cube.ny,
            cube.nchan,
            ipath.display(),
            icube.nx,
            icube.ny,
            icube.nchan
        )));
    }
    let (nx, ny, nchan) = (cube.nx, cube.ny, cube.nchan);
    // Per channel, its place between the model's planes; per pixel, the I and S planes that
    // span the band are interpolated once, and each channel blends two of them.
    let fis: Vec<FreqIndex> = (0..cube.nchan)
        .map(|ch| model.freq_index(wcs.freq(ch)))
        .collect();
    let lo = fis.iter().map(|f| f.f0).min().unwrap_or(0);
    let hi = fis.iter().map(|f| f.f1).max().unwrap_or(0);
    let (mut iv, mut sv) = (Vec::new(), Vec::new());
    for y in 0..ny {
        for x in 0..nx {
            let (ra, dec) = wcs.pix_to_world(x as f64, y as f64);
            let (l, m) = offset_lm_deg(ra, dec, wcs.crval_ra, wcs.crval_dec);
            let (l, m) = rotate_lm(l, m, alpha);
            let sp = model.spatial(beam, l, m).ok_or(LeakageError::NoBeam)?;
            model.planes_at(&sp, 0, lo, hi, &mut iv);
            model.planes_at(&sp, plane, lo, hi, &mut sv);
            let p = (y * nx + x) * nchan;
            for (ch, &fi) in fis.iter().enumerate() {
                let h_i = blend(&iv, lo, fi);
                if h_i <= 1e-6 {
                    continue;
                }
                let k = p + ch;
                let leak = blend(&sv, lo, fi) / h_i;
                cube.data[k] -= (leak * icube.data[k] as f64) as f32;
            }
        }
    }
    Ok(())
}

/// A tap of one beam's cutout that reaches an output pixel.
struct Reach {
    /// The beam (its cutout).
    beam: u32,
    /// Where the output pixel falls in the cutout.
    tap: Tap,
}

/// The primary beam at every tap ([`Geometry::reach`]'s order) and channel.
enum BeamValues {
    /// The Gaussian beam, worked out in the mix a run of channels at a time from each tap's
    /// [`Chirp`] (channel 0's); 0 below the cutoff.
    Gaussian { chirps: Vec<Chirp>, cutoff: f64 },
    /// A table, `pb[tap·nchan + ch]`, 0 where the beam is below the cutoff (the holography's
    /// beams, or a Gaussian whose channels are not evenly spaced).
    Table(Vec<f32>),
}

/// The Gaussian beam B(ch) = exp(−k(ch) r²) at one tap, [`CHANNEL_RUN`](RUN) channels at a
/// time: `k` quadratic in the channel (k ∝ ν², ν linear in the channel: `k(ch) = k0 + k1·ch +
/// k2·ch(ch−1)/2`) makes the ratio of channels `RUN` apart geometric, so
/// B(ch + RUN) = B(ch)·R(ch), R(ch + RUN) = R(ch)·S: two vector multiplies per run (in double
/// precision, where 36 steps lose nothing a single-precision beam keeps) instead of a table of
/// every channel read from memory. Multiplies only: the same bits on every CPU.
#[derive(Clone, Copy, Debug)]
struct Chirp {
    b: [f64; RUN],
    r: [f64; RUN],
    s: f64,
}

impl Chirp {
    /// Channels 0..RUN of the Gaussian with `ks = [k0, k1, k2]` at `r2` (deg²).
    fn new(r2: f64, [k0, k1, k2]: [f64; 3]) -> Chirp {
        // Channel by channel across the first run (B(ch+1) = B(ch)·R1, R1 ← R1·S1, as k's
        // first differences grow by k2), then the run-to-run ratios: k(ch + L) − k(ch) =
        // L·k1 + k2·(L·ch + L(L−1)/2).
        let l = RUN as f64;
        let (mut b, mut r) = ([0f64; RUN], [0f64; RUN]);
        let (mut bc, mut r1, s1) = ((-k0 * r2).exp(), (-k1 * r2).exp(), (-k2 * r2).exp());
        let (mut rc, t) = (
            (-(l * k1 + k2 * l * (l - 1.0) / 2.0) * r2).exp(),
            (-k2 * l * r2).exp(),
        );
        for ch in 0..RUN {
            b[ch] = bc;
            r[ch] = rc;
            bc *= r1;
            r1 *= s1;
            rc *= t;
        }
        Chirp {
            b,
            r,
            s: (-k2 * l * l * r2).exp(),
        }
    }

    /// The next `V / RUN` runs' beam (as [`Chirp::next`], run after run).
    #[inline(always)]
    fn lanes<const V: usize>(&mut self, cutoff: f64) -> [f32; V] {
        let mut out = [0f32; V];
        for part in out.chunks_exact_mut(RUN) {
            part.copy_from_slice(&self.next(cutoff));
        }
        out
    }

    /// This run's beam in single precision (0 below `cutoff`), the chirp moved to the next run.
    #[inline(always)]
    fn next(&mut self, cutoff: f64) -> [f32; RUN] {
        let out = self.b.map(|b| if b >= cutoff { b as f32 } else { 0.0 });
        for (b, r) in self.b.iter_mut().zip(&mut self.r) {
            *b *= *r;
            *r *= self.s;
        }
        out
    }
}

/// An island's mosaic geometry: the output grid (the largest cutout's), where each output
/// pixel falls in each beam's cutout and the beam's response there. The same for the island's
/// I, Q and U mosaics, so worked out once per process for the three ([`geometry`] keeps it for
/// the next Stokes parameter).
struct Geometry {
    nx: usize,
    ny: usize,
    /// The taps that reach each output pixel p, beams in order: `reach[starts[p]..starts[p +
    /// 1]]`, pixel after pixel (the mix reads them, and the beam's values, front to back).
    reach: Vec<Reach>,
    starts: Vec<u32>,
    beam: BeamValues,
}

impl Geometry {
    /// The bytes it holds.
    fn bytes(&self) -> usize {
        use std::mem::size_of;
        let beam = match &self.beam {
            BeamValues::Gaussian { chirps, .. } => chirps.len() * size_of::<Chirp>(),
            BeamValues::Table(pb) => pb.len() * size_of::<f32>(),
        };
        beam + self.reach.len() * size_of::<Reach>() + self.starts.len() * size_of::<u32>()
    }
}

/// The geometries [`geometry`] keeps for the next Stokes parameter of the same island, at most
/// so many and so many bytes: in a first build an island's Q and U mosaics become ready one
/// and two cutouts after its I mosaic (as the last beam's Q and U cutouts finish), the mosaics
/// of every island that beam finishes in between: ~35 geometries apart in a field of 600
/// islands (~3 MiB each at 288 channels). Where more islands share a last beam the memo does
/// not reach back far enough and holds little (the 10 000-island build's memory goal).
const GEOMETRY_MEMO_COUNT: usize = 48;
const GEOMETRY_MEMO_BYTES: usize = 128 << 20;

/// The uses after which a kept geometry is dropped: I, Q and U have had it.
const GEOMETRY_USES: usize = 3;

/// The geometries kept: (key, geometry, uses so far), oldest first.
type GeometryMemo = std::collections::VecDeque<(blake3::Hash, std::sync::Arc<Geometry>, usize)>;

/// Keep `g` for later uses under `key` (its first use is now), the oldest dropped until the
/// memo holds at most `count` geometries and `budget` bytes (a geometry larger than the budget
/// by itself is not kept, and the memo stays as it is).
fn keep_geometry(
    memo: &mut GeometryMemo,
    key: blake3::Hash,
    g: std::sync::Arc<Geometry>,
    count: usize,
    budget: usize,
) {
    if g.bytes() > budget {
        return;
    }
    memo.push_back((key, g, 1));
    let mut held: usize = memo.iter().map(|(_, g, _)| g.bytes()).sum();
    while held > budget || memo.len() > count {
        match memo.pop_front() {
            Some((_, g, _)) => held -= g.bytes(),
            None => break,
        }
    }
}

/// A kept geometry under `key`, counted as one more use (dropped from the memo at its last).
fn reuse_geometry(memo: &mut GeometryMemo, key: &blake3::Hash) -> Option<std::sync::Arc<Geometry>> {
    let at = memo.iter().position(|(k, _, _)| k == key)?;
    memo[at].2 += 1;
    let g = memo[at].1.clone();
    if memo[at].2 >= GEOMETRY_USES {
        memo.remove(at);
    }
    Some(g)
}

/// The geometry of a mosaic of `cubes` on the grid of cube `ref_i` (see [`Geometry`]); a beam
/// the holography lacks is `Err(beam)`.
fn geometry(
    cubes: &[(Cutout, Wcs)],
    ref_i: usize,
    beam_numbers: &[usize],
    holography: Option<(&BeamModel, PathBuf)>,
    alpha: f64,
    cutoff: f64,
    method: Method,
) -> Result<std::sync::Arc<Geometry>, usize> {
    use std::sync::{Arc, Mutex};
    static MEMO: Mutex<GeometryMemo> = Mutex::new(std::collections::VecDeque::new());
    // Everything the geometry depends on (not the pixel values or the channel weights).
    let mut h = blake3::Hasher::new();
    let mut put = |s: String| {
        h.update(s.as_bytes());
        h.update(&[0]);
    };
    put(format!(
        "linmos-geometry-3 {ref_i} {alpha:e} {cutoff:e} {method:?} {beam_numbers:?}"
    ));
    for (c, w) in cubes {
        put(format!("{} {} {} {w:?}", c.nx, c.ny, c.nchan));
    }
    if let Some((_, p)) = &holography {
        let sig = crate::hash::StatSig::of_path(p).ok().flatten();
        put(format!("{} {sig:?}", p.display()));
    }
    let key = h.finalize();
    if let Some(g) = MEMO
        .lock()
        .ok()
        .and_then(|mut m| reuse_geometry(&mut m, &key))
    {
        return Ok(g);
    }
    let (out_c, out_wcs) = &cubes[ref_i];
    let (nx, ny, nchan) = (out_c.nx, out_c.ny, out_c.nchan);
    let freqs: Vec<f64> = (0..nchan).map(|ch| out_wcs.freq(ch)).collect();
    // The Gaussian beam exp(−k r²), k = 4 ln 2 / FWHM² per channel. k ∝ ν² with ν linear in the
    // channel makes the ratio of channels a run apart geometric: six exp per tap (its
    // [`Chirp`]) instead of one per channel.
    let ks: Vec<f64> = freqs
        .iter()
        .map(|&f| 4.0 * std::f64::consts::LN_2 / primary_beam_fwhm_deg(f).powi(2))
        .collect();
    let d2 = if nchan > 2 {
        ks[2] - 2.0 * ks[1] + ks[0]
    } else {
        0.0
    };
    let quadratic = ks
        .windows(3)
        .all(|w| ((w[2] - 2.0 * w[1] + w[0]) - d2).abs() <= 1e-9 * w[1].abs());
    let d0 = if nchan > 1 { ks[1] - ks[0] } else { 0.0 };
    let kmin = ks.iter().copied().fold(f64::INFINITY, f64::min);
    let fis: Vec<FreqIndex> = match &holography {
        Some((m, _)) => freqs.iter().map(|&f| m.freq_index(f)).collect(),
        None => Vec::new(),
    };
    let lo = fis.iter().map(|f| f.f0).min().unwrap_or(0);
    let hi = fis.iter().map(|f| f.f1).max().unwrap_or(0);
    let keep = |v: f64| if v >= cutoff { v as f32 } else { 0.0 };
    let ks3 = [ks[0], d0, d2];
    // Every beam's taps as (beam, output pixel, tap), beam after beam, and their beam's r² or
    // values in the same order; then sorted into pixel order.
    let (mut taps, mut pb, mut r2s) = (Vec::new(), Vec::new(), Vec::new());
    let mut planes = Vec::new();
    // Each output pixel's sky position, once for every beam.
    let sky: Vec<(f64, f64)> = (0..ny)
        .flat_map(|y| (0..nx).map(move |x| (x, y)))
        .map(|(x, y)| out_wcs.pix_to_world(x as f64, y as f64))
        .collect();
    for (b, (c, w)) in cubes.iter().enumerate() {
        for y in 0..ny {
            for x in 0..nx {
                let (ra, dec) = sky[y * nx + x];
                let Some((px, py)) = w.world_to_pix(ra, dec) else {
                    continue;
                };
                let Some(st) = stencil(c.nx, c.ny, px, py, method) else {
                    continue;
                };
                let (l, m) = offset_lm_deg(ra, dec, w.crval_ra, w.crval_dec);
                if let Some((model, _)) = &holography {
                    let (l, m) = rotate_lm(l, m, alpha);
                    let sp = model
                        .spatial(beam_numbers[b], l, m)
                        .ok_or(beam_numbers[b])?;
                    model.planes_at(&sp, 0, lo, hi, &mut planes);
                    pb.extend(fis.iter().map(|&fi| keep(blend(&planes, lo, fi).max(0.0))));
                } else {
                    let r2 = l * l + m * m;
                    // Below the cutoff in every channel: the beam is left out here.
                    if (-kmin * r2).exp() < cutoff {
                        continue;
                    }
                    if quadratic {
                        r2s.push(r2);
                    } else {
                        pb.extend(ks.iter().map(|k| keep((-k * r2).exp())));
                    }
                }
                taps.push((b as u32, (y * nx + x) as u32, st.tap(c.nx)));
            }
        }
    }
    let (order, starts) = by_pixel(&taps, nx * ny);
    let reach = order
        .iter()
        .map(|&i| {
            let (beam, _, tap) = &taps[i as usize];
            Reach {
                beam: *beam,
                tap: tap.clone(),
            }
        })
        .collect();
    let beam = if holography.is_none() && quadratic {
        BeamValues::Gaussian {
            chirps: order
                .iter()
                .map(|&i| Chirp::new(r2s[i as usize], ks3))
                .collect(),
            cutoff,
        }
    } else {
        let mut table = Vec::with_capacity(pb.len());
        for &i in &order {
            table.extend_from_slice(&pb[i as usize * nchan..(i as usize + 1) * nchan]);
        }
        BeamValues::Table(table)
    };
    let g = Arc::new(Geometry {
        nx,
        ny,
        reach,
        starts,
        beam,
    });
    if let Ok(mut m) = MEMO.lock() {
        keep_geometry(
            &mut m,
            key,
            g.clone(),
            GEOMETRY_MEMO_COUNT,
            GEOMETRY_MEMO_BYTES,
        );
    }
    Ok(g)
}

/// The indices of `taps` ((beam, output pixel, tap), beam after beam) in output-pixel order,
/// and where each pixel's begin (a counting sort: beams stay in order within a pixel).
fn by_pixel(taps: &[(u32, u32, Tap)], npix: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; npix + 1];
    for (_, p, _) in taps {
        starts[*p as usize + 1] += 1;
    }
    for p in 0..npix {
        starts[p + 1] += starts[p];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; taps.len()];
    for (i, (_, p, _)) in taps.iter().enumerate() {
        let at = &mut next[*p as usize];
        order[*at as usize] = i as u32;
        *at += 1;
    }
    (order, starts)
}

/// The channels [`mix`] takes at a time, at most: every beam's share of them (a run of whole
/// planes decoded and transposed into spectra, ~340 KiB a beam for a 30 × 30 cutout) stays in
/// the core's caches while it is mixed, and the mosaic's pair of them goes out as planes.
/// Measured on the bench field (288 channels): 96 and 48 alike, 144 (its transposes no longer
/// in the cache) and 288 slower.
const BLOCK: usize = 96;

/// Σ w B S / Σ w B² per pixel and channel (NaN where no beam is left) and Σ w B², a block of
/// channels at a time (at most `m.block`, whole runs of [`RUN`] but the last): each beam's
/// cutout read as those channels laid out as [`ChannelGroups`], mixed, and given to `put` as
/// the mosaic's and the weight's channels, laid out the same way, and their number `w`. The
/// block splits no pixel's arithmetic: every channel's value is the same, bit for bit,
/// whatever the block.
fn mix(
    m: &Mix,
    cutouts: &mut [Cutout],
    mut put: impl FnMut(&[f32], &[f32], usize) -> Result<(), StageError>,
) -> Result<(), StageError> {
    let nchan = m.nchan;
    let blocks = nchan.div_ceil(m.block.max(1)).max(1);
    let width = nchan.div_ceil(blocks).div_ceil(RUN) * RUN;
    let mut tiles = vec![Vec::new(); cutouts.len()];
    let (mut num, mut den) = (Vec::new(), Vec::new());
    // Each tap's Gaussian beam at the first channel of the block, moved on run by run.
    let mut chirps = match &m.geo.beam {
        BeamValues::Gaussian { chirps, .. } => chirps.clone(),
        BeamValues::Table(_) => Vec::new(),
    };
    for c0 in (0..nchan).step_by(width.max(1)) {
        let chans = c0..(c0 + width).min(nchan);
        for (c, t) in cutouts.iter_mut().zip(&mut tiles) {
            c.groups_of(chans.clone(), t)?;
        }
        let b = Block {
            m,
            tiles: &tiles,
            chans: chans.clone(),
        };
        mix_block(&b, &mut chirps, &mut num, &mut den);
        put(&num, &den, chans.len())?;
    }
    Ok(())
}

/// What [`mix`] combines: the geometry, each beam's cutout width, each beam's channel weights
/// (0: channel left out), the channels, and the most channels at a time.
struct Mix<'a> {
    geo: &'a Geometry,
    nxs: &'a [usize],
    ws: &'a [Vec<f32>],
    nchan: usize,
    block: usize,
}

/// One block of channels to mix: each beam's spectra of them.
struct Block<'a> {
    m: &'a Mix<'a>,
    tiles: &'a [Vec<f32>],
    chans: std::ops::Range<usize>,
}

/// A block's mosaic and weight into `num` and `den` (replaced), pixel by pixel, with the
/// widest instructions the CPU has (each channel's arithmetic is the same on every CPU); a
/// Gaussian beam's `chirps` (each tap's, at the block's first channel) moved past the block.
fn mix_block(b: &Block, chirps: &mut [Chirp], num: &mut Vec<f32>, den: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::science::simd::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { mix_avx512(b, chirps, num, den) };
        }
        if crate::science::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { mix_avx2(b, chirps, num, den) };
        }
    }
    mix_body::<RUN>(b, chirps, num, den)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn mix_avx512(b: &Block, chirps: &mut [Chirp], num: &mut Vec<f32>, den: &mut Vec<f32>) {
    mix_body::<CHANNEL_GROUP>(b, chirps, num, den)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mix_avx2(b: &Block, chirps: &mut [Chirp], num: &mut Vec<f32>, den: &mut Vec<f32>) {
    mix_body::<RUN>(b, chirps, num, den)
}

/// The mix, `V` channels at a time in the whole groups (a vector: [`CHANNEL_GROUP`] with
/// AVX-512, [`RUN`] otherwise), then the runs and the channels after them: the same arithmetic
/// per channel whatever `V` (the beam moves a run at a time either way).
#[inline(always)]
fn mix_body<const V: usize>(
    b: &Block,
    chirps: &mut [Chirp],
    num: &mut Vec<f32>,
    den: &mut Vec<f32>,
) {
    const { assert!(V.is_multiple_of(RUN) && CHANNEL_GROUP.is_multiple_of(V)) };
    let Mix {
        geo,
        nxs,
        ws,
        nchan,
        ..
    } = *b.m;
    let (c0, w) = (b.chans.start, b.chans.len());
    let npix = geo.nx * geo.ny;
    let layout = ChannelGroups { npix, w };
    // Each beam's tile in the same layout, over its own cutout's pixels.
    let tile_layouts: Vec<ChannelGroups> = b
        .tiles
        .iter()
        .map(|t| ChannelGroups {
            npix: t.len() / w.max(1),
            w,
        })
        .collect();
    // Pixel by pixel: a pixel's sums stay in the cache while every beam that reaches it adds
    // to them (in beam order), then are written once, group by group, where the layout puts
    // them.
    num.clear();
    den.clear();
    num.reserve(npix * w);
    den.reserve(npix * w);
    let (num_out, den_out) = (
        &mut num.spare_capacity_mut()[..npix * w],
        &mut den.spare_capacity_mut()[..npix * w],
    );
    let (mut n, mut d) = (vec![0f32; w], vec![0f32; w]);
    // The whole groups V lanes at a time, the runs after them, then the channels after the
    // last run one by one (the lanes never leave the vector registers between sampling and
    // adding).
    let whole = layout.whole();
    let tail_runs = whole + (w - whole) / RUN * RUN;
    for p in 0..npix {
        // Slices of exactly w: the loops below vectorise without bounds checks.
        let (n, d) = (&mut n[..w], &mut d[..w]);
        n.fill(0.0);
        d.fill(0.0);
        let taps = geo.starts[p] as usize..geo.starts[p + 1] as usize;
        for t in taps {
            let Reach { beam, tap } = &geo.reach[t];
            let beam = *beam as usize;
            let tap = tap.spectra(&b.tiles[beam], nxs[beam], tile_layouts[beam]);
            let wt = &ws[beam][c0..c0 + w];
            match &geo.beam {
                BeamValues::Gaussian { cutoff, .. } => {
                    // A copy, and the cutoff's: kept in registers across the runs (through
                    // references they went to memory and back every run).
                    let (mut chirp, cutoff) = (chirps[t], *cutoff);
                    for c in (0..whole).step_by(V) {
                        let pb = chirp.lanes::<V>(cutoff);
                        add_lanes::<V>(&tap.sample_whole::<V>(c), c, n, d, wt, &pb);
                    }
                    for c in (whole..tail_runs).step_by(RUN) {
                        let pb = chirp.next(cutoff);
                        add_lanes::<RUN>(&tap.sample::<RUN>(c), c, n, d, wt, &pb);
                    }
                    if tail_runs < w {
                        let pb = chirp.next(cutoff);
                        for (ch, pb) in (tail_runs..w).zip(pb) {
                            add_lanes::<1>(&tap.sample::<1>(ch), ch, n, d, wt, &[pb]);
                        }
                    }
                    chirps[t] = chirp;
                }
                BeamValues::Table(pb) => {
                    let pb = &pb[t * nchan + c0..t * nchan + c0 + w];
                    let lanes = |c: usize| -> &[f32; V] { pb[c..c + V].try_into().unwrap() };
                    for c in (0..whole).step_by(V) {
                        add_lanes::<V>(&tap.sample_whole::<V>(c), c, n, d, wt, lanes(c));
                    }
                    for c in (whole..tail_runs).step_by(RUN) {
                        let pbr = pb[c..c + RUN].try_into().unwrap();
                        add_lanes::<RUN>(&tap.sample::<RUN>(c), c, n, d, wt, pbr);
                    }
                    for (ch, &pb) in pb.iter().enumerate().skip(tail_runs) {
                        add_lanes::<1>(&tap.sample::<1>(ch), ch, n, d, wt, &[pb]);
                    }
                }
            }
        }
        // Each group's share of the pixel where the layout puts it (every element of the
        // outputs is written once: each pixel's every channel), a group in one vector.
        // The quotient taken always and then selected (a division behind a branch was done
        // lane by lane).
        let ratio = |n: f32, d: f32| {
            let q = n / d;
            if d > 0.0 {
                q
            } else {
                f32::NAN
            }
        };
        for c in (0..whole).step_by(CHANNEL_GROUP) {
            let at = c * npix + p * CHANNEL_GROUP;
            let (ng, dg): (&[f32; CHANNEL_GROUP], &[f32; CHANNEL_GROUP]) = (
                n[c..c + CHANNEL_GROUP].try_into().unwrap(),
                d[c..c + CHANNEL_GROUP].try_into().unwrap(),
            );
            let q: [f32; CHANNEL_GROUP] = std::array::from_fn(|j| ratio(ng[j], dg[j]));
            for (o, v) in num_out[at..at + CHANNEL_GROUP].iter_mut().zip(q) {
                o.write(v);
            }
            for (o, v) in den_out[at..at + CHANNEL_GROUP].iter_mut().zip(dg) {
                o.write(*v);
            }
        }
        let rem = w - whole;
        let at = whole * npix + p * rem;
        for j in 0..rem {
            num_out[at + j].write(ratio(n[whole + j], d[whole + j]));
            den_out[at + j].write(d[whole + j]);
        }
    }
    // SAFETY: the loop above wrote all npix·w elements of both (each pixel's w channels).
    unsafe {
        num.set_len(npix * w);
        den.set_len(npix * w);
    }
}

/// Channels `c0..c0 + L` of one beam's share of a pixel's sums (`n`, `d` and the weights `w`
/// the block's channels long, `v` the samples and `pb` the beam in these `L`), added by
/// [`accumulate`].
#[inline(always)]
fn add_lanes<const L: usize>(
    v: &[f32; L],
    c0: usize,
    n: &mut [f32],
    d: &mut [f32],
    w: &[f32],
    pb: &[f32; L],
) {
    let r = c0..c0 + L;
    accumulate::<L>(
        (&mut n[r.clone()]).try_into().unwrap(),
        (&mut d[r.clone()]).try_into().unwrap(),
        v,
        w[r].try_into().unwrap(),
        pb,
    );
}

/// One beam's share of a run of a pixel's sums: `n += w B v`, `d += w B²` per channel (`v` the
/// sampled spectrum, `w` the channel weights, `pb` the beam). A blank sample, a dead channel
/// (weight 0) or a beam below the cutoff (0) adds nothing.
#[inline(always)]
fn accumulate<const L: usize>(
    n: &mut [f32; L],
    d: &mut [f32; L],
    v: &[f32; L],
    w: &[f32; L],
    pb: &[f32; L],
) {
    for ch in 0..L {
        let wp = w[ch] * pb[ch];
        // No branch: where the sample is left out, w B and the sample are selected as +0.0
        // (masked moves) and the fused multiply-adds add +0.0 (what `if live { .. }` around
        // them gives, but the lanes stay in one register). Each sum is rounded once per beam:
        // the same bits on every CPU.
        let live = v[ch].is_finite() & (wp > 0.0);
        let wp = if live { wp } else { 0.0 };
        let v = if live { v[ch] } else { 0.0 };
        n[ch] = v.mul_add(wp, n[ch]);
        d[ch] = wp.mul_add(pb[ch], d[ch]);
    }
}

/// `linmos`: out = Σ w_b B_b I_b / Σ w_b B_b² per pixel and channel on the grid of the largest
/// cutout, w_b the beam's channel weight (inverse variance), B_b the Gaussian primary beam about
/// the beam's pointing (the cutout's CRVAL); beams whose B_b is below `linmos_cutoff` are left
/// out, and pixels with no beam left are blank. Also writes Σ w_b B_b² as the weight cube.
pub struct Linmos;

impl Builtin for Linmos {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let cutoff = ctx.f64(&LINMOS_CUTOFF)?;
        let method = Method::from_name(ctx.str(&LINMOS_REGRID)?)
            .map_err(|e| StageError::data(format!("{}: {e}", ctx.target)))?;
        let images = ctx.input("cutouts");
        let weights = ctx.input("weights");
        if images.is_empty() || images.len() != weights.len() {
            return Err(StageError::data(format!(
                "{}: {} cutouts but {} weight files",
                ctx.target,
                images.len(),
                weights.len()
            )));
        }
        // One model serves every island: parsed once per process, not once per target.
        let holography = match ctx.input("holography").first() {
            Some(p) => Some(memo_by_file(p, || read_beam_model(p))?),
            None => None,
        };
        let mut cubes = Vec::new();
        let mut beam_numbers = Vec::new();
        for p in images {
            beam_numbers.push(beam_number(p).ok_or_else(|| {
                StageError::file(
                    p,
                    None,
                    "cannot tell the beam of this cutout (expected '.beamNN.' in its name)",
                )
            })?);
            let c = Cutout::open(p)?;
            let w = Wcs::from_header(&c.header, p)?;
            cubes.push((c, w));
        }
        // The holography's rotation: the imager's polarisation-axis angle P
        // (INSTRUMENT_RECEPTOR_ANGLE, the same in every cutout; -45°, fixms's common case,
        // when absent) against the -45° the holography was taken at.
        let alpha = receptor_rotation(images, &cubes)?;
        let stokes = ctx.unit_var("stokes").unwrap_or("i");
        let mut leakage_note = None;
        if let Some(model) = holography.as_deref().filter(|m| m.has_leakage()) {
            let plane = match stokes {
                "q" => Some(PLANE_Q),
                "u" => Some(PLANE_U),
                _ => None,
            };
            if let Some(plane) = plane {
                let i_paths = ctx.input("stokes_i");
                for (b, (cube, wcs)) in cubes.iter_mut().enumerate() {
                    let beam = beam_numbers[b];
                    let Some(ip) = i_paths.iter().find(|p| beam_number(p) == Some(beam)) else {
                        return Err(StageError::data(format!(
                            "{}: no Stokes I cutout of beam {beam} to remove the leakage of {} with; the linmos rule must give the island's I cutouts as 'stokes_i' when holofile is set",
                            ctx.target,
                            images[b].display()
                        )));
                    };
                    let icube = Spectra::read(ip)?;
                    let mut s = cube.take_spectra()?;
                    remove_leakage(&mut s, wcs, &icube, ip, model, beam, plane, alpha).map_err(
                        |e| match e {
                            LeakageError::Shape(msg) => StageError::file(&images[b], None, msg),
                            LeakageError::NoBeam => no_beam(ctx, beam),
                        },
                    )?;
                    *cube = Cutout::held(s);
                }
                leakage_note = Some(format!(
                    "arrakis linmos: leakage of I into {} removed with the holography (rotated {:.2} deg)",
                    stokes.to_uppercase(),
                    alpha.to_degrees()
                ));
            }
        }
        let nchan = cubes[0].0.nchan;
        if let Some(k) = cubes.iter().position(|(c, _)| c.nchan != nchan) {
            return Err(StageError::data(format!(
                "{}: cutout {} has {} channels but {} has {nchan}; every beam must have the same channels (check NAXIS3 of the beam cubes)",
                ctx.target,
                images[k].display(),
                cubes[k].0.nchan,
                images[0].display()
            )));
        }
        let ws: Vec<_> = weights
            .iter()
            .map(|p| read_weights_shared(p, nchan))
            .collect::<Result<_, _>>()?;
        let (ref_i, _) = cubes
            .iter()
            .enumerate()
            .max_by_key(|(_, (c, _))| c.nx * c.ny)
            .ok_or_else(|| StageError::data(format!("{}: no cutouts", ctx.target)))?;
        let holo = holography.as_ref().map(|m| {
            (
                m.as_ref(),
                ctx.input("holography").first().cloned().unwrap_or_default(),
            )
        });
        let geo = geometry(&cubes, ref_i, &beam_numbers, holo, alpha, cutoff, method)
            .map_err(|beam| no_beam(ctx, beam))?;
        let nxs: Vec<usize> = cubes.iter().map(|(c, _)| c.nx).collect();
        // A weight that is not a positive number leaves its channel out.
        let ws: Vec<Vec<f32>> = ws
            .iter()
            .map(|cw| {
                cw.w.iter()
                    .map(|&v| {
                        if v > 0.0 && v.is_finite() {
                            v as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut header = cubes[ref_i].0.header.clone();
        header.history(if holography.is_some() {
            "arrakis linmos: sum w B I / sum w B^2 (holography primary beams)"
        } else {
            "arrakis linmos: sum w B I / sum w B^2 (Gaussian primary beam, FWHM 1.09 lambda/D)"
        });
        if let Some(note) = &leakage_note {
            header.history(note);
        }
        let shape = (geo.nx, geo.ny, nchan);
        let mut pair = super::io::MosaicPair::start(ctx, shape, &header, "sum of w B^2")?;
        let mut cutouts: Vec<Cutout> = cubes.into_iter().map(|(c, _)| c).collect();
        let m = Mix {
            geo: &geo,
            nxs: &nxs,
            ws: &ws,
            nchan,
            block: BLOCK,
        };
        mix(&m, &mut cutouts, |num, den, w| pair.put_groups(num, den, w))?;
        pair.write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wcs::IDENTITY;

    /// A 3-beam model on a 5 × 5 grid of 0.5° steps, 2 frequency planes: I = 0.8 everywhere, Q
    /// = 0.8 × (0.01 + 0.01 l) (l in degrees east), U = −0.8 × 0.02 × (beam + 1).
    fn model() -> BeamModel {
        let (n, nf, nb) = (5usize, 2usize, 3usize);
        let mut data = Vec::new();
        for b in 0..nb {
            for s in 0..4 {
                for _f in 0..nf {
                    for _y in 0..n {
                        for x in 0..n {
                            // RA---SIN-like: l = 1 - 0.5 x (east to the left).
                            let l = 1.0 - 0.5 * x as f32;
                            data.push(match s {
                                0 => 0.8,
                                1 => 0.8 * (0.01 + 0.01 * l),
                                2 => -0.8 * 0.02 * (b + 1) as f32,
                                _ => 0.0,
                            });
                        }
                    }
                }
            }
        }
        BeamModel {
            shape: [n, n, nf, nb],
            nstokes: 4,
            data,
            l0_deg: 1.0,
            dl_deg: -0.5,
            m0_deg: -1.0,
            dm_deg: 0.5,
            f0_hz: 800e6,
            df_hz: 100e6,
            beam0: 0,
            shared: false,
        }
    }

    fn cube(value: f32, angle: Option<f64>) -> (Spectra, Wcs) {
        let wcs = Wcs {
            crval_ra: 30.0,
            crval_dec: 0.0,
            crpix_x: 3.0,
            crpix_y: 3.0,
            cdelt_x: -0.25,
            cdelt_y: 0.25,
            pc: IDENTITY,
            crval_freq: 850e6,
            crpix_freq: 1.0,
            cdelt_freq: 10e6,
        };
        let mut header = Header::default();
        wcs.to_header(&mut header);
        if let Some(a) = angle {
            header.set_f64("INSTRUMENT_RECEPTOR_ANGLE", a, "");
        }
        let c = Spectra {
            nx: 5,
            ny: 5,
            nchan: 2,
            data: vec![value; 50],
            header,
        };
        (c, wcs)
    }

    #[test]
    fn leakage_is_removed_with_the_i_cutout_of_the_same_beam() {
        let m = model();
        // An unpolarised source: I = 1 everywhere, so Q and U are the leakage alone.
        let (icube, _) = cube(1.0, None);
        let (mut q, wcs) = cube(0.0, None);
        remove_leakage(
            &mut q,
            &wcs,
            &icube,
            Path::new("i.fits"),
            &m,
            1,
            PLANE_Q,
            0.0,
        )
        .ok()
        .unwrap();
        // Q = −L_Q·I: at the reference pixel (l = 0) −0.01; one pixel east (x = 1, l ≈ 0.25°)
        // −0.0125.
        // Channel 0 of pixel (x, y) (spectra of 2 channels).
        let at = |c: &Spectra, x: usize, y: usize| c.data[(y * 5 + x) * 2] as f64;
        assert!((at(&q, 2, 2) + 0.01).abs() < 1e-6, "{}", at(&q, 2, 2));
        assert!((at(&q, 1, 2) + 0.0125).abs() < 1e-4, "{}", at(&q, 1, 2));
        // U of beam 2 is three times beam 0's: the beam number picks the plane.
        for (beam, want) in [(0, 0.02), (2, 0.06)] {
            let (mut u, _) = cube(0.0, None);
            remove_leakage(&mut u, &wcs, &icube, Path::new("i"), &m, beam, PLANE_U, 0.0)
                .ok()
                .unwrap();
            assert!(
                (at(&u, 3, 1) - want).abs() < 1e-6,
                "beam {beam}: {}",
                at(&u, 3, 1)
            );
        }
        // Rotated by 180°: l changes sign, so one pixel east reads the model one pixel west.
        let (mut r, _) = cube(0.0, None);
        remove_leakage(
            &mut r,
            &wcs,
            &icube,
            Path::new("i"),
            &m,
            1,
            PLANE_Q,
            std::f64::consts::PI,
        )
        .ok()
        .unwrap();
        assert!((at(&r, 1, 2) + 0.0075).abs() < 1e-4, "{}", at(&r, 1, 2));
        // A beam the model lacks, and an I cutout of another shape, are refused.
        let (mut q, _) = cube(0.0, None);
        assert!(matches!(
            remove_leakage(&mut q, &wcs, &icube, Path::new("i"), &m, 3, PLANE_Q, 0.0),
            Err(LeakageError::NoBeam)
        ));
        let mut small = icube.clone();
        small.nchan = 1;
        small.data.truncate(25);
        assert!(matches!(
            remove_leakage(&mut q, &wcs, &small, Path::new("i"), &m, 0, PLANE_Q, 0.0),
            Err(LeakageError::Shape(_))
        ));
    }

    #[test]
    fn the_reference_cutout_reaches_every_pixel_of_its_own_grid() {
        // The demo's cutout grid (SIN about a beam centre off the cutout): a round trip through
        // the sky lands a hair outside the first or last column for about half the edge pixels,
        // which used to leave them blank; and a blank's neighbours, sampled on their own pixel,
        // do not read it.
        let wcs = Wcs {
            crval_ra: 189.87152006,
            crval_dec: -24.55,
            crpix_x: 20.0,
            crpix_y: -1.0,
            cdelt_x: -0.0135,
            cdelt_y: 0.0135,
            pc: IDENTITY,
            crval_freq: 745e6,
            crpix_freq: 1.0,
            cdelt_freq: 4e6,
        };
        let (n, nchan) = (26, 2);
        let mut header = Header::default();
        wcs.to_header(&mut header);
        let mut data: Vec<f32> = (0..n * n * nchan).map(|k| 1.0 + k as f32).collect();
        let blank = 10 * n + 10;
        data[blank * nchan..(blank + 1) * nchan].fill(f32::NAN);
        let cube = Cutout::held(Spectra {
            nx: n,
            ny: n,
            nchan,
            data: data.clone(),
            header,
        });
        let mut cubes = [(cube, wcs)];
        let geo = geometry(&cubes, 0, &[0], None, 0.0, 0.01, Method::Cubic).unwrap();
        let m = Mix {
            geo: &geo,
            nxs: &[n],
            ws: &[vec![1.0; nchan]],
            nchan,
            block: BLOCK,
        };
        let (out, den) = mixed(&m, &mut cubes);
        for p in 0..n * n {
            for ch in 0..nchan {
                let k = p * nchan + ch;
                if p == blank {
                    assert!(out[k].is_nan());
                    continue;
                }
                // One beam: v B / B² = v / B, B = √den.
                let b = den[k].sqrt();
                assert!(
                    (out[k] * b - data[k]).abs() <= 1e-5 * data[k],
                    "pixel ({}, {}) channel {ch}: {} against {}",
                    p % n,
                    p / n,
                    out[k] * b,
                    data[k]
                );
            }
        }
    }

    #[test]
    fn the_chirp_is_the_gaussian_in_every_channel_and_nothing_below_the_cutoff() {
        // k ∝ ν², ν linear in the channel: k quadratic in the channel; 288 channels (36 runs).
        // Frequencies rising and falling with the channel.
        let nchan = 288;
        let cutoff = 0.05;
        let mut seen = (false, false);
        for (i, step) in (0..40).flat_map(|i| [(i, 0.004), (i, -0.002)]) {
            let k = |ch: f64| 2.0 * (1.0 + step * ch).powi(2);
            let ks = [k(0.0), k(1.0) - k(0.0), k(2.0) - 2.0 * k(1.0) + k(0.0)];
            let r2 = 0.04 * i as f64;
            let mut chirp = Chirp::new(r2, ks);
            let got: Vec<f32> = (0..nchan / RUN).flat_map(|_| chirp.next(cutoff)).collect();
            for (ch, &g) in got.iter().enumerate() {
                let want = (-k(ch as f64) * r2).exp();
                if want < cutoff * 0.999_999 {
                    assert_eq!(g, 0.0, "r² {r2} channel {ch}");
                    seen.0 = true;
                } else if want > cutoff * 1.000_001 {
                    // As near as single precision holds it.
                    assert!(
                        (g as f64 - want).abs() <= 1e-7 * want,
                        "r² {r2} channel {ch}: {g} against {want}"
                    );
                    seen.1 = true;
                }
            }
        }
        assert_eq!(seen, (true, true), "both sides of the cutoff tried");
    }

    #[test]
    fn kept_geometries_go_after_their_third_use_or_when_the_budget_is_spent() {
        use std::sync::Arc;
        let geo = |n: usize| {
            Arc::new(Geometry {
                nx: 1,
                ny: 1,
                reach: Vec::new(),
                starts: vec![0, 0],
                beam: BeamValues::Table(vec![0.0; n]),
            })
        };
        let key = |i: u8| blake3::hash(&[i]);
        let one = geo(1000).bytes();
        let mut m = GeometryMemo::new();
        keep_geometry(&mut m, key(1), geo(1000), 9, 3 * one); // I
        keep_geometry(&mut m, key(2), geo(1000), 9, 3 * one);
        assert!(reuse_geometry(&mut m, &key(1)).is_some()); // Q
        assert!(reuse_geometry(&mut m, &key(1)).is_some()); // U, its last use
        assert!(reuse_geometry(&mut m, &key(1)).is_none());
        for k in 3..=5 {
            keep_geometry(&mut m, key(k), geo(1000), 9, 3 * one);
        }
        // Four would pass the budget: the oldest went.
        assert!(reuse_geometry(&mut m, &key(2)).is_none());
        assert!(reuse_geometry(&mut m, &key(3)).is_some());
        assert!(reuse_geometry(&mut m, &key(5)).is_some());
        // One larger than the budget is not kept, and leaves the others be.
        keep_geometry(&mut m, key(6), geo(4000), 9, 3 * one);
        assert!(reuse_geometry(&mut m, &key(6)).is_none());
        assert!(reuse_geometry(&mut m, &key(4)).is_some());
        // And at most `count` of them.
        m.clear();
        for k in 7..=9 {
            keep_geometry(&mut m, key(k), geo(10), 2, 3 * one);
        }
        assert!(reuse_geometry(&mut m, &key(7)).is_none());
        assert!(reuse_geometry(&mut m, &key(8)).is_some());
    }

    #[test]
    fn the_rotation_comes_from_the_receptor_angle_all_cutouts_share() {
        let paths = [
            PathBuf::from("a.beam00.fits"),
            PathBuf::from("b.beam01.fits"),
        ];
        let with = |a: Option<f64>, b: Option<f64>| {
            let (ca, wa) = cube(0.0, a);
            let (cb, wb) = cube(0.0, b);
            receptor_rotation(&paths, &[(Cutout::held(ca), wa), (Cutout::held(cb), wb)])
        };
        // Absent: fixms's common case P = −45°, no rotation.
        assert_eq!(with(None, None).ok(), Some(0.0));
        let a = with(Some(20.0), Some(20.0)).ok().unwrap();
        assert!((a - 65f64.to_radians()).abs() < 1e-12);
        assert!(with(Some(20.0), Some(-45.0)).is_err());
    }

    /// The mosaic and weight [`mix`] makes of `cubes`, as whole spectra (from the blocks'
    /// [`ChannelGroups`]).
    fn mixed(m: &Mix, cubes: &mut [(Cutout, Wcs)]) -> (Vec<f32>, Vec<f32>) {
        let npix = m.geo.nx * m.geo.ny;
        let (mut num, mut den) = (
            vec![f32::NAN; npix * m.nchan],
            vec![f32::NAN; npix * m.nchan],
        );
        let mut cutouts: Vec<Cutout> = cubes
            .iter_mut()
            .map(|(c, _)| Cutout {
                nx: c.nx,
                ny: c.ny,
                nchan: c.nchan,
                header: c.header.clone(),
                pixels: std::mem::replace(&mut c.pixels, CutoutPixels::Held(Vec::new())),
            })
            .collect();
        let mut c0 = 0;
        mix(m, &mut cutouts, |n, d, w| {
            let layout = ChannelGroups { npix, w };
            for p in 0..npix {
                for j in 0..w {
                    num[p * m.nchan + c0 + j] = n[layout.at(p, j)];
                    den[p * m.nchan + c0 + j] = d[layout.at(p, j)];
                }
            }
            c0 += w;
            Ok(())
        })
        .unwrap();
        assert_eq!(c0, m.nchan, "every channel once");
        (num, den)
    }

    #[test]
    fn a_mosaic_is_the_same_whatever_the_block_and_wherever_the_pixels_come_from() {
        for method in [Method::Linear, Method::Cubic, Method::Nearest] {
            same_whatever_the_block(method);
        }
    }

    fn same_whatever_the_block(method: Method) {
        // Two overlapping beams on shifted grids (taps by `method`), blanks; a whole group, a run
        // after it and three channels after that.
        let nchan = CHANNEL_GROUP + RUN + 3;
        let dir = tempfile::tempdir().unwrap();
        let n = 24;
        let mut cubes = Vec::new();
        let mut paths = Vec::new();
        for b in 0..2 {
            let wcs = Wcs {
                crval_ra: 189.87 + 0.05 * b as f64,
                crval_dec: -24.55,
                crpix_x: 12.3 - 3.7 * b as f64,
                crpix_y: 11.6,
                cdelt_x: -0.0135,
                cdelt_y: 0.0135,
                pc: IDENTITY,
                crval_freq: 745e6,
                crpix_freq: 1.0,
                cdelt_freq: 4e6,
            };
            let mut header = Header::default();
            wcs.to_header(&mut header);
            let mut data: Vec<f32> = (0..n * n * nchan)
                .map(|k| ((k * 37 + b) % 101) as f32 * 0.01 - 0.3)
                .collect();
            data[(7 * n + 9) * nchan + 4] = f32::NAN;
            data[(8 * n + 9) * nchan..(8 * n + 10) * nchan].fill(f32::NAN);
            let s = Spectra {
                nx: n,
                ny: n,
                nchan,
                data,
                header,
            };
            let p = dir.path().join(format!("c.beam{b:02}.fits"));
            s.write(&p).unwrap();
            paths.push(p);
            cubes.push((Cutout::held(s), wcs));
        }
        let geo = geometry(&cubes, 0, &[0, 1], None, 0.0, 0.01, method).unwrap();
        let ws = [
            vec![1.0; nchan],
            (0..nchan).map(|c| c as f32 * 0.5).collect(),
        ];
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let at = |block: usize, from_files: bool| {
            let m = Mix {
                geo: &geo,
                nxs: &[n, n],
                ws: &ws,
                nchan,
                block,
            };
            let mut cs: Vec<(Cutout, Wcs)> = if from_files {
                paths
                    .iter()
                    .zip(&cubes)
                    .map(|(p, (_, w))| (Cutout::open(p).unwrap(), w.clone()))
                    .collect()
            } else {
                cubes
                    .iter()
                    .map(|(c, w)| {
                        let CutoutPixels::Held(d) = &c.pixels else {
                            unreachable!()
                        };
                        let s = Spectra {
                            nx: n,
                            ny: n,
                            nchan,
                            data: d.clone(),
                            header: c.header.clone(),
                        };
                        (Cutout::held(s), w.clone())
                    })
                    .collect()
            };
            let (num, den) = mixed(&m, &mut cs);
            (bits(&num), bits(&den))
        };
        let whole = at(nchan, false);
        // Both beams reach some pixels, and a blank left some pixel's channel without a value.
        assert!(geo.starts.windows(2).any(|s| s[1] - s[0] == 2));
        assert!(whole.0.iter().any(|&b| f32::from_bits(b).is_nan()));
        for (block, from_files) in [
            (nchan, true),
            (RUN, false),
            (RUN, true),
            (1, true),
            (2 * RUN, true),
            (CHANNEL_GROUP, false),
        ] {
            assert!(
                at(block, from_files) == whole,
                "block {block}, from files {from_files}"
            );
        }
        // The widest instructions this CPU has and the plain loop (fused multiply-adds in
        // software where the CPU has none): the same bits.
        let m = Mix {
            geo: &geo,
            nxs: &[n, n],
            ws: &ws,
            nchan,
            block: nchan,
        };
        let mut tiles = vec![Vec::new(); 2];
        for ((c, _), t) in cubes.iter_mut().zip(&mut tiles) {
            c.groups_of(0..nchan, t).unwrap();
        }
        let b = Block {
            m: &m,
            tiles: &tiles,
            chans: 0..nchan,
        };
        let BeamValues::Gaussian { chirps, .. } = &geo.beam else {
            panic!("a Gaussian beam on evenly spaced channels has chirps")
        };
        let by = |plain: bool| {
            let (mut chirps, mut num, mut den) = (chirps.clone(), Vec::new(), Vec::new());
            if plain {
                mix_body::<RUN>(&b, &mut chirps, &mut num, &mut den);
            } else {
                mix_block(&b, &mut chirps, &mut num, &mut den);
            }
            // From the block's runs to whole spectra, as `whole` is.
            let layout = ChannelGroups {
                npix: n * n,
                w: nchan,
            };
            let spectra = |v: &[f32]| -> Vec<f32> {
                (0..n * n)
                    .flat_map(|p| (0..nchan).map(move |j| v[layout.at(p, j)]))
                    .collect()
            };
            (bits(&spectra(&num)), bits(&spectra(&den)))
        };
        assert!(by(false) == whole, "{method:?}");
        assert!(
            by(true) == whole,
            "{method:?}: the plain loop's bits differ"
        );
    }
}
