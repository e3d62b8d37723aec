//! # aelle-kernels: the CUDA C sources of le-engine's GPU backend, as text
//!
//! No build script, no dependencies, no CUDA toolkit at build time: every `.cu` file is embedded
//! with `include_str!` and compiled at run time by NVRTC (le-engine's `cuda` feature), which
//! caches the loaded modules per device. This crate is the registry of what exists:
//! [`ALL_MODULES`] lists every module with its name, its source and the `extern "C"` entry points
//! it defines. Entry names carry a dtype suffix (`lstm_tangent_f32`).
//!
//! | module | entries | what |
//! | --- | --- | --- |
//! | [`CELLS`] | `{rnn,gru,lstm,asrnn,cornn}_{forward,tangent}_f32` | one time step of all `M x B` sequences of a population: gates from pre-activations, and `Z = J Q` from `P = U_rec Q_rec` (+ input term) |
//! | [`QR`] | `householder_qr_{shared,global}_f32` | batched Householder QR of `D x k` tangent blocks: explicit `Q`, `diag(R) >= 0`, `ln R_ii` summed in `f64` |
//! | [`GEMM`] | `gemm_strided_batched_f32` | a plain tiled strided-batched GEMM, the fallback twin of `cublasSgemmStridedBatched` |
//!
//! Layouts and formulas are stated at the top of each source file (they are those of
//! `le-engine/src/rnn/cells/` and `le-engine/src/linalg/qr/`).

// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

/// One CUDA C source file and the kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    /// Short name, also the NVRTC program name (`<name>.cu`).
    pub name: &'static str,
    /// The CUDA C source.
    pub source: &'static str,
    /// Every `extern "C" __global__` function of the source, with its dtype suffix.
    pub entries: &'static [&'static str],
}

impl Module {
    /// Whether `entry` is one of this module's kernels.
    pub fn has_entry(&self, entry: &str) -> bool {
        self.entries.contains(&entry)
    }
}

/// Element type suffix of every entry name (the kernels exist in `f32` only for now).
pub const DTYPE_F32: &str = "f32";

/// Forward and tangent steps of the five cells.
pub const CELLS: Module = Module {
    name: "cells",
    source: include_str!("cu/cells.cu"),
    entries: &[
        "rnn_forward_f32",
        "rnn_tangent_f32",
        "gru_forward_f32",
        "gru_tangent_f32",
        "lstm_forward_f32",
        "lstm_tangent_f32",
        "asrnn_forward_f32",
        "asrnn_tangent_f32",
        "cornn_forward_f32",
        "cornn_tangent_f32",
    ],
};

/// Batched Householder QR with `f64` log sums.
pub const QR: Module = Module {
    name: "qr",
    source: include_str!("cu/qr.cu"),
    entries: &["householder_qr_shared_f32", "householder_qr_global_f32"],
};

/// Fallback strided-batched GEMM.
pub const GEMM: Module = Module {
    name: "gemm",
    source: include_str!("cu/gemm.cu"),
    entries: &["gemm_strided_batched_f32"],
};

/// Every module, in a fixed order (the index is the module's slot in per-device caches).
pub const ALL_MODULES: [&Module; 3] = [&CELLS, &QR, &GEMM];

/// The module that defines `entry`, if any.
pub fn module_of(entry: &str) -> Option<&'static Module> {
    ALL_MODULES.iter().copied().find(|m| m.has_entry(entry))
}

/// Slot of `module` in [`ALL_MODULES`].
pub fn module_index(module: &Module) -> Option<usize> {
    ALL_MODULES.iter().position(|m| m.name == module.name)
}

/// Entry name of a cell kernel: `cell_entry("lstm", "tangent")` is `"lstm_tangent_f32"`.
pub fn cell_entry(cell: &str, step: &str) -> String {
    format!("{cell}_{step}_{DTYPE_F32}")
}

/// The names of the `extern "C" __global__` functions defined in a CUDA C source, in order of
/// appearance (a plain text scan: comments are skipped, so are declarations without a body).
pub fn global_entries_in_source(source: &str) -> Vec<String> {
    let code = strip_comments(source);
    let mut names = Vec::new();
    let marker = "extern \"C\" __global__";
    let mut rest = code.as_str();
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        // `void name(`: the identifier right before the first `(`.
        let Some(paren) = rest.find('(') else { break };
        let head = rest[..paren].trim_end();
        let name: String = head
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for c in chars.by_ref() {
                if prev == '*' && c == '/' {
                    break;
                }
                prev = c;
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_exactly_the_global_functions_of_every_source() {
        for module in ALL_MODULES {
            let found = global_entries_in_source(module.source);
            let mut found_sorted = found.clone();
            found_sorted.sort();
            let mut listed: Vec<String> =
                module.entries.iter().map(std::string::ToString::to_string).collect();
            listed.sort();
            assert_eq!(found_sorted, listed, "module `{}`: sources vs registry", module.name);
            let mut dedup = found_sorted.clone();
            dedup.dedup();
            assert_eq!(dedup.len(), found.len(), "module `{}` defines a name twice", module.name);
        }
    }

    #[test]
    fn entry_names_are_unique_and_carry_a_dtype_suffix() {
        let mut all: Vec<&str> =
            ALL_MODULES.iter().flat_map(|m| m.entries.iter().copied()).collect();
        for e in &all {
            assert!(e.ends_with(&format!("_{DTYPE_F32}")), "{e} has no dtype suffix");
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an entry name appears in two modules");
    }

    #[test]
    fn every_cell_has_a_forward_and_a_tangent_kernel() {
        for cell in ["rnn", "gru", "lstm", "asrnn", "cornn"] {
            for step in ["forward", "tangent"] {
                let e = cell_entry(cell, step);
                assert_eq!(module_of(&e), Some(&CELLS), "{e}");
            }
        }
        assert_eq!(module_index(&QR), Some(1));
    }

    #[test]
    fn the_scanner_skips_comments_and_reads_names() {
        let src = "// extern \"C\" __global__ void commented(int x) {}\n\
                   /* extern \"C\" __global__ void block_commented() {} */\n\
                   extern \"C\" __global__ void real_one_f32(int x) { }\n\
                   extern \"C\" __global__\nvoid\n  second_f32 (float *y) { }\n";
        assert_eq!(global_entries_in_source(src), ["real_one_f32", "second_f32"]);
    }
}
