//! The commands that are not experiment stages: `spectrum` (one network, system or Jacobian
//! file), `bench` (QR and spectrum-step throughput against this machine's GEMM) and
//! `check-engine` (the reference systems of METHOD.md section 7).

pub mod bench;
pub mod check_engine;
pub mod spectrum;
