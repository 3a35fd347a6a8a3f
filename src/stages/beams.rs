//! `beams` (per field): which beams hold each island, by Arrakis's rule (island centre within
//! `beam_radius_deg` of the beam centre); the per-source rules read its output.
//!
//! Must never: read anything of the field but `field.yaml` and the island catalogue (its
//! declared inputs).

use super::io::{out_path, write_text};
use super::params::BEAM_RADIUS_DEG;
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};

static CONTRACT: Contract = Contract {
    name: "beams",
    version: 1,
    params: &[&BEAM_RADIUS_DEG],
    inputs: &[
        SlotSpec::required("field", "field.yaml (beam centres)"),
        SlotSpec::required("islands", "the island catalogue (island centres)"),
    ],
    outputs: &["assignment"],
    open: false,
};

/// `beams`: which beams hold each island (Arrakis's rule: island centre within
/// `beam_radius_deg` of the beam centre), as `Source_ID,beams` rows.
pub struct Beams;

impl Builtin for Beams {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let radius = ctx.f64(&BEAM_RADIUS_DEG)?;
        let needs = crate::units::Needs {
            islands: true,
            components: false,
            paths: Vec::new(),
        };
        let units = crate::units::Units::load(ctx.field_dir, radius, None, &needs)?;
        // Units hold beam → islands; the file is island → beams.
        let mut beams_of: Vec<Vec<&str>> = vec![Vec::new(); units.sources.len()];
        for (b, list) in units.beam_sources.iter().enumerate() {
            for &s in list {
                beams_of[s as usize].push(units.beams[b].as_str());
            }
        }
        let mut text = String::from("Source_ID,beams\n");
        for (name, beams) in units.sources.iter().zip(&beams_of) {
            text.push_str(&format!("{name},{}\n", beams.join(" ")));
        }
        write_text(out_path(ctx, "assignment")?, &text)
    }
}
