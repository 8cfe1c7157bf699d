//! SIEVE and S3-FIFO, with byte capacities and the shared admission rule.

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::{HashMap, VecDeque};

const NIL: usize = usize::MAX;

struct Node {
    id: u64,
    size: u32,
    visited: bool,
    prev: usize, // towards the tail (older)
    next: usize, // towards the head (newer)
}

/// SIEVE (Zhang et al., NSDI'24): a FIFO queue with a visited bit and a hand that sweeps from
/// the oldest object towards the newest, clearing visited bits and evicting the first object
/// not visited since the hand last passed.
pub struct Sieve {
    cap: u64,
    used: u64,
    nodes: Vec<Node>,
    free: Vec<usize>,
    index: HashMap<u64, usize>,
    head: usize,
    tail: usize,
    hand: usize,
}

impl Sieve {
    /// An empty cache of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Sieve {
            cap,
            used: 0,
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            head: NIL,
            tail: NIL,
            hand: NIL,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.nodes[i].prev, self.nodes[i].next);
        if p != NIL {
            self.nodes[p].next = n;
        } else {
            self.tail = n;
        }
        if n != NIL {
            self.nodes[n].prev = p;
        } else {
            self.head = p;
        }
    }

    fn evict_one(&mut self) -> bool {
        let mut h = if self.hand == NIL {
            self.tail
        } else {
            self.hand
        };
        if h == NIL {
            return false;
        }
        while self.nodes[h].visited {
            self.nodes[h].visited = false;
            h = self.nodes[h].next;
            if h == NIL {
                h = self.tail;
            }
        }
        self.hand = self.nodes[h].next;
        self.unlink(h);
        self.index.remove(&self.nodes[h].id);
        self.used -= u64::from(self.nodes[h].size);
        self.free.push(h);
        true
    }
}

impl Policy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    fn access(&mut self, r: &Request) -> bool {
        if let Some(&i) = self.index.get(&r.id) {
            self.nodes[i].visited = true;
            return true;
        }
        let size = u64::from(r.size);
        if size > self.cap {
            return false;
        }
        while self.used + size > self.cap && self.evict_one() {}
        let node = Node {
            id: r.id,
            size: r.size,
            visited: false,
            prev: self.head,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if self.head != NIL {
            self.nodes[self.head].next = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.index.insert(r.id, i);
        self.used += size;
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn capacity(&self) -> u64 {
        self.cap
    }
}

/// S3-FIFO (Yang et al., SOSP'23): a small FIFO (10 % of the bytes) filters one-hit wonders;
/// objects re-read while in it move to the main FIFO, others leave their id in a ghost FIFO
/// (90 % of the bytes, ids only) so a quick return goes straight to main. Main is a FIFO with
/// reinsertion of objects read since they were last considered (2-bit frequency).
pub struct S3Fifo {
    cap: u64,
    small_cap: u64,
    ghost_cap: u64,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    small_used: u64,
    main_used: u64,
    /// id -> (size, frequency, in main)
    objs: HashMap<u64, (u32, u8, bool)>,
    ghost: VecDeque<(u64, u32, u64)>,
    ghost_index: HashMap<u64, u64>,
    ghost_used: u64,
    ghost_seq: u64,
}

/// Frequency an object needs in the small FIFO to move to main (libCacheSim's default).
pub const MOVE_TO_MAIN: u8 = 2;

impl S3Fifo {
    /// An empty cache of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        S3Fifo {
            cap,
            small_cap: cap / 10,
            ghost_cap: cap * 9 / 10,
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_used: 0,
            main_used: 0,
            objs: HashMap::new(),
            ghost: VecDeque::new(),
            ghost_index: HashMap::new(),
            ghost_used: 0,
            ghost_seq: 0,
        }
    }

    /// Changes the capacity; the next admissions evict down to it.
    pub fn set_capacity(&mut self, cap: u64) {
        self.cap = cap;
        self.small_cap = cap / 10;
        self.ghost_cap = cap * 9 / 10;
    }

    /// Heap bytes this policy's bookkeeping uses.
    pub fn heap_bytes(&self) -> usize {
        use crate::sampled::map_bytes;
        (self.small.capacity() + self.main.capacity()) * 8
            + map_bytes::<u64, (u32, u8, bool)>(self.objs.capacity())
            + self.ghost.capacity() * std::mem::size_of::<(u64, u32, u64)>()
            + map_bytes::<u64, u64>(self.ghost_index.capacity())
    }

    fn ghost_insert(&mut self, id: u64, size: u32) {
        self.ghost_seq += 1;
        self.ghost.push_back((id, size, self.ghost_seq));
        self.ghost_index.insert(id, self.ghost_seq);
        self.ghost_used += u64::from(size);
        while self.ghost_used > self.ghost_cap {
            let Some((gid, gsize, seq)) = self.ghost.pop_front() else {
                break;
            };
            self.ghost_used -= u64::from(gsize);
            if self.ghost_index.get(&gid) == Some(&seq) {
                self.ghost_index.remove(&gid);
            }
        }
    }

    fn evict_main(&mut self) -> bool {
        while let Some(id) = self.main.pop_front() {
            let Some(o) = self.objs.get_mut(&id) else {
                continue;
            };
            if o.1 > 0 {
                o.1 -= 1;
                self.main.push_back(id);
            } else {
                self.main_used -= u64::from(o.0);
                self.objs.remove(&id);
                return true;
            }
        }
        false
    }

    fn evict_small(&mut self) -> bool {
        while let Some(id) = self.small.pop_front() {
            let Some(&(size, freq, _)) = self.objs.get(&id) else {
                continue;
            };
            self.small_used -= u64::from(size);
            if freq >= MOVE_TO_MAIN {
                if let Some(o) = self.objs.get_mut(&id) {
                    o.1 = 0;
                    o.2 = true;
                }
                self.main.push_back(id);
                self.main_used += u64::from(size);
                while self.main_used > self.cap.saturating_sub(self.small_used) && self.evict_main()
                {
                }
            } else {
                self.objs.remove(&id);
                self.ghost_insert(id, size);
                return true;
            }
        }
        false
    }

    fn evict(&mut self) -> bool {
        let order: [fn(&mut Self) -> bool; 2] =
            if self.small_used > self.small_cap || self.main.is_empty() {
                [Self::evict_small, Self::evict_main]
            } else {
                [Self::evict_main, Self::evict_small]
            };
        order.iter().any(|evict| evict(self))
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn access(&mut self, r: &Request) -> bool {
        if let Some(o) = self.objs.get_mut(&r.id) {
            o.1 = (o.1 + 1).min(3);
            return true;
        }
        let size = u64::from(r.size);
        if size > self.cap {
            return false;
        }
        while self.small_used + self.main_used + size > self.cap && self.evict() {}
        if self.ghost_index.remove(&r.id).is_some() {
            self.objs.insert(r.id, (r.size, 0, true));
            self.main.push_back(r.id);
            self.main_used += size;
        } else {
            self.objs.insert(r.id, (r.size, 0, false));
            self.small.push_back(r.id);
            self.small_used += size;
        }
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.objs.contains_key(&id)
    }

    fn used(&self) -> u64 {
        self.small_used + self.main_used
    }

    fn capacity(&self) -> u64 {
        self.cap
    }
}
