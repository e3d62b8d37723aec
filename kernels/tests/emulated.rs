//! Runs every kernel on a CPU emulator of the CUDA features they use (`emu/cuda_emu.h`:
//! real threads per block, barriers for `__syncthreads`, per-warp exchange for the shuffles) and
//! checks them (`emu/check_kernels.cpp`): GEMM against a naive product, the QR's invariants and
//! divergence codes, every cell's tangent kernel against central finite differences of its
//! forward kernel. The sources compiled are the registry's (`ALL_MODULES`), the only change being
//! `extern __shared__ float smem[];` -> a pointer into the emulator's dynamic shared memory.
//!
//! Needs a C++20 compiler (`$CXX`, else `c++`); skipped with a message when there is none.
//! This found a real race (a lane reading a value its warp's lane 0 had already rewritten)
//! that NVRTC cannot see.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn kernels_pass_their_checks_on_the_cpu_emulator() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    if Command::new(&cxx).arg("--version").output().is_err() {
        eprintln!("SKIPPED: no C++ compiler (`{cxx}`) to build the kernel emulator");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kernel-emulator");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cuda_emu.h"), include_str!("../emu/cuda_emu.h")).unwrap();
    std::fs::write(dir.join("check_kernels.cpp"), include_str!("../emu/check_kernels.cpp"))
        .unwrap();
    for module in aelle_kernels::ALL_MODULES {
        let src = module
            .source
            .replace("extern __shared__ float smem[];", "float *smem = emu_dynamic_smem();");
        std::fs::write(dir.join(format!("{}.cu", module.name)), src).unwrap();
    }
    let exe = dir.join("check_kernels");
    let out = Command::new(&cxx)
        .current_dir(&dir)
        .args(["-std=c++20", "-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg("check_kernels.cpp")
        .output()
        .expect("run the C++ compiler");
    assert!(
        out.status.success(),
        "the emulator does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run the emulated checks");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success() && stdout.contains("ALL PASSED"),
        "emulated checks failed:\n{stdout}"
    );
}
