//! `cutout` (per beam and Stokes): one pass over the beam cube, one box per island in the beam,
//! padded by the largest component major axis plus `pad` beam widths, clipped to the image, WCS
//! shifted, header kept.
//!
//! Must never: read a beam cube more than once, or write anywhere but its temporary outputs.

use std::path::Path;

use super::io::{components, parse_weights, single};
use super::params::PAD;
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Header, ImageBytes, PlaneReader};
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
        // Each cutout is the cube's own bytes (big-endian float32, as FITS stores them)
        // copied straight from the mapped cube into the output file's bytes after its header:
        // no conversion either way, and the file is hashed as it is written.
        let mut any_data = false;
        let mut scratch: Vec<u8> = Vec::new();
        let finite =
            |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 != 0x7f80_0000;
        for chunk in &chunks {
            let mut files: Vec<(&Path, Option<&Job>, ImageBytes)> = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let (k, job) = &jobs[i];
                let (_, path, each) = &ctx.outputs[*k];
                let mut header: Header = reader.header.clone();
                let shape = match job {
                    Some(j) => {
                        header.set_f64("CRPIX1", wcs.crpix_x - j.x0 as f64, "");
                        header.set_f64("CRPIX2", wcs.crpix_y - j.y0 as f64, "");
                        [j.w, j.h, nchan]
                    }
                    // The island's box misses this image entirely: an all-blank 1×1 cube,
                    // which the mosaic ignores.
                    None => [1, 1, nchan],
                };
                header.set_str("OBJECT", each.unwrap_or(""), "island");
                let mut img = ImageBytes::new(path, &shape, &header)?;
                if job.is_none() {
                    img.put_f32(&vec![f32::NAN; nchan]);
                }
                files.push((path.as_path(), job.as_ref(), img));
            }
            let ylo = files
                .iter()
                .filter_map(|f| f.1)
                .map(|j| j.y0)
                .min()
                .unwrap_or(0);
            let yhi = files
                .iter()
                .filter_map(|f| f.1)
                .map(|j| j.y0 + j.h)
                .max()
                .unwrap_or(0);
            if yhi > ylo {
                // Channel by channel: each box's pixels are appended in file order.
                for c in 0..nchan {
                    let rows = reader.rows_be(c, ylo..yhi, &mut scratch)?;
                    for (_, job, img) in files.iter_mut() {
                        let Some(j) = job else { continue };
                        for y in 0..j.h {
                            let src = ((j.y0 - ylo + y) * nx as usize + j.x0) * 4;
                            img.extend_be(&rows[src..src + j.w * 4]);
                        }
                    }
                }
            }
            // Flagged channels are blank planes; boxes with no data at all mean a bad image.
            any_data = any_data
                || files
                    .iter()
                    .filter(|f| f.1.is_some())
                    .any(|f| f.2.pixels_be().chunks_exact(4).any(finite));
            for (path, _, img) in files {
                img.write(path)?;
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
