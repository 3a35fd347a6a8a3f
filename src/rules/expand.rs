//! Expansion of a rule set over a field's units into the target graph.
//!
//! Owns: unit enumeration per rule (with `foreach` products), template rendering, the join that
//! connects an input `from: RULE` to the upstream outputs whose unit variables agree with the
//! target's (same unit, enclosing unit, or a gather over finer units), glob inputs, and the
//! duplicate-output check.
//! Must never: read file contents or the cache (globs list directory entries only).
//! Invariant: the same rules, parameters and units give the same graph, in the same order.

use std::collections::HashMap;
use std::path::Path;

use crate::config::params::ParamValue;
use crate::config::Params;
use crate::graph::{Graph, InputFile, InputSlot, OutputFile, RuleInfo, Target};
use crate::rules::spec::{placeholders, Action, InputSource, Rule, RuleSet, UnitKind};
use crate::units::Units;

/// A problem found while expanding rules for a field.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct ExpandError {
    /// Rule file and target, as far as known.
    pub context: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

const NONE: u32 = u32::MAX;
const BEAM: usize = 0;
const SOURCE: usize = 1;
const COMPONENT: usize = 2;

/// Slot layout of bindings: beam, source, component, then every foreach variable of the set.
struct VarSpace {
    foreach_names: Vec<String>,
    foreach_values: Vec<Vec<String>>,
}

impl VarSpace {
    fn new(rules: &RuleSet) -> VarSpace {
        let mut vs = VarSpace {
            foreach_names: Vec::new(),
            foreach_values: Vec::new(),
        };
        for r in &rules.rules {
            for (k, vals) in &r.foreach {
                let i = match vs.foreach_names.iter().position(|n| n == k) {
                    Some(i) => i,
                    None => {
                        vs.foreach_names.push(k.clone());
                        vs.foreach_values.push(Vec::new());
                        vs.foreach_names.len() - 1
                    }
                };
                for v in vals {
                    if !vs.foreach_values[i].contains(v) {
                        vs.foreach_values[i].push(v.clone());
                    }
                }
            }
        }
        vs
    }
    fn width(&self) -> usize {
        3 + self.foreach_names.len()
    }
    fn slot_of(&self, name: &str) -> Option<usize> {
        self.foreach_names
            .iter()
            .position(|n| n == name)
            .map(|i| 3 + i)
    }
}

/// Render `template` with the variables of `binding`.
fn render(
    template: &str,
    binding: &[u32],
    vs: &VarSpace,
    units: &Units,
    params: &[(String, ParamValue)],
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if rest[i + 1..].starts_with(c as char) {
            out.push(c as char);
            rest = &rest[i + 2..];
            continue;
        }
        let end = rest[i..].find('}').ok_or("unclosed '{'")? + i;
        let name = &rest[i + 1..end];
        let get = |slot: usize| binding.get(slot).copied().filter(|&v| v != NONE);
        let value: Option<String> = match name {
            "field" => Some(units.field.clone()),
            "beam" => get(BEAM).map(|b| units.beams[b as usize].clone()),
            "source" => get(SOURCE).map(|s| units.sources[s as usize].clone()),
            "component" => get(COMPONENT).map(|c| units.components[c as usize].0.clone()),
            _ => {
                if let Some(p) = name.strip_prefix("param:") {
                    params
                        .iter()
                        .find(|(k, _)| k == p)
                        .map(|(_, v)| v.display())
                } else {
                    vs.slot_of(name)
                        .and_then(|s| get(s).map(|v| vs.foreach_values[s - 3][v as usize].clone()))
                }
            }
        };
        out.push_str(
            &value
                .ok_or_else(|| format!("placeholder '{{{name}}}' has no value for this target"))?,
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check_inside(rel: &str) -> Result<(), String> {
    if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!(
            "path '{rel}' is not a plain relative path inside the field directory"
        ));
    }
    Ok(())
}

/// Units of a rule's kind, as bindings (without foreach).
fn unit_bindings(kind: UnitKind, units: &Units, width: usize) -> Vec<Vec<u32>> {
    let blank = vec![NONE; width];
    match kind {
        UnitKind::Field => vec![blank],
        UnitKind::Beam => (0..units.beams.len() as u32)
            .map(|b| {
                let mut v = blank.clone();
                v[BEAM] = b;
                v
            })
            .collect(),
        UnitKind::Source => (0..units.sources.len() as u32)
            .filter(|&s| !units.orphan_mask.get(s as usize).copied().unwrap_or(false))
            .map(|s| {
                let mut v = blank.clone();
                v[SOURCE] = s;
                v
            })
            .collect(),
        UnitKind::Component => (0..units.components.len() as u32)
            .filter(|&c| {
                let s = units.components[c as usize].1;
                !units.orphan_mask.get(s as usize).copied().unwrap_or(false)
            })
            .map(|c| {
                let mut v = blank.clone();
                v[SOURCE] = units.components[c as usize].1;
                v[COMPONENT] = c;
                v
            })
            .collect(),
    }
}

/// Finer units that an output `each: KIND` expands over, for a target bound as `b`.
fn each_bindings(rule_unit: UnitKind, each: UnitKind, b: &[u32], units: &Units) -> Vec<Vec<u32>> {
    let with = |f: &dyn Fn(&mut Vec<u32>)| {
        let mut v = b.to_vec();
        f(&mut v);
        v
    };
    let sources: Vec<u32> = match rule_unit {
        UnitKind::Beam => units.beam_sources[b[BEAM] as usize].clone(),
        UnitKind::Source => vec![b[SOURCE]],
        _ => (0..units.sources.len() as u32).collect(),
    };
    match each {
        UnitKind::Beam => (0..units.beams.len() as u32)
            .map(|x| with(&|v| v[BEAM] = x))
            .collect(),
        UnitKind::Source => sources.iter().map(|&s| with(&|v| v[SOURCE] = s)).collect(),
        UnitKind::Component => sources
            .iter()
            .flat_map(|&s| {
                units.source_components[s as usize]
                    .iter()
                    .map(move |&c| (s, c))
            })
            .map(|(s, c)| {
                with(&|v| {
                    v[SOURCE] = s;
                    v[COMPONENT] = c
                })
            })
            .collect(),
        UnitKind::Field => vec![b.to_vec()],
    }
}

fn unit_label(kind: UnitKind, b: &[u32], vs: &VarSpace, units: &Units) -> String {
    let mut s = match kind {
        UnitKind::Field => units.field.clone(),
        UnitKind::Beam => format!("beam{}", units.beams[b[BEAM] as usize]),
        UnitKind::Source => units.sources[b[SOURCE] as usize].clone(),
        UnitKind::Component => units.components[b[COMPONENT] as usize].0.clone(),
    };
    for (i, vals) in vs.foreach_values.iter().enumerate() {
        let v = b[3 + i];
        if v != NONE {
            s.push('.');
            s.push_str(&vals[v as usize]);
        }
    }
    s
}

/// Upstream instances grouped by their values on the join variables.
type JoinIndex = HashMap<Vec<u32>, Vec<usize>>;

struct Instances {
    /// Which binding slots are bound for every instance of this output.
    bound: Vec<bool>,
    items: Vec<(u32, u32, Vec<u32>)>,
}

/// The action descriptor that goes into a key.
pub fn action_descriptor(rule: &Rule, builtin_version: &dyn Fn(&str) -> Option<u32>) -> String {
    match &rule.action {
        Action::Builtin(name) => format!("builtin:{name}:v{}", builtin_version(name).unwrap_or(0)),
        Action::Command(argv) => format!(
            "command:{}",
            serde_json::to_string(argv).unwrap_or_default()
        ),
    }
}

/// Whether a rule is active under `params` (its `when` conditions hold).
pub fn rule_active(rule: &Rule, params: &Params) -> bool {
    rule.when.iter().all(|(k, v)| params.get(k) == Some(v))
}

/// Expand `rules` over `units` into the target graph of the field in `field_dir`.
pub fn expand(
    rules: &RuleSet,
    params: &Params,
    units: &Units,
    field_dir: &Path,
    builtin_version: &dyn Fn(&str) -> Option<u32>,
) -> Result<Graph, ExpandError> {
    let vs = VarSpace::new(rules);
    let width = vs.width();
    let mut graph = Graph {
        field: units.field.clone(),
        field_dir: field_dir.to_path_buf(),
        rules: Vec::new(),
        targets: Vec::new(),
        dependents: Vec::new(),
        orphans: units.orphans.clone(),
    };
    let mut rule_index: HashMap<&str, usize> = HashMap::new();
    let mut instances: HashMap<(usize, usize), Instances> = HashMap::new();
    let mut join_cache: HashMap<(usize, usize, Vec<bool>), JoinIndex> = HashMap::new();
    let mut output_owner: HashMap<String, u32> = HashMap::new();

    for rule in &rules.rules {
        if !rule_active(rule, params) {
            continue;
        }
        let ri = graph.rules.len();
        let rparams: Vec<(String, ParamValue)> = rule
            .params
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    params.get(k).cloned().unwrap_or(ParamValue::Null),
                )
            })
            .collect();
        let ctx = |target: &str| {
            format!(
                "{} (rule '{}'{})",
                rule.file.display(),
                rule.name,
                if target.is_empty() {
                    String::new()
                } else {
                    format!(", target {target}")
                }
            )
        };
        // Inputs: resolve upstream rules, check they are active.
        let mut upstream: Vec<Option<(usize, usize)>> = Vec::new();
        for inp in &rule.inputs {
            match &inp.source {
                InputSource::Rule { from, output } => {
                    let Some(&up) = rule_index.get(from.as_str()) else {
                        let why = match rules.get(from) {
                            Some(r) => format!(
                                "rule '{from}' is switched off by its 'when' ({}) under the current parameters; change the parameters or the 'when' of one of the rules",
                                r.when.iter().map(|(k, v)| format!("{k}: {}", v.display())).collect::<Vec<_>>().join(", ")
                            ),
                            None => format!("rule '{from}' does not exist"),
                        };
                        return Err(ExpandError {
                            context: ctx(""),
                            message: format!("input '{}' reads from {why}", inp.name),
                        });
                    };
                    let up_rule = rules.get(from).ok_or_else(|| ExpandError {
                        context: ctx(""),
                        message: format!("rule '{from}' vanished"),
                    })?;
                    let oi = up_rule
                        .outputs
                        .iter()
                        .position(|o| &o.name == output)
                        .unwrap_or(0);
                    upstream.push(Some((up, oi)));
                }
                _ => upstream.push(None),
            }
        }
        let include_input: Vec<bool> = rule
            .inputs
            .iter()
            .map(|i| {
                i.when
                    .as_ref()
                    .map(|p| params.get(p) == Some(&ParamValue::Bool(true)))
                    .unwrap_or(true)
                    && i.unless
                        .as_ref()
                        .map(|p| params.get(p) != Some(&ParamValue::Bool(true)))
                        .unwrap_or(true)
            })
            .collect();
        graph.rules.push(RuleInfo {
            name: rule.name.clone(),
            stage: rule.stage.clone(),
            action: action_descriptor(rule, builtin_version),
            params: rparams.clone(),
            keep_going: rule.keep_going,
            input_names: rule.inputs.iter().map(|i| i.name.clone()).collect(),
            output_names: rule.outputs.iter().map(|o| o.name.clone()).collect(),
        });
        rule_index.insert(rule.name.as_str(), ri);

        // Unit bindings × foreach.
        let mut bindings = unit_bindings(rule.unit, units, width);
        for (var, vals) in &rule.foreach {
            let slot = vs.slot_of(var).unwrap_or(0);
            let all = &vs.foreach_values[slot - 3];
            let mut next = Vec::with_capacity(bindings.len() * vals.len());
            for b in &bindings {
                for v in vals {
                    let mut nb = b.clone();
                    nb[slot] = all.iter().position(|x| x == v).unwrap_or(0) as u32;
                    next.push(nb);
                }
            }
            bindings = next;
        }
        let bound_of = |b: &[u32]| -> Vec<bool> { b.iter().map(|&v| v != NONE).collect() };

        for b in &bindings {
            let ti = graph.targets.len() as u32;
            let id = format!("{}/{}", rule.name, unit_label(rule.unit, b, &vs, units));
            let mut outputs = Vec::new();
            for (oi, o) in rule.outputs.iter().enumerate() {
                let obs = match o.each {
                    Some(each) => each_bindings(rule.unit, each, b, units),
                    None => vec![b.clone()],
                };
                for ob in obs {
                    let rel = render(&o.path, &ob, &vs, units, &rparams)
                        .and_then(|r| check_inside(&r).map(|_| r))
                        .map_err(|e| ExpandError {
                            context: ctx(&id),
                            message: format!("output '{}': {e}", o.name),
                        })?;
                    if let Some(&other) = output_owner.get(&rel) {
                        return Err(ExpandError {
                            context: ctx(&id),
                            message: format!(
                                "output '{}' is {rel}, which target {} also writes; give the rules distinct output paths",
                                o.name, graph.targets[other as usize].id
                            ),
                        });
                    }
                    output_owner.insert(rel.clone(), ti);
                    let each = o.each.map(|e| {
                        unit_label(
                            e,
                            &ob,
                            &VarSpace {
                                foreach_names: vec![],
                                foreach_values: vec![],
                            },
                            units,
                        )
                    });
                    let entry = instances.entry((ri, oi)).or_insert_with(|| Instances {
                        bound: bound_of(&ob),
                        items: Vec::new(),
                    });
                    entry.items.push((ti, outputs.len() as u32, ob));
                    outputs.push(OutputFile {
                        spec: oi as u16,
                        rel,
                        each,
                    });
                }
            }
            let mut inputs = Vec::new();
            let mut deps = Vec::new();
            let dbound = bound_of(b);
            for (ii, inp) in rule.inputs.iter().enumerate() {
                let mut files = Vec::new();
                if include_input[ii] {
                    match (&inp.source, upstream[ii]) {
                        (InputSource::Rule { .. }, Some((up, oi))) => {
                            if let Some(inst) = instances.get(&(up, oi)) {
                                let shared: Vec<bool> = inst
                                    .bound
                                    .iter()
                                    .zip(&dbound)
                                    .map(|(a, b)| *a && *b)
                                    .collect();
                                let index = join_cache
                                    .entry((up, oi, shared.clone()))
                                    .or_insert_with(|| {
                                        let mut m: HashMap<Vec<u32>, Vec<usize>> = HashMap::new();
                                        for (k, (_, _, ob)) in inst.items.iter().enumerate() {
                                            let key: Vec<u32> = ob
                                                .iter()
                                                .zip(&shared)
                                                .filter(|(_, s)| **s)
                                                .map(|(v, _)| *v)
                                                .collect();
                                            m.entry(key).or_default().push(k);
                                        }
                                        m
                                    });
                                let key: Vec<u32> = b
                                    .iter()
                                    .zip(&shared)
                                    .filter(|(_, s)| **s)
                                    .map(|(v, _)| *v)
                                    .collect();
                                if let Some(list) = index.get(&key) {
                                    for &k in list {
                                        let (t, o, _) = &inst.items[k];
                                        files.push(InputFile::Output {
                                            target: *t,
                                            output: *o,
                                        });
                                        deps.push(*t);
                                    }
                                }
                            }
                        }
                        (InputSource::File(tpl), _) => {
                            let rel = render(tpl, b, &vs, units, &rparams)
                                .and_then(|r| check_inside(&r).map(|_| r))
                                .map_err(|e| ExpandError {
                                    context: ctx(&id),
                                    message: format!("input '{}': {e}", inp.name),
                                })?;
                            files.push(InputFile::Source(rel));
                        }
                        (InputSource::Glob(tpl), _) => {
                            let pattern =
                                render(tpl, b, &vs, units, &rparams).map_err(|e| ExpandError {
                                    context: ctx(&id),
                                    message: format!("input '{}': {e}", inp.name),
                                })?;
                            let full = field_dir.join(&pattern);
                            let paths =
                                glob::glob(&full.to_string_lossy()).map_err(|e| ExpandError {
                                    context: ctx(&id),
                                    message: format!(
                                        "input '{}': bad glob pattern '{pattern}': {e}",
                                        inp.name
                                    ),
                                })?;
                            let mut found: Vec<String> = paths
                                .filter_map(|p| p.ok())
                                .filter_map(|p| {
                                    p.strip_prefix(field_dir)
                                        .ok()
                                        .map(|r| r.to_string_lossy().to_string())
                                })
                                .collect();
                            found.sort();
                            files.extend(found.into_iter().map(InputFile::Source));
                        }
                        _ => {}
                    }
                }
                inputs.push(InputSlot {
                    spec: ii as u16,
                    files,
                    optional: inp.optional,
                });
            }
            deps.sort_unstable();
            deps.dedup();
            let mut vars = vec![("field".to_string(), units.field.clone())];
            for (slot, name) in [(BEAM, "beam"), (SOURCE, "source"), (COMPONENT, "component")] {
                if b[slot] != NONE {
                    let v =
                        render(&format!("{{{name}}}"), b, &vs, units, &rparams).unwrap_or_default();
                    vars.push((name.to_string(), v));
                }
            }
            for (i, n) in vs.foreach_names.iter().enumerate() {
                if b[3 + i] != NONE {
                    vars.push((n.clone(), vs.foreach_values[i][b[3 + i] as usize].clone()));
                }
            }
            graph.targets.push(Target {
                id,
                rule: ri as u32,
                vars,
                inputs,
                outputs,
                deps,
            });
        }
    }
    // A file input must not be another target's output: that dependency would be invisible.
    for t in &graph.targets {
        for slot in &t.inputs {
            for f in &slot.files {
                if let InputFile::Source(rel) = f {
                    if let Some(&owner) = output_owner.get(rel) {
                        let rule = rules.get(&graph.rules[t.rule as usize].name);
                        return Err(ExpandError {
                            context: format!("{} (target {})", rule.map(|r| r.file.display().to_string()).unwrap_or_default(), t.id),
                            message: format!(
                                "input file {rel} is an output of target {}; read it with 'from: {}' instead of 'file:'",
                                graph.targets[owner as usize].id,
                                graph.rules[graph.targets[owner as usize].rule as usize].name
                            ),
                        });
                    }
                }
            }
        }
    }
    let _ = placeholders;
    graph.link();
    Ok(graph)
}
