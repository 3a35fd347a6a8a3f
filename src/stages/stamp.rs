//! `stamp`: the engine's own test and benchmark action. Each output gets a short text naming the
//! target's unit, its parameters and the BLAKE3 of every input's bytes, so the outputs change
//! exactly when a real stage's would. No science; used by engine tests and `arrakis bench engine`.
//!
//! Must never: read anything but its inputs.

use std::io::Write;

use super::{ActionCtx, Builtin, StageError};
use crate::rules::Contract;

static CONTRACT: Contract = Contract {
    name: "stamp",
    version: 1,
    params: &[],
    inputs: &[],
    outputs: &[],
    // Writes whatever outputs its rule names, from whatever it is given.
    open: true,
};

/// The stamp builtin.
pub struct Stamp;

impl Builtin for Stamp {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let mut body = String::new();
        for (k, v) in ctx.vars {
            body.push_str(&format!("{k}={v}\n"));
        }
        for (k, v) in ctx.params {
            body.push_str(&format!("param {k}={}\n", v.display()));
        }
        for (slot, files) in &ctx.inputs {
            for f in files {
                let bytes = crate::hash::read_regular(f).map_err(|e| StageError::io(f, e))?;
                body.push_str(&format!(
                    "input {slot} {} {}\n",
                    f.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default(),
                    blake3::hash(&bytes).to_hex()
                ));
            }
        }
        for (name, path, each) in &ctx.outputs {
            let mut f = std::fs::File::create(path).map_err(|e| StageError::io(path, e))?;
            writeln!(f, "{body}output {name} {}", each.unwrap_or("-"))
                .map_err(|e| StageError::io(path, e))?;
        }
        Ok(())
    }
}
