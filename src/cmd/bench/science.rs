//! `arrakis bench rm1d` and `rm3d`: the RM kernels against RM-Tools on the same data in the same
//! run, first run and fastest of N; `arrakis bench ionosphere`: the IONEX reader and the
//! per-island prediction.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::*;

/// Write `n` RACS-low spectra (288 channels, 743.5–1030.5 MHz): a curved power-law Stokes I,
/// one Faraday-thin component, Gaussian noise; deterministic for a given index.
pub fn write_racs_spectra(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for s in 0..n {
        let mut state = 0x5EED_0000_u64 + s as u64;
        let mut uniform = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let rm = -300.0 + 600.0 * uniform();
        let (p, psi) = (0.02 + 0.1 * uniform(), std::f64::consts::PI * uniform());
        let mut text = String::new();
        for k in 0..288 {
            let f = 743.5e6 + 1e6 * k as f64;
            let x: f64 = f / 887.5e6;
            let i = 0.05 * x.powf(-0.8);
            let l2 = (crate::science::C_M_S / f).powi(2);
            let sigma = 0.0005;
            let mut g = || {
                (-2.0 * uniform().max(1e-300).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * uniform()).cos()
            };
            let (ni, nq, nu) = (g(), g(), g());
            text.push_str(&format!(
                "{f:.17e} {:.17e} {:.17e} {:.17e} {sigma:.17e} {sigma:.17e} {sigma:.17e}\n",
                i + sigma * ni,
                p * i * (2.0 * (psi + rm * l2)).cos() + sigma * nq,
                p * i * (2.0 * (psi + rm * l2)).sin() + sigma * nu
            ));
        }
        let path = dir.join(format!("spec{s:04}.dat"));
        std::fs::write(&path, text)?;
        files.push(path);
    }
    Ok(files)
}

/// Run a reference script (written into `dir` from its embedded text) with the Python that has
/// RM-Tools (`python`, else `$ARRAKIS_PYTHON`, else the venv `.ci/run` makes); its stdout.
fn run_reference(
    python: Option<&Path>,
    dir: &Path,
    (name, text): (&str, &str),
    args: &[std::ffi::OsString],
) -> Result<String> {
    let py = python
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ARRAKIS_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/opt/arrakis-venv/bin/python"));
    let script = dir.join(name);
    std::fs::write(&script, text)?;
    let out = Command::new(&py)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (set ARRAKIS_PYTHON to a Python with RM-Tools)",
                py.display()
            )
        })?;
    if !out.status.success() {
        return Err(anyhow!(
            "{name} failed under {}: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `arrakis bench rm1d`: RM synthesis + RM-CLEAN per spectrum, arrakis vs RM-Tools' API on the
/// same spectra in the same run (Arrakis settings: poly_ord 3, n_samples 5, fitted RMSF,
/// cutoff −8, gain 0.1).
pub fn rm1d(n: usize, python: Option<&Path>, rounds: usize, no_reference: bool) -> Result<i32> {
    use crate::science::rm_clean::CleanParams;
    use crate::science::rm_synthesis::SynthParams;
    use crate::science::stokes_i::FitFunction;
    let tmp = tempfile::tempdir()?;
    let files = write_racs_spectra(tmp.path(), n)?;
    let data: Vec<_> = files
        .iter()
        .map(|f| crate::stages::rm1d::read_spectrum(f).map_err(|e| anyhow!(e)))
        .collect::<Result<_>>()?;
    let p = SynthParams {
        poly_ord: 3,
        fit_function: FitFunction::Log,
        n_samples: 5.0,
        dphi: None,
        phi_max: None,
        weight_variance: true,
        fit_rmsf: true,
    };
    let c = CleanParams {
        cutoff: -8.0,
        max_iter: 10000,
        gain: 0.1,
        window: None,
    };
    let (sink, _, fastest) = timed(rounds, || {
        let mut sink = 0.0;
        for d in &data {
            let (s, cs) = crate::stages::rm1d::synth_and_clean(d, &p, &c);
            sink += s.peak.phiPeakPIfit_rm2 + cs.peak.ampPeakPIfit;
        }
        sink
    });
    std::hint::black_box(sink);
    let ours = fastest / n as f64;
    if no_reference {
        println!(
            "arrakis: {:.3} ms per spectrum (1 thread, best of {})",
            ours * 1e3,
            rounds.max(1)
        );
        return Ok(0);
    }
    let settings = tmp.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"poly_ord": 3, "n_samples": 5, "fit_rmsf": true, "cutoff": -8, "max_iter": 10000, "gain": 0.1}"#,
    )?;
    let mut args = vec![settings.into_os_string()];
    args.extend(files.iter().map(|f| f.clone().into_os_string()));
    let out = run_reference(
        python,
        tmp.path(),
        (
            "rmtools_bench.py",
            include_str!("../../../tests/py/rmtools_bench.py"),
        ),
        &args,
    )?;
    let theirs: f64 = out.trim().parse().context("RM-Tools benchmark output")?;
    println!("| RM synthesis + RM-CLEAN, 1 spectrum (288 ch, 815 depths) | ms per spectrum |");
    println!("|---|---:|");
    println!("| arrakis (1 thread) | {:.3} |", ours * 1e3);
    println!(
        "| RM-Tools 1.5.0 run_rmsynth + run_rmclean | {:.3} |",
        theirs * 1e3
    );
    println!("| ratio | {:.0}x |", theirs / ours);
    Ok(0)
}

/// `arrakis bench rm3d`: 3D RM synthesis of an `npix`² × 288-channel RACS-low cube (815
/// Faraday depths with the Arrakis settings) and 3D RM-CLEAN of its first `clean_npix`² pixels,
/// arrakis's kernels vs RM-Tools' `run_rmsynth` / `do_rmclean_hogbom` on the same cube in the
/// same run. Reports wall times, the ratio, and the synthesis's achieved GFLOP/s (8 flops per
/// channel × depth × pixel).
pub fn rm3d(npix: usize, clean_npix: usize, python: Option<&Path>, repeats: usize) -> Result<i32> {
    use crate::fits::{Cube, Header};
    use crate::science::rm3d::{rmclean3d, rmsynth3d, Synth3dParams, Transform};
    let repeats = repeats.max(1);
    let nchan = 288;
    let freqs: Vec<f64> = (0..nchan).map(|k| 743.5e6 + 1e6 * k as f64).collect();
    let l2 = crate::science::rm_synthesis::lambda_sq(&freqs);
    let n = npix * npix;
    let mut rng = crate::simulate::Rng::new(42);
    let sigma: Vec<f64> = (0..nchan)
        .map(|c| 0.001 * (1.0 + 0.2 * (c as f64 / 11.0).sin()))
        .collect();
    let mut q = vec![0f32; nchan * n];
    let mut u = vec![0f32; nchan * n];
    // Noise everywhere and a Faraday-thin source in every pixel (RM from −200 to 200 and
    // amplitude from 5 to 50 σ of the FDF), so that CLEAN has work in every pixel.
    for c in 0..nchan {
        for i in 0..n {
            let (mut qv, mut uv) = (sigma[c] * rng.gauss(), sigma[c] * rng.gauss());
            let rm = -200.0 + 400.0 * (i as f64 * 0.618_034).fract();
            let amp = 0.0003 + 0.003 * (i as f64 * 0.414_214).fract();
            qv += amp * (2.0 * rm * l2[c]).cos();
            uv += amp * (2.0 * rm * l2[c]).sin();
            q[c * n + i] = qv as f32;
            u[c * n + i] = uv as f32;
        }
    }
    let tmp = tempfile::tempdir()?;
    let mut header = Header::default();
    crate::wcs::Wcs {
        crval_ra: 180.0,
        crval_dec: -30.0,
        crpix_x: npix as f64 / 2.0,
        crpix_y: npix as f64 / 2.0,
        cdelt_x: -0.001,
        cdelt_y: 0.001,
        pc: crate::wcs::IDENTITY,
        crval_freq: freqs[0],
        crpix_freq: 1.0,
        cdelt_freq: 1e6,
    }
    .to_header(&mut header);
    let (qf, uf, nf) = (
        tmp.path().join("q.fits"),
        tmp.path().join("u.fits"),
        tmp.path().join("noise.dat"),
    );
    for (path, data) in [(&qf, &q), (&uf, &u)] {
        Cube {
            nx: npix,
            ny: npix,
            nchan,
            data: data.clone(),
            header: header.clone(),
        }
        .write(path)
        .map_err(|e| anyhow!(e.to_string()))?;
    }
    std::fs::write(
        &nf,
        sigma
            .iter()
            .map(|s| format!("{s:.9e}\n"))
            .collect::<String>(),
    )?;
    let weights: Vec<f64> = sigma.iter().map(|s| 1.0 / (s * s)).collect();
    let params = |transform| Synth3dParams {
        dphi: None,
        phi_max: None,
        n_samples: 5.0,
        fit_rmsf: false,
        transform,
    };
    // The default (auto: the NUFFT for this cube) first, so that its first run pays for fresh
    // memory as a one-off `rmsynth3d` does; then the direct transform.
    let p = params(Transform::Auto);
    let (s, ours_synth_first, ours_synth) =
        timed(repeats, || rmsynth3d(&q, &u, n, &freqs, &weights, &p));
    let nphi = s.axes.phi.len();
    let auto = Transform::Auto.resolve(nphi, nchan);
    let p = params(Transform::Direct);
    let (direct, direct_first, direct_fastest) =
        timed(repeats, || rmsynth3d(&q, &u, n, &freqs, &weights, &p));
    // How far the default's FDF is from the direct transform's, relative to each pixel's peak.
    let mut worst = 0f64;
    for i in 0..n {
        let amp =
            |v: (&[f32], &[f32]), k: usize| (v.0[k * n + i] as f64).hypot(v.1[k * n + i] as f64);
        let peak = (0..nphi)
            .map(|k| amp((&direct.fdf_re, &direct.fdf_im), k))
            .fold(0.0, f64::max);
        let diff = (0..nphi)
            .map(|k| {
                let (dr, di) = (
                    s.fdf_re[k * n + i] as f64 - direct.fdf_re[k * n + i] as f64,
                    s.fdf_im[k * n + i] as f64 - direct.fdf_im[k * n + i] as f64,
                );
                dr.hypot(di)
            })
            .fold(0.0, f64::max);
        worst = worst.max(diff / peak);
    }
    drop(direct);
    // By the direct transform's count: 8 flops per channel × depth × pixel.
    let gflops_in = |secs: f64| 8.0 * nchan as f64 * nphi as f64 * n as f64 / secs / 1e9;
    let gflops = gflops_in(direct_fastest);

    // CLEAN of the first clean_npix² pixels, 8σ absolute cutoff.
    let dfdf = 1.0 / weights.iter().sum::<f64>().sqrt();
    let cutoff = 8.0 * dfdf;
    let m = clean_npix.min(npix);
    let pick = |v: &[f32], depth: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(depth * m * m);
        for k in 0..depth {
            for y in 0..m {
                let row = k * n + y * npix;
                out.extend_from_slice(&v[row..row + m]);
            }
        }
        out
    };
    let nphi2 = s.axes.phi2.len();
    let (rmsf_re, rmsf_im, fwhm) = s.rmsf_cubes();
    let (fr, fi) = (pick(&s.fdf_re, nphi), pick(&s.fdf_im, nphi));
    let (rr, ri) = (pick(&rmsf_re, nphi2), pick(&rmsf_im, nphi2));
    let fwhm = pick(&fwhm, 1);
    let (c, ours_clean_first, ours_clean) = timed(repeats, || {
        rmclean3d(
            (&fr, &fi),
            (&rr, &ri),
            &fwhm,
            &s.axes.phi,
            m * m,
            cutoff,
            1000,
            0.1,
        )
    });
    let ours_iters: f64 = c.n_iter.iter().map(|&x| x as f64).sum();

    let args: Vec<std::ffi::OsString> = vec![
        qf.into(),
        uf.into(),
        nf.into(),
        format!("{cutoff:e}").into(),
        m.to_string().into(),
        repeats.to_string().into(),
    ];
    let out = run_reference(
        python,
        tmp.path(),
        (
            "rmtools3d_bench.py",
            include_str!("../../../tests/py/rmtools3d_bench.py"),
        ),
        &args,
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let threads = rayon::current_num_threads();
    println!(
        "3D cube {npix}x{npix}x{nchan}, {nphi} Faraday depths (RM-Tools: {}); CLEAN on {m}x{m} pixels, cutoff 8 sigma, gain 0.1",
        g("nphi")
    );
    println!(
        "First run in the process (what a one-off run costs, page faults included) and fastest of {repeats} (memory reused):"
    );
    println!("| kernel | run | arrakis ({threads} threads) | RM-Tools | ratio |");
    println!("|---|---|---:|---:|---:|");
    for (what, run, ours, theirs) in [
        (
            format!("{auto:?}, the default"),
            "first",
            ours_synth_first,
            g("synth_first_s"),
        ),
        (
            format!("{auto:?}, the default"),
            "fastest",
            ours_synth,
            g("synth_s"),
        ),
        (
            "Direct".to_string(),
            "first",
            direct_first,
            g("synth_first_s"),
        ),
        (
            "Direct".to_string(),
            "fastest",
            direct_fastest,
            g("synth_s"),
        ),
    ] {
        let gf = gflops_in(ours);
        println!(
            "| RM synthesis 3D ({what}), s | {run} | {ours:.3} ({gf:.1} GFLOP/s) | {theirs:.3} | {:.1}x |",
            theirs / ours
        );
    }
    let iters = g("clean_iters").max(1.0);
    for (run, ours, theirs) in [
        ("first", ours_clean_first, g("clean_first_s")),
        ("fastest", ours_clean, g("clean_s")),
    ] {
        let (ours_it, theirs_it) = (ours / ours_iters.max(1.0), theirs / iters);
        println!(
            "| RM-CLEAN 3D, µs per iteration | {run} | {:.2} ({ours_iters:.0} iterations) | {:.2} ({iters:.0} iterations) | {:.0}x |",
            ours_it * 1e6,
            theirs_it * 1e6,
            theirs_it / ours_it
        );
    }
    println!(
        "\nThe default's FDF differs from the direct transform's by at most {worst:.1e} of the pixel's peak |FDF| (GFLOP/s above: the direct transform's 8 flops per channel × depth × pixel, whichever way it was computed)"
    );
    if let Some((peak, how)) = fp32_peak_gflops() {
        println!(
            "FP32 peak of this CPU ≈ {peak:.0} GFLOP/s ({how}); the direct transform at {gflops:.1} GFLOP/s by the 8-flop count is {:.0} % of it (the kernel does half those flops: the symmetric depth axis gives ±φ from one product, so {:.0} % of peak in flops executed)",
            100.0 * gflops / peak,
            50.0 * gflops / peak
        );
    }
    Ok(0)
}

/// FP32 peak: logical CPUs × the FMA throughput of one core, measured (independent chains of
/// single-precision FMAs, 512 and 256 bits wide, the faster of the two), not worked out from
/// the flags: Zen 4 has AVX-512 but runs it as two 256-bit halves, so lanes × 2 FMA units from
/// the flags says twice its peak. Shown beside the clock (measured, and the nominal one from
/// /proc/cpuinfo, which in a virtual machine is the time-stamp counter's rate) as flops per
/// cycle.
fn fp32_peak_gflops() -> Option<(f64, String)> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let cpus = text.lines().filter(|l| l.starts_with("processor")).count();
    let nominal: Option<f64> = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
        .map(|mhz: f64| mhz / 1000.0);
    let (per_core, width) = fma_gflops_per_core()?;
    let peak = cpus as f64 * per_core;
    let clock = match (measured_clock_ghz(), nominal) {
        (Some(g), Some(n)) => format!(
            "{:.0} flops/cycle at {g:.2} GHz measured, {n:.2} GHz nominal",
            per_core / g
        ),
        (Some(g), None) => format!("{:.0} flops/cycle at {g:.2} GHz measured", per_core / g),
        _ => String::new(),
    };
    Some((
        peak,
        format!(
            "{cpus} CPUs × {per_core:.0} GFLOP/s each, measured with {width}-bit FMAs; {clock}"
        ),
    ))
}

/// One core's single-precision FMA throughput in GFLOP/s, measured, and the vector width that
/// gave it: the best of a few timings of 12 independent accumulators (enough to cover the FMA
/// latency on every x86-64 core) over 10⁷ steps.
fn fma_gflops_per_core() -> Option<(f64, u32)> {
    #[cfg(target_arch = "x86_64")]
    {
        let time = |f: &dyn Fn() -> f32, flops_per_step: f64| -> f64 {
            (0..5)
                .map(|_| {
                    let t0 = Instant::now();
                    std::hint::black_box(f());
                    STEPS as f64 * flops_per_step / t0.elapsed().as_secs_f64() / 1e9
                })
                .fold(0.0, f64::max)
        };
        const STEPS: usize = 10_000_000;
        let mut best: Option<(f64, u32)> = None;
        if crate::science::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            let g = time(&|| unsafe { fma_chains_256(STEPS) }, 12.0 * 8.0 * 2.0);
            best = Some((g, 256));
        }
        if crate::science::simd::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            let g = time(&|| unsafe { fma_chains_512(STEPS) }, 12.0 * 16.0 * 2.0);
            if best.is_none_or(|(b, _)| g > b * 1.1) {
                best = Some((g, 512));
            }
        }
        best
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(steps: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..steps {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(steps: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..steps {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x));
    _mm512_reduce_add_ps(sum)
}

/// The clock this core runs at, in GHz: the best of a few timings of 10⁸ dependent
/// register-to-register integer adds (one cycle each on every x86-64 core of the last decade;
/// adds of an immediate would not do, since recent Intel cores fold those at rename).
fn measured_clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let iterations: u64 = 10_000_000;
        let best = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                let mut x = 0u64;
                // SAFETY: register arithmetic only, on the registers named.
                unsafe {
                    std::arch::asm!(
                        "2:",
                        "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                        "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                        "add {x}, {y}", "add {x}, {y}",
                        "dec {n}",
                        "jnz 2b",
                        x = inout(reg) x,
                        y = in(reg) 1u64,
                        n = inout(reg) iterations => _,
                        options(nomem, nostack),
                    );
                }
                std::hint::black_box(x);
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(10.0 * iterations as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `arrakis bench ionosphere`: parse a day of CODE-sized global maps (25 maps of 71 × 73), and
/// predict RM_ion over a 900 s scan (6 samples) for `n` directions spread over a RACS tile.
pub fn ionosphere(n: usize) -> Result<i32> {
    use crate::science::geomag::mjd_from_civil;
    use crate::science::{ionex, ionosphere};
    let t0 = mjd_from_civil(2019, 4, 27) as f64 * 86_400.0;
    let epochs: Vec<f64> = (0..25).map(|k| t0 + 3600.0 * k as f64).collect();
    let (lat, lon) = (ionex::CODE_LAT, ionex::CODE_LON);
    let text = ionex::write(&epochs, lat, lon, &|t, la: f64, lo: f64| {
        20.0 + 8.0
            * (std::f64::consts::TAU * (t - t0) / 86_400.0 + lo.to_radians()).cos()
            * la.to_radians().cos()
    });
    let mut parse_s = f64::MAX;
    let mut maps = None;
    for _ in 0..5 {
        let t = Instant::now();
        maps = Some(ionex::IonexMaps::parse(&text).map_err(|e| anyhow!("{e:?}"))?);
        parse_s = parse_s.min(t.elapsed().as_secs_f64());
    }
    let maps = maps.ok_or_else(|| anyhow!("no maps"))?;
    let start = t0 + 8.0 * 3600.0;
    let times = ionosphere::time_grid(start, start + 900.0, 300.0);
    let per: Vec<&ionex::IonexMaps> = times.iter().map(|_| &maps).collect();
    let side = (n as f64).sqrt().ceil() as usize;
    let dirs: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            (
                189.375 + 6.0 * ((k % side) as f64 / side as f64 - 0.5),
                -25.0 + 6.0 * ((k / side) as f64 / side as f64 - 0.5),
            )
        })
        .collect();
    let mut predict_s = f64::MAX;
    let mut sum = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        for &(ra, dec) in &dirs {
            let rms = ionosphere::predict(&ionosphere::ASKAP, ra, dec, &times, &per)
                .map_err(|e| anyhow!(e))?;
            sum += rms.iter().sum::<f64>();
        }
        predict_s = predict_s.min(t.elapsed().as_secs_f64());
    }
    println!("| ionosphere from IONEX (1 thread) | time |");
    println!("|---|---:|");
    println!(
        "| read one day of global maps ({:.1} MB, 25 maps of 71 x 73) | {:.1} ms |",
        text.len() as f64 / 1e6,
        parse_s * 1e3
    );
    println!(
        "| RM_ion for {n} islands x {} samples | {:.1} ms ({:.1} us per island) |",
        times.len(),
        predict_s * 1e3,
        predict_s * 1e6 / n as f64
    );
    eprintln!("(checksum {sum:.3})");
    Ok(0)
}
