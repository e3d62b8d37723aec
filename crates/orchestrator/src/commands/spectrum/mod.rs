//! `orchestrator spectrum`: the Lyapunov spectrum of a built-in system, a Jacobian-sequence
//! file ([`system`]) or trained recurrent networks ([`network`]), with the CLI's options turned
//! into engine settings in one place ([`options`]).

#[cfg(test)]
mod fuzz;
pub mod network;
pub mod options;
pub mod system;

use anyhow::Result;
use serde::Serialize;

use crate::cli::SpectrumArgs;

/// What `spectrum` produces: a system/file spectrum, or one report per network.
#[derive(Debug)]
pub enum SpectrumOutput {
    System(Box<system::SpectrumReport>),
    /// One network prints as its report; several as `{"networks": [...]}`.
    Networks(Vec<network::NetworkReport>),
}

impl Serialize for SpectrumOutput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SpectrumOutput::System(r) => r.serialize(serializer),
            SpectrumOutput::Networks(nets) if nets.len() == 1 => nets[0].serialize(serializer),
            SpectrumOutput::Networks(nets) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("networks", nets)?;
                map.end()
            }
        }
    }
}

/// Run `spectrum` and return the report (printing is the caller's job).
pub fn run(args: &SpectrumArgs) -> Result<SpectrumOutput> {
    if !args.weights.is_empty() {
        return Ok(SpectrumOutput::Networks(network::run(args)?));
    }
    system::run(args).map(|r| SpectrumOutput::System(Box::new(r)))
}

/// A readable rendering of the output.
pub fn render_table(out: &SpectrumOutput) -> String {
    match out {
        SpectrumOutput::System(r) => system::render_table(r),
        SpectrumOutput::Networks(nets) => {
            nets.iter().map(network::render_table).collect::<Vec<_>>().join("\n")
        }
    }
}

/// A number of a table: 12 wide, 6 decimals, `NaN` spelled out.
pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_nan() { "NaN".into() } else { format!("{v:>12.6}") }
}
