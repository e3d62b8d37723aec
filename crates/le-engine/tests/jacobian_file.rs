//! The `[T, D, D]` Jacobian-sequence path: files written from a built-in system's own Jacobians
//! give the same exponents as the built-in path, and bad files give typed errors.

use le_engine::systems::{Henon, Lorenz63};
use le_engine::{
    DiscreteMap, JacobianFile, LeError, MapWorkspace, Precision, Rk4, SpectrumConfig, map_spectrum,
    save_jacobians,
};

/// Jacobians of `map` along the orbit from `x0`, `[steps, D, D]` row-major.
fn dump<M: DiscreteMap<f64>>(map: &M, x0: &[f64], steps: usize) -> Vec<f64> {
    let d = map.dim();
    let mut ws = MapWorkspace::new();
    let mut x = x0.to_vec();
    let mut next = vec![0.0; d];
    let mut out = vec![0.0; steps * d * d];
    for t in 0..steps {
        assert!(map.jacobian(t, &x, &mut out[t * d * d..(t + 1) * d * d], &mut ws));
        map.step(t, &x, &mut next, &mut ws);
        std::mem::swap(&mut x, &mut next);
    }
    out
}

#[test]
fn file_path_equals_built_in_path() {
    let dir = tempfile::tempdir().unwrap();
    // Henon, per step
    let steps = 20_000;
    let jac = dump(&Henon::default(), &[0.1, 0.1], steps);
    let path = dir.path().join("henon.safetensors");
    save_jacobians(&path, &jac, 2, 1.0).unwrap();
    let cfg = SpectrumConfig { steps, ..SpectrumConfig::default() };
    let built_in = map_spectrum(&Henon::default(), &[0.1f64, 0.1], &cfg).unwrap();
    let file = JacobianFile::load(&path).unwrap();
    assert_eq!((file.len, file.dim, file.dt), (steps, 2, 1.0));
    let from_file = file.spectrum(&cfg).unwrap();
    for (a, b) in built_in.exponents.iter().zip(&from_file.exponents) {
        assert!((a - b).abs() < 1e-13, "{a} vs {b}");
    }
    // with warm-up: the first w Jacobians are warm-up in both paths
    let cfg_w = SpectrumConfig { warmup: 500, steps: steps - 500, ..SpectrumConfig::default() };
    let a = map_spectrum(&Henon::default(), &[0.1f64, 0.1], &cfg_w).unwrap();
    let b = file.spectrum(&cfg_w).unwrap();
    assert_eq!(a.steps, b.steps);
    for (x, y) in a.exponents.iter().zip(&b.exponents) {
        assert!((x - y).abs() < 1e-13, "{x} vs {y}");
    }

    // Lorenz: RK4 step Jacobians with dt stored in the file -> exponents per unit time
    let dt = 0.01;
    let map = Rk4::new(Lorenz63::default(), dt);
    let steps = 50_000;
    let jac = dump(&map, &[1.0, 1.0, 1.0], steps);
    let path = dir.path().join("lorenz.safetensors");
    save_jacobians(&path, &jac, 3, dt).unwrap();
    let cfg = SpectrumConfig { steps, ..SpectrumConfig::default() };
    let built_in =
        le_engine::flow_spectrum(&Lorenz63::default(), &[1.0f64, 1.0, 1.0], dt, &cfg).unwrap();
    let from_file = JacobianFile::load(&path).unwrap().spectrum(&cfg).unwrap();
    for (a, b) in built_in.exponents.iter().zip(&from_file.exponents) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    // f32 precision from an f64 file
    let c32 = SpectrumConfig { precision: Precision::F32, ..cfg };
    let s32 = JacobianFile::load(&path).unwrap().spectrum(&c32).unwrap();
    assert!((s32.exponents[0] - built_in.exponents[0]).abs() < 1e-2);
}

fn write_raw(
    path: &std::path::Path,
    tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, bytes)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn bad_files_give_typed_errors_naming_the_problem() {
    use safetensors::Dtype;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    let e = JacobianFile::load(p("missing.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing.safetensors"));

    std::fs::write(p("garbage.safetensors"), b"not a safetensors file at all").unwrap();
    let e = JacobianFile::load(p("garbage.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::Safetensors { .. }), "{e}");

    write_raw(&p("other.safetensors"), vec![("weights", Dtype::F64, vec![1], f64_bytes(&[1.0]))]);
    let e = JacobianFile::load(p("other.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::MissingTensor { .. }), "{e}");
    assert!(e.to_string().contains("jacobians") && e.to_string().contains("[T, D, D]"));

    write_raw(
        &p("rank2.safetensors"),
        vec![("jacobians", Dtype::F64, vec![2, 2], f64_bytes(&[1.0; 4]))],
    );
    let e = JacobianFile::load(p("rank2.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::BadShape { .. }), "{e}");

    write_raw(
        &p("nonsq.safetensors"),
        vec![("jacobians", Dtype::F64, vec![1, 2, 3], f64_bytes(&[1.0; 6]))],
    );
    let e = JacobianFile::load(p("nonsq.safetensors")).unwrap_err();
    assert!(e.to_string().contains("square"), "{e}");

    write_raw(
        &p("int.safetensors"),
        vec![("jacobians", Dtype::I32, vec![1, 1, 1], vec![0, 0, 0, 0])],
    );
    let e = JacobianFile::load(p("int.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::BadDtype { .. }), "{e}");

    let mut vals = vec![1.0; 8];
    vals[6] = f64::NAN;
    write_raw(
        &p("nan.safetensors"),
        vec![("jacobians", Dtype::F64, vec![2, 2, 2], f64_bytes(&vals))],
    );
    let e = JacobianFile::load(p("nan.safetensors")).unwrap_err();
    match &e {
        LeError::NonFinite { index, .. } => assert_eq!(index, &vec![1, 1, 0]),
        other => panic!("expected NonFinite, got {other}"),
    }

    write_raw(
        &p("baddt.safetensors"),
        vec![
            ("jacobians", Dtype::F64, vec![1, 1, 1], f64_bytes(&[2.0])),
            ("dt", Dtype::F64, vec![2], f64_bytes(&[0.1, 0.2])),
        ],
    );
    let e = JacobianFile::load(p("baddt.safetensors")).unwrap_err();
    assert!(e.to_string().contains("dt"), "{e}");

    // truncated file
    let good = p("good.safetensors");
    save_jacobians(&good, &[1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 1.0], 2, 1.0).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p("trunc.safetensors"), &bytes[..bytes.len() - 5]).unwrap();
    let e = JacobianFile::load(p("trunc.safetensors")).unwrap_err();
    assert!(matches!(e, LeError::Safetensors { .. }), "{e}");

    // k > D is a configuration error of the spectrum call
    let f = JacobianFile::load(&good).unwrap();
    let e = f.spectrum(&SpectrumConfig { k: Some(3), ..SpectrumConfig::default() }).unwrap_err();
    assert!(e.to_string().contains("1..=2"), "{e}");
}
