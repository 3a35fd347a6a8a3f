//! Rules as the engine uses them: [`Rule`], [`RuleSet`] and their parts (units, inputs,
//! outputs, actions). Loading and validating rule files is `load.rs`; what a builtin promises,
//! `contract.rs`.
//!
//! Parameters: a rule lists the parameters arrakis defines by name (`params: [cutoff, gain]`);
//! their type, default, range and help are written once, in code (`stages::params`). A
//! parameter arrakis does not define (a command rule's own) is declared in full:
//! `params: {my_level: {type: float, default: 1, range: "[0, 5]"}}`.
//! Must never: look at a field's data (expansion does that) or run anything.
//! Invariant: a [`RuleSet`] that exists passed every check of `load.rs`: every name it uses
//! resolves, its graph of rules has no cycle, shared parameters agree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::params::{ParamDecl, ParamValue};

/// The kind of unit a rule runs per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// Once per field.
    Field,
    /// Once per beam.
    Beam,
    /// Once per island (source).
    Source,
    /// Once per component.
    Component,
}

impl UnitKind {
    /// The YAML spelling, also the template variable name.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Field => "field",
            UnitKind::Beam => "beam",
            UnitKind::Source => "source",
            UnitKind::Component => "component",
        }
    }
    /// Whether per-unit failures of this kind default to keep-going (per-source stages).
    pub fn keep_going_by_default(self) -> bool {
        matches!(self, UnitKind::Source | UnitKind::Component)
    }
}

/// Which cluster config a rule's targets use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Resources {
    /// `--dask-config`: many small tasks.
    #[default]
    Default,
    /// `--imager-dask-config`: few large tasks.
    Imager,
}

/// A rule's action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A builtin stage, by name; its VERSION comes from the registry.
    Builtin(String),
    /// An external command as an argv template.
    Command(Vec<String>),
}

/// Where an input comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSource {
    /// Outputs named `output` of rule `from`, joined on the unit variables both share.
    Rule {
        /// Upstream rule name.
        from: String,
        /// Upstream output name.
        output: String,
        /// Foreach variables of the upstream rule pinned to one value (`with: {stokes: i}`):
        /// the join takes that value instead of the target's own (a Q mosaic reading the
        /// Stokes I cutouts of its island).
        with: Vec<(String, String)>,
    },
    /// One file (path template relative to the field directory).
    File(String),
    /// Every file matching a glob template (relative to the field directory), sorted.
    Glob(String),
}

/// One declared input slot.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Slot name.
    pub name: String,
    /// Where it comes from.
    pub source: InputSource,
    /// A missing file is an absent slot rather than an error.
    pub optional: bool,
    /// Only when this holds.
    pub when: Option<InputCond>,
    /// Only when this does not hold.
    pub unless: Option<InputCond>,
}

/// The condition of an input's `when`/`unless`.
#[derive(Clone, Debug, PartialEq)]
pub enum InputCond {
    /// `when: PARAM`: a bool parameter that is true, or a nullable one that is not null.
    Set(String),
    /// `when: {PARAM: VALUE, ...}`: every parameter has its value (as a rule's `when`).
    Equals(Vec<(String, ParamValue)>),
}

impl InputCond {
    /// The parameters it tests.
    pub fn params(&self) -> Vec<&str> {
        match self {
            InputCond::Set(p) => vec![p.as_str()],
            InputCond::Equals(v) => v.iter().map(|(k, _)| k.as_str()).collect(),
        }
    }
}

/// One declared output.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSpec {
    /// Output name.
    pub name: String,
    /// Path template relative to the field directory.
    pub path: String,
    /// Expand once per related finer unit (e.g. a beam's cutouts: one per source in the beam).
    pub each: Option<UnitKind>,
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Rule name (unique in the set).
    pub name: String,
    /// Stage name for reports (defaults to the rule name).
    pub stage: String,
    /// The unit it runs per.
    pub unit: UnitKind,
    /// Extra expansion variables, e.g. `stokes: [i, q, u]`.
    pub foreach: Vec<(String, Vec<String>)>,
    /// Which cluster config.
    pub resources: Resources,
    /// Whether a failure lets independent targets go on.
    pub keep_going: bool,
    /// The rule is active only when these parameters have these values.
    pub when: Vec<(String, ParamValue)>,
    /// What it does.
    pub action: Action,
    /// Parameters read, sorted by name.
    pub params: BTreeMap<String, ParamDecl>,
    /// Inputs, in declared order.
    pub inputs: Vec<InputSpec>,
    /// Outputs, in declared order.
    pub outputs: Vec<OutputSpec>,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// One paragraph of documentation.
    pub doc: Option<String>,
}

/// A problem in a rule file.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RuleError {
    /// FILE:LINE.
    pub location: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A set of rules, validated together.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Rules in dependency order (every rule after the rules it reads from).
    pub rules: Vec<Rule>,
}

/// A template whose braces do not pair up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BraceError {
    /// `{` without `}`.
    #[error("unclosed '{{' in template '{0}'")]
    Unclosed(String),
    /// `}` without `{`.
    #[error("unmatched '}}' in template '{0}'")]
    Unmatched(String),
}

/// Split a template into literal text and `{placeholder}` names. `{{` and `}}` are literal braces.
pub fn placeholders(template: &str) -> Result<Vec<String>, BraceError> {
    let mut out = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
            }
            '{' => {
                let rest = &template[i + 1..];
                let end = rest
                    .find('}')
                    .ok_or_else(|| BraceError::Unclosed(template.to_string()))?;
                out.push(rest[..end].to_string());
                for _ in 0..end + 1 {
                    chars.next();
                }
            }
            '}' => return Err(BraceError::Unmatched(template.to_string())),
            _ => {}
        }
    }
    Ok(out)
}

/// Rules only a region runs (a field's rule set leaves them out).
pub const REGION_ONLY: &[&str] = &["merge"];

/// Rules a region does not run: everything up to each field's FRion-corrected mosaics, which a
/// region takes from its fields (`merge` combines them in place of `linmos`).
pub const FIELD_ONLY: &[&str] = &[
    "fix_ms", "wsclean", "imager", "beams", "cutout", "linmos", "frion",
];

/// The per-island component file of a region: the rows of `catalogue/components.csv` of one
/// island, so that a region island's components key on their own rows (adding a field to a
/// region reruns what it overlaps, not every component).
pub const REGION_ISLAND_COMPONENTS: &str = "catalogue/sources/{source}.csv";

impl RuleSet {
    /// The rules of a field: without the region-only ones.
    pub fn for_field(mut self) -> RuleSet {
        self.rules
            .retain(|r| !REGION_ONLY.contains(&r.name.as_str()));
        self
    }

    /// The rules of a region (a directory `arrakis region` made): without [`FIELD_ONLY`];
    /// what read `linmos` reads `merge`, nothing reads `frion` (the fields corrected their Q and
    /// U), and per-island and per-component rules read their island's own component rows
    /// ([`REGION_ISLAND_COMPONENTS`]) instead of the whole catalogue.
    pub fn for_region(self) -> RuleSet {
        let mut first = Vec::new();
        let mut rest = Vec::new();
        for mut r in self.rules {
            if FIELD_ONLY.contains(&r.name.as_str()) {
                continue;
            }
            r.inputs.retain(|i| {
                !matches!(&i.source, InputSource::Rule { from, .. }
                    if from != "linmos" && FIELD_ONLY.contains(&from.as_str()))
            });
            let per_island = matches!(r.unit, UnitKind::Source | UnitKind::Component);
            for i in &mut r.inputs {
                match &mut i.source {
                    InputSource::Rule { from, .. } if from == "linmos" => *from = "merge".into(),
                    InputSource::File(f)
                        if per_island && f.as_str() == crate::units::COMPONENTS_FILE =>
                    {
                        *f = REGION_ISLAND_COMPONENTS.into()
                    }
                    _ => {}
                }
            }
            if REGION_ONLY.contains(&r.name.as_str()) {
                first.push(r);
            } else {
                rest.push(r);
            }
        }
        first.extend(rest);
        RuleSet { rules: first }
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Every parameter declared by any rule, with its declaration.
    pub fn declared_params(&self) -> BTreeMap<String, ParamDecl> {
        let mut out = BTreeMap::new();
        for r in &self.rules {
            for (k, d) in &r.params {
                out.entry(k.clone()).or_insert_with(|| d.clone());
            }
        }
        out
    }

    /// What a build of these rules resolves: every declared parameter and the engine's own
    /// ([`crate::config::ENGINE_PARAMS`]), for [`crate::config::resolve`].
    pub fn param_decls(&self) -> BTreeMap<String, ParamDecl> {
        crate::config::with_engine_params(self.declared_params())
    }

    /// For each parameter, the rules that declare it (in rule order).
    pub fn param_readers(&self) -> BTreeMap<String, Vec<String>> {
        let mut readers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.rules {
            for p in r.params.keys() {
                readers.entry(p.clone()).or_default().push(r.name.clone());
            }
        }
        readers
    }

    /// Stage names in rule order, without repeats.
    pub fn stages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.stage) {
                out.push(r.stage.clone());
            }
        }
        out
    }
}
