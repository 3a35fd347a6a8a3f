//! Rules: loading and validating rule files (`spec`), and expanding them into the targets of one
//! field (`expand`).
//!
//! Owns: everything between a directory of rule YAML files and a [`crate::graph::Graph`].
//! Must never: run actions or open the cache.

pub mod contract;
pub mod expand;
mod load;
pub mod spec;

pub use contract::{Contract, Registry, SlotSpec};
pub use spec::{Action, InputSource, Rule, RuleError, RuleSet, UnitKind};

/// Rule files compiled into the binary: the project's `rules/` directory at build time.
pub const EMBEDDED_RULES: &[(&str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

/// The compiled-in rule set, validated against the contracts and parameters in `reg`.
pub fn embedded(reg: &Registry) -> Result<RuleSet, RuleError> {
    let sources: Vec<(std::path::PathBuf, String)> = EMBEDDED_RULES
        .iter()
        .map(|(name, text)| {
            (
                std::path::PathBuf::from(format!("rules/{name}")),
                text.to_string(),
            )
        })
        .collect();
    RuleSet::from_sources(&sources, reg)
}
