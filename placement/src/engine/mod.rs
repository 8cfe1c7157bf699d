//! The placement engine: a learned fast-tier policy in the style of LRB (Song et al., NSDI'20).
//!
//! For every object it keeps a little history: its last four inter-access gaps, four
//! exponentially decayed access counters (half-lives 2^9 to 2^18 requests), its size and the
//! time since its last access. From that, gradient-boosted trees ([`crate::gbdt`]) trained
//! online predict whether the object will *not* be read again before a boundary of four times
//! the running mean eviction age (LRB's "relaxed Belady" goal). Training examples are a random
//! 35 % of accesses plus, at each eviction, the first sampled resident with its features as of
//! then (an idle object, like those the model is asked about). Nothing looks ahead: an example
//! is labelled only when its object is next seen (the label is then known) or when it has not
//! been seen for the memory window (32 x the eviction age; then "not reused").
//!
//! Eviction samples 32 residents and evicts the one most likely not needed before the boundary,
//! ties broken towards the older. Until the first model is trained it evicts the least recently
//! used of the sample. Every miss is admitted (`BYPASS` off: refusing predicted-cold newcomers
//! cut promoted bytes but raised the miss ratio; see `docs/placement.md`).
//!
//! Beside it runs a shadow S3-FIFO of the same capacity on ids alone. When the sample holds
//! residents the shadow has already dropped and the model would evict someone else, a share of
//! the evictions (a seeded draw) take the one of those the model likes least instead: S3-FIFO's
//! quick demotion of objects not re-read since admission corrects the model where it is unsure.
//! The share is one half while this tier misses no more bytes than the shadow lately, and
//! rises to all when it misses more, so the tier does not stay much behind S3-FIFO where the
//! model predicts badly. Not with a registered plan, whose objects' scores are exact.
//!
//! A training job may register its access plan ([`Engine::register_plan`]): the exact order
//! in which it will read objects. Planned objects then get their true time to next access
//! instead of a prediction, which makes the engine Belady-like for that job.

use crate::gbdt::{Model, Params};
use crate::policy::Policy;
use crate::sampled::{Rng, Sampled};
use crate::sieve::S3Fifo;
use crate::trace::Request;
use std::collections::{HashMap, VecDeque};

const NFEAT: usize = 10;
const GAPS: usize = 4;
const HALF_LIVES: [f64; 4] = [512.0, 4096.0, 32768.0, 262_144.0];
/// Residents sampled per eviction.
const SAMPLES: usize = 32;
/// Labelled examples kept for training (the most recent).
const TRAIN_KEEP: usize = 32_768;
/// New labelled examples between retrainings: 4,096 at first (short traces need a model
/// early), doubling after each training up to 65,536 (the cost per request stays small).
const RETRAIN_EVERY: usize = 4_096;
const RETRAIN_MAX: usize = 65_536;
/// Fewest examples for the first model.
const FIRST_TRAIN: usize = 2_048;

/// When the engine trains: the labelled examples its first model needs, and the new labels
/// between retrainings (doubling after each training up to 16 times this). Trace replays use
/// the defaults; a node, which sees far fewer requests than a trace, trains earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Training {
    /// Labelled examples before the first model.
    pub first: usize,
    /// New labels between retrainings, at first.
    pub every: usize,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            first: FIRST_TRAIN,
            every: RETRAIN_EVERY,
        }
    }
}
/// Share of accesses that become training examples (features as of the access).
const SAMPLE_RATE: f64 = 0.35;
/// Training examples taken per eviction from the sampled residents (features as of the
/// eviction, when an object has been idle for a while: the situation the model is asked
/// about), as LRB samples its training data.
const EVICTION_EXAMPLES: usize = 1;
const BYPASS: bool = false;
/// Memory window as a multiple of the mean eviction age: labels beyond it are censored.
const WINDOW_X: f64 = 32.0;
/// Learn "not reused before the boundary" (a multiple of the mean eviction age) instead of the
/// censored time to next access.
const CLASSIFY: bool = true;
const BOUNDARY_X: f64 = 4.0;
/// Weight of `ln(1 + age)` added to the predicted probability, so ties go to the older
/// (chosen on the cache2k traces: `docs/placement.md`).
const AGE_WEIGHT: f32 = 0.05;
/// Least share of evictions that take their victim among the sampled residents a shadow
/// S3-FIFO (ids only, same capacity) no longer holds, when the sample has one (chosen on the
/// cache2k traces out of 0, 0.25, 0.5, 0.75 and 1: `docs/placement.md`).
const SHADOW_SHARE: f64 = 0.5;
/// The share rises from [`SHADOW_SHARE`] to 1 as this tier's recent byte misses exceed the
/// shadow's by up to this fraction of the shadow's (chosen on cache2k out of 0.005 to 0.05).
const SHADOW_MARGIN: f64 = 0.005;
/// Half-life, in requests, of the byte-miss counts the share compares.
const MISS_HALF_LIFE: f64 = 8192.0;

#[derive(Debug, Clone, Copy)]
struct Meta {
    last: u64,
    /// `ln(1 + gap)` of the last inter-access gaps, newest first; 0 where there is none yet.
    lgaps: [f32; GAPS],
    edc: [f64; 4],
    /// `ln(1 + size)`.
    lsize: f32,
}

/// Training examples waiting for their label: per object, when it was taken and the features
/// then (one per object at a time), with a queue in taking order for censoring.
#[derive(Debug, Default)]
struct Examples {
    by_id: HashMap<u64, (u64, [f32; NFEAT])>,
    queue: VecDeque<(u64, u64)>,
}

impl Examples {
    fn has(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    fn insert(&mut self, id: u64, now: u64, x: [f32; NFEAT]) {
        self.by_id.insert(id, (now, x));
        self.queue.push_back((now, id));
    }

    /// The pending example of `id`, if any.
    fn take(&mut self, id: u64) -> Option<(u64, [f32; NFEAT])> {
        self.by_id.remove(&id)
    }

    /// The examples taken more than `window` requests before `now` and still unlabelled.
    fn expire(&mut self, now: u64, window: u64) -> Vec<[f32; NFEAT]> {
        let mut out = Vec::new();
        while let Some(&(t0, id)) = self.queue.front() {
            if now - t0 <= window {
                break;
            }
            self.queue.pop_front();
            if self.by_id.get(&id).is_some_and(|&(t, _)| t == t0) {
                if let Some((_, x)) = self.by_id.remove(&id) {
                    out.push(x);
                }
            }
        }
        out
    }
}

/// An access plan position: where each planned object is read next.
#[derive(Debug, Default)]
struct Plan {
    order: Vec<u64>,
    pos: usize,
    next: HashMap<u64, VecDeque<usize>>,
}

/// The engine, usable as a [`Policy`].
pub struct Engine {
    store: Sampled,
    meta: HashMap<u64, Meta>,
    touches: VecDeque<(u64, u64)>,
    now: u64,
    model: Model,
    /// Examples taken at accesses, waiting for their object's next access.
    pending: Examples,
    /// Examples taken at evictions, likewise.
    pending_ev: Examples,
    train_x: VecDeque<[f32; NFEAT]>,
    train_y: VecDeque<f32>,
    new_labels: usize,
    window: u64,
    evict_age: f64,
    rng: Rng,
    plan: Option<Plan>,
    /// S3-FIFO run over the same requests on ids alone: what it would hold.
    shadow: S3Fifo,
    /// Byte misses of this tier and of the shadow, decayed with [`MISS_HALF_LIFE`].
    real_miss: f64,
    shadow_miss: f64,
    /// Per-request decay factor of those counts.
    miss_decay: f64,
    /// Models trained so far.
    pub trainings: u64,
    training: Training,
}

impl Engine {
    /// An empty fast tier of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self::with_seed(cap, 0)
    }

    /// An empty fast tier of `cap` bytes whose random draws (eviction samples, training
    /// examples, the shadow share) come from `seed`; seed 0 is [`Engine::new`]'s.
    pub fn with_seed(cap: u64, seed: u64) -> Self {
        Engine {
            store: Sampled::new(cap),
            meta: HashMap::new(),
            touches: VecDeque::new(),
            now: 0,
            model: Model::default(),
            pending: Examples::default(),
            pending_ev: Examples::default(),
            train_x: VecDeque::new(),
            train_y: VecDeque::new(),
            new_labels: 0,
            window: 1 << 20,
            evict_age: 0.0,
            rng: Rng::new(0xCA1B ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            plan: None,
            shadow: S3Fifo::new(cap),
            real_miss: 0.0,
            shadow_miss: 0.0,
            miss_decay: 0.5f64.powf(1.0 / MISS_HALF_LIFE),
            trainings: 0,
            training: Training::default(),
        }
    }

    /// [`Engine::with_seed`] training on the schedule `training` (at least one example).
    pub fn with_training(cap: u64, seed: u64, training: Training) -> Self {
        let mut e = Self::with_seed(cap, seed);
        e.training = Training {
            first: training.first.max(1),
            every: training.every.max(1),
        };
        e
    }

    /// Whether a model has been trained (until then eviction is least recently used).
    pub fn is_trained(&self) -> bool {
        self.model.is_trained()
    }

    /// The trained model's probability that a tracked object is *not* read again before the
    /// boundary (four times the mean eviction age), as of now; `None` without a model or for
    /// an object with no history. A fast tier admits what this says comes back.
    pub fn no_reuse_odds(&self, id: u64) -> Option<f32> {
        if !self.model.is_trained() || !CLASSIFY {
            return None;
        }
        let m = self.meta.get(&id)?;
        Some(self.model.predict(&self.features(m)).clamp(0.0, 1.0))
    }

    /// Changes the capacity (the fast tier's real space), evicting the engine's choices at
    /// once until the residents fit.
    pub fn set_capacity(&mut self, cap: u64) {
        self.store.cap = cap;
        self.shadow.set_capacity(cap);
        self.evict_for(0, f32::INFINITY);
    }

    /// Registers a job's access plan: the ids it will read, in order (for example an epoch's
    /// seeded shuffle). Replaces an earlier plan.
    pub fn register_plan(&mut self, order: Vec<u64>) {
        let mut next: HashMap<u64, VecDeque<usize>> = HashMap::new();
        for (i, &id) in order.iter().enumerate() {
            next.entry(id).or_default().push_back(i);
        }
        self.plan = Some(Plan {
            order,
            pos: 0,
            next,
        });
    }

    /// Share of evictions that follow the shadow: [`SHADOW_SHARE`] while this tier misses no
    /// more than the shadow lately, rising to 1 as it misses up to [`SHADOW_MARGIN`] more.
    fn share(&self) -> f64 {
        let worse =
            (self.real_miss - self.shadow_miss) / (self.shadow_miss.max(1.0) * SHADOW_MARGIN);
        SHADOW_SHARE + (1.0 - SHADOW_SHARE) * worse.clamp(0.0, 1.0)
    }

    /// Objects whose history is tracked now.
    pub fn tracked(&self) -> usize {
        self.meta.len()
    }

    fn features(&self, m: &Meta) -> [f32; NFEAT] {
        let missing = ((self.window * 4) as f64).ln_1p() as f32;
        let mut f = [0f32; NFEAT];
        f[0] = m.lsize;
        f[1] = ((self.now - m.last) as f64).ln_1p() as f32;
        for i in 0..GAPS {
            f[2 + i] = if m.lgaps[i] == 0.0 {
                missing
            } else {
                m.lgaps[i]
            };
        }
        let dt = (self.now - m.last) as f64;
        for i in 0..4 {
            f[6 + i] = (m.edc[i] * (-dt / HALF_LIVES[i] * std::f64::consts::LN_2).exp()) as f32;
        }
        f
    }

    /// Predicted ln(1 + requests to next access) of a known object.
    fn score(&self, id: u64, m: &Meta) -> f32 {
        if let Some(p) = &self.plan {
            if let Some(q) = p.next.get(&id) {
                if let Some(&j) = q.front() {
                    return ((j.saturating_sub(p.pos)) as f64).ln_1p() as f32;
                }
            }
            // planned job traffic only: an object the plan does not read again is not needed
            if !self.model.is_trained() {
                return f32::INFINITY;
            }
        }
        if self.model.is_trained() {
            if CLASSIFY {
                // probability of no reuse before the boundary, ties broken towards the older
                let x = self.features(m);
                self.model.predict(&x) + AGE_WEIGHT * x[1]
            } else {
                self.model.predict(&self.features(m))
            }
        } else {
            // least recently used first
            ((self.now - m.last) as f64).ln_1p() as f32
        }
    }

    fn label(&mut self, x: [f32; NFEAT], y: f32) {
        self.train_x.push_back(x);
        self.train_y.push_back(y);
        if self.train_x.len() > TRAIN_KEEP {
            self.train_x.pop_front();
            self.train_y.pop_front();
        }
        self.new_labels += 1;
        let due = if self.model.is_trained() {
            let every = self.training.every;
            (every << self.trainings.min(8)).min(every.saturating_mul(RETRAIN_MAX / RETRAIN_EVERY))
        } else {
            self.training.first
        };
        if self.new_labels >= due {
            self.new_labels = 0;
            let flat: Vec<f32> = self.train_x.iter().flatten().copied().collect();
            let ys: Vec<f32> = self.train_y.iter().copied().collect();
            self.model = Model::fit(&flat, NFEAT, &ys, Params::default());
            self.trainings += 1;
        }
    }

    /// Labels pending examples older than the window (censored) and forgets objects not seen
    /// for four windows that are not resident.
    fn expire(&mut self) {
        let censored = if CLASSIFY {
            1.0
        } else {
            ((2 * self.window) as f64).ln_1p() as f32
        };
        let (now, window) = (self.now, self.window);
        let mut expired = self.pending.expire(now, window);
        expired.extend(self.pending_ev.expire(now, window));
        for x in expired {
            self.label(x, censored);
        }
        while let Some(&(t, id)) = self.touches.front() {
            if self.now - t <= 4 * self.window {
                break;
            }
            self.touches.pop_front();
            if self.meta.get(&id).is_some_and(|m| m.last == t) && !self.store.contains(id) {
                self.meta.remove(&id);
            }
        }
    }

    fn touch(&mut self, r: &Request) {
        self.now += 1;
        if let Some(p) = &mut self.plan {
            if p.order.get(p.pos) == Some(&r.id) {
                if let Some(q) = p.next.get_mut(&r.id) {
                    q.pop_front();
                }
                p.pos += 1;
            }
        }
        // pending examples of this object are now labelled
        let taken = [self.pending_ev.take(r.id), self.pending.take(r.id)];
        for (t0, x) in taken.into_iter().flatten() {
            let gap = (self.now - t0) as f64;
            let y = if CLASSIFY {
                f32::from(u8::from(gap > self.evict_age.max(1.0) * BOUNDARY_X))
            } else {
                gap.ln_1p() as f32
            };
            self.label(x, y);
        }
        let now = self.now;
        let m = self.meta.entry(r.id).or_insert(Meta {
            last: now,
            lgaps: [0.0; GAPS],
            edc: [0.0; 4],
            lsize: f64::from(r.size).ln_1p() as f32,
        });
        let m0 = *m;
        let seen_before = m0.last != now || m0.edc[0] > 0.0;
        // features as of just before this access, for a training example
        let x = self.features(&m0);
        if self.rng.unit() < SAMPLE_RATE {
            self.pending.insert(r.id, now, x);
        }
        let Some(m) = self.meta.get_mut(&r.id) else {
            return;
        };
        if seen_before {
            let gap = now - m0.last;
            m.lgaps.rotate_right(1);
            m.lgaps[0] = (gap as f64).ln_1p() as f32;
            let dt = gap as f64;
            for (e, h) in m.edc.iter_mut().zip(HALF_LIVES) {
                *e *= (-dt / h * std::f64::consts::LN_2).exp();
            }
        }
        for e in &mut m.edc {
            *e += 1.0;
        }
        m.last = now;
        m.lsize = f64::from(r.size).ln_1p() as f32;
        self.touches.push_back((now, r.id));
        if self.now.is_multiple_of(1024) {
            self.expire();
        }
    }

    /// Evicts until `size` more bytes fit; false if the newcomer (scored `newcomer`) should
    /// bypass the tier instead (never while `BYPASS` is off).
    fn evict_for(&mut self, size: u32, newcomer: f32) -> bool {
        let mut first = true;
        let mut ids = [0u64; SAMPLES];
        let mut xs = [[0f32; NFEAT]; SAMPLES];
        let mut scores = [0f32; SAMPLES];
        while !self.store.fits(size) {
            // a resident with no history is evicted at once
            let mut untracked = None;
            let mut n = 0;
            let mut taken = 0;
            // with a trained model and no plan, the sample is scored at once below
            let batch = CLASSIFY && self.model.is_trained() && self.plan.is_none();
            for _ in 0..SAMPLES {
                let Some((id, _)) = self.store.sample(&mut self.rng) else {
                    break;
                };
                let Some(m) = self.meta.get(&id) else {
                    untracked = Some(id);
                    break;
                };
                // the first sampled residents (a uniform draw) become examples, unless
                // one is pending for them already
                if taken < EVICTION_EXAMPLES {
                    taken += 1;
                    if !self.pending_ev.has(id) {
                        let x = self.features(m);
                        self.pending_ev.insert(id, self.now, x);
                    }
                }
                if batch {
                    xs[n] = self.features(m);
                } else {
                    scores[n] = self.score(id, m);
                }
                ids[n] = id;
                n += 1;
            }
            if batch {
                // the model's probability of no reuse before the boundary, ties broken
                // towards the older (as `score`, for the whole sample at once)
                self.model.predict_rows(&xs[..n], &mut scores);
                for (s, x) in scores.iter_mut().zip(&xs[..n]) {
                    *s += AGE_WEIGHT * x[1];
                }
            }
            let mut victim: Option<(f32, u64)> = None;
            // the same among the residents the shadow S3-FIFO has dropped
            let mut dropped: Option<(f32, u64)> = None;
            for (&s, &id) in scores[..n].iter().zip(&ids[..n]) {
                if victim.is_none_or(|(v, _)| s > v) {
                    victim = Some((s, id));
                }
                if !self.shadow.contains(id) && dropped.is_none_or(|(v, _)| s > v) {
                    dropped = Some((s, id));
                }
            }
            if let Some(id) = untracked {
                victim = Some((f32::INFINITY, id));
            }
            let Some((vs, mut vid)) = victim else { break };
            // a share of the time, follow what S3-FIFO dropped (not with a plan: the
            // plan's objects have exact scores)
            if let Some((_, d)) = dropped {
                if d != vid && self.plan.is_none() && self.rng.unit() < self.share() {
                    vid = d;
                }
            }
            // bypass: the newcomer would be the first to go
            if BYPASS && first && (self.model.is_trained() || self.plan.is_some()) && newcomer >= vs
            {
                return false;
            }
            first = false;
            if let Some(m) = self.meta.get(&vid) {
                let age = (self.now - m.last) as f64;
                self.evict_age = if self.evict_age == 0.0 {
                    age
                } else {
                    0.99 * self.evict_age + 0.01 * age
                };
                self.window = ((WINDOW_X * self.evict_age) as u64).clamp(1024, 1 << 24);
            }
            self.store.remove(vid);
        }
        true
    }
}

impl Policy for Engine {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn access(&mut self, r: &Request) -> bool {
        let hit = self.store.contains(r.id);
        self.touch(r);
        let shadow_hit = self.shadow.access(r);
        let decay = self.miss_decay;
        let size = f64::from(r.size);
        self.real_miss = self.real_miss * decay + if hit { 0.0 } else { size };
        self.shadow_miss = self.shadow_miss * decay + if shadow_hit { 0.0 } else { size };
        if hit {
            return true;
        }
        if u64::from(r.size) > self.store.cap {
            return false;
        }
        if !self.store.fits(r.size) {
            // its history now includes this access: the prediction is from now on
            let newcomer = match self.meta.get(&r.id) {
                Some(m) if BYPASS => self.score(r.id, m),
                _ => f32::INFINITY,
            };
            if !self.evict_for(r.size, newcomer) {
                return false;
            }
        }
        self.store.insert(r.id, r.size);
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.store.contains(id)
    }

    fn used(&self) -> u64 {
        self.store.used
    }

    fn capacity(&self) -> u64 {
        self.store.cap
    }

    fn footprint(&self) -> Option<(u64, u64)> {
        use crate::sampled::map_bytes;
        let example = std::mem::size_of::<(u64, [f32; NFEAT])>();
        let pending = |e: &Examples| {
            map_bytes::<u64, (u64, [f32; NFEAT])>(e.by_id.capacity()) + e.queue.capacity() * 16
        };
        let plan = self.plan.as_ref().map_or(0, |p| {
            p.order.capacity() * 8
                + p.next.values().map(|q| q.capacity() * 8).sum::<usize>()
                + map_bytes::<u64, VecDeque<usize>>(p.next.capacity())
        });
        let bytes = map_bytes::<u64, Meta>(self.meta.capacity())
            + self.touches.capacity() * 16
            + pending(&self.pending)
            + pending(&self.pending_ev)
            + self.train_x.capacity() * (example - 8)
            + self.train_y.capacity() * 4
            + self.model.heap_bytes()
            + self.store.heap_bytes()
            + self.shadow.heap_bytes()
            + plan;
        Some((self.meta.len() as u64, bytes as u64))
    }
}

#[cfg(test)]
mod tests;
