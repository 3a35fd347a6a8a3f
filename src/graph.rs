//! The target DAG of one field: targets, their input slots and outputs, dependencies and
//! dependents, and selections (`--until`, `--only`).
//!
//! Owns: [`Graph`], [`Target`]. Built by [`crate::rules::expand`].
//! Must never: read files or the cache; know what a stage computes.
//! Invariants: target indices are a topological order (every target after the targets it reads
//! from); no two targets share an output path; every output path is relative and inside the field
//! directory.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::params::ParamValue;
use crate::rules::spec::UnitKind;
use crate::units::Units;

/// Marks an unbound variable slot.
pub const NONE: u32 = u32::MAX;
/// Binding slots: beam, source, component, then up to five foreach variables.
pub const SLOTS: usize = 8;
/// A unit's variables as indexes (see [`Target::binding`]).
pub type Binding = [u32; SLOTS];
/// Slot of the beam index.
pub const BEAM: usize = 0;
/// Slot of the island index.
pub const SOURCE: usize = 1;
/// Slot of the component index.
pub const COMPONENT: usize = 2;

/// One input file of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputFile {
    /// A file that no rule makes (a beam cube, a catalogue), relative to the field directory.
    Source(String),
    /// Output `output` of target `target`.
    Output {
        /// Index of the producing target.
        target: u32,
        /// Index into that target's outputs.
        output: u32,
    },
}

/// One declared input slot of a target, expanded.
#[derive(Clone, Debug)]
pub struct InputSlot {
    /// Index into the rule's `inputs`.
    pub spec: u16,
    /// The files, in a deterministic order. Empty for an absent optional file.
    pub files: Vec<InputFile>,
    /// A `file:` input marked optional: a missing file leaves the slot empty.
    pub optional: bool,
}

/// One output of a target, expanded.
#[derive(Clone, Debug)]
pub struct OutputFile {
    /// Index into the rule's `outputs`.
    pub spec: u16,
    /// Path relative to the field directory.
    pub rel: String,
    /// For an `each:` output, the index of the finer unit it belongs to (into the field's
    /// sources or components, per the rule's `each`); [`NONE`] otherwise.
    pub each: u32,
}

/// A rule applied to one unit.
#[derive(Clone, Debug)]
pub struct Target {
    /// `rule/unit`, e.g. `rmsynth/J123745+120300_c1`.
    pub id: String,
    /// Index into the graph's rule table.
    pub rule: u32,
    /// The unit's variables: beam, source and component indexes, then foreach value indexes
    /// ([`NONE`] where unbound). [`Graph::vars`] turns them into names.
    pub binding: Binding,
    /// Input slots in declared order.
    pub inputs: Vec<InputSlot>,
    /// Outputs.
    pub outputs: Vec<OutputFile>,
    /// Distinct upstream targets, ascending.
    pub deps: Vec<u32>,
}

/// What the graph keeps of each active rule.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// The action descriptor that goes into keys.
    pub action: String,
    /// Parameters the rule reads, sorted by name, with their values for this build.
    pub params: Vec<(String, ParamValue)>,
    /// Whether a failure lets independent targets go on.
    pub keep_going: bool,
    /// Input slot names in declared order.
    pub input_names: Vec<String>,
    /// Output names in declared order.
    pub output_names: Vec<String>,
    /// Per output, the finer unit an `each:` output expands over.
    pub output_each: Vec<Option<UnitKind>>,
    /// Which cluster config runs its targets.
    pub resources: crate::rules::spec::Resources,
    /// Input slots (spec indexes) whose `file:` path a parameter names (`{param:holofile}`),
    /// with that parameter: a missing file there is a mistake in the parameter's value.
    pub param_files: Vec<(u16, String)>,
}

/// The expanded targets of one field.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Field name.
    pub field: String,
    /// The field directory (absolute).
    pub field_dir: PathBuf,
    /// Active rules (the targets' `rule` indexes into this).
    pub rules: Vec<RuleInfo>,
    /// Targets in topological order.
    pub targets: Vec<Target>,
    /// For each target, the targets that read from it, ascending.
    pub dependents: Vec<Vec<u32>>,
    /// Islands that no beam holds (reported, not built).
    pub orphans: Vec<String>,
    /// The field's units (names for binding indexes).
    pub units: Units,
    /// Names of the foreach variables (binding slots 3..).
    pub foreach_names: Vec<String>,
    /// Values of each foreach variable.
    pub foreach_values: Vec<Vec<String>>,
    /// Every glob evaluated during expansion: (absolute pattern, matches relative to the field
    /// directory, sorted). A snapshot re-evaluates them to see whether the graph would change.
    pub globs: Vec<(String, Vec<String>)>,
}

/// `--until`/`--only` named a stage the rules do not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown stage '{stage}'{hint} (stages: {stages})")]
pub struct UnknownStage {
    /// What was asked for.
    pub stage: String,
    /// ", did you mean ...?" or empty.
    pub hint: String,
    /// The stages there are.
    pub stages: String,
}

impl Graph {
    /// Fill `dependents` from every target's `deps`.
    pub fn link(&mut self) {
        let mut dependents = vec![Vec::new(); self.targets.len()];
        for (i, t) in self.targets.iter().enumerate() {
            for &d in &t.deps {
                dependents[d as usize].push(i as u32);
            }
        }
        self.dependents = dependents;
    }

    /// The template variables of target `ti`: field, beam, source, component and foreach
    /// variables that are bound.
    pub fn vars(&self, ti: usize) -> Vec<(String, String)> {
        let b = &self.targets[ti].binding;
        let u = &self.units;
        let mut v = vec![("field".to_string(), u.field.clone())];
        if b[BEAM] != NONE {
            v.push(("beam".into(), u.beams[b[BEAM] as usize].clone()));
        }
        if b[SOURCE] != NONE {
            v.push(("source".into(), u.sources[b[SOURCE] as usize].clone()));
        }
        if b[COMPONENT] != NONE {
            v.push((
                "component".into(),
                u.components[b[COMPONENT] as usize].0.clone(),
            ));
        }
        for (i, name) in self.foreach_names.iter().enumerate() {
            if b[3 + i] != NONE {
                v.push((
                    name.clone(),
                    self.foreach_values[i][b[3 + i] as usize].clone(),
                ));
            }
        }
        v
    }

    /// For an `each:` output of target `ti`, the name of the unit it belongs to.
    pub fn each_label(&self, ti: usize, k: usize) -> Option<&str> {
        let t = &self.targets[ti];
        let o = &t.outputs[k];
        if o.each == NONE {
            return None;
        }
        match self.rules[t.rule as usize].output_each[o.spec as usize]? {
            UnitKind::Beam => self.units.beams.get(o.each as usize).map(|s| s.as_str()),
            UnitKind::Source => self.units.sources.get(o.each as usize).map(|s| s.as_str()),
            UnitKind::Component => self
                .units
                .components
                .get(o.each as usize)
                .map(|c| c.0.as_str()),
            UnitKind::Field => Some(self.units.field.as_str()),
        }
    }

    /// Index of the target with id `id`.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.id == id)
    }

    /// The stage of target `i`.
    pub fn stage_of(&self, i: usize) -> &str {
        &self.rules[self.targets[i].rule as usize].stage
    }

    /// Stage names in order.
    pub fn stages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.stage) {
                out.push(r.stage.clone());
            }
        }
        out
    }

    /// Targets selected by `--until`/`--only`: `until` keeps every stage up to and including the
    /// named one (in pipeline order); `only` keeps just the named stage. Unknown stage names are
    /// an error listing the stages.
    pub fn select(
        &self,
        until: Option<&str>,
        only: Option<&str>,
    ) -> Result<Vec<bool>, UnknownStage> {
        let stages = self.stages();
        let check = |s: &str| -> Result<usize, UnknownStage> {
            stages
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| UnknownStage {
                    stage: s.to_string(),
                    hint: crate::diag::did_you_mean(s, stages.iter().map(|x| x.as_str())),
                    stages: stages.join(", "),
                })
        };
        let rank: HashMap<&str, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let until = until.map(check).transpose()?;
        let only = only.map(check).transpose()?;
        Ok((0..self.targets.len())
            .map(|i| {
                let r = rank[self.stage_of(i)];
                until.map(|u| r <= u).unwrap_or(true) && only.map(|o| r == o).unwrap_or(true)
            })
            .collect())
    }

    /// Graphviz DOT of the graph (targets as nodes, dependencies as edges), clustered by stage.
    pub fn to_dot(&self) -> String {
        let mut s =
            String::from("digraph arrakis {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
        for stage in self.stages() {
            s.push_str(&format!(
                "  subgraph \"cluster_{stage}\" {{\n    label=\"{stage}\";\n"
            ));
            for (i, t) in self.targets.iter().enumerate() {
                if self.stage_of(i) == stage {
                    s.push_str(&format!(
                        "    t{i} [label=\"{}\"];\n",
                        t.id.replace('"', "\\\"")
                    ));
                }
            }
            s.push_str("  }\n");
        }
        for (i, t) in self.targets.iter().enumerate() {
            for d in &t.deps {
                s.push_str(&format!("  t{d} -> t{i};\n"));
            }
        }
        s.push_str("}\n");
        s
    }
}
