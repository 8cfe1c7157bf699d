//! Prefetching for access plans, pure: a training job announced the blocks it will read this
//! epoch, in order, and how fast it reads; at each tick, [`Cursor::decide`] says which blocks
//! should sit on fast peers now (the ones the reader reaches next, within a byte budget) and
//! which copies to drop (read, passed, or beyond the budget).
//!
//! No clock and no I/O: times are arguments (ms), and the caller carries out the decision
//! (the storage node copies blocks to fast peers and drops them there) and reports the reads
//! it observes ([`Cursor::observe`]).
//!
//! **Where the reader is.** The reader's *head* is one past the furthest planned position
//! observed read. With a declared rate, the head is extrapolated from the last observed read
//! (or from the plan's start, before any) at that rate, for at most [`Tuning::extrapolate_ms`]:
//! a reader that stalls is not run past by more than that. Several workers may read one plan
//! side by side (each every `w`-th file), so reads arrive a little out of order: an unread
//! block up to [`Tuning::behind_bytes`] before the head is still wanted; one further back was
//! read somewhere this node did not see, or skipped, and its copy is dropped as *passed*.
//!
//! **How far ahead.** From the oldest wanted unread block, in plan order, blocks are wanted
//! while their bytes fit `min(budget, rate × lookahead_ms)` (the whole budget without a
//! rate), and at least one block (when it fits the budget).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// How a [`Cursor`] looks ahead and behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Bytes the copies of this plan may take on fast peers at once.
    pub budget: u64,
    /// How far ahead of the reader to hold blocks, in ms of reading at the declared rate.
    pub lookahead_ms: u64,
    /// How long past the last observed read the head is extrapolated at most, ms.
    pub extrapolate_ms: u64,
    /// Unread blocks this many bytes before the head are still wanted.
    pub behind_bytes: u64,
}

/// Why a held copy is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The reader read it (every planned position of it).
    Read,
    /// The reader is past it by more than `behind_bytes` (read elsewhere, or skipped).
    Passed,
    /// It is planned, but not within the budget now.
    Beyond,
    /// It is not in the plan.
    Unplanned,
}

impl DropReason {
    /// A short reason for status pages.
    pub fn reason(self) -> &'static str {
        match self {
            DropReason::Read => "read by the planned reader",
            DropReason::Passed => "passed: the planned reader is beyond it",
            DropReason::Beyond => "beyond the plan's look-ahead budget now",
            DropReason::Unplanned => "not in the plan",
        }
    }
}

/// One tick's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<K> {
    /// Blocks wanted on fast peers now, in plan order, with their sizes.
    pub want: Vec<(K, u64)>,
    /// Of those, the ones not held yet: copy them, in this order.
    pub fetch: Vec<(K, u64)>,
    /// Held copies to drop, with the reason.
    pub drop: Vec<(K, DropReason)>,
    /// The estimated head (plan position the reader reaches next).
    pub head: usize,
}

/// A plan and what its reader has been seen to read.
#[derive(Debug, Clone)]
pub struct Cursor<K> {
    order: Vec<(K, u64)>,
    /// `ends[i]`: bytes of positions `0..=i`.
    ends: Vec<u64>,
    positions: HashMap<K, Vec<usize>>,
    read: Vec<bool>,
    /// Unread positions below this one are passed over when looking for the oldest wanted.
    low: usize,
    rate: Option<f64>,
    head: usize,
    /// When the head was last observed (the plan's start before any read).
    head_ms: u64,
    reads: u64,
}

impl<K: Copy + Eq + Hash> Cursor<K> {
    /// A plan of `order` (block, bytes), read from `start_ms` at `rate` bytes per second
    /// (`None`, zero, negative or not finite: unknown).
    pub fn new(order: Vec<(K, u64)>, rate: Option<f64>, start_ms: u64) -> Self {
        let mut ends = Vec::with_capacity(order.len());
        let mut positions: HashMap<K, Vec<usize>> = HashMap::new();
        let mut total = 0u64;
        for (i, &(k, size)) in order.iter().enumerate() {
            total = total.saturating_add(size);
            ends.push(total);
            positions.entry(k).or_default().push(i);
        }
        Cursor {
            read: vec![false; order.len()],
            order,
            ends,
            positions,
            low: 0,
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            head: 0,
            head_ms: start_ms,
            reads: 0,
        }
    }

    /// The plan: blocks and sizes, in reading order.
    pub fn order(&self) -> &[(K, u64)] {
        &self.order
    }

    /// Sets the declared rate (as [`Cursor::new`] takes it).
    pub fn set_rate(&mut self, rate: Option<f64>) {
        self.rate = rate.filter(|r| r.is_finite() && *r > 0.0);
    }

    /// Blocks in the plan.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the plan is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Planned bytes.
    pub fn bytes(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Reads observed that matched an unread planned position.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Positions read so far.
    pub fn read_count(&self) -> usize {
        self.read.iter().filter(|r| **r).count()
    }

    /// When the reader was last seen moving its head (the plan's start before any read), ms.
    pub fn head_ms(&self) -> u64 {
        self.head_ms
    }

    /// The declared rate, bytes per second.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Whether `k` is planned.
    pub fn contains(&self, k: &K) -> bool {
        self.positions.contains_key(k)
    }

    /// How far `k`'s next unread planned position is from the observed head, in positions
    /// (`None`: not planned, or every position read). Several plans may share a block; the
    /// nearest is the likeliest reader.
    pub fn distance(&self, k: &K) -> Option<usize> {
        let p = *self.positions.get(k)?.iter().find(|&&p| !self.read[p])?;
        Some(p.abs_diff(self.head))
    }

    /// Bytes the reader reads, from its observed head, before it reaches `k`'s next unread
    /// planned position at or past the head (`None`: no such position). Ranks copies kept
    /// for later reads: the nearest is the one to keep.
    pub fn ahead(&self, k: &K) -> Option<u64> {
        let p = *self
            .positions
            .get(k)?
            .iter()
            .find(|&&p| p >= self.head && !self.read[p])?;
        let at = |i: usize| if i == 0 { 0 } else { self.ends[i - 1] };
        Some(at(p) - at(self.head))
    }

    /// The reader read `k` at `at_ms`: its first unread planned position is marked read, and
    /// the head moves past it if that is further. A block not planned, or whose every
    /// position is read, changes nothing. Returns whether it matched.
    pub fn observe(&mut self, k: &K, at_ms: u64) -> bool {
        let Some(ps) = self.positions.get(k) else {
            return false;
        };
        let Some(&p) = ps.iter().find(|&&p| !self.read[p]) else {
            return false;
        };
        self.read[p] = true;
        self.reads += 1;
        if p + 1 >= self.head {
            self.head = p + 1;
            self.head_ms = self.head_ms.max(at_ms);
        }
        true
    }

    /// The position the reader reaches next at `now_ms`: one past the furthest read seen,
    /// extrapolated at the declared rate for at most `extrapolate_ms`.
    pub fn head_at(&self, now_ms: u64, extrapolate_ms: u64) -> usize {
        let Some(rate) = self.rate else {
            return self.head;
        };
        let since = now_ms.saturating_sub(self.head_ms).min(extrapolate_ms);
        let done = if self.head == 0 {
            0
        } else {
            self.ends[self.head - 1]
        };
        let est = done.saturating_add((rate * since as f64 / 1e3) as u64);
        // the first position not wholly read by `est` bytes
        let pos = self.ends.partition_point(|&e| e <= est);
        pos.max(self.head)
    }

    /// Decides what to hold at `now_ms`, given the copies `held` now (see the module docs).
    pub fn decide(&mut self, now_ms: u64, t: &Tuning, held: &HashSet<K>) -> Decision<K> {
        let head = self.head_at(now_ms, t.extrapolate_ms);
        let head_bytes = if head == 0 { 0 } else { self.ends[head - 1] };
        let floor = head_bytes.saturating_sub(t.behind_bytes);
        // positions that end before `floor` are passed for good
        while self.low < self.order.len() && self.ends[self.low] < floor {
            self.low += 1;
        }
        let ahead = match self.rate {
            Some(r) => t
                .budget
                .min((r * t.lookahead_ms as f64 / 1e3).min(u64::MAX as f64) as u64),
            None => t.budget,
        };
        let mut want = Vec::new();
        let mut wanted: HashSet<K> = HashSet::new();
        let mut bytes = 0u64;
        for i in self.low..self.order.len() {
            if self.read[i] {
                continue;
            }
            let (k, size) = self.order[i];
            if wanted.contains(&k) {
                continue;
            }
            let total = bytes.saturating_add(size);
            if total > t.budget || (total > ahead && !want.is_empty()) {
                break;
            }
            bytes = total;
            wanted.insert(k);
            want.push((k, size));
        }
        let fetch = want
            .iter()
            .filter(|(k, _)| !held.contains(k))
            .copied()
            .collect();
        let mut drop: Vec<(K, DropReason)> = held
            .iter()
            .filter(|k| !wanted.contains(k))
            .map(|k| (*k, self.why_not(k)))
            .collect();
        // a stable order: by first planned position, unplanned last
        drop.sort_by_key(|(k, _)| {
            self.positions
                .get(k)
                .and_then(|p| p.first().copied())
                .unwrap_or(usize::MAX)
        });
        Decision {
            want,
            fetch,
            drop,
            head,
        }
    }

    fn why_not(&self, k: &K) -> DropReason {
        let Some(ps) = self.positions.get(k) else {
            return DropReason::Unplanned;
        };
        if ps.iter().all(|&p| self.read[p]) {
            DropReason::Read
        } else if ps.iter().all(|&p| self.read[p] || p < self.low) {
            DropReason::Passed
        } else {
            DropReason::Beyond
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tuning = Tuning {
        budget: 300,
        lookahead_ms: 2_000,
        extrapolate_ms: 1_000,
        behind_bytes: 100,
    };

    fn plan(sizes: &[u64]) -> Vec<(u32, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect()
    }

    fn ids(v: &[(u32, u64)]) -> Vec<u32> {
        v.iter().map(|x| x.0).collect()
    }

    #[test]
    fn decide_table() {
        struct Case {
            name: &'static str,
            sizes: &'static [u64],
            rate: Option<f64>,
            /// (block, at ms) reads observed before deciding
            reads: &'static [(u32, u64)],
            now: u64,
            held: &'static [u32],
            head: usize,
            want: &'static [u32],
            fetch: &'static [u32],
            drop: &'static [(u32, DropReason)],
        }
        let cases = [
            Case {
                name: "no rate, nothing read: the budget's worth from the start",
                sizes: &[100, 100, 100, 100],
                rate: None,
                reads: &[],
                now: 0,
                held: &[],
                head: 0,
                want: &[0, 1, 2],
                fetch: &[0, 1, 2],
                drop: &[],
            },
            Case {
                name: "a rate bounds the look-ahead (50 B/s x 2 s = 100 B: one block)",
                sizes: &[100, 100, 100, 100],
                rate: Some(50.0),
                reads: &[],
                now: 0,
                held: &[],
                head: 0,
                want: &[0],
                fetch: &[0],
                drop: &[],
            },
            Case {
                name: "at least one block even when it is larger than the look-ahead",
                sizes: &[250, 100],
                rate: Some(10.0),
                reads: &[],
                now: 0,
                held: &[],
                head: 0,
                want: &[0],
                fetch: &[0],
                drop: &[],
            },
            Case {
                name: "but never one over the budget",
                sizes: &[400, 100],
                rate: None,
                reads: &[],
                now: 0,
                held: &[],
                head: 0,
                want: &[],
                fetch: &[],
                drop: &[],
            },
            Case {
                name: "read copies are dropped, the window slides, held ones are not fetched again",
                sizes: &[100, 100, 100, 100, 100],
                rate: None,
                reads: &[(0, 10), (1, 20)],
                now: 30,
                held: &[0, 1, 2],
                head: 2,
                want: &[2, 3, 4],
                fetch: &[3, 4],
                drop: &[(0, DropReason::Read), (1, DropReason::Read)],
            },
            Case {
                name: "an unread block just behind the head is still wanted (another worker's)",
                sizes: &[100, 100, 100, 100, 100],
                rate: None,
                reads: &[(0, 10), (2, 20)],
                now: 30,
                held: &[1],
                head: 3,
                want: &[1, 3, 4],
                fetch: &[3, 4],
                drop: &[],
            },
            Case {
                name: "one further behind than behind_bytes is passed",
                sizes: &[100, 100, 100, 100, 100, 100],
                rate: None,
                reads: &[(0, 10), (3, 20)],
                now: 30,
                held: &[1, 2],
                head: 4,
                want: &[2, 4, 5],
                fetch: &[4, 5],
                drop: &[(1, DropReason::Passed)],
            },
            Case {
                name: "the head is extrapolated at the rate from the last read",
                sizes: &[100, 100, 100, 100, 100, 100],
                rate: Some(100.0),
                // read 0 at 1 s; at 2 s the reader is estimated one block on (head 2)
                reads: &[(0, 1_000)],
                now: 2_000,
                held: &[0],
                head: 2,
                want: &[1, 2],
                fetch: &[1, 2],
                drop: &[(0, DropReason::Read)],
            },
            Case {
                name: "a stalled reader is not extrapolated past extrapolate_ms",
                sizes: &[100, 100, 100, 100, 100, 100],
                rate: Some(100.0),
                reads: &[(0, 1_000)],
                now: 60_000,
                held: &[],
                head: 2,
                want: &[1, 2],
                fetch: &[1, 2],
                drop: &[],
            },
            Case {
                name: "before any read, from the plan's start",
                sizes: &[100, 100, 100, 100, 100, 100],
                rate: Some(100.0),
                reads: &[],
                now: 1_000,
                held: &[],
                head: 1,
                want: &[0, 1],
                fetch: &[0, 1],
                drop: &[],
            },
            Case {
                name: "copies beyond the budget and unplanned ones are dropped",
                sizes: &[100, 100, 100, 100, 100],
                rate: None,
                reads: &[],
                now: 0,
                held: &[4, 9],
                head: 0,
                want: &[0, 1, 2],
                fetch: &[0, 1, 2],
                drop: &[(4, DropReason::Beyond), (9, DropReason::Unplanned)],
            },
            Case {
                name: "reads of unplanned blocks change nothing",
                sizes: &[100, 100, 100, 100],
                rate: None,
                reads: &[(7, 10)],
                now: 20,
                held: &[],
                head: 0,
                want: &[0, 1, 2],
                fetch: &[0, 1, 2],
                drop: &[],
            },
        ];
        for c in cases {
            let mut cur = Cursor::new(plan(c.sizes), c.rate, 0);
            for &(k, at) in c.reads {
                cur.observe(&k, at);
            }
            let held: HashSet<u32> = c.held.iter().copied().collect();
            let d = cur.decide(c.now, &T, &held);
            assert_eq!(d.head, c.head, "{}: head", c.name);
            assert_eq!(ids(&d.want), c.want, "{}: want", c.name);
            assert_eq!(ids(&d.fetch), c.fetch, "{}: fetch", c.name);
            assert_eq!(d.drop, c.drop.to_vec(), "{}: drop", c.name);
            let wanted: u64 = d.want.iter().map(|x| x.1).sum();
            assert!(wanted <= T.budget, "{}: over the budget", c.name);
        }
    }

    #[test]
    fn ahead_table() {
        // blocks 0..5 of sizes 10, 20, 30, 40, 50; block 7 planned at positions 1 and 4
        let order = vec![(0u32, 10), (7, 20), (2, 30), (3, 40), (7, 50)];
        let mut cur = Cursor::new(order, None, 0);
        // (reads observed so far, block, bytes before the reader reaches it)
        assert_eq!(cur.ahead(&0), Some(0));
        assert_eq!(cur.ahead(&7), Some(10));
        assert_eq!(cur.ahead(&3), Some(60));
        assert_eq!(cur.ahead(&9), None, "not planned");
        assert!(cur.observe(&0, 1) && cur.observe(&7, 2));
        // the head is 2 (30 bytes read): 7's next unread position is 4, 70 bytes on
        assert_eq!(cur.ahead(&7), Some(70));
        assert_eq!(cur.ahead(&0), None, "read");
        assert!(cur.observe(&3, 3));
        // 2 was passed over (behind the head, unread): no read of it lies ahead
        assert_eq!(cur.ahead(&2), None);
        assert!(cur.observe(&7, 4));
        assert_eq!(cur.ahead(&7), None);
    }

    #[test]
    fn a_block_planned_twice_is_read_twice_before_it_is_dropped() {
        // the same block at positions 0 and 2 (two files sharing a leaf)
        let order = vec![(7u32, 100), (8, 100), (7, 100), (9, 100)];
        let mut cur = Cursor::new(order, None, 0);
        let held: HashSet<u32> = [7].into_iter().collect();
        assert!(cur.observe(&7, 1));
        let d = cur.decide(2, &T, &held);
        assert!(d.drop.is_empty(), "{d:?}");
        assert_eq!(ids(&d.want), vec![8, 7, 9]);
        assert!(cur.observe(&8, 3));
        assert!(cur.observe(&7, 4));
        assert!(!cur.observe(&7, 5), "no position of it is left unread");
        let d = cur.decide(6, &T, &held);
        assert_eq!(d.drop, vec![(7, DropReason::Read)]);
        assert_eq!(cur.reads(), 3);
        assert_eq!(cur.read_count(), 3);
    }

    #[test]
    fn a_whole_epoch_read_in_order_holds_at_most_the_budget_and_ends_with_nothing() {
        let sizes: Vec<u64> = (0..50).map(|i| 20 + (i * 37 % 90)).collect();
        let order = plan(&sizes);
        let mut cur = Cursor::new(order.clone(), Some(200.0), 0);
        let mut held: HashSet<u32> = HashSet::new();
        let mut fetched = 0u64;
        for (i, (k, _)) in order.iter().enumerate() {
            let now = i as u64 * 500;
            let d = cur.decide(now, &T, &held);
            for (x, _) in &d.drop {
                held.remove(x);
            }
            for (x, s) in &d.fetch {
                held.insert(*x);
                fetched += s;
            }
            let held_bytes: u64 = held.iter().map(|x| sizes[*x as usize]).sum();
            assert!(held_bytes <= T.budget, "{held_bytes} held at {i}");
            assert!(held.contains(k), "block {i} not held when it is read");
            cur.observe(k, now + 1);
        }
        let d = cur.decide(u64::MAX / 2, &T, &held);
        assert!(d.want.is_empty());
        assert_eq!(d.drop.len(), held.len());
        // every block was copied once
        assert_eq!(fetched, sizes.iter().sum::<u64>());
    }
}
