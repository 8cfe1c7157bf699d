//! Telling a plan's node where the reader is: the node that follows a reader's plan sees only
//! the reads it serves itself and those of the copies it made, not the reads other holders
//! serve, so the reader reports the blocks it fetched ([`CtrlRequest::Read`]), a few at a
//! time, one report in flight at once, the newest [`MAX_READ_REPORT`] kept while one is.

use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, MAX_READ_REPORT};
use cairn_net::{NetClient, PeerId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Blocks fetched before a report is sent.
pub const REPORT_EVERY: usize = 4;
/// How long a report may take before the next may go.
const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The reports of one dataset's reader to its plan's node.
pub(crate) struct ReadReports {
    node: PeerId,
    root: Cid,
    net: NetClient,
    pending: Mutex<Vec<Cid>>,
    sending: AtomicBool,
}

/// What to do with a newly read block: the batch to send now, if any. Pure: `pending` gets
/// `cid`, keeps the newest [`MAX_READ_REPORT`], and is taken when it holds
/// [`REPORT_EVERY`] and no report is in flight.
pub(crate) fn batch(pending: &mut Vec<Cid>, cid: Cid, in_flight: bool) -> Option<Vec<Cid>> {
    pending.push(cid);
    if pending.len() > MAX_READ_REPORT {
        let extra = pending.len() - MAX_READ_REPORT;
        pending.drain(..extra);
    }
    (pending.len() >= REPORT_EVERY && !in_flight).then(|| std::mem::take(pending))
}

impl ReadReports {
    /// Reports to `node`, which follows this reader's plan over `root`.
    pub(crate) fn new(net: NetClient, node: PeerId, root: Cid) -> Arc<Self> {
        Arc::new(ReadReports {
            node,
            root,
            net,
            pending: Mutex::new(Vec::new()),
            sending: AtomicBool::new(false),
        })
    }

    /// The plan's node.
    pub(crate) fn node(&self) -> PeerId {
        self.node
    }

    /// Notes that `cid` was read; sends a report in the background when one is due (on the
    /// current tokio runtime; none: nothing is sent).
    pub(crate) fn note(self: &Arc<Self>, cid: Cid) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let due = {
            let Ok(mut p) = self.pending.lock() else {
                return;
            };
            let due = batch(&mut p, cid, self.sending.load(Ordering::Acquire));
            if due.is_some() {
                self.sending.store(true, Ordering::Release);
            }
            due
        };
        let Some(cids) = due else { return };
        let this = self.clone();
        rt.spawn(async move {
            let req = CtrlRequest::Read {
                root: this.root,
                cids,
            };
            match tokio::time::timeout(REPORT_TIMEOUT, this.net.ctrl(this.node, req)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(node = %this.node, error = %e, "reporting reads to the plan's node failed")
                }
                Err(_) => tracing::debug!(node = %this.node, "a report of reads timed out"),
            }
            this.sending.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::{HashAlg, RAW};

    fn cid(i: u32) -> Cid {
        HashAlg::Blake3.cid(RAW, &i.to_le_bytes())
    }

    #[test]
    fn reports_go_every_few_blocks_one_at_a_time_and_keep_the_newest() {
        let mut p = Vec::new();
        for i in 0..REPORT_EVERY as u32 - 1 {
            assert_eq!(batch(&mut p, cid(i), false), None);
        }
        let b = batch(&mut p, cid(99), false).unwrap();
        assert_eq!(b.len(), REPORT_EVERY);
        assert_eq!(b.last(), Some(&cid(99)));
        assert!(p.is_empty());
        // while one is in flight, the newest are kept, at most a report's worth
        for i in 0..200 {
            assert_eq!(batch(&mut p, cid(i), true), None);
        }
        assert_eq!(p.len(), MAX_READ_REPORT);
        assert_eq!(p[0], cid(200 - MAX_READ_REPORT as u32));
        let b = batch(&mut p, cid(1000), false).unwrap();
        assert_eq!(b.len(), MAX_READ_REPORT);
        assert_eq!(b.last(), Some(&cid(1000)));
    }
}
