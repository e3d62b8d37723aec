//! Seeded random populations and inputs, for backend comparisons and benchmarks (the same
//! networks on every device: habit 5, "write a numerical test once, run it per backend").

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::PopulationInputs;
use crate::config::{InitialBasis, SpectrumConfig};
use crate::rnn::{
    CellConstants, CellKind, Layer, LstmState, Network, PopulationSpectra, RnnSpectrumConfig,
};

/// A random network of `kind`: every weight and bias ~ `U(-p, p)` from ChaCha8 seeded with
/// `seed` (`b_hh` zero for ASRNN and CoRNN, as their checkpoints have none); ASRNN
/// `eps = 0.1, gamma = 0.5`, CoRNN `dt = 0.042, gamma = 2.7, eps = 4.7`. `p = 1 / sqrt(N)`
/// gives a contracting, well-conditioned network whose spectrum is insensitive to rounding.
pub fn random_network(
    kind: CellKind,
    hidden: usize,
    input: usize,
    layers: usize,
    p: f64,
    seed: u64,
) -> Network<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |len: usize| -> Vec<f32> {
        (0..len).map(|_| r.random_range(-p..p) as f32).collect::<Vec<f32>>()
    };
    let n = hidden;
    let g = kind.gates();
    let constants = match kind {
        CellKind::Asrnn => CellConstants { eps: 0.1, gamma: 0.5, dt: 0.0 },
        CellKind::Cornn => CellConstants { eps: 4.7, gamma: 2.7, dt: 0.042 },
        _ => CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 },
    };
    let mut ls = Vec::with_capacity(layers);
    for l in 0..layers {
        let i_l = if l == 0 { input } else { n };
        let w_in = uniform(g * n * i_l);
        let w_rec = match kind {
            CellKind::Asrnn => Network::asrnn_recurrent(&uniform(n * n), n, constants.gamma),
            CellKind::Cornn => uniform(n * 2 * n),
            _ => uniform(g * n * n),
        };
        let b_in = uniform(g * n);
        let b_rec = if matches!(kind, CellKind::Asrnn | CellKind::Cornn) {
            vec![0.0; g * n]
        } else {
            uniform(g * n)
        };
        ls.push(Layer { input: i_l, w_in, b_in, w_rec, b_rec });
    }
    Network::from_layers(kind, n, input, true, constants, ls).expect("shapes are consistent")
}

/// `m` random networks (seeds `seed, seed + 1, ..`), see [`random_network`].
pub fn random_population(
    kind: CellKind,
    m: usize,
    hidden: usize,
    input: usize,
    layers: usize,
    seed: u64,
) -> Vec<Network<f32>> {
    let p = 1.0 / (hidden as f64).sqrt();
    (0..m).map(|i| random_network(kind, hidden, input, layers, p, seed + i as u64)).collect()
}

/// Standard normal inputs `[batch, steps, input]` (row-major), seeded.
pub fn random_inputs(batch: usize, steps: usize, input: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..batch * steps * input)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut r);
            v as f32
        })
        .collect()
}

/// Relative tolerance of CUDA vs CPU spectra (`f32` state on both, different summation orders),
/// applied to the **partial sums** `S_j = lambda_1 + .. + lambda_j` (QR order), the growth rates
/// of `j`-dimensional volumes: `|S_j(gpu) - S_j(cpu)| <= RTOL * max(|lambda_1| + .. +
/// |lambda_j|, FLOOR)`. Partial sums are well conditioned; single exponents are not when two
/// are nearly equal at finite `T` (rounding decides how their sum splits: two `f32` CPU runs
/// with different GEMMs differ by ~5e-4 relative on such a pair of a full LSTM spectrum while
/// their sum agrees to 1e-6).
pub const CUDA_VS_CPU_RTOL: f64 = 1e-4;

/// Magnitude below which values are compared absolutely (at `RTOL * FLOOR`): exponents near
/// zero have no meaningful relative error.
pub const CUDA_VS_CPU_FLOOR: f64 = 1e-2;

/// Loose sanity bound on single exponents (see [`CUDA_VS_CPU_RTOL`] for why not tighter).
pub const CUDA_VS_CPU_SINGLE_RTOL: f64 = 1e-2;

/// The largest relative differences between two results of the same population: of the
/// partial sums (the pass/fail measure, see [`CUDA_VS_CPU_RTOL`]) and of single exponents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectrumDifference {
    /// Largest relative difference of the partial sums `lambda_1 + ... + lambda_i`.
    pub partial_sums: f64,
    /// Largest relative difference of single exponents.
    pub exponents: f64,
}

impl SpectrumDifference {
    /// Whether both are within the CUDA-vs-CPU tolerances.
    pub fn within_tolerance(&self) -> bool {
        self.partial_sums <= CUDA_VS_CPU_RTOL && self.exponents <= CUDA_VS_CPU_SINGLE_RTOL
    }
}

/// Compare `other` with `reference` (QR-order exponents of every network and sequence, with
/// `floor` as in [`CUDA_VS_CPU_FLOOR`]); an error when shapes or statuses differ.
pub fn spectrum_difference(
    reference: &PopulationSpectra,
    other: &PopulationSpectra,
    floor: f64,
) -> Result<SpectrumDifference, String> {
    if reference.spectra.len() != other.spectra.len() {
        return Err(format!("{} networks vs {}", reference.spectra.len(), other.spectra.len()));
    }
    let mut worst = SpectrumDifference { partial_sums: 0.0, exponents: 0.0 };
    for (m, (ra, oa)) in reference.spectra.iter().zip(&other.spectra).enumerate() {
        if ra.len() != oa.len() {
            return Err(format!("network {m}: {} sequences vs {}", ra.len(), oa.len()));
        }
        for (b, (r, o)) in ra.iter().zip(oa).enumerate() {
            if r.status.is_finite() != o.status.is_finite() {
                return Err(format!(
                    "network {m} sequence {b}: status {} vs {}",
                    r.status, o.status
                ));
            }
            if !r.status.is_finite() {
                continue;
            }
            if r.exponents_qr_order.len() != o.exponents_qr_order.len() {
                return Err(format!("network {m} sequence {b}: different k"));
            }
            let (mut sr, mut so, mut scale) = (0.0f64, 0.0f64, 0.0f64);
            for (x, y) in r.exponents_qr_order.iter().zip(&o.exponents_qr_order) {
                if !x.is_finite() || !y.is_finite() {
                    return Err(format!("network {m} sequence {b}: {x} vs {y}"));
                }
                worst.exponents = worst.exponents.max((y - x).abs() / x.abs().max(floor));
                sr += x;
                so += y;
                scale += x.abs();
                worst.partial_sums = worst.partial_sums.max((so - sr).abs() / scale.max(floor));
            }
        }
    }
    Ok(worst)
}

/// One CUDA-vs-CPU comparison: a seeded population, its inputs and a configuration.
#[derive(Debug, Clone)]
pub struct ComparisonCase {
    /// Name in reports.
    pub name: String,
    /// Cell of every network.
    pub kind: CellKind,
    /// Networks `M`.
    pub networks: usize,
    /// Hidden size `N`.
    pub hidden: usize,
    /// Input size `I`.
    pub input: usize,
    /// Layers per network.
    pub layers: usize,
    /// Sequences per network `B`.
    pub batch: usize,
    /// Steps per sequence `T`.
    pub steps: usize,
    /// One input set per network instead of one shared set.
    pub per_network_inputs: bool,
    /// The spectrum settings.
    pub cfg: RnnSpectrumConfig,
}

impl ComparisonCase {
    /// The population (networks seeded `seed, seed + 1, ..`).
    pub fn networks(&self, seed: u64) -> Vec<Network<f32>> {
        random_population(self.kind, self.networks, self.hidden, self.input, self.layers, seed)
    }

    /// The input sets `[B, T, I]`: one, or one per network (seeded `seed, seed + 1, ..`).
    pub fn input_sets(&self, seed: u64) -> Vec<Vec<f32>> {
        let sets = if self.per_network_inputs { self.networks } else { 1 };
        (0..sets)
            .map(|i| random_inputs(self.batch, self.steps, self.input, seed + i as u64))
            .collect()
    }

    /// The networks and input sets of case `i` of [`comparison_cases`], as every comparison
    /// (tests, `gpu_check`) seeds them: networks from `100 i`, inputs from `100 i + 50`.
    pub fn seeded_population(&self, i: usize) -> (Vec<Network<f32>>, Vec<Vec<f32>>) {
        (self.networks(100 * i as u64), self.input_sets(100 * i as u64 + 50))
    }

    /// `sets` (from [`ComparisonCase::input_sets`]) as backend inputs.
    pub fn population_inputs<'a>(&self, sets: &'a [Vec<f32>]) -> PopulationInputs<'a> {
        if sets.len() == 1 {
            PopulationInputs::shared(&sets[0], self.batch, self.steps)
        } else {
            PopulationInputs::per_network(
                sets.iter().map(std::vec::Vec::as_slice).collect(),
                self.batch,
                self.steps,
            )
        }
    }
}

/// The comparison cases every backend must agree on: every cell kind with the default
/// configuration (full `k`, warm-up 10), then the options: LSTM h-only, two layers (GRU keeps
/// its input term apart), `k < D` with `T_ons = 3` and a trace, the reference mode (`J^T Q`,
/// log2, the published warm-up and schedule, also `k = 3` with warm-up >= T and `T_ons = 3`),
/// per-network inputs, random `Q_0`, and a block taller than 128 rows (the global-memory QR).
/// The 2-layer LSTM's `Q_0 = I` is PyTorch's, a permutation of the cells' layout
/// (`Network::initial_tangent_basis`).
pub fn comparison_cases() -> Vec<ComparisonCase> {
    let base = |kind: CellKind, name: &str| ComparisonCase {
        name: name.to_string(),
        kind,
        networks: 3,
        hidden: 16,
        input: 5,
        layers: 1,
        batch: 4,
        steps: 60,
        per_network_inputs: false,
        cfg: RnnSpectrumConfig {
            spectrum: SpectrumConfig { warmup: 10, ..RnnSpectrumConfig::default().spectrum },
            ..RnnSpectrumConfig::default()
        },
    };
    let mut cases: Vec<ComparisonCase> =
        [CellKind::Rnn, CellKind::Gru, CellKind::Lstm, CellKind::Asrnn, CellKind::Cornn]
            .into_iter()
            .map(|k| base(k, k.name()))
            .collect();
    let mut h_only = base(CellKind::Lstm, "lstm h-only");
    h_only.cfg.lstm_state = LstmState::HOnly;
    cases.push(h_only);
    for kind in [CellKind::Gru, CellKind::Lstm, CellKind::Cornn] {
        let mut two = base(kind, &format!("{} 2 layers", kind.name()));
        two.layers = 2;
        two.hidden = 8;
        cases.push(two);
    }
    let mut partial = base(CellKind::Gru, "gru k=5 ons=3 trace");
    partial.cfg.spectrum.k = Some(5);
    partial.cfg.spectrum.ons_interval = 3;
    partial.cfg.spectrum.trace_every = Some(7);
    cases.push(partial);
    // The reference warm-up multiplies Jacobians without re-orthonormalising: its product's
    // condition number grows like 2^((lambda_1 - lambda_k) w), and past about 1 / eps_f32 the
    // minor directions (and so the partial sums) are decided by rounding, differently on
    // every backend. Hence full k with a short warm-up (LSTM h-only), and the leading
    // exponents only with the long ones.
    let mut reference = base(CellKind::Lstm, "lstm reference mode");
    reference.cfg = RnnSpectrumConfig::reference(None, Some(5));
    cases.push(reference);
    let mut reference = base(CellKind::Rnn, "rnn reference mode k=3");
    reference.cfg = RnnSpectrumConfig::reference(Some(3), Some(5));
    cases.push(reference);
    let mut whole = base(CellKind::Gru, "gru reference mode k=3, warm-up 500 >= T, ons=3");
    whole.cfg = RnnSpectrumConfig::reference(Some(3), None);
    whole.cfg.spectrum.ons_interval = 3;
    cases.push(whole);
    let mut per_net = base(CellKind::Rnn, "rnn per-network inputs");
    per_net.per_network_inputs = true;
    cases.push(per_net);
    let mut random_q = base(CellKind::Cornn, "cornn random Q0");
    random_q.cfg.spectrum.initial_basis = InitialBasis::Random { seed: 7 };
    cases.push(random_q);
    let mut tall = base(CellKind::Lstm, "lstm D=160 (global QR)");
    tall.hidden = 80;
    tall.networks = 2;
    tall.batch = 2;
    tall.steps = 30;
    tall.cfg.spectrum.warmup = 5;
    tall.cfg.spectrum.k = Some(40);
    cases.push(tall);
    cases
}
