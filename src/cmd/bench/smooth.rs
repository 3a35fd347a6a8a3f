//! `arrakis bench smooth`: the imager's common-resolution step against RACS-tools' `beamcon_2D`
//! (what Arrakis runs) on the same channel images in the same run: both read the FITS images,
//! smooth them to one target beam and write them; the common beams each computes, the time each
//! takes on all cores, and how far their pixels differ.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use rayon::prelude::*;

use crate::fits::{Header, Image};
use crate::science::resolution::{common_beam, convolve_to, Beam};

/// Channel images of a RACS-low-like band: `nchan` images of `npix`² pixels (2.5″), beams
/// growing towards low frequency and turning slowly, a few point sources and noise.
fn write_channels(dir: &Path, npix: usize, nchan: usize) -> Result<Vec<(PathBuf, Beam)>> {
    let cell = 2.5 / 3600.0;
    let mut out = Vec::new();
    for c in 0..nchan {
        let f = 743.5e6 + 288e6 * c as f64 / nchan as f64;
        let beam = Beam {
            bmaj: 15.0 / 3600.0 * 1031.5e6 / f,
            bmin: 11.0 / 3600.0 * 1031.5e6 / f,
            bpa: 30.0 + 10.0 * c as f64 / nchan as f64,
        };
        let [xx, yy, xy] = beam.covariance();
        let (a, b, cc) = (xx / cell / cell, yy / cell / cell, -xy / cell / cell);
        let det = a * b - cc * cc;
        let mut state = 0x5EED_u64 + c as u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut data: Vec<f32> = (0..npix * npix).map(|_| (0.002 * noise()) as f32).collect();
        for s in 0..16 {
            let (x0, y0) = (
                (npix / 8 + (s * 97) % (3 * npix / 4)) as f64,
                (npix / 8 + (s * 211) % (3 * npix / 4)) as f64,
            );
            let flux = 0.05 * (1.0 + s as f64);
            for y in (y0 as usize).saturating_sub(20)..(y0 as usize + 21).min(npix) {
                for x in (x0 as usize).saturating_sub(20)..(x0 as usize + 21).min(npix) {
                    let (dx, dy) = (x as f64 - x0, y as f64 - y0);
                    let q = (b * dx * dx + a * dy * dy - 2.0 * cc * dx * dy) / det;
                    data[y * npix + x] += (flux * (-0.5 * q).exp()) as f32;
                }
            }
        }
        let mut h = Header::default();
        for (i, (ctype, crval, crpix, cdelt)) in [
            ("RA---SIN", 189.0, npix as f64 / 2.0 + 1.0, -cell),
            ("DEC--SIN", -25.0, npix as f64 / 2.0 + 1.0, cell),
        ]
        .into_iter()
        .enumerate()
        {
            h.set_str(&format!("CTYPE{}", i + 1), ctype, "");
            h.set_f64(&format!("CRVAL{}", i + 1), crval, "");
            h.set_f64(&format!("CRPIX{}", i + 1), crpix, "");
            h.set_f64(&format!("CDELT{}", i + 1), cdelt, "");
        }
        h.set_str("CUNIT1", "deg", "");
        h.set_str("CUNIT2", "deg", "");
        h.set_f64("BMAJ", beam.bmaj, "");
        h.set_f64("BMIN", beam.bmin, "");
        h.set_f64("BPA", beam.bpa, "");
        h.set_str("BUNIT", "Jy/beam", "");
        h.set_f64("RESTFRQ", f, "");
        let path = dir.join(format!("chan{c:04}.fits"));
        Image {
            shape: vec![npix, npix],
            data,
            header: h,
        }
        .write(&path)?;
        out.push((path, beam));
    }
    Ok(out)
}

/// `arrakis bench smooth`.
pub fn smooth(
    npix: usize,
    nchan: usize,
    beamcon: Option<&Path>,
    dir: Option<&Path>,
) -> Result<i32> {
    let tmp = tempfile::tempdir()?;
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let inputs = write_channels(&dir, npix, nchan)?;
    let beams: Vec<Beam> = inputs.iter().map(|(_, b)| *b).collect();
    let t = Instant::now();
    let target = common_beam(&beams).ok_or_else(|| anyhow!("no beams"))?;
    let t_beam = t.elapsed().as_secs_f64();
    let ours_dir = dir.join("arrakis");
    std::fs::create_dir_all(&ours_dir)?;
    let t = Instant::now();
    inputs
        .par_iter()
        .map(|(p, b)| -> Result<()> {
            let img = Image::read(p)?;
            let out = convolve_to(&img.data, npix, npix, 2.5 / 3600.0, *b, target);
            let mut h = img.header.clone();
            h.set_f64("BMAJ", target.bmaj, "");
            h.set_f64("BMIN", target.bmin, "");
            h.set_f64("BPA", target.bpa, "");
            Image {
                shape: vec![npix, npix],
                data: out,
                header: h,
            }
            .write(&ours_dir.join(p.file_name().unwrap_or_default()))?;
            Ok(())
        })
        .collect::<Result<Vec<()>>>()?;
    let t_ours = t.elapsed().as_secs_f64();
    println!(
        "smoothing {nchan} channel images of {npix}x{npix} to their common beam, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "arrakis:    common beam {:.2}\" x {:.2}\" PA {:.2} ({:.1} ms); read, smooth, write: {t_ours:.2} s ({:.0} ms per image)",
        target.bmaj * 3600.0,
        target.bmin * 3600.0,
        target.bpa,
        t_beam * 1e3,
        t_ours * 1e3 / nchan as f64
    );
    let program = beamcon
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ARRAKIS_BEAMCON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/opt/racs-venv/bin/beamcon_2D"));
    if !program.exists() {
        println!(
            "beamcon_2D: not found at {} (pip install racs-tools in a venv, then --beamcon PATH)",
            program.display()
        );
        return Ok(0);
    }
    let files: Vec<&PathBuf> = inputs.iter().map(|(p, _)| p).collect();
    // Its own common beam (a dry run), then the same target as arrakis's, timed.
    let dry = Command::new(&program)
        .args(files.iter())
        .args(["-d", "-v"])
        .output()
        .context("running beamcon_2D")?;
    let log =
        String::from_utf8_lossy(&dry.stdout).to_string() + &String::from_utf8_lossy(&dry.stderr);
    let theirs = log
        .lines()
        .rev()
        .find(|l| {
            l.contains("Final beam") || l.contains("common beam") || l.contains("Common beam")
        })
        .unwrap_or("(not found in its log)")
        .trim()
        .to_string();
    let theirs_dir = dir.join("beamcon");
    std::fs::create_dir_all(&theirs_dir)?;
    let t = Instant::now();
    let out = Command::new(&program)
        .args(files.iter())
        .arg("-o")
        .arg(&theirs_dir)
        .args(["-s", "sm", "--ncores"])
        .arg(rayon::current_num_threads().to_string())
        .args(["--executor", "process"])
        .args(["--bmaj", &format!("{}", target.bmaj * 3600.0)])
        .args(["--bmin", &format!("{}", target.bmin * 3600.0)])
        .args(["--bpa", &format!("{}", target.bpa)])
        .output()
        .context("running beamcon_2D")?;
    let t_theirs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(anyhow!(
            "beamcon_2D failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut worst = 0f64;
    let mut peak = 0f64;
    for (p, _) in &inputs {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let a = Image::read(&ours_dir.join(&name))?;
        let b = Image::read(&theirs_dir.join(name.replace(".fits", ".sm.fits")))?;
        for (x, y) in a.data.iter().zip(&b.data) {
            if x.is_finite() && y.is_finite() {
                worst = worst.max((x - y).abs() as f64);
                peak = peak.max(y.abs() as f64);
            }
        }
    }
    println!("beamcon_2D: its common beam: {theirs}");
    println!(
        "beamcon_2D: to the same target, read, smooth, write: {t_theirs:.2} s ({:.0} ms per image; {:.1}x arrakis's time)",
        t_theirs * 1e3 / nchan as f64,
        t_theirs / t_ours
    );
    println!(
        "agreement: largest pixel difference {worst:.3e} Jy/beam ({:.2e} of the peak {peak:.3})",
        worst / peak.max(f64::MIN_POSITIVE)
    );
    Ok(0)
}
