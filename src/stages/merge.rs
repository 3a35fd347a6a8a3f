//! `merge` (per region island and Stokes; regions only): the joint mosaic of an island over every
//! field that imaged it, as Arrakis's `merge_fields` does with yandasoft linmos (weighttype
//! FromWeightImages, weightstate Corrected): each field's linmos mosaic C_f with its weight cube
//! W_f = Σ_b w_b B_b² is regridded onto one grid and combined as
//! C = Σ_f W_f C_f / Σ_f W_f, W = Σ_f W_f — one inverse-variance mosaic of every beam of every
//! field. Q and U FRion-corrected per field (C_f = (Q + iU)_f / Θ_f) weigh W_f |Θ_f|², their
//! inverse variance (Arrakis weighs W_f alone, over-weighting the field the ionosphere
//! depolarised more). An island one field imaged is that field's mosaic as it is.
//!
//! Inputs come from the region's `members/{island}/{FIELD}/` (links `arrakis region` makes to
//! each field's products): `{ISLAND}.{stokes}.mosaic.fits`, `.weight.fits`, `{ISLAND}.ion.txt`.
//! Two islands of one field in one region island (a field that split what another found as one)
//! cover the same data: at each pixel the first that holds it serves, never both.
//!
//! Must never: write anywhere but its temporary outputs.

use std::path::{Path, PathBuf};

use super::{ActionCtx, Builtin, StageError};
use crate::fits::Cube;
use crate::rules::{Contract, SlotSpec};
use crate::science::regrid::{sample, stencil, Stencil};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "merge",
    version: 1,
    params: &[],
    inputs: &[
        SlotSpec::required(
            "mosaics",
            "each contributing field's mosaic of the island (members/ISLAND/FIELD/*.S.mosaic.fits)",
        ),
        SlotSpec::required("weights", "each mosaic's weight cube, in the same order"),
        SlotSpec::optional(
            "ion",
            "each field's FRion prediction for the island (frequency, Re, Im of theta)",
        ),
    ],
    outputs: &["mosaic", "weight"],
    open: false,
};

/// `merge`: the joint mosaic.
pub struct Merge;

/// The field (parent directory) and island (the name before `.S.KIND.fits`) of a member file.
fn member_of(path: &Path, suffix: &str) -> Option<(String, String)> {
    let field = path.parent()?.file_name()?.to_str()?.to_string();
    let name = path.file_name()?.to_str()?;
    Some((field, name.strip_suffix(suffix)?.to_string()))
}

/// One field's mosaic of the island.
struct Member {
    field: String,
    cube: Cube,
    wcs: Wcs,
    weight: Cube,
    /// |Θ(ν)|² per channel (1 without a correction).
    theta2: Vec<f64>,
}

/// |Θ|² per channel of a FRion prediction file, matched to the cube's channel frequencies.
fn read_theta2(path: &Path, freqs: &[f64]) -> Result<Vec<f64>, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    let mut rows: Vec<(f64, f64)> = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let v: Vec<f64> = t
            .split_whitespace()
            .map(|x| x.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                StageError::file(
                    path,
                    Some(k + 1),
                    "expected three numbers: frequency [Hz], Re theta, Im theta",
                )
            })?;
        if v.len() != 3 {
            return Err(StageError::file(
                path,
                Some(k + 1),
                "expected three numbers: frequency [Hz], Re theta, Im theta",
            ));
        }
        rows.push((v[0], v[1] * v[1] + v[2] * v[2]));
    }
    freqs
        .iter()
        .map(|&f| {
            rows.iter()
                .find(|(rf, _)| ((rf - f) / f).abs() < 1e-6)
                .map(|r| r.1)
                .ok_or_else(|| {
                    StageError::file(
                        path,
                        None,
                        format!("no theta for the mosaic's channel at {f} Hz: the prediction is not this mosaic's"),
                    )
                })
        })
        .collect()
}

impl Builtin for Merge {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let stokes = ctx.unit_var("stokes").unwrap_or("i");
        let mosaics = ctx.input("mosaics");
        let weights = ctx.input("weights");
        let ions = ctx.input("ion");
        let msuffix = format!(".{stokes}.mosaic.fits");
        let wsuffix = format!(".{stokes}.weight.fits");
        if mosaics.is_empty() || mosaics.len() != weights.len() {
            return Err(StageError::data(format!(
                "{}: {} mosaics but {} weight cubes in members/ (run `arrakis region` again to link them)",
                ctx.target,
                mosaics.len(),
                weights.len()
            )));
        }
        let mut members: Vec<Member> = Vec::with_capacity(mosaics.len());
        for (m, w) in mosaics.iter().zip(weights) {
            let (field, island) = member_of(m, &msuffix).ok_or_else(|| {
                StageError::file(
                    m,
                    None,
                    format!("not a member mosaic (expected FIELD/ISLAND{msuffix})"),
                )
            })?;
            if member_of(w, &wsuffix) != Some((field.clone(), island.clone())) {
                return Err(StageError::file(
                    w,
                    None,
                    format!("expected the weight cube of {}", m.display()),
                ));
            }
            let cube = Cube::read(m)?;
            let weight = Cube::read(w)?;
            if (weight.nx, weight.ny, weight.nchan) != (cube.nx, cube.ny, cube.nchan) {
                return Err(StageError::file(
                    w,
                    None,
                    format!(
                        "{}×{}×{} pixels, but its mosaic {} has {}×{}×{}",
                        weight.nx,
                        weight.ny,
                        weight.nchan,
                        m.display(),
                        cube.nx,
                        cube.ny,
                        cube.nchan
                    ),
                ));
            }
            let wcs = Wcs::from_header(&cube.header, m)?;
            let freqs: Vec<f64> = (0..cube.nchan).map(|c| wcs.freq(c)).collect();
            let ion: Option<&PathBuf> = ions
                .iter()
                .find(|p| member_of(p, ".ion.txt") == Some((field.clone(), island.clone())));
            let theta2 = match (stokes, ion) {
                ("q" | "u", Some(p)) => read_theta2(p, &freqs)?,
                _ => vec![1.0; cube.nchan],
            };
            members.push(Member {
                field,
                cube,
                wcs,
                weight,
                theta2,
            });
        }
        // Every field must have the same channels.
        let first = &members[0];
        let nchan = first.cube.nchan;
        for (k, m) in members.iter().enumerate().skip(1) {
            let same = m.cube.nchan == nchan
                && (0..nchan).all(|c| {
                    let (a, b) = (first.wcs.freq(c), m.wcs.freq(c));
                    ((a - b) / a).abs() < 1e-6
                });
            if !same {
                return Err(StageError::file(
                    &mosaics[k],
                    None,
                    format!(
                        "its channels ({} from {:.0} Hz) differ from those of {} ({nchan} from {:.0} Hz): fields merged into a region must share their frequency axis",
                        m.cube.nchan,
                        m.wcs.freq(0),
                        mosaics[0].display(),
                        first.wcs.freq(0)
                    ),
                ));
            }
        }
        // The grid: the largest mosaic's (as linmos takes the largest cutout's).
        let ref_i = (0..members.len())
            .max_by_key(|&k| (members[k].cube.nx * members[k].cube.ny, usize::MAX - k))
            .unwrap_or(0);
        let (nx, ny) = (members[ref_i].cube.nx, members[ref_i].cube.ny);
        let out_wcs = members[ref_i].wcs.clone();
        let mut out = vec![f32::NAN; nx * ny * nchan];
        let mut wout = vec![0f32; nx * ny * nchan];
        let single = members.len() == 1;
        // Members grouped by field, in input order (sorted by field, then island).
        let mut fields: Vec<(String, Vec<usize>)> = Vec::new();
        for (k, m) in members.iter().enumerate() {
            match fields.last_mut() {
                Some((f, ks)) if *f == m.field => ks.push(k),
                _ => fields.push((m.field.clone(), vec![k])),
            }
        }
        let mut places: Vec<Option<Stencil>> = Vec::with_capacity(members.len());
        for y in 0..ny {
            for x in 0..nx {
                places.clear();
                if single {
                    places.push(stencil(nx, ny, x as f64, y as f64));
                } else {
                    let (ra, dec) = out_wcs.pix_to_world(x as f64, y as f64);
                    places.extend(members.iter().map(|m| {
                        let (px, py) = m.wcs.world_to_pix(ra, dec)?;
                        stencil(m.cube.nx, m.cube.ny, px, py)
                    }));
                }
                for ch in 0..nchan {
                    let (mut num, mut den) = (0.0, 0.0);
                    for (_, ks) in &fields {
                        // The first of the field's mosaics that holds this pixel.
                        for &k in ks {
                            let Some(st) = &places[k] else { continue };
                            let m = &members[k];
                            let w = sample(m.weight.view(), ch, &st.bilinear()) * m.theta2[ch];
                            let v = sample(m.cube.view(), ch, st);
                            if w.is_nan() || w <= 0.0 || !v.is_finite() {
                                continue;
                            }
                            num += w * v;
                            den += w;
                            break;
                        }
                    }
                    let k = (ch * ny + y) * nx + x;
                    if den > 0.0 {
                        out[k] = (num / den) as f32;
                        wout[k] = den as f32;
                    }
                }
            }
        }
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        let mut header = members[ref_i].cube.header.clone();
        header.history(&format!(
            "arrakis merge: sum W_f C_f / sum W_f over fields {}",
            names.join(", ")
        ));
        for (name, path, _) in &ctx.outputs {
            let mut h = header.clone();
            let data = if *name == "mosaic" {
                out.clone()
            } else {
                h.set_str("BUNIT", "", "sum of the fields' weights");
                wout.clone()
            };
            Cube {
                nx,
                ny,
                nchan,
                data,
                header: h,
            }
            .write(path)?;
        }
        Ok(())
    }
}
