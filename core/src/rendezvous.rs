//! Weighted rendezvous hashing: where a stripe's shards live, computable by anyone who knows
//! the nodes and their weights (design §1), with no coordinator.
//!
//! A node's score for a key is `w / -ln(u)`, where `u` in (0, 1) comes from
//! `blake3(key || node)`; nodes are ranked by descending score. This is the logarithmic method
//! of Schindelhauer and Schomaker: each node wins a key with probability proportional to its
//! weight, and adding or removing one node moves only the keys it wins or held.

/// A candidate node: an id (any bytes, e.g. a peer id) and a weight (e.g. free bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id bytes.
    pub id: Vec<u8>,
    /// Weight; zero-weight nodes are never chosen.
    pub weight: u64,
}

/// The node's score for `key`.
pub fn score(key: &[u8], node: &[u8], weight: u64) -> f64 {
    if weight == 0 {
        return f64::NEG_INFINITY;
    }
    let mut h = blake3::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(node);
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d.as_bytes()[..8]);
    // 53 random bits, mapped into the open interval (0, 1)
    let u = ((u64::from_le_bytes(x) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight as f64 / -u.ln()
}

/// Indices of `nodes` ranked best first for `key` (zero-weight nodes left out). Ties, which need
/// equal hashes, break by id.
pub fn rank(key: &[u8], nodes: &[Candidate]) -> Vec<usize> {
    let mut v: Vec<(f64, usize)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.weight > 0)
        .map(|(i, n)| (score(key, &n.id, n.weight), i))
        .collect();
    v.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| nodes[a.1].id.cmp(&nodes[b.1].id))
    });
    v.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(weights: &[u64]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Candidate {
                id: vec![i as u8],
                weight: w,
            })
            .collect()
    }

    #[test]
    fn ranking_is_deterministic_and_skips_zero_weight() {
        let n = nodes(&[1, 1, 0, 1]);
        let a = rank(b"stripe", &n);
        assert_eq!(a, rank(b"stripe", &n));
        assert_eq!(a.len(), 3);
        assert!(!a.contains(&2));
    }

    #[test]
    fn first_choice_follows_weights() {
        let n = nodes(&[1, 3]);
        let wins = (0u32..20_000)
            .filter(|i| rank(&i.to_le_bytes(), &n)[0] == 1)
            .count();
        // expected 15,000 of 20,000; 6 sigma is about 370
        assert!((14_600..15_400).contains(&wins), "{wins}");
    }

    #[test]
    fn removing_a_node_moves_only_its_keys() {
        let all = nodes(&[1, 1, 1, 1, 1]);
        let fewer: Vec<Candidate> = all[..4].to_vec();
        for i in 0u32..2000 {
            let k = i.to_le_bytes();
            let a = rank(&k, &all)[0];
            if a != 4 {
                assert_eq!(rank(&k, &fewer)[0], a);
            }
        }
    }
}
