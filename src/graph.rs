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
    /// For an `each:` output, the label of the finer unit it belongs to (e.g. the island name).
    pub each: Option<String>,
}

/// A rule applied to one unit.
#[derive(Clone, Debug)]
pub struct Target {
    /// `rule/unit`, e.g. `rmsynth/J123745+120300_c1`.
    pub id: String,
    /// Index into the graph's rule table.
    pub rule: u32,
    /// Template variables of the unit (field, beam, source, component, foreach variables).
    pub vars: Vec<(String, String)>,
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
    pub fn select(&self, until: Option<&str>, only: Option<&str>) -> Result<Vec<bool>, String> {
        let stages = self.stages();
        let check = |s: &str| -> Result<usize, String> {
            stages.iter().position(|x| x == s).ok_or_else(|| {
                format!(
                    "unknown stage '{s}'{} (stages: {})",
                    crate::diag::did_you_mean(s, stages.iter().map(|x| x.as_str())),
                    stages.join(", ")
                )
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
