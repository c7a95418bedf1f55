//! A bounds-checked matrix product on the `gemm` crate, one thread per call (the kernels
//! parallelise over their own blocks, so that the split never depends on the thread count).

/// A read-only matrix view: element (r, c) at `data[r * rows + c * cols]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    /// Stride between rows.
    pub rows: usize,
    /// Stride between columns.
    pub cols: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with `width` values per row.
    pub fn row_major(data: &'a [f32], width: usize) -> Self {
        Self { data, rows: width, cols: 1 }
    }

    /// The transpose of a row-major matrix with `width` values per row.
    pub fn transposed(data: &'a [f32], width: usize) -> Self {
        Self { data, rows: 1, cols: width }
    }

    fn check(&self, r: usize, c: usize, what: &str) {
        if r > 0 && c > 0 {
            let last = (r - 1) * self.rows + (c - 1) * self.cols;
            assert!(last < self.data.len(), "{what}: a {r} × {c} view needs index {last}, has {}", self.data.len());
        }
    }
}

/// `c[m × n]` (row-major, `ldc` values per row) = `a[m × k] · b[k × n]`, or `+=` when
/// `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    a.check(m, k, "lhs");
    b.check(k, n, "rhs");
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "dst: {m} × {n} with stride {ldc} in {}", c.len());
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let s = |v: usize| v as isize;
    // SAFETY: the checks above keep every index the product reads or writes inside its slice;
    // `c` is borrowed mutably, so no other reference sees it while it is written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            s(ldc),
            accumulate,
            a.data.as_ptr(),
            s(a.cols),
            s(a.rows),
            b.data.as_ptr(),
            s(b.cols),
            s(b.rows),
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_transposes_match_the_definition() {
        let (m, n, k) = (5, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| 1.0 - v as f32 * 0.25).collect();
        let mut c = vec![7.0; m * n];
        matmul(m, n, k, View::row_major(&a, k), View::row_major(&b, n), &mut c, n, false);
        for r in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|i| a[r * k + i] * b[i * n + j]).sum();
                assert!((c[r * n + j] - want).abs() < 1e-4, "({r}, {j}): {} vs {want}", c[r * n + j]);
            }
        }
        // aᵀ · c as a view of the same memory, accumulated onto a start value
        let mut d = vec![1.0; k * n];
        matmul(k, n, m, View::transposed(&a, k), View::row_major(&c, n), &mut d, n, true);
        for i in 0..k {
            for j in 0..n {
                let want: f32 = 1.0 + (0..m).map(|r| a[r * k + i] * c[r * n + j]).sum::<f32>();
                assert!((d[i * n + j] - want).abs() < 1e-2 * want.abs().max(1.0), "({i}, {j})");
            }
        }
    }

    #[test]
    #[should_panic(expected = "rhs")]
    fn a_view_too_small_is_refused() {
        let mut c = vec![0.0; 4];
        matmul(2, 2, 3, View::row_major(&[0.0; 6], 3), View::row_major(&[0.0; 5], 2), &mut c, 2, false);
    }
}
