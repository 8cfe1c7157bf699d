//! Seal checks in a network (issue 18, item 2): a prover's designated auditor asks it to prove
//! a committed sector's sealing again over challenges seeded by the auditor's fresh nonce. An
//! honest prover passes from its stored replica; one that lost the replica fails, and every
//! node drops that sector and refuses its record again. Forged check records (a pass over a bad
//! answer, a fail over a good one, a fail without the prover's signed answer, a check by a peer
//! that is not designated, junk) are refused and change nothing. The log re-verifies every
//! check.

use ark_bn254::Fr;
use cairn_core::testgen::Gen;
use cairn_net::{Keypair, NetConfig, PeerId};
use cairn_proofs::audit::{verify_log, Role, SealCheck, Verdict};
use cairn_repo::store::{Batch, Durability, Table};
use cairn_repo::Repo;
use cairn_storage_node::node::Node;
use cairn_storage_node::proving::{CHECK_TOPIC, SECTOR_TOPIC};

mod common;
use common::{keys_dir, opts, params};

/// Node `i`'s key: fixed, so the test can sign as a node (a dishonest auditor).
fn key(i: usize) -> Keypair {
    Keypair::ed25519_from_bytes([70 + i as u8; 32]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_checks_pass_from_replicas_fail_when_lost_and_forged_ones_are_refused() {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..4 {
        let node = Node::start(Repo::in_memory(), key(i), NetConfig::default(), opts(true))
            .await
            .unwrap();
        for other in &nodes {
            let addr = other.net().listen_addrs().await.unwrap()[0].clone();
            node.net().dial(addr).await.unwrap();
        }
        nodes.push(node);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, Gen::bytes(18, 40 << 10)).unwrap();
    assert!(nodes[0].put(&path).await.unwrap().distributed);
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    // every node learns every prover's records before the checks
    for a in &nodes {
        for b in &nodes {
            if a.peer_id() != b.peer_id() {
                a.refresh_sectors(b.peer_id()).await;
            }
        }
    }
    let provers: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.proof_status().unwrap().sectors > 0)
        .collect();
    assert!(provers.len() >= 2, "too few nodes sealed a sector");
    let by_id = |id: PeerId| nodes.iter().position(|n| n.peer_id() == id).unwrap();
    let victim = provers[0];
    let honest = provers[1];

    // an honest prover passes its primary auditor's check, answered from the stored replica
    let (primary, _) = nodes[0].auditors_of(honest.peer_id()).unwrap();
    let auditor = &nodes[by_id(primary)];
    let good = auditor
        .check_once_for(honest.peer_id())
        .await
        .unwrap()
        .expect("the honest prover has an unchecked sector");
    assert_eq!(good.verdict, Verdict::Pass, "{good:?}");
    assert_eq!(good.role, Role::Primary);
    assert_eq!(auditor.proof_status().unwrap().checks_pass, 1);
    // the prover hears of it (gossip, or handed over here: the same check either way)
    let _ = honest
        .accept_gossip(primary, CHECK_TOPIC, good.encode())
        .await;
    let st = honest.proof_status().unwrap();
    assert!(st.sectors_checked >= 1, "{st:?}");
    assert_eq!(
        st.sectors_checked + st.sectors_unchecked,
        st.sectors,
        "{st:?}"
    );

    // forged records, each signed by the designated auditor itself, are refused everywhere
    let receiver = nodes
        .iter()
        .find(|n| n.peer_id() != primary && n.peer_id() != honest.peer_id())
        .unwrap();
    let signer = key(by_id(primary));
    let signed = |mut c: SealCheck| {
        c.signature = signer.sign(&c.signed_bytes()).unwrap();
        c.encode()
    };
    let mut bad_label = good.clone();
    bad_label.revealed[0] += Fr::from(1u64);
    let mut lie_fail = good.clone();
    lie_fail.verdict = Verdict::Fail;
    let mut unsigned_fail = bad_label.clone();
    unsigned_fail.verdict = Verdict::Fail;
    let mut manual = good.clone();
    manual.role = Role::Manual;
    let mut not_designated = good.clone();
    not_designated.role = Role::Confirmer;
    let mut other_nonce = good.clone();
    other_nonce.nonce[0] ^= 1;
    let mut bad_sig = good.encode();
    let at = bad_sig.len() - 3;
    bad_sig[at] ^= 1;
    for (bytes, why) in [
        (signed(bad_label), "does not verify"),
        (signed(other_nonce), "does not verify"),
        (signed(lie_fail), "answer verifies"),
        (signed(unsigned_fail), "signed answer"),
        (signed(manual), "not a designated auditor"),
        (
            signed(not_designated),
            "not the prover's designated auditor",
        ),
        (bad_sig, "signature invalid"),
        (vec![1, 2, 3], "record"),
    ] {
        let e = receiver
            .accept_gossip(primary, CHECK_TOPIC, bytes)
            .await
            .expect_err(why);
        assert!(e.contains(why), "{why}: {e}");
    }

    // a prover that lost its replicas fails: it signs that the sector is not held, and every
    // node drops the sector and refuses its record from then on
    let store = victim.repo().store();
    let mut b = Batch::new();
    for (k, _) in store.table_scan(Table::Replicas).unwrap() {
        b.delete(Table::Replicas, k);
    }
    store.write(b, Durability::Sync).unwrap();
    let (primary, _) = nodes[0].auditors_of(victim.peer_id()).unwrap();
    let auditor = &nodes[by_id(primary)];
    let failed = auditor
        .check_once_for(victim.peer_id())
        .await
        .unwrap()
        .expect("the victim has an unchecked sector");
    assert_eq!(failed.verdict, Verdict::Fail, "{failed:?}");
    assert!(failed.reason.contains("not held"), "{}", failed.reason);
    let records = {
        let req = cairn_proofs::audit::AuditRequest::Sectors { from: 0 };
        match auditor
            .net()
            .ctrl(
                victim.peer_id(),
                cairn_net::wire::CtrlRequest::App(req.encode()),
            )
            .await
            .unwrap()
        {
            cairn_net::wire::CtrlResponse::App(b) => {
                match cairn_proofs::audit::AuditResponse::decode(&b).unwrap() {
                    cairn_proofs::audit::AuditResponse::Sectors(v) => v,
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    };
    let dropped = records
        .iter()
        .find(|r| r.sector == failed.sector)
        .expect("the victim still lists its record");
    for n in nodes.iter().filter(|n| n.peer_id() != victim.peer_id()) {
        if n.peer_id() != primary {
            // by gossip, or handed over here
            let _ = n.accept_gossip(primary, CHECK_TOPIC, failed.encode()).await;
        }
        let e = n
            .accept_gossip(victim.peer_id(), SECTOR_TOPIC, dropped.encode())
            .await
            .expect_err("a sector that failed its check came back");
        assert!(e.contains("failed its seal check"), "{e}");
    }
    // the auditor checks the victim's next sector, not the dropped one again
    if let Some(next) = auditor.check_once_for(victim.peer_id()).await.unwrap() {
        assert_ne!(next.sector, failed.sector);
    }

    // the auditor's log re-verifies every check against the sector records
    let log = auditor.audit_log(0).await.unwrap();
    let report = verify_log(
        &log,
        &params(),
        &params().seal_keys(&keys_dir()).unwrap(),
        &params().post_keys(&keys_dir()).unwrap(),
        &cairn_net::identity::verify_signature,
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.checks_failed >= 1, "{report:?}");
    // a check whose answer was changed in the log is caught
    let mut bad = log.clone();
    let i = bad
        .iter()
        .position(|e| e.kind == cairn_proofs::audit::EntryKind::Check)
        .unwrap();
    let mut c = SealCheck::decode(&bad[i].body).unwrap();
    c.reason.push('!');
    bad[i].body = c.encode();
    assert!(!verify_log(
        &bad,
        &params(),
        &params().seal_keys(&keys_dir()).unwrap(),
        &params().post_keys(&keys_dir()).unwrap(),
        &cairn_net::identity::verify_signature,
    )
    .problems
    .is_empty());
    for n in &nodes {
        n.shutdown().await;
    }
}
