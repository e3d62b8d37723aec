//! Every CUDA kernel of `aelle-kernels` compiles with NVRTC, without warnings, and defines the
//! entry points the registry lists. Needs no GPU: only `libnvrtc` (the PyPI wheel
//! `nvidia-cuda-nvrtc-cu12` ships it; `scripts/ci-cuda-check.sh` installs it and points
//! `LD_LIBRARY_PATH` at it).
//!
//! When libnvrtc cannot be loaded the test is skipped with a message, unless `CI` is set, in
//! which case it fails: CI must really compile the kernels.
#![cfg(feature = "cuda")]

use std::ffi::{CStr, CString};

use cudarc::nvrtc::{result, sys};

fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the shared library.
    let present = unsafe { sys::is_culib_present() };
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "libnvrtc cannot be loaded and CI is set: install the wheel \
             nvidia-cuda-nvrtc-cu12 and put its lib/ folder on LD_LIBRARY_PATH \
             (scripts/ci-cuda-check.sh does both)"
        );
        eprintln!(
            "SKIPPED: libnvrtc cannot be loaded (set LD_LIBRARY_PATH to a folder with \
             libnvrtc.so.12, e.g. the nvidia-cuda-nvrtc-cu12 wheel's lib/; or run \
             scripts/ci-cuda-check.sh)"
        );
    }
    present
}

/// Compile `source` with `options`; returns (PTX, compiler log) or the log of the failure.
fn compile(name: &str, source: &str, options: &[&str]) -> Result<(String, String), String> {
    let src = CString::new(source).expect("no NUL in sources");
    let cname = CString::new(format!("{name}.cu")).unwrap();
    let prog = result::create_program(&src, Some(&cname)).map_err(|e| format!("{e:?}"))?;
    let opts: Vec<String> = options.iter().map(std::string::ToString::to_string).collect();
    // SAFETY: `prog` is a live program; options are valid C strings once converted by cudarc.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    let log = unsafe { result::get_program_log(prog) }.map_err(|e| format!("{e:?}"))?;
    let log = unsafe { CStr::from_ptr(log.as_ptr()) }.to_string_lossy().trim().to_string();
    let out = match compiled {
        Ok(()) => {
            let ptx = unsafe { result::get_ptx(prog) }.map_err(|e| format!("{e:?}"))?;
            let ptx = unsafe { CStr::from_ptr(ptx.as_ptr()) }.to_string_lossy().into_owned();
            Ok((ptx, log))
        }
        Err(e) => Err(format!("{e:?}\n{log}")),
    };
    unsafe { result::destroy_program(prog) }.map_err(|e| format!("{e:?}"))?;
    out
}

/// The options the backend uses (see `backend/cuda/enabled/device.rs`), plus a fixed
/// architecture so the PTX is reproducible.
const OPTIONS: [&str; 2] = ["--std=c++17", "--gpu-architecture=compute_70"];

#[test]
fn every_kernel_compiles_without_warnings_and_matches_the_registry() {
    if !nvrtc_available() {
        return;
    }
    for module in aelle_kernels::ALL_MODULES {
        for arch in ["compute_70", "compute_90"] {
            let opts = ["--std=c++17".to_string(), format!("--gpu-architecture={arch}")];
            let opts: Vec<&str> = opts.iter().map(std::convert::AsRef::as_ref).collect();
            let (ptx, log) = compile(module.name, module.source, &opts)
                .unwrap_or_else(|log| panic!("module `{}` ({arch}) failed:\n{log}", module.name));
            assert!(
                log.is_empty(),
                "module `{}` ({arch}): compiler log not empty:\n{log}",
                module.name
            );
            // Every registered entry is an unmangled `.entry` of the PTX, and every `.entry` of
            // the PTX is registered.
            let mut in_ptx: Vec<String> = ptx
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    let rest = l.strip_prefix(".visible .entry ")?;
                    Some(rest.split('(').next().unwrap_or("").trim().to_string())
                })
                .collect();
            in_ptx.sort();
            let mut listed: Vec<String> =
                module.entries.iter().map(std::string::ToString::to_string).collect();
            listed.sort();
            assert_eq!(in_ptx, listed, "module `{}`: PTX entries vs registry", module.name);
        }
        // The text scan of the source agrees too.
        let mut scanned = aelle_kernels::global_entries_in_source(module.source);
        scanned.sort();
        let mut listed: Vec<String> =
            module.entries.iter().map(std::string::ToString::to_string).collect();
        listed.sort();
        assert_eq!(scanned, listed, "module `{}`: source vs registry", module.name);
    }
}

#[test]
fn a_broken_kernel_gives_a_clean_error_with_the_compiler_log() {
    if !nvrtc_available() {
        return;
    }
    let err = compile(
        "broken",
        "extern \"C\" __global__ void broken_f32(float *x) { x[0] = y; }",
        &OPTIONS,
    )
    .expect_err("must not compile");
    assert!(err.contains("identifier \"y\" is undefined"), "log: {err}");
}

#[test]
fn the_backend_compiles_every_module_through_its_own_path() {
    if !nvrtc_available() {
        return;
    }
    for module in aelle_kernels::ALL_MODULES {
        le_engine::backend::compile_module_ptx(module.name)
            .unwrap_or_else(|e| panic!("module `{}`: {e}", module.name));
    }
}

#[test]
fn compiler_warnings_reach_the_log_so_an_empty_log_means_no_warnings() {
    if !nvrtc_available() {
        return;
    }
    let src = "extern \"C\" __global__ void warn_f32(float *x) { int unused; x[0] = 1.0f; }";
    let (_, log) = compile("warn", src, &OPTIONS).expect("compiles");
    assert!(log.contains("warning"), "expected a warning about `unused`, log: {log:?}");
}
