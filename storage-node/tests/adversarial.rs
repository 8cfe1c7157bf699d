//! Attacks on a running network, in one process on port 0 (docs/threat-model.md). Each test
//! has one or more nodes run deliberately dishonest code (forged records signed with their own
//! keys, floods of requests) and shows the attack fails: honest nodes are not marked faulty,
//! designated audits still get through, and what honest nodes know (faults, manifest records)
//! survives restarts.
//!
//! Attacks tested elsewhere: junk pushes off assignment and Sybils filling a disk or a cache
//! (`tests/admission.rs`), stray blocks and a forged manifest record under another root
//! (`tests/network.rs`), duplicate-name and symlink DAGs (`client-cli/tests/cli.rs`),
//! a proof that does not verify and a prover that lost its data (`tests/audit.rs`), shards
//! kept unsealed and a sector sealed from other bytes than it lists (`tests/assignment.rs`).

use cairn_core::testgen::Gen;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::{Keypair, NetConfig, PeerId};
use cairn_proofs::audit::{AuditRecord, AuditRequest, AuditResponse, Role, Verdict};
use cairn_repo::store::{Batch, Durability, Table};
use cairn_repo::Repo;
use cairn_storage_node::node::{Node, NodeOptions, PutReport};
use cairn_storage_node::proving::AUDIT_TOPIC;
use std::path::Path;

mod common;
use common::{client_for, opts, params};

/// Starts a node on `repo` and dials `peers`.
async fn start(repo: Repo, key: Keypair, opts: NodeOptions, peers: &[Node]) -> Node {
    let n = Node::start(repo, key, NetConfig::default(), opts)
        .await
        .unwrap();
    for p in peers {
        let addr = p.net().listen_addrs().await.unwrap()[0].clone();
        n.net().dial(addr).await.unwrap();
    }
    n
}

/// Nodes (proofs on when `proofs`) on repos in `dir` (kept for restarts) with keys `keys`.
async fn network(dir: &Path, keys: &[Keypair], proofs: bool) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let repo = Repo::open(&dir.join(format!("node-{i}"))).unwrap();
        let n = start(repo, k.clone(), opts(proofs), &nodes).await;
        nodes.push(n);
    }
    nodes
}

/// Puts `len` seeded bytes (`seed`) through `node` as a file in `dir`, spread over the
/// network; the report and the bytes.
async fn put_seeded(node: &Node, dir: &Path, seed: u64, len: usize) -> (PutReport, Vec<u8>) {
    let path = dir.join(format!("data-{seed}.bin"));
    let data = Gen::bytes(seed, len);
    std::fs::write(&path, &data).unwrap();
    let rep = node.put(&path).await.unwrap();
    assert!(rep.distributed);
    (rep, data)
}

/// A network whose holders have sealed a dataset and audited each other once (so every node
/// knows every prover's sectors: the ring of the audit schedule).
async fn sealed_network(dir: &Path, n: usize) -> (Vec<Node>, Vec<Keypair>) {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let nodes = network(dir, &keys, true).await;
    put_seeded(&nodes[0], dir, 5, 40 << 10).await;
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    for n in &nodes {
        if let Some(a) = n.audit_once().await.unwrap() {
            assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
        }
    }
    (nodes, keys)
}

/// A node that holds sealed data and is a prover in `nodes[0]`'s ring, other than `nodes[0]`.
fn holder(nodes: &[Node]) -> &Node {
    nodes[1..]
        .iter()
        .find(|n| {
            n.proof_status().unwrap().sectors > 0 && nodes[0].auditors_of(n.peer_id()).is_some()
        })
        .expect("a prover")
}

fn find(nodes: &[Node], id: PeerId) -> &Node {
    nodes.iter().find(|n| n.peer_id() == id).unwrap()
}

/// A node that is neither `prover` nor one of `not`.
fn other<'a>(nodes: &'a [Node], prover: PeerId, not: &[PeerId]) -> &'a Node {
    nodes
        .iter()
        .find(|n| n.peer_id() != prover && !not.contains(&n.peer_id()))
        .unwrap()
}

/// An audit record of `prover` signed by `auditor` (whatever it claims).
fn forged(
    auditor: &Node,
    prover: &Node,
    window: u64,
    verdict: Verdict,
    role: Role,
    answer_sig: Vec<u8>,
) -> AuditRecord {
    let sectors = prover.proof_status().unwrap().sectors;
    assert!(sectors > 0);
    let mut a = AuditRecord {
        auditor: auditor.peer_id().to_bytes(),
        prover: prover.peer_id().to_bytes(),
        window,
        nonce: [7; 32],
        sectors: Vec::new(),
        open: Vec::new(),
        piece: 0,
        openings: Vec::new(),
        verdict,
        role,
        proof: Vec::new(),
        reason: "sector 0 is not held here".into(),
        answer_sig,
        signature: Vec::new(),
    };
    // the audited sectors and their commitments, as the prover itself lists them
    let recs = futures_sectors(auditor, prover);
    a.sectors = recs;
    a.signature = auditor.net().sign(&a.signed_bytes());
    a
}

fn futures_sectors(auditor: &Node, prover: &Node) -> Vec<(u64, ark_bn254::Fr)> {
    let net = auditor.net().clone();
    let to = prover.peer_id();
    let resp = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(net.ctrl(
            to,
            CtrlRequest::App(AuditRequest::Sectors { from: 0 }.encode()),
        ))
    })
    .unwrap();
    let CtrlResponse::App(b) = resp else {
        panic!("{resp:?}")
    };
    let AuditResponse::Sectors(recs) = AuditResponse::decode(&b).unwrap() else {
        panic!("no sector list")
    };
    recs.iter()
        .cycle()
        .take(params().batch)
        .map(|r| (r.sector, r.comm_r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unconfirmed_verdicts_do_not_make_an_honest_node_faulty() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = sealed_network(dir.path(), 5).await;
    let victim = holder(&nodes);
    let window = victim.proof_status().unwrap().window;
    let (primary, confirmer) = nodes[0].auditors_of(victim.peer_id()).unwrap();
    let confirmer = confirmer.expect("five provers have a confirming auditor");
    let primary = find(&nodes, primary);
    // the attacker: a member that is not one of the victim's auditors this window
    let attacker = other(&nodes, victim.peer_id(), &[primary.peer_id(), confirmer]);
    // the receiver: an honest node that is neither the victim, the attacker, nor the
    // confirmer (which would audit the victim itself on a primary's miss)
    let receiver = other(
        &nodes,
        victim.peer_id(),
        &[attacker.peer_id(), confirmer, primary.peer_id()],
    );
    // (who sends, the record, why it must be refused)
    let cases: Vec<(&Node, AuditRecord, &str)> = vec![
        (
            attacker,
            forged(
                attacker,
                victim,
                window,
                Verdict::Missed,
                Role::Primary,
                vec![],
            ),
            "not the prover's designated auditor",
        ),
        (
            attacker,
            forged(
                attacker,
                victim,
                window,
                Verdict::Missed,
                Role::Confirmer,
                vec![],
            ),
            "not the prover's designated auditor",
        ),
        (
            attacker,
            forged(
                attacker,
                victim,
                window,
                Verdict::Fail,
                Role::Manual,
                vec![1; 64],
            ),
            "not a designated auditor",
        ),
        // the designated primary itself turns dishonest: a fail must carry the prover's
        // own signed answer, and a made-up one does not verify
        (
            primary,
            forged(
                primary,
                victim,
                window,
                Verdict::Fail,
                Role::Primary,
                vec![1; 64],
            ),
            "signed answer",
        ),
        // a signature of the auditor's own in place of the prover's
        (
            primary,
            {
                let mut a = forged(
                    primary,
                    victim,
                    window,
                    Verdict::Fail,
                    Role::Primary,
                    vec![1; 64],
                );
                a.answer_sig = primary.net().sign(&a.answer_message());
                a.signature = primary.net().sign(&a.signed_bytes());
                a
            },
            "signed answer",
        ),
        // windows that are not the receiver's previous, current or next
        (
            primary,
            forged(
                primary,
                victim,
                u64::MAX,
                Verdict::Missed,
                Role::Primary,
                vec![],
            ),
            "not the previous, current or next",
        ),
        (
            primary,
            forged(
                primary,
                victim,
                window - 5,
                Verdict::Missed,
                Role::Primary,
                vec![],
            ),
            "not the previous, current or next",
        ),
        // a record whose signature is not the auditor's
        (
            attacker,
            {
                let mut a = forged(
                    primary,
                    victim,
                    window,
                    Verdict::Missed,
                    Role::Primary,
                    vec![],
                );
                a.signature = attacker.net().sign(&a.signed_bytes());
                a
            },
            "signature invalid",
        ),
    ];
    for (from, rec, why) in cases {
        let r = receiver
            .accept_gossip(from.peer_id(), AUDIT_TOPIC, rec.encode())
            .await;
        let e = r.expect_err(why);
        assert!(e.contains(why), "{why}: {e}");
    }
    // none of them reached the receiver's audit log (honest records gossiped earlier may still
    // arrive meanwhile: the forged ones are told apart by their nonce)
    for e in receiver.audit_log(0).await.unwrap() {
        if let Ok(a) = AuditRecord::decode(&e.body) {
            assert_ne!(a.nonce, [7; 32], "a forged record was logged: {a:?}");
        }
    }
    // the primary's miss alone is accepted and logged, but one auditor's claim is not a fault
    let miss = forged(
        primary,
        victim,
        window,
        Verdict::Missed,
        Role::Primary,
        vec![],
    );
    assert_eq!(
        receiver
            .accept_gossip(primary.peer_id(), AUDIT_TOPIC, miss.encode())
            .await,
        Ok(false)
    );
    assert!(!receiver.faulty_peers().contains(&victim.peer_id()));
    // the window's confirming auditor hears of the miss and audits the victim itself: the
    // victim answers with a valid, signed proof, so it is not faulty anywhere
    let conf = find(&nodes, confirmer);
    let a = conf
        .audit_once_for(victim.peer_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.role, Role::Confirmer);
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    for n in &nodes {
        assert!(
            !n.faulty_peers().contains(&victim.peer_id()),
            "{} counts the honest victim as faulty",
            n.peer_id()
        );
    }
    // an audit by a node that is not designated is shown to whoever asked but counts for
    // nothing, and is not gossiped
    let a = attacker
        .audit_once_for(victim.peer_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.role, Role::Manual);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_proof_requests_does_not_keep_the_designated_auditor_out() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = sealed_network(dir.path(), 5).await;
    let victim = holder(&nodes);
    let (primary, confirmer) = victim.auditors_of(victim.peer_id()).unwrap();
    let sectors: Vec<u64> = futures_sectors(&nodes[0], victim)
        .iter()
        .map(|s| s.0)
        .collect();
    // every node that is not a designated auditor asks for 8 proofs at once
    let mut flood = Vec::new();
    for n in nodes
        .iter()
        .filter(|n| n.peer_id() != victim.peer_id() && n.peer_id() != primary)
        .filter(|n| Some(n.peer_id()) != confirmer)
    {
        for i in 0..8u8 {
            let net = n.net().clone();
            let to = victim.peer_id();
            let req = AuditRequest::Prove {
                window: 1,
                nonce: [i; 32],
                sectors: sectors.clone(),
                open: Vec::new(),
            };
            flood.push(tokio::spawn(async move {
                net.ctrl(to, CtrlRequest::App(req.encode())).await
            }));
        }
    }
    // the designated auditor's audit goes through while the flood is on
    let a = find(&nodes, primary)
        .audit_once_for(victim.peer_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.role, Role::Primary);
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    let mut served = 0;
    for f in flood {
        if let Ok(Ok(CtrlResponse::App(b))) = f.await {
            if matches!(AuditResponse::decode(&b), Ok(AuditResponse::Proof { .. })) {
                served += 1;
            }
        }
    }
    // at most 4 proofs per window for everyone who is not a designated auditor
    assert!(served <= 4, "{served} proofs served to the flood");
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, keys) = sealed_network(dir.path(), 4).await;
    let victim = holder(&nodes).clone();
    // the victim loses its sealed data; its designated auditor fails it (signed refusal)
    let store = victim.repo().store();
    let mut b = Batch::new();
    for (k, _) in store.table_scan(Table::Replicas).unwrap() {
        b.delete(Table::Replicas, k);
    }
    store.write(b, Durability::Sync).unwrap();
    let victim = victim.peer_id();
    let (primary, _) = nodes[0].auditors_of(victim).unwrap();
    let auditor = find(&nodes, primary);
    let a = auditor.audit_once_for(victim).await.unwrap().unwrap();
    assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
    assert!(auditor.faulty_peers().contains(&victim));
    // the auditor restarts on the same repo: the faulty set comes back from its audit log
    let i = nodes.iter().position(|n| n.peer_id() == primary).unwrap();
    for n in &nodes {
        n.shutdown().await;
    }
    drop(nodes);
    let repo = Repo::open(&dir.path().join(format!("node-{i}"))).unwrap();
    let again = start(repo, keys[i].clone(), opts(true), &[]).await;
    assert_eq!(again.peer_id(), primary);
    assert!(again.faulty_peers().contains(&victim));
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dataset_resolves_after_all_nodes_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let nodes = network(dir.path(), &keys, false).await;
    let (rep, data) = put_seeded(&nodes[0], dir.path(), 11, (3 << 20) + 12345).await;
    for n in &nodes {
        n.shutdown().await;
    }
    drop(nodes);
    // every node restarts: the DHT's records lived in memory; holders republish theirs
    // from the manifests in their repos
    let nodes = network(dir.path(), &keys, false).await;
    let (client, cnet) = client_for(&nodes[3]).await;
    for n in &nodes[..3] {
        let addr = n.net().listen_addrs().await.unwrap()[0].clone();
        cnet.dial(addr).await.unwrap();
    }
    let out = dir.path().join("out.bin");
    client.get(&rep.root.parse().unwrap(), &out).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hijacked_manifest_record_does_not_make_a_root_unretrievable() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Keypair> = (0..5).map(|_| Keypair::generate_ed25519()).collect();
    let nodes = network(dir.path(), &keys, false).await;
    let (rep, data) = put_seeded(&nodes[0], dir.path(), 17, (2 << 20) + 777).await;
    let root: cairn_core::Cid = rep.root.parse().unwrap();
    // the attacker (node 4) signs and publishes its own manifest for the same root: valid as
    // a record (it names the root), but its stripe lists blocks that are not the root's DAG;
    // it even stores and serves the manifest's page, so only a check against the DAG tells
    let attacker = &nodes[4];
    let junk = |i: u32| cairn_core::HashAlg::Blake3.cid(cairn_core::block::RAW, &i.to_le_bytes());
    let stripe = cairn_core::erasure::Stripe {
        data: vec![junk(1), junk(2)],
        lens: vec![4, 4],
        parity: vec![junk(3), junk(4)],
    };
    let profile = cairn_core::profile::Profile::cairn_v1()
        .with_stripe(2, 2)
        .unwrap();
    let (_, blocks) = cairn_core::manifest::encode(&profile, root, 8, 2, &[stripe]);
    let head = blocks.last().unwrap().clone();
    let mut b = Batch::new();
    for blk in &blocks {
        b.put_block(blk.clone());
    }
    attacker.repo().store().write(b, Durability::Sync).unwrap();
    attacker
        .net()
        .put_record_unchecked(
            cairn_net::records::manifest_key(&root),
            cairn_net::records::encode_manifest_record(&root, &head.cid, &head.data, &keys[4]),
        )
        .await
        .unwrap();
    // a client that knows only the attacker at first: the attacker answers the DHT query
    let (client, cnet) = client_for(attacker).await;
    let found = cnet.resolve_manifest_candidates(&root).await.unwrap();
    assert!(
        found.iter().any(|r| r.head.cid == head.cid),
        "the attacker's record is out there"
    );
    assert!(
        found.iter().any(|r| r.head.cid.to_string() == rep.manifest),
        "so is the publisher's"
    );
    // the attacker's record is signed by the attacker: it is identified
    let forged = found.iter().find(|r| r.head.cid == head.cid).unwrap();
    assert_eq!(forged.publisher, keys[4].public().to_peer_id().to_bytes());
    // checked against the DAG, the attacker's candidate does not hold and the publisher's does
    for rec in found {
        let honest = rec.head.cid.to_string() == rep.manifest;
        let r = client.resolve_record(&root, rec).await;
        assert_eq!(r.is_ok(), honest, "{r:?}");
    }
    // so retrieval, which tries every candidate when the first does not hold, uses that one
    let resolved = client.resolve(&root).await.unwrap();
    assert_eq!(resolved.manifest_cid.to_string(), rep.manifest);
    let out = dir.path().join("out.bin");
    client.get(&root, &out).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Stripes that have a shard on node 5, which claims a petabyte free, and all stripes, after a
/// put of a 20 MiB file (k = 1, m = 1: 21 one-block stripes) through node 0 of six.
async fn liar_share(dir: &Path, proofs: bool) -> (usize, usize) {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..6 {
        let mut o = opts(proofs);
        (o.k, o.m) = (1, 1);
        if i == 5 {
            o.capacity = 1 << 50;
        }
        let n = start(Repo::in_memory(), Keypair::generate_ed25519(), o, &nodes).await;
        nodes.push(n);
    }
    let (rep, _) = put_seeded(&nodes[0], dir, 23, 20 << 20).await;
    let liar = nodes[5].peer_id().to_string();
    let held = rep
        .placement
        .iter()
        .filter(|stripe| stripe.iter().any(|s| s.holders.contains(&liar)))
        .count();
    for n in &nodes {
        n.shutdown().await;
    }
    (held, rep.placement.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_capacity_does_not_attract_shards_beyond_what_is_proven() {
    let dir = tempfile::tempdir().unwrap();
    // without proofs placement believes the claim: the liar gets a shard of every stripe
    let (held, stripes) = liar_share(dir.path(), false).await;
    // 20 leaves and the file's root node, one block per stripe
    assert_eq!(stripes, 21);
    assert_eq!(held, stripes, "the claim was believed: {held} of {stripes}");
    // with proofs, a node weighs at most twice what it has proven (or 1 GiB before it has
    // proven anything), so the liar weighs what the honest nodes weigh: each stripe picks 2 of
    // 6 nodes, and the liar is in all 21 with probability (1/3)^21, about 1e-10
    let (held, stripes) = liar_share(dir.path(), true).await;
    assert!(held < stripes, "the liar still got a shard of every stripe");
}
