//! `spectrum` (per component, with `write_spectra: true`): the spectrum rmsynth measured, as the
//! text file RM-Tools' `rmsynth1d` reads (columns freq_Hz I Q U dI dQ dU), so any component can
//! be run through RM-Tools on exactly what arrakis measured. The walkthrough "Adding a stage" in
//! ARCHITECTURE.md adds this stage; `tests/it/adding_a_stage.rs` keeps the two the same.
//!
//! Must never: write a channel rmsynth rejected unless `spectrum_blanks: nan` asks for it.

use super::io::{out_path, single, write_text};
use super::params::SPECTRUM_BLANKS;
use super::products::{SynthOutcome, SynthProduct};
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};

static CONTRACT: Contract = Contract {
    name: "spectrum",
    version: 1,
    params: &[&SPECTRUM_BLANKS],
    inputs: &[SlotSpec::required(
        "synth",
        "rmsynth's summary (_RMsynth.json)",
    )],
    outputs: &["dat"],
    open: false,
};

/// `spectrum` (per component).
pub struct Spectrum;

impl Builtin for Spectrum {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let synth = SynthProduct::read(single(ctx, "synth")?)?;
        let keep_blanks = ctx.str(&SPECTRUM_BLANKS)? == "nan";
        let mut text = format!(
            "# {}: freq_Hz I Q U dI dQ dU, the spectrum arrakis's rmsynth measured\n",
            synth.cat_id
        );
        match &synth.outcome {
            SynthOutcome::Failed { reason } => {
                text.push_str(&format!("# not measured: {reason}\n"));
            }
            SynthOutcome::Measured(m) => {
                let s = &m.spectrum;
                for k in 0..s.freq_hz.len() {
                    let row = [
                        s.freq_hz[k],
                        s.i[k],
                        s.q[k],
                        s.u[k],
                        s.di[k],
                        s.dq[k],
                        s.du[k],
                    ];
                    if keep_blanks || row.iter().all(|v| v.is_finite()) {
                        let cols: Vec<String> = row.iter().map(|v| format!("{v:.9e}")).collect();
                        text.push_str(&cols.join(" "));
                        text.push('\n');
                    }
                }
            }
        }
        write_text(out_path(ctx, "dat")?, &text)
    }
}
