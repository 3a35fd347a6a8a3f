//! What a builtin action promises, so that a rule and the code it names agree by contract rather
//! than by spelling: the parameters it reads, the input slots it takes and the outputs it writes.
//!
//! Owns: [`Contract`], [`SlotSpec`] and [`Registry`] (what the rule loader is told about the
//! builtins and the known parameters), and [`Registry::check`], the comparison of one rule with
//! its builtin's contract.
//! Must never: know what any builtin does; the stages write the contracts, the engine checks them.
//! Invariant: a rule that loads reads exactly its builtin's parameters (plus any its own `when`,
//! input conditions and path templates test), declares every required slot and no unknown one,
//! and names exactly the builtin's outputs.

use crate::config::params::ParamSpec;
use crate::diag::did_you_mean;

/// One input slot a builtin reads.
#[derive(Debug)]
pub struct SlotSpec {
    /// The slot name a rule's `inputs:` uses.
    pub name: &'static str,
    /// Whether every rule naming the builtin must declare it (it may still be conditional).
    pub required: bool,
    /// What the builtin reads from it.
    pub help: &'static str,
}

impl SlotSpec {
    /// A slot every rule must declare.
    pub const fn required(name: &'static str, help: &'static str) -> SlotSpec {
        SlotSpec {
            name,
            required: true,
            help,
        }
    }
    /// A slot a rule may leave out.
    pub const fn optional(name: &'static str, help: &'static str) -> SlotSpec {
        SlotSpec {
            name,
            required: false,
            help,
        }
    }
}

/// A builtin's contract.
#[derive(Debug)]
pub struct Contract {
    /// The name rules use (`action: {builtin: NAME}`).
    pub name: &'static str,
    /// Bumped whenever the outputs for the same inputs and parameters change; part of every key.
    pub version: u32,
    /// The parameters it reads.
    pub params: &'static [&'static ParamSpec],
    /// The input slots it reads.
    pub inputs: &'static [SlotSpec],
    /// The outputs it writes, by name.
    pub outputs: &'static [&'static str],
    /// Takes whatever parameters, inputs and outputs its rule declares (the engine's test
    /// action `stamp` only).
    pub open: bool,
}

/// What the rule loader knows about the actions and parameters it may meet.
#[derive(Clone, Copy, Debug)]
pub struct Registry<'a> {
    /// Every builtin's contract.
    pub builtins: &'a [&'static Contract],
    /// Every parameter a rule may list by name.
    pub params: &'a [&'static ParamSpec],
}

/// One disagreement between a rule and its builtin's contract: the key path in the rule file
/// it concerns, and the message.
pub struct Mismatch {
    /// YAML key path (`["params"]`, `["inputs", "fdf"]`, ...), for the line number.
    pub path: Vec<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What [`Registry::check`] is given of a rule.
pub struct RuleShape<'r> {
    /// The rule's name.
    pub rule: &'r str,
    /// Parameters the rule lists.
    pub params: Vec<&'r str>,
    /// Parameters its own `when`, input conditions and path templates test.
    pub referenced: Vec<&'r str>,
    /// Input slot names.
    pub inputs: Vec<&'r str>,
    /// Output names.
    pub outputs: Vec<&'r str>,
}

fn list(names: impl IntoIterator<Item = &'static str>) -> String {
    let v: Vec<&str> = names.into_iter().collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Registry<'_> {
    /// The contract of the builtin `name`.
    pub fn contract(&self, name: &str) -> Option<&'static Contract> {
        self.builtins.iter().copied().find(|c| c.name == name)
    }

    /// The known parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().copied().find(|p| p.name == name)
    }

    /// Names of every builtin.
    pub fn builtin_names(&self) -> Vec<&'static str> {
        self.builtins.iter().map(|c| c.name).collect()
    }

    /// Compare a rule with its builtin's contract: the first disagreement, if any.
    pub fn check(&self, c: &Contract, r: &RuleShape) -> Option<Mismatch> {
        if c.open {
            return None;
        }
        let b = c.name;
        let at = |path: &[&str], message: String| {
            Some(Mismatch {
                path: path.iter().map(|s| s.to_string()).collect(),
                message,
            })
        };
        for p in &r.params {
            if c.params.iter().any(|s| s.name == *p) || r.referenced.contains(p) {
                continue;
            }
            return at(
                &["params", p],
                format!(
                    "builtin '{b}' does not read parameter '{p}'{} and nothing else in rule '{}' tests it: remove it (builtin '{b}' reads: {})",
                    did_you_mean(p, c.params.iter().map(|s| s.name)),
                    r.rule,
                    list(c.params.iter().map(|s| s.name))
                ),
            );
        }
        for i in &r.inputs {
            if !c.inputs.iter().any(|s| s.name == *i) {
                return at(
                    &["inputs", i],
                    format!(
                        "builtin '{b}' has no input '{i}'{} (its inputs: {})",
                        did_you_mean(i, c.inputs.iter().map(|s| s.name)),
                        list(c.inputs.iter().map(|s| s.name))
                    ),
                );
            }
        }
        for o in &r.outputs {
            if !c.outputs.contains(o) {
                return at(
                    &["outputs", o],
                    format!(
                        "builtin '{b}' writes no output '{o}'{} (its outputs: {})",
                        did_you_mean(o, c.outputs.iter().copied()),
                        list(c.outputs.iter().copied())
                    ),
                );
            }
        }
        // Then what is missing (a misspelt name was reported above, with a suggestion).
        for p in c.params {
            if !r.params.contains(&p.name) {
                return at(
                    &["params"],
                    format!(
                        "builtin '{b}' reads parameter '{}' ({}), which rule '{}' does not list: add it to params",
                        p.name, p.help, r.rule
                    ),
                );
            }
        }
        for s in c.inputs.iter().filter(|s| s.required) {
            if !r.inputs.contains(&s.name) {
                return at(
                    &["inputs"],
                    format!(
                        "builtin '{b}' needs input '{}' ({}), which rule '{}' does not declare",
                        s.name, s.help, r.rule
                    ),
                );
            }
        }
        for o in c.outputs {
            if !r.outputs.contains(o) {
                return at(
                    &["outputs"],
                    format!(
                        "builtin '{b}' writes output '{o}', which rule '{}' does not name: add it to outputs with its path",
                        r.rule
                    ),
                );
            }
        }
        None
    }
}
