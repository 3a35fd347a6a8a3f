//! The catalogue's quality flags as Arrakis defines them (`makecat.cuts_and_flags`), with its bugs
//! fixed: the Stokes I fit status decoded by bit, the local-RM outlier flag actually computed.
//! Formulas and thresholds: `../shared/science/catalogue.md` §4. True means bad.
//!
//! Must never: read a file or a parameter; thresholds come in as arguments.

use super::sky::{position_angle_deg, separation_deg};
use super::stats::nanmedian;

/// Arrakis's polarised SNR threshold of `snr_flag`.
pub const SNR_FLAG_DEFAULT: f64 = 8.0;
/// Fraction of the catalogue's largest channel count below which `channel_flag` is set.
pub const CHANNEL_FRACTION: f64 = 0.5;
/// `complex_sigma_add_flag`: sigma_add above this many times its error.
pub const SIGMA_ADD_SIGNIFICANCE: f64 = 10.0;
/// Offset added to the binned medians before the leakage envelope is fitted.
pub const ENVELOPE_OFFSET: f64 = 0.002;
/// Fewer bright sources than this: no envelope (E ≡ 0, nothing flagged).
pub const ENVELOPE_MIN_SOURCES: usize = 100;

/// `snr_flag`: polarised SNR below `cut` (NaN is not flagged, as in Arrakis: an unmeasured peak
/// is marked by other columns).
pub fn snr_flag(snr_polint: f64, cut: f64) -> bool {
    snr_polint < cut
}

/// `channel_flag` for every row: fewer usable channels than half the most any row has.
pub fn channel_flags(nchan: &[i64]) -> Vec<bool> {
    let max = nchan.iter().copied().max().unwrap_or(0);
    let limit = (CHANNEL_FRACTION * max as f64) as i64;
    nchan.iter().map(|&n| n < limit).collect()
}

/// The four `stokesI_fit_flag_is_*` columns and `stokesI_fit_flag`, from RM-Tools' `IfitStat`
/// (mpfit status + 64 if the model falls below the noise somewhere + 128 if it is negative
/// somewhere; 9 when the fit failed and I ≡ 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfitFlags {
    /// The model is negative somewhere (bit 128).
    pub is_negative: bool,
    /// The model is below the channel noise somewhere (bit 64).
    pub is_close_to_zero: bool,
    /// The fitter met non-finite values (status 16).
    pub is_not_finite: bool,
    /// The fitter did not converge normally (status 5 or above: iteration limit, tolerances,
    /// failure).
    pub is_not_normal: bool,
    /// `stokesI_fit_flag`: negative, close to zero, or the fit failed (status 0, 9 or 16).
    pub flag: bool,
}

/// Decode `IfitStat` by bit (Arrakis compares against thresholds, so a status of 64 also reads as
/// "not finite", and a failed fit, status 9, is not flagged).
pub fn ifit_flags(stat: i64) -> IfitFlags {
    let is_negative = stat & 128 != 0;
    let is_close_to_zero = stat & 64 != 0;
    let base = stat & 63;
    let is_not_finite = base == 16;
    let failed = matches!(base, 0 | 9 | 16);
    IfitFlags {
        is_negative,
        is_close_to_zero,
        is_not_finite,
        is_not_normal: base >= 5,
        flag: is_negative || is_close_to_zero || failed,
    }
}

/// `complex_sigma_add_flag`: sigma_add more than 10 times its error (NaN: not flagged).
pub fn complex_sigma_add_flag(sigma_add: f64, sigma_add_err: f64) -> bool {
    sigma_add > SIGMA_ADD_SIGNIFICANCE * sigma_add_err
}

/// `complex_M2_CC_flag`: the second moment of the clean components wider than the RMSF FWHM
/// (NaN: not flagged).
pub fn complex_m2_cc_flag(rm_width: f64, rmsf_fwhm: f64) -> bool {
    rm_width > rmsf_fwhm
}

/// A polynomial fitted on a mapped domain, as numpy's `Polynomial.fit` makes it: x is mapped
/// linearly from [lo, hi] to [−1, 1] before the power series is evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Power-series coefficients in the mapped variable, lowest order first.
    pub coef: Vec<f64>,
    /// The fitted x range.
    pub domain: (f64, f64),
}

impl Envelope {
    /// E ≡ 0 (too few bright sources to fit).
    pub fn zero() -> Envelope {
        Envelope {
            coef: vec![0.0],
            domain: (0.0, 1.0),
        }
    }

    /// E(x), extrapolated outside the fitted range.
    pub fn at(&self, x: f64) -> f64 {
        let (lo, hi) = self.domain;
        let t = if hi > lo {
            (2.0 * x - (lo + hi)) / (hi - lo)
        } else {
            x - lo
        };
        self.coef.iter().rev().fold(0.0, |acc, c| acc * t + c)
    }
}

/// The leakage envelope (`get_fit_func`): over the bright sources, medians of fractional
/// polarisation in `nbins` equal-width bins of distance from the tile centre, plus 0.002, fitted
/// by a polynomial of `degree` (lowered when fewer bins are filled). E ≡ 0 with fewer than 100
/// sources.
pub fn leakage_envelope(dist: &[f64], fracpol: &[f64], degree: usize, nbins: usize) -> Envelope {
    let pts: Vec<(f64, f64)> = dist
        .iter()
        .zip(fracpol)
        .filter(|(d, f)| d.is_finite() && f.is_finite())
        .map(|(d, f)| (*d, *f))
        .collect();
    if pts.len() < ENVELOPE_MIN_SOURCES || nbins == 0 {
        return Envelope::zero();
    }
    let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let edge = |k: usize| lo + (hi - lo) * k as f64 / nbins as f64;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for k in 0..nbins {
        let (a, b) = (edge(k), edge(k + 1));
        // Members a ≤ d < b: Arrakis's own binning, which leaves out the single largest distance.
        let members: Vec<f64> = pts
            .iter()
            .filter(|p| p.0 >= a && p.0 < b)
            .map(|p| p.1)
            .collect();
        let m = nanmedian(&members);
        if m.is_finite() {
            xs.push(0.5 * (a + b));
            ys.push(m + ENVELOPE_OFFSET);
        }
    }
    if xs.is_empty() {
        return Envelope::zero();
    }
    let deg = degree.min(xs.len() - 1);
    let dlo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let dhi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut env = Envelope {
        coef: vec![0.0; deg + 1],
        domain: (dlo, dhi),
    };
    let t: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if dhi > dlo {
                (2.0 * x - (dlo + dhi)) / (dhi - dlo)
            } else {
                0.0
            }
        })
        .collect();
    env.coef = least_squares_poly(&t, &ys, deg);
    env
}

/// Least-squares power-series coefficients (lowest first) of degree `deg` through (t, y), by
/// Householder QR of the Vandermonde matrix.
fn least_squares_poly(t: &[f64], y: &[f64], deg: usize) -> Vec<f64> {
    let (n, m) = (t.len(), deg + 1);
    let mut a: Vec<f64> = Vec::with_capacity(n * m);
    for &tv in t {
        let mut p = 1.0;
        for _ in 0..m {
            a.push(p);
            p *= tv;
        }
    }
    let mut b = y.to_vec();
    if !super::lm::householder_qr(&mut a, n, m, Some(&mut b)) {
        return vec![0.0; m];
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|c| a[r * m + c] * x[c]).sum();
        let d = a[r * m + r];
        x[r] = if d.abs() > 1e-300 {
            (b[r] - s) / d
        } else {
            0.0
        };
    }
    x
}

/// `is_blended_flag`, `N_blended` and `blend_ratio` of one component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blend {
    /// Another component of the same source lies within the beam.
    pub is_blended: bool,
    /// How many.
    pub n_blended: i64,
    /// S / (S + Σ S_neighbours) with S the total flux (NaN for single-Gaussian sources).
    pub ratio: f64,
}

/// One component as the blending rule sees it.
#[derive(Clone, Debug)]
pub struct BlendInput<'a> {
    /// Island (source) id.
    pub source_id: &'a str,
    /// Gaussians in the source, as the source finder counted them.
    pub n_gaus: i64,
    /// Position, degrees.
    pub ra: f64,
    /// Position, degrees.
    pub dec: f64,
    /// Restoring-beam major axis, degrees.
    pub beam_maj: f64,
    /// Total flux density.
    pub total_flux: f64,
}

/// `flag_blended_components`: within each source (over the rows given), a component is blended
/// when another lies closer than the largest beam major axis of the source; a source with any
/// single-Gaussian row is never blended.
pub fn blending(rows: &[BlendInput]) -> Vec<Blend> {
    use std::collections::HashMap;
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.source_id).or_default().push(i);
    }
    let mut out = vec![
        Blend {
            is_blended: false,
            n_blended: 0,
            ratio: f64::NAN,
        };
        rows.len()
    ];
    for members in groups.values() {
        if members.iter().any(|&i| rows[i].n_gaus == 1) {
            continue;
        }
        let beam = members
            .iter()
            .map(|&i| rows[i].beam_maj)
            .fold(f64::NEG_INFINITY, f64::max);
        for &i in members {
            let near: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&j| j != i)
                .filter(|&j| {
                    let d = separation_deg(rows[i].ra, rows[i].dec, rows[j].ra, rows[j].dec);
                    d > 0.0 && d < beam
                })
                .collect();
            let s = rows[i].total_flux;
            let others: f64 = near.iter().map(|&j| rows[j].total_flux).sum();
            out[i] = Blend {
                is_blended: !near.is_empty(),
                n_blended: near.len() as i64,
                ratio: s / (s + others),
            };
        }
    }
    out
}

/// Offsets of a position from the tile centre as Arrakis computes them
/// (`update_tile_separations`): d = separation, PA = position angle, f = 45° + pol_axis;
/// l = d·sin(PA − f), m = d·cos(PA − f). Returns (d, l, m) in degrees.
pub fn tile_offsets(ra: f64, dec: f64, centre: (f64, f64), pol_axis_deg: f64) -> (f64, f64, f64) {
    let d = separation_deg(centre.0, centre.1, ra, dec);
    let pa = position_angle_deg(centre.0, centre.1, ra, dec);
    let ang = (pa - (45.0 + pol_axis_deg)).to_radians();
    (d, d * ang.sin(), d * ang.cos())
}

/// Where `local_rm_flag` is computed: the tangent-plane offsets (x, y) in degrees of each good
/// source, its RM, and which rows it came from.
pub struct LocalRmInput {
    /// Offsets east, degrees.
    pub x: Vec<f64>,
    /// Offsets north, degrees.
    pub y: Vec<f64>,
    /// RM of each.
    pub rm: Vec<f64>,
}

/// Arrakis's starting sources per bin for the local-RM flag.
pub const LOCAL_RM_START_TARGET: usize = 30;
/// Bins the local-RM binning must produce before a target is accepted.
pub const LOCAL_RM_MIN_BINS: usize = 6;

/// `local_rm_flag` as Arrakis meant it (its Python never sets it): the good sources are grouped
/// into compact bins of about `target` sources (Voronoi bin accretion, starting at 30 per bin and
/// lowering the target by 5 until there are at least 6 bins, by 10 when there are too few sources
/// for one bin, giving up at 1), and within each bin the RMs are sigma-clipped at 3σ about the
/// median (iterated to convergence); clipped sources are flagged. Returns one flag per input.
pub fn local_rm_flags(inp: &LocalRmInput) -> Vec<bool> {
    let n = inp.rm.len();
    let mut target = LOCAL_RM_START_TARGET as i64;
    let bins = loop {
        if target <= 1 {
            return vec![false; n];
        }
        if (n as i64) < target {
            target -= 10;
            continue;
        }
        let b = accrete_bins(&inp.x, &inp.y, target as usize);
        let count = b.iter().copied().max().map_or(0, |m| m + 1);
        if count >= LOCAL_RM_MIN_BINS {
            break b;
        }
        target -= 5;
    };
    let nbins = bins.iter().copied().max().map_or(0, |m| m + 1);
    let mut flags = vec![false; n];
    for bin in 0..nbins {
        let members: Vec<usize> = (0..n)
            .filter(|&i| bins[i] == bin && inp.rm[i].is_finite())
            .collect();
        for i in sigma_clip(&members.iter().map(|&i| inp.rm[i]).collect::<Vec<_>>(), 3.0) {
            flags[members[i]] = true;
        }
    }
    flags
}

/// Indices of the values a 3σ clip about the median (standard deviation, iterated until nothing
/// more is clipped) rejects.
pub fn sigma_clip(v: &[f64], nsigma: f64) -> Vec<usize> {
    let mut keep = vec![true; v.len()];
    loop {
        let kept: Vec<f64> = v
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect();
        if kept.len() < 2 {
            break;
        }
        let med = nanmedian(&kept);
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        let sd = (kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / kept.len() as f64).sqrt();
        let mut changed = false;
        for (i, x) in v.iter().enumerate() {
            if keep[i] && (x - med).abs() > nsigma * sd {
                keep[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..v.len()).filter(|&i| !keep[i]).collect()
}

/// Voronoi bin accretion (Cappellari & Copin 2003, without the CVT step, as Arrakis runs vorbin)
/// with every source of signal 1 and a bin's S/N its number of sources: bins grow from the
/// source nearest the centroid of what is binned so far by adding the unbinned source nearest
/// the bin's centroid, while that brings the count closer to `target` and the bin stays round;
/// bins that end below 0.8·target are dissolved and their sources given to the nearest good
/// bin's centroid. Returns each source's bin (0..bins).
pub fn accrete_bins(x: &[f64], y: &[f64], target: usize) -> Vec<usize> {
    const PIXEL_SIZE: f64 = 10.0;
    let n = x.len();
    let mut class: Vec<Option<usize>> = vec![None; n];
    let mut good: Vec<bool> = Vec::new();
    if n == 0 {
        return Vec::new();
    }
    let mut current = vec![0usize];
    let mut bin = 0usize;
    class[0] = Some(0);
    loop {
        // Grow the current bin.
        loop {
            let (cx, cy) = centroid(&current, x, y);
            let Some(next) = nearest_unbinned(&class, x, y, cx, cy) else {
                break;
            };
            let mut trial = current.clone();
            trial.push(next);
            let (tx, ty) = centroid(&trial, x, y);
            let max_d = trial
                .iter()
                .map(|&i| (x[i] - tx).hypot(y[i] - ty))
                .fold(0.0, f64::max);
            let radius =
                (trial.len() as f64 * PIXEL_SIZE * PIXEL_SIZE / std::f64::consts::PI).sqrt();
            let round = max_d / radius - 1.0;
            let sn_old = current.len() as f64;
            let sn_new = trial.len() as f64;
            let t = target as f64;
            if round > 0.3 || (sn_new - t).abs() > (sn_old - t).abs() {
                break;
            }
            class[next] = Some(bin);
            current = trial;
        }
        good.push(current.len() as f64 >= 0.8 * target as f64);
        // The next bin starts at the unbinned source nearest the centroid of everything binned.
        let binned: Vec<usize> = (0..n).filter(|&i| class[i].is_some()).collect();
        let (bx, by) = centroid(&binned, x, y);
        let Some(start) = nearest_unbinned(&class, x, y, bx, by) else {
            break;
        };
        bin += 1;
        class[start] = Some(bin);
        current = vec![start];
    }
    // Dissolve the bins below 0.8·target; their sources join the nearest good centroid.
    let nb = good.len();
    let centroids: Vec<Option<(f64, f64)>> = (0..nb)
        .map(|b| {
            good[b].then(|| {
                let m: Vec<usize> = (0..n).filter(|&i| class[i] == Some(b)).collect();
                centroid(&m, x, y)
            })
        })
        .collect();
    if centroids.iter().all(|c| c.is_none()) {
        return vec![0; n];
    }
    let assigned: Vec<usize> = (0..n)
        .map(|i| match class[i] {
            Some(b) if good[b] => b,
            _ => (0..nb)
                .filter_map(|b| centroids[b].map(|c| (b, (x[i] - c.0).hypot(y[i] - c.1))))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(b, _)| b)
                .unwrap_or(0),
        })
        .collect();
    // Renumber the surviving bins 0..k.
    let mut map = vec![usize::MAX; nb];
    let mut k = 0;
    for &b in &assigned {
        if map[b] == usize::MAX {
            map[b] = k;
            k += 1;
        }
    }
    assigned.iter().map(|&b| map[b]).collect()
}

fn centroid(ix: &[usize], x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = ix.len().max(1) as f64;
    (
        ix.iter().map(|&i| x[i]).sum::<f64>() / n,
        ix.iter().map(|&i| y[i]).sum::<f64>() / n,
    )
}

fn nearest_unbinned(
    class: &[Option<usize>],
    x: &[f64],
    y: &[f64],
    cx: f64,
    cy: f64,
) -> Option<usize> {
    (0..x.len())
        .filter(|&i| class[i].is_none())
        .min_by(|&a, &b| {
            let da = (x[a] - cx).hypot(y[a] - cy);
            let db = (x[b] - cx).hypot(y[b] - cy);
            da.total_cmp(&db)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_and_channel_flags_at_their_thresholds() {
        assert!(snr_flag(7.999, 8.0));
        assert!(!snr_flag(8.0, 8.0));
        assert!(!snr_flag(f64::NAN, 8.0));
        // Half of the largest count, truncated: 288 → 144 is the limit.
        assert_eq!(
            channel_flags(&[288, 144, 143, 0]),
            vec![false, false, true, true]
        );
        assert_eq!(channel_flags(&[]), Vec::<bool>::new());
    }

    #[test]
    fn ifit_status_is_decoded_by_bit() {
        let f = ifit_flags(1);
        assert!(!f.flag && !f.is_not_normal && !f.is_not_finite);
        let f = ifit_flags(64 + 1);
        assert!(f.flag && f.is_close_to_zero && !f.is_not_finite && !f.is_negative);
        let f = ifit_flags(128 + 64 + 2);
        assert!(f.flag && f.is_negative && f.is_close_to_zero);
        // A failed fit (I ≡ 1) is flagged; Arrakis's thresholds miss it.
        let f = ifit_flags(9);
        assert!(f.flag && f.is_not_normal && !f.is_not_finite);
        let f = ifit_flags(16);
        assert!(f.flag && f.is_not_finite);
        let f = ifit_flags(5);
        assert!(!f.flag && f.is_not_normal);
        assert!(ifit_flags(0).flag);
    }

    #[test]
    fn complexity_flags_at_their_thresholds() {
        assert!(complex_sigma_add_flag(1.01, 0.1));
        assert!(!complex_sigma_add_flag(1.0, 0.1));
        assert!(!complex_sigma_add_flag(f64::NAN, 0.1));
        assert!(complex_m2_cc_flag(30.1, 30.0));
        assert!(!complex_m2_cc_flag(30.0, 30.0));
        assert!(!complex_m2_cc_flag(f64::NAN, 30.0));
    }

    #[test]
    fn the_envelope_is_zero_below_100_sources_and_fits_binned_medians() {
        let d: Vec<f64> = (0..99).map(|i| i as f64 / 20.0).collect();
        let f = vec![0.01; 99];
        assert_eq!(leakage_envelope(&d, &f, 4, 16).at(2.0), 0.0);
        // 400 sources with median fracpol 0.003 + 0.001·d²: the fit through the bin medians
        // (+0.002) recovers it at the bin centres.
        let n = 400;
        let d: Vec<f64> = (0..n).map(|i| 4.0 * i as f64 / n as f64).collect();
        let f: Vec<f64> = d.iter().map(|x| 0.003 + 0.001 * x * x).collect();
        let e = leakage_envelope(&d, &f, 4, 16);
        for x in [0.5, 1.5, 3.0] {
            let want = 0.005 + 0.001 * x * x;
            assert!((e.at(x) - want).abs() < 2e-4, "{x}: {} vs {want}", e.at(x));
        }
    }

    #[test]
    fn least_squares_recovers_an_exact_polynomial() {
        let t: Vec<f64> = (0..9).map(|i| -1.0 + 0.25 * i as f64).collect();
        let y: Vec<f64> = t.iter().map(|v| 1.0 - 2.0 * v + 0.5 * v * v * v).collect();
        let c = least_squares_poly(&t, &y, 3);
        for (a, b) in c.iter().zip([1.0, -2.0, 0.0, 0.5]) {
            assert!((a - b).abs() < 1e-12, "{c:?}");
        }
    }

    #[test]
    fn blending_follows_arrakis_rule() {
        let beam = 15.0 / 3600.0;
        let row = |s, n, ra: f64, flux| BlendInput {
            source_id: s,
            n_gaus: n,
            ra,
            dec: 0.0,
            beam_maj: beam,
            total_flux: flux,
        };
        let rows = [
            row("A", 2, 10.0, 3.0),
            row("A", 2, 10.0 + 10.0 / 3600.0, 1.0),
            row("B", 2, 20.0, 1.0),
            row("B", 2, 20.0 + 30.0 / 3600.0, 1.0),
            row("C", 1, 30.0, 1.0),
        ];
        let b = blending(&rows);
        assert!(b[0].is_blended && b[0].n_blended == 1 && (b[0].ratio - 0.75).abs() < 1e-12);
        assert!(b[1].is_blended && (b[1].ratio - 0.25).abs() < 1e-12);
        // Two Gaussians farther apart than the beam: not blended, ratio 1.
        assert!(!b[2].is_blended && b[2].ratio == 1.0);
        assert!(!b[4].is_blended && b[4].ratio.is_nan() && b[4].n_blended == 0);
    }

    #[test]
    fn tile_offsets_rotate_with_the_pol_axis() {
        // A source 1° north of the centre, pol axis −45°: f = 0, so l = 0, m = 1.
        let (d, l, m) = tile_offsets(0.0, 1.0, (0.0, 0.0), -45.0);
        assert!((d - 1.0).abs() < 1e-12 && l.abs() < 1e-12 && (m - 1.0).abs() < 1e-12);
        // Pol axis 0: f = 45°, the same source has l = −sin 45°.
        let (_, l, m) = tile_offsets(0.0, 1.0, (0.0, 0.0), 0.0);
        assert!((l + 0.5f64.sqrt()).abs() < 1e-9 && (m - 0.5f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn local_rm_flags_an_outlier_among_its_neighbours() {
        // 240 sources on a grid with RM 10 ± 1, one with RM 200.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rm = Vec::new();
        for i in 0..240 {
            x.push((i % 16) as f64 * 0.4);
            y.push((i / 16) as f64 * 0.4);
            rm.push(10.0 + ((i * 7919) % 13) as f64 / 6.0 - 1.0);
        }
        rm[77] = 200.0;
        let flags = local_rm_flags(&LocalRmInput { x, y, rm });
        assert!(flags[77]);
        assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{flags:?}");
        // Too few sources for any bin: nothing flagged.
        let few = LocalRmInput {
            x: vec![0.0, 1.0],
            y: vec![0.0, 0.0],
            rm: vec![1.0, 100.0],
        };
        assert_eq!(local_rm_flags(&few), vec![false, false]);
    }

    #[test]
    fn accretion_makes_bins_of_about_the_target() {
        let x: Vec<f64> = (0..300).map(|i| (i % 20) as f64).collect();
        let y: Vec<f64> = (0..300).map(|i| (i / 20) as f64).collect();
        let b = accrete_bins(&x, &y, 30);
        let nb = b.iter().max().unwrap() + 1;
        assert!((6..=12).contains(&nb), "{nb} bins");
        for k in 0..nb {
            let c = b.iter().filter(|&&v| v == k).count();
            assert!(c >= 24, "bin {k} has {c}");
        }
    }
}
