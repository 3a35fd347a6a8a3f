//! Pipeline parameters: layered loading of `configs/default.yaml`, `--config FILE` and
//! `--set key=value`, checked against what the rules declare.
//!
//! Owns: the resolved parameter values of a build and the list of keys that were accepted but are
//! unused. Must never: read rule files or field data.
//! Invariants: every value is coerced to the type its rule declares; a key that no rule declares
//! is either a known Arrakis key (reported as unused, with the reason) or an error naming the file,
//! line and nearest known key.

pub mod cluster;
pub mod params;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use params::{ParamDecl, ParamType, ParamValue};

use crate::diag::{did_you_mean, line_of, location};
use crate::rules::RuleSet;

/// The project's default pipeline parameters, compiled in.
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/default.yaml");

/// Keys of the MongoDB connection that Arrakis configs carry and arrakis has no use for.
const MONGO_KEYS: &[&str] = &["host", "username", "password", "database"];

/// Keys of Arrakis's pipeline configs (its `.default_config.yaml` and CLI) that no arrakis rule
/// reads: execution switches, paths handled elsewhere, options of stages that do not exist yet.
const ARRAKIS_KEYS: &[&str] = &[
    "hosted_wsclean",
    "local_wsclean",
    "dask_config",
    "imager_dask_config",
    "imager_only",
    "skip_imager",
    "skip_cutout",
    "skip_linmos",
    "skip_frion",
    "skip_rmsynth",
    "skip_rmclean",
    "skip_cat",
    "skip_validate",
    "skip_cleanup",
    "sbid",
    "stokes",
    "epoch",
    "limit",
    "datadir",
    "field",
    "msdir",
    "outdir",
    "temp_dir_wsclean",
    "temp_dir_images",
    "psf_cutoff",
    "robust",
    "nchan",
    "pols",
    "size",
    "scale",
    "mgain",
    "niter",
    "nmiter",
    "auto_mask",
    "auto_threshold",
    "local_rms",
    "local_rms_window",
    "force_mask_rounds",
    "gridder",
    "taper",
    "minuv",
    "parallel",
    "mpi",
    "purge",
    "multiscale",
    "multiscale_scale_bias",
    "multiscale_scales",
    "absmem",
    "make_residual_cubes",
    "ms_glob_pattern",
    "data_column",
    "no_mf_weighting",
    "skip_fix_ms",
    "num_beams",
    "disable_pol_local_rms",
    "disable_pol_force_mask_rounds",
    "pad",
    "dryrun",
    "holofile",
    "yanda",
    "yanda_image",
    "ionex_server",
    "ionex_prefix",
    "ionex_formatter",
    "ionex_proxy_server",
    "ionex_predownload",
    "dimension",
    "save_plots",
    "rm_verbose",
    "ion",
    "tt0",
    "tt1",
    "validate",
    "own_fit",
    "weight_type",
    "fit_function",
    "fit_rmsf",
    "phi_max",
    "dphi",
    "n_samples",
    "poly_ord",
    "no_stokes_i",
    "show_plots",
    "not_rmsf",
    "debug",
    "cutoff",
    "max_iter",
    "gain",
    "window",
    "leakage_degree",
    "leakage_bins",
    "leakage_snr",
    "write",
    "catfile",
    "outfile",
    "npix",
    "map_size",
    "overwrite",
    "verbose",
    "beam_radius_deg",
];

/// Parameters the engine itself reads (not any one rule).
pub fn engine_params() -> BTreeMap<String, ParamDecl> {
    let mut m = BTreeMap::new();
    m.insert(
        "beam_radius_deg".to_string(),
        ParamDecl {
            ty: ParamType::Float,
            default: serde_yaml::Value::from(1.0),
            choices: None,
            nullable: false,
            help: Some(
                "an island belongs to every beam whose centre is within this radius (deg)".into(),
            ),
        },
    );
    m.insert(
        "limit".to_string(),
        ParamDecl {
            ty: ParamType::Int,
            default: serde_yaml::Value::Null,
            choices: None,
            nullable: true,
            help: Some("process only the first N islands (as Arrakis's --limit)".into()),
        },
    );
    m
}

/// A problem in a config file or a `--set`.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// FILE:LINE, or `--set KEY`.
    pub location: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Where a parameter's value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// The rule's declared default.
    Default,
    /// A config file.
    File(PathBuf),
    /// A `--set`.
    Set,
}

/// Resolved parameters of one build.
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: BTreeMap<String, (ParamValue, Origin)>,
    /// Keys accepted but not used, with the reason, from user-given sources only.
    pub unused: Vec<(String, String)>,
}

impl Params {
    /// The value of `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name).map(|(v, _)| v)
    }
    /// Where `name`'s value came from.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.values.get(name).map(|(_, o)| o)
    }
    /// Every resolved (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ParamValue)> {
        self.values.iter().map(|(k, (v, _))| (k, v))
    }
}

fn normalise(key: &str) -> String {
    key.replace('-', "_")
}

/// Resolve parameters for `rules`: declared defaults, then the compiled-in defaults file, then
/// each `--config` file in order, then each `--set key=value` in order.
pub fn resolve(
    rules: &RuleSet,
    config_files: &[PathBuf],
    sets: &[String],
) -> Result<Params, ConfigError> {
    let mut decls = rules.declared_params();
    decls.extend(engine_params());
    let mut params = Params::default();
    for (k, d) in &decls {
        let v = d.default_value().map_err(|e| ConfigError {
            location: format!("parameter '{k}'"),
            message: e,
        })?;
        params.values.insert(k.clone(), (v, Origin::Default));
    }
    apply_text(
        &mut params,
        &decls,
        Path::new("configs/default.yaml"),
        DEFAULT_CONFIG,
        false,
    )?;
    for f in config_files {
        let text = std::fs::read_to_string(f).map_err(|e| ConfigError {
            location: f.display().to_string(),
            message: format!("cannot read the config file: {e}"),
        })?;
        apply_text(&mut params, &decls, f, &text, true)?;
    }
    for s in sets {
        let Some((k, v)) = s.split_once('=') else {
            return Err(ConfigError {
                location: format!("--set {s}"),
                message: "expected KEY=VALUE, e.g. --set cutoff=-5".into(),
            });
        };
        let key = normalise(k.trim());
        let loc = format!("--set {key}");
        let Some(decl) = decls.get(&key) else {
            let message = if ARRAKIS_KEYS.contains(&key.as_str())
                || MONGO_KEYS.contains(&key.as_str())
            {
                format!("'{key}' is an Arrakis option that no arrakis rule reads; setting it has no effect")
            } else {
                format!(
                    "unknown parameter '{key}'{}",
                    did_you_mean(&key, decls.keys().map(|s| s.as_str()))
                )
            };
            return Err(ConfigError {
                location: loc,
                message,
            });
        };
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(v).unwrap_or(serde_yaml::Value::String(v.to_string()));
        match decl.coerce(&yaml) {
            Ok(Some(val)) => {
                params.values.insert(key, (val, Origin::Set));
            }
            Ok(None) => {
                let d = decl.default_value().map_err(|e| ConfigError {
                    location: loc.clone(),
                    message: e,
                })?;
                params.values.insert(key, (d, Origin::Set));
            }
            Err(e) => {
                return Err(ConfigError {
                    location: loc,
                    message: e,
                })
            }
        }
    }
    Ok(params)
}

fn apply_text(
    params: &mut Params,
    decls: &BTreeMap<String, ParamDecl>,
    file: &Path,
    text: &str,
    user_given: bool,
) -> Result<(), ConfigError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| ConfigError {
        location: location(file, e.location().map(|l| l.line())),
        message: format!(
            "not valid YAML: {}",
            e.to_string().split(" at line ").next().unwrap_or("")
        ),
    })?;
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(()),
        _ => {
            return Err(ConfigError {
                location: location(file, Some(1)),
                message: "a pipeline config must be a mapping of parameter names to values".into(),
            })
        }
    };
    for (k, v) in map {
        let raw_key = match &k {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let key = normalise(&raw_key);
        let loc = location(file, line_of(text, &[&raw_key]));
        if let Some(decl) = decls.get(&key) {
            match decl.coerce(&v) {
                Ok(Some(val)) => {
                    params
                        .values
                        .insert(key, (val, Origin::File(file.to_path_buf())));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ConfigError {
                        location: loc,
                        message: format!("{key}: {e}"),
                    })
                }
            }
        } else if MONGO_KEYS.contains(&key.as_str()) {
            if user_given {
                params.unused.push((
                    key,
                    "MongoDB setting: arrakis keeps its state in files and the cache".into(),
                ));
            }
        } else if ARRAKIS_KEYS.contains(&key.as_str()) {
            if user_given {
                params
                    .unused
                    .push((key, "Arrakis option that no arrakis rule reads".into()));
            }
        } else {
            let known = decls
                .keys()
                .map(|s| s.as_str())
                .chain(ARRAKIS_KEYS.iter().copied());
            return Err(ConfigError {
                location: loc,
                message: format!(
                    "unknown parameter '{raw_key}'{}; remove it or check the spelling",
                    did_you_mean(&key, known)
                ),
            });
        }
    }
    Ok(())
}
