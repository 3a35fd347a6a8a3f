//! The plots of `rmsynth1d -p` and `rmclean1d -p`, as PNG files beside the input (RM-Tools shows
//! them in a window; a cluster node has none): the spectra with the Stokes I model, the RMSF and
//! the dirty FDF, the clean FDF with its components.
//!
//! Must never: write anything but the PNG files it names.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::science::rm_clean::CleanResult;
use crate::science::rm_synthesis::{SynthArrays, SynthSummary};
use crate::stages::rm1d::SpectrumData;
use crate::stages::validate::{fonts, FONT};

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn e<E: std::fmt::Debug>(x: E) -> anyhow::Error {
    anyhow!("plotting failed: {x:?}")
}

fn span(series: &[&[f64]]) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &v in s.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.06).max(1e-12);
    lo - pad..hi + pad
}

/// One panel: lines (label, colour, x, y) over the shared x range.
fn panel(
    area: &Area,
    caption: &str,
    xdesc: &str,
    ydesc: &str,
    lines: &[(&str, RGBColor, &[f64], &[f64])],
    vline: Option<f64>,
) -> Result<()> {
    let xs: Vec<&[f64]> = lines.iter().map(|l| l.2).collect();
    let ys: Vec<&[f64]> = lines.iter().map(|l| l.3).collect();
    let (x, y) = (span(&xs), span(&ys));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(75)
        .build_cartesian_2d(x, y.clone())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(xdesc)
        .y_desc(ydesc)
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    for (label, colour, xv, yv) in lines {
        let c = *colour;
        chart
            .draw_series(LineSeries::new(
                xv.iter()
                    .zip(yv.iter())
                    .filter(|(_, b)| b.is_finite())
                    .map(|(a, b)| (*a, *b)),
                c.stroke_width(2),
            ))
            .map_err(e)?
            .label(*label)
            .legend(move |(px, py)| {
                PathElement::new(vec![(px, py), (px + 18, py)], c.stroke_width(2))
            });
    }
    if let Some(v) = vline {
        chart
            .draw_series(LineSeries::new(
                vec![(v, y.start), (v, y.end)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

const BLUE_: RGBColor = RGBColor(31, 90, 180);
const RED_: RGBColor = RGBColor(200, 40, 40);
const GREY_: RGBColor = RGBColor(60, 60, 60);

/// `_spectra-plots.png` and `_RMSF-dirtyFDF-plots.png`; returns their names.
pub fn synth1d(
    prefix: &str,
    data: &SpectrumData,
    arr: &SynthArrays,
    s: &SynthSummary,
    units: &str,
) -> Result<Vec<String>> {
    fonts().map_err(|x| anyhow!("{x}"))?;
    let ghz: Vec<f64> = data.freq_hz.iter().map(|f| f / 1e9).collect();
    let spectra = format!("{prefix}_spectra-plots.png");
    {
        let root = BitMapBackend::new(&spectra, (1000, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (top, bottom) = root.split_vertically(400);
        match &data.i {
            Some(i) => {
                let model: Vec<f64> = data.freq_hz.iter().map(|&f| arr.model.at(f)).collect();
                panel(
                    &top,
                    "Stokes I and its model",
                    "frequency (GHz)",
                    &format!("flux density ({units})"),
                    &[("I", GREY_, &ghz, i), ("model", RED_, &ghz, &model)],
                    None,
                )?;
            }
            None => {
                let ones = vec![1.0; ghz.len()];
                panel(
                    &top,
                    "no Stokes I: Q and U as given",
                    "frequency (GHz)",
                    "",
                    &[("I = 1", GREY_, &ghz, &ones)],
                    None,
                )?;
            }
        }
        let pi: Vec<f64> = arr.q.iter().zip(&arr.u).map(|(a, b)| a.hypot(*b)).collect();
        panel(
            &bottom,
            "fractional polarisation",
            "frequency (GHz)",
            "fraction",
            &[
                ("q", BLUE_, &ghz, &arr.q),
                ("u", RED_, &ghz, &arr.u),
                ("p", GREY_, &ghz, &pi),
            ],
            None,
        )?;
        root.present().map_err(e)?;
    }
    let fdf = format!("{prefix}_RMSF-dirtyFDF-plots.png");
    {
        let root = BitMapBackend::new(&fdf, (1000, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (top, bottom) = root.split_vertically(400);
        let rabs: Vec<f64> = arr
            .rmsf_re
            .iter()
            .zip(&arr.rmsf_im)
            .map(|(a, b)| a.hypot(*b))
            .collect();
        panel(
            &top,
            &format!("RMSF (FWHM {:.4} rad/m²)", s.fwhmRMSF),
            "φ (rad/m²)",
            "RMSF",
            &[
                ("|R|", GREY_, &arr.axes.phi2, &rabs),
                ("real", BLUE_, &arr.axes.phi2, &arr.rmsf_re),
                ("imag", RED_, &arr.axes.phi2, &arr.rmsf_im),
            ],
            None,
        )?;
        let fabs: Vec<f64> = arr
            .fdf_re
            .iter()
            .zip(&arr.fdf_im)
            .map(|(a, b)| a.hypot(*b))
            .collect();
        panel(
            &bottom,
            &format!("dirty FDF (peak at {:.4} rad/m²)", s.peak.phiPeakPIfit_rm2),
            "φ (rad/m²)",
            &format!("flux density ({units}/RMSF)"),
            &[
                ("|F|", GREY_, &arr.axes.phi, &fabs),
                ("real", BLUE_, &arr.axes.phi, &arr.fdf_re),
                ("imag", RED_, &arr.axes.phi, &arr.fdf_im),
            ],
            Some(s.peak.phiPeakPIfit_rm2),
        )?;
        root.present().map_err(e)?;
    }
    Ok(vec![spectra, fdf])
}

/// `_cleanFDF-plots.png`; returns its name.
pub fn clean1d(
    prefix: &str,
    fdf: &[Vec<f64>],
    r: &CleanResult,
    cutoff: f64,
    units: &str,
) -> Result<String> {
    fonts().map_err(|x| anyhow!("{x}"))?;
    let name = format!("{prefix}_cleanFDF-plots.png");
    {
        let root = BitMapBackend::new(&name, (1000, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let abs = |a: &[f64], b: &[f64]| -> Vec<f64> {
            a.iter().zip(b).map(|(x, y)| x.hypot(*y)).collect()
        };
        let dirty = abs(&fdf[1], &fdf[2]);
        let clean = abs(&r.clean_re, &r.clean_im);
        let cc = abs(&r.cc_re, &r.cc_im);
        let resid = abs(&r.resid_re, &r.resid_im);
        let cut = vec![cutoff; fdf[0].len()];
        panel(
            &root,
            &format!("RM-CLEAN ({} iterations)", r.n_iter),
            "φ (rad/m²)",
            &format!("flux density ({units}/RMSF)"),
            &[
                ("dirty", RGBColor(170, 170, 170), &fdf[0], &dirty),
                ("clean", BLUE_, &fdf[0], &clean),
                ("components", RED_, &fdf[0], &cc),
                ("residual", GREY_, &fdf[0], &resid),
                ("cutoff", RGBColor(0, 150, 80), &fdf[0], &cut),
            ],
            None,
        )?;
        root.present().map_err(e)?;
    }
    Ok(name)
}
