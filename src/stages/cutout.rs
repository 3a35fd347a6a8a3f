//! `cutout` (per beam and Stokes): one pass over the beam cube, one box per island in the beam,
//! padded by the largest component major axis plus `pad` beam widths, clipped to the image, WCS
//! shifted, header kept.
//!
//! Must never: read a beam cube more than once, or write anywhere but its temporary outputs.

use super::io::{components, parse_weights, single};
use super::params::PAD;
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Cube, Header, PlaneReader};
use crate::rules::{Contract, SlotSpec};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "cutout",
    version: 1,
    params: &[&PAD],
    inputs: &[
        SlotSpec::optional(
            "cube",
            "the beam cube given with the field (without imaging)",
        ),
        SlotSpec::optional("weights", "its channel weights (without imaging)"),
        SlotSpec::optional(
            "imaged_cube",
            "the beam cube the imager made (with imaging)",
        ),
        SlotSpec::optional("imaged_weights", "its channel weights (with imaging)"),
        SlotSpec::required(
            "components",
            "the component catalogue (positions, major axes)",
        ),
        SlotSpec::required(
            "assignment",
            "which beams hold each island (the beams rule)",
        ),
    ],
    outputs: &["cutout", "weights"],
    open: false,
};

/// Most bytes of cutout pixels held at once by one cutout target.
const CHUNK_BYTES: usize = 64 << 20;

/// `cutout`: boxes around each island's components, padded by the largest component major axis
/// plus `pad` beam widths (BMAJ), clipped to the image; WCS shifted; header kept.
pub struct Cutout;

impl Builtin for Cutout {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
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
        let pad = ctx.f64(&PAD)?;
        let mut reader = PlaneReader::open(cube_path)?;
        let wcs = Wcs::from_header(&reader.header, cube_path)?;
        let bmaj = reader.header.get_f64("BMAJ").ok_or_else(|| {
            StageError::file(
                cube_path,
                None,
                "no BMAJ in the header; the beam cube needs its restoring beam (BMAJ, BMIN, BPA in degrees)",
            )
        })?;
        let (nx, ny, nchan) = (reader.nx as i64, reader.ny as i64, reader.nchan);
        let weights =
            crate::hash::read_regular(weights_path).map_err(|e| StageError::io(weights_path, e))?;
        // The weights travel with every cutout: check now that they fit this cube. A `nan`
        // weight is Arrakis's for a channel with no data: that channel must be blank here.
        let text = std::str::from_utf8(&weights).map_err(|_| {
            StageError::file(
                weights_path,
                None,
                "is not UTF-8 text; a weights file holds 'channel weight' rows",
            )
        })?;
        let checked = parse_weights(weights_path, text, nchan)?;
        if !checked.nan.is_empty() {
            let mut plane = vec![0f32; reader.nx * reader.ny];
            for &(c, line) in &checked.nan {
                reader.read_plane(c, &mut plane)?;
                if plane.iter().any(|v| v.is_finite()) {
                    return Err(StageError::file(
                        weights_path,
                        Some(line),
                        format!(
                            "weight nan for channel {c}, but that channel of {} holds data: give its weight (1/rms^2), or 0 to leave the channel out",
                            cube_path.display()
                        ),
                    ));
                }
            }
        }
        // Boxes per island (by output label); pixels are gathered chunk by chunk.
        struct Job {
            x0: usize,
            y0: usize,
            w: usize,
            h: usize,
        }
        let mut jobs: Vec<(usize, Option<Job>)> = Vec::new();
        for (k, (name, _, each)) in ctx.outputs.iter().enumerate() {
            if *name != "cutout" {
                continue;
            }
            let island = each.ok_or_else(|| StageError::Contract {
                target: ctx.target.to_string(),
                what: "a cutout output without its island (the rule needs `each: source`)".into(),
            })?;
            let mine = comps.of_island(island);
            if mine.is_empty() {
                return Err(StageError::data(format!(
                    "island {island} has no components in catalogue/components.csv; give it at least one Gaussian_ID row"
                )));
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
            let job = (x1 > x0 && y1 > y0 && xmin.is_finite()).then(|| Job {
                x0: x0 as usize,
                y0: y0 as usize,
                w: (x1 - x0) as usize,
                h: (y1 - y0) as usize,
            });
            jobs.push((k, job));
        }
        // Chunks of boxes (in order of their first row, so a chunk spans few rows) whose pixels
        // fit in CHUNK_BYTES: memory stays bounded however many islands a beam holds, and each
        // chunk reads only the rows its boxes cover, once per channel.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| jobs[i].1.as_ref().map_or(0, |j| j.y0));
        let mut chunks: Vec<Vec<usize>> = vec![Vec::new()];
        let mut bytes = 0usize;
        for i in order {
            let b = jobs[i].1.as_ref().map_or(0, |j| j.w * j.h * nchan * 4);
            if bytes + b > CHUNK_BYTES && !chunks[chunks.len() - 1].is_empty() {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += b;
            let last = chunks.len() - 1;
            chunks[last].push(i);
        }
        let mut any_data = false;
        let mut rows_buf: Vec<f32> = Vec::new();
        for chunk in &chunks {
            let boxes: Vec<&Job> = chunk.iter().filter_map(|&i| jobs[i].1.as_ref()).collect();
            let ylo = boxes.iter().map(|j| j.y0).min().unwrap_or(0);
            let yhi = boxes.iter().map(|j| j.y0 + j.h).max().unwrap_or(0);
            let mut data: Vec<Vec<f32>> = boxes
                .iter()
                .map(|j| vec![0f32; j.w * j.h * nchan])
                .collect();
            rows_buf.resize((yhi - ylo) * nx as usize, 0.0);
            if yhi > ylo {
                for c in 0..nchan {
                    reader.read_rows(c, ylo..yhi, &mut rows_buf)?;
                    for (j, d) in boxes.iter().zip(data.iter_mut()) {
                        for y in 0..j.h {
                            let src = (j.y0 - ylo + y) * nx as usize + j.x0;
                            let dst = (c * j.h + y) * j.w;
                            d[dst..dst + j.w].copy_from_slice(&rows_buf[src..src + j.w]);
                        }
                    }
                }
            }
            // Flagged channels are blank planes; boxes with no data at all mean a bad image.
            any_data = any_data || data.iter().flatten().any(|v| v.is_finite());
            let mut data = data.into_iter();
            for &i in chunk {
                let (k, job) = &jobs[i];
                let (_, path, each) = &ctx.outputs[*k];
                let mut header: Header = reader.header.clone();
                let cube = match job {
                    Some(j) => {
                        header.set_f64("CRPIX1", wcs.crpix_x - j.x0 as f64, "");
                        header.set_f64("CRPIX2", wcs.crpix_y - j.y0 as f64, "");
                        Cube {
                            nx: j.w,
                            ny: j.h,
                            nchan,
                            data: data.next().unwrap_or_default(),
                            header,
                        }
                    }
                    // The island's box misses this image entirely: an all-blank 1×1 cube,
                    // which the mosaic ignores.
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
                cube.write(path)?;
            }
        }
        if !any_data && jobs.iter().any(|(_, j)| j.is_some()) {
            return Err(StageError::file(
                cube_path,
                None,
                format!("every pixel of all {nchan} channels in the boxes of its islands is blank (NaN): the beam cube holds no data; image the beam again, or remove its cubes from the field"),
            ));
        }
        for (name, path, _) in &ctx.outputs {
            if *name == "weights" {
                std::fs::write(path, &weights).map_err(|e| StageError::io(path, e))?;
            }
        }
        Ok(())
    }
}
