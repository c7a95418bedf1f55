//! The NHWC kernels against a direct definition in f64: forward, input and weight gradients,
//! the transposed convolution as the adjoint, and bit-identical results on one and two threads.

use mmguard_kernels::conv2d::{bias_grad, unpack_weight_grad};
use mmguard_kernels::{Activation, Conv2d, PackedWeight};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The model's camera layers at a small size, its sensor layers (a window is height 1), odd
/// cases and an unpadded stride-1 layer.
fn layers() -> Vec<Conv2d> {
    let l = |batch, [height, width]: [usize; 2], [channels_in, channels_out]: [usize; 2], kernel, stride, padding| {
        Conv2d { batch, height, width, channels_in, channels_out, kernel, stride, padding }
    };
    vec![
        l(3, [16, 16], [3, 8], [4, 4], [2, 2], [1, 1]),
        l(5, [8, 8], [8, 16], [4, 4], [2, 2], [1, 1]),
        l(1, [4, 4], [16, 4], [4, 4], [2, 2], [1, 1]),
        // 16 and more input channels take the gathering input gradient: uneven phases, and a
        // kernel narrower than its stride (phases without taps)
        l(6, [9, 7], [16, 5], [3, 4], [2, 3], [1, 2]),
        l(2, [5, 6], [20, 3], [2, 2], [3, 3], [0, 1]),
        // stride 1: one phase with every tap (MMGAN's 3 × 3 patch-score layer)
        l(2, [6, 5], [64, 1], [3, 3], [1, 1], [1, 1]),
        l(2, [7, 5], [3, 2], [3, 2], [1, 2], [0, 1]),
        // sensor: k3 s1 p1 keeps T, k4 s2 p1 halves it
        l(4, [1, 16], [5, 8], [1, 3], [1, 1], [0, 1]),
        l(4, [1, 16], [8, 8], [1, 4], [1, 2], [0, 1]),
    ]
}

/// y[b, oy, ox, o] = Σ x[b, oy·s − p + ky, ox·s − p + kx, i] · w[o, i, ky, kx] + bias[o].
fn direct(c: &Conv2d, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
    let (ho, wo) = (c.out_height(), c.out_width());
    let mut y = vec![0.0f64; c.output_len()];
    for b in 0..c.batch {
        for oy in 0..ho {
            for ox in 0..wo {
                for o in 0..c.channels_out {
                    let mut s = f64::from(bias[o]);
                    for ky in 0..c.kernel[0] {
                        for kx in 0..c.kernel[1] {
                            let iy = (oy * c.stride[0] + ky) as isize - c.padding[0] as isize;
                            let ix = (ox * c.stride[1] + kx) as isize - c.padding[1] as isize;
                            if iy < 0 || ix < 0 || iy >= c.height as isize || ix >= c.width as isize {
                                continue;
                            }
                            for i in 0..c.channels_in {
                                let xv = x[((b * c.height + iy as usize) * c.width + ix as usize) * c.channels_in + i];
                                let wv = w[((o * c.channels_in + i) * c.kernel[0] + ky) * c.kernel[1] + kx];
                                s += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[((b * ho + oy) * wo + ox) * c.channels_out + o] = s;
                }
            }
        }
    }
    y
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5 * scale, "{what}[{k}]: {g} vs {w}");
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

#[test]
fn forward_matches_the_definition_with_bias_and_activation() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for c in layers() {
        let x = random(c.input_len(), &mut rng);
        let w = random(c.weight_len(), &mut rng);
        let bias = random(c.channels_out, &mut rng);
        let want = direct(&c, &x, &w, &bias);
        let mut y = vec![f32::NAN; c.output_len()];
        c.forward(&x, &PackedWeight::pack(&w, &c), Some(&bias), Activation::Identity, &mut y);
        close(&y, &want, &format!("{c:?}"));
        c.forward(&x, &PackedWeight::pack(&w, &c), Some(&bias), Activation::LeakyRelu(0.2), &mut y);
        let leaky: Vec<f64> = want.iter().map(|&v| v.max(0.2 * v)).collect();
        close(&y, &leaky, &format!("leaky {c:?}"));
    }
}

#[test]
fn gradients_are_the_adjoint_and_the_outer_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for c in layers() {
        let x = random(c.input_len(), &mut rng);
        let dy = random(c.output_len(), &mut rng);
        let w = random(c.weight_len(), &mut rng);
        let packed = PackedWeight::pack(&w, &c);
        let mut y = vec![0.0; c.output_len()];
        c.forward(&x, &packed, None, Activation::Identity, &mut y);
        // ⟨conv(x), dy⟩ = ⟨x, conv_xᵀ(dy)⟩: the input gradient is the adjoint, i.e. the
        // transposed convolution with the same weight
        let mut dx = vec![f32::NAN; c.input_len()];
        c.input_grad(&dy, &packed, &mut dx);
        let (lhs, rhs) = (dot(&y, &dy), dot(&x, &dx));
        assert!((lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0), "{c:?}: {lhs} vs {rhs}");
        // each input gradient value is the derivative of ⟨conv(x), dy⟩ by that input: the
        // forward pass of a unit input is the column of the operator
        for k in [0, c.input_len() / 2, c.input_len() - 1] {
            let mut e = vec![0.0; c.input_len()];
            e[k] = 1.0;
            let col = direct(&c, &e, &w, &vec![0.0; c.channels_out]);
            let want: f64 = col.iter().zip(&dy).map(|(a, b)| a * f64::from(*b)).sum();
            assert!((f64::from(dx[k]) - want).abs() <= 1e-5 * want.abs().max(1.0), "{c:?} dx[{k}]");
        }
        // dW[o, i, ky, kx] = Σ dy[b, oy, ox, o] · x[b, oy·s − p + ky, …, i], db = Σ dy
        let (dw, db) = (c.weight_grad(&x, &dy), bias_grad(&dy, c.channels_out));
        let dw = unpack_weight_grad(&dw, &c);
        for j in 0..w.len() {
            let mut e = vec![0.0; w.len()];
            e[j] = 1.0;
            let col = direct(&c, &x, &e, &vec![0.0; c.channels_out]);
            let want: f64 = col.iter().zip(&dy).map(|(a, b)| a * f64::from(*b)).sum();
            assert!(
                (f64::from(dw[j]) - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{c:?} dw[{j}]: {} vs {want}",
                dw[j]
            );
        }
        for (o, &got) in db.iter().enumerate() {
            let want: f64 = dy.iter().skip(o).step_by(c.channels_out).map(|&v| f64::from(v)).sum();
            assert!((f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0), "{c:?} db[{o}]");
        }
    }
}

#[test]
fn the_transposed_forward_is_the_input_gradient_with_bias_and_activation() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for c in layers() {
        let x = random(c.output_len(), &mut rng);
        let w = PackedWeight::pack(&random(c.weight_len(), &mut rng), &c);
        let bias = random(c.channels_in, &mut rng);
        let mut plain = vec![0.0; c.input_len()];
        c.input_grad(&x, &w, &mut plain);
        for act in [Activation::Identity, Activation::LeakyRelu(0.2), Activation::Sigmoid] {
            let mut want = plain.clone();
            for (k, v) in want.iter_mut().enumerate() {
                *v += bias[k % c.channels_in];
            }
            act.apply(&mut want);
            let mut y = vec![f32::NAN; c.input_len()];
            c.transposed_forward(&x, &w, Some(&bias), act, &mut y);
            assert_eq!(y, want, "{c:?} {act:?}");
        }
    }
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // enough rows for several forward blocks, weight-gradient partials and gather tasks, on
    // both input-gradient paths
    for channels_in in [8, 16] {
        let c = Conv2d {
            batch: 9,
            height: 16,
            width: 16,
            channels_in,
            channels_out: 16,
            kernel: [4, 4],
            stride: [2, 2],
            padding: [1, 1],
        };
        let x = random(c.input_len(), &mut rng);
        let dy = random(c.output_len(), &mut rng);
        let w = PackedWeight::pack(&random(c.weight_len(), &mut rng), &c);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut y = vec![0.0; c.output_len()];
                c.forward(&x, &w, None, Activation::LeakyRelu(0.2), &mut y);
                let mut dx = vec![0.0; c.input_len()];
                c.input_grad(&dy, &w, &mut dx);
                let (dw, db) = (c.weight_grad(&x, &dy), bias_grad(&dy, c.channels_out));
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
                (bits(&y), bits(&dx), bits(&dw), bits(&db))
            })
        };
        assert_eq!(run(1), run(2), "{c:?}");
    }
}
