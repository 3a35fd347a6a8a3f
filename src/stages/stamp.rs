//! `stamp`: the engine's own test and benchmark action. Each output gets a short text naming the
//! target's unit, its parameters and the BLAKE3 of every input's bytes, so the outputs change
//! exactly when a real stage's would. No science; used by engine tests and `arrakis bench engine`.
//!
//! Must never: read anything but its inputs.

use std::io::Write;

use super::{ActionCtx, Builtin};

/// The stamp builtin.
pub struct Stamp;

impl Builtin for Stamp {
    fn name(&self) -> &'static str {
        "stamp"
    }
    fn version(&self) -> u32 {
        1
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let mut body = String::new();
        for (k, v) in ctx.vars {
            body.push_str(&format!("{k}={v}\n"));
        }
        for (k, v) in ctx.params {
            body.push_str(&format!("param {k}={}\n", v.display()));
        }
        for (slot, files) in &ctx.inputs {
            for f in files {
                let bytes = std::fs::read(f)
                    .map_err(|e| format!("cannot read input {}: {e}", f.display()))?;
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
            let mut f = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            writeln!(f, "{body}output {name} {}", each.unwrap_or("-"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}
