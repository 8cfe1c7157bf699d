//! Audit-record decoding never panics on any bytes, and whatever decodes re-encodes to the
//! same bytes: sector records, signed audit records, sector retirements, seal checks, audit-log entries, and the audit
//! request/response messages nodes exchange (`cairn_proofs::audit`).
#![no_main]
use cairn_proofs::audit::{
    AuditRecord, AuditRequest, AuditResponse, LogEntry, Retirement, SealCheck, SectorRecord,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SectorRecord::decode(data) {
        assert_eq!(r.encode(), data);
        let _ = r.replica_id();
    }
    if let Ok(a) = AuditRecord::decode(data) {
        assert_eq!(a.encode(), data);
    }
    if let Ok(r) = Retirement::decode(data) {
        assert_eq!(r.encode(), data);
        let _ = r.signed_bytes();
    }
    if let Ok(c) = SealCheck::decode(data) {
        assert_eq!(c.encode(), data);
        let _ = c.answer_message();
    }
    if let Ok(e) = LogEntry::decode(data) {
        assert_eq!(e.encode(), data);
        let _ = e.hash();
    }
    if let Ok(r) = AuditRequest::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(r) = AuditResponse::decode(data) {
        assert_eq!(r.encode(), data);
    }
    let _ = cairn_proofs::audit::decode_proof(data);
});
