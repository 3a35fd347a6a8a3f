//! Loading rule files: the YAML schema as written (`Raw*`), validation of every name a rule uses
//! (units, input rules and outputs, parameters, template placeholders, builtins and their
//! contracts), the rule graph's order and cycles, with file:line errors and suggestions.
//!
//! Must never: look at a field's data (expansion does that) or run anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::contract::{Registry, RuleShape};
use super::spec::*;
use crate::config::params::{ParamDecl, ParamValue};
use crate::diag::{did_you_mean, line_of, location};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    builtin: Option<String>,
    command: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    from: Option<String>,
    output: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, String>,
    file: Option<String>,
    glob: Option<String>,
    #[serde(default)]
    optional: bool,
    when: Option<RawCond>,
    unless: Option<RawCond>,
}

/// An input's `when`/`unless`: a parameter name, or a mapping of parameters to values.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCond {
    Param(String),
    Values(BTreeMap<String, serde_yaml::Value>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawOutput {
    Path(String),
    Full {
        path: String,
        each: Option<UnitKind>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    rule: String,
    stage: Option<String>,
    unit: UnitKind,
    #[serde(default)]
    foreach: IndexMap<String, Vec<String>>,
    #[serde(default)]
    resources: Resources,
    keep_going: Option<bool>,
    #[serde(default)]
    when: BTreeMap<String, serde_yaml::Value>,
    action: RawAction,
    /// A list of known parameter names, or a mapping (name → null, `{}` or a full declaration).
    #[serde(default)]
    params: serde_yaml::Value,
    #[serde(default)]
    inputs: IndexMap<String, RawInput>,
    outputs: IndexMap<String, RawOutput>,
    #[serde(default)]
    doc: Option<String>,
}

/// The template placeholders a rule may use in paths.
fn path_vars(
    rule_unit: UnitKind,
    foreach: &[(String, Vec<String>)],
    each: Option<UnitKind>,
) -> Vec<String> {
    let mut v = vec!["field".to_string()];
    let mut add = |k: UnitKind| match k {
        UnitKind::Field => {}
        UnitKind::Beam => v.push("beam".into()),
        UnitKind::Source => v.push("source".into()),
        UnitKind::Component => {
            v.push("source".into());
            v.push("component".into())
        }
    };
    add(rule_unit);
    if let Some(e) = each {
        add(e);
    }
    for (k, _) in foreach {
        v.push(k.clone());
    }
    v.sort();
    v.dedup();
    v
}

struct Loader<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Loader<'_> {
    fn err(&self, path: &[&str], message: impl Into<String>) -> RuleError {
        RuleError {
            location: location(self.file, line_of(self.text, path)),
            message: message.into(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_template(
        &self,
        key_path: &[&str],
        template: &str,
        vars: &[String],
        rule: &RawRule,
        params: &BTreeMap<String, ParamDecl>,
        referenced: &mut Vec<String>,
        command: bool,
    ) -> Result<(), RuleError> {
        let names = placeholders(template).map_err(|e| self.err(key_path, e.to_string()))?;
        for name in names {
            let known = if let Some(p) = name.strip_prefix("param:") {
                if params.contains_key(p) {
                    referenced.push(p.to_string());
                    continue;
                }
                format!(
                    "parameter '{p}' is not declared in this rule's params{}",
                    did_you_mean(p, params.keys().map(|s| s.as_str()))
                )
            } else if let (true, Some(i)) = (
                command,
                name.strip_prefix("in:")
                    .or_else(|| name.strip_prefix("list:in:")),
            ) {
                if rule.inputs.contains_key(i) {
                    continue;
                }
                format!(
                    "input '{i}' is not declared{}",
                    did_you_mean(i, rule.inputs.keys().map(|s| s.as_str()))
                )
            } else if let (true, Some(o)) = (
                command,
                name.strip_prefix("out:")
                    .or_else(|| name.strip_prefix("list:out:")),
            ) {
                if rule.outputs.contains_key(o) {
                    continue;
                }
                format!(
                    "output '{o}' is not declared{}",
                    did_you_mean(o, rule.outputs.keys().map(|s| s.as_str()))
                )
            } else if vars.contains(&name) || (command && name == "fielddir") {
                continue;
            } else {
                format!(
                    "unknown placeholder '{{{name}}}' (known here: {}{}){}",
                    vars.iter()
                        .map(|v| format!("{{{v}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if command {
                        ", {in:NAME}, {out:NAME}, {list:in:NAME}, {list:out:NAME}, {param:NAME}, {fielddir}"
                    } else {
                        ", {param:NAME}"
                    },
                    did_you_mean(&name, vars.iter().map(|s| s.as_str()))
                )
            };
            return Err(self.err(key_path, known));
        }
        Ok(())
    }

    /// The rule's parameter declarations: known parameters from the registry, the rule's own
    /// from its file.
    fn params(
        &self,
        raw: &serde_yaml::Value,
        reg: &Registry,
    ) -> Result<BTreeMap<String, ParamDecl>, RuleError> {
        let mut out = BTreeMap::new();
        let known_names = || reg.params.iter().map(|p| p.name);
        let by_name = |name: &str, path: &[&str]| -> Result<ParamDecl, RuleError> {
            reg.param(name).map(|p| p.decl()).ok_or_else(|| {
                self.err(
                    path,
                    format!(
                        "unknown parameter '{name}'{} (`arrakis params` lists the parameters arrakis defines; a rule's own parameter needs a declaration, e.g. {name}: {{type: float, default: 1}})",
                        did_you_mean(name, known_names())
                    ),
                )
            })
        };
        match raw {
            serde_yaml::Value::Null => {}
            serde_yaml::Value::Sequence(items) => {
                for it in items {
                    let Some(name) = it.as_str() else {
                        return Err(self.err(
                            &["params"],
                            "params must be a list of parameter names, or a mapping of names to declarations",
                        ));
                    };
                    if out.contains_key(name) {
                        return Err(self.err(
                            &["params", name],
                            format!("parameter '{name}' is listed twice"),
                        ));
                    }
                    out.insert(name.to_string(), by_name(name, &["params", name])?);
                }
            }
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let Some(name) = k.as_str() else {
                        return Err(self.err(&["params"], "parameter names must be strings"));
                    };
                    let empty = v.is_null() || v.as_mapping().is_some_and(|m| m.is_empty());
                    let decl = if empty {
                        by_name(name, &["params", name])?
                    } else if let Some(spec) = reg.param(name) {
                        return Err(self.err(
                            &["params", name],
                            format!(
                                "parameter '{name}' is defined by arrakis ({}, default {}; {}): list it by name only, its type and default are written once, in code",
                                spec.ty.name(),
                                spec.decl().default_value().map(|v| v.display()).unwrap_or_default(),
                                spec.help
                            ),
                        ));
                    } else {
                        let d: ParamDecl = serde_yaml::from_value(v.clone()).map_err(|e| {
                            self.err(
                                &["params", name],
                                format!(
                                    "parameter '{name}': {}",
                                    e.to_string().split(" at line ").next().unwrap_or("")
                                ),
                            )
                        })?;
                        d.default_value().map_err(|e| {
                            self.err(
                                &["params", name],
                                format!("parameter '{name}': default: {e}"),
                            )
                        })?;
                        d
                    };
                    out.insert(name.to_string(), decl);
                }
            }
            _ => return Err(self.err(
                &["params"],
                "params must be a list of parameter names, or a mapping of names to declarations",
            )),
        }
        Ok(out)
    }

    fn rule(&self, raw: RawRule, reg: &Registry) -> Result<Rule, RuleError> {
        let builtins = reg.builtin_names();
        let name = raw.rule.clone();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.err(
                &["rule"],
                format!("rule name '{name}' must be non-empty letters, digits and '_'"),
            ));
        }
        for (k, _) in &raw.foreach {
            if ["field", "beam", "source", "component"].contains(&k.as_str()) {
                return Err(self.err(
                    &["foreach", k],
                    format!(
                        "foreach variable '{k}' clashes with a unit variable; pick another name"
                    ),
                ));
            }
        }
        let foreach: Vec<(String, Vec<String>)> = raw
            .foreach
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let params = self.params(&raw.params, reg)?;
        // Parameters the rule's own structure tests (when, input conditions, templates).
        let mut referenced: Vec<String> = Vec::new();
        let action =
            match (&raw.action.builtin, &raw.action.command) {
                (Some(b), None) => {
                    if !builtins.contains(&b.as_str()) {
                        return Err(self.err(
                            &["action", "builtin"],
                            format!(
                                "unknown builtin '{b}'{} (known: {})",
                                did_you_mean(b, builtins.iter().copied()),
                                builtins.join(", ")
                            ),
                        ));
                    }
                    Action::Builtin(b.clone())
                }
                (None, Some(argv)) if !argv.is_empty() => Action::Command(argv.clone()),
                (None, Some(_)) => {
                    return Err(self.err(
                        &["action", "command"],
                        "command must have at least the program name",
                    ))
                }
                _ => return Err(self.err(
                    &["action"],
                    "action needs exactly one of 'builtin: NAME' or 'command: [PROGRAM, ARG, ...]'",
                )),
            };
        let mut when = Vec::new();
        for (k, v) in &raw.when {
            let decl = params.get(k).ok_or_else(|| {
                self.err(
                    &["when", k],
                    format!(
                        "'when' tests parameter '{k}', which this rule does not declare in params{}",
                        did_you_mean(k, params.keys().map(|s| s.as_str()))
                    ),
                )
            })?;
            referenced.push(k.clone());
            let value = decl
                .coerce(v)
                .map_err(|e| self.err(&["when", k], format!("when.{k}: {e}")))?
                .unwrap_or(ParamValue::Null);
            when.push((k.clone(), value));
        }
        let vars = path_vars(raw.unit, &foreach, None);
        let mut inputs = Vec::new();
        for (iname, ri) in &raw.inputs {
            let kp = ["inputs", iname.as_str()];
            let source = match (&ri.from, &ri.file, &ri.glob) {
                (Some(from), None, None) => {
                    let output = ri.output.clone().ok_or_else(|| {
                        self.err(&kp, format!("input '{iname}' reads rule '{from}' but names no 'output'"))
                    })?;
                    InputSource::Rule {
                        from: from.clone(),
                        output,
                        with: ri.with.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    }
                }
                (None, Some(f), None) => {
                    self.check_template(&kp, f, &vars, &raw, &params, &mut referenced, false)?;
                    InputSource::File(f.clone())
                }
                (None, None, Some(g)) => {
                    self.check_template(&kp, g, &vars, &raw, &params, &mut referenced, false)?;
                    InputSource::Glob(g.clone())
                }
                _ => {
                    return Err(self.err(
                        &kp,
                        format!("input '{iname}' needs exactly one of 'from: RULE' (with 'output'), 'file: TEMPLATE' or 'glob: PATTERN'"),
                    ))
                }
            };
            if ri.output.is_some() && ri.from.is_none() {
                return Err(self.err(&kp, format!("input '{iname}' has 'output' without 'from'")));
            }
            if !ri.with.is_empty() && ri.from.is_none() {
                return Err(self.err(&kp, format!("input '{iname}' has 'with' without 'from' ('with' pins a variable of the rule it reads)")));
            }
            let mut conds = [None, None];
            for (slot, (word, raw_cond)) in [("when", &ri.when), ("unless", &ri.unless)]
                .into_iter()
                .enumerate()
            {
                let Some(raw_cond) = raw_cond else { continue };
                let undeclared = |p: &str| {
                    self.err(
                        &kp,
                        format!(
                            "input '{iname}': {word} parameter '{p}' is not declared in this rule's params{}",
                            did_you_mean(p, params.keys().map(|s| s.as_str()))
                        ),
                    )
                };
                conds[slot] = Some(match raw_cond {
                    RawCond::Param(p) => {
                        referenced.push(p.clone());
                        match params.get(p) {
                            Some(d) if d.ty == crate::config::params::ParamType::Bool || d.nullable => {}
                            Some(_) => {
                                return Err(self.err(&kp, format!("input '{iname}': {word} parameter '{p}' must be a bool, or nullable (then it counts as set when not null); test another parameter's value with {word}: {{{p}: VALUE}}")))
                            }
                            None => return Err(undeclared(p)),
                        }
                        InputCond::Set(p.clone())
                    }
                    RawCond::Values(map) => {
                        if map.is_empty() {
                            return Err(self.err(&kp, format!("input '{iname}': {word} is an empty mapping; name a parameter, or give {{PARAM: VALUE}}")));
                        }
                        let mut v = Vec::new();
                        for (p, value) in map {
                            referenced.push(p.clone());
                            let decl = params.get(p).ok_or_else(|| undeclared(p))?;
                            let value = decl
                                .coerce(value)
                                .map_err(|e| {
                                    self.err(&kp, format!("input '{iname}': {word}.{p}: {e}"))
                                })?
                                .unwrap_or(ParamValue::Null);
                            v.push((p.clone(), value));
                        }
                        InputCond::Equals(v)
                    }
                });
            }
            let [when, unless] = conds;
            inputs.push(InputSpec {
                name: iname.clone(),
                source,
                optional: ri.optional,
                when,
                unless,
            });
        }
        if raw.outputs.is_empty() {
            return Err(self.err(&["outputs"], "a rule needs at least one output"));
        }
        let mut outputs = Vec::new();
        for (oname, ro) in &raw.outputs {
            let (path, each) = match ro {
                RawOutput::Path(p) => (p.clone(), None),
                RawOutput::Full { path, each } => (path.clone(), *each),
            };
            let kp = ["outputs", oname.as_str()];
            if let Some(e) = each {
                let finer = match raw.unit {
                    UnitKind::Field => e != UnitKind::Field,
                    UnitKind::Beam => e == UnitKind::Source || e == UnitKind::Component,
                    UnitKind::Source => e == UnitKind::Component,
                    UnitKind::Component => false,
                };
                if !finer {
                    return Err(self.err(
                        &kp,
                        format!("output '{oname}': each: {} is not a finer unit than the rule's unit {}", e.name(), raw.unit.name()),
                    ));
                }
            }
            if path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return Err(self.err(
                    &kp,
                    format!("output '{oname}': path '{path}' must stay inside the field directory (relative, no '..')"),
                ));
            }
            let ovars = path_vars(raw.unit, &foreach, each);
            self.check_template(&kp, &path, &ovars, &raw, &params, &mut referenced, false)?;
            // Two units must never write the same file.
            let used = placeholders(&path).unwrap_or_default();
            for needed in &ovars {
                if needed != "field"
                    && !used.contains(needed)
                    && !(needed == "source"
                        && used.contains(&"component".to_string())
                        && ovars.contains(&"component".to_string()))
                {
                    return Err(self.err(
                        &kp,
                        format!("output '{oname}': path '{path}' does not contain {{{needed}}}, so different targets would write the same file"),
                    ));
                }
            }
            outputs.push(OutputSpec {
                name: oname.clone(),
                path,
                each,
            });
        }
        if let Action::Command(argv) = &action {
            for a in argv {
                self.check_template(
                    &["action", "command"],
                    a,
                    &vars,
                    &raw,
                    &params,
                    &mut referenced,
                    true,
                )?;
            }
        }
        if let Action::Builtin(b) = &action {
            if let Some(c) = reg.contract(b) {
                let shape = RuleShape {
                    rule: &name,
                    params: params.keys().map(|s| s.as_str()).collect(),
                    referenced: referenced.iter().map(|s| s.as_str()).collect(),
                    inputs: inputs.iter().map(|i| i.name.as_str()).collect(),
                    outputs: outputs.iter().map(|o| o.name.as_str()).collect(),
                };
                if let Some(m) = reg.check(c, &shape) {
                    let path: Vec<&str> = m.path.iter().map(|s| s.as_str()).collect();
                    return Err(self.err(&path, m.message));
                }
            }
        }
        Ok(Rule {
            stage: raw.stage.clone().unwrap_or_else(|| name.clone()),
            name,
            unit: raw.unit,
            foreach,
            resources: raw.resources,
            keep_going: raw.keep_going.unwrap_or(raw.unit.keep_going_by_default()),
            when,
            action,
            params,
            inputs,
            outputs,
            file: self.file.to_path_buf(),
            doc: raw.doc,
        })
    }
}

fn yaml_error(file: &Path, text: &str, e: &serde_yaml::Error) -> RuleError {
    let line = e.location().map(|l| l.line());
    // serde_yaml puts "at line N column M" in the message already; keep ours clean.
    let msg = e.to_string();
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    let mut message = format!("invalid rule file: {msg}");
    if let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let _ = text;
        let known = [
            "rule",
            "stage",
            "unit",
            "foreach",
            "resources",
            "keep_going",
            "when",
            "action",
            "params",
            "inputs",
            "outputs",
            "doc",
            "from",
            "output",
            "with",
            "file",
            "glob",
            "optional",
            "unless",
            "type",
            "default",
            "choices",
            "nullable",
            "range",
            "help",
            "builtin",
            "command",
            "path",
            "each",
        ];
        message.push_str(&did_you_mean(field, known));
    }
    RuleError {
        location: location(file, line),
        message,
    }
}

impl RuleSet {
    /// Parse and validate rule files given as (path, text) against the builtins' contracts and
    /// the known parameters in `reg`.
    pub fn from_sources(
        sources: &[(PathBuf, String)],
        reg: &Registry,
    ) -> Result<RuleSet, RuleError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut texts: HashMap<PathBuf, &str> = HashMap::new();
        for (file, text) in sources {
            texts.insert(file.clone(), text);
            let value: serde_yaml::Value =
                serde_yaml::from_str(text).map_err(|e| yaml_error(file, text, &e))?;
            let raws: Vec<RawRule> = if value.is_sequence() {
                serde_yaml::from_value(value).map_err(|e| yaml_error(file, text, &e))?
            } else {
                // Deserialise from the text, not the Value, to keep line numbers in errors.
                vec![serde_yaml::from_str(text).map_err(|e| yaml_error(file, text, &e))?]
            };
            let loader = Loader { file, text };
            for raw in raws {
                let rule = loader.rule(raw, reg)?;
                if let Some(prev) = rules.iter().find(|r| r.name == rule.name) {
                    return Err(loader.err(
                        &["rule"],
                        format!(
                            "rule '{}' is already defined in {}; rule names must be unique",
                            rule.name,
                            prev.file.display()
                        ),
                    ));
                }
                rules.push(rule);
            }
        }
        let err_at = |rule: &Rule, path: &[&str], message: String| RuleError {
            location: location(
                &rule.file,
                line_of(texts.get(&rule.file).copied().unwrap_or(""), path),
            ),
            message,
        };
        // Dangling references.
        for rule in &rules {
            for inp in &rule.inputs {
                if let InputSource::Rule { from, output, with } = &inp.source {
                    let Some(up) = rules.iter().find(|r| &r.name == from) else {
                        return Err(err_at(
                            rule,
                            &["inputs", &inp.name, "from"],
                            format!(
                                "input '{}' reads from rule '{from}', which does not exist{}",
                                inp.name,
                                did_you_mean(from, rules.iter().map(|r| r.name.as_str()))
                            ),
                        ));
                    };
                    if !up.outputs.iter().any(|o| &o.name == output) {
                        return Err(err_at(
                            rule,
                            &["inputs", &inp.name, "output"],
                            format!(
                                "input '{}' reads output '{output}' of rule '{from}', which has no such output{} (it has: {})",
                                inp.name,
                                did_you_mean(output, up.outputs.iter().map(|o| o.name.as_str())),
                                up.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    for (var, value) in with {
                        let Some((_, vals)) = up.foreach.iter().find(|(k, _)| k == var) else {
                            return Err(err_at(
                                rule,
                                &["inputs", &inp.name, "with"],
                                format!(
                                    "input '{}': 'with' pins '{var}', which is not a foreach variable of rule '{from}'{}",
                                    inp.name,
                                    if up.foreach.is_empty() {
                                        " (it has none)".to_string()
                                    } else {
                                        format!(" (it has: {})", up.foreach.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "))
                                    }
                                ),
                            ));
                        };
                        if !vals.contains(value) {
                            return Err(err_at(
                                rule,
                                &["inputs", &inp.name, "with"],
                                format!(
                                    "input '{}': with.{var} is '{value}', but rule '{from}' runs for {var} in [{}]",
                                    inp.name,
                                    vals.join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
        // Shared parameters must agree.
        let mut seen: BTreeMap<&str, (&Rule, &ParamDecl)> = BTreeMap::new();
        for rule in &rules {
            for (p, d) in &rule.params {
                if let Some((other, od)) = seen.get(p.as_str()) {
                    if od.ty != d.ty
                        || od.default_value().ok() != d.default_value().ok()
                        || od.nullable != d.nullable
                    {
                        return Err(err_at(
                            rule,
                            &["params", p],
                            format!(
                                "parameter '{p}' is declared differently here and in rule '{}' ({}); make type, default and nullable agree",
                                other.name,
                                other.file.display()
                            ),
                        ));
                    }
                } else {
                    seen.insert(p, (rule, d));
                }
            }
        }
        // Cycles, and dependency order (Kahn's algorithm; ties keep file order).
        let index: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = rules
            .iter()
            .map(|r| {
                let mut d: Vec<usize> = r
                    .inputs
                    .iter()
                    .filter_map(|i| match &i.source {
                        InputSource::Rule { from, .. } => index.get(from.as_str()).copied(),
                        _ => None,
                    })
                    .collect();
                d.sort();
                d.dedup();
                d
            })
            .collect();
        let mut done = vec![false; rules.len()];
        let mut order = Vec::new();
        while order.len() < rules.len() {
            let next = (0..rules.len()).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
            match next {
                Some(i) => {
                    done[i] = true;
                    order.push(i);
                }
                None => {
                    let stuck: Vec<&str> = (0..rules.len())
                        .filter(|&i| !done[i])
                        .map(|i| rules[i].name.as_str())
                        .collect();
                    let first = rules
                        .iter()
                        .find(|r| !done[index[r.name.as_str()]])
                        .map(|r| r.name.clone())
                        .unwrap_or_default();
                    let rule = &rules[index[first.as_str()]];
                    return Err(err_at(
                        rule,
                        &["inputs"],
                        format!("the rules {} read from each other in a cycle; a rule may only read outputs of rules that do not depend on it", stuck.join(", ")),
                    ));
                }
            }
        }
        let mut slots: Vec<Option<Rule>> = rules.into_iter().map(Some).collect();
        let rules = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(RuleSet { rules })
    }

    /// Load every `*.yaml` in `dir` (sorted by name).
    pub fn load_dir(dir: &Path, reg: &Registry) -> Result<RuleSet, RuleError> {
        let mut sources = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| RuleError {
            location: dir.display().to_string(),
            message: format!("cannot read the rules directory: {e}; pass --rules DIR pointing at a directory of rule YAML files"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .map(|x| x == "yaml" || x == "yml")
                    .unwrap_or(false)
            })
            .collect();
        paths.sort();
        for p in paths {
            let text = crate::hash::read_regular_string(&p).map_err(|e| RuleError {
                location: p.display().to_string(),
                message: format!("cannot read rule file: {e}"),
            })?;
            sources.push((p, text));
        }
        RuleSet::from_sources(&sources, reg)
    }
}
