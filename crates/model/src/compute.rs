//! Where the networks run: the one place that picks the device. Everything else asks for
//! [`device`] or [`training_device`] and never names a backend, so that changing the backend
//! (another CPU backend, burn's wgpu) is a change of this file.

use burn::tensor::Device;

/// The device for inference and for everything computed without gradients: burn's pure-Rust
/// CPU backend flex, whose convolutions the model runs on `mmguard-kernels`
/// ([`crate::fast_conv`]).
pub fn device() -> Device {
    Device::flex()
}

/// The device for training: [`device`] under autodiff.
pub fn training_device() -> Device {
    device().autodiff()
}
