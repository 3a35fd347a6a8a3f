//! The files one stage writes and another reads, as typed structs used on both sides: rmsynth's
//! summary (`{component}_RMsynth.json`, read by rmclean and the catalogue) and rmclean's
//! (`{component}_RMclean.json`, read by the catalogue).
//!
//! Must never: let a missing or misspelt key become a default or a NaN: reading fails naming the
//! file and the key. (A NaN *value* is written as JSON null and read back as NaN.)
//! Format: pretty-printed JSON, keys sorted at every level (the bytes arrakis has always written,
//! so the products' digests, and the keys downstream, do not change with this code).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::science::rm_clean::CleanSummary;
use crate::science::rm_synthesis::SynthSummary;

/// A product file that cannot be read as the stage that wrote it meant.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ProductError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (for a missing key: which).
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> ProductError {
    ProductError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The restoring beam of the mosaic a spectrum came from (degrees; null where the header has
/// none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beam {
    /// Major axis FWHM.
    #[serde(rename = "BMAJ")]
    pub bmaj: Option<f64>,
    /// Minor axis FWHM.
    #[serde(rename = "BMIN")]
    pub bmin: Option<f64>,
    /// Position angle.
    #[serde(rename = "BPA")]
    pub bpa: Option<f64>,
}

/// Mean per-channel noise of the spectrum (flux units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// Stokes I.
    #[serde(rename = "dI", deserialize_with = "crate::science::nan_if_null")]
    pub di: f64,
    /// Stokes Q.
    #[serde(rename = "dQ", deserialize_with = "crate::science::nan_if_null")]
    pub dq: f64,
    /// Stokes U.
    #[serde(rename = "dU", deserialize_with = "crate::science::nan_if_null")]
    pub du: f64,
    /// Noise of the band average of I: mean per-channel noise / √(channels with a noise).
    #[serde(
        rename = "dIFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub di_full_band: f64,
    /// The same for Q.
    #[serde(
        rename = "dQFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub dq_full_band: f64,
    /// The same for U.
    #[serde(
        rename = "dUFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub du_full_band: f64,
    /// Mean annulus background of I over the used channels.
    #[serde(
        rename = "bIFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub bi_full_band: f64,
    /// The same for Q.
    #[serde(
        rename = "bQFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub bq_full_band: f64,
    /// The same for U.
    #[serde(
        rename = "bUFullBand",
        deserialize_with = "crate::science::nan_if_null"
    )]
    pub bu_full_band: f64,
}

impl Noise {
    /// Per Stokes parameter (I, Q, U): the per-channel noise and background (NaN where a channel
    /// was rejected), as Arrakis summarises them (`rmsynth_oncuts`).
    pub fn from_channels(noise: &[Vec<f64>; 3], background: &[Vec<f64>; 3]) -> Noise {
        use crate::science::stats::nanmean;
        let full = |v: &[f64]| {
            let n = v.iter().filter(|x| x.is_finite()).count();
            nanmean(v) / (n as f64).sqrt()
        };
        Noise {
            di: nanmean(&noise[0]),
            dq: nanmean(&noise[1]),
            du: nanmean(&noise[2]),
            di_full_band: full(&noise[0]),
            dq_full_band: full(&noise[1]),
            du_full_band: full(&noise[2]),
            bi_full_band: nanmean(&background[0]),
            bq_full_band: nanmean(&background[1]),
            bu_full_band: nanmean(&background[2]),
        }
    }
}

fn nan_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v: Vec<Option<f64>> = Vec::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// The measured spectrum (background subtracted; NaN where a channel was rejected).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumProduct {
    /// Channel frequencies, Hz.
    #[serde(deserialize_with = "nan_vec")]
    pub freq_hz: Vec<f64>,
    /// Stokes I.
    #[serde(rename = "I", deserialize_with = "nan_vec")]
    pub i: Vec<f64>,
    /// Stokes Q.
    #[serde(rename = "Q", deserialize_with = "nan_vec")]
    pub q: Vec<f64>,
    /// Stokes U.
    #[serde(rename = "U", deserialize_with = "nan_vec")]
    pub u: Vec<f64>,
    /// Noise of I.
    #[serde(rename = "dI", deserialize_with = "nan_vec")]
    pub di: Vec<f64>,
    /// Noise of Q.
    #[serde(rename = "dQ", deserialize_with = "nan_vec")]
    pub dq: Vec<f64>,
    /// Noise of U.
    #[serde(rename = "dU", deserialize_with = "nan_vec")]
    pub du: Vec<f64>,
}

/// What rmsynth measured of a component.
#[derive(Clone, Debug)]
pub struct Measured {
    /// RM-Tools' summary of the synthesis.
    pub synth: SynthSummary,
    /// The mosaic's beam.
    pub beam: Beam,
    /// The mosaic pixel (x, y) the spectrum was taken at.
    pub pixel: [usize; 2],
    /// Mean noise per Stokes parameter.
    pub noise: Noise,
    /// The spectrum.
    pub spectrum: SpectrumProduct,
    /// λ² of every channel, m².
    pub lambda_sq: Vec<f64>,
}

/// What the catalogue takes of rmsynth's measurement ([`SynthProduct::read_summary`]): all
/// but the spectra and λ².
#[derive(Clone, Debug)]
pub struct Summary {
    /// RM-Tools' summary of the synthesis.
    pub synth: SynthSummary,
    /// The mosaic's beam.
    pub beam: Beam,
    /// Mean noise per Stokes parameter.
    pub noise: Noise,
}

/// rmsynth's outcome for a component (`M`: the whole measurement, or its [`Summary`]).
#[derive(Clone, Debug)]
pub enum SynthOutcome<M = Measured> {
    /// Synthesised.
    Measured(Box<M>),
    /// Not measurable (outside the mosaic, too few channels): why.
    Failed {
        /// The reason, for the catalogue's `failure_reason`.
        reason: String,
    },
}

/// `{component}_RMsynth.json` (`M`: read whole, or only its [`Summary`]).
#[derive(Clone, Debug)]
pub struct SynthProduct<M = Measured> {
    /// `Gaussian_ID`.
    pub cat_id: String,
    /// `Source_ID`.
    pub source_id: String,
    /// Catalogue position, degrees.
    pub ra: f64,
    /// Catalogue position, degrees.
    pub dec: f64,
    /// What rmsynth found.
    pub outcome: SynthOutcome<M>,
}

/// The file layout: flat, `rmsynth1d` saying which keys follow.
#[derive(Serialize, Deserialize)]
struct SynthWire {
    cat_id: String,
    source_id: String,
    ra: f64,
    dec: f64,
    rmsynth1d: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synth: Option<SynthSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    beam: Option<Beam>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pixel: Option<[usize; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    noise: Option<Noise>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spectrum: Option<SpectrumProduct>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(deserialize_with = "opt_nan_vec")]
    lambda_sq: Option<Vec<f64>>,
}

fn opt_nan_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    let v: Option<Vec<Option<f64>>> = Option::deserialize(d)?;
    Ok(v.map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
}

/// Pretty JSON with every object's keys sorted (through `serde_json::Value`, whose maps are
/// ordered), as arrakis has always written its products.
fn to_sorted_json<T: Serialize>(v: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&serde_json::to_value(v)?)
}

fn missing(path: &Path, key: &str, when: &str) -> ProductError {
    err(
        path,
        format!("key '{key}' is missing ({when}); the file was not written by this arrakis's stage: rebuild it (delete it, or `arrakis build` after `arrakis gc --repair`)"),
    )
}

fn write_text(path: &Path, text: Result<String, serde_json::Error>) -> Result<(), ProductError> {
    let text = text.map_err(|e| err(path, format!("cannot encode: {e}")))?;
    std::fs::write(path, text).map_err(|e| err(path, format!("cannot write: {e}")))
}

fn read_text(path: &Path) -> Result<String, ProductError> {
    crate::hash::read_regular_string(path).map_err(|e| err(path, format!("cannot read: {e}")))
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ProductError> {
    serde_json::from_str(text).map_err(|e| err(path, e.to_string()))
}

impl SynthProduct {
    /// Write the file.
    pub fn write(&self, path: &Path) -> Result<(), ProductError> {
        write_text(path, self.to_json())
    }

    /// The file's text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut w = SynthWire {
            cat_id: self.cat_id.clone(),
            source_id: self.source_id.clone(),
            ra: self.ra,
            dec: self.dec,
            rmsynth1d: false,
            reason: None,
            synth: None,
            beam: None,
            pixel: None,
            noise: None,
            spectrum: None,
            lambda_sq: None,
        };
        match &self.outcome {
            SynthOutcome::Failed { reason } => w.reason = Some(reason.clone()),
            SynthOutcome::Measured(m) => {
                w.rmsynth1d = true;
                w.synth = Some(m.synth.clone());
                w.beam = Some(m.beam.clone());
                w.pixel = Some(m.pixel);
                w.noise = Some(m.noise.clone());
                w.spectrum = Some(m.spectrum.clone());
                w.lambda_sq = Some(m.lambda_sq.clone());
            }
        }
        to_sorted_json(&w)
    }

    /// Read `path`: every key the outcome needs must be there.
    pub fn read(path: &Path) -> Result<SynthProduct, ProductError> {
        let w: SynthWire = parse(path, &read_text(path)?)?;
        let head = (w.cat_id, w.source_id, w.ra, w.dec);
        product(path, head, w.rmsynth1d, w.reason, |when| {
            Ok(Measured {
                synth: w.synth.ok_or_else(|| missing(path, "synth", when))?,
                beam: w.beam.ok_or_else(|| missing(path, "beam", when))?,
                pixel: w.pixel.ok_or_else(|| missing(path, "pixel", when))?,
                noise: w.noise.ok_or_else(|| missing(path, "noise", when))?,
                spectrum: w.spectrum.ok_or_else(|| missing(path, "spectrum", when))?,
                lambda_sq: w
                    .lambda_sq
                    .ok_or_else(|| missing(path, "lambda_sq", when))?,
            })
        })
    }

    /// What RM-CLEAN takes from the file: the component and, when rmsynth measured it, the
    /// summary and λ². The spectra, noise and beam are skipped over unparsed (parsing their
    /// numbers was a third of rmclean's time); the file is checked as [`SynthProduct::read`]
    /// checks what it returns.
    pub fn read_for_clean(path: &Path) -> Result<ForClean, ProductError> {
        #[derive(Deserialize)]
        struct Wire {
            cat_id: String,
            rmsynth1d: bool,
            reason: Option<String>,
            synth: Option<SynthSummary>,
            #[serde(default, deserialize_with = "opt_nan_vec")]
            lambda_sq: Option<Vec<f64>>,
        }
        let w: Wire = parse(path, &read_text(path)?)?;
        let when = "rmsynth1d is true";
        let measured = if w.rmsynth1d {
            Some((
                w.synth.ok_or_else(|| missing(path, "synth", when))?,
                w.lambda_sq
                    .ok_or_else(|| missing(path, "lambda_sq", when))?,
            ))
        } else {
            w.reason
                .ok_or_else(|| missing(path, "reason", "rmsynth1d is false"))?;
            None
        };
        Ok(ForClean {
            cat_id: w.cat_id,
            measured,
        })
    }
}

impl<M> SynthProduct<M> {
    /// The measurement, if there is one.
    pub fn measured(&self) -> Option<&M> {
        match &self.outcome {
            SynthOutcome::Measured(m) => Some(m),
            SynthOutcome::Failed { .. } => None,
        }
    }
}

impl SynthProduct<Summary> {
    /// What the catalogue takes from the file: the component and, when rmsynth measured it,
    /// the summary, beam and noise. The spectra and λ² are skipped over unparsed (they were
    /// nine tenths of the file and most of the catalogue's reading); the file is checked as
    /// [`SynthProduct::read`] checks what it returns.
    pub fn read_summary(path: &Path) -> Result<SynthProduct<Summary>, ProductError> {
        #[derive(Deserialize)]
        struct Wire {
            cat_id: String,
            source_id: String,
            ra: f64,
            dec: f64,
            rmsynth1d: bool,
            reason: Option<String>,
            synth: Option<SynthSummary>,
            beam: Option<Beam>,
            noise: Option<Noise>,
        }
        let w: Wire = parse(path, &read_text(path)?)?;
        let head = (w.cat_id, w.source_id, w.ra, w.dec);
        product(path, head, w.rmsynth1d, w.reason, |when| {
            Ok(Summary {
                synth: w.synth.ok_or_else(|| missing(path, "synth", when))?,
                beam: w.beam.ok_or_else(|| missing(path, "beam", when))?,
                noise: w.noise.ok_or_else(|| missing(path, "noise", when))?,
            })
        })
    }
}

/// A file's product: its component (`cat_id`, `source_id`, `ra`, `dec`) and outcome,
/// `measured` (given what makes its keys required) when `rmsynth1d`, else the failure's
/// `reason`, which must then be there.
fn product<M>(
    path: &Path,
    (cat_id, source_id, ra, dec): (String, String, f64, f64),
    rmsynth1d: bool,
    reason: Option<String>,
    measured: impl FnOnce(&str) -> Result<M, ProductError>,
) -> Result<SynthProduct<M>, ProductError> {
    let outcome = if rmsynth1d {
        SynthOutcome::Measured(Box::new(measured("rmsynth1d is true")?))
    } else {
        SynthOutcome::Failed {
            reason: reason.ok_or_else(|| missing(path, "reason", "rmsynth1d is false"))?,
        }
    };
    Ok(SynthProduct {
        cat_id,
        source_id,
        ra,
        dec,
        outcome,
    })
}

/// What [`SynthProduct::read_for_clean`] reads.
pub struct ForClean {
    /// `Gaussian_ID`.
    pub cat_id: String,
    /// rmsynth's summary and the channels' λ² (m²), when it measured the component.
    pub measured: Option<(SynthSummary, Vec<f64>)>,
}

/// `{component}_RMclean.json`.
#[derive(Clone, Debug)]
pub struct CleanProduct {
    /// `Gaussian_ID`.
    pub cat_id: String,
    /// RM-Tools' summary of the CLEAN; `None` when rmsynth measured nothing to clean.
    pub clean: Option<CleanSummary>,
}

#[derive(Serialize, Deserialize)]
struct CleanWire {
    cat_id: String,
    rmclean1d: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    clean: Option<CleanSummary>,
}

impl CleanProduct {
    /// Write the file.
    pub fn write(&self, path: &Path) -> Result<(), ProductError> {
        write_text(path, self.to_json())
    }

    /// The file's text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        to_sorted_json(&CleanWire {
            cat_id: self.cat_id.clone(),
            rmclean1d: self.clean.is_some(),
            clean: self.clean.clone(),
        })
    }

    /// Read `path`.
    pub fn read(path: &Path) -> Result<CleanProduct, ProductError> {
        let w: CleanWire = parse(path, &read_text(path)?)?;
        if w.rmclean1d && w.clean.is_none() {
            return Err(missing(path, "clean", "rmclean1d is true"));
        }
        Ok(CleanProduct {
            cat_id: w.cat_id,
            clean: w.clean,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::rm_synthesis::{run_rmsynth, Spectrum, SynthParams};
    use crate::science::stokes_i::FitFunction;

    fn measured() -> SynthProduct {
        let freq: Vec<f64> = (0..40).map(|k| 8e8 + 5e6 * k as f64).collect();
        let lsq = |f: f64| (crate::science::C_M_S / f).powi(2);
        let q: Vec<f64> = freq
            .iter()
            .map(|&f| 0.3 * (2.0 * 20.0 * lsq(f)).cos())
            .collect();
        let u: Vec<f64> = freq
            .iter()
            .map(|&f| 0.3 * (2.0 * 20.0 * lsq(f)).sin())
            .collect();
        let mut i = vec![1.0; 40];
        i[3] = f64::NAN; // a rejected channel: NaN in the file, NaN again when read
        let d = vec![0.01; 40];
        let p = SynthParams {
            poly_ord: 1,
            fit_function: FitFunction::Log,
            n_samples: 5.0,
            dphi: None,
            phi_max: None,
            weight_variance: true,
            fit_rmsf: false,
        };
        let s = Spectrum {
            freq_hz: &freq,
            i: Some(&i),
            q: &q,
            u: &u,
            di: Some(&d),
            dq: &d,
            du: &d,
        };
        let (synth, arrays) = run_rmsynth(&s, &p);
        SynthProduct {
            cat_id: "J1_c1".into(),
            source_id: "J1".into(),
            ra: 10.0,
            dec: -20.0,
            outcome: SynthOutcome::Measured(Box::new(Measured {
                synth,
                beam: Beam {
                    bmaj: Some(0.003),
                    bmin: None,
                    bpa: Some(0.0),
                },
                pixel: [3, 4],
                noise: Noise {
                    di: 0.01,
                    dq: 0.01,
                    du: f64::NAN,
                    di_full_band: 0.001,
                    dq_full_band: 0.001,
                    du_full_band: f64::NAN,
                    bi_full_band: 1e-4,
                    bq_full_band: -2e-5,
                    bu_full_band: 0.0,
                },
                spectrum: SpectrumProduct {
                    freq_hz: freq.clone(),
                    i: i.clone(),
                    q,
                    u,
                    di: d.clone(),
                    dq: d.clone(),
                    du: d,
                },
                lambda_sq: arrays.lambda_sq,
            })),
        }
    }

    #[test]
    fn products_read_back_as_written_nans_included() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c_RMsynth.json");
        let written = measured();
        written.write(&p).unwrap();
        let read = SynthProduct::read(&p).unwrap();
        // Written again, the bytes are the same: every value came back, NaN as NaN.
        assert_eq!(read.to_json().unwrap(), written.to_json().unwrap());
        let m = read.measured().unwrap();
        assert!(m.spectrum.i[3].is_nan() && m.noise.du.is_nan() && m.beam.bmin.is_none());
        assert_eq!(
            m.synth.peak.phiPeakPIfit_rm2,
            written.measured().unwrap().synth.peak.phiPeakPIfit_rm2
        );

        // RM-CLEAN's read: the same summary and λ², the spectra skipped.
        written.write(&p).unwrap();
        let c = SynthProduct::read_for_clean(&p).unwrap();
        let (summary, lambda_sq) = c.measured.unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&lambda_sq), bits(&m.lambda_sq));
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            serde_json::to_string(&m.synth).unwrap()
        );
        assert_eq!(c.cat_id, written.cat_id);

        // The catalogue's read: the same summary, beam and noise, the spectra skipped.
        let s = SynthProduct::read_summary(&p).unwrap();
        let sm = s.measured().unwrap();
        assert_eq!(
            serde_json::to_string(&(&sm.synth, &sm.beam, &sm.noise)).unwrap(),
            serde_json::to_string(&(&m.synth, &m.beam, &m.noise)).unwrap()
        );
        assert_eq!(
            (&s.cat_id, &s.source_id, s.ra.to_bits(), s.dec.to_bits()),
            (
                &written.cat_id,
                &written.source_id,
                written.ra.to_bits(),
                written.dec.to_bits()
            )
        );

        let failed = SynthProduct {
            outcome: SynthOutcome::Failed {
                reason: "fewer than 2 usable channels".into(),
            },
            ..written.clone()
        };
        failed.write(&p).unwrap();
        assert!(SynthProduct::read(&p).unwrap().measured().is_none());
        assert!(SynthProduct::read_for_clean(&p).unwrap().measured.is_none());
        assert!(matches!(
            SynthProduct::read_summary(&p).unwrap().outcome,
            SynthOutcome::Failed { reason } if reason == "fewer than 2 usable channels"
        ));

        let clean = CleanProduct {
            cat_id: "J1_c1".into(),
            clean: None,
        };
        let pc = dir.path().join("c_RMclean.json");
        clean.write(&pc).unwrap();
        assert!(CleanProduct::read(&pc).unwrap().clean.is_none());
    }

    #[test]
    fn a_missing_key_is_an_error_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c_RMsynth.json");
        let json: serde_json::Value = serde_json::from_str(&measured().to_json().unwrap()).unwrap();
        for (key, want) in [
            ("synth", "key 'synth' is missing"),
            ("spectrum", "key 'spectrum' is missing"),
            ("cat_id", "missing field `cat_id`"),
        ] {
            let mut v = json.clone();
            v.as_object_mut().unwrap().remove(key);
            std::fs::write(&p, v.to_string()).unwrap();
            let e = SynthProduct::read(&p).unwrap_err().to_string();
            assert!(
                e.contains("c_RMsynth.json") && e.contains(want),
                "{key}: {e}"
            );
            // RM-CLEAN's and the catalogue's reads do without the spectrum, and check the rest
            // as well.
            for r in [
                SynthProduct::read_for_clean(&p).map(|_| ()),
                SynthProduct::read_summary(&p).map(|_| ()),
            ] {
                match (key, r) {
                    ("spectrum", r) => assert!(r.is_ok()),
                    (_, r) => {
                        let e = r.err().unwrap().to_string();
                        assert!(
                            e.contains("c_RMsynth.json") && e.contains(want),
                            "{key}: {e}"
                        );
                    }
                }
            }
        }
        // A key of rmsynth's summary itself (RM-Tools' names) misspelt.
        let mut v = json.clone();
        let synth = v["synth"].as_object_mut().unwrap();
        let fwhm = synth.remove("fwhmRMSF").unwrap();
        synth.insert("fwhmRMFS".into(), fwhm);
        std::fs::write(&p, v.to_string()).unwrap();
        let e = SynthProduct::read(&p).unwrap_err().to_string();
        assert!(e.contains("fwhmRMSF"), "{e}");
    }
}
