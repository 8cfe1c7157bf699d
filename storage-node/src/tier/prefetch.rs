//! Readers' access plans on the promoter's side: a training job registered the blocks it
//! will read this epoch, in order, and how fast it reads (`POST /api/v0/plan`); every
//! [`TierOptions::prefetch_every`] this node copies the blocks the reader reaches next onto
//! its fastest fast peer, ahead of the reader, and drops each copy once it is read
//! ([`cairn_placement::prefetch`] decides; this file observes reads and carries it out).
//!
//! - **Reads observed**: reads of the copies, counted by the fast peers that hold them
//!   ([`CtrlRequest::Cached`], as the windows ask), blocks served by this node to clients, and
//!   blocks this node's gateway serves ([`PromoterState::observe_read`]).
//! - **Bounded**: at most [`MAX_PLANS`] plans (a new one replaces the oldest, and one per
//!   `(root, job)`); together they hold at most `plan_bytes` on fast peers, each plan an equal
//!   share; at most [`FETCHES_PER_TICK`] copies started per tick, [`FETCHES_AT_ONCE`] in
//!   flight at once over all ticks (the worker's copies finish in the background).
//! - **Kept copies**: a copy no plan wants within its look-ahead stays while the look-ahead
//!   leaves room, for another plan's later read or (spare) the next epoch's plan
//!   ([`super::plans`]).
//! - **Shared copies**: two plans wanting one block share its copy; a copy is dropped only
//!   when no plan wants it.
//! - **No copy of what is fast already**: a block whose base holder is a fast peer is not
//!   copied; it is marked as held there, so the gateway reads it from that peer.
//! - Plans and their copies are kept in memory: after a restart the fast peers drop the
//!   copies as orphans ([`ORPHAN_WINDOWS`]) and readers register their next plan.

use super::claims::combine;
use super::plans::Held;
use super::PlanBook;
use super::*;

/// Copies made per tick at most, over all plans.
pub const FETCHES_PER_TICK: usize = 64;
/// Copies made at once.
pub const FETCHES_AT_ONCE: usize = 16;
/// How long getting one block and copying it to a fast peer may take.
const PREFETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A block being copied for plans: marked in the book's `inflight` set while the guard lives,
/// so a copy that fails, panics or is dropped never leaves the block marked.
struct InFlight {
    book: Arc<Mutex<PlanBook>>,
    cid: Cid,
}

impl InFlight {
    /// Marks `cid`; `None` when it is being copied already (or the book is poisoned).
    fn start(book: Arc<Mutex<PlanBook>>, cid: Cid) -> Option<Self> {
        let new = book.lock().is_ok_and(|mut b| b.inflight.insert(cid));
        new.then_some(InFlight { book, cid })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut b) = self.book.lock() {
            b.inflight.remove(&self.cid);
        }
    }
}

impl<H: TierHost + Clone> FastTier<H> {
    /// Follows the registered plans once: observes the reads since the last tick, then makes
    /// and drops copies on fast peers as [`cairn_placement::prefetch`] decides.
    pub async fn prefetch_tick(&self) -> PrefetchReport {
        self.tick(true).await
    }

    /// One tick; with `wait`, it waits for the copies it starts (see
    /// [`FastTier::make_copies`]).
    async fn tick(&self, wait: bool) -> PrefetchReport {
        let tier = self.0.tier();
        let _one = tier.prefetch_lock.lock().await;
        let mut report = PrefetchReport::default();
        let now = now_ms();
        let (held, seq) = match tier.plans.lock() {
            Ok(b) if !b.plans.is_empty() => (b.held.clone(), b.seq),
            _ => return report,
        };
        // reads served here to clients
        let (reads, seq) = self.0.reads_since(seq);
        // reads of the copies, from the fast peers holding them
        let counts = self.copy_reads(&held).await;
        let mut lost = Vec::new();
        {
            let Ok(mut book) = tier.plans.lock() else {
                return report;
            };
            book.seq = seq;
            for r in &reads {
                book.observe(&r.cid, r.at_ms);
            }
            for (c, n) in counts {
                let Some(h) = book.held.get(&c).copied() else {
                    continue;
                };
                match n {
                    None => {
                        book.held.remove(&c);
                        lost.push(c);
                    }
                    Some(n) => {
                        let delta = plan::read_delta(h.reads_seen, n, MAX_REPORTED_READS);
                        if let Some(x) = book.held.get_mut(&c) {
                            x.reads_seen = n;
                        }
                        for _ in 0..delta.min(1024) {
                            book.observe(&c, now);
                        }
                        for p in book.plans.iter_mut().filter(|p| p.cursor.contains(&c)) {
                            p.fast_reads += delta;
                        }
                        if delta > 0 {
                            self.0.record_reads(c, h.size, delta, now);
                        }
                    }
                }
            }
        }
        let fast = self.fast_peers();
        let combined = match tier.plans.lock() {
            Ok(mut book) => {
                report.plans = book.plans.len();
                report.reads = book.observed - book.reported;
                book.reported = book.observed;
                let c = combine(&mut book, &tier.follow_opts(), now);
                if fast.is_empty() && !c.fetch.is_empty() {
                    let note = "no fast peers measured yet: nothing prefetched".to_string();
                    book.note = Some(note.clone());
                    report.note = Some(note);
                } else {
                    book.note = None;
                }
                c
            }
            Err(_) => return report,
        };
        let mut moves = Vec::new();
        for c in lost {
            moves.push(self.plan_move(
                now,
                "lost",
                &c,
                None,
                0,
                true,
                "the fast peer no longer holds the copy".into(),
            ));
        }
        // drops and copies go at once: a tick lasts as long as its slowest copy, and the
        // reader gains on the copies while it lasts
        let mut drop_moves = Vec::new();
        let drops = self.drop_copies(now, combined.drop, &mut drop_moves);
        let copies = async {
            if !fast.is_empty() {
                self.make_copies(now, combined.fetch, &fast, wait, &mut report, &mut moves)
                    .await;
            }
        };
        let (dropped, ()) = tokio::join!(drops, copies);
        report.dropped = dropped;
        moves.extend(drop_moves);
        self.push_moves(moves);
        if report.prefetched + report.dropped > 0 {
            tracing::info!(
                prefetched = report.prefetched,
                dropped = report.dropped,
                bytes = report.bytes,
                "plan prefetch"
            );
        }
        report
    }

    /// Read counts of the copies in `held`, from the fast peers holding them (`None`: the
    /// peer no longer has it). Copies on unreachable peers are left out.
    async fn copy_reads(&self, held: &HashMap<Cid, Held>) -> Vec<(Cid, Option<u32>)> {
        let mut by_peer: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        for (c, h) in held.iter().filter(|x| x.1.copy) {
            by_peer.entry(h.peer).or_default().push(*c);
        }
        let mut out = Vec::new();
        for (peer, cids) in by_peer {
            for chunk in cids.chunks(MAX_CACHED) {
                match self
                    .0
                    .net()
                    .ctrl(peer, CtrlRequest::Cached(chunk.to_vec()))
                    .await
                {
                    Ok(CtrlResponse::Reads(r)) if r.len() == chunk.len() => {
                        out.extend(chunk.iter().copied().zip(r))
                    }
                    Ok(_) => out.extend(chunk.iter().map(|c| (*c, None))),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "asking a fast peer for plan copies' reads failed")
                    }
                }
            }
        }
        out
    }

    /// Asks the fast peers to drop `drop`, and forgets the copies. Returns how many.
    async fn drop_copies(
        &self,
        now: u64,
        drop: Vec<(Cid, Held, &'static str)>,
        moves: &mut Vec<Move>,
    ) -> usize {
        let tier = self.0.tier();
        let mut by_peer: HashMap<PeerId, Vec<(Cid, Held, &'static str)>> = HashMap::new();
        for d in drop {
            if d.1.copy {
                by_peer.entry(d.1.peer).or_default().push(d);
            } else if let Ok(mut book) = tier.plans.lock() {
                // a base holder's block: nothing to ask it
                book.held.remove(&d.0);
            }
        }
        let mut n = 0;
        for (peer, list) in by_peer {
            for chunk in list.chunks(MAX_CACHED) {
                let cids: Vec<Cid> = chunk.iter().map(|x| x.0).collect();
                let note = match self.0.net().ctrl(peer, CtrlRequest::Uncache(cids)).await {
                    Ok(CtrlResponse::Have(_)) => String::new(),
                    Ok(other) => format!("; unexpected answer {other:?}"),
                    Err(e) => format!("; {e} (forgotten: the peer drops it as an orphan)"),
                };
                if let Ok(mut book) = tier.plans.lock() {
                    for (c, _, _) in chunk {
                        book.held.remove(c);
                        for p in book.plans.iter_mut().filter(|p| p.cursor.contains(c)) {
                            p.dropped += 1;
                        }
                    }
                }
                for (c, h, why) in chunk {
                    n += 1;
                    moves.push(self.plan_move(
                        now,
                        "drop",
                        c,
                        Some(peer),
                        h.size,
                        true,
                        format!("{why}{note}"),
                    ));
                }
            }
        }
        n
    }

    /// Gets each block of `fetch` (from this node's store, or verified from the network) and
    /// copies it to the fastest of `fast` that accepts it, [`FETCHES_AT_ONCE`] in flight at
    /// most over all ticks: a block being copied is not started again, and a copy started
    /// when no slot is free waits for the next tick. With `wait` the tick waits for the copies
    /// it started and reports them; without, they finish in the background (the worker's
    /// ticks go on meanwhile, so a fast reader is not left waiting for the slowest copy of a
    /// tick) and record themselves.
    async fn make_copies(
        &self,
        now: u64,
        fetch: Vec<(Cid, u64, (Cid, String))>,
        fast: &[PeerId],
        wait: bool,
        report: &mut PrefetchReport,
        moves: &mut Vec<Move>,
    ) {
        let tier = self.0.tier();
        let mut started = Vec::new();
        for (cid, _, plan) in fetch.into_iter().take(FETCHES_PER_TICK) {
            let Ok(slot) = tier.copy_slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(flight) = InFlight::start(tier.plan_book(), cid) else {
                continue;
            };
            let me = FastTier(self.0.clone());
            let fast = fast.to_vec();
            started.push(tokio::spawn(async move {
                let got = me.copy_one(plan.0, cid, &fast).await;
                drop(slot);
                let (out, m) = me.record_copy(now, cid, plan, got);
                drop(flight);
                if !wait {
                    // in the background: the status's moves and the log, as a tick's are
                    if let Err(e) = &out {
                        tracing::debug!(error = %e, "plan copy failed");
                    }
                    me.push_moves(m.clone());
                }
                (out, m)
            }));
        }
        if !wait {
            return;
        }
        for h in started {
            let Ok((outcome, m)) = h.await else {
                continue;
            };
            match outcome {
                Ok(size) if size > 0 => {
                    report.prefetched += 1;
                    report.bytes += size;
                }
                Ok(_) => {}
                Err(e) => report.failed.push(e),
            }
            moves.extend(m);
        }
    }

    /// Gets `cid` of dataset `root` and copies it to the fastest of `fast` that takes it:
    /// the peer, the bytes copied and whether it is a copy (else `fast` holds it as a base
    /// shard).
    async fn copy_one(
        &self,
        root: Cid,
        cid: Cid,
        fast: &[PeerId],
    ) -> Result<(PeerId, u64, bool), String> {
        tokio::time::timeout(PREFETCH_TIMEOUT, async {
            let data = match self.0.block_for_plan(root, cid, fast).await? {
                PlanBlock::Data(d) => d,
                PlanBlock::FastHolder(peer) => return Ok((peer, 0, false)),
            };
            let block = Block { cid, data };
            let peer = self.push_copy(&block, fast, true).await?;
            Ok((peer, block.data.len() as u64, true))
        })
        .await
        .unwrap_or_else(|_| Err(format!("not done within {PREFETCH_TIMEOUT:?}")))
    }

    /// Records a finished copy for the plan `(root, job)` in the book and the totals.
    /// Returns the bytes copied (0 for a fast base holder) or the failure, and the move for
    /// the status (its caller adds it).
    fn record_copy(
        &self,
        now: u64,
        cid: Cid,
        plan: (Cid, String),
        got: Result<(PeerId, u64, bool), String>,
    ) -> (Result<u64, String>, Vec<Move>) {
        let tier = self.0.tier();
        let (out, mv) = match got {
            Ok((peer, size, copy)) => {
                if let Ok(mut book) = tier.plans.lock() {
                    let h = Held {
                        peer,
                        size,
                        reads_seen: 0,
                        copy,
                        spare_since: None,
                        root: Some(plan.0),
                    };
                    book.held.insert(cid, h);
                    if copy {
                        let wanting = book
                            .plans
                            .iter_mut()
                            .find(|p| p.root == plan.0 && p.job == plan.1);
                        if let Some(p) = wanting {
                            p.prefetched += 1;
                            p.prefetched_bytes += size;
                        }
                    }
                }
                if !copy {
                    (Ok(0), None)
                } else {
                    tier.prefetched_total.fetch_add(size, Ordering::Relaxed);
                    let m = self.plan_move(
                        now,
                        "prefetch",
                        &cid,
                        Some(peer),
                        size,
                        true,
                        "planned: the reader reaches it next".into(),
                    );
                    (Ok(size), Some(m))
                }
            }
            Err(e) => {
                let m = self.plan_move(now, "prefetch", &cid, None, 0, false, e.clone());
                (Err(format!("{cid}: {e}")), Some(m))
            }
        };
        (out, mv.into_iter().collect())
    }

    /// Adds `moves` to the status's latest moves.
    fn push_moves(&self, moves: Vec<Move>) {
        if let Ok(mut st) = self.0.tier().state.lock() {
            for m in moves {
                if st.moves.len() == MOVE_HISTORY {
                    st.moves.pop_front();
                }
                st.moves.push_back(m);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_move(
        &self,
        now: u64,
        kind: &'static str,
        cid: &Cid,
        peer: Option<PeerId>,
        bytes: u64,
        ok: bool,
        reason: String,
    ) -> Move {
        Move {
            at_ms: now,
            window: self.0.tier().state.lock().map(|s| s.window).unwrap_or(0),
            kind,
            rule: "plan",
            cid: cid.to_string(),
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
            bytes,
            ok,
            reason,
        }
    }

    /// Follows plans every `prefetch_every` until the node stops (when `plan_bytes` > 0);
    /// measures peers first when none is known fast, at most once a window.
    pub(crate) async fn prefetch_worker(self) {
        let opts = self.0.tier().opts.clone();
        if opts.plan_bytes == 0 {
            return;
        }
        let mut stop = self.0.stop_signal();
        let mut tick = tokio::time::interval(opts.prefetch_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probed: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let active = self
                .0
                .tier()
                .plans
                .lock()
                .map(|b| !b.plans.is_empty())
                .unwrap_or(false);
            if !active {
                continue;
            }
            if self.fast_peers().is_empty() && probed.is_none_or(|t| t.elapsed() >= opts.window) {
                probed = Some(Instant::now());
                self.probe_peers().await;
            }
            self.tick(false).await;
        }
    }
}
