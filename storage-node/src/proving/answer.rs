//! The prover's side of an audit: answering window proof requests (signed proofs and
//! refusals), with admission per asker so that a crowd cannot keep the designated auditors out.

use super::*;

impl Ledger {
    /// Answers an auditor (runs on the blocking pool). `sign` signs with this node's key: a
    /// window proof, and a refusal to prove a committed sector it no longer holds for a window
    /// that is now, are signed ([`audit::answer_message`]), so they are evidence an auditor can
    /// show; load shedding, read errors and malformed requests are unsigned errors (at most a
    /// miss).
    pub(crate) fn answer(
        &self,
        from: PeerId,
        msg: &[u8],
        sign: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        match AuditRequest::decode(msg).map_err(|e| e.to_string())? {
            AuditRequest::Sectors { from: first } => self
                .own_records(first)
                .map(|v| AuditResponse::Sectors(v).encode())
                .map_err(|e| e.to_string()),
            AuditRequest::Check {
                window,
                nonce,
                sector,
            } => self.answer_check(from, (window, nonce, sector), sign),
            AuditRequest::Prove {
                window,
                nonce,
                sectors,
                open,
            } => {
                if sectors.len() != self.opts.params.batch {
                    return Err(format!(
                        "a proof covers {} sectors, not {}",
                        self.opts.params.batch,
                        sectors.len()
                    ));
                }
                let auditor = from.to_bytes();
                // the prover's signature over its answer to this request
                let signed = |answered: audit::Answered<'_>| {
                    sign(&audit::answer_message(
                        &auditor, &self.me, window, &nonce, &sectors, &open, answered,
                    ))
                };
                let refuse = |reason: String| {
                    let reason = schedule::cut(&reason);
                    let signature = signed(audit::Answered {
                        proof: &[],
                        openings: &[],
                        refusal: &reason,
                    });
                    Ok(AuditResponse::Refused { reason, signature }.encode())
                };
                // admitted before any sector is read: the quota also bounds the disk reads
                let designated = self.admit_prove(from, window)?;
                let timely = schedule::window_is_current(window, self.window_now());
                let mut loaded = Vec::new();
                let mut first_record = None;
                for id in &sectors {
                    match self.load_sector(*id) {
                        Ok(Some((r, s))) => {
                            first_record.get_or_insert(r);
                            loaded.push((*id, s))
                        }
                        // the one refusal this node signs (evidence of a lost sector), and only
                        // for a window that is now: nobody collects signed refusals ahead
                        Ok(None) if self.committed(*id) && timely => {
                            return refuse(format!("sector {id} is not held here"))
                        }
                        Ok(None) => return Err(format!("sector {id} was never committed here")),
                        // a read error may pass: not signed, so it is at most a miss
                        Err(e) => return Err(format!("sector {id}: {e}")),
                    }
                }
                let arrived = std::time::Instant::now();
                let deadline = answer_deadline(self.opts.window);
                // designated auditors queue for the prover; anyone else goes only when no
                // designated request waits, so a crowd never delays the audits that count
                use std::sync::atomic::Ordering::SeqCst;
                let _one = if designated {
                    self.designated_waiting.fetch_add(1, SeqCst);
                    let g = self.prove_lock.lock();
                    self.designated_waiting.fetch_sub(1, SeqCst);
                    g.map_err(|_| "prover lock poisoned")?
                } else {
                    loop {
                        if self.designated_waiting.load(SeqCst) == 0 {
                            if let Ok(g) = self.prove_lock.try_lock() {
                                break g;
                            }
                        }
                        if arrived.elapsed() >= deadline {
                            return Err("busy: proving for this window's auditors".into());
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                };
                // the auditor started its clock before this request arrived: once its deadline
                // has passed here it has stopped waiting, so a proof now would only delay the
                // proofs still awaited (load shedding; the auditor has recorded a miss already)
                if arrived.elapsed() >= deadline {
                    tracing::warn!(auditor = %from, window, waited = arrived.elapsed().as_secs_f64(),
                        "window proof skipped: the auditor's deadline passed while earlier proofs ran");
                    return Err(format!(
                        "busy: the {:.0} s deadline passed before this proof could start",
                        deadline.as_secs_f64()
                    ));
                }
                let refs: Vec<(u64, &dyn Openable)> = loaded
                    .iter()
                    .map(|(i, s)| (*i, s as &dyn Openable))
                    .collect();
                let t = std::time::Instant::now();
                let proof = audit::prove_window_with(
                    &self.opts.params,
                    &self.post_keys,
                    &nonce,
                    window,
                    &refs,
                )
                .map_err(|e| e.to_string())?;
                // the leaves asked for, of the first sector (read errors are unsigned)
                let openings = match (open.is_empty(), &first_record, loaded.first()) {
                    (true, _, _) => Vec::new(),
                    (false, Some(r), Some((id, s))) => self
                        .open_sector(*id, r, s, &open)
                        .map_err(|e| format!("opening sector {id}: {e}"))?,
                    _ => return Err("no sector to open".into()),
                };
                tracing::info!(auditor = %from, window, designated, secs = t.elapsed().as_secs_f64(), "window proved");
                if let Ok(mut s) = self.status.lock() {
                    s.proofs_made += 1;
                }
                let signature = signed(audit::Answered {
                    proof: &proof,
                    openings: &openings,
                    refusal: "",
                });
                Ok(AuditResponse::Proof {
                    proof,
                    openings,
                    signature,
                }
                .encode())
            }
        }
    }

    /// Counts a window proof for `from` asking for `window`, or refuses it over its quota.
    /// Returns whether `from` goes first: a window that is now (previous, current or next, for
    /// clocks that differ a little) asked by a designated auditor of this node for it, or by
    /// any member of the ring (a peer whose sealed sector this node verified). Members go first
    /// too because rings can differ between nodes while sector records spread: an attacker
    /// that shows this node one more member cannot turn the real auditors into strangers who
    /// share the small pool of [`PROOFS_FOR_OTHERS_PER_WINDOW`].
    fn admit_prove(&self, from: PeerId, window: u64) -> Result<bool, String> {
        let now = self.window_now();
        let me = PeerId::from_bytes(&self.me).map_err(|_| "own peer id unreadable")?;
        let ring = self.ring();
        let designated = schedule::window_is_current(window, now)
            && (ring.contains(&from) || schedule::role_of(from, me, &ring, window) != Role::Manual);
        let mut s = self.served.lock().map_err(|_| "rate limiter poisoned")?;
        s.admit(now, from, designated)?;
        Ok(designated)
    }

    /// Whether this node committed to sector `id` (it has a verified record of it).
    pub(super) fn committed(&self, id: u64) -> bool {
        self.registry
            .lock()
            .map(|r| r.get(&self.me).is_some_and(|m| m.contains_key(&id)))
            .unwrap_or(false)
    }
}
