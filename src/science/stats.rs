//! Robust statistics used by the kernels.

/// Median of finite values (NaNs ignored); NaN when there are none. Even counts average the two
/// middle values (numpy's convention).
pub fn nanmedian(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median absolute deviation scaled to a Gaussian sigma: median(|a - median(a)|) / 0.6745.
pub fn mad_sigma(values: &[f64]) -> f64 {
    let med = nanmedian(values);
    let dev: Vec<f64> = values.iter().map(|x| (x - med).abs()).collect();
    nanmedian(&dev) / 0.6745
}

/// Mean of finite values; NaN when there are none.
pub fn nanmean(values: &[f64]) -> f64 {
    let (s, n) = values
        .iter()
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_follow_numpy() {
        assert_eq!(nanmedian(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(nanmedian(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(nanmedian(&[f64::NAN]).is_nan());
        assert!((mad_sigma(&[1.0, 2.0, 3.0, 4.0, 100.0]) - 1.0 / 0.6745).abs() < 1e-12);
    }
}
