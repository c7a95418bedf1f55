//! Spectral normalisation of a dense layer by power iteration (burn has none built in).

use burn::module::{Module, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::linear;
use burn::tensor::{Device, Distribution, Tensor};

/// A linear layer used as W/σ(W), so that its spectral norm is (about) 1.
///
/// `u` is the power-iteration vector: a non-trainable parameter, so it is saved with the
/// weights and the optimiser never touches it. σ = vᵀWu is computed with u and v held
/// constant, so the gradient reaches W through σ as in PyTorch's `spectral_norm`.
#[derive(Module, Debug)]
pub struct SnLinear {
    /// The raw layer; burn stores W as [d_in, d_out].
    pub inner: Linear,
    /// Right singular-vector estimate, [d_out].
    pub u: Param<Tensor<1>>,
}

fn unit<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().square().sum().sqrt().clamp_min(1e-12);
    x / norm.unsqueeze()
}

impl SnLinear {
    /// A fresh layer with a random unit `u`.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        let inner = LinearConfig::new(d_in, d_out).init(device);
        let u = unit(Tensor::<1>::random([d_out], Distribution::Normal(0.0, 1.0), device));
        Self { inner, u: Param::initialized(ParamId::new(), u).set_require_grad(false) }
    }

    /// σ(W) estimated with the current u, and the matching left vector v, both detached.
    fn sigma_parts(&self) -> (Tensor<2>, Tensor<2>) {
        let w = self.inner.weight.val().detach();
        let u = self.u.val().detach().unsqueeze_dim::<2>(1);
        let v = unit(w.matmul(u.clone()));
        (u, v)
    }

    /// The estimated spectral norm σ(W).
    pub fn sigma(&self) -> f32 {
        let (u, v) = self.sigma_parts();
        let w = self.inner.weight.val().detach();
        v.transpose().matmul(w).matmul(u).into_scalar::<f32>()
    }

    /// W/σ(W), differentiable in W.
    pub fn normalized_weight(&self) -> Tensor<2> {
        let (u, v) = self.sigma_parts();
        let w = self.inner.weight.val();
        let sigma = v.transpose().matmul(w.clone()).matmul(u);
        w / sigma
    }

    /// # Shapes
    /// [B, d_in] → [B, d_out]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        linear(x, self.normalized_weight(), self.inner.bias.as_ref().map(|b| b.val()))
    }

    /// Runs `n` power-iteration steps on the current W and stores the new u (same id).
    pub fn power_iteration(mut self, n: usize) -> Self {
        let w = self.inner.weight.val().detach();
        let mut u = self.u.val().detach().unsqueeze_dim::<2>(1);
        for _ in 0..n {
            let v = unit(w.clone().matmul(u));
            u = unit(w.clone().transpose().matmul(v));
        }
        let id = self.u.id;
        self.u = Param::initialized(id, u.squeeze_dim::<1>(1)).set_require_grad(false);
        self
    }
}

/// The largest singular value of a [rows, cols] matrix given as host data, by power iteration in
/// f64 (independent of the network's own u, for certification).
pub fn spectral_norm(w: &[f32], rows: usize, cols: usize, iterations: usize) -> f64 {
    let mut u = vec![1.0f64; cols];
    let mut sigma = 0.0;
    for _ in 0..iterations {
        let mut v = vec![0.0f64; rows];
        for r in 0..rows {
            v[r] = (0..cols).map(|c| f64::from(w[r * cols + c]) * u[c]).sum();
        }
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        v.iter_mut().for_each(|x| *x /= vn);
        let mut nu = vec![0.0f64; cols];
        for r in 0..rows {
            for c in 0..cols {
                nu[c] += f64::from(w[r * cols + c]) * v[r];
            }
        }
        sigma = nu.iter().map(|x| x * x).sum::<f64>().sqrt();
        nu.iter_mut().for_each(|x| *x /= sigma.max(1e-300));
        u = nu;
    }
    sigma
}
