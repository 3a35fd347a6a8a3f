//! `cutout` (per beam and Stokes): one pass over the beam cube, one box per island in the beam,
//! padded by the largest component major axis plus `pad` beam widths, clipped to the image, WCS
//! shifted, header kept.
//!
//! Must never: read a beam cube more than once, or write anywhere but its temporary outputs.

use super::io::{components, read_weights, single};
use super::{ActionCtx, Builtin};
use crate::fits::{Cube, Header, PlaneReader};
use crate::wcs::Wcs;

/// `cutout`: boxes around each island's components, padded by the largest component major axis
/// plus `pad` beam widths (BMAJ), clipped to the image; WCS shifted; header kept.
pub struct Cutout;

impl Builtin for Cutout {
    fn name(&self) -> &'static str {
        "cutout"
    }
    fn version(&self) -> u32 {
        1
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        // The beam cube given with the field, or the one the imager made (`imaging: true`).
        let from_imager = !ctx.input("imaged_cube").is_empty();
        let (cube_slot, weights_slot) = if from_imager {
            ("imaged_cube", "imaged_weights")
        } else {
            ("cube", "weights")
        };
        let cube_path = single(ctx, cube_slot)?;
        let weights_path = single(ctx, weights_slot)?;
        let comps = components(single(ctx, "components")?)?;
        let pad = ctx.param("pad").and_then(|v| v.as_f64()).unwrap_or(3.0);
        let mut reader = PlaneReader::open(cube_path).map_err(|e| e.to_string())?;
        let wcs = Wcs::from_header(&reader.header, cube_path).map_err(|e| e.to_string())?;
        let bmaj = reader
            .header
            .get_f64("BMAJ")
            .ok_or_else(|| {
                format!(
                    "{}: no BMAJ in the header; the beam cube needs its restoring beam (BMAJ, BMIN, BPA in degrees)",
                    cube_path.display()
                )
            })?;
        let (nx, ny, nchan) = (reader.nx as i64, reader.ny as i64, reader.nchan);
        let weights =
            std::fs::read(weights_path).map_err(|e| format!("{}: {e}", weights_path.display()))?;
        // The weights travel with every cutout: check now that they fit this cube.
        read_weights(weights_path, nchan)?;
        // Boxes per island (by output label).
        struct Job {
            x0: usize,
            y0: usize,
            w: usize,
            h: usize,
            data: Vec<f32>,
        }
        let mut jobs: Vec<(usize, Option<Job>)> = Vec::new();
        for (k, (name, _, each)) in ctx.outputs.iter().enumerate() {
            if *name != "cutout" {
                continue;
            }
            let island = each.ok_or("cutout output without an island")?;
            let mine = comps.of_island(island);
            if mine.is_empty() {
                return Err(format!(
                    "island {island} has no components in catalogue/components.csv; give it at least one Gaussian_ID row"
                ));
            }
            let pad_deg =
                mine.iter().map(|c| c.maj_arcsec).fold(0.0, f64::max) / 3600.0 + pad * bmaj;
            let pad_pix = pad_deg / wcs.cdelt_y.abs();
            let (mut xmin, mut xmax, mut ymin, mut ymax) = (
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
            );
            for c in &mine {
                if let Some((x, y)) = wcs.world_to_pix(c.ra, c.dec) {
                    xmin = xmin.min(x);
                    xmax = xmax.max(x);
                    ymin = ymin.min(y);
                    ymax = ymax.max(y);
                }
            }
            let x0 = ((xmin - pad_pix).floor() as i64).clamp(0, nx);
            let x1 = ((xmax + pad_pix).ceil() as i64 + 1).clamp(0, nx);
            let y0 = ((ymin - pad_pix).floor() as i64).clamp(0, ny);
            let y1 = ((ymax + pad_pix).ceil() as i64 + 1).clamp(0, ny);
            let job = (x1 > x0 && y1 > y0 && xmin.is_finite()).then(|| {
                let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
                Job {
                    x0: x0 as usize,
                    y0: y0 as usize,
                    w,
                    h,
                    data: vec![0f32; w * h * nchan],
                }
            });
            jobs.push((k, job));
        }
        // One pass over the cube, plane by plane.
        let mut plane = vec![0f32; (nx * ny) as usize];
        let mut any_data = false;
        for c in 0..nchan {
            reader
                .read_plane(c, &mut plane)
                .map_err(|e| e.to_string())?;
            // Flagged channels are blank planes; a cube with no data at all is a bad image.
            any_data = any_data || plane.iter().any(|v| v.is_finite());
            for (_, job) in jobs.iter_mut() {
                let Some(j) = job else { continue };
                for y in 0..j.h {
                    let src = (j.y0 + y) * nx as usize + j.x0;
                    let dst = (c * j.h + y) * j.w;
                    j.data[dst..dst + j.w].copy_from_slice(&plane[src..src + j.w]);
                }
            }
        }
        if !any_data {
            return Err(format!(
                "{}: every pixel of all {nchan} channels is blank (NaN): the beam cube holds no data; image the beam again, or remove its cubes from the field",
                cube_path.display()
            ));
        }
        for (k, job) in jobs {
            let (_, path, each) = &ctx.outputs[k];
            let mut header: Header = reader.header.clone();
            let cube = match job {
                Some(j) => {
                    header.set_f64("CRPIX1", wcs.crpix_x - j.x0 as f64, "");
                    header.set_f64("CRPIX2", wcs.crpix_y - j.y0 as f64, "");
                    Cube {
                        nx: j.w,
                        ny: j.h,
                        nchan,
                        data: j.data,
                        header,
                    }
                }
                // The island's box misses this image entirely: an all-blank 1×1 cube, which the
                // mosaic ignores.
                None => Cube {
                    nx: 1,
                    ny: 1,
                    nchan,
                    data: vec![f32::NAN; nchan],
                    header,
                },
            };
            let mut cube = cube;
            cube.header.set_str("OBJECT", each.unwrap_or(""), "island");
            cube.write(path).map_err(|e| e.to_string())?;
        }
        for (name, path, _) in &ctx.outputs {
            if *name == "weights" {
                std::fs::write(path, &weights).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}
