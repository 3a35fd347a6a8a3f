//! Background, noise and bad channels of a source's spectrum, measured around it in the image:
//! the annulus statistics of the 1D and 3D RM synthesis stages and Arrakis's channel rejection.
//!
//! Must never: open a file. Cubes come as [`CubeView`]s, or an annulus's values through a
//! closure the stage gives.

use super::layout::CubeView;
use super::stats::{clipped_mean_std, mad_sigma, nanmedian};

/// The pixels [`annulus_stats_with`] measures in an `nx × ny` plane, as offsets `y·nx + x`, row by
/// row.
pub fn annulus_pixels(
    nx: usize,
    ny: usize,
    x0: f64,
    y0: f64,
    pix_per_beam: f64,
    source_pix: f64,
    others: &[(f64, f64)],
) -> Vec<usize> {
    let r_in = 1.5 * pix_per_beam.max(source_pix);
    let r_out = r_in + 3.5 * pix_per_beam;
    let mut at = Vec::new();
    for y in 0..ny {
        for x in 0..nx {
            let r = ((x as f64 - x0).powi(2) + (y as f64 - y0).powi(2)).sqrt();
            let near_other = others
                .iter()
                .any(|&(ox, oy)| ((x as f64 - ox).powi(2) + (y as f64 - oy).powi(2)).sqrt() < r_in);
            if r > r_in && r < r_out && !near_other {
                at.push(y * nx + x);
            }
        }
    }
    at
}

/// Offsets as runs of consecutive ones (`[3, 4, 5, 9, 10]` → `[3..6, 9..11]`), in their order.
pub fn runs(at: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for &k in at {
        match out.last_mut() {
            Some(r) if r.end == k => r.end += 1,
            _ => out.push(k..k + 1),
        }
    }
    out
}

/// Background (mean) and noise (population σ) per channel in an annulus around pixel (x0, y0)
/// ([`annulus_pixels`]): from `r_in` = 1.5 source sizes (the larger of the beam and the component's major axis, so an
/// extended source's wings stay out) to `r_in` + 3.5 beams, after iterative 3σ clipping; pixels
/// within `r_in` of the island's other components (`others`, pixel positions) are left out.
/// Channels with fewer than 3 finite pixels get the median noise and a NaN background.
///
/// Each channel's annulus values come from `values(channel, v)`, which appends them to `v`
/// (finite ones only, in [`annulus_pixels`]'s order): the caller reads them where the cube is
/// (rmsynth: out of a mapped file, only those pixels decoded).
pub fn annulus_stats_with<E>(
    nchan: usize,
    mut values: impl FnMut(usize, &mut Vec<f64>) -> Result<(), E>,
) -> Result<(Vec<f64>, Vec<f64>), E> {
    let mut bkg = vec![f64::NAN; nchan];
    let mut rms = vec![f64::NAN; nchan];
    let mut v = Vec::new();
    for ch in 0..nchan {
        v.clear();
        values(ch, &mut v)?;
        if v.len() < 3 {
            continue;
        }
        if let Some((mean, std)) = clipped_mean_std(&v, 3.0, 3) {
            bkg[ch] = mean;
            rms[ch] = std;
        }
    }
    let med = nanmedian(&rms);
    rms.iter_mut().filter(|r| r.is_nan()).for_each(|r| *r = med);
    Ok((bkg, rms))
}

/// Channels whose noise is an outlier, as Arrakis rejects them: more than 5σ from the median
/// (σ from the MAD), iterated up to 5 rounds; non-finite noise is bad from the start.
pub fn rms_outliers(rms: &[f64]) -> Vec<bool> {
    let mut bad: Vec<bool> = rms.iter().map(|r| !r.is_finite()).collect();
    for _ in 0..5 {
        let kept: Vec<f64> = rms
            .iter()
            .zip(&bad)
            .filter(|(_, b)| !**b)
            .map(|(r, _)| *r)
            .collect();
        let (med, sig) = (nanmedian(&kept), mad_sigma(&kept));
        let mut changed = false;
        for (i, r) in rms.iter().enumerate() {
            if !bad[i] && sig > 0.0 && (r - med).abs() > 5.0 * sig {
                bad[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    bad
}

/// Per-channel noise of a cube in the annulus 1.5 to 5 beams (`pix_per_beam`) from the centre
/// pixel, as Arrakis's `cubelet_bane`: zeros count as blank, iterative 3σ clipping with mean and
/// population σ. Channels with no pixel left are NaN.
pub fn centre_annulus_rms(c: CubeView, pix_per_beam: f64) -> Vec<f64> {
    let (cy, cx) = ((c.ny / 2) as f64, (c.nx / 2) as f64);
    let mut idx = Vec::new();
    for y in 0..c.ny {
        for x in 0..c.nx {
            let r = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
            if r > 1.5 * pix_per_beam && r < 5.0 * pix_per_beam {
                idx.push((y, x));
            }
        }
    }
    let mut v = Vec::with_capacity(idx.len());
    (0..c.nchan)
        .map(|ch| {
            v.clear();
            v.extend(
                idx.iter()
                    .map(|&(y, x)| c.at(ch, y, x) as f64)
                    .filter(|v| v.is_finite() && *v != 0.0),
            );
            clipped_mean_std(&v, 3.0, 1).map_or(f64::NAN, |(_, std)| std)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_runs_in_their_order() {
        assert_eq!(runs(&[3, 4, 5, 9, 10, 2, 7]), [3..6, 9..11, 2..3, 7..8]);
        assert!(runs(&[]).is_empty());
    }

    /// A deterministic pseudo-noise in [-0.5, 0.5).
    fn noise(i: usize) -> f32 {
        let x = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// The annulus statistics of a cube in memory.
    fn annulus_stats(
        c: CubeView,
        x0: f64,
        y0: f64,
        pix_per_beam: f64,
        source_pix: f64,
        others: &[(f64, f64)],
    ) -> (Vec<f64>, Vec<f64>) {
        let at = annulus_pixels(c.nx, c.ny, x0, y0, pix_per_beam, source_pix, others);
        let npix = c.nx * c.ny;
        let stats = annulus_stats_with(c.nchan, |ch, v| {
            let plane = &c.data[ch * npix..(ch + 1) * npix];
            v.extend(
                at.iter()
                    .map(|&k| plane[k] as f64)
                    .filter(|v| v.is_finite()),
            );
            Ok::<(), std::convert::Infallible>(())
        });
        match stats {
            Ok(s) => s,
            Err(never) => match never {},
        }
    }

    #[test]
    fn annulus_measures_background_and_noise_away_from_the_sources() {
        let (nx, ny, nchan) = (64, 64, 3);
        let mut data = vec![0f32; nx * ny * nchan];
        for ch in 0..nchan {
            for y in 0..ny {
                for x in 0..nx {
                    let k = (ch * ny + y) * nx + x;
                    // Background 2 + ch, uniform noise of σ = (ch + 1) / √12.
                    data[k] = 2.0 + ch as f32 + (ch + 1) as f32 * noise(k);
                    // A bright source at (32, 32) and a sibling at (44, 32): both excluded.
                    let d0 = ((x as f64 - 32.0).powi(2) + (y as f64 - 32.0).powi(2)).sqrt();
                    let d1 = ((x as f64 - 44.0).powi(2) + (y as f64 - 32.0).powi(2)).sqrt();
                    if d0 < 4.0 || d1 < 4.0 {
                        data[k] += 1000.0;
                    }
                }
            }
        }
        let c = CubeView {
            data: &data,
            nx,
            ny,
            nchan,
        };
        let (bkg, rms) = annulus_stats(c, 32.0, 32.0, 3.0, 2.0, &[(44.0, 32.0)]);
        for ch in 0..nchan {
            assert!(
                (bkg[ch] - (2.0 + ch as f64)).abs() < 0.05,
                "{ch}: {}",
                bkg[ch]
            );
            let want = (ch + 1) as f64 / 12f64.sqrt();
            assert!(
                (rms[ch] / want - 1.0).abs() < 0.1,
                "{ch}: {} vs {want}",
                rms[ch]
            );
        }
        // Without leaving the sibling out, its flux spoils the statistics.
        let (bkg2, _) = annulus_stats(c, 32.0, 32.0, 3.0, 2.0, &[]);
        assert!(bkg2[0] != bkg[0]);
    }

    #[test]
    fn outlying_channels_are_rejected_and_the_rest_kept() {
        let mut rms: Vec<f64> = (0..40).map(|i| 1.0 + 0.01 * (i % 7) as f64).collect();
        rms[5] = 3.0;
        rms[17] = f64::NAN;
        let bad = rms_outliers(&rms);
        assert!(bad[5] && bad[17]);
        assert_eq!(bad.iter().filter(|b| **b).count(), 2);
    }

    #[test]
    fn centre_annulus_ignores_blanks_and_zeros() {
        let (nx, ny, nchan) = (40, 40, 2);
        let mut data: Vec<f32> = (0..nx * ny * nchan).map(noise).collect();
        for v in data.iter_mut().skip(nx * ny).step_by(2) {
            *v = 0.0; // half of channel 1 is zero: ignored, not counted as signal
        }
        let rms = centre_annulus_rms(
            CubeView {
                data: &data,
                nx,
                ny,
                nchan,
            },
            3.0,
        );
        let want = 1.0 / 12f64.sqrt();
        assert!((rms[0] / want - 1.0).abs() < 0.15, "{}", rms[0]);
        assert!((rms[1] / want - 1.0).abs() < 0.2, "{}", rms[1]);
        let blank = vec![f32::NAN; nx * ny];
        assert!(centre_annulus_rms(
            CubeView {
                data: &blank,
                nx,
                ny,
                nchan: 1
            },
            3.0
        )[0]
        .is_nan());
    }
}
