//! Proofs of storage in a network, in one process on port 0: nodes seal what they store, audit
//! each other window by window, log signed verdicts in a hash-chained log that re-verifies, and
//! a node that lost its sealed data fails its next window, is marked faulty and is repaired
//! around.

use cairn_core::testgen::Gen;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::{Keypair, NetConfig};
use cairn_proofs::audit::{verify_log, AuditRequest, AuditResponse, EntryKind, LogEntry, Verdict};
use cairn_repo::store::{Batch, Durability, Table};
use cairn_repo::Repo;
use cairn_storage_node::node::Node;
use std::time::Duration;

mod common;
use common::{keys_dir, opts, params};

async fn network(n: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(
            Node::start(
                Repo::in_memory(),
                Keypair::generate_ed25519(),
                NetConfig::default(),
                opts(true),
            )
            .await
            .unwrap(),
        );
    }
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            let addr = b.net().listen_addrs().await.unwrap()[0].clone();
            a.net().dial(addr).await.unwrap();
        }
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_pass_log_verifies_and_lost_data_fails_then_repairs() {
    let nodes = network(5).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, Gen::bytes(5, 24 << 10)).unwrap();
    let rep = nodes[0].put(&path).await.unwrap();
    assert!(rep.distributed);
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    let holders: Vec<String> = rep.placement[0]
        .iter()
        .map(|s| s.holders[0].clone())
        .collect();

    // one window: each node audits its peer in the ring; every holder of data passes
    let mut audited = Vec::new();
    for n in &nodes {
        if let Some(a) = n.audit_once().await.unwrap() {
            assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
            audited.push(
                cairn_net::PeerId::from_bytes(&a.prover)
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert!(!audited.is_empty());
    for h in &holders {
        let status = nodes
            .iter()
            .find(|n| n.peer_id().to_string() == *h)
            .unwrap()
            .proof_status()
            .unwrap();
        assert!(status.sectors > 0, "holder {h} sealed nothing");
    }

    // a peer that asks for more window proofs than an auditor needs is refused: at most 4 per
    // window for the prover's designated auditors (and members of the ring), 2 for a stranger,
    // so nobody can keep a prover busy
    let prover = nodes
        .iter()
        .find(|n| n.peer_id().to_string() == holders[0])
        .unwrap();
    let (primary, _) = prover.auditors_of(prover.peer_id()).unwrap();
    // a designated auditor counts as one only for the window it is designated in
    let window = prover.proof_status().unwrap().window;
    // a peer with no sealed sector: a stranger to the ring
    let (stranger, _events) = cairn_net::start(
        Keypair::generate_ed25519(),
        NetConfig {
            server: false,
            ..NetConfig::default()
        },
        std::sync::Arc::new(cairn_net::NoService),
    )
    .await
    .unwrap();
    stranger
        .dial(prover.net().listen_addrs().await.unwrap()[0].clone())
        .await
        .unwrap();
    for (asker, limit, text) in [
        (
            nodes
                .iter()
                .find(|n| n.peer_id() == primary)
                .unwrap()
                .net()
                .clone(),
            4,
            "at most 4 window proofs per peer",
        ),
        (stranger.clone(), 2, "not this window's auditor"),
    ] {
        let ask = |req: AuditRequest| {
            let net = asker.clone();
            let to = prover.peer_id();
            async move {
                match net.ctrl(to, CtrlRequest::App(req.encode())).await.unwrap() {
                    CtrlResponse::App(b) => Ok(AuditResponse::decode(&b).unwrap()),
                    CtrlResponse::Error(e) => Err(e),
                    other => panic!("{other:?}"),
                }
            }
        };
        let Ok(AuditResponse::Sectors(records)) = ask(AuditRequest::Sectors { from: 0 }).await
        else {
            panic!("no sector list");
        };
        let sectors: Vec<u64> = records.iter().map(|r| r.sector).cycle().take(2).collect();
        let mut refused = None;
        for i in 0..6 {
            let r = ask(AuditRequest::Prove {
                window,
                nonce: [i as u8; 32],
                sectors: sectors.clone(),
                open: Vec::new(),
            })
            .await;
            match r {
                Ok(AuditResponse::Proof { .. }) => {}
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = refused.expect("six window proofs in a row were all served");
        assert!(i <= limit, "refused only after {i} proofs");
        assert!(e.contains(text), "{e}");
    }

    // the log re-verifies end to end: chain, signatures, seal proofs, window proofs
    let log = nodes[0].audit_log(0).await.unwrap();
    let seal_keys = params().seal_keys(&keys_dir()).unwrap();
    let post_keys = params().post_keys(&keys_dir()).unwrap();
    let verify = |log: &[LogEntry]| {
        verify_log(
            log,
            &params(),
            &seal_keys,
            &post_keys,
            &cairn_net::identity::verify_signature,
        )
    };
    let report = verify(&log);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.sectors > 0 && report.passes > 0, "{report:?}");
    // a tampered entry breaks the chain
    let mut bad = log.clone();
    if let Some(e) = bad.first_mut() {
        e.body[5] ^= 1;
    }
    let r = verify(&bad);
    assert!(!r.problems.is_empty());
    // a compacted log verifies: the oldest entries (through the first audit) dropped, their
    // sector records appended again at the head; it starts above 0, anchored on its first
    // entry's `prev`
    let k = log.iter().position(|e| e.kind == EntryKind::Audit).unwrap() + 1;
    let mut compacted = log[k..].to_vec();
    let (mut seq, mut prev) = match compacted.last() {
        Some(e) => (e.seq + 1, e.hash()),
        None => (log[k - 1].seq + 1, log[k - 1].hash()),
    };
    for e in log[..k].iter().filter(|e| e.kind == EntryKind::Sector) {
        let again = LogEntry {
            seq,
            prev,
            kind: e.kind,
            body: e.body.clone(),
        };
        (seq, prev) = (seq + 1, again.hash());
        compacted.push(again);
    }
    let r = verify(&compacted);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.first, k as u64);
    // but a log that starts at 0 must start from nothing
    let mut forged = log.clone();
    forged[0].prev = [1; 32];
    let r = verify(&forged);
    assert!(!r.problems.is_empty());

    // a holder loses its sealed data: its next audit fails and it becomes faulty
    let victim = nodes
        .iter()
        .find(|n| n.peer_id().to_string() == holders[1])
        .unwrap()
        .clone();
    let store = victim.repo().store();
    let mut b = Batch::new();
    for (k, _) in store.table_scan(Table::Replicas).unwrap() {
        b.delete(Table::Replicas, k);
    }
    store.write(b, Durability::Sync).unwrap();
    // only the window's designated auditor's verdict counts
    let (primary, _) = nodes[0].auditors_of(victim.peer_id()).unwrap();
    let auditor = nodes
        .iter()
        .find(|n| n.peer_id() == primary)
        .unwrap()
        .clone();
    let mut changes = auditor.faulty_changes().unwrap();
    let _ = changes.borrow_and_update();
    let a = auditor
        .audit_once_for(victim.peer_id())
        .await
        .unwrap()
        .expect("the victim has committed sectors");
    assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
    assert!(a.reason.contains("not held"), "{}", a.reason);
    changes.changed().await.unwrap();
    assert!(auditor.faulty_peers().contains(&victim.peer_id()));
    // repair no longer counts the victim's shards: every node learns the verdict by gossip,
    // and the stripe is rebuilt on the spare node (a round may already have run in the
    // background, triggered by the verdict; rounds are serialised, so after these every shard
    // has a live holder again)
    for n in nodes.iter().filter(|n| n.peer_id() != victim.peer_id()) {
        let mut ch = n.faulty_changes().unwrap();
        let _ = ch.borrow_and_update();
        if !n.faulty_peers().contains(&victim.peer_id()) {
            tokio::time::timeout(Duration::from_secs(30), ch.changed())
                .await
                .expect("verdict not gossiped")
                .unwrap();
        }
        assert!(n.faulty_peers().contains(&victim.peer_id()));
        let r = n.repair_round().await.unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
    }
    let root = rep.root.parse().unwrap();
    // asked of a live node that holds part of the dataset (the auditor may hold none of it)
    let mut after = None;
    for n in nodes.iter().filter(|n| n.peer_id() != victim.peer_id()) {
        if let Ok(p) = n.placement(&root).await {
            after = Some(p);
            break;
        }
    }
    let after = after.expect("a live node knows the dataset");
    for s in &after[0] {
        assert!(!s.holders.is_empty(), "shard {} has no live holder", s.cid);
        assert!(!s.holders.contains(&victim.peer_id().to_string()));
    }
    // a prover that is gone misses its window: a signed "missed" verdict by its primary
    // auditor, which alone is not a fault; the window's confirming auditor audits it too on
    // hearing of the miss, misses it as well, and then it is faulty everywhere
    let gone = nodes
        .iter()
        .find(|n| n.peer_id().to_string() == holders[0])
        .unwrap()
        .clone();
    gone.shutdown().await;
    let (primary, confirmer) = nodes[0].auditors_of(gone.peer_id()).unwrap();
    let confirmer = confirmer.expect("five provers have a confirming auditor");
    let other = nodes.iter().find(|n| n.peer_id() == primary).unwrap();
    let mut changes = other.faulty_changes().unwrap();
    let _ = changes.borrow_and_update();
    let a = other
        .audit_once_for(gone.peer_id())
        .await
        .unwrap()
        .expect("the gone node has committed sectors");
    assert_eq!(a.verdict, Verdict::Missed, "{a:?}");
    assert!(a.proof.is_empty());
    assert!(!other.faulty_peers().contains(&gone.peer_id()));
    // the confirmer's own miss arrives by gossip (no sleeps: wait for the change)
    while !other.faulty_peers().contains(&gone.peer_id()) {
        tokio::time::timeout(Duration::from_secs(60), changes.changed())
            .await
            .unwrap_or_else(|_| panic!("confirmer {confirmer} never confirmed the miss"))
            .unwrap();
    }
    for n in &nodes {
        n.shutdown().await;
    }
}
