//! Readers' access plans on the promoter's side: the blocks a reader will read, in order,
//! handed to the placement engine (`crate::node` expands a plan's files into those blocks),
//! and followed by the prefetcher ([`super::prefetch`]).

use super::claims::Follow;
use super::plans::PlanStatus;
use super::{engine_id, NewPlan, PromoterState};
use cairn_core::Cid;
use cairn_net::PeerId;

/// Engine ids a plan may add to the id map (the rest are still planned, by id).
const MAX_PLAN_IDS: usize = 1 << 20;

impl PromoterState {
    /// Registers a reader's plan: with the prefetcher, which follows it from `now_ms`, and,
    /// unless it is the same plan again, with the engine (the blocks it will read, in order;
    /// this replaces the engine's plan before).
    pub(crate) fn register_plan(&self, plan: NewPlan, now_ms: u64) {
        let ids: Vec<(Cid, u64)> = plan.order.iter().map(|(c, _)| (*c, engine_id(c))).collect();
        if !self.follow_plan(plan, now_ms) {
            return; // the same plan again: the engine has it
        }
        if let Ok(mut st) = self.state.lock() {
            for (c, id) in &ids {
                if st.ids.len() < MAX_PLAN_IDS || st.ids.contains_key(id) {
                    st.ids.insert(*id, *c);
                }
            }
            st.engine
                .register_plan(ids.into_iter().map(|x| x.1).collect());
        }
    }

    /// Follows `plan` from `now_ms` (see [`super::plans::PlanBook::follow`]); whether it is new.
    pub(crate) fn follow_plan(&self, plan: NewPlan, now_ms: u64) -> bool {
        self.plans
            .lock()
            .map(|mut b| b.follow(plan, now_ms))
            .unwrap_or(false)
    }

    /// A reader read `cid` at `at_ms` through this node (its gateway): plans count it.
    pub(crate) fn observe_read(&self, cid: &Cid, at_ms: u64) {
        if let Ok(mut book) = self.plans.lock() {
            book.observe(cid, at_ms);
        }
    }

    /// The fast peer holding `cid` for a plan, if any, and whether it is a copy made for it
    /// (else the peer is a base holder).
    pub(crate) fn plan_copy(&self, cid: &Cid) -> Option<(PeerId, bool)> {
        self.plans.lock().ok()?.copy_of(cid)
    }

    /// The plans followed, and why nothing is prefetched now, if so.
    pub(crate) fn plan_status(&self) -> (Vec<PlanStatus>, Option<String>) {
        self.plans.lock().map(|b| b.status()).unwrap_or_default()
    }

    /// How plans are followed, from the options.
    pub(super) fn follow_opts(&self) -> Follow {
        Follow {
            plan_bytes: self.opts.plan_bytes,
            lookahead_ms: self.opts.lookahead.as_millis() as u64,
            tick_ms: self.opts.prefetch_every.as_millis() as u64,
            keep_ms: self.opts.plan_keep.as_millis() as u64,
        }
    }
}
