//! `catalogue` (per field): the final polarisation catalogue as Arrakis's `makecat` writes it,
//! one row per component, every column and flag (`columns.rs` lists them with units, UCDs and
//! descriptions), as CSV, an RMTable FITS binary table and a VOTable.
//!
//! Sources of the values: the component catalogue (the source finder's columns), rmsynth's and
//! rmclean's summaries, `field.yaml` (tile centre, polarisation axis, SBID, scan) and the flags
//! computed over the whole catalogue (`science::flags`). Formulas:
//! `../shared/science/catalogue.md`.
//!
//! Must never: write a value in a unit other than its column's, or let a component rmsynth could
//! not measure take another row's values (its measured columns are blank).

mod columns;
mod write;
pub(crate) use write::xml_escape;

use std::collections::HashMap;
use std::path::Path;

pub use columns::{markdown as columns_markdown, spec, ColumnSpec, Kind, ARRAKIS_COLUMNS, COLUMNS};

use super::io::{out_path, single};
use super::params::{LEAKAGE_BINS, LEAKAGE_DEGREE, LEAKAGE_SNR, SKIP_FRION, SNR_CUT};
use super::products::{CleanProduct, Summary, SynthProduct};
use super::{ActionCtx, Builtin, StageError};
use crate::field_file::FieldFile;
use crate::rules::{Contract, SlotSpec};
use crate::science::flags;
use crate::science::rm_clean::CleanSummary;
use crate::science::sigma_add::combine_sigma_add;
use crate::science::sky::galactic;
use rayon::prelude::*;

static CONTRACT: Contract = Contract {
    name: "catalogue",
    version: 2,
    params: &[
        &SNR_CUT,
        &LEAKAGE_SNR,
        &LEAKAGE_BINS,
        &LEAKAGE_DEGREE,
        &SKIP_FRION,
    ],
    inputs: &[
        SlotSpec::required("synth", "every component's rmsynth summary"),
        SlotSpec::required("clean", "every component's rmclean summary"),
        SlotSpec::required(
            "components",
            "the component catalogue (the source finder's columns)",
        ),
        SlotSpec::required(
            "field_file",
            "field.yaml (tile centre, polarisation axis, SBID, scan)",
        ),
    ],
    outputs: &["csv", "fits", "xml"],
    open: false,
};

/// The values of one column, one per row.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Numbers (also written as float32 or int32 where the column's kind says so).
    F64(Vec<f64>),
    /// Integers.
    I64(Vec<i64>),
    /// Flags.
    Bool(Vec<bool>),
    /// Text.
    Str(Vec<String>),
}

impl Values {
    /// The cell of row `r` as CSV text (empty where a number is not finite).
    pub fn text(&self, r: usize) -> String {
        match self {
            Values::F64(v) if v[r].is_finite() => v[r].to_string(),
            Values::F64(_) => String::new(),
            Values::I64(v) => v[r].to_string(),
            Values::Bool(v) => v[r].to_string(),
            Values::Str(v) => v[r].clone(),
        }
    }
}

/// The catalogue in column order, with what the headers carry.
pub struct Table {
    /// Columns in `COLUMNS` order.
    pub columns: Vec<(&'static ColumnSpec, Values)>,
    /// Rows.
    pub rows: usize,
    /// Provenance: (key, value, comment) for the FITS header and the VOTable's INFO.
    pub provenance: Vec<(String, String, String)>,
    /// `catalog_name`.
    pub name: String,
}

/// The component catalogue's rows by `Gaussian_ID`, with the source finder's columns read by
/// name (a column the file lacks reads as blank).
struct SourceFinder {
    table: crate::units::Table,
    by_id: HashMap<String, usize>,
}

impl SourceFinder {
    fn read(path: &Path) -> Result<SourceFinder, StageError> {
        let table = crate::units::Table::read(path)?;
        let id = table.col("Gaussian_ID")?;
        let by_id = table
            .rows
            .iter()
            .enumerate()
            .map(|(i, (_, row))| (row.get(id).cloned().unwrap_or_default(), i))
            .collect();
        Ok(SourceFinder { table, by_id })
    }

    fn cell(&self, id: &str, col: &str) -> Option<(usize, &str)> {
        let r = *self.by_id.get(id)?;
        let c = self.table.headers.iter().position(|h| h == col)?;
        let (line, row) = &self.table.rows[r];
        Some((*line, row.get(c).map(|s| s.as_str()).unwrap_or("")))
    }

    /// A number (NaN where the column is absent or the cell empty); text that is not a number
    /// is an error naming the file, line and column.
    fn num(&self, id: &str, col: &str) -> Result<f64, StageError> {
        let Some((line, v)) = self.cell(id, col) else {
            return Ok(f64::NAN);
        };
        if v.is_empty() || v.eq_ignore_ascii_case("nan") || v == "--" {
            return Ok(f64::NAN);
        }
        v.parse().map_err(|_| {
            StageError::file(
                &self.table.path,
                Some(line),
                format!("column '{col}' holds '{v}', which is not a number"),
            )
        })
    }

    fn text(&self, id: &str, col: &str) -> String {
        self.cell(id, col)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }
}

/// `catalogue`: the final catalogue.
pub struct Catalogue;

impl Builtin for Catalogue {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let finder = SourceFinder::read(single(ctx, "components")?)?;
        let field = FieldFile::read(single(ctx, "field_file")?)?;
        let synth: HashMap<String, SynthProduct<Summary>> =
            read_all(ctx.input("synth"), SynthProduct::read_summary)?
                .into_iter()
                .map(|v| (v.cat_id.clone(), v))
                .collect();
        let clean: HashMap<String, CleanSummary> =
            read_all(ctx.input("clean"), CleanProduct::read)?
                .into_iter()
                .filter_map(|v| Some((v.cat_id, v.clean?)))
                .collect();
        // Rows: the components of the catalogue file that rmsynth wrote a summary for, in file
        // order.
        let id_col = finder.table.col("Gaussian_ID")?;
        let ids: Vec<String> = finder
            .table
            .rows
            .iter()
            .map(|(_, r)| r.get(id_col).cloned().unwrap_or_default())
            .filter(|id| synth.contains_key(id))
            .collect();
        let csv_path = out_path(ctx, "csv")?;
        // The output's final name (the engine hands the action a temporary path beside it).
        let final_name = crate::atomic::final_name_of(csv_path).unwrap_or_else(|| {
            csv_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let name = final_name.trim_end_matches(".csv").to_string();
        let opts = Options {
            snr_cut: ctx.f64(&SNR_CUT)?,
            leakage_snr: ctx.f64(&LEAKAGE_SNR)?,
            leakage_bins: ctx.i64(&LEAKAGE_BINS)? as usize,
            leakage_degree: ctx.i64(&LEAKAGE_DEGREE)? as usize,
            ionosphere: !ctx.bool(&SKIP_FRION)?,
        };
        let mut table = build(&ids, &synth, &clean, &finder, &field, &opts, &name)?;
        table.provenance = provenance(ctx, &field.field);
        write::csv(csv_path, &table)?;
        write::votable(out_path(ctx, "xml")?, &table)?;
        // Last: the table's columns move into the FITS file's, not copied.
        write::fits(out_path(ctx, "fits")?, table)?;
        Ok(())
    }
}

/// `read` of every file, parsed on every core (most of the catalogue's reading), in input order:
/// the first bad file is the one reported.
fn read_all<T: Send, E: Send>(
    paths: &[std::path::PathBuf],
    read: impl Fn(&Path) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    use rayon::prelude::*;
    let read: Vec<Result<T, E>> = paths.par_iter().map(|p| read(p)).collect();
    read.into_iter().collect()
}

/// The catalogue's settings.
struct Options {
    snr_cut: f64,
    leakage_snr: f64,
    leakage_bins: usize,
    leakage_degree: usize,
    ionosphere: bool,
}

/// arrakis's version, the digest of the catalogue's parameters, and the date (UTC; the day of
/// `SOURCE_DATE_EPOCH` when that is set, for reproducible builds).
fn provenance(ctx: &ActionCtx, field: &str) -> Vec<(String, String, String)> {
    let mut h = blake3::Hasher::new();
    let mut params = Vec::new();
    for (k, v) in ctx.params {
        let text = v.display();
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(&v.canonical());
        h.update(b"\n");
        params.push(format!("{k}={text}"));
    }
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    vec![
        (
            "ORIGIN".into(),
            "arrakis".into(),
            "software that made the catalogue".into(),
        ),
        (
            "ARRAKISV".into(),
            env!("CARGO_PKG_VERSION").into(),
            "arrakis version".into(),
        ),
        ("FIELD".into(), field.into(), "field".into()),
        (
            "PARAMDIG".into(),
            h.finalize().to_hex()[..16].to_string(),
            "BLAKE3 of the catalogue's parameters".into(),
        ),
        (
            "PARAMS".into(),
            params.join(" "),
            "the catalogue's parameters".into(),
        ),
        (
            "DATE".into(),
            utc_date(secs),
            "UTC date the catalogue was made".into(),
        ),
    ]
}

/// YYYY-MM-DD of a Unix time (civil-from-days, proleptic Gregorian).
fn utc_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Columns collected by name, assembled in `COLUMNS` order.
#[derive(Default)]
struct Builder {
    cols: HashMap<&'static str, Values>,
}

impl Builder {
    fn put(&mut self, name: &'static str, v: Values) {
        self.cols.insert(name, v);
    }
    fn f(&mut self, name: &'static str, v: Vec<f64>) {
        self.put(name, Values::F64(v));
    }
    fn b(&mut self, name: &'static str, v: Vec<bool>) {
        self.put(name, Values::Bool(v));
    }
    fn s(&mut self, name: &'static str, v: Vec<String>) {
        self.put(name, Values::Str(v));
    }
    fn i(&mut self, name: &'static str, v: Vec<i64>) {
        self.put(name, Values::I64(v));
    }
    fn finish(mut self, rows: usize, name: String) -> Result<Table, StageError> {
        let mut columns = Vec::with_capacity(COLUMNS.len());
        for spec in COLUMNS {
            let v = self.cols.remove(spec.name).ok_or_else(|| {
                StageError::data(format!("catalogue column {} was not computed", spec.name))
            })?;
            columns.push((spec, v));
        }
        if let Some(extra) = self.cols.keys().next() {
            return Err(StageError::data(format!(
                "catalogue column {extra} is not in the column table"
            )));
        }
        Ok(Table {
            columns,
            rows,
            provenance: Vec::new(),
            name,
        })
    }
}

/// One row's inputs.
struct Row<'a> {
    id: &'a str,
    product: &'a SynthProduct<Summary>,
    measured: Option<&'a Summary>,
    clean: Option<&'a CleanSummary>,
}

fn build(
    ids: &[String],
    synth: &HashMap<String, SynthProduct<Summary>>,
    clean: &HashMap<String, CleanSummary>,
    finder: &SourceFinder,
    field: &FieldFile,
    o: &Options,
    name: &str,
) -> Result<Table, StageError> {
    let rows: Vec<Row> = ids
        .iter()
        .map(|id| {
            let product = &synth[id];
            Row {
                id,
                product,
                measured: product.measured(),
                clean: clean.get(id),
            }
        })
        .collect();
    let n = rows.len();
    let mut t = Builder::default();
    let d = |f: &dyn Fn(&Summary) -> f64| -> Vec<f64> {
        rows.iter()
            .map(|r| r.measured.map_or(f64::NAN, f))
            .collect()
    };
    let cl = |f: &dyn Fn(&CleanSummary) -> f64| -> Vec<f64> {
        rows.iter().map(|r| r.clean.map_or(f64::NAN, f)).collect()
    };
    let k = |col: &str, scale: f64| -> Result<Vec<f64>, StageError> {
        rows.iter()
            .map(|r| Ok(finder.num(r.id, col)? * scale))
            .collect()
    };
    let text = |f: &dyn Fn(&Row) -> String| -> Vec<String> { rows.iter().map(f).collect() };
    let constant = |v: &str| vec![v.to_string(); n];

    // The source finder's columns (mJy → Jy).
    t.s("cat_id", text(&|r| r.id.to_string()));
    let ra: Vec<f64> = rows.iter().map(|r| r.product.ra).collect();
    let dec: Vec<f64> = rows.iter().map(|r| r.product.dec).collect();
    t.f("ra", ra.clone());
    t.f("dec", dec.clone());
    let ra_err = k("E_RA", 1.0)?;
    let dec_err = k("E_Dec", 1.0)?;
    t.f("ra_err", ra_err.clone());
    t.f("dec_err", dec_err.clone());
    let total = k("Total_flux_Gaussian", 1e-3)?;
    t.f("total_I_flux", total.clone());
    t.f("total_I_flux_err", k("E_Total_flux_Gaussian", 1e-3)?);
    t.f("peak_I_flux", k("Peak_flux", 1e-3)?);
    t.f("peak_I_flux_err", k("E_Peak_flux", 1e-3)?);
    for (col, src) in [
        ("maj_axis", "Maj"),
        ("maj_axis_err", "E_Maj"),
        ("min_axis", "Min"),
        ("min_axis_err", "E_Min"),
        ("pa", "PA"),
        ("pa_err", "E_PA"),
        ("dc_maj_axis", "DC_Maj"),
        ("dc_maj_axis_err", "E_DC_Maj"),
        ("dc_min_axis", "DC_Min"),
        ("dc_min_axis_err", "E_DC_Min"),
        ("dc_pa", "DC_PA"),
        ("dc_pa_err", "E_DC_PA"),
    ] {
        t.f(col, k(src, 1.0)?);
    }
    // Noise and background of the spectra.
    t.f("stokesI_err", d(&|m| m.noise.di_full_band));
    t.f("stokesQ_err", d(&|m| m.noise.dq_full_band));
    t.f("stokesU_err", d(&|m| m.noise.du_full_band));
    t.f("stokesI_bkg", d(&|m| m.noise.bi_full_band));
    t.f("stokesQ_bkg", d(&|m| m.noise.bq_full_band));
    t.f("stokesU_bkg", d(&|m| m.noise.bu_full_band));
    // Tile geometry: the field's, or in a region the tile the component's Tile_ID names.
    let centre = field.tile_centre();
    let pol_axis = field.pol_axis_deg.unwrap_or(0.0);
    let tile_of = |r: &Row| field.tile(&finder.text(r.id, "Tile_ID"));
    let offsets: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|r| {
            let (c, p) = match tile_of(r) {
                Some(t) => (
                    (t.centre.ra_deg, t.centre.dec_deg),
                    t.pol_axis_deg.unwrap_or(0.0),
                ),
                None => (centre, pol_axis),
            };
            flags::tile_offsets(r.product.ra, r.product.dec, c, p)
        })
        .collect();
    let sep: Vec<f64> = offsets.iter().map(|o| o.0).collect();
    t.f("beamdist", sep.clone());
    let n_gaus: Vec<i64> = k("N_Gaus", 1.0)?
        .iter()
        .map(|v| if v.is_finite() { *v as i64 } else { 1 })
        .collect();
    t.i("N_Gaus", n_gaus.clone());
    t.s("source_id", text(&|r| r.product.source_id.clone()));
    let tile = |r: &Row| {
        let v = finder.text(r.id, "Tile_ID");
        if v.is_empty() {
            field.field.clone()
        } else {
            v
        }
    };
    t.s("tile_id", text(&tile));
    let field_sbid = field.sbid_text();
    t.s(
        "sbid",
        text(&|r| {
            let v = finder.text(r.id, "SBID");
            if !v.is_empty() {
                v
            } else if let Some(t) = tile_of(r) {
                crate::field_file::sbid_text(&t.sbid)
            } else {
                field_sbid.clone()
            }
        }),
    );
    let start_field = |r: &Row| {
        tile_of(r)
            .map_or(field.scan_start_mjd_s, |t| t.scan_start_mjd_s)
            .map_or(f64::NAN, |s| s / 86_400.0)
    };
    let start: Vec<f64> = k("Obs_Start_Time", 1.0)?
        .into_iter()
        .zip(&rows)
        .map(|(v, r)| if v.is_finite() { v } else { start_field(r) })
        .collect();
    t.f("start_time", start.clone());
    t.f("separation_tile_centre", sep.clone());
    t.s("s_code", text(&|r| finder.text(r.id, "S_Code")));
    // RM synthesis and CLEAN.
    let rm = cl(&|c| c.peak.phiPeakPIfit_rm2);
    t.f("rm", rm.clone());
    t.f("rm_err", cl(&|c| c.peak.dPhiPeakPIfit_rm2));
    let polint = cl(&|c| c.peak.ampPeakPIfitEff);
    t.f("polint", polint.clone());
    let polint_err = cl(&|c| c.peak.dAmpPeakPIfit);
    t.f("polint_err", polint_err.clone());
    t.f("stokesQ", cl(&|c| c.peak.peakFDFrealFit));
    t.f("stokesU", cl(&|c| c.peak.peakFDFimagFit));
    t.f("polangle", cl(&|c| c.peak.polAngleFit_deg));
    t.f("polangle_err", cl(&|c| c.peak.dPolAngleFit_deg));
    t.f("derot_polangle", cl(&|c| c.peak.polAngle0Fit_deg));
    t.f("derot_polangle_err", cl(&|c| c.peak.dPolAngle0Fit_deg));
    let stokes_i = d(&|m| m.synth.Ifreq0);
    let fracpol: Vec<f64> = polint.iter().zip(&stokes_i).map(|(p, i)| p / i).collect();
    t.f("fracpol", fracpol.clone());
    let freq0 = d(&|m| m.synth.freq0_Hz);
    t.f("reffreq_pol", freq0.clone());
    t.f("reffreq_beam", freq0.clone());
    t.f("reffreq_I", freq0);
    let dfdf = d(&|m| m.synth.dFDFth);
    t.f("fdf_noise_th", dfdf.clone());
    let fwhm = d(&|m| m.synth.fwhmRMSF);
    t.f("rmsf_fwhm", fwhm.clone());
    t.f("refwave_sq_pol", d(&|m| m.synth.lam0Sq_m2));
    t.f("stokesI", stokes_i.clone());
    let stat: Vec<i64> = rows
        .iter()
        .map(|r| r.measured.map_or(-1, |m| m.synth.IfitStat as i64))
        .collect();
    let ifit: Vec<Option<flags::IfitFlags>> = rows
        .iter()
        .zip(&stat)
        .map(|(r, &s)| r.measured.map(|_| flags::ifit_flags(s)))
        .collect();
    let ifl = |f: fn(&flags::IfitFlags) -> bool| -> Vec<bool> {
        ifit.iter().map(|x| x.as_ref().is_some_and(f)).collect()
    };
    t.b("stokesI_fit_flag_is_negative", ifl(|f| f.is_negative));
    t.b(
        "stokesI_fit_flag_is_close_to_zero",
        ifl(|f| f.is_close_to_zero),
    );
    t.b("stokesI_fit_flag_is_not_finite", ifl(|f| f.is_not_finite));
    t.b("stokesI_fit_flag_is_not_normal", ifl(|f| f.is_not_normal));
    t.f("stokesI_chi2_red", d(&|m| m.synth.IfitChiSqRed));
    let snr = cl(&|c| c.peak.snrPIfit);
    t.f("snr_polint", snr.clone());
    t.f("minfreq", d(&|m| m.synth.min_freq));
    t.f("maxfreq", d(&|m| m.synth.max_freq));
    t.f("channelwidth", d(&|m| m.synth.median_channel_width));
    let nchan: Vec<i64> = rows
        .iter()
        .map(|r| r.measured.map_or(0, |m| m.synth.N_channels as i64))
        .collect();
    t.i("Nchan", nchan.clone());
    let rm_width = cl(&|c| c.mom2CCFDF);
    t.f("rm_width", rm_width.clone());
    t.s(
        "stokesI_model_coef",
        text(&|r| {
            r.measured
                .map_or(String::new(), |m| m.synth.polyCoeffs.clone())
        }),
    );
    t.s(
        "stokesI_model_coef_err",
        text(&|r| {
            r.measured
                .map_or(String::new(), |m| m.synth.polyCoefferr.clone())
        }),
    );
    t.f("stokesI_model_order", d(&|m| m.synth.polyOrd as f64));
    t.f("noise_chan", d(&|m| m.synth.dQU));
    t.f("fdf_noise_mad", cl(&|c| c.peak.dFDFcorMAD));
    t.f("fdf_noise_rms", dfdf);
    let beam_maj = d(&|m| m.beam.bmaj.unwrap_or(f64::NAN));
    t.f("beam_maj", beam_maj.clone());
    t.f("beam_min", d(&|m| m.beam.bmin.unwrap_or(f64::NAN)));
    t.f(
        "beam_pa",
        d(&|m| m.beam.bpa.map_or(f64::NAN, |p| p.rem_euclid(180.0))),
    );
    t.f("l_tile_centre", offsets.iter().map(|o| o.1).collect());
    t.f("m_tile_centre", offsets.iter().map(|o| o.2).collect());
    // Complexity: RM-Tools' sigma_add combination, the catalogue's one heavy computation (1.8 ms
    // a row), on every core.
    let sigma: Vec<(f64, f64)> = rows
        .par_iter()
        .map(|r| {
            r.measured.map_or((f64::NAN, f64::NAN), |m| {
                combine_sigma_add(m.synth.complexity.q(), m.synth.complexity.u())
            })
        })
        .collect();
    t.f("sigma_add", sigma.iter().map(|s| s.0).collect());
    t.f("sigma_add_err", sigma.iter().map(|s| s.1).collect());
    // Flags.
    let snr_flag: Vec<bool> = snr.iter().map(|&s| flags::snr_flag(s, o.snr_cut)).collect();
    t.b("snr_flag", snr_flag.clone());
    let hi: Vec<usize> = (0..n)
        .filter(|&r| {
            let e = rows[r].measured.map_or(f64::NAN, |m| m.noise.di_full_band);
            stokes_i[r] / e > o.leakage_snr
        })
        .collect();
    let envelope = flags::leakage_envelope(
        &hi.iter().map(|&r| sep[r]).collect::<Vec<_>>(),
        &hi.iter().map(|&r| fracpol[r]).collect::<Vec<_>>(),
        o.leakage_degree,
        o.leakage_bins,
    );
    let envelope_at: Vec<f64> = sep.iter().map(|&s| envelope.at(s)).collect();
    let leakage: Vec<f64> = envelope_at.iter().map(|e| e.max(0.0)).collect();
    let leakage_flag: Vec<bool> = fracpol
        .iter()
        .zip(&envelope_at)
        .map(|(f, e)| f < e)
        .collect();
    t.b("leakage_flag", leakage_flag.clone());
    let channel_flag = flags::channel_flags(&nchan);
    t.b("channel_flag", channel_flag.clone());
    let ifit_flag = ifl(|f| f.flag);
    t.b("stokesI_fit_flag", ifit_flag.clone());
    let c_sigma: Vec<bool> = sigma
        .iter()
        .map(|s| flags::complex_sigma_add_flag(s.0, s.1))
        .collect();
    let c_m2: Vec<bool> = rm_width
        .iter()
        .zip(&fwhm)
        .map(|(w, f)| flags::complex_m2_cc_flag(*w, *f))
        .collect();
    t.b("complex_sigma_add_flag", c_sigma.clone());
    t.b("complex_M2_CC_flag", c_m2.clone());
    // Local RM outliers among the good sources, binned on their offsets from the tile centre
    // (the l, m above: a rotation of the tangent plane, which the binning's distances ignore).
    let good: Vec<usize> = (0..n)
        .filter(|&r| {
            rows[r].measured.is_some()
                && !ifit_flag[r]
                && !channel_flag[r]
                && !leakage_flag[r]
                && snr[r] > 5.0
                && !snr_flag[r]
                && rm[r].is_finite()
        })
        .collect();
    let local = flags::local_rm_flags(&flags::LocalRmInput {
        x: good.iter().map(|&r| offsets[r].1).collect(),
        y: good.iter().map(|&r| offsets[r].2).collect(),
        rm: good.iter().map(|&r| rm[r]).collect(),
    });
    let mut local_rm = vec![false; n];
    for (g, &r) in good.iter().enumerate() {
        local_rm[r] = local[g];
    }
    t.b("local_rm_flag", local_rm);
    let blend_in: Vec<flags::BlendInput> = rows
        .iter()
        .enumerate()
        .map(|(r, row)| flags::BlendInput {
            source_id: &row.product.source_id,
            n_gaus: n_gaus[r],
            ra: ra[r],
            dec: dec[r],
            beam_maj: beam_maj[r],
            total_flux: total[r],
        })
        .collect();
    let blend = flags::blending(&blend_in);
    t.b(
        "is_blended_flag",
        blend.iter().map(|b| b.is_blended).collect(),
    );
    t.f("blend_ratio", blend.iter().map(|b| b.ratio).collect());
    t.i("N_blended", blend.iter().map(|b| b.n_blended).collect());
    // Spectral index: C1 of a log model.
    let coef = |r: &Row, err: bool| -> f64 {
        let Some(m) = r.measured else {
            return f64::NAN;
        };
        if m.synth.fit_function != "log" {
            return f64::NAN;
        }
        let s = if err {
            &m.synth.polyCoefferr
        } else {
            &m.synth.polyCoeffs
        };
        let v: Vec<f64> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if v.len() >= 2 {
            v[v.len() - 2]
        } else {
            f64::NAN
        }
    };
    t.f(
        "spectral_index",
        rows.iter().map(|r| coef(r, false)).collect(),
    );
    t.f(
        "spectral_index_err",
        rows.iter().map(|r| coef(r, true)).collect(),
    );
    // Observation.
    let int_time: Vec<f64> = rows
        .iter()
        .map(|r| {
            tile_of(r)
                .map_or(field.scan_length_s, |t| t.scan_length_s)
                .unwrap_or(f64::NAN)
        })
        .collect();
    t.f("int_time", int_time.clone());
    t.f(
        "epoch",
        start
            .iter()
            .zip(&int_time)
            .map(|(s, it)| s + it / 2.0 / 86_400.0)
            .collect(),
    );
    let lb: Vec<(f64, f64)> = ra.iter().zip(&dec).map(|(a, b)| galactic(*a, *b)).collect();
    t.f("l", lb.iter().map(|x| x.0).collect());
    t.f("b", lb.iter().map(|x| x.1).collect());
    t.f(
        "pos_err",
        ra_err
            .iter()
            .zip(&dec_err)
            .map(|(a, b)| a.max(*b) / 3600.0)
            .collect(),
    );
    // RMTable constants.
    t.s(
        "rm_method",
        constant("RM Synthesis - Fractional polarization"),
    );
    t.s("telescope", constant("ASKAP"));
    t.s("pol_bias", constant("2012PASA...29..214G"));
    t.s(
        "ionosphere",
        constant(if o.ionosphere { "FRion" } else { "None" }),
    );
    t.s("flux_type", constant("Peak"));
    t.f("aperture", vec![0.0; n]);
    t.f("leakage", leakage);
    t.b(
        "complex_flag",
        c_sigma.iter().zip(&c_m2).map(|(a, b)| *a || *b).collect(),
    );
    t.f("rm_width_err", vec![f64::NAN; n]);
    t.f(
        "fracpol_err",
        polint_err
            .iter()
            .zip(&stokes_i)
            .map(|(e, i)| e / i)
            .collect(),
    );
    t.f("stokesV", vec![f64::NAN; n]);
    t.f("stokesV_err", vec![f64::NAN; n]);
    t.f(
        "obs_interval",
        int_time.iter().map(|it| it / 86_400.0).collect(),
    );
    t.i("Ncomp", vec![1; n]);
    t.s("complex_test", constant("Sigma_add"));
    t.s("catalog_name", constant(name));
    t.s("dataref", constant(""));
    t.s("type", constant(""));
    t.s("notes", constant(""));
    // arrakis's own.
    t.f("fracpol_dirty", d(&|m| m.synth.fracPol));
    t.f("dirty_rm", d(&|m| m.synth.peak.phiPeakPIfit_rm2));
    t.f("dirty_polint", d(&|m| m.synth.peak.ampPeakPIfitEff));
    t.i("stokesI_fit_stat", stat);
    t.b(
        "rmsynth_failed",
        rows.iter().map(|r| r.measured.is_none()).collect(),
    );
    t.s(
        "failure_reason",
        text(&|r| match &r.product.outcome {
            super::products::SynthOutcome::Failed { reason } => reason.clone(),
            super::products::SynthOutcome::Measured(_) => String::new(),
        }),
    );
    t.finish(n, name.to_string())
}

/// A polarised detection is a row with none of these set (`snr_flag` holds the SNR cut): the one
/// definition the validation plots, their captions and the build's summary use.
pub const DETECTION_FLAGS: &[&str] = &[
    "snr_flag",
    "stokesI_fit_flag",
    "channel_flag",
    "leakage_flag",
    "rmsynth_failed",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_796_342_400), "2026-12-04");
    }
}
