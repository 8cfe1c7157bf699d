//! Per-peer caps on work a peer can start here (inbound block streams, control requests): a
//! counter per peer, held by a guard that gives the slot back when dropped.

use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At most `cap` slots in use per peer at once.
#[derive(Clone)]
pub(crate) struct PerPeer {
    cap: usize,
    used: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One peer's slot; returned when dropped.
pub(crate) struct Slot {
    peer: PeerId,
    used: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl PerPeer {
    /// A cap of `cap` slots per peer.
    pub(crate) fn new(cap: usize) -> Self {
        PerPeer {
            cap,
            used: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `peer`, or `None` when it has `cap` in use. The table holds only peers with
    /// slots in use, so it is bounded by the global caps on streams and requests.
    pub(crate) fn try_acquire(&self, peer: PeerId) -> Option<Slot> {
        let mut used = self.used.lock().ok()?;
        let n = used.entry(peer).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            peer,
            used: self.used.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut used) = self.used.lock() {
            if let Some(n) = used.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    used.remove(&self.peer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_peer_and_gives_slots_back() {
        let limits = PerPeer::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = limits.try_acquire(a).unwrap();
        let a2 = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none(), "a third slot for a");
        // another peer is not held back by a
        let b1 = limits.try_acquire(b).unwrap();
        drop(a1);
        let a3 = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        drop((a2, a3, b1));
        // every slot given back: the table is empty again
        assert!(limits.used.lock().unwrap().is_empty());
    }
}
