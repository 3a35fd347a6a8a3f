//! `validate` (per field): plots of the catalogue a person can judge at a glance, and an HTML
//! page that shows them all. RM on the sky (colour and size), the fractional polarisation
//! distribution, RM against Galactic latitude, the polarised SNR distribution, residual leakage
//! (fractional Q and U of bright sources against distance from the nearest beam centre), and
//! for simulated fields (`truth.csv`) recovered against injected RM and fraction.
//!
//! Decision (Arrakis quirk, fixed): Arrakis wraps each plot in try/except and silently skips it;
//! here every plot is always written, with a note in the panel when there is nothing to show.
//! Must never: read anything but its declared inputs; fonts come from the binary (DejaVu Sans).

use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;

use super::io::{out_path, single, write_text};
use super::params::{LEAKAGE_BINS, LEAKAGE_SNR, SNR_CUT};
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};
use crate::units::FieldFile;

static CONTRACT: Contract = Contract {
    name: "validate",
    version: 2,
    params: &[&SNR_CUT, &LEAKAGE_SNR, &LEAKAGE_BINS],
    inputs: &[
        SlotSpec::required("catalogue", "the field's catalogue (CSV)"),
        SlotSpec::optional(
            "field_file",
            "field.yaml (beam centres, for the leakage plot)",
        ),
        SlotSpec::optional("truth", "truth.csv of a simulated field"),
    ],
    outputs: &[
        "rm_sky",
        "fracpol",
        "rm_glat",
        "snr",
        "leakage",
        "truth_rm",
        "truth_fracpol",
        "index",
    ],
    open: false,
};

const SIZE: (u32, u32) = (900, 680);

/// The leakage plot's sources: below this fractional polarisation (or not detected) a bright
/// source's Q and U measure the instrument, not the sky.
const LOW_POL: f64 = 0.01;
pub(crate) const FONT: &str = "sans-serif";

/// DejaVu Sans, registered once for every plot.
pub(crate) fn fonts() -> Result<(), StageError> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(StageError::data(
            "the bundled DejaVu Sans font could not be loaded",
        ))
    }
}

/// The catalogue columns the plots use.
#[derive(Clone, Debug, Default)]
struct Row {
    cat_id: String,
    ra: f64,
    dec: f64,
    rm: f64,
    rm_err: f64,
    polint: f64,
    snr: f64,
    stokes_i: f64,
    stokes_i_err: f64,
    fracpol: f64,
    fracpol_err: f64,
    polangle: f64,
    flagged: bool,
}

/// Column `name` of a file arrakis itself wrote (catalogue, truth.csv), read with the stages'
/// shared CSV reader.
fn column(t: &crate::units::Table, name: &str) -> Result<usize, StageError> {
    t.headers.iter().position(|h| h == name).ok_or_else(|| {
        StageError::file(
            &t.path,
            None,
            format!(
                "no column '{name}'; this file is written by arrakis: rebuild it (`arrakis build`)"
            ),
        )
    })
}

/// A number, or NaN where the catalogue leaves the cell empty (a component that could not be
/// measured).
fn cell(row: &[String], i: usize) -> f64 {
    row.get(i).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn read_catalogue(path: &Path) -> Result<Vec<Row>, StageError> {
    let t = crate::units::Table::read(path)?;
    let col = |n: &str| column(&t, n);
    let idx: HashMap<&str, usize> = [
        "cat_id",
        "ra",
        "dec",
        "rm",
        "rm_err",
        "polint",
        "snr_polint",
        "stokesI",
        "stokesI_err",
        "fracpol",
        "fracpol_err",
        "polangle",
    ]
    .iter()
    .chain(super::catalogue::DETECTION_FLAGS)
    .map(|&n| col(n).map(|i| (n, i)))
    .collect::<Result<_, _>>()?;
    Ok(t.rows
        .iter()
        .map(|(_, rec)| {
            let f = |n: &str| cell(rec, idx[n]);
            let flag = |n: &str| {
                rec.get(idx[n])
                    .is_some_and(|v| v == "true" || v == "True" || v == "1")
            };
            Row {
                cat_id: rec.get(idx["cat_id"]).cloned().unwrap_or_default(),
                ra: f("ra"),
                dec: f("dec"),
                rm: f("rm"),
                rm_err: f("rm_err"),
                polint: f("polint"),
                snr: f("snr_polint"),
                stokes_i: f("stokesI"),
                stokes_i_err: f("stokesI_err"),
                fracpol: f("fracpol"),
                fracpol_err: f("fracpol_err"),
                polangle: f("polangle"),
                flagged: super::catalogue::DETECTION_FLAGS.iter().any(|n| flag(n)),
            }
        })
        .collect())
}

type Draw<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn err<E: std::fmt::Debug>(e: E) -> StageError {
    StageError::data(format!("plotting failed: {e:?}"))
}

/// Padded (min, max) of finite values, never empty.
fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// A panel with a message instead of data (the plot still exists and says why it is empty).
fn note(root: &Draw, title: &str, text: &str) -> Result<(), StageError> {
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(
        title.to_string(),
        (30, 30),
        (FONT, 30).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        text.to_string(),
        (30, 320),
        (FONT, 22).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(err)?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A white panel with a caption, axes over `x` × `y` and their labels.
fn axes<'a, 'b>(
    root: &'a Draw<'b>,
    caption: String,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    desc: (&str, &str),
) -> Result<Chart<'a, 'b>, StageError> {
    axes_with(root, caption, x, y, desc, false)
}

/// [`axes`], with `counts`: the y axis is labelled at whole numbers only (histograms).
fn axes_with<'a, 'b>(
    root: &'a Draw<'b>,
    caption: String,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    desc: (&str, &str),
    counts: bool,
) -> Result<Chart<'a, 'b>, StageError> {
    root.fill(&WHITE).map_err(err)?;
    let top = y.end;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 21))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    let whole = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(desc.0).y_desc(desc.1).label_style((FONT, 15));
    if counts {
        // One label per whole count when few, else about ten (plotters picks round values).
        let n = (top.floor() as usize + 1).clamp(2, 11);
        mesh.y_labels(n).y_label_formatter(&whole);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

/// The legend box, in the style every panel shares.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), StageError> {
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Blue for negative, red for positive RM, stronger with |RM| up to `scale`.
fn rm_colour(rm: f64, scale: f64) -> RGBColor {
    let t = (rm.abs() / scale).clamp(0.0, 1.0);
    let fade = |full: u8| (255.0 - t * (255.0 - full as f64)) as u8;
    if rm >= 0.0 {
        RGBColor(fade(200), fade(20), fade(30))
    } else {
        RGBColor(fade(20), fade(60), fade(200))
    }
}

fn rm_sky(root: &Draw, good: &[&Row], field: &str) -> Result<(), StageError> {
    if good.is_empty() {
        return note(
            root,
            "RM on the sky",
            "no polarised detections above the SNR cut",
        );
    }
    root.fill(&WHITE).map_err(err)?;
    // The data on the left, the colour bar and the size key on the right, outside the data.
    let (plot, key) = root.split_horizontally(SIZE.0 - 190);
    // East to the left; RA offsets scaled by cos(Dec) so that the sky is not stretched.
    let ra0 = {
        let (s, c) = good.iter().fold((0.0, 0.0), |(s, c), r| {
            (s + r.ra.to_radians().sin(), c + r.ra.to_radians().cos())
        });
        f64::atan2(s, c).to_degrees().rem_euclid(360.0)
    };
    let dec0 = good.iter().map(|r| r.dec).sum::<f64>() / good.len() as f64;
    let cosd = dec0.to_radians().cos().max(1e-6);
    let x_of = |r: &Row| ((r.ra - ra0 + 540.0).rem_euclid(360.0) - 180.0) * cosd;
    let (x0, x1) = range(good.iter().map(|r| x_of(r)));
    let (d0, d1) = range(good.iter().map(|r| r.dec));
    // Equal scales on both axes: widen the narrower range.
    let (w, h) = (
        (plot.dim_in_pixel().0 - 85) as f64,
        (plot.dim_in_pixel().1 - 90) as f64,
    );
    let per_px = ((x1 - x0) / w).max((d1 - d0) / h);
    let (xc, dc) = ((x0 + x1) / 2.0, (d0 + d1) / 2.0);
    let (x0, x1) = (xc - per_px * w / 2.0, xc + per_px * w / 2.0);
    let (d0, d1) = (dc - per_px * h / 2.0, dc + per_px * h / 2.0);
    let scale = good.iter().map(|r| r.rm.abs()).fold(1.0, f64::max);
    let pmax = good.iter().map(|r| r.polint).fold(0.0, f64::max);
    let size = |p: f64| (3.0 + 17.0 * (p / pmax).max(0.0).sqrt()) as i32;
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            format!(
                "{field}: RM on the sky ({} polarised detections)",
                good.len()
            ),
            (FONT, 21),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x1..x0, d0..d1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("(RA − {ra0:.2}°) cos δ (deg)"))
        .y_desc("Dec (deg)")
        .label_style((FONT, 15))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(good.iter().map(|r| {
            Circle::new(
                (x_of(r), r.dec),
                size(r.polint),
                rm_colour(r.rm, scale).filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(
            good.iter()
                .map(|r| Circle::new((x_of(r), r.dec), size(r.polint), BLACK.stroke_width(1))),
        )
        .map_err(err)?;
    // Colour bar: RM from -|RM|max (bottom) to +|RM|max (top).
    let (bx, by, bh) = (20, 70, 300);
    key.draw(&Text::new(
        "RM (rad/m²)",
        (bx - 5, by - 30),
        (FONT, 16).into_font(),
    ))
    .map_err(err)?;
    for k in 0..bh {
        let rm = scale * (1.0 - 2.0 * k as f64 / (bh - 1) as f64);
        key.draw(&Rectangle::new(
            [(bx, by + k), (bx + 22, by + k + 1)],
            rm_colour(rm, scale).filled(),
        ))
        .map_err(err)?;
    }
    key.draw(&Rectangle::new(
        [(bx, by), (bx + 22, by + bh)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    for f in [1.0, 0.5, 0.0, -0.5, -1.0] {
        let y = by + ((1.0 - f) / 2.0 * (bh - 1) as f64) as i32;
        key.draw(&Text::new(
            format!("{:+.0}", f * scale),
            (bx + 30, y - 8),
            (FONT, 15).into_font(),
        ))
        .map_err(err)?;
    }
    // Size key: the polarised intensity three marker sizes stand for.
    let (sx, mut sy) = (bx + 12, by + bh + 70);
    key.draw(&Text::new(
        "polarised intensity",
        (bx - 5, sy - 40),
        (FONT, 16).into_font(),
    ))
    .map_err(err)?;
    for f in [1.0, 0.25, 1.0 / 16.0] {
        let p = pmax * f;
        let r = size(p);
        key.draw(&Circle::new((sx, sy), r, BLACK.stroke_width(1)))
            .map_err(err)?;
        key.draw(&Text::new(
            format!("{} mJy/beam", crate::pyfmt::g(p * 1e3, 3)),
            (sx + 28, sy - 8),
            (FONT, 15).into_font(),
        ))
        .map_err(err)?;
        sy += 2 * r + 14;
    }
    Ok(())
}

/// Histogram of `values` in `bins` equal bins over their range, with an optional marked value.
fn histogram(
    root: &Draw,
    values: &[f64],
    bins: usize,
    title: &str,
    xdesc: &str,
    colour: RGBColor,
    marker: Option<(f64, &str)>,
) -> Result<(), StageError> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return note(root, title, "no values to show");
    }
    let (lo, hi) = range(v.iter().copied());
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u32; bins];
    for x in &v {
        let b = (((x - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let top = (*counts.iter().max().unwrap_or(&1) as f64 * 1.15 + 1.0).ceil();
    let mut chart = axes_with(
        root,
        format!("{title} ({} components)", v.len()),
        lo..hi,
        0.0..top,
        (xdesc, "components"),
        true,
    )?;
    let bar = |b: usize, c: u32| {
        let x0 = lo + b as f64 * width;
        [(x0, 0.0), (x0 + width, c as f64)]
    };
    chart
        .draw_series(
            counts
                .iter()
                .enumerate()
                .map(|(b, &c)| Rectangle::new(bar(b, c), colour.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(
            counts
                .iter()
                .enumerate()
                .map(|(b, &c)| Rectangle::new(bar(b, c), BLACK.stroke_width(1))),
        )
        .map_err(err)?;
    if let Some((x, label)) = marker.filter(|(x, _)| *x > lo && *x < hi) {
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, top)], red.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(px, py)| {
                PathElement::new([(px - 8, py), (px + 8, py)], red.stroke_width(2))
            });
        legend(&mut chart)?;
    }
    Ok(())
}

/// y against x with vertical error bars, and optionally the line y = x.
fn scatter(
    root: &Draw,
    pts: &[(f64, f64, f64)],
    title: &str,
    desc: (&str, &str),
    identity: bool,
    colour: RGBColor,
) -> Result<(), StageError> {
    let pts: Vec<(f64, f64, f64)> = pts
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return note(root, title, "nothing to show");
    }
    let (mut x0, mut x1) = range(pts.iter().map(|p| p.0));
    let (mut y0, mut y1) = range(
        pts.iter()
            .flat_map(|p| [p.1 - p.2.max(0.0), p.1 + p.2.max(0.0)]),
    );
    if identity {
        (x0, x1) = (x0.min(y0), x1.max(y1));
        (y0, y1) = (x0, x1);
    }
    let mut chart = axes(
        root,
        format!("{title} ({} components)", pts.len()),
        x0..x1,
        y0..y1,
        desc,
    )?;
    if identity {
        chart
            .draw_series(LineSeries::new(
                [(x0, x0), (x1, x1)],
                BLACK.mix(0.5).stroke_width(2),
            ))
            .map_err(err)?;
    }
    chart
        .draw_series(
            pts.iter()
                .filter(|p| p.2.is_finite() && p.2 > 0.0)
                .map(|p| {
                    PathElement::new(
                        [(p.0, p.1 - p.2), (p.0, p.1 + p.2)],
                        colour.mix(0.6).stroke_width(1),
                    )
                }),
        )
        .map_err(err)?;
    chart
        .draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 4, colour.filled())),
        )
        .map_err(err)?;
    Ok(())
}

/// Fractional Q and U of bright sources against distance from the nearest beam centre, with the
/// median in `bins` distance bins.
fn leakage(root: &Draw, pts: &[(f64, f64, f64)], bins: usize) -> Result<(), StageError> {
    let title = "Residual leakage: Q/I, U/I of bright unpolarised sources";
    if pts.is_empty() {
        return note(
            root,
            title,
            "no bright (leakage_snr) source of low polarisation (< 1 % or not detected), or no beam centres in field.yaml",
        );
    }
    let (x0, x1) = range(pts.iter().map(|p| p.0));
    let (y0, y1) = range(pts.iter().flat_map(|p| [p.1, p.2]));
    let mut chart = axes(
        root,
        format!("{title} ({} sources)", pts.len()),
        x0..x1,
        y0..y1,
        (
            "distance from the nearest beam centre (deg)",
            "Q/I, U/I at the FDF peak",
        ),
    )?;
    let (qc, uc) = (RGBColor(30, 90, 200), RGBColor(210, 60, 30));
    chart
        .draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 4, qc.mix(0.7).filled())),
        )
        .map_err(err)?
        .label("q = Q/I")
        .legend(move |(x, y)| Circle::new((x, y), 5, qc.filled()));
    chart
        .draw_series(
            pts.iter()
                .map(|p| TriangleMarker::new((p.0, p.2), 5, uc.mix(0.7).filled())),
        )
        .map_err(err)?
        .label("u = U/I")
        .legend(move |(x, y)| TriangleMarker::new((x, y), 5, uc.filled()));
    // Binned medians (at least five sources per bin on average).
    let bins = bins.min(pts.len() / 5).max(1);
    let width = (x1 - x0) / bins as f64;
    for (k, colour) in [(1usize, qc), (2, uc)] {
        let mut line = Vec::new();
        for b in 0..bins {
            let (lo, hi) = (x0 + b as f64 * width, x0 + (b + 1) as f64 * width);
            let v: Vec<f64> = pts
                .iter()
                .filter(|p| p.0 >= lo && p.0 < hi)
                .map(|p| if k == 1 { p.1 } else { p.2 })
                .collect();
            let m = crate::science::stats::nanmedian(&v);
            if m.is_finite() {
                line.push(((lo + hi) / 2.0, m));
            }
        }
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(3)))
            .map_err(err)?;
    }
    legend(&mut chart)?;
    Ok(())
}

fn png(
    ctx: &ActionCtx,
    name: &str,
    draw: impl FnOnce(&Draw) -> Result<(), StageError>,
) -> Result<(), StageError> {
    let path = out_path(ctx, name)?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(&root)?;
    root.present().map_err(err)
}

fn truth_rows(
    path: Option<&std::path::PathBuf>,
) -> Result<HashMap<String, (f64, f64)>, StageError> {
    let Some(path) = path else {
        return Ok(HashMap::new());
    };
    let t = crate::units::Table::read(path)?;
    let (ci, cr, cp) = (
        column(&t, "cat_id")?,
        column(&t, "rm")?,
        column(&t, "fracpol")?,
    );
    Ok(t.rows
        .iter()
        .map(|(_, rec)| {
            let id = rec.get(ci).cloned().unwrap_or_default();
            (id, (cell(rec, cr), cell(rec, cp)))
        })
        .collect())
}

/// The catalogue files (links relative to `validation/`), the arrakis that made the page and
/// the parameters the plots used.
fn provenance_html(
    ctx: &ActionCtx,
    snr_cut: f64,
    leak_snr: f64,
    bins: usize,
) -> Result<String, StageError> {
    let csv = single(ctx, "catalogue")?;
    let stem = csv
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".csv").to_string())
        .unwrap_or_default();
    let links: Vec<String> = [
        ("csv", "CSV"),
        ("fits", "FITS (RMTable)"),
        ("xml", "VOTable"),
    ]
    .iter()
    .map(|(ext, what)| format!("<a href=\"../{stem}.{ext}\">{stem}.{ext}</a> ({what})"))
    .collect();
    Ok(format!(
        "<h2>Catalogue</h2>\n<p>{}</p>\n<h2>Made by</h2>\n<p>arrakis {} (validate stage version {}); snr_cut = {snr_cut}, leakage_snr = {leak_snr}, leakage_bins = {bins}. The catalogue files' headers carry the catalogue stage's parameters and their digest.</p>\n",
        links.join(" · "),
        crate::cli::VERSION,
        CONTRACT.version
    ))
}

/// `validate` (per field).
pub struct Validate;

impl Builtin for Validate {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        fonts()?;
        let field = ctx.unit_var("field")?.to_string();
        let rows = read_catalogue(single(ctx, "catalogue")?)?;
        let (snr_cut, leak_snr) = (ctx.f64(&SNR_CUT)?, ctx.f64(&LEAKAGE_SNR)?);
        // Declared in [1, inf).
        let bins = ctx.i64(&LEAKAGE_BINS)? as usize;
        let good: Vec<&Row> = rows
            .iter()
            .filter(|r| !r.flagged && r.snr >= snr_cut && r.rm.is_finite())
            .collect();
        let beams: Vec<(f64, f64)> = match ctx.input("field_file").first() {
            Some(path) => {
                let ff = FieldFile::read(path).map_err(|e| StageError::data(e.to_string()))?;
                ff.beams.iter().map(|b| (b.ra_deg, b.dec_deg)).collect()
            }
            None => Vec::new(),
        };
        let truth = truth_rows(ctx.input("truth").first())?;

        // The plots drawn side by side on the pool (each is its own file, the same bytes
        // whichever thread draws it): a validate action is its field's last, alone on the
        // machine.
        type Plot<'p> = Box<dyn FnOnce(&Draw) -> Result<(), StageError> + Send + 'p>;
        let (good, rows, beams, truth, field) = (&good, &rows, &beams, &truth, &field);
        let mut plots: Vec<(&str, Plot)> =
            vec![("rm_sky", Box::new(move |r: &Draw| rm_sky(r, good, field)))];
        plots.push((
            "fracpol",
            Box::new(move |r: &Draw| {
                let v: Vec<f64> = good.iter().map(|x| x.fracpol).collect();
                histogram(
                    r,
                    &v,
                    20,
                    "Fractional polarisation of detections",
                    "p = PI / I",
                    RGBColor(60, 120, 180),
                    None,
                )
            }),
        ));
        plots.push((
            "rm_glat",
            Box::new(move |r: &Draw| {
                let pts: Vec<(f64, f64, f64)> = good
                    .iter()
                    .map(|x| (crate::science::sky::galactic(x.ra, x.dec).1, x.rm, x.rm_err))
                    .collect();
                scatter(
                    r,
                    &pts,
                    "RM against Galactic latitude",
                    ("Galactic latitude b (deg)", "RM (rad/m²)"),
                    false,
                    RGBColor(120, 40, 160),
                )
            }),
        ));
        plots.push((
            "snr",
            Box::new(move |r: &Draw| {
                let v: Vec<f64> = rows
                    .iter()
                    .filter(|x| x.snr > 0.0)
                    .map(|x| x.snr.log10())
                    .collect();
                let cut = format!("snr_cut = {snr_cut}");
                histogram(
                    r,
                    &v,
                    25,
                    "Polarised signal-to-noise, all components",
                    "log10(PI / σ)",
                    RGBColor(70, 150, 90),
                    Some((snr_cut.log10(), &cut)),
                )
            }),
        ));
        plots.push((
            "leakage",
            Box::new(move |r: &Draw| {
                let pts: Vec<(f64, f64, f64)> = if beams.is_empty() {
                    Vec::new()
                } else {
                    // Bright in Stokes I and not polarised in their own right: what is left in Q and
                    // U is leakage (a polarised source would hide it).
                    rows.iter()
                        .filter(|x| {
                            x.stokes_i / x.stokes_i_err > leak_snr
                                && x.polint.is_finite()
                                && (x.snr < snr_cut || x.fracpol < LOW_POL)
                        })
                        .map(|x| {
                            let d = beams
                                .iter()
                                .map(|&(ra, dec)| crate::wcs::separation_deg(ra, dec, x.ra, x.dec))
                                .fold(f64::INFINITY, f64::min);
                            let two_chi = 2.0 * x.polangle.to_radians();
                            let f = x.polint / x.stokes_i;
                            (d, f * two_chi.cos(), f * two_chi.sin())
                        })
                        .collect()
                };
                leakage(r, &pts, bins)
            }),
        ));
        for (name, title, xdesc, ydesc, colour, rm) in [
            (
                "truth_rm",
                "Recovered against injected RM",
                "injected RM (rad/m²)",
                "recovered RM (rad/m²)",
                RGBColor(200, 70, 40),
                true,
            ),
            (
                "truth_fracpol",
                "Recovered against injected fractional polarisation",
                "injected p",
                "recovered p",
                RGBColor(40, 120, 170),
                false,
            ),
        ] {
            plots.push((
                name,
                Box::new(move |r: &Draw| {
                    if truth.is_empty() {
                        return note(r, title, "no truth.csv: not a simulated field");
                    }
                    let pts: Vec<(f64, f64, f64)> = good
                        .iter()
                        .filter_map(|x| {
                            let &(t_rm, t_p) = truth.get(&x.cat_id)?;
                            Some(if rm {
                                (t_rm, x.rm, x.rm_err)
                            } else {
                                (t_p, x.fracpol, x.fracpol_err)
                            })
                        })
                        .collect();
                    scatter(r, &pts, title, (xdesc, ydesc), true, colour)
                }),
            ));
        }
        plots
            .into_par_iter()
            .try_for_each(|(name, draw)| png(ctx, name, draw))?;

        let detected = good.len();
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{field}: arrakis validation</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:1900px}} figure{{display:inline-block;margin:0.6em;vertical-align:top}} img{{width:880px;border:1px solid #ccc}} figcaption{{max-width:880px;color:#444}}</style></head><body>\n<h1>{field}: validation</h1>\n<p>{} components in the catalogue, {detected} polarised detections (snr_polint ≥ {snr_cut} and none of snr_flag, stokesI_fit_flag, channel_flag, leakage_flag, rmsynth_failed).</p>\n",
            rows.len()
        );
        for (name, caption) in [
            ("rm_sky", "RM of each detection on the sky (RA offsets scaled by cos δ, equal scales): colour gives the RM (colour bar), marker size the polarised intensity (key)."),
            ("fracpol", "Distribution of fractional polarisation of the detections."),
            ("rm_glat", "RM against Galactic latitude, with 1σ errors."),
            ("snr", "Polarised signal-to-noise of every component (log scale)."),
            ("leakage", "Residual instrumental leakage: Q/I and U/I at the FDF peak of sources bright in Stokes I (SNR above leakage_snr) and not polarised in their own right (no detection, or p below 1 %), against distance from the nearest beam centre; lines are binned medians."),
            ("truth_rm", "Simulated fields: recovered RM against the injected RM; the line is equality."),
            ("truth_fracpol", "Simulated fields: recovered fractional polarisation against the injected one."),
        ] {
            let final_name = crate::atomic::final_name_of(out_path(ctx, name)?)
                .unwrap_or_else(|| format!("{name}.png"));
            html.push_str(&format!(
                "<figure><a href=\"{final_name}\"><img src=\"{final_name}\" alt=\"{name}\"></a><figcaption>{caption}</figcaption></figure>\n"
            ));
        }
        html.push_str(&provenance_html(ctx, snr_cut, leak_snr, bins)?);
        html.push_str("</body></html>\n");
        write_text(out_path(ctx, "index")?, &html)
    }
}
