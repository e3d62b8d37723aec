//! Loading networks from safetensors: every dtype, prefixes, metadata, and every kind of bad
//! file gives a typed error naming the tensor and what was expected.

use std::collections::HashMap;
use std::path::Path;

use le_engine::LeError;
use le_engine::rnn::{CellKind, LoadOptions, Network};
use safetensors::Dtype;

struct T {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32t(name: &str, shape: &[usize], seed: u32) -> T {
    let n: usize = shape.iter().product();
    let bytes = (0..n)
        .flat_map(|i| {
            ((((i as u32 * 2654435761u32) ^ seed) % 1000) as f32 / 1000.0 - 0.5).to_le_bytes()
        })
        .collect();
    T { name: name.into(), dtype: Dtype::F32, shape: shape.to_vec(), bytes }
}

fn write(path: &Path, tensors: &[T], meta: &[(&str, &str)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    let meta: HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize_to_file(views, if meta.is_empty() { None } else { Some(meta) }, path)
        .unwrap();
}

/// A PyTorch-style LSTM, N = 4, I = 3, with the given prefix and layers.
fn lstm(prefix: &str, layers: usize, bias: bool) -> Vec<T> {
    let mut v = Vec::new();
    for l in 0..layers {
        let i = if l == 0 { 3 } else { 4 };
        v.push(f32t(&format!("{prefix}weight_ih_l{l}"), &[16, i], 1 + l as u32));
        v.push(f32t(&format!("{prefix}weight_hh_l{l}"), &[16, 4], 2 + l as u32));
        if bias {
            v.push(f32t(&format!("{prefix}bias_ih_l{l}"), &[16], 3 + l as u32));
            v.push(f32t(&format!("{prefix}bias_hh_l{l}"), &[16], 4 + l as u32));
        }
    }
    v
}

fn load(path: &Path) -> Result<Network<f32>, LeError> {
    Network::<f32>::load(path, &LoadOptions::default())
}

fn err_text(path: &Path) -> String {
    load(path).unwrap_err().to_string()
}

#[test]
fn loads_pytorch_names_with_and_without_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.safetensors");
    write(
        &p,
        &lstm("lstm.", 2, true),
        &[("arch", "lstm"), ("hidden_size", "4"), ("num_layers", "2")],
    );
    let net = load(&p).unwrap();
    assert_eq!(
        (net.kind, net.hidden, net.input, net.num_layers(), net.bias),
        (CellKind::Lstm, 4, 3, 2, true)
    );
    // no prefix, no metadata: the arch comes from the caller
    let p = dir.path().join("b.safetensors");
    write(&p, &lstm("", 1, false), &[]);
    let e = load(&p).unwrap_err();
    assert!(e.to_string().contains("--arch"), "{e}");
    let net =
        Network::<f64>::load(&p, &LoadOptions { arch: Some(CellKind::Lstm), ..Default::default() })
            .unwrap();
    assert!(!net.bias);
    // readout tensors are ignored
    let p = dir.path().join("c.safetensors");
    let mut t = lstm("rnn.", 1, true);
    t.push(f32t("fc.weight", &[10, 4], 9));
    write(&p, &t, &[("arch", "lstm")]);
    assert!(load(&p).is_ok());
}

#[test]
fn half_precision_and_f64_tensors_load() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [Dtype::F16, Dtype::BF16, Dtype::F64] {
        let mut t = lstm("", 1, true);
        for x in &mut t {
            let vals: Vec<f32> = x
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            x.bytes = match dtype {
                Dtype::F16 => {
                    vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
                }
                Dtype::BF16 => {
                    vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect()
                }
                _ => vals.iter().flat_map(|v| (*v as f64).to_le_bytes()).collect(),
            };
            x.dtype = dtype;
        }
        let p = dir.path().join(format!("{dtype:?}.safetensors"));
        write(&p, &t, &[("arch", "lstm")]);
        let net = load(&p).unwrap();
        assert!(net.layers[0].w_rec.iter().any(|&v| v != 0.0), "{dtype:?}");
    }
}

#[test]
fn asrnn_and_cornn_names_and_constants() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("as.safetensors");
    let t = vec![
        f32t("weight_hh_l0", &[4, 4], 1),
        f32t("weight_ih_l0", &[4, 3], 2),
        f32t("bias_l0", &[4], 3),
    ];
    write(&p, &t, &[("arch", "asrnn"), ("eps", "0.01")]);
    assert!(err_text(&p).contains("gamma"), "ASRNN without gamma must be an error");
    write(&p, &t, &[("arch", "asrnn"), ("eps", "0.01"), ("gamma", "0.5")]);
    let net = load(&p).unwrap();
    // M = W - W^T - gamma I: antisymmetric part plus -gamma on the diagonal
    let m = &net.layers[0].w_rec;
    for i in 0..4 {
        assert!((m[i * 4 + i] + 0.5).abs() < 1e-7);
        for j in 0..4 {
            if i != j {
                assert!((m[i * 4 + j] + m[j * 4 + i]).abs() < 1e-7);
            }
        }
    }
    let p = dir.path().join("co.safetensors");
    let t = vec![
        f32t("cell.weight_hy_l0", &[4, 4], 1),
        f32t("cell.weight_hz_l0", &[4, 4], 2),
        f32t("cell.weight_ih_l0", &[4, 3], 3),
        f32t("cell.bias_l0", &[4], 4),
    ];
    write(&p, &t, &[("arch", "cornn")]);
    let net = load(&p).unwrap();
    assert_eq!((net.constants.dt, net.constants.gamma, net.constants.eps), (0.042, 2.7, 4.7));
}

#[test]
fn bad_files_name_the_tensor_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    // missing tensor
    let mut t = lstm("rnn.", 2, true);
    t.retain(|x| x.name != "rnn.weight_ih_l1");
    write(&p("missing.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("missing.safetensors"));
    assert!(e.contains("rnn.weight_ih_l1") && e.contains("[16, 4]"), "{e}");

    // wrong shape
    let mut t = lstm("", 1, true);
    t[1] = f32t("weight_hh_l0", &[12, 4], 0);
    write(&p("shape.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("shape.safetensors"));
    assert!(e.contains("weight_hh_l0") && e.contains("[12, 4]") && e.contains("4 N, N"), "{e}");

    // wrong dtype
    let mut t = lstm("", 1, true);
    t[2].dtype = Dtype::I32;
    write(&p("dtype.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("dtype.safetensors"));
    assert!(e.contains("bias_ih_l0") && e.contains("I32"), "{e}");

    // non-finite weight
    let mut t = lstm("", 1, true);
    t[0].bytes[4 * 7..4 * 8].copy_from_slice(&f32::INFINITY.to_le_bytes());
    write(&p("inf.safetensors"), &t, &[("arch", "lstm")]);
    let e = load(&p("inf.safetensors")).unwrap_err();
    match &e {
        LeError::NonFinite { name, index, .. } => {
            assert_eq!(name, "weight_ih_l0");
            assert_eq!(index, &vec![2, 1]);
        }
        other => panic!("{other}"),
    }

    // truncated file
    let bytes = std::fs::read(p("missing.safetensors")).unwrap();
    std::fs::write(p("trunc.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load(&p("trunc.safetensors")), Err(LeError::Safetensors { .. })));

    // metadata contradicting the tensors
    write(&p("meta.safetensors"), &lstm("", 1, true), &[("arch", "lstm"), ("hidden_size", "8")]);
    let e = err_text(&p("meta.safetensors"));
    assert!(e.contains("hidden_size") && e.contains("8") && e.contains("4"), "{e}");
    write(&p("meta2.safetensors"), &lstm("", 1, true), &[("arch", "gru")]);
    let e = err_text(&p("meta2.safetensors"));
    assert!(e.contains("weight_hh_l0") && e.contains("[3 N, N]"), "{e}");
    write(&p("meta3.safetensors"), &lstm("", 1, false), &[("arch", "lstm"), ("bias", "true")]);
    assert!(err_text(&p("meta3.safetensors")).contains("bias"));
    let e = Network::<f32>::load(
        p("meta2.safetensors"),
        &LoadOptions { arch: Some(CellKind::Lstm), ..Default::default() },
    )
    .unwrap_err();
    assert!(e.to_string().contains("the file says gru"), "{e}");
    write(&p("meta4.safetensors"), &lstm("", 1, true), &[("arch", "transformer")]);
    assert!(err_text(&p("meta4.safetensors")).contains("unknown cell"));

    // two networks in one file need a prefix
    let mut t = lstm("a.", 1, true);
    t.extend(lstm("b.", 1, true));
    write(&p("two.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("two.safetensors"));
    assert!(e.contains("--prefix"), "{e}");
    let net = Network::<f32>::load(
        p("two.safetensors"),
        &LoadOptions { prefix: Some("b.".into()), ..Default::default() },
    );
    assert!(net.is_ok());

    // not there at all
    assert!(matches!(load(&p("nope.safetensors")), Err(LeError::Io { .. })));
}

/// Issue 16 ("Also found"): a 2-layer file with a layer's tensor missing, or a layer gap, used
/// to load as a 1-layer network and ignore the rest.
#[test]
fn regression_missing_or_leftover_layer_tensors_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    // weight_hh_l1 missing: layer 1's other tensors are leftovers.
    let mut t = lstm("", 2, true);
    t.retain(|x| x.name != "weight_hh_l1");
    write(&p("no_hh_l1.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("no_hh_l1.safetensors"));
    assert!(e.contains("weight_hh_l1") && e.contains("weight_ih_l1"), "{e}");
    assert!(e.contains("bias_hh_l1") && e.contains("bias_ih_l1"), "{e}");

    // a layer gap: _l0 and _l2.
    let mut t = lstm("rnn.", 3, true);
    t.retain(|x| !x.name.ends_with("_l1"));
    write(&p("gap.safetensors"), &t, &[("arch", "lstm")]);
    let e = err_text(&p("gap.safetensors"));
    assert!(e.contains("rnn.weight_hh_l1") && e.contains("rnn.weight_ih_l2"), "{e}");

    // the complete 2-layer file still loads, with 2 layers
    write(&p("ok.safetensors"), &lstm("", 2, true), &[("arch", "lstm")]);
    assert_eq!(load(&p("ok.safetensors")).unwrap().num_layers(), 2);
}

/// Issue 16: a path that is not a regular file is refused before anything is read (it used
/// to read `/dev/zero` until memory ran out).
#[test]
fn regression_device_files_are_refused() {
    match load(Path::new("/dev/zero")).unwrap_err() {
        LeError::Io { path, source } => {
            assert_eq!(path, Path::new("/dev/zero"));
            assert!(source.to_string().contains("not a regular file"), "{source}");
        }
        other => panic!("{other}"),
    }
}
