//! The `spectrum` command's options as engine settings, and the parsers of its list-valued
//! flags (`--param`, `--matrix`, `--x0`); every error is bad input naming the flag.

use std::collections::BTreeMap;

use anyhow::Result;
use le_engine::systems::LinearMap;
use le_engine::{InitialBasis, LogBase, Orientation, Precision, SpectrumConfig};

use crate::cli::{BasisArg, SpectrumArgs};
use crate::error::usage;

/// Engine settings from the CLI arguments (shared by every source).
pub fn config_from_args(args: &SpectrumArgs, is_file: bool) -> SpectrumConfig {
    SpectrumConfig {
        k: args.k,
        warmup: args.warmup.unwrap_or(if args.reference_mode && !args.weights.is_empty() {
            le_engine::rnn::REFERENCE_WARMUP
        } else if is_file {
            0
        } else {
            1000
        }),
        steps: args.steps.unwrap_or(100_000),
        ons_interval: args.ons,
        orientation: match args.orientation {
            Some(o) => o,
            None if args.reference_mode => Orientation::JtQ,
            None => Orientation::JQ,
        },
        log_base: match args.log_base {
            Some(b) => b,
            None if args.reference_mode => LogBase::Two,
            None => LogBase::E,
        },
        initial_basis: match args.basis {
            BasisArg::Identity => InitialBasis::Identity,
            BasisArg::Random => InitialBasis::Random { seed: args.seed },
        },
        precision: match args.precision {
            Some(p) => p,
            None if !args.weights.is_empty() => Precision::F32,
            None => Precision::F64,
        },
        trace_every: args.trace_every,
        log_det: true,
        zero_tolerance: args.zero_tol,
    }
}

pub fn parse_list(what: &str, s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|v| {
            let v = v.trim();
            let x: f64 = v.parse().map_err(|_| usage(format!("{what}: `{v}` is not a number")))?;
            if !x.is_finite() {
                return Err(usage(format!("{what}: `{v}` is not finite")));
            }
            Ok(x)
        })
        .collect()
}

pub fn parse_params(args: &SpectrumArgs, allowed: &[(&str, f64)]) -> Result<BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, f64> = allowed.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    for p in &args.params {
        let Some((name, value)) = p.split_once('=') else {
            return Err(usage(format!("--param `{p}`: expected NAME=VALUE")));
        };
        let name = name.trim();
        if !out.contains_key(name) {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            return Err(usage(format!(
                "--param `{name}`: unknown parameter for this system (expected one of: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        }
        let v = parse_list(&format!("--param {name}"), value)?;
        if v.len() != 1 {
            return Err(usage(format!("--param {name}: expected one number")));
        }
        out.insert(name.to_string(), v[0]);
    }
    Ok(out)
}

pub fn parse_matrix(s: &str) -> Result<LinearMap> {
    let rows: Vec<Vec<f64>> =
        s.split(';').map(|r| parse_list("--matrix", r)).collect::<Result<_>>()?;
    let d = rows.len();
    if rows.iter().any(|r| r.len() != d) {
        return Err(usage(format!(
            "--matrix: expected a square matrix (rows separated by ';'), got row lengths {:?}",
            rows.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok(LinearMap { d, a: rows.into_iter().flatten().collect() })
}
