//! CPU kernels for the model's convolutions, without burn.
//!
//! burn-flex computes a convolution per sample and per tile with small GEMMs and re-flattens
//! the weights on every call, and its weight and input gradients fall back to generic dilated
//! convolutions; those are most of a training step on this model. Here every layer is one
//! batched im2col + GEMM in NHWC:
//!
//! * forward: `Y[M, Cout] = col(X)[M, K] · W[K, Cout]` with M = B·Ho·Wo, K = kh·kw·Cin, the
//!   bias and activation applied as the epilogue of each block;
//! * input gradient: `dX = col2im(dY · Wᵀ)`;
//! * weight gradient: `dW = col(X)ᵀ · dY`, `db = Σ dY`.
//!
//! A transposed convolution is the adjoint of a convolution, so its forward pass is a
//! convolution's input gradient and its input gradient a convolution's forward pass
//! ([`conv2d`]). Work is split into blocks whose size does not depend on the number of threads,
//! and partial sums are added in block order: one and two threads give bit-identical results.

// The GEMM behind every kernel is an unsafe function over raw strided pointers; `gemm.rs` is the
// one place that calls it, behind bounds checks.
#![allow(unsafe_code)]

pub mod conv2d;
mod gemm;

pub use conv2d::{Activation, Conv2d, PackedWeight};
