//! Pipeline parameters: the declared defaults, then each `--config FILE`, then each
//! `--set key=value`, checked against the declarations the rules hold.
//!
//! Owns: the resolved parameter values of a build, the list of keys that were accepted but are
//! unused, and the parameters the engine itself reads ([`ENGINE_PARAMS`]).
//! Must never: read rule files or field data (it is handed the declarations).
//! Invariants: every value is coerced to its declared type, choices and range; a key that nothing
//! declares is either a known Arrakis key (reported as unused, with the reason) or an error naming
//! the file, line and nearest known key.

pub mod cluster;
pub mod dask;
pub mod params;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use params::{DefaultValue, ParamDecl, ParamSpec, ParamType, ParamValue, Range};

use crate::diag::{did_you_mean, line_of, location};

/// Keys of the MongoDB connection that Arrakis configs carry and arrakis has no use for.
const MONGO_KEYS: &[&str] = &["host", "username", "password", "database"];

/// Keys of Arrakis's pipeline configs (its `.default_config.yaml` and CLI) that no arrakis rule
/// reads: execution switches, paths handled elsewhere, options of stages that do not exist yet.
const ARRAKIS_KEYS: &[&str] = &[
    "hosted_wsclean",
    "local_wsclean",
    "dask_config",
    "imager_dask_config",
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
    "config",
];

/// Why an Arrakis key that no rule reads is accepted (its `value` as given), or `Err` with the
/// reason it is refused: Arrakis options whose value would change the science in a way arrakis
/// does not implement are refused rather than silently ignored.
fn arrakis_key(key: &str, value: &serde_yaml::Value) -> Result<String, String> {
    let set = !matches!(value, serde_yaml::Value::Null)
        && value != &serde_yaml::Value::Bool(false)
        && value.as_str() != Some("");
    match key {
        "ion" => Ok("Arrakis ignores it too: its pipeline runs RM synthesis with ion = not skip_frion; arrakis's switch is skip_frion".into()),
        "tt0" | "tt1" if set => Err(format!(
            "{key}: Taylor-term MFS images as the Stokes I model are not implemented in arrakis; it fits each component's Stokes I spectrum (poly_ord, fit_function), as Arrakis does without tt0/tt1. Set {key}: null (or remove it)"
        )),
        "own_fit" if set => Err("own_fit: Arrakis's own power-law Stokes I fit is not implemented in arrakis; it fits Stokes I with RM-Tools' polynomial (poly_ord, fit_function; a negative poly_ord chooses the order by AIC). Set own_fit: false (or remove it)".into()),
        "skip_cleanup" => Ok("cleanup is `arrakis archive FIELD`, never part of a build".into()),
        "config" => Ok("the config file Arrakis was given (saved in its run YAML); arrakis reads the files given with --config".into()),
        "validate" => Ok("Arrakis's rmsynth option to run on Stokes I; arrakis's validate stage always runs".into()),
        _ => Ok("Arrakis option that no arrakis rule reads".into()),
    }
}

/// Parameters arrakis had and replaced, with what to write instead.
const RENAMED: &[(&str, &str)] = &[(
    "ion_predict",
    "'ion_predict' was replaced by ion_source: write ion_source: frion_predict to run FRion's program, or ion_source: ionex to predict from the IONEX files without it",
)];

/// The top-level keys of a dask-jobqueue cluster config (what `--dask-config` reads), which a
/// pipeline config given with `--config` by mistake holds.
const CLUSTER_KEYS: &[&str] = &["cluster_class", "cluster_kwargs", "adapt_kwargs"];

fn renamed(key: &str) -> Option<String> {
    RENAMED
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, why)| why.to_string())
}

/// The beam-assignment radius: read by the engine (which islands get targets) and the `beams`
/// builtin.
pub static BEAM_RADIUS_DEG: ParamSpec = ParamSpec::new(
    "beam_radius_deg",
    ParamType::Float,
    DefaultValue::Float(1.0),
    "an island belongs to every beam whose centre is within this radius (deg)",
)
.range(Range::open_closed(0.0, 180.0));

/// Build only the first N islands.
pub static LIMIT: ParamSpec = ParamSpec::new(
    "limit",
    ParamType::Int,
    DefaultValue::Null,
    "process only the first N islands (as Arrakis's --limit; null: all)",
)
.nullable()
.range(Range::at_least(0.0));

/// The content store's size budget (`crate::store`).
pub static STORE_BUDGET: ParamSpec = ParamSpec::new(
    "store_budget",
    ParamType::String,
    DefaultValue::Str(crate::store::DEFAULT_BUDGET),
    "the most the content store keeps of outputs earlier parameter sets made (dask's sizes: 10GiB, 500MB; 0 keeps nothing); least recently used go first",
);

macro_rules! skip_param {
    ($name:ident, $key:literal, $help:literal) => {
        #[doc = concat!("Arrakis's `", $key, "`.")]
        pub static $name: ParamSpec =
            ParamSpec::new($key, ParamType::Bool, DefaultValue::Bool(false), $help);
    };
}
skip_param!(
    SKIP_IMAGER,
    "skip_imager",
    "do not run the imager: its cubes are taken as they are (Arrakis's skip_imager)"
);
skip_param!(
    SKIP_CUTOUT,
    "skip_cutout",
    "do not run cutout: its outputs are taken as they are"
);
skip_param!(
    SKIP_LINMOS,
    "skip_linmos",
    "do not run linmos: the mosaics are taken as they are"
);
skip_param!(
    SKIP_RMSYNTH,
    "skip_rmsynth",
    "do not run RM synthesis (1D or 3D): its outputs are taken as they are"
);
skip_param!(
    SKIP_RMCLEAN,
    "skip_rmclean",
    "do not run RM-CLEAN (1D or 3D): its outputs are taken as they are"
);
skip_param!(
    SKIP_CAT,
    "skip_cat",
    "do not make the catalogue: it is taken as it is"
);
skip_param!(
    SKIP_VALIDATE,
    "skip_validate",
    "do not make the validation plots"
);
skip_param!(
    IMAGER_ONLY,
    "imager_only",
    "build only up to the imager (Arrakis's imager_only; as --until imager)"
);

/// Arrakis's stage switches and the stages each one skips: a skipped stage's targets do not
/// run, and their outputs are used as they are (whether or not they are up to date), as Arrakis
/// does. `skip_frion` is not here: in Arrakis it also means RM synthesis reads the uncorrected
/// Q/U, so it is a science parameter the rules read.
pub static SKIP_STAGES: &[(&ParamSpec, &[&str])] = &[
    (&SKIP_IMAGER, &["imager"]),
    (&SKIP_CUTOUT, &["cutout"]),
    (&SKIP_LINMOS, &["linmos"]),
    (&SKIP_RMSYNTH, &["rmsynth", "rmsynth3d"]),
    (&SKIP_RMCLEAN, &["rmclean", "rmclean3d"]),
    (&SKIP_CAT, &["catalogue"]),
    (&SKIP_VALIDATE, &["validate"]),
];

/// Parameters the engine itself reads (not any one rule): every build declares them.
pub static ENGINE_PARAMS: &[&ParamSpec] = &[
    &BEAM_RADIUS_DEG,
    &LIMIT,
    &STORE_BUDGET,
    &SKIP_IMAGER,
    &SKIP_CUTOUT,
    &SKIP_LINMOS,
    &SKIP_RMSYNTH,
    &SKIP_RMCLEAN,
    &SKIP_CAT,
    &SKIP_VALIDATE,
    &IMAGER_ONLY,
];

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
    /// The value of a float parameter every build declares (an engine parameter).
    pub fn engine_f64(&self, spec: &ParamSpec) -> Result<f64, ConfigError> {
        self.get(spec.name)
            .and_then(ParamValue::as_f64)
            .ok_or_else(|| undeclared(spec))
    }
    /// The content store's budget in bytes (`store_budget`); a bad size names where it was set.
    pub fn store_budget(&self) -> Result<u64, ConfigError> {
        let text = match self.get(STORE_BUDGET.name) {
            Some(ParamValue::Str(s)) => s.clone(),
            Some(ParamValue::Int(i)) => i.to_string(),
            _ => return Err(undeclared(&STORE_BUDGET)),
        };
        crate::store::parse_budget(&text).map_err(|message| ConfigError {
            location: match self.origin(STORE_BUDGET.name) {
                Some(Origin::File(f)) => format!("{}: key store_budget", f.display()),
                Some(Origin::Set) => "--set store_budget".into(),
                _ => "store_budget".into(),
            },
            message,
        })
    }

    /// The value of a nullable integer parameter every build declares.
    pub fn engine_opt_i64(&self, spec: &ParamSpec) -> Result<Option<i64>, ConfigError> {
        match self.get(spec.name) {
            Some(ParamValue::Null) => Ok(None),
            Some(ParamValue::Int(i)) => Ok(Some(*i)),
            _ => Err(undeclared(spec)),
        }
    }
}

fn undeclared(spec: &ParamSpec) -> ConfigError {
    ConfigError {
        location: format!("parameter '{}'", spec.name),
        message: "is not declared with its type in this build (an engine parameter must be; this is a bug in arrakis)".into(),
    }
}

/// The declarations a build resolves: the rules' and [`ENGINE_PARAMS`].
pub fn with_engine_params(mut decls: BTreeMap<String, ParamDecl>) -> BTreeMap<String, ParamDecl> {
    for p in ENGINE_PARAMS {
        decls.entry(p.name.to_string()).or_insert_with(|| p.decl());
    }
    decls
}

fn normalise(key: &str) -> String {
    key.replace('-', "_")
}

/// Resolve the parameters `decls` declares (a rule set's, see [`with_engine_params`]): declared
/// defaults, then each `--config` file in order, then each `--set key=value` in order.
pub fn resolve(
    decls: &BTreeMap<String, ParamDecl>,
    config_files: &[PathBuf],
    sets: &[String],
) -> Result<Params, ConfigError> {
    let mut params = Params::default();
    for (k, d) in decls {
        let v = d.default_value().map_err(|e| ConfigError {
            location: format!("parameter '{k}'"),
            message: e.to_string(),
        })?;
        params.values.insert(k.clone(), (v, Origin::Default));
    }
    for f in config_files {
        let text = crate::hash::read_regular_string(f).map_err(|e| ConfigError {
            location: f.display().to_string(),
            message: format!("cannot read the config file: {e}"),
        })?;
        apply_text(&mut params, decls, f, &text)?;
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
            let message = if let Some(why) = renamed(&key) {
                why
            } else if ARRAKIS_KEYS.contains(&key.as_str()) || MONGO_KEYS.contains(&key.as_str()) {
                let value = serde_yaml::from_str(v).unwrap_or(serde_yaml::Value::Null);
                match arrakis_key(&key, &value) {
                    Err(why) => why,
                    Ok(why) => format!("'{key}' has no effect here: {why}"),
                }
            } else {
                format!(
                    "unknown parameter '{key}'{} (`arrakis params` lists every parameter and the stages that read it)",
                    suggest_parameter(&key, decls.keys().map(|s| s.as_str()))
                )
            };
            return Err(ConfigError {
                location: loc,
                message,
            });
        };
        if v.trim().is_empty() {
            return Err(ConfigError {
                location: loc,
                message: format!(
                    "no value given: write --set {key}=VALUE ({}){}",
                    describe(decl),
                    if decl.nullable {
                        format!(", or --set {key}=null")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(v).unwrap_or(serde_yaml::Value::String(v.to_string()));
        match decl.coerce(&yaml) {
            Ok(Some(val)) => {
                params.values.insert(key, (val, Origin::Set));
            }
            Ok(None) => {
                let d = decl.default_value().map_err(|e| ConfigError {
                    location: loc.clone(),
                    message: e.to_string(),
                })?;
                params.values.insert(key, (d, Origin::Set));
            }
            Err(e) => {
                return Err(ConfigError {
                    location: loc,
                    message: explain(&e, decl),
                })
            }
        }
    }
    Ok(params)
}

/// A pipeline config (YAML) holding every parameter of `decls` with its value in `params`, each
/// with its help, what it accepts and the rules that read it (`readers`) as a comment: what
/// `arrakis params --yaml` prints and `configs/default.yaml` holds.
pub fn to_yaml(
    decls: &BTreeMap<String, ParamDecl>,
    params: &Params,
    readers: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut out = String::from(
        "# arrakis pipeline parameters: every parameter with its value, as `arrakis params --yaml`\n\
         # writes it. Key names are Arrakis's, so an Arrakis config works with --config as it is.\n\
         # The defaults are written once, in src/stages/params.rs (configs/default.yaml is this\n\
         # output, kept equal by a test): to change a value, copy this file, edit the copy and pass\n\
         # it with --config, or use --set KEY=VALUE.\n",
    );
    for (k, d) in decls {
        let Some(v) = params.get(k) else { continue };
        out.push('\n');
        if let Some(h) = &d.help {
            out.push_str(&format!("# {h}.\n"));
        }
        let mut by: Vec<&str> = readers
            .get(k)
            .map(|r| r.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if ENGINE_PARAMS.iter().any(|p| p.name == k) {
            by.push("the engine");
        }
        let by = by.join(", ");
        out.push_str(&format!("# {}; read by {by}.\n", describe(d)));
        out.push_str(&format!("{k}: {}\n", yaml_scalar(v)));
    }
    out
}

/// A value as YAML reads it back to the same value.
fn yaml_scalar(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => serde_yaml::to_string(s)
            .map(|t| t.trim_end().to_string())
            .unwrap_or_else(|_| format!("{s:?}")),
        ParamValue::List(items) => format!(
            "[{}]",
            items.iter().map(yaml_scalar).collect::<Vec<_>>().join(", ")
        ),
        other => other.display(),
    }
}

/// A refused value's message, with what the parameter accepts where the error does not say it.
fn explain(e: &params::ValueError, decl: &ParamDecl) -> String {
    match e {
        // The accepted values when they say more than the type the error already names.
        params::ValueError::Type { expected, .. } if describe(decl) != *expected => {
            format!("{e}; accepted: {}", describe(decl))
        }
        _ => e.to_string(),
    }
}

/// What a declaration accepts, for messages: "float in (0, 1]", "one of log, linear".
pub fn describe(d: &ParamDecl) -> String {
    let mut s = d.ty.name().to_string();
    if let Some(r) = &d.range {
        s.push_str(&format!(" in {r}"));
    }
    if let Some(c) = &d.choices {
        s = format!("one of {}", c.join(", "));
    }
    if d.nullable {
        s.push_str(" or null");
    }
    s
}

/// The keys whose values the YAML Arrakis saves for each run (`yaml.dump(vars(args))`) dumps as
/// `pathlib` paths: `key: !!python/object/apply:pathlib.PosixPath` over the path's parts
/// (`[/, data, holo.fits]`). The YAML reader drops the tag, leaving the list of parts.
fn python_path_keys(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '-']))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            v.trim_start()
                .starts_with("!!python/object/apply:pathlib.")
                .then(|| k.trim().to_string())
        })
        .collect()
}

/// The parts of a dumped `pathlib` path joined back into one path (`/data/holo.fits`).
fn join_path_parts(v: serde_yaml::Value) -> serde_yaml::Value {
    match &v {
        serde_yaml::Value::Sequence(parts) if parts.iter().all(|p| p.as_str().is_some()) => {
            let path: std::path::PathBuf = parts.iter().filter_map(|p| p.as_str()).collect();
            serde_yaml::Value::String(path.to_string_lossy().into_owned())
        }
        _ => v,
    }
}

/// A config in configargparse's own format (what Arrakis's `--config` also reads): `key = value`
/// lines, `#`/`;` comments, `[section]` headers ignored, values as YAML reads them (`true`,
/// `-8`, `[0, 2, 4]`, text). `None` when the text has no `key = value` line (then it is YAML).
/// Also returns each key's line.
fn key_value_config(
    text: &str,
) -> Option<(
    serde_yaml::Mapping,
    std::collections::HashMap<String, usize>,
)> {
    let mut map = serde_yaml::Mapping::new();
    let mut lines = std::collections::HashMap::new();
    let mut any = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') || t.starts_with('[') {
            continue;
        }
        let (k, v) = t.split_once('=')?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        let v = v.split(" #").next().unwrap_or("").trim();
        let value = if v.is_empty() {
            serde_yaml::Value::Null
        } else {
            serde_yaml::from_str(v).unwrap_or_else(|_| serde_yaml::Value::String(v.to_string()))
        };
        map.insert(serde_yaml::Value::String(k.to_string()), value);
        lines.insert(k.to_string(), n + 1);
        any = true;
    }
    any.then_some((map, lines))
}

fn apply_text(
    params: &mut Params,
    decls: &BTreeMap<String, ParamDecl>,
    file: &Path,
    text: &str,
) -> Result<(), ConfigError> {
    let kv = key_value_config(text);
    let map = match &kv {
        Some((m, _)) => m.clone(),
        None => {
            let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| ConfigError {
                location: location(file, e.location().map(|l| l.line())),
                message: format!(
                    "not valid YAML: {}",
                    e.to_string().split(" at line ").next().unwrap_or("")
                ),
            })?;
            match value {
                serde_yaml::Value::Mapping(m) => m,
                serde_yaml::Value::Null => return Ok(()),
                _ => {
                    return Err(ConfigError {
                        location: location(file, Some(1)),
                        message: "a pipeline config must be a mapping of parameter names to values (YAML `key: value`, or configargparse's `key = value` lines)".into(),
                    })
                }
            }
        }
    };
    let line_for = |raw_key: &str| match &kv {
        Some((_, lines)) => lines.get(raw_key).copied(),
        None => line_of(text, &[raw_key]),
    };
    let path_keys = python_path_keys(text);
    for (k, v) in map {
        let raw_key = match &k {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let v = if path_keys.contains(&raw_key) {
            join_path_parts(v)
        } else {
            v
        };
        let key = normalise(&raw_key);
        let loc = location(file, line_for(&raw_key));
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
                        message: format!("{key}: {}", explain(&e, decl)),
                    })
                }
            }
        } else if MONGO_KEYS.contains(&key.as_str()) {
            params.unused.push((
                key,
                "MongoDB setting: arrakis keeps its state in files and the cache".into(),
            ));
        } else if let Some(why) = renamed(&key) {
            return Err(ConfigError {
                location: loc,
                message: why,
            });
        } else if ARRAKIS_KEYS.contains(&key.as_str()) {
            match arrakis_key(&key, &v) {
                Ok(why) => params.unused.push((key, why)),
                Err(why) => {
                    return Err(ConfigError {
                        location: loc,
                        message: why,
                    })
                }
            }
        } else if CLUSTER_KEYS.contains(&key.as_str()) {
            return Err(ConfigError {
                location: loc,
                message: format!(
                    "'{raw_key}' is a dask-jobqueue setting: this is a cluster config, not a pipeline config; pass it with --dask-config FILE (the cutout and per-source stages) or --imager-dask-config FILE (imaging), as Arrakis takes it"
                ),
            });
        } else {
            let known = decls
                .keys()
                .map(|s| s.as_str())
                .chain(ARRAKIS_KEYS.iter().copied());
            return Err(ConfigError {
                location: loc,
                message: match suggest_parameter(&key, known) {
                    hint if hint.is_empty() => format!(
                        "unknown parameter '{raw_key}'; remove it or check the spelling (`arrakis params` lists every parameter)"
                    ),
                    hint => format!("unknown parameter '{raw_key}'{hint}"),
                },
            });
        }
    }
    Ok(())
}

/// "; did you mean 'K'?" for an unknown `--set` key: the nearest parameter name, else the
/// nearest to what follows a prefix of the key (`rmclean_cutoff` names RM-CLEAN's `cutoff`, as
/// a user who thinks in stages might write it), else nothing.
fn suggest_parameter<'a>(key: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    let direct = did_you_mean(key, known.clone());
    if !direct.is_empty() {
        return direct;
    }
    key.match_indices('_')
        .map(|(i, _)| &key[i + 1..])
        .filter(|rest| rest.chars().count() >= 4)
        .map(|rest| did_you_mean(rest, known.clone()))
        .find(|hint| !hint.is_empty())
        .unwrap_or_default()
}
