//! Loading networks from safetensors files with PyTorch parameter names
//! (`docs/checkpoint-format.md`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use super::{CellConstants, CellKind, Layer, Network};
use crate::error::{LeError, Result};
use crate::scalar::Real;
use crate::tensor_data::{FLOAT_DTYPES, decode_floats};

/// How to read a weights file. Everything is optional: the architecture and constants come from
/// the file's `__metadata__` when not given here; a value given here must not contradict it.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Cell kind (overrides a missing `arch` metadata entry).
    pub arch: Option<CellKind>,
    /// Common prefix of the tensor names (e.g. `rnn.`); found automatically when the file holds
    /// exactly one network.
    pub prefix: Option<String>,
    /// ASRNN `eps` / CoRNN `eps`.
    pub eps: Option<f64>,
    /// ASRNN `gamma` / CoRNN `gamma`.
    pub gamma: Option<f64>,
    /// CoRNN `dt`.
    pub dt: Option<f64>,
}

struct File<'a> {
    path: PathBuf,
    st: SafeTensors<'a>,
    prefix: String,
}

impl File<'_> {
    fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// Read tensor `name` (without prefix) with the expected shape, as `T`, rejecting
    /// non-finite values.
    fn read<T: Real>(&self, name: &str, shape: &[usize]) -> Result<Vec<T>> {
        let full = format!("{}{name}", self.prefix);
        let view = self.st.tensor(&full).map_err(|_| LeError::MissingTensor {
            path: self.path.clone(),
            name: full.clone(),
            expected: format!("shape {shape:?}"),
        })?;
        if view.shape() != shape {
            return Err(LeError::BadShape {
                path: self.path.clone(),
                name: full,
                expected: format!("{shape:?}"),
                found: view.shape().to_vec(),
            });
        }
        let v = decode_floats(view.dtype(), view.data()).ok_or_else(|| LeError::BadDtype {
            path: self.path.clone(),
            name: full.clone(),
            expected: FLOAT_DTYPES.into(),
            found: format!("{:?}", view.dtype()),
        })?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            let mut index = Vec::with_capacity(shape.len());
            let mut rem = i;
            for d in (0..shape.len()).rev() {
                index.push(rem % shape[d]);
                rem /= shape[d];
            }
            index.reverse();
            return Err(LeError::NonFinite {
                path: self.path.clone(),
                name: full,
                index,
                value: v[i],
            });
        }
        Ok(v.into_iter().map(T::from_f64).collect())
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.st.tensor(&format!("{}{name}", self.prefix)).ok().map(|v| v.shape().to_vec())
    }
}

fn meta_f64(path: &Path, meta: &HashMap<String, String>, key: &str) -> Result<Option<f64>> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse::<f64>().ok().filter(|x| x.is_finite()).map(Some).ok_or_else(|| {
                LeError::BadMetadata {
                    path: path.to_path_buf(),
                    key: key.into(),
                    message: format!("expected a finite number, got `{v}`"),
                }
            })
        }
    }
}

fn meta_usize(path: &Path, meta: &HashMap<String, String>, key: &str) -> Result<Option<usize>> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| LeError::BadMetadata {
            path: path.to_path_buf(),
            key: key.into(),
            message: format!("expected a non-negative integer, got `{v}`"),
        }),
    }
}

/// Resolve a constant: option > metadata > default; option and metadata must agree.
fn constant(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
    option: Option<f64>,
    default: Option<f64>,
    arch: CellKind,
) -> Result<f64> {
    let from_meta = meta_f64(path, meta, key)?;
    if let (Some(o), Some(m)) = (option, from_meta)
        && (o - m).abs() > 1e-12 * m.abs().max(1.0)
    {
        return Err(LeError::BadMetadata {
            path: path.to_path_buf(),
            key: key.into(),
            message: format!("the file says {m}, the caller asked for {o}"),
        });
    }
    option.or(from_meta).or(default).ok_or_else(|| LeError::BadMetadata {
        path: path.to_path_buf(),
        key: key.into(),
        message: format!("{} needs `{key}` (in __metadata__ or given explicitly)", arch.name()),
    })
}

impl<T: Real> Network<T> {
    /// Load a network from a safetensors file (PyTorch names, see `docs/checkpoint-format.md`).
    /// Every problem — unreadable or truncated file, missing tensor, wrong shape or dtype,
    /// non-finite weights, metadata that contradicts the tensors — is a typed error naming the
    /// file, the tensor and what was expected.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = aelle_support::fs::read_input_file(&path)
            .map_err(|source| LeError::Io { path: path.clone(), source })?;
        Self::from_bytes(&bytes, &path, opts)
    }

    /// [`Network::load`] from bytes already in memory (`path` is used in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path, opts: &LoadOptions) -> Result<Self> {
        let path = path.to_path_buf();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| LeError::Safetensors { path: path.clone(), message: e.to_string() })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| LeError::Safetensors { path: path.clone(), message: e.to_string() })?;
        let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
        let kind = cell_kind(&path, &meta, opts)?;
        let anchor = if kind == CellKind::Cornn { "weight_hy_l0" } else { "weight_hh_l0" };
        let prefix = find_prefix(&path, &st, opts, kind, anchor)?;
        let file = File { path: path.clone(), st, prefix };
        let (n, input, num_layers) = sizes(&file, kind, anchor)?;
        let bias = file.has(&bias_name(kind, 0));
        check_metadata(
            &file,
            &meta,
            kind,
            [("hidden_size", n), ("input_size", input), ("num_layers", num_layers)],
            bias,
        )?;
        let constants = match kind {
            CellKind::Asrnn => CellConstants {
                eps: constant(&path, &meta, "eps", opts.eps, Some(0.01), kind)?,
                gamma: constant(&path, &meta, "gamma", opts.gamma, None, kind)?,
                dt: 0.0,
            },
            CellKind::Cornn => CellConstants {
                eps: constant(&path, &meta, "eps", opts.eps, Some(4.7), kind)?,
                gamma: constant(&path, &meta, "gamma", opts.gamma, Some(2.7), kind)?,
                dt: constant(&path, &meta, "dt", opts.dt, Some(0.042), kind)?,
            },
            _ => CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 },
        };
        let mut layers = Vec::with_capacity(num_layers);
        for l in 0..num_layers {
            let i_l = if l == 0 { input } else { n };
            layers.push(read_layer(&file, kind, l, n, i_l, bias, constants.gamma)?);
        }
        Network::from_layers(kind, n, input, bias, constants, layers)
    }
}

/// The cell kind: the caller's option or the file's `arch` metadata, which must agree.
fn cell_kind(path: &Path, meta: &HashMap<String, String>, opts: &LoadOptions) -> Result<CellKind> {
    let path = path.to_path_buf();
    let meta_arch = match meta.get("arch") {
        None => None,
        Some(a) => Some(CellKind::parse(a).ok_or_else(|| LeError::BadMetadata {
            path: path.clone(),
            key: "arch".into(),
            message: format!("unknown cell `{a}` (expected rnn, gru, lstm, asrnn or cornn)"),
        })?),
    };
    Ok(match (opts.arch, meta_arch) {
        (Some(o), Some(m)) if o != m => {
            return Err(LeError::BadMetadata {
                path,
                key: "arch".into(),
                message: format!("the file says {}, the caller asked for {}", m.name(), o.name()),
            });
        }
        (Some(o), _) => o,
        (None, Some(m)) => m,
        (None, None) => {
            return Err(LeError::BadMetadata {
                path,
                key: "arch".into(),
                message: "the cell kind is unknown: no `arch` in __metadata__ and none given \
                          (pass --arch rnn|gru|lstm|asrnn|cornn)"
                    .into(),
            });
        }
    })
}

/// The tensor-name prefix: given, or the unique one in front of the `anchor` tensor.
fn find_prefix(
    path: &Path,
    st: &SafeTensors<'_>,
    opts: &LoadOptions,
    kind: CellKind,
    anchor: &str,
) -> Result<String> {
    let path = path.to_path_buf();
    Ok(match &opts.prefix {
        Some(p) => p.clone(),
        None => {
            let mut found: Vec<String> = st
                .names()
                .into_iter()
                .filter_map(|n| n.strip_suffix(anchor).map(str::to_string))
                .collect();
            found.sort();
            match found.len() {
                1 => found.remove(0),
                0 => {
                    return Err(LeError::MissingTensor {
                        path,
                        name: anchor.into(),
                        expected: format!(
                            "a {} network's `{anchor}` (optionally with a prefix such as `rnn.`)",
                            kind.name()
                        ),
                    });
                }
                _ => {
                    return Err(LeError::BadMetadata {
                        path,
                        key: "prefix".into(),
                        message: format!(
                            "several networks in the file (prefixes {found:?}); choose one with --prefix"
                        ),
                    });
                }
            }
        }
    })
}

/// `(N, I, layers)` from the first layer's tensors and the layers present.
fn sizes(file: &File<'_>, kind: CellKind, anchor: &str) -> Result<(usize, usize, usize)> {
    let path = file.path.clone();
    let g = kind.gates();
    let Some(rec_shape) = file.shape(anchor) else {
        return Err(LeError::MissingTensor {
            path,
            name: format!("{}{anchor}", file.prefix),
            expected: "shape [G N, N]".into(),
        });
    };
    if rec_shape.len() != 2 || rec_shape[1] == 0 || rec_shape[0] != g * rec_shape[1] {
        return Err(LeError::BadShape {
            path,
            name: format!("{}{anchor}", file.prefix),
            expected: format!("[{g} N, N] for {} (N = hidden size)", kind.name()),
            found: rec_shape,
        });
    }
    let n = rec_shape[1];
    let input = match file.shape("weight_ih_l0") {
        Some(s) if s.len() == 2 => s[1],
        Some(s) => {
            return Err(LeError::BadShape {
                path,
                name: format!("{}weight_ih_l0", file.prefix),
                expected: format!("[{} , I]", g * n),
                found: s,
            });
        }
        None => {
            return Err(LeError::MissingTensor {
                path,
                name: format!("{}weight_ih_l0", file.prefix),
                expected: format!("shape [{}, I]", g * n),
            });
        }
    };
    let mut num_layers = 0;
    while file.has(&format!("{}{num_layers}", &anchor[..anchor.len() - 1])) {
        num_layers += 1;
    }
    check_no_leftover_layers(file, anchor, num_layers)?;
    Ok((n, input, num_layers))
}

/// The layer index of a parameter name `<name>_l<digits>`, if it is one.
fn layer_index(name: &str) -> Option<usize> {
    let (_, digits) = name.rsplit_once("_l")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Layers are `0..num_layers`, counted by the `anchor` tensor; a tensor of any later layer
/// (a missing `anchor` in the middle, a gap such as `_l0`, `_l2`) would silently be ignored,
/// so it is an error naming the missing tensor and the leftover ones.
fn check_no_leftover_layers(file: &File<'_>, anchor: &str, num_layers: usize) -> Result<()> {
    let mut leftover: Vec<String> = file
        .st
        .names()
        .into_iter()
        .filter_map(|full| {
            let name = full.strip_prefix(file.prefix.as_str())?;
            (layer_index(name)? >= num_layers).then(|| full.to_string())
        })
        .collect();
    if leftover.is_empty() {
        return Ok(());
    }
    leftover.sort();
    let shown: Vec<&str> = leftover.iter().take(8).map(String::as_str).collect();
    let more = if leftover.len() > 8 {
        format!(" and {} more", leftover.len() - 8)
    } else {
        String::new()
    };
    Err(LeError::MissingTensor {
        path: file.path.clone(),
        name: format!("{}{}{num_layers}", file.prefix, &anchor[..anchor.len() - 1]),
        expected: format!(
            "layer {num_layers} is incomplete: the file has {num_layers} complete layer(s) and leftover tensors of later layers: {}{more}",
            shown.join(", ")
        ),
    })
}

/// The name of layer `l`'s (input) bias tensor.
fn bias_name(kind: CellKind, l: usize) -> String {
    match kind {
        CellKind::Asrnn | CellKind::Cornn => format!("bias_l{l}"),
        _ => format!("bias_ih_l{l}"),
    }
}

/// The metadata's sizes (`checks`: key and the tensors' value) and `bias` must agree with the
/// tensors.
fn check_metadata(
    file: &File<'_>,
    meta: &HashMap<String, String>,
    kind: CellKind,
    checks: [(&str, usize); 3],
    bias: bool,
) -> Result<()> {
    let path = file.path.clone();
    for (key, got) in checks {
        if let Some(m) = meta_usize(&path, meta, key)?
            && m != got
        {
            return Err(LeError::BadMetadata {
                path,
                key: key.into(),
                message: format!("says {m} but the tensors give {got}"),
            });
        }
    }
    if let Some(b) = meta.get("bias") {
        let want = match b.trim() {
            "true" | "True" | "1" => true,
            "false" | "False" | "0" => false,
            other => {
                return Err(LeError::BadMetadata {
                    path,
                    key: "bias".into(),
                    message: format!("expected true or false, got `{other}`"),
                });
            }
        };
        if want != bias {
            return Err(LeError::BadMetadata {
                path,
                key: "bias".into(),
                message: format!(
                    "says {want} but tensor `{}{}` is {}",
                    file.prefix,
                    bias_name(kind, 0),
                    if bias { "present" } else { "absent" }
                ),
            });
        }
    }
    Ok(())
}

/// Layer `l` (input size `i_l`) of a `kind` network with hidden size `n`.
fn read_layer<T: Real>(
    file: &File<'_>,
    kind: CellKind,
    l: usize,
    n: usize,
    i_l: usize,
    bias: bool,
    gamma: f64,
) -> Result<Layer<T>> {
    let g = kind.gates();
    let zeros = vec![T::zero(); g * n];
    Ok(match kind {
        CellKind::Rnn | CellKind::Gru | CellKind::Lstm => {
            let (b_in, b_rec) = if bias {
                (
                    file.read(&format!("bias_ih_l{l}"), &[g * n])?,
                    file.read(&format!("bias_hh_l{l}"), &[g * n])?,
                )
            } else {
                for name in [format!("bias_ih_l{l}"), format!("bias_hh_l{l}")] {
                    if file.has(&name) {
                        return Err(LeError::BadMetadata {
                            path: file.path.clone(),
                            key: "bias".into(),
                            message: format!(
                                "tensor `{}{name}` is present but layer 0 has no bias",
                                file.prefix
                            ),
                        });
                    }
                }
                (zeros.clone(), zeros)
            };
            Layer {
                input: i_l,
                w_in: file.read(&format!("weight_ih_l{l}"), &[g * n, i_l])?,
                w_rec: file.read(&format!("weight_hh_l{l}"), &[g * n, n])?,
                b_in,
                b_rec,
            }
        }
        CellKind::Asrnn => {
            let w: Vec<T> = file.read(&format!("weight_hh_l{l}"), &[n, n])?;
            Layer {
                input: i_l,
                w_in: file.read(&format!("weight_ih_l{l}"), &[n, i_l])?,
                w_rec: Network::asrnn_recurrent(&w, n, gamma),
                b_in: if bias { file.read(&format!("bias_l{l}"), &[n])? } else { zeros.clone() },
                b_rec: zeros,
            }
        }
        CellKind::Cornn => {
            let wy: Vec<T> = file.read(&format!("weight_hy_l{l}"), &[n, n])?;
            let wz: Vec<T> = file.read(&format!("weight_hz_l{l}"), &[n, n])?;
            let mut w_rec = vec![T::zero(); n * 2 * n];
            for i in 0..n {
                w_rec[i * 2 * n..i * 2 * n + n].copy_from_slice(&wy[i * n..(i + 1) * n]);
                w_rec[i * 2 * n + n..(i + 1) * 2 * n].copy_from_slice(&wz[i * n..(i + 1) * n]);
            }
            Layer {
                input: i_l,
                w_in: file.read(&format!("weight_ih_l{l}"), &[n, i_l])?,
                w_rec,
                b_in: if bias { file.read(&format!("bias_l{l}"), &[n])? } else { zeros.clone() },
                b_rec: zeros,
            }
        }
    })
}
