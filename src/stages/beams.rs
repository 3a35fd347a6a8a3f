//! `beams` (per field): which beams hold each island, by Arrakis's rule (island centre within
//! `beam_radius_deg` of the beam centre); the per-source rules read its output.

use super::{ActionCtx, Builtin};

/// `beams`: which beams hold each island (Arrakis's rule: island centre within
/// `beam_radius_deg` of the beam centre), as `Source_ID,beams` rows.
pub struct Beams;

impl Builtin for Beams {
    fn name(&self) -> &'static str {
        "beams"
    }
    fn version(&self) -> u32 {
        1
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let radius = ctx
            .param("beam_radius_deg")
            .and_then(|v| v.as_f64())
            .unwrap_or(1.0);
        let field_dir = ctx.field_dir;
        let units =
            crate::units::Units::load(field_dir, radius, None).map_err(|e| e.to_string())?;
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
        let (_, path, _) = &ctx.outputs[0];
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
