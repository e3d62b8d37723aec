//! Helpers shared by the integration tests (each test crate includes this with `mod common;`).

/// The random tanh network of `fixtures/tanh_rnn_eigs.json`: `N`, the gain `g`, the weights
/// `W` (row-major) and the sorted `ln |eig(g W)|` from numpy/LAPACK.
#[derive(serde::Deserialize)]
pub struct TanhRnnEigs {
    pub n: usize,
    pub g: f64,
    pub w_row_major: Vec<f64>,
    pub log_abs_eig_sorted: Vec<f64>,
}

/// Parse `fixtures/tanh_rnn_eigs.json`.
pub fn tanh_rnn_eigs() -> TanhRnnEigs {
    serde_json::from_str(include_str!("../fixtures/tanh_rnn_eigs.json")).unwrap()
}
