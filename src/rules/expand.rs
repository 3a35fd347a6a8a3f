//! Expansion of a rule set over a field's units into the target graph.
//!
//! Owns: unit enumeration per rule (with `foreach` products), template compilation and
//! rendering, the join that connects an input `from: RULE` to the upstream outputs whose unit
//! variables agree with the target's (same unit, enclosing unit, or a gather over finer units),
//! glob inputs, and the duplicate-output check.
//! Must never: read file contents or the cache (globs list directory entries only).
//! Invariant: the same rules, parameters and units give the same graph, in the same order.
//! Performance: bindings are fixed-size arrays and templates are compiled once per rule, so a
//! 10 000-island field expands without per-target allocations beyond ids and paths.

use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::params::ParamValue;
use crate::config::Params;
use crate::graph::{
    Binding, Graph, InputFile, InputSlot, OutputFile, RuleInfo, Target, BEAM, COMPONENT, NONE,
    SLOTS, SOURCE,
};
use crate::rules::spec::{Action, InputCond, InputSource, Rule, RuleSet, UnitKind};
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

/// A path template that cannot be compiled or rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed '{{'")]
    Unclosed,
    /// `{param:NAME}` of a parameter the rule does not declare.
    #[error("parameter '{0}' is not declared by this rule")]
    Undeclared(String),
    /// A parameter's value is itself a bad template.
    #[error("the value of parameter '{name}' ('{value}'): {source}")]
    InParam {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        source: Box<TemplateError>,
    },
    /// A placeholder the rule's unit does not have.
    #[error("unknown placeholder '{{{0}}}'")]
    Unknown(String),
    /// A placeholder with no value for this target.
    #[error("a placeholder has no value for this target")]
    NoValue,
    /// A rendered path that leaves the field directory.
    #[error("path '{0}' is not a plain relative path inside the field directory")]
    Outside(String),
}

/// Foreach variables of the whole rule set: names (slots 3..) and their values.
struct VarSpace {
    names: Vec<String>,
    values: Vec<Vec<String>>,
}

impl VarSpace {
    fn new(rules: &RuleSet) -> Result<VarSpace, ExpandError> {
        let mut vs = VarSpace {
            names: Vec::new(),
            values: Vec::new(),
        };
        for r in &rules.rules {
            for (k, vals) in &r.foreach {
                let i = match vs.names.iter().position(|n| n == k) {
                    Some(i) => i,
                    None => {
                        vs.names.push(k.clone());
                        vs.values.push(Vec::new());
                        vs.names.len() - 1
                    }
                };
                for v in vals {
                    if !vs.values[i].contains(v) {
                        vs.values[i].push(v.clone());
                    }
                }
            }
        }
        if vs.names.len() > SLOTS - 3 {
            return Err(ExpandError {
                context: "rules".into(),
                message: format!(
                    "at most {} distinct foreach variables are supported (found {})",
                    SLOTS - 3,
                    vs.names.join(", ")
                ),
            });
        }
        Ok(vs)
    }
    fn slot_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name).map(|i| 3 + i)
    }
}

/// One piece of a compiled template.
enum Seg {
    Lit(String),
    Field,
    Slot(usize),
}

/// A path template compiled for one rule (parameters already substituted).
struct Template(Vec<Seg>);

impl Template {
    fn compile(
        template: &str,
        vs: &VarSpace,
        params: &[(String, ParamValue)],
    ) -> Result<Template, TemplateError> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let c = rest.as_bytes()[i] as char;
            if rest[i + 1..].starts_with(c) {
                lit.push(c);
                rest = &rest[i + 2..];
                continue;
            }
            let end = rest[i..].find('}').ok_or(TemplateError::Unclosed)? + i;
            let name = &rest[i + 1..end];
            let seg = match name {
                "field" => Seg::Field,
                "beam" => Seg::Slot(BEAM),
                "source" => Seg::Slot(SOURCE),
                "component" => Seg::Slot(COMPONENT),
                _ => {
                    if let Some(p) = name.strip_prefix("param:") {
                        let v = params
                            .iter()
                            .find(|(k, _)| k == p)
                            .map(|(_, v)| v.display())
                            .ok_or_else(|| TemplateError::Undeclared(p.to_string()))?;
                        // A parameter's value may itself name unit placeholders (a file per
                        // island: `ionosphere/{source}.txt`), but no further parameters.
                        let inner =
                            Template::compile(&v, vs, &[]).map_err(|e| TemplateError::InParam {
                                name: p.to_string(),
                                value: v.clone(),
                                source: Box::new(e),
                            })?;
                        for seg in inner.0 {
                            match seg {
                                Seg::Lit(l) => lit.push_str(&l),
                                other => {
                                    if !lit.is_empty() {
                                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                                    }
                                    segs.push(other);
                                }
                            }
                        }
                        rest = &rest[end + 1..];
                        continue;
                    }
                    Seg::Slot(
                        vs.slot_of(name)
                            .ok_or_else(|| TemplateError::Unknown(name.to_string()))?,
                    )
                }
            };
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(seg);
            rest = &rest[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(Template(segs))
    }

    fn render<'a>(
        &'a self,
        b: &Binding,
        vs: &'a VarSpace,
        units: &'a Units,
    ) -> Result<String, TemplateError> {
        let piece = |seg: &'a Seg| -> Result<&'a str, TemplateError> {
            Ok(match seg {
                Seg::Lit(s) => s,
                Seg::Field => &units.field,
                Seg::Slot(slot) => {
                    let v = b[*slot];
                    if v == NONE {
                        return Err(TemplateError::NoValue);
                    }
                    match *slot {
                        BEAM => &units.beams[v as usize],
                        SOURCE => &units.sources[v as usize],
                        COMPONENT => &units.components[v as usize].0,
                        s => &vs.values[s - 3][v as usize],
                    }
                }
            })
        };
        // Exact capacity: a big field keeps millions of these paths.
        let mut len = 0;
        for seg in &self.0 {
            len += piece(seg)?.len();
        }
        let mut out = String::with_capacity(len);
        for seg in &self.0 {
            out.push_str(piece(seg)?);
        }
        Ok(out)
    }
}

/// The first parameter a path template names (`{param:NAME}`).
fn named_param(template: &str) -> Option<&str> {
    let at = template.find("{param:")? + "{param:".len();
    let rest = &template[at..];
    Some(&rest[..rest.find('}')?])
}

/// A source file may also be named by an absolute path (a holography model kept elsewhere, as
/// Arrakis configs give `holofile`); never with `.` or `..` components.
fn check_source(path: &str) -> Result<(), TemplateError> {
    match path.strip_prefix('/') {
        Some(rest) if !rest.is_empty() && !rest.split('/').any(|c| c == ".." || c == ".") => Ok(()),
        Some(_) => Err(TemplateError::Outside(path.to_string())),
        None => check_inside(path),
    }
}

fn check_inside(rel: &str) -> Result<(), TemplateError> {
    if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(TemplateError::Outside(rel.to_string()));
    }
    Ok(())
}

/// Units of a rule's kind, as bindings (without foreach). Islands outside every beam are left
/// out (they are reported instead).
fn unit_bindings(kind: UnitKind, units: &Units) -> Vec<Binding> {
    let orphan = |s: u32| units.orphan_mask.get(s as usize).copied().unwrap_or(false);
    let blank = [NONE; SLOTS];
    let with = |slot_vals: &[(usize, u32)]| {
        let mut b = blank;
        for &(s, v) in slot_vals {
            b[s] = v;
        }
        b
    };
    match kind {
        UnitKind::Field => vec![blank],
        UnitKind::Beam => (0..units.beams.len() as u32)
            .map(|b| with(&[(BEAM, b)]))
            .collect(),
        UnitKind::Source => (0..units.sources.len() as u32)
            .filter(|&s| !orphan(s))
            .map(|s| with(&[(SOURCE, s)]))
            .collect(),
        UnitKind::Component => (0..units.components.len() as u32)
            .filter(|&c| !orphan(units.components[c as usize].1))
            .map(|c| with(&[(SOURCE, units.components[c as usize].1), (COMPONENT, c)]))
            .collect(),
    }
}

/// Finer units that an output `each: KIND` expands over, for a target bound as `b`; with the
/// index of the finer unit.
fn each_bindings(
    rule_unit: UnitKind,
    each: UnitKind,
    b: &Binding,
    units: &Units,
) -> Vec<(Binding, u32)> {
    let sources: Vec<u32> = match rule_unit {
        UnitKind::Beam => units.beam_sources[b[BEAM] as usize].clone(),
        UnitKind::Source => vec![b[SOURCE]],
        _ => (0..units.sources.len() as u32)
            .filter(|&s| !units.orphan_mask.get(s as usize).copied().unwrap_or(false))
            .collect(),
    };
    let set = |pairs: &[(usize, u32)]| {
        let mut nb = *b;
        for &(s, v) in pairs {
            nb[s] = v;
        }
        nb
    };
    match each {
        UnitKind::Beam => (0..units.beams.len() as u32)
            .map(|x| (set(&[(BEAM, x)]), x))
            .collect(),
        UnitKind::Source => sources.iter().map(|&s| (set(&[(SOURCE, s)]), s)).collect(),
        UnitKind::Component => sources
            .iter()
            .flat_map(|&s| {
                units.source_components[s as usize]
                    .iter()
                    .map(move |&c| (s, c))
            })
            .map(|(s, c)| (set(&[(SOURCE, s), (COMPONENT, c)]), c))
            .collect(),
        UnitKind::Field => vec![(*b, NONE)],
    }
}

fn unit_label(kind: UnitKind, b: &Binding, vs: &VarSpace, units: &Units) -> String {
    let mut s = match kind {
        UnitKind::Field => units.field.clone(),
        UnitKind::Beam => format!("beam{}", units.beams[b[BEAM] as usize]),
        UnitKind::Source => units.sources[b[SOURCE] as usize].clone(),
        UnitKind::Component => units.components[b[COMPONENT] as usize].0.clone(),
    };
    for (i, vals) in vs.values.iter().enumerate() {
        let v = b[3 + i];
        if v != NONE {
            s.push('.');
            s.push_str(&vals[v as usize]);
        }
    }
    s
}

/// Every instance of one rule output: (target, output index, binding).
struct Instances {
    /// Which slots are bound for every instance of this output.
    bound: [bool; SLOTS],
    items: Vec<(u32, u32, Binding)>,
}

/// Upstream instances grouped by their values on the join slots.
type JoinIndex = FxHashMap<Binding, Vec<u32>>;

fn project(b: &Binding, shared: &[bool; SLOTS]) -> Binding {
    let mut k = [NONE; SLOTS];
    for i in 0..SLOTS {
        if shared[i] {
            k[i] = b[i];
        }
    }
    k
}

/// The action descriptor that goes into a key.
pub fn action_descriptor(rule: &Rule, builtin_version: &dyn Fn(&str) -> Option<String>) -> String {
    match &rule.action {
        Action::Builtin(name) => format!(
            "builtin:{name}:v{}",
            builtin_version(name).unwrap_or_else(|| "0".into())
        ),
        Action::Command(argv) => format!(
            "command:{}",
            serde_json::to_string(argv).unwrap_or_default()
        ),
    }
}

/// Whether an input's `when`/`unless` parameter counts as set: a bool that is true, or any other
/// value that is not null.
fn is_set(v: Option<&ParamValue>) -> bool {
    match v {
        None | Some(ParamValue::Null) | Some(ParamValue::Bool(false)) => false,
        Some(_) => true,
    }
}

/// Whether an input's `when`/`unless` condition holds under `params`.
fn holds(cond: &InputCond, params: &Params) -> bool {
    match cond {
        InputCond::Set(p) => is_set(params.get(p)),
        InputCond::Equals(v) => v.iter().all(|(k, want)| params.get(k) == Some(want)),
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
    builtin_version: &dyn Fn(&str) -> Option<String>,
) -> Result<Graph, ExpandError> {
    let vs = VarSpace::new(rules)?;
    let mut graph = Graph {
        field: units.field.clone(),
        field_dir: field_dir.to_path_buf(),
        rules: Vec::new(),
        targets: Vec::new(),
        dependents: Vec::new(),
        orphans: units.orphans.clone(),
        units: Units::default(),
        foreach_names: vs.names.clone(),
        foreach_values: vs.values.clone(),
        globs: Vec::new(),
    };
    let mut rule_index: FxHashMap<&str, usize> = FxHashMap::default();
    let mut instances: FxHashMap<(usize, usize), Instances> = FxHashMap::default();
    let mut join_cache: FxHashMap<(usize, usize, [bool; SLOTS]), JoinIndex> = FxHashMap::default();
    let mut listings = Listings::default();

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
        let compile = |what: &str, tpl: &str| {
            Template::compile(tpl, &vs, &rparams).map_err(|e| ExpandError {
                context: ctx(""),
                message: format!("{what}: {e}"),
            })
        };
        let out_tpls: Vec<Template> = rule
            .outputs
            .iter()
            .map(|o| compile(&format!("output '{}'", o.name), &o.path))
            .collect::<Result<_, _>>()?;
        let include_input: Vec<bool> = rule
            .inputs
            .iter()
            .map(|i| {
                i.when.as_ref().is_none_or(|c| holds(c, params))
                    && !i.unless.as_ref().is_some_and(|c| holds(c, params))
            })
            .collect();
        let mut upstream: Vec<Option<(usize, usize)>> = Vec::new();
        // Per input, the upstream variables it pins (`with:`): slot and value index.
        let mut pins: Vec<Vec<(usize, u32)>> = Vec::new();
        let mut in_tpls: Vec<Option<Template>> = Vec::new();
        for (inp, &included) in rule.inputs.iter().zip(&include_input) {
            pins.push(Vec::new());
            if !included {
                // Switched off by its own when/unless: the upstream rule may be off too.
                upstream.push(None);
                in_tpls.push(None);
                continue;
            }
            match &inp.source {
                InputSource::Rule { from, output, with } => {
                    let Some(&up) = rule_index.get(from.as_str()) else {
                        let why = match rules.get(from) {
                            Some(r) => format!(
                                "rule '{from}', which is switched off by its 'when' ({}) under the current parameters; change the parameters or the 'when' of one of the rules",
                                r.when.iter().map(|(k, v)| format!("{k}: {}", v.display())).collect::<Vec<_>>().join(", ")
                            ),
                            None => format!("rule '{from}', which does not exist"),
                        };
                        return Err(ExpandError {
                            context: ctx(""),
                            message: format!("input '{}' reads from {why}", inp.name),
                        });
                    };
                    let oi = rules
                        .get(from)
                        .and_then(|r| r.outputs.iter().position(|o| &o.name == output))
                        .unwrap_or(0);
                    upstream.push(Some((up, oi)));
                    let pinned = pins.last_mut().expect("pushed above");
                    for (var, value) in with {
                        // Checked at load: a foreach variable of `from` and one of its values.
                        let slot = vs.slot_of(var).unwrap_or(0);
                        let v = vs.values[slot - 3].iter().position(|x| x == value);
                        pinned.push((slot, v.unwrap_or(0) as u32));
                    }
                    in_tpls.push(None);
                }
                InputSource::File(t) | InputSource::Glob(t) => {
                    upstream.push(None);
                    in_tpls.push(Some(compile(&format!("input '{}'", inp.name), t)?));
                }
            }
        }
        graph.rules.push(RuleInfo {
            name: rule.name.clone(),
            stage: rule.stage.clone(),
            action: action_descriptor(rule, builtin_version),
            params: rparams.clone(),
            keep_going: rule.keep_going,
            input_names: rule.inputs.iter().map(|i| i.name.clone()).collect(),
            output_names: rule.outputs.iter().map(|o| o.name.clone()).collect(),
            output_each: rule.outputs.iter().map(|o| o.each).collect(),
            resources: rule.resources,
            param_files: rule
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, inp)| match &inp.source {
                    InputSource::File(t) => named_param(t).map(|p| (i as u16, p.to_string())),
                    _ => None,
                })
                .collect(),
        });
        rule_index.insert(rule.name.as_str(), ri);

        // Unit bindings × foreach.
        let mut bindings = unit_bindings(rule.unit, units);
        for (var, vals) in &rule.foreach {
            let slot = vs.slot_of(var).unwrap_or(0);
            let all = &vs.values[slot - 3];
            let mut next = Vec::with_capacity(bindings.len() * vals.len());
            for b in &bindings {
                for v in vals {
                    let mut nb = *b;
                    nb[slot] = all.iter().position(|x| x == v).unwrap_or(0) as u32;
                    next.push(nb);
                }
            }
            bindings = next;
        }
        let bound_of = |b: &Binding| -> [bool; SLOTS] { std::array::from_fn(|i| b[i] != NONE) };

        // Join indexes for this rule's rule inputs (same bound slots for every target).
        // A pinned variable is always joined on (with its pinned value).
        let shared_of =
            |inst_bound: &[bool; SLOTS], dbound: &[bool; SLOTS], pins: &[(usize, u32)]| {
                let shared: [bool; SLOTS] = std::array::from_fn(|i| {
                    inst_bound[i] && (dbound[i] || pins.iter().any(|&(s, _)| s == i))
                });
                shared
            };
        if let Some(b0) = bindings.first() {
            let dbound = bound_of(b0);
            for (ii, (up, oi)) in upstream
                .iter()
                .enumerate()
                .filter_map(|(ii, u)| u.map(|u| (ii, u)))
            {
                if let Some(inst) = instances.get(&(up, oi)) {
                    let shared = shared_of(&inst.bound, &dbound, &pins[ii]);
                    join_cache.entry((up, oi, shared)).or_insert_with(|| {
                        let mut m: JoinIndex = FxHashMap::default();
                        for (k, (_, _, ob)) in inst.items.iter().enumerate() {
                            m.entry(project(ob, &shared)).or_default().push(k as u32);
                        }
                        m
                    });
                }
            }
        }

        // Exactly: a third of a million targets doubled past their number would idle ~35 MB.
        graph.targets.reserve_exact(bindings.len());
        for b in &bindings {
            let ti = graph.targets.len() as u32;
            let id = format!("{}/{}", rule.name, unit_label(rule.unit, b, &vs, units));
            let mut outputs = Vec::new();
            for (oi, o) in rule.outputs.iter().enumerate() {
                let obs = match o.each {
                    Some(each) => each_bindings(rule.unit, each, b, units),
                    None => vec![(*b, NONE)],
                };
                for (ob, each_idx) in obs {
                    let rel = out_tpls[oi]
                        .render(&ob, &vs, units)
                        .and_then(|r| check_inside(&r).map(|_| r))
                        .map_err(|e| ExpandError {
                            context: ctx(&id),
                            message: format!("output '{}': {e}", o.name),
                        })?;
                    let entry = instances.entry((ri, oi)).or_insert_with(|| Instances {
                        bound: bound_of(&ob),
                        items: Vec::new(),
                    });
                    entry.items.push((ti, outputs.len() as u32, ob));
                    outputs.push(OutputFile {
                        spec: oi as u16,
                        rel,
                        each: each_idx,
                    });
                }
            }
            // A cutout target's thousands of outputs were pushed one at a time.
            outputs.shrink_to_fit();
            let mut inputs = Vec::with_capacity(rule.inputs.len());
            let mut deps = Vec::new();
            let dbound = bound_of(b);
            for (ii, inp) in rule.inputs.iter().enumerate() {
                let mut files = Vec::new();
                if include_input[ii] {
                    if let Some((up, oi)) = upstream[ii] {
                        if let Some(inst) = instances.get(&(up, oi)) {
                            let shared = shared_of(&inst.bound, &dbound, &pins[ii]);
                            let mut key = project(b, &shared);
                            for &(slot, v) in &pins[ii] {
                                key[slot] = v;
                            }
                            if let Some(list) = join_cache
                                .get(&(up, oi, shared))
                                .and_then(|idx| idx.get(&key))
                            {
                                files.reserve(list.len());
                                for &k in list {
                                    let (t, o, _) = &inst.items[k as usize];
                                    files.push(InputFile::Output {
                                        target: *t,
                                        output: *o,
                                    });
                                    deps.push(*t);
                                }
                            }
                        }
                    } else if let Some(tpl) = &in_tpls[ii] {
                        let rendered = tpl.render(b, &vs, units).map_err(|e| ExpandError {
                            context: ctx(&id),
                            message: format!("input '{}': {e}", inp.name),
                        })?;
                        match &inp.source {
                            InputSource::Glob(_) => {
                                let full = field_dir.join(&rendered).to_string_lossy().to_string();
                                let found = glob_matches_in(field_dir, &full, &mut listings)
                                    .map_err(|e| ExpandError {
                                        context: ctx(&id),
                                        message: format!(
                                            "input '{}': bad glob pattern '{rendered}': {e}",
                                            inp.name
                                        ),
                                    })?;
                                graph.globs.push((full, found.clone()));
                                files.extend(found.into_iter().map(InputFile::Source));
                            }
                            _ => {
                                check_source(&rendered).map_err(|e| ExpandError {
                                    context: ctx(&id),
                                    message: format!("input '{}': {e}", inp.name),
                                })?;
                                files.push(InputFile::Source(rendered));
                            }
                        }
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
            graph.targets.push(Target {
                id,
                rule: ri as u32,
                binding: *b,
                inputs,
                outputs,
                deps,
            });
        }
    }
    // The join tables (one entry per output) are done with: freed before the uniqueness
    // check builds its own table, so the two never take memory at once.
    drop(instances);
    drop(join_cache);
    check_outputs_unique(&graph, rules)?;
    if rules
        .rules
        .iter()
        .any(|r| matches!(r.action, Action::Command(_)))
    {
        check_command_lines(&graph, rules, arg_limit())?;
    }
    graph.units = units.clone();
    graph.link();
    Ok(graph)
}

/// The bytes a command line may take here: the system's `ARG_MAX` less this environment and a
/// margin (what `xargs` reckons with).
pub fn arg_limit() -> usize {
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    let max = if max > 0 { max as usize } else { 128 * 1024 };
    let env: usize = std::env::vars_os()
        .map(|(k, v)| k.len() + v.len() + 2 + std::mem::size_of::<usize>())
        .sum();
    max.saturating_sub(env + 4096)
}

/// Every command target's argument list must fit in `limit` bytes: one that cannot fails here,
/// at expansion, naming the rule, the input whose files fill it and the fix (a response file),
/// rather than as "Argument list too long" when the target runs. Paths count as the command
/// gets them: relative to the field directory, where it runs.
pub fn check_command_lines(
    graph: &Graph,
    rules: &RuleSet,
    limit: usize,
) -> Result<(), ExpandError> {
    /// What a temporary output name adds (`.arrakis-tmp-PID-N-`).
    const TMP: usize = 48;
    // An argument costs its bytes, its NUL and its pointer.
    let cost = |len: usize| len + 1 + std::mem::size_of::<usize>();
    // Per rule of the graph, its rule and argv when it runs a command.
    let commands: Vec<Option<(&Rule, &Vec<String>)>> = graph
        .rules
        .iter()
        .map(|info| {
            let r = rules.get(&info.name)?;
            match &r.action {
                Action::Command(argv) => Some((r, argv)),
                Action::Builtin(_) => None,
            }
        })
        .collect();
    for t in &graph.targets {
        let Some((rule, argv)) = commands[t.rule as usize] else {
            continue;
        };
        let info = &graph.rules[t.rule as usize];
        let rel_len = |f: &InputFile| match f {
            InputFile::Source(r) => r.len(),
            InputFile::Output { target, output } => graph.targets[*target as usize].outputs
                [*output as usize]
                .rel
                .len(),
        };
        let mut total = 0usize;
        // The whole-argument placeholder that adds most: (name, files, bytes).
        let mut biggest: Option<(&str, usize, usize)> = None;
        for a in argv {
            let whole = a.strip_prefix('{').and_then(|x| x.strip_suffix('}'));
            // (files, bytes) of a whole `{in:X}` or `{out:X}`.
            let files = whole.and_then(|n| {
                if let Some(name) = n.strip_prefix("in:") {
                    let k = info.input_names.iter().position(|x| x == name)?;
                    let files = t
                        .inputs
                        .iter()
                        .filter(|s| s.spec as usize == k)
                        .flat_map(|s| &s.files);
                    Some(files.fold((0, 0), |(n, b), f| (n + 1, b + cost(rel_len(f)))))
                } else if let Some(name) = n.strip_prefix("out:") {
                    let k = info.output_names.iter().position(|x| x == name)?;
                    let outs = t.outputs.iter().filter(|o| o.spec as usize == k);
                    Some(outs.fold((0, 0), |(n, b), o| (n + 1, b + cost(o.rel.len() + TMP))))
                } else {
                    None
                }
            });
            match (whole, files) {
                (Some(name), Some((n, bytes))) => {
                    total += bytes;
                    if biggest.is_none_or(|b| bytes > b.2) {
                        biggest = Some((name, n, bytes));
                    }
                }
                _ => total += cost(a.len()),
            }
        }
        if total > limit {
            let fix = match biggest {
                Some((name, n, _)) => format!(
                    " with the {n} files of '{{{name}}}'; write '{{list:{name}}}' in its place in action.command (the program then gets one file, listing those paths one per line: a response file), or split the rule"
                ),
                None => "; shorten the command".to_string(),
            };
            return Err(ExpandError {
                context: format!("rule '{}' ({})", info.name, rule.file.display()),
                message: format!(
                    "the command line of {} would take {total} bytes{fix}: the system takes at most {limit} bytes of arguments here",
                    t.id
                ),
            });
        }
    }
    Ok(())
}

/// Directory listings read while matching globs, kept for one expansion or one snapshot check
/// (nothing writes the field meanwhile): each directory is listed once however many patterns
/// look into it. Per name: whether it is a directory, `None` for a link (followed only when a
/// pattern needs to go through it).
#[derive(Default)]
pub struct Listings(std::collections::HashMap<PathBuf, Vec<(String, Option<bool>)>>);

impl Listings {
    fn of(&mut self, dir: &Path) -> &[(String, Option<bool>)] {
        self.0.entry(dir.to_path_buf()).or_insert_with(|| {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let is_dir = match e.file_type() {
                        Ok(t) if t.is_symlink() => None,
                        Ok(t) => Some(t.is_dir()),
                        Err(_) => Some(false),
                    };
                    Some((name, is_dir))
                })
                .collect()
        })
    }
}

/// The files matching `pattern` (absolute), relative to `field_dir`, sorted.
pub fn glob_matches(field_dir: &Path, pattern: &str) -> Result<Vec<String>, glob::PatternError> {
    glob_matches_in(field_dir, pattern, &mut Listings::default())
}

/// [`glob_matches`] with the directory listings of earlier patterns.
///
/// Matched one path component at a time (the `glob` crate's rules and options): literal
/// components are joined without a look at the disk, a wildcard component matches the names of
/// its directory's listing. The `glob` crate stats every candidate and every directory on the
/// way (a region's `members/ISLAND/*/*.q.mosaic.fits`, thousands of them, cost a no-op build
/// ten stats per file); `**` still goes to it.
pub fn glob_matches_in(
    field_dir: &Path,
    pattern: &str,
    listings: &mut Listings,
) -> Result<Vec<String>, glob::PatternError> {
    let rel = |p: &Path| {
        p.strip_prefix(field_dir)
            .ok()
            .map(|r| r.to_string_lossy().to_string())
    };
    let mut found: Vec<String> = if pattern.contains("**") {
        glob::glob(pattern)?
            .filter_map(|p| p.ok())
            .filter_map(|p| rel(&p))
            .collect()
    } else {
        let wild = |c: &str| c.contains(['*', '?', '[']);
        let opts = glob::MatchOptions::new();
        // The paths matched so far.
        let mut here: Vec<PathBuf> = vec![PathBuf::from(if pattern.starts_with('/') {
            "/"
        } else {
            "."
        })];
        let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        for (k, c) in comps.iter().enumerate() {
            let last = k + 1 == comps.len();
            if !wild(c) {
                for p in &mut here {
                    p.push(c);
                }
                if last {
                    here.retain(|p| std::fs::symlink_metadata(p).is_ok());
                }
                continue;
            }
            let pat = glob::Pattern::new(c)?;
            let mut next = Vec::new();
            for dir in &here {
                for (n, is_dir) in listings.of(dir) {
                    if !pat.matches_with(n, opts) {
                        continue;
                    }
                    let p = dir.join(n);
                    // On the way down only directories (or links to them) lead anywhere.
                    if last || is_dir.unwrap_or_else(|| p.is_dir()) {
                        next.push(p);
                    }
                }
            }
            here = next;
        }
        here.iter().filter_map(|p| rel(p)).collect()
    };
    found.sort();
    Ok(found)
}

/// No two targets may write the same file, and a `file:` input must not be another target's
/// output (that dependency would be invisible).
fn check_outputs_unique(graph: &Graph, rules: &RuleSet) -> Result<(), ExpandError> {
    let n: usize = graph.targets.iter().map(|t| t.outputs.len()).sum();
    let mut owner: FxHashMap<&str, u32> =
        FxHashMap::with_capacity_and_hasher(n, Default::default());
    let file_of = |t: &Target| {
        rules
            .get(&graph.rules[t.rule as usize].name)
            .map(|r| r.file.display().to_string())
            .unwrap_or_default()
    };
    for (ti, t) in graph.targets.iter().enumerate() {
        for o in &t.outputs {
            if let Some(&other) = owner.get(o.rel.as_str()) {
                let o_name = &graph.rules[t.rule as usize].output_names[o.spec as usize];
                return Err(ExpandError {
                    context: format!("{} (rule '{}', target {})", file_of(t), graph.rules[t.rule as usize].name, t.id),
                    message: format!(
                        "output '{o_name}' is {}, which target {} also writes; give the rules distinct output paths",
                        o.rel, graph.targets[other as usize].id
                    ),
                });
            }
            owner.insert(o.rel.as_str(), ti as u32);
        }
    }
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    for t in &graph.targets {
        for slot in &t.inputs {
            for f in &slot.files {
                if let InputFile::Source(rel) = f {
                    if !seen.insert(rel.as_str()) {
                        continue;
                    }
                    if let Some(&owner_t) = owner.get(rel.as_str()) {
                        let ot = &graph.targets[owner_t as usize];
                        return Err(ExpandError {
                            context: format!("{} (target {})", file_of(t), t.id),
                            message: format!(
                                "input file {rel} is an output of target {}; read it with 'from: {}' instead of 'file:'",
                                ot.id, graph.rules[ot.rule as usize].name
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_what_the_glob_crate_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "members/I1/A/I1.q.mosaic.fits",
            "members/I1/A/I1.i.mosaic.fits",
            "members/I1/B/x.q.mosaic.fits",
            "members/I1/B/.hidden.q.mosaic.fits",
            "members/I2/A/I2.q.mosaic.fits",
            "ms/f.beam01.ms/table.dat",
            "a[b]/c.txt",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(d.join("members/I1/A"), d.join("members/I1/L")).unwrap();
        std::fs::write(d.join("members/I1/notadir"), b"x").unwrap();
        for p in [
            "members/I1/*/*.q.mosaic.fits",
            "members/*/A/*.fits",
            "members/I1/A/I1.q.mosaic.fits",
            "members/I1/A/missing.fits",
            "*.beam01.ms",
            "ms/*.beam0?.ms",
            "members/I[12]/*/*.i.*",
            "a[[]b[]]/*.txt",
            "members/**/*.fits",
            "nothing/*/x",
        ] {
            let full = d.join(p).to_string_lossy().to_string();
            let mut want: Vec<String> = glob::glob(&full)
                .unwrap()
                .filter_map(|x| x.ok())
                .map(|x| x.strip_prefix(d).unwrap().to_string_lossy().to_string())
                .collect();
            want.sort();
            assert_eq!(glob_matches(d, &full).unwrap(), want, "{p}");
        }
        assert!(glob_matches(d, &d.join("a[/x").to_string_lossy()).is_err());
    }
}
