//! The camera convolutions on `mmguard-kernels`, wired into burn as a backend extension with a
//! hand-written backward pass: burn-flex computes these layers per sample with small GEMMs and
//! falls back to generic dilated convolutions for their gradients.
//!
//! Activations are NHWC, [B, H, W, C], as the kernels take them, so that a chain of layers (with
//! burn's element-wise activations between them, which do not care about the layout) changes
//! layout once at each end; weights keep burn's layout. Semantics are burn's: [`conv2d`] is
//! `burn::nn::conv::Conv2d`'s forward (cross-correlation plus bias) on the permuted input,
//! [`conv_transpose2d`] is `ConvTranspose2d`'s.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::tensor::{Shape, Tensor, TensorData};
use mmguard_kernels::conv2d::{add_bias, bias_grad, unpack_weight_grad};
use mmguard_kernels::{Activation, Conv2d, PackedWeight};

/// Kernel side, stride and padding of a layer (square, the same on both axes).
pub type Geometry = [usize; 3];

/// Convolutions computed by `mmguard-kernels`.
#[backend_extension(Flex, Autodiff)]
pub trait KernelConv: Backend {
    /// `Conv2d` forward: x [B, H, W, Cin], weight [Cout, Cin, k, k], bias [Cout] →
    /// [B, Ho, Wo, Cout].
    fn kernel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// `ConvTranspose2d` forward: x [B, H, W, Cin], weight [Cin, Cout, k, k], bias [Cout] →
    /// [B, Ho, Wo, Cout].
    fn kernel_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
}

/// The values of a contiguous tensor, without a copy when it is contiguous already.
fn with_values<R>(t: &FloatTensor<Flex>, f: impl FnOnce(&[f32]) -> R) -> R {
    match t.as_slice::<f32>() {
        Some(v) => f(v),
        None => f(&t.clone().into_data().try_into_vec::<f32>().expect("f32 tensor")),
    }
}

fn dims4(t: &FloatTensor<Flex>) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
    burn::backend::flex::FlexTensor::from_data(TensorData::new(values, Shape::from(shape)))
}

/// The convolution whose forward pass a layer computes (`transposed: false`) or whose input
/// gradient it computes (a transposed convolution is that convolution's adjoint), for input
/// dims [B, H, W, C] of the layer.
fn layer(dims: [usize; 4], weight: [usize; 4], [k, s, p]: Geometry, transposed: bool) -> Conv2d {
    let [b, h, w, _] = dims;
    // a transposed layer's weight [Cin_t, Cout_t, k, k] is that of a convolution Cout_t → Cin_t
    // from the transposed layer's output size
    let (height, width) = if transposed { ((h - 1) * s + k - 2 * p, (w - 1) * s + k - 2 * p) } else { (h, w) };
    Conv2d {
        batch: b,
        height,
        width,
        channels_in: weight[1],
        channels_out: weight[0],
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
    }
}

impl KernelConv for Flex {
    fn kernel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        let (dims, wdims) = (dims4(&x), dims4(&weight));
        let conv = layer(dims, wdims, geometry, false);
        let packed = with_values(&weight, |w| PackedWeight::pack(w, &conv));
        let mut y = vec![0.0; conv.output_len()];
        with_values(&x, |x| with_values(&bias, |b| conv.forward(x, &packed, Some(b), Activation::Identity, &mut y)));
        tensor(y, vec![dims[0], conv.out_height(), conv.out_width(), conv.channels_out])
    }

    fn kernel_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        let (dims, wdims) = (dims4(&x), dims4(&weight));
        let conv = layer(dims, wdims, geometry, true);
        let packed = with_values(&weight, |w| PackedWeight::pack(w, &conv));
        let mut y = vec![0.0; conv.input_len()];
        with_values(&x, |x| conv.input_grad(x, &packed, &mut y));
        with_values(&bias, |b| add_bias(&mut y, b));
        tensor(y, vec![dims[0], conv.height, conv.width, conv.channels_in])
    }
}

/// The backward pass of either op: inputs, weight and geometry kept from the forward pass.
#[derive(Debug)]
struct KernelConvBackward {
    transposed: bool,
}

impl Backward<Flex, 3> for KernelConvBackward {
    type State = (FloatTensor<Flex>, FloatTensor<Flex>, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let (dims, wdims, gdims) = (dims4(&x), dims4(&weight), dims4(&grad));
        let conv = layer(dims, wdims, geometry, self.transposed);
        let packed = with_values(&weight, |w| PackedWeight::pack(w, &conv));
        with_values(&grad, |dy| {
            if let Some(node) = node_x {
                let dx = if self.transposed {
                    let mut dx = vec![0.0; conv.output_len()];
                    conv.forward(dy, &packed, None, Activation::Identity, &mut dx);
                    dx
                } else {
                    let mut dx = vec![0.0; conv.input_len()];
                    conv.input_grad(dy, &packed, &mut dx);
                    dx
                };
                grads.register::<Flex>(node.id, tensor(dx, dims.to_vec()));
            }
            if let Some(node) = node_w {
                // the transposed layer's loss ⟨conv_xᵀ(x), dy⟩ = ⟨x, conv(dy)⟩: its weight
                // gradient is the convolution's with input dy and output gradient x
                let dw =
                    with_values(
                        &x,
                        |x| if self.transposed { conv.weight_grad(dy, x) } else { conv.weight_grad(x, dy) },
                    );
                grads.register::<Flex>(node.id, tensor(unpack_weight_grad(&dw, &conv), wdims.to_vec()));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, tensor(bias_grad(dy, gdims[3]), vec![gdims[3]]));
            }
        });
    }
}

impl<C: CheckpointStrategy> KernelConv for Autodiff<Flex, C> {
    fn kernel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        tracked::<C>(x, weight, bias, geometry, false)
    }

    fn kernel_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        tracked::<C>(x, weight, bias, geometry, true)
    }
}

fn tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
    geometry: Geometry,
    transposed: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    let forward = |x, w, b| {
        if transposed {
            Flex::kernel_conv_transpose2d(x, w, b, geometry)
        } else {
            Flex::kernel_conv2d(x, w, b, geometry)
        }
    };
    let op = KernelConvBackward { transposed };
    match op.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let state = (x.primitive().clone(), weight.primitive().clone(), geometry);
            prep.finish(state, forward(x.into_primitive(), weight.into_primitive(), bias.into_primitive()))
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(x.into_primitive(), weight.into_primitive(), bias.into_primitive()))
        }
    }
}

/// `Conv2d`'s forward pass on the kernels, NHWC: x [B, H, W, Cin], weight [Cout, Cin, k, k],
/// bias [Cout] → [B, Ho, Wo, Cout].
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, geometry: Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as KernelConv>::kernel_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}

/// `ConvTranspose2d`'s forward pass on the kernels, NHWC: x [B, H, W, Cin], weight
/// [Cin, Cout, k, k], bias [Cout] → [B, Ho, Wo, Cout].
pub fn conv_transpose2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, geometry: Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as KernelConv>::kernel_conv_transpose2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}
