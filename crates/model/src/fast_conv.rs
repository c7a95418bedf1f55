//! The networks' convolutions on `mmguard-kernels`, wired into burn as a backend extension with
//! a hand-written backward pass: burn-flex computes these layers per sample with small GEMMs and
//! falls back to generic dilated convolutions for their gradients.
//!
//! A network hands a chain of burn's own modules to [`chain2d`] or [`chain1d`], or, where its
//! layers read more than the previous one, steps a [`Map2d`] / [`Map1d`] through them; on the
//! flex device (plain or under autodiff) the layers run on the kernels, their activations NHWC
//! inside (a 1-D layer over a window [B, C, T] is a 2-D one of height 1), so the layout
//! changes once at each end, and each layer's activation is fused into it. On any other device, or for a
//! module configured beyond what the kernels cover, the chain is burn's modules one by one.
//! The results are burn's (`Conv2d`'s cross-correlation plus bias, `ConvTranspose2d`'s
//! adjoint), and so are the parameters: the weights keep burn's layout, and saved runs load
//! unchanged.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Device, Shape, Tensor, TensorData};
use mmguard_kernels::conv2d::{bias_grad, unpack_weight_grad};
use mmguard_kernels::{Activation, PackedWeight};

use crate::layers::Act;

/// What the kernels compute for one layer, apart from its tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// A transposed convolution (weight [Cin, Cout, kh, kw]) rather than a convolution
    /// (weight [Cout, Cin, kh, kw]).
    pub transposed: bool,
    /// Kernel [height, width].
    pub kernel: [usize; 2],
    /// Stride [height, width].
    pub stride: [usize; 2],
    /// Zero padding on both sides, [height, width].
    pub padding: [usize; 2],
    /// Applied to the output, after the bias.
    pub activation: Activation,
}

/// Convolutions computed by `mmguard-kernels`.
#[backend_extension(Flex, Autodiff)]
pub trait KernelConv: Backend {
    /// x [B, H, W, Cin] → act(layer(x) + bias) [B, Ho, Wo, Cout], for weight in burn's layout
    /// (4-D; a 1-D layer's with a unit height axis) and bias [Cout].
    fn kernel_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: Spec,
    ) -> FloatTensor<Self>;
}

/// Whether chains on the flex device run on the kernels (the default) or on burn's modules.
static KERNELS: AtomicBool = AtomicBool::new(true);

/// Sends the flex device's chains to burn's own modules (`false`) or back to the kernels, for
/// the whole process.
pub fn use_kernels(on: bool) {
    KERNELS.store(on, Ordering::Relaxed);
}

/// `f` on the kernels, then on burn's modules, then back to the kernels: the speed benchmark's
/// and the equivalence tests' way to run both paths. Callers take turns (the switch is
/// process-wide).
pub fn on_both_paths<R>(mut f: impl FnMut() -> R) -> (R, R) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    use_kernels(true);
    let kernels = f();
    use_kernels(false);
    let burn = f();
    use_kernels(true);
    (kernels, burn)
}

/// Every parameter's gradient in `grads`, in the module's visiting order (empty where a
/// parameter has none): what the equivalence tests compare between the two paths.
pub fn parameter_gradients<M: Module>(module: &M, grads: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    struct Collect<'a> {
        grads: &'a burn::tensor::Gradients,
        out: Vec<Vec<f32>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = param.val().grad(self.grads).map(|g| g.into_data().try_into_vec::<f32>().expect("f32 gradient"));
            self.out.push(grad.unwrap_or_default());
        }
    }
    let mut collect = Collect { grads, out: Vec::new() };
    module.visit(&mut collect);
    collect.out
}

/// Whether a chain on `device` runs on the kernels.
fn kernels_serve(device: &Device) -> bool {
    KERNELS.load(Ordering::Relaxed) && device.clone().inner() == Device::flex()
}

/// A layer of a 2-D chain: burn's module, read as it is.
#[derive(Debug, Clone, Copy)]
pub enum Layer2d<'a> {
    /// A convolution.
    Conv(&'a Conv2d),
    /// A transposed convolution.
    Transposed(&'a ConvTranspose2d),
}

/// A layer of a 1-D chain over windows [B, C, T].
#[derive(Debug, Clone, Copy)]
pub enum Layer1d<'a> {
    /// A convolution.
    Conv(&'a Conv1d),
    /// A transposed convolution.
    Transposed(&'a ConvTranspose1d),
}

/// One layer as the kernels take it.
struct KernelLayer {
    weight: Tensor<4>,
    bias: Tensor<1>,
    spec: Spec,
}

/// Symmetric explicit padding [height, width], if that is what the configuration says.
fn symmetric(padding: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        PaddingConfig2d::Valid => Some([0, 0]),
        _ => None,
    }
}

fn symmetric1d(padding: &PaddingConfig1d) -> Option<usize> {
    match *padding {
        PaddingConfig1d::Explicit(left, right) if left == right => Some(left),
        PaddingConfig1d::Valid => Some(0),
        _ => None,
    }
}

impl Layer2d<'_> {
    /// The layer on the kernels, or `None` for what they do not cover (dilation, groups, no
    /// bias, output padding, asymmetric or computed padding).
    fn kernel(self, activation: Activation) -> Option<KernelLayer> {
        let (weight, bias, transposed, kernel, stride, padding) = match self {
            Self::Conv(c) => {
                let plain = c.dilation == [1, 1] && c.groups == 1;
                (&c.weight, &c.bias, false, c.kernel_size, c.stride, symmetric(&c.padding).filter(|_| plain)?)
            }
            Self::Transposed(t) => {
                let plain = t.dilation == [1, 1] && t.groups == 1 && t.padding_out == [0, 0];
                (&t.weight, &t.bias, true, t.kernel_size, t.stride, Some(t.padding).filter(|_| plain)?)
            }
        };
        let spec = Spec { transposed, kernel, stride, padding, activation };
        Some(KernelLayer { weight: weight.val(), bias: bias.as_ref().map(Param::val)?, spec })
    }

    fn burn(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Conv(c) => c.forward(x),
            Self::Transposed(t) => t.forward(x),
        }
    }
}

impl Layer1d<'_> {
    /// The layer as a 2-D one of height 1, or `None` for what the kernels do not cover.
    fn kernel(self, activation: Activation) -> Option<KernelLayer> {
        let (weight, bias, transposed, k, s, p) = match self {
            Self::Conv(c) => {
                let plain = c.dilation == 1 && c.groups == 1;
                (&c.weight, &c.bias, false, c.kernel_size, c.stride, symmetric1d(&c.padding).filter(|_| plain)?)
            }
            Self::Transposed(t) => {
                let plain = t.dilation == 1 && t.groups == 1 && t.padding_out == 0;
                (&t.weight, &t.bias, true, t.kernel_size, t.stride, Some(t.padding).filter(|_| plain)?)
            }
        };
        let spec = Spec { transposed, kernel: [1, k], stride: [1, s], padding: [0, p], activation };
        Some(KernelLayer { weight: weight.val().unsqueeze_dim(2), bias: bias.as_ref().map(Param::val)?, spec })
    }

    fn burn(self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Conv(c) => c.forward(x),
            Self::Transposed(t) => t.forward(x),
        }
    }
}

fn run_kernel(x: Tensor<4>, layer: KernelLayer) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as KernelConv>::kernel_conv(
        x.into_dispatch(),
        layer.weight.into_dispatch(),
        layer.bias.into_dispatch(),
        layer.spec,
    ))
}

/// An activation map of a 2-D network, [B, C, H, W], kept in the layout its layers run in:
/// NHWC where the kernels serve the device, burn's NCHW elsewhere. A network whose layers
/// read more than the previous one (a U-Net's skips, concatenated with [`Map2d::cat`]) keeps
/// its maps in it, so that the layout changes only where the network starts and ends.
#[derive(Debug, Clone)]
pub struct Map2d {
    x: Tensor<4>,
    nhwc: bool,
}

impl Map2d {
    /// The map of `x` [B, C, H, W].
    pub fn new(x: Tensor<4>) -> Self {
        match kernels_serve(&x.device()) {
            true => Self { x: x.permute([0, 2, 3, 1]), nhwc: true },
            false => Self { x, nhwc: false },
        }
    }

    /// act(layer(map)); a layer the kernels do not cover runs as burn's module.
    pub fn layer(self, layer: Layer2d, act: Act) -> Self {
        let x = match (self.nhwc, layer.kernel(act.kernel())) {
            (true, Some(kernel)) => run_kernel(self.x, kernel),
            (true, None) => act.apply(layer.burn(self.x.permute([0, 3, 1, 2]))).permute([0, 2, 3, 1]),
            (false, _) => act.apply(layer.burn(self.x)),
        };
        Self { x, ..self }
    }

    /// The channels of `self` followed by those of `other` (same batch and size).
    pub fn cat(self, other: Self) -> Self {
        assert_eq!(self.nhwc, other.nhwc, "maps of one device share a layout");
        let channels = if self.nhwc { 3 } else { 1 };
        Self { x: Tensor::cat(vec![self.x, other.x], channels), ..self }
    }

    /// The map as [B, C, H, W].
    pub fn into_nchw(self) -> Tensor<4> {
        if self.nhwc {
            self.x.permute([0, 3, 1, 2])
        } else {
            self.x
        }
    }
}

/// An activation map of a 1-D network over windows, [B, C, T]: for the kernels a 2-D map of
/// height 1 in NHWC ([B, 1, T, C]), elsewhere burn's [B, C, T]. As [`Map2d`].
#[derive(Debug, Clone)]
pub struct Map1d(Window);

#[derive(Debug, Clone)]
enum Window {
    Kernels(Tensor<4>),
    Burn(Tensor<3>),
}

impl Map1d {
    /// The map of `x` [B, C, T].
    pub fn new(x: Tensor<3>) -> Self {
        if !kernels_serve(&x.device()) {
            return Self(Window::Burn(x));
        }
        Self(Window::Kernels(height_one_nhwc(x)))
    }

    /// act(layer(map)); a layer the kernels do not cover runs as burn's module.
    pub fn layer(self, layer: Layer1d, act: Act) -> Self {
        match (self.0, layer.kernel(act.kernel())) {
            (Window::Kernels(x), Some(kernel)) => Self(Window::Kernels(run_kernel(x, kernel))),
            (Window::Kernels(x), None) => {
                let y = act.apply(layer.burn(Self(Window::Kernels(x)).into_channels_first()));
                Self(Window::Kernels(height_one_nhwc(y)))
            }
            (Window::Burn(x), _) => Self(Window::Burn(act.apply(layer.burn(x)))),
        }
    }

    /// The channels of `self` followed by those of `other` (same batch and length).
    pub fn cat(self, other: Self) -> Self {
        Self(match (self.0, other.0) {
            (Window::Kernels(a), Window::Kernels(b)) => Window::Kernels(Tensor::cat(vec![a, b], 3)),
            (Window::Burn(a), Window::Burn(b)) => Window::Burn(Tensor::cat(vec![a, b], 1)),
            _ => unreachable!("maps of one device share a layout"),
        })
    }

    /// The map as [B, C, T].
    pub fn into_channels_first(self) -> Tensor<3> {
        match self.0 {
            Window::Kernels(x) => {
                let [b, _, t, c] = x.dims();
                x.reshape([b, t, c]).permute([0, 2, 1])
            }
            Window::Burn(x) => x,
        }
    }
}

/// A window [B, C, T] as the kernels' 2-D map of height 1, NHWC [B, 1, T, C].
fn height_one_nhwc(x: Tensor<3>) -> Tensor<4> {
    let [b, _, t] = x.dims();
    x.permute([0, 2, 1]).reshape([b as i32, 1, t as i32, -1])
}

/// Runs a chain of 2-D layers, each followed by its activation: [B, C, H, W] → [B, C', H', W'].
pub fn chain2d(x: Tensor<4>, layers: &[(Layer2d, Act)]) -> Tensor<4> {
    layers.iter().fold(Map2d::new(x), |m, &(layer, act)| m.layer(layer, act)).into_nchw()
}

/// Runs a chain of 1-D layers, each followed by its activation: [B, C, T] → [B, C', T'].
pub fn chain1d(x: Tensor<3>, layers: &[(Layer1d, Act)]) -> Tensor<3> {
    layers.iter().fold(Map1d::new(x), |m, &(layer, act)| m.layer(layer, act)).into_channels_first()
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

/// The convolution whose forward pass a layer computes (a plain layer) or whose input gradient
/// it computes (a transposed layer is that convolution's adjoint), for input dims [B, H, W, C]
/// of the layer.
fn convolution(dims: [usize; 4], weight: [usize; 4], spec: &Spec) -> mmguard_kernels::Conv2d {
    let [b, h, w, _] = dims;
    let ([kh, kw], [sh, sw], [ph, pw]) = (spec.kernel, spec.stride, spec.padding);
    // a transposed layer's weight [Cin_t, Cout_t, k, k] is that of a convolution Cout_t → Cin_t
    // from the transposed layer's output size
    let (height, width) =
        if spec.transposed { ((h - 1) * sh + kh - 2 * ph, (w - 1) * sw + kw - 2 * pw) } else { (h, w) };
    mmguard_kernels::Conv2d {
        batch: b,
        height,
        width,
        channels_in: weight[1],
        channels_out: weight[0],
        kernel: spec.kernel,
        stride: spec.stride,
        padding: spec.padding,
    }
}

/// How many packed weights [`packed_once`] keeps: every layer of a few models.
const PACKED_KEPT: usize = 64;

/// Packed weights of plain-device layers, newest last. Each entry keeps its weight tensor, so
/// that storage cannot be freed, nor its address given to another weight, while the entry
/// exists (nor written in place: it is shared).
static PACKED: Mutex<VecDeque<(FloatTensor<Flex>, Arc<PackedWeight>)>> = Mutex::new(VecDeque::new());

/// The packed form of a weight that does not change between calls (a model on the plain
/// device: inference, the frozen encoders of stage 2), packed on its first use only; at batch 1
/// packing on every call was a third of the forward pass.
fn packed_once(weight: &FloatTensor<Flex>, conv: &mmguard_kernels::Conv2d) -> Arc<PackedWeight> {
    let Some(values) = weight.as_slice::<f32>() else {
        return Arc::new(with_values(weight, |w| PackedWeight::pack(w, conv)));
    };
    let same = |t: &FloatTensor<Flex>| {
        t.as_slice::<f32>().is_some_and(|v| std::ptr::eq(v, values)) && dims4(t) == dims4(weight)
    };
    let mut kept = PACKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, packed)) = kept.iter().find(|(t, _)| same(t)) {
        return packed.clone();
    }
    let packed = Arc::new(PackedWeight::pack(values, conv));
    if kept.len() == PACKED_KEPT {
        kept.pop_front();
    }
    kept.push_back((weight.clone(), packed.clone()));
    packed
}

/// The forward pass on flex with a packed weight.
fn forward_flex(
    x: &FloatTensor<Flex>,
    packed: &PackedWeight,
    bias: &FloatTensor<Flex>,
    conv: &mmguard_kernels::Conv2d,
    spec: &Spec,
) -> FloatTensor<Flex> {
    let batch = dims4(x)[0];
    with_values(x, |x| {
        with_values(bias, |b| {
            if spec.transposed {
                let mut y = vec![0.0; conv.input_len()];
                conv.transposed_forward(x, packed, Some(b), spec.activation, &mut y);
                tensor(y, vec![batch, conv.height, conv.width, conv.channels_in])
            } else {
                let mut y = vec![0.0; conv.output_len()];
                conv.forward(x, packed, Some(b), spec.activation, &mut y);
                tensor(y, vec![batch, conv.out_height(), conv.out_width(), conv.channels_out])
            }
        })
    })
}

impl KernelConv for Flex {
    fn kernel_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: Spec,
    ) -> FloatTensor<Self> {
        let conv = convolution(dims4(&x), dims4(&weight), &spec);
        forward_flex(&x, &packed_once(&weight, &conv), &bias, &conv, &spec)
    }
}

/// The backward pass of a kernel layer.
#[derive(Debug)]
struct KernelConvBackward {
    spec: Spec,
    weight_dims: [usize; 4],
}

/// What the backward pass keeps: the input, the packed weight, and the output where the
/// activation's gradient needs it.
#[derive(Debug, Clone)]
struct SavedState {
    x: FloatTensor<Flex>,
    packed: Arc<PackedWeight>,
    y: Option<FloatTensor<Flex>>,
}

impl Backward<Flex, 3> for KernelConvBackward {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let SavedState { x, packed, y } = ops.state;
        let (dims, gdims, spec) = (dims4(&x), dims4(&grad), self.spec);
        let conv = convolution(dims, self.weight_dims, &spec);
        with_values(&grad, |dy| {
            let dy: Cow<[f32]> = match &y {
                Some(y) => with_values(y, |y| Cow::Owned(spec.activation.backward(y, dy).into_owned())),
                None => Cow::Borrowed(dy),
            };
            if let Some(node) = node_x {
                let dx = if spec.transposed {
                    let mut dx = vec![0.0; conv.output_len()];
                    conv.forward(&dy, &packed, None, Activation::Identity, &mut dx);
                    dx
                } else {
                    let mut dx = vec![0.0; conv.input_len()];
                    conv.input_grad(&dy, &packed, &mut dx);
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
                        |x| if spec.transposed { conv.weight_grad(&dy, x) } else { conv.weight_grad(x, &dy) },
                    );
                grads.register::<Flex>(node.id, tensor(unpack_weight_grad(&dw, &conv), self.weight_dims.to_vec()));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, tensor(bias_grad(&dy, gdims[3]), vec![gdims[3]]));
            }
        });
    }
}

impl<C: CheckpointStrategy> KernelConv for Autodiff<Flex, C> {
    fn kernel_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: Spec,
    ) -> FloatTensor<Self> {
        let op = KernelConvBackward { spec, weight_dims: dims4(weight.primitive()) };
        let conv = convolution(dims4(x.primitive()), op.weight_dims, &spec);
        match op.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                // a learning weight changes every step: packed here, kept for the backward pass
                let packed = Arc::new(with_values(weight.primitive(), |w| PackedWeight::pack(w, &conv)));
                let y = forward_flex(x.primitive(), &packed, bias.primitive(), &conv, &spec);
                let keep_y = (spec.activation != Activation::Identity).then(|| y.clone());
                let state = SavedState { x: x.into_primitive(), packed, y: keep_y };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                let packed = with_values(weight.primitive(), |w| PackedWeight::pack(w, &conv));
                prep.finish(forward_flex(x.primitive(), &packed, bias.primitive(), &conv, &spec))
            }
        }
    }
}
