//! The audit started by hand through the API: one at a time, run in the background so that
//! sealing (which can take as long as the pending data needs) never holds a request open.

use serde_json::Value;
use std::sync::Mutex;
use tokio::sync::watch;

/// What is known of the audit last started by hand.
#[derive(Clone, Debug)]
pub(super) struct AuditJob {
    /// The peer asked for (`None`: this window's peer).
    pub(super) peer: Option<String>,
    /// Unix seconds when it started.
    pub(super) started_at: u64,
    /// Its outcome once done: `{"sealed", "audit"}`, or `{"error"}`.
    pub(super) outcome: watch::Receiver<Option<Value>>,
}

impl AuditJob {
    /// Its outcome, once done. A task that ended without reporting one (it panicked) is done
    /// with an error, so it cannot block the next audit.
    pub(super) fn outcome(&self) -> Option<Value> {
        let outcome = self.outcome.borrow().clone();
        match outcome {
            Some(v) => Some(v),
            None if self.outcome.has_changed().is_err() => Some(serde_json::json!({
                "error": "the audit task ended without an outcome",
            })),
            None => None,
        }
    }

    /// The job as JSON: `running`, `peer`, `started_at`, and the outcome's fields once done.
    pub(super) fn to_json(&self) -> Value {
        let outcome = self.outcome();
        let mut v = serde_json::json!({
            "running": outcome.is_none(),
            "done": outcome.is_some(),
            "peer": self.peer,
            "started_at": self.started_at,
        });
        if let (Some(Value::Object(o)), Some(m)) = (outcome, v.as_object_mut()) {
            m.extend(o);
        }
        v
    }
}

/// The audit last started by hand.
#[derive(Default)]
pub(super) struct AuditJobs {
    last: Mutex<Option<AuditJob>>,
}

impl AuditJobs {
    /// The audit last started, if any.
    pub(super) fn last(&self) -> Option<AuditJob> {
        self.last.lock().ok().and_then(|g| g.clone())
    }

    /// Registers a new job unless one is running: `Ok` with the sender its task reports to,
    /// or `Err` with the running job.
    pub(super) fn begin(
        &self,
        peer: Option<String>,
        now: u64,
    ) -> Result<(AuditJob, watch::Sender<Option<Value>>), AuditJob> {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(j) = last.as_ref() {
            if j.outcome().is_none() {
                return Err(j.clone());
            }
        }
        let (tx, rx) = watch::channel(None);
        let job = AuditJob {
            peer,
            started_at: now,
            outcome: rx,
        };
        *last = Some(job.clone());
        Ok((job, tx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audit_at_a_time_and_its_outcome_is_kept() {
        let jobs = AuditJobs::default();
        assert!(jobs.last().is_none());
        let (job, tx) = jobs.begin(Some("p".into()), 7).unwrap();
        assert_eq!(job.to_json()["running"], true);
        let busy = jobs.begin(None, 8).err().unwrap();
        assert_eq!(
            busy.started_at, 7,
            "a second start while one runs is refused"
        );
        tx.send_replace(Some(serde_json::json!({"sealed": 3, "audit": null})));
        let v = jobs.last().unwrap().to_json();
        assert_eq!(
            (v["running"].clone(), v["done"].clone(), v["sealed"].clone()),
            (false.into(), true.into(), 3.into())
        );
        let (next, _tx) = jobs.begin(None, 9).unwrap();
        assert_eq!(
            next.started_at, 9,
            "a finished audit makes room for the next"
        );
        // a task that died without reporting does not wedge the next audit
        drop(_tx);
        let v = jobs.last().unwrap().to_json();
        assert_eq!(v["running"], false);
        assert!(v["error"].as_str().unwrap().contains("without an outcome"));
        assert!(jobs.begin(None, 10).is_ok());
    }
}
