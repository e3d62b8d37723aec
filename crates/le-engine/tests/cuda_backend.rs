//! The backend trait on every device: the CPU backend is `population_spectra`; the CUDA backend
//! is a typed error without the `cuda` feature or without a driver, and on a GPU it matches the
//! CPU backend on the shared comparison cases (`le_engine::backend::sample::comparison_cases`).
//!
//! On a machine without a GPU the CUDA comparison is skipped with a message; set
//! `AELLE_REQUIRE_GPU=1` to make it fail instead (GPU sessions do).

use le_engine::backend::sample::{
    CUDA_VS_CPU_FLOOR, comparison_cases, random_inputs, random_population, spectrum_difference,
};
use le_engine::backend::{
    BackendError, CpuBackend, CudaBackend, CudaError, Device, PopulationInputs, SpectrumBackend,
    backend_for,
};
use le_engine::rnn::{CellKind, InputSet, RnnSpectrumConfig, population_spectra};

#[test]
fn cpu_backend_is_population_spectra() {
    let nets = random_population(CellKind::Gru, 3, 8, 4, 1, 11);
    let x = random_inputs(2, 20, 4, 12);
    let cfg = RnnSpectrumConfig::default();
    let direct = population_spectra(&nets, &InputSet::shared(&x, 2, 20), &cfg).unwrap();
    let inputs = PopulationInputs::shared(&x, 2, 20);
    let via = CpuBackend.population_spectra(&nets, &inputs, &cfg).unwrap();
    let d = spectrum_difference(&direct, &via, 1.0).unwrap();
    assert_eq!((d.partial_sums, d.exponents), (0.0, 0.0));
    // per-network inputs take the same route
    let x2 = random_inputs(2, 20, 4, 13);
    let sets = vec![x.as_slice(), x2.as_slice(), x.as_slice()];
    let per = PopulationInputs::per_network(sets.clone(), 2, 20);
    let direct = population_spectra(&nets, &InputSet::per_network(sets, 2, 20), &cfg).unwrap();
    let via = CpuBackend.population_spectra(&nets, &per, &cfg).unwrap();
    let d = spectrum_difference(&direct, &via, 1.0).unwrap();
    assert_eq!((d.partial_sums, d.exponents), (0.0, 0.0));
}

#[test]
fn cpu_backend_reports_engine_errors_typed() {
    let nets = random_population(CellKind::Rnn, 1, 4, 3, 1, 1);
    let x = random_inputs(1, 5, 3, 2);
    let mut cfg = RnnSpectrumConfig::default();
    cfg.spectrum.warmup = 5;
    let err = CpuBackend
        .population_spectra(&nets, &PopulationInputs::shared(&x, 1, 5), &cfg)
        .unwrap_err();
    assert!(matches!(err, BackendError::Engine(_)), "{err}");
}

#[test]
fn cuda_backend_without_cuda_is_a_typed_error_not_a_panic() {
    if cfg!(feature = "cuda") && CudaBackend::is_available() {
        eprintln!("a CUDA device is available: nothing to check here");
        return;
    }
    let err = CudaBackend::new(0).unwrap_err();
    if cfg!(feature = "cuda") {
        assert!(
            matches!(err, CudaError::LibraryMissing { .. } | CudaError::Driver(_)),
            "unexpected error: {err}"
        );
    } else {
        assert_eq!(err, CudaError::NotCompiled);
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
    let err = backend_for(Device::Cuda(0)).err().expect("no CUDA backend here");
    assert!(matches!(err, BackendError::Cuda(_)), "{err}");
    assert!(backend_for(Device::parse("cpu").unwrap()).is_ok());
}

#[test]
fn cuda_population_matches_cpu_backend() {
    let required = std::env::var_os("AELLE_REQUIRE_GPU").is_some();
    if !CudaBackend::is_available() {
        assert!(!required, "AELLE_REQUIRE_GPU is set but no usable CUDA device was found");
        eprintln!(
            "SKIPPED: no usable CUDA device (built with cuda feature: {})",
            cfg!(feature = "cuda")
        );
        return;
    }
    let gpu = CudaBackend::new(0).expect("CUDA backend");
    for (i, case) in comparison_cases().into_iter().enumerate() {
        let (nets, sets) = case.seeded_population(i);
        let inputs = case.population_inputs(&sets);
        let cpu = CpuBackend.population_spectra(&nets, &inputs, &case.cfg).unwrap();
        let cuda = gpu.population_spectra(&nets, &inputs, &case.cfg).unwrap();
        let diff = spectrum_difference(&cpu, &cuda, CUDA_VS_CPU_FLOOR)
            .unwrap_or_else(|e| panic!("case `{}`: {e}", case.name));
        assert!(diff.within_tolerance(), "case `{}`: {diff:?}", case.name);
    }
}

#[test]
fn comparison_cases_run_and_stay_finite_on_the_cpu() {
    use le_engine::backend::sample::comparison_cases;
    for (i, case) in comparison_cases().into_iter().enumerate() {
        let (nets, sets) = case.seeded_population(i);
        let inputs = case.population_inputs(&sets);
        let out = CpuBackend
            .population_spectra(&nets, &inputs, &case.cfg)
            .unwrap_or_else(|e| panic!("case `{}`: {e}", case.name));
        assert_eq!(out.spectra.len(), case.networks, "case `{}`", case.name);
        for s in out.spectra.iter().flatten() {
            assert!(s.status.is_finite(), "case `{}`: {}", case.name, s.status);
            assert!(s.exponents.iter().all(|v| v.is_finite()), "case `{}`", case.name);
        }
    }
}
