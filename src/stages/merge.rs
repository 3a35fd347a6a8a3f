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
use crate::science::regrid::{sample, stencil, Method, Stencil};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "merge",
    version: 3,
    params: &[&super::params::LINMOS_REGRID],
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
        let method = Method::from_name(ctx.str(&super::params::LINMOS_REGRID)?)
            .map_err(|e| StageError::data(format!("{}: {e}", ctx.target)))?;
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
                let (ra, dec) = out_wcs.pix_to_world(x as f64, y as f64);
                places.extend(members.iter().enumerate().map(|(k, m)| {
                    // The grid's own mosaic at its own pixel (a round trip through the sky
                    // can land a hair outside the last column).
                    if k == ref_i {
                        return stencil(nx, ny, x as f64, y as f64, method);
                    }
                    // A position a hair from a pixel's centre is on that pixel (`stencil`).
                    let (px, py) = m.wcs.world_to_pix(ra, dec)?;
                    stencil(m.cube.nx, m.cube.ny, px, py, method)
                }));
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
        let weight_unit = "sum of the fields' weights";
        let mut pair = super::io::MosaicPair::start(ctx, (nx, ny, nchan), &header, weight_unit)?;
        pair.put_planes(&out, &wout)?;
        pair.write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::Header;
    use crate::wcs::IDENTITY;

    /// A 6×6×2 cube of `value` whose reference pixel is `crpix` (so grids can be offset).
    fn cube(value: f32, crpix: f64, freq0: f64) -> Cube {
        let wcs = Wcs {
            crval_ra: 30.0,
            crval_dec: -20.0,
            crpix_x: crpix,
            crpix_y: 3.0,
            cdelt_x: -0.01,
            cdelt_y: 0.01,
            pc: IDENTITY,
            crval_freq: freq0,
            crpix_freq: 1.0,
            cdelt_freq: 10e6,
        };
        let mut header = Header::default();
        wcs.to_header(&mut header);
        Cube {
            nx: 6,
            ny: 6,
            nchan: 2,
            data: vec![value; 72],
            header,
        }
    }

    /// One member: field, island, value, weight, CRPIX1, theta.
    type M<'a> = (&'a str, &'a str, f32, f32, f64, Option<f64>);

    /// Run merge for Stokes `stokes` on `members`; the merged (mosaic, weight) cubes.
    fn run(stokes: &str, members: &[M], freq0_b: f64) -> Result<(Cube, Cube), StageError> {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (mut ms, mut ws, mut ions) = (vec![], vec![], vec![]);
        for (f, isl, v, w, crpix, theta) in members {
            let dir = d.join("members/X").join(f);
            std::fs::create_dir_all(&dir).unwrap();
            let f0 = if *f == "B" { freq0_b } else { 850e6 };
            let m = dir.join(format!("{isl}.{stokes}.mosaic.fits"));
            cube(*v, *crpix, f0).write(&m).unwrap();
            let wp = dir.join(format!("{isl}.{stokes}.weight.fits"));
            cube(*w, *crpix, f0).write(&wp).unwrap();
            ms.push(m);
            ws.push(wp);
            if let Some(t) = theta {
                let p = dir.join(format!("{isl}.ion.txt"));
                std::fs::write(&p, format!("{f0} {t} 0\n{} {t} 0\n", f0 + 10e6)).unwrap();
                ions.push(p);
            }
        }
        let vars = vec![("stokes".to_string(), stokes.to_string())];
        let (mo, wo) = (d.join("out.fits"), d.join("outw.fits"));
        let params = [(
            "linmos_regrid".to_string(),
            crate::config::params::ParamValue::Str("cubic".into()),
        )];
        let ctx = ActionCtx {
            field_dir: d,
            target: "merge/X.q",
            vars: &vars,
            params: &params,
            inputs: vec![("mosaics", ms), ("weights", ws), ("ion", ions)],
            outputs: vec![("mosaic", mo.clone(), None), ("weight", wo.clone(), None)],
        };
        Merge.run(&ctx)?;
        Ok((Cube::read(&mo).unwrap(), Cube::read(&wo).unwrap()))
    }

    #[test]
    fn fields_combine_as_their_weighted_mean_on_one_grid() {
        // B's grid is one pixel off A's (A's x is B's x − 1): where both cover, (1·1 + 3·3) / 4;
        // A's last column, which B does not reach, is A's.
        let (m, w) = run(
            "i",
            &[
                ("A", "a", 1.0, 1.0, 3.0, None),
                ("B", "b", 3.0, 3.0, 4.0, None),
            ],
            850e6,
        )
        .unwrap();
        let at = |c: &Cube, x: usize| c.data[2 * 6 + x];
        assert!((at(&m, 3) - 2.5).abs() < 1e-5, "{}", at(&m, 3));
        assert!((at(&w, 3) - 4.0).abs() < 1e-5);
        assert!((at(&m, 5) - 1.0).abs() < 1e-6 && (at(&w, 5) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn corrected_q_weighs_by_theta_squared_and_one_field_counts_once() {
        // |theta_A|² = 0.25: A's weight 1 becomes 0.25.
        let (m, _) = run(
            "q",
            &[
                ("A", "a", 1.0, 1.0, 3.0, Some(0.5)),
                ("B", "b", 3.0, 3.0, 3.0, Some(1.0)),
            ],
            850e6,
        )
        .unwrap();
        let want = (0.25 * 1.0 + 3.0 * 3.0) / 3.25;
        assert!((m.data[14] as f64 - want).abs() < 1e-5, "{}", m.data[14]);
        // Two islands of field A over the same pixels: A once, not twice.
        let (m, w) = run(
            "i",
            &[
                ("A", "a1", 1.0, 1.0, 3.0, None),
                ("A", "a2", 1.0, 1.0, 3.0, None),
                ("B", "b", 4.0, 1.0, 3.0, None),
            ],
            850e6,
        )
        .unwrap();
        assert!((m.data[14] - 2.5).abs() < 1e-5 && (w.data[14] - 2.0).abs() < 1e-5);
    }

    #[test]
    fn fields_with_other_channels_are_refused_naming_the_file() {
        let e = run(
            "i",
            &[
                ("A", "a", 1.0, 1.0, 3.0, None),
                ("B", "b", 3.0, 3.0, 3.0, None),
            ],
            900e6,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("b.i.mosaic.fits") && e.contains("share their frequency axis"),
            "{e}"
        );
    }
}
