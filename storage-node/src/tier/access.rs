//! Readers' access plans on the promoter's side: the blocks a reader will read, in order,
//! handed to the placement engine (`crate::node` expands a plan's files into those blocks).

use super::{engine_id, PromoterState};
use cairn_core::Cid;

/// Engine ids a plan may add to the id map (the rest are still planned, by id).
const MAX_PLAN_IDS: usize = 1 << 20;

impl PromoterState {
    /// Registers a reader's plan with the engine: the blocks it will read, in order (replaces
    /// the plan before).
    pub(crate) fn register_plan(&self, order: &[Cid]) {
        if let Ok(mut st) = self.state.lock() {
            let ids: Vec<u64> = order.iter().map(engine_id).collect();
            for (c, &id) in order.iter().zip(&ids) {
                if st.ids.len() < MAX_PLAN_IDS || st.ids.contains_key(&id) {
                    st.ids.insert(id, *c);
                }
            }
            st.engine.register_plan(ids);
        }
    }
}
