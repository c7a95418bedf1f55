//! 2-D convolution (cross-correlation, as burn's) in NHWC: forward, input gradient, weight
//! gradient, and through them the transposed convolution.

use std::borrow::Cow;
use std::cell::RefCell;

use rayon::prelude::*;

use crate::gemm::{matmul, View};

/// Output rows (of B·Ho·Wo) per forward block at most: the unit of parallel work.
const ROWS_PER_BLOCK: usize = 256;
/// A layer is split into at least this many forward blocks where its rows allow (a batch-1
/// layer has few rows: both cores get work), with no block under [`MIN_ROWS_PER_BLOCK`].
const MIN_BLOCKS: usize = 8;
const MIN_ROWS_PER_BLOCK: usize = 32;
/// Multiply-adds a parallel task should at least have: waking another thread costs about as
/// much as this many (tens of microseconds), so smaller blocks run together on one thread.
/// Each block computes its values alone, so grouping never changes a result.
const MIN_TASK_MACS: usize = 1 << 20;
/// Elements per task of element-wise passes.
const MIN_TASK_ELEMENTS: usize = 1 << 14;

/// How many of a parallel loop's items (each `macs` multiply-adds) one task takes at least.
fn min_items(macs: usize) -> usize {
    MIN_TASK_MACS.div_ceil(macs.max(1))
}
/// Images per partial sum of the weight gradient; partials are added in order.
const IMAGES_PER_PARTIAL: usize = 4;
/// Images per task of the gathering input gradient (one task per stride phase and chunk).
const IMAGES_PER_GATHER: usize = 4;
/// From this many input channels on, the input gradient gathers each stride phase with its own
/// GEMM instead of scattering one GEMM's columns (col2im). Gathering moves Cin-wide rows and
/// never adds into the image; with fewer channels its columns (taps·Cout per input pixel)
/// outgrow the scatter's (k²·Cin per output pixel), as for the camera's 3-channel frame.
const GATHER_FROM_CHANNELS: usize = 16;

thread_local! {
    // the im2col buffer of this thread, reused across calls: no allocation once it has grown
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLUMNS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < len {
            c.resize(len, 0.0);
        }
        f(&mut c[..len])
    })
}

/// A buffer that parallel tasks fill at disjoint places (the phases of the gathering input
/// gradient interleave within an image, so it cannot be split into chunks).
struct DisjointWrites<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: the buffer is borrowed mutably for the writer's lifetime, and `write`'s callers
// guarantee that no two tasks write the same element.
unsafe impl Sync for DisjointWrites<'_> {}

impl<'a> DisjointWrites<'a> {
    fn new(buffer: &'a mut [f32]) -> Self {
        Self { ptr: buffer.as_mut_ptr(), len: buffer.len(), _buffer: std::marker::PhantomData }
    }

    /// Copies `src` to `at..at + src.len()`.
    ///
    /// # Safety
    /// No other task may read or write that range while the writer lives.
    unsafe fn write(&self, at: usize, src: &[f32]) {
        assert!(at + src.len() <= self.len, "write of {} values at {at} into {}", src.len(), self.len);
        // SAFETY: in bounds (checked above); exclusive by the caller's guarantee
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) }
    }
}

/// What the forward pass applies to each output value after the bias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// max(x, slope·x) for 0 ≤ slope ≤ 1.
    LeakyRelu(f32),
    /// 1 / (1 + e^−x).
    Sigmoid,
}

impl Activation {
    /// Applies the activation to every value in place.
    pub fn apply(self, v: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::LeakyRelu(slope) => v.iter_mut().for_each(|x| *x = x.max(*x * slope)),
            Self::Sigmoid => v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
        }
    }

    /// The gradient before the activation, from its output `y` and the gradient after it.
    /// A positive slope keeps the sign, so `y > 0` exactly where the input was; at 0 the
    /// gradient is the slope, as burn's `0.2·x + 0.8·relu(x)` gives. The sigmoid's is
    /// y·(1 − y).
    pub fn backward<'a>(self, y: &[f32], dy: &'a [f32]) -> Cow<'a, [f32]> {
        assert_eq!(y.len(), dy.len(), "activation output and its gradient");
        let each = |f: fn(f32, f32, f32) -> f32, slope: f32| {
            Cow::Owned(y.par_iter().with_min_len(MIN_TASK_ELEMENTS).zip(dy).map(|(&y, &d)| f(y, d, slope)).collect())
        };
        match self {
            Self::Identity => Cow::Borrowed(dy),
            Self::LeakyRelu(slope) => each(|y, d, slope| if y > 0.0 { d } else { d * slope }, slope),
            Self::Sigmoid => each(|y, d, _| d * y * (1.0 - y), 0.0),
        }
    }
}

/// The geometry of one convolution layer over a batch, [height, width] per axis: the model's
/// camera layers are kernel [4, 4], stride [2, 2], padding [1, 1]; a sensor layer over a
/// window [B, T, C] is height 1, kernel [1, k].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Images B.
    pub batch: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Kernel size.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Zero padding on both sides of each axis.
    pub padding: [usize; 2],
}

/// Weights packed for the GEMM, [kh, kw, Cin, Cout] row-major (K × Cout), and for the
/// gathering input gradient one matrix per stride phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeight {
    values: Vec<f32>,
    channels_out: usize,
    /// Per phase (py, px), row-major: [(ty, tx, Cout), Cin], the phase's taps in [`Phase`]
    /// order; empty below [`GATHER_FROM_CHANNELS`].
    phases: Vec<Vec<f32>>,
}

/// The input rows (or columns) of one stride phase along one axis: those whose gradient comes
/// through the kernel rows `taps` (tap j reads output row (y + pad − taps[j]) / stride).
#[derive(Debug, Clone)]
struct Phase {
    inputs: Vec<usize>,
    taps: Vec<usize>,
}

/// The phases of one axis: input size, kernel, stride, padding.
fn phases(size: usize, kernel: usize, stride: usize, pad: usize) -> Vec<Phase> {
    (0..stride)
        .map(|c| Phase {
            inputs: (0..size).filter(|y| (y + pad) % stride == c).collect(),
            taps: (c..kernel).step_by(stride).collect(),
        })
        .collect()
}

impl PackedWeight {
    /// Packs a convolution weight in burn's layout [Cout, Cin, kh, kw]; the same array read as
    /// a transposed convolution's weight [Cin_t, Cout_t, kh, kw] is the weight of the
    /// convolution whose adjoint it is.
    pub fn pack(weight: &[f32], layer: &Conv2d) -> Self {
        let mut values = vec![0.0; layer.weight_len()];
        assert_eq!(weight.len(), values.len(), "weight of {layer:?}");
        layer.for_each_weight(|burn, packed| values[packed] = weight[burn]);
        let (ci, co, kw) = (layer.channels_in, layer.channels_out, layer.kernel[1]);
        let mut phases = Vec::new();
        if layer.gathers() {
            let (ys, xs) = layer.phases();
            for py in &ys {
                for px in &xs {
                    let mut m = Vec::with_capacity(py.taps.len() * px.taps.len() * co * ci);
                    for &ky in &py.taps {
                        for &kx in &px.taps {
                            for o in 0..co {
                                m.extend((0..ci).map(|c| values[((ky * kw + kx) * ci + c) * co + o]));
                            }
                        }
                    }
                    phases.push(m);
                }
            }
        }
        Self { values, channels_out: co, phases }
    }
}

/// A packed weight gradient [K, Cout] back in burn's layout [Cout, Cin, kh, kw].
pub fn unpack_weight_grad(packed: &[f32], layer: &Conv2d) -> Vec<f32> {
    let mut out = vec![0.0; layer.weight_len()];
    assert_eq!(packed.len(), out.len(), "weight gradient of {layer:?}");
    layer.for_each_weight(|burn, p| out[burn] = packed[p]);
    out
}

impl Conv2d {
    /// Output height.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding[0] - self.kernel[0]) / self.stride[0] + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding[1] - self.kernel[1]) / self.stride[1] + 1
    }

    /// Values of the weight.
    pub fn weight_len(&self) -> usize {
        self.channels_out * self.depth()
    }

    /// Calls `f(index in burn's [Cout, Cin, kh, kw], index in the packed [kh, kw, Cin, Cout])`
    /// for every weight.
    fn for_each_weight(&self, mut f: impl FnMut(usize, usize)) {
        let (co, ci, [kh, kw]) = (self.channels_out, self.channels_in, self.kernel);
        for o in 0..co {
            for i in 0..ci {
                for ky in 0..kh {
                    for kx in 0..kw {
                        f(((o * ci + i) * kh + ky) * kw + kx, ((ky * kw + kx) * ci + i) * co + o);
                    }
                }
            }
        }
    }

    /// Values of the input, [B, H, W, Cin].
    pub fn input_len(&self) -> usize {
        self.batch * self.height * self.width * self.channels_in
    }

    /// Values of the output, [B, Ho, Wo, Cout].
    pub fn output_len(&self) -> usize {
        self.batch * self.out_height() * self.out_width() * self.channels_out
    }

    /// K = kh·kw·Cin, the GEMM's inner dimension.
    fn depth(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.channels_in
    }

    /// Output positions per image.
    fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Output rows per forward block: a function of the layer alone, so that the split is the
    /// same for any number of threads.
    fn rows_per_block(&self) -> usize {
        let rows = self.batch * self.positions();
        rows.div_ceil(MIN_BLOCKS).clamp(MIN_ROWS_PER_BLOCK, ROWS_PER_BLOCK)
    }

    /// Whether the input gradient gathers per stride phase ([`GATHER_FROM_CHANNELS`]).
    fn gathers(&self) -> bool {
        self.channels_in >= GATHER_FROM_CHANNELS
    }

    /// The stride phases of both axes.
    fn phases(&self) -> (Vec<Phase>, Vec<Phase>) {
        (
            phases(self.height, self.kernel[0], self.stride[0], self.padding[0]),
            phases(self.width, self.kernel[1], self.stride[1], self.padding[1]),
        )
    }

    /// What output position `p` of an image reads through kernel row `ky`: the input row iy,
    /// the kernel columns whose input column lies inside the image, and the input column of
    /// the first of them. Those taps read one contiguous run of the input row, which is what
    /// im2col copies and col2im adds back.
    fn tap_run(&self, p: usize, ky: usize) -> Option<(usize, std::ops::Range<usize>, usize)> {
        let (oy, ox) = (p / self.out_width(), p % self.out_width());
        let iy = (oy * self.stride[0] + ky).checked_sub(self.padding[0]).filter(|&iy| iy < self.height)?;
        // input column of kernel column kx: ox·s + kx − pad, inside [0, W)
        let left = ox * self.stride[1];
        let first = self.padding[1].saturating_sub(left);
        let last = (self.width + self.padding[1]).saturating_sub(left).min(self.kernel[1]);
        (first < last).then(|| (iy, first..last, left + first - self.padding[1]))
    }

    /// im2col of output rows `rows` (indices into B·Ho·Wo) into `cols` [rows, K].
    fn im2col(&self, x: &[f32], rows: std::ops::Range<usize>, cols: &mut [f32]) {
        let (ci, [kh, kw], depth, per_image) = (self.channels_in, self.kernel, self.depth(), self.positions());
        for (r, row) in rows.zip(cols.chunks_exact_mut(depth)) {
            let (b, p) = (r / per_image, r % per_image);
            let image = &x[b * self.height * self.width * ci..];
            for (ky, dst) in row.chunks_exact_mut(kw * ci).enumerate().take(kh) {
                match self.tap_run(p, ky) {
                    Some((iy, taps, ix)) => {
                        let (start, end) = (taps.start * ci, taps.end * ci);
                        dst[..start].fill(0.0);
                        dst[start..end].copy_from_slice(&image[(iy * self.width + ix) * ci..][..end - start]);
                        dst[end..].fill(0.0);
                    }
                    None => dst.fill(0.0),
                }
            }
        }
    }

    /// y = act(conv(x, w) + bias): x [B, H, W, Cin] → y [B, Ho, Wo, Cout].
    pub fn forward(&self, x: &[f32], w: &PackedWeight, bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
        let (co, depth) = (self.channels_out, self.depth());
        assert_eq!(x.len(), self.input_len(), "input of {self:?}");
        assert_eq!(y.len(), self.output_len(), "output of {self:?}");
        assert_eq!(w.channels_out, co, "weight packed for another layer");
        if let Some(b) = bias {
            assert_eq!(b.len(), co, "bias of {self:?}");
        }
        let per_block = self.rows_per_block();
        let together = min_items(per_block * depth * co);
        y.par_chunks_mut(per_block * co).with_min_len(together).enumerate().for_each(|(block, out)| {
            let start = block * per_block;
            let rows = out.len() / co;
            with_columns(rows * depth, |cols| {
                self.im2col(x, start..start + rows, cols);
                matmul(rows, co, depth, View::row_major(cols, depth), View::row_major(&w.values, co), out, co, false);
            });
            finish(out, bias, act);
        });
    }

    /// dx = the input gradient of `forward` (no bias, no activation) for output gradient
    /// dy [B, Ho, Wo, Cout]: gathered per stride phase, or col2im(dy · Wᵀ) image by image for
    /// few input channels ([`GATHER_FROM_CHANNELS`]).
    pub fn input_grad(&self, dy: &[f32], w: &PackedWeight, dx: &mut [f32]) {
        self.adjoint(dy, w, None, Activation::Identity, dx);
    }

    /// The transposed convolution of this layer's geometry, y = act(conv_xᵀ(x) + bias):
    /// x [B, Ho, Wo, Cout] → y [B, H, W, Cin], the bias [Cin] and the activation applied to
    /// each part of y while it is still in cache.
    pub fn transposed_forward(
        &self,
        x: &[f32],
        w: &PackedWeight,
        bias: Option<&[f32]>,
        act: Activation,
        y: &mut [f32],
    ) {
        if let Some(b) = bias {
            assert_eq!(b.len(), self.channels_in, "bias of the transposed {self:?}");
        }
        self.adjoint(x, w, bias, act, y);
    }

    fn adjoint(&self, dy: &[f32], w: &PackedWeight, bias: Option<&[f32]>, act: Activation, dx: &mut [f32]) {
        assert_eq!(dy.len(), self.output_len(), "output gradient of {self:?}");
        assert_eq!(dx.len(), self.input_len(), "input gradient of {self:?}");
        assert_eq!(w.channels_out, self.channels_out, "weight packed for another layer");
        let epilogue = |v: &mut [f32]| finish(v, bias, act);
        if self.gathers() {
            self.input_grad_gather(dy, w, dx, epilogue);
        } else {
            self.input_grad_scatter(dy, w, dx, epilogue);
        }
    }

    fn input_grad_scatter(&self, dy: &[f32], w: &PackedWeight, dx: &mut [f32], epilogue: impl Fn(&mut [f32]) + Sync) {
        let (co, depth, per_image) = (self.channels_out, self.depth(), self.positions());
        let (ci, [kh, kw]) = (self.channels_in, self.kernel);
        let together = min_items(per_image * depth * co);
        dx.par_chunks_mut(self.height * self.width * ci).with_min_len(together).enumerate().for_each(|(b, image)| {
            let grad = &dy[b * per_image * co..(b + 1) * per_image * co];
            with_columns(per_image * depth, |cols| {
                matmul(
                    per_image,
                    depth,
                    co,
                    View::row_major(grad, co),
                    View::transposed(&w.values, co),
                    cols,
                    depth,
                    false,
                );
                image.fill(0.0);
                for (p, row) in cols.chunks_exact(depth).enumerate() {
                    for (ky, src) in row.chunks_exact(kw * ci).enumerate().take(kh) {
                        if let Some((iy, taps, ix)) = self.tap_run(p, ky) {
                            let src = &src[taps.start * ci..taps.end * ci];
                            let dst = &mut image[(iy * self.width + ix) * ci..][..src.len()];
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        }
                    }
                }
                epilogue(image);
            });
        });
    }

    /// The input gradient as one GEMM per stride phase (py, px): every input pixel of the
    /// phase gathers the output-gradient rows its taps read, [pixels, (ty, tx, Cout)], times
    /// the phase's weight [(ty, tx, Cout), Cin]. Each pixel belongs to one phase, so dx is
    /// written once and never accumulated.
    fn input_grad_gather(&self, dy: &[f32], w: &PackedWeight, dx: &mut [f32], epilogue: impl Fn(&mut [f32]) + Sync) {
        let (co, ci, (ho, wo)) = (self.channels_out, self.channels_in, (self.out_height(), self.out_width()));
        let (ys, xs) = self.phases();
        let phases: Vec<(&Phase, &Phase)> = ys.iter().flat_map(|py| xs.iter().map(move |px| (py, px))).collect();
        let (image, grad_image) = (self.height * self.width * ci, ho * wo * co);
        let dx = DisjointWrites::new(dx);
        // one task per chunk of images and phase: a batch of one still gives every core a phase
        let chunks = self.batch.div_ceil(IMAGES_PER_GATHER);
        let macs = IMAGES_PER_GATHER.min(self.batch) * self.height * self.width * ci * self.depth() / phases.len();
        (0..chunks * phases.len()).into_par_iter().with_min_len(min_items(macs)).for_each(|task| {
            let (chunk, k) = (task / phases.len(), task % phases.len());
            let (py, px) = phases[k];
            let first = chunk * IMAGES_PER_GATHER;
            let count = IMAGES_PER_GATHER.min(self.batch - first);
            let depth = py.taps.len() * px.taps.len() * co;
            let rows = count * py.inputs.len() * px.inputs.len();
            with_columns(rows * (depth + ci), |buf| {
                let (cols, out) = buf.split_at_mut(rows * depth);
                let mut row = cols.chunks_exact_mut(depth.max(1));
                for b in first..first + count {
                    let grad = &dy[b * grad_image..(b + 1) * grad_image];
                    for &y in &py.inputs {
                        for &x in &px.inputs {
                            let Some(dst) = row.next() else { break };
                            let mut taps = dst.chunks_exact_mut(co);
                            for &ky in &py.taps {
                                // output row of this tap, if the tap reaches one
                                let oy = (y + self.padding[0]).checked_sub(ky).map(|v| v / self.stride[0]);
                                for &kx in &px.taps {
                                    let ox = (x + self.padding[1]).checked_sub(kx).map(|v| v / self.stride[1]);
                                    let dst = taps.next().expect("one slot per tap");
                                    match (oy.filter(|&v| v < ho), ox.filter(|&v| v < wo)) {
                                        (Some(oy), Some(ox)) => dst.copy_from_slice(&grad[(oy * wo + ox) * co..][..co]),
                                        _ => dst.fill(0.0),
                                    }
                                }
                            }
                        }
                    }
                }
                matmul(
                    rows,
                    ci,
                    depth,
                    View::row_major(cols, depth),
                    View::row_major(&w.phases[k], ci),
                    out,
                    ci,
                    false,
                );
                epilogue(out);
                let mut src = out.chunks_exact(ci);
                for b in first..first + count {
                    for &y in &py.inputs {
                        for &x in &px.inputs {
                            let from = src.next().expect("one output row per pixel");
                            // SAFETY: pixel (b, y, x) lies in phase k alone and image b in this
                            // chunk alone, so no other task writes these values
                            unsafe { dx.write(b * image + (y * self.width + x) * ci, from) };
                        }
                    }
                }
            });
        });
    }

    /// The weight gradient [K, Cout] (packed layout; [`unpack_weight_grad`] gives burn's) of
    /// `forward` for input x and output gradient dy; [`bias_grad`] gives the bias's.
    pub fn weight_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let (co, depth, per_image) = (self.channels_out, self.depth(), self.positions());
        assert_eq!(x.len(), self.input_len(), "input of {self:?}");
        assert_eq!(dy.len(), self.output_len(), "output gradient of {self:?}");
        let partials: Vec<Vec<f32>> = (0..self.batch.div_ceil(IMAGES_PER_PARTIAL))
            .into_par_iter()
            .map(|chunk| {
                let first = chunk * IMAGES_PER_PARTIAL;
                let images = IMAGES_PER_PARTIAL.min(self.batch - first);
                let rows = first * per_image..(first + images) * per_image;
                let mut dw = vec![0.0; depth * co];
                with_columns(rows.len() * depth, |cols| {
                    self.im2col(x, rows.clone(), cols);
                    let grad = &dy[rows.start * co..rows.end * co];
                    matmul(
                        depth,
                        co,
                        rows.len(),
                        View::transposed(cols, depth),
                        View::row_major(grad, co),
                        &mut dw,
                        co,
                        false,
                    );
                });
                dw
            })
            .collect();
        let mut dw = vec![0.0; depth * co];
        for p in &partials {
            dw.iter_mut().zip(p).for_each(|(d, v)| *d += v);
        }
        dw
    }
}

/// The bias gradient [C] of any layer whose output gradient is `dy` [.., C]: the sum over every
/// position, in position order.
pub fn bias_grad(dy: &[f32], channels: usize) -> Vec<f32> {
    let mut db = vec![0.0; channels];
    for row in dy.chunks_exact(channels) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    db
}

/// The epilogue of a layer's block of output: bias (if any) and activation in one pass.
fn finish(y: &mut [f32], bias: Option<&[f32]>, act: Activation) {
    match bias {
        Some(b) => add_bias(y, b, act),
        None => act.apply(y),
    }
}

/// Adds `bias` [C] to every position of `y` [.., C], then applies `act`, in one pass (on the
/// calling thread: the layers call it per block of their own parallel work).
fn add_bias(y: &mut [f32], bias: &[f32], act: Activation) {
    for row in y.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        act.apply(row);
    }
}
