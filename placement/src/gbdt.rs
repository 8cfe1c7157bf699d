//! Gradient-boosted regression trees in pure Rust: histogram splits (32 quantile bins per
//! feature), squared loss, depth-wise growth. Small and fast enough to retrain online.

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Trees per model.
    pub trees: usize,
    /// Maximum depth of a tree.
    pub depth: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f32,
    /// Fewest rows a leaf may hold.
    pub min_leaf: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            trees: 16,
            depth: 5,
            learning_rate: 0.2,
            min_leaf: 32,
        }
    }
}

const BINS: usize = 32;

#[derive(Debug, Clone, Copy)]
enum TNode {
    Split {
        feat: u16,
        thr: f32,
        left: u32,
        right: u32,
    },
    Leaf(f32),
}

/// A trained model.
#[derive(Debug, Clone, Default)]
pub struct Model {
    base: f32,
    trees: Vec<Vec<TNode>>,
    /// The same trees as complete binary trees of one depth, for branch-free prediction.
    flat: Flat,
}

/// Trees laid out level by level: tree `t`'s split `i` (0-based, children of `i` at `2i + 1`
/// and `2i + 2`) is at `t * (2^depth - 1) + i`, its leaf `j` at `t * 2^depth + j`. A leaf
/// shallower than `depth` is padded with splits that always go left (threshold +inf) over
/// copies of its value, so every walk takes exactly `depth` steps.
#[derive(Debug, Clone, Default)]
struct Flat {
    depth: usize,
    feat: Vec<u16>,
    thr: Vec<f32>,
    leaf: Vec<f32>,
}

impl Flat {
    fn new(trees: &[Vec<TNode>]) -> Flat {
        fn depth(t: &[TNode], i: usize) -> usize {
            match t[i] {
                TNode::Leaf(_) => 0,
                TNode::Split { left, right, .. } => {
                    1 + depth(t, left as usize).max(depth(t, right as usize))
                }
            }
        }
        #[allow(clippy::too_many_arguments)]
        fn fill(
            t: &[TNode],
            i: usize,
            pos: usize,
            level: usize,
            d: usize,
            f: &mut Flat,
            so: usize,
            lo: usize,
        ) {
            let inner = (1 << d) - 1;
            match t[i] {
                TNode::Leaf(v) if level == d => f.leaf[lo + pos - inner] = v,
                TNode::Leaf(_) => {
                    f.feat[so + pos] = 0;
                    f.thr[so + pos] = f32::INFINITY;
                    fill(t, i, 2 * pos + 1, level + 1, d, f, so, lo);
                    fill(t, i, 2 * pos + 2, level + 1, d, f, so, lo);
                }
                TNode::Split {
                    feat,
                    thr,
                    left,
                    right,
                } => {
                    f.feat[so + pos] = feat;
                    f.thr[so + pos] = thr;
                    fill(t, left as usize, 2 * pos + 1, level + 1, d, f, so, lo);
                    fill(t, right as usize, 2 * pos + 2, level + 1, d, f, so, lo);
                }
            }
        }
        let d = trees.iter().map(|t| depth(t, 0)).max().unwrap_or(0);
        let (inner, leaves) = ((1usize << d) - 1, 1usize << d);
        let mut f = Flat {
            depth: d,
            feat: vec![0; inner * trees.len()],
            thr: vec![f32::INFINITY; inner * trees.len()],
            leaf: vec![0.0; leaves * trees.len()],
        };
        for (k, t) in trees.iter().enumerate() {
            fill(t, 0, 0, 0, d, &mut f, k * inner, k * leaves);
        }
        f
    }

    /// The value of the leaf tree `t` sends `x` to: the same comparisons as `eval`'s.
    #[inline]
    fn walk(&self, t: usize, x: &[f32]) -> f32 {
        let (inner, leaves) = ((1usize << self.depth) - 1, 1usize << self.depth);
        let so = t * inner;
        let mut i = 0;
        for _ in 0..self.depth {
            let k = so + i;
            let right = goes_right(x[usize::from(self.feat[k])], self.thr[k]);
            i = 2 * i + 1 + usize::from(right);
        }
        self.leaf[t * leaves + i - inner]
    }
}

impl Model {
    /// Whether the model has been trained.
    pub fn is_trained(&self) -> bool {
        !self.trees.is_empty()
    }

    /// Heap bytes the model uses.
    pub fn heap_bytes(&self) -> usize {
        let nodes: usize = self
            .trees
            .iter()
            .map(|t| t.capacity() * std::mem::size_of::<TNode>())
            .sum();
        nodes
            + self.flat.feat.capacity() * 2
            + (self.flat.thr.capacity() + self.flat.leaf.capacity()) * 4
    }

    /// Predicts one row (as long as the rows the model was fitted on).
    pub fn predict(&self, x: &[f32]) -> f32 {
        // trees added in order, as `eval`'s walks would be
        (0..self.trees.len()).fold(self.base, |y, t| y + self.flat.walk(t, x))
    }

    /// Predicts several rows at once into `out` (one per row), exactly as [`Model::predict`]
    /// would one by one; the rows' walks through a tree are independent, so they overlap.
    pub fn predict_rows<const N: usize>(&self, rows: &[[f32; N]], out: &mut [f32]) {
        let out = &mut out[..rows.len()];
        out.fill(self.base);
        for t in 0..self.trees.len() {
            for (x, y) in rows.iter().zip(out.iter_mut()) {
                *y += self.flat.walk(t, x);
            }
        }
    }

    /// Fits a model to rows `x` (each `nfeat` long, row-major) and targets `y`.
    pub fn fit(x: &[f32], nfeat: usize, y: &[f32], p: Params) -> Model {
        let n = y.len();
        if n == 0 || nfeat == 0 || x.len() != n * nfeat {
            return Model::default();
        }
        // quantile thresholds per feature
        let mut thr = vec![[f32::INFINITY; BINS - 1]; nfeat];
        let mut col: Vec<f32> = Vec::with_capacity(n);
        for (f, t) in thr.iter_mut().enumerate() {
            col.clear();
            col.extend((0..n).map(|r| x[r * nfeat + f]));
            col.sort_by(f32::total_cmp);
            for (b, slot) in t.iter_mut().enumerate() {
                *slot = col[((b + 1) * n / BINS).min(n - 1)];
            }
        }
        // binned rows
        let mut bins = vec![0u8; n * nfeat];
        for r in 0..n {
            for f in 0..nfeat {
                let v = x[r * nfeat + f];
                bins[r * nfeat + f] = thr[f].partition_point(|&t| t < v) as u8;
            }
        }
        let base = y.iter().sum::<f32>() / n as f32;
        let mut pred = vec![base; n];
        let mut trees = Vec::with_capacity(p.trees);
        let mut resid = vec![0f32; n];
        for _ in 0..p.trees {
            for r in 0..n {
                resid[r] = y[r] - pred[r];
            }
            let mut nodes = Vec::new();
            let rows: Vec<u32> = (0..n as u32).collect();
            grow(&mut nodes, rows, 0, &bins, nfeat, &thr, &resid, p);
            // update predictions
            let tree = nodes;
            for (r, pr) in pred.iter_mut().enumerate() {
                let row = &x[r * nfeat..(r + 1) * nfeat];
                *pr += eval(&tree, row);
            }
            trees.push(tree);
        }
        let flat = Flat::new(&trees);
        Model { base, trees, flat }
    }
}

/// Whether a walk leaves a split to the right: unless `v <= thr` (so NaN goes right), as in
/// `eval`.
#[inline]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // the negation is the point: NaN goes right
fn goes_right(v: f32, thr: f32) -> bool {
    !(v <= thr)
}

fn eval(t: &[TNode], x: &[f32]) -> f32 {
    let mut i = 0;
    loop {
        match t[i] {
            TNode::Leaf(v) => return v,
            TNode::Split {
                feat,
                thr,
                left,
                right,
            } => {
                i = if x[feat as usize] <= thr {
                    left as usize
                } else {
                    right as usize
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn grow(
    nodes: &mut Vec<TNode>,
    rows: Vec<u32>,
    depth: usize,
    bins: &[u8],
    nfeat: usize,
    thr: &[[f32; BINS - 1]],
    resid: &[f32],
    p: Params,
) -> u32 {
    let me = nodes.len() as u32;
    let sum: f64 = rows.iter().map(|&r| f64::from(resid[r as usize])).sum();
    let cnt = rows.len() as f64;
    nodes.push(TNode::Leaf((sum / cnt.max(1.0)) as f32 * p.learning_rate));
    if depth >= p.depth || rows.len() < 2 * p.min_leaf {
        return me;
    }
    // best split over every feature's histogram
    let mut best: Option<(f64, usize, usize)> = None; // (gain, feat, bin)
    let parent = sum * sum / cnt;
    let mut hs = [0f64; BINS];
    let mut hc = [0u32; BINS];
    for f in 0..nfeat {
        hs.fill(0.0);
        hc.fill(0);
        for &r in &rows {
            let b = bins[r as usize * nfeat + f] as usize;
            hs[b] += f64::from(resid[r as usize]);
            hc[b] += 1;
        }
        let (mut ls, mut lc) = (0f64, 0u32);
        for b in 0..BINS - 1 {
            ls += hs[b];
            lc += hc[b];
            let rc = rows.len() as u32 - lc;
            if (lc as usize) < p.min_leaf || (rc as usize) < p.min_leaf {
                continue;
            }
            let rs = sum - ls;
            let gain = ls * ls / f64::from(lc) + rs * rs / f64::from(rc) - parent;
            if best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, f, b));
            }
        }
    }
    let Some((gain, f, b)) = best else {
        return me;
    };
    if gain <= 1e-9 {
        return me;
    }
    let (l, r): (Vec<u32>, Vec<u32>) = rows
        .into_iter()
        .partition(|&row| (bins[row as usize * nfeat + f] as usize) <= b);
    let left = grow(nodes, l, depth + 1, bins, nfeat, thr, resid, p);
    let right = grow(nodes, r, depth + 1, bins, nfeat, thr, resid, p);
    nodes[me as usize] = TNode::Split {
        feat: f as u16,
        thr: thr[f][b],
        left,
        right,
    };
    me
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_step_and_a_slope() {
        // y = 10 if x0 > 0.5 else 0, plus 2*x1
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut s = 12345u64;
        for _ in 0..4000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let a = (s % 1000) as f32 / 1000.0;
            let b = ((s >> 20) % 1000) as f32 / 1000.0;
            x.extend([a, b]);
            y.push(if a > 0.5 { 10.0 } else { 0.0 } + 2.0 * b);
        }
        let m = Model::fit(
            &x,
            2,
            &y,
            Params {
                trees: 40,
                ..Params::default()
            },
        );
        let err: f32 = (0..4000)
            .map(|r| (m.predict(&x[r * 2..r * 2 + 2]) - y[r]).abs())
            .sum::<f32>()
            / 4000.0;
        assert!(err < 0.4, "mean abs error {err}");
        assert!(m.predict(&[0.9, 0.0]) > 8.0);
        assert!(m.predict(&[0.1, 0.0]) < 2.0);
    }

    #[test]
    fn flat_trees_predict_exactly_what_the_trees_do() {
        let mut s = 99u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let (n, nfeat) = (3000, 5);
        let x: Vec<f32> = (0..n * nfeat)
            .map(|_| (next() % 10_000) as f32 / 100.0)
            .collect();
        // a target only some features explain, so trees end at different depths
        let y: Vec<f32> = (0..n)
            .map(|r| {
                let row = &x[r * nfeat..(r + 1) * nfeat];
                (if row[0] > 50.0 { row[1] } else { 3.0 }) + (next() % 7) as f32
            })
            .collect();
        for depth in [1, 3, 5, 7] {
            let p = Params {
                trees: 12,
                depth,
                min_leaf: 200,
                ..Params::default()
            };
            let m = Model::fit(&x, nfeat, &y, p);
            let mut rows: Vec<Vec<f32>> = x.chunks(nfeat).take(500).map(<[f32]>::to_vec).collect();
            rows.push(vec![f32::NAN; nfeat]);
            rows.push(vec![f32::INFINITY; nfeat]);
            rows.push(vec![f32::NEG_INFINITY; nfeat]);
            for row in &rows {
                let walked = m.trees.iter().fold(m.base, |y, t| y + eval(t, row));
                assert_eq!(
                    m.predict(row).to_bits(),
                    walked.to_bits(),
                    "depth {depth}, {row:?}"
                );
            }
            let arrays: Vec<[f32; 5]> = rows
                .iter()
                .map(|r| [r[0], r[1], r[2], r[3], r[4]])
                .collect();
            let mut out = vec![0.0; arrays.len()];
            m.predict_rows(&arrays, &mut out);
            for (row, y) in arrays.iter().zip(&out) {
                assert_eq!(
                    y.to_bits(),
                    m.predict(row).to_bits(),
                    "depth {depth}, {row:?}"
                );
            }
        }
    }

    #[test]
    fn empty_or_malformed_input_gives_an_untrained_model() {
        assert!(!Model::fit(&[], 3, &[], Params::default()).is_trained());
        assert!(!Model::fit(&[1.0, 2.0], 3, &[1.0], Params::default()).is_trained());
    }
}
