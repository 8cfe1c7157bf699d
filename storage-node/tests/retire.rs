//! Replicas on disk: they count in a node's used space, and when every block a sealed sector
//! lists has gone (here: the publisher removed the dataset) the prover retires the sector with
//! a signed retirement, its auditors stop counting it, and the replica is freed. A retirement
//! that its prover did not sign, or that another peer gossips, changes nothing. In the
//! replica-only mode, sealed blocks are kept only in their replicas and unsealed when read.

use cairn_core::testgen::Gen;
use cairn_proofs::audit::{verify_log, EntryKind, LogEntry, Retirement};
use cairn_storage_node::node::Node;
use cairn_storage_node::proving::RETIRE_TOPIC;

mod common;
use common::{client_for, keys_dir, mesh, opts, params};

/// 16 KiB sectors: the replica (512 leaves of 32 bytes) and its kept tree (the root only).
const REPLICA: u64 = (16 << 10) + 32;

/// The retirements of `prover`'s sectors in `n`'s log.
async fn retirements(n: &Node, prover: &Node) -> Vec<Retirement> {
    let p = prover.peer_id().to_bytes();
    n.audit_log(0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EntryKind::Retire)
        .map(|e| Retirement::decode(&e.body).unwrap())
        .filter(|r| r.prover == p)
        .collect()
}

fn log_verifies(log: &[LogEntry]) -> cairn_proofs::audit::LogReport {
    let p = params();
    let dev = cairn_proofs::audit::KeySource::Dev(keys_dir());
    let (seal, post) = p.load_keys(&dev).unwrap();
    verify_log(log, &p, &seal, &post, &|peer, m, s| {
        cairn_net::identity::verify_signature(peer, m, s)
    })
}

/// Four nodes with `o`: node 0 puts `data` (spread over all four), every node seals what it
/// holds and learns every other's sector records (gossip may be slower). Returns the put's
/// root.
async fn sealed_network(
    o: cairn_storage_node::node::NodeOptions,
    data: &[u8],
    dir: &std::path::Path,
) -> (Vec<Node>, cairn_core::Cid) {
    let nodes = mesh(4, &o).await;
    let path = dir.join("data.bin");
    std::fs::write(&path, data).unwrap();
    let rep = nodes[0].put(&path).await.unwrap();
    assert!(rep.distributed);
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    for a in &nodes {
        for b in &nodes {
            if a.peer_id() != b.peer_id() {
                a.refresh_sectors(b.peer_id()).await;
            }
        }
    }
    let root = cairn_core::Cid::try_from(rep.root.as_str()).unwrap();
    (nodes, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_count_in_used_space_and_are_freed_when_their_blocks_go() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, root) = sealed_network(opts(true), &Gen::bytes(11, 40 << 10), dir.path()).await;

    // replicas count in the space a node uses: blocks + replicas
    let holder = nodes
        .iter()
        .find(|n| n.proof_status().unwrap().sectors > 0)
        .expect("some node sealed a sector");
    let before = holder.proof_status().unwrap();
    assert_eq!(before.replica_bytes, before.sectors * REPLICA, "{before:?}");
    let used = holder.status().await.used;
    assert!(
        used >= before.sealed_bytes + before.replica_bytes,
        "used {used} counts blocks {} and replicas {}",
        before.sealed_bytes,
        before.replica_bytes
    );
    let h = holder.peer_id();
    let auditor = nodes.iter().find(|n| n.peer_id() != h).unwrap();
    let audited = auditor
        .audit_once_for(h)
        .await
        .unwrap()
        .expect("a sector to audit");

    // a retirement its prover did not sign, or that another peer gossips, is refused
    let (sector, comm_r) = audited.sectors[0];
    let forged = Retirement {
        prover: h.to_bytes(),
        sector,
        comm_r,
        window: 0,
        signature: vec![7; 64],
    };
    let why = auditor
        .accept_gossip(h, RETIRE_TOPIC, forged.encode())
        .await
        .unwrap_err();
    assert!(why.contains("signature invalid"), "{why}");
    let other = nodes
        .iter()
        .find(|n| n.peer_id() != h && n.peer_id() != auditor.peer_id())
        .unwrap()
        .peer_id();
    let why = auditor
        .accept_gossip(other, RETIRE_TOPIC, forged.encode())
        .await
        .unwrap_err();
    assert!(why.contains("another peer"), "{why}");
    let why = auditor
        .accept_gossip(h, RETIRE_TOPIC, vec![1, 2, 3])
        .await
        .unwrap_err();
    assert!(!why.is_empty());
    assert!(retirements(auditor, holder).await.is_empty());
    // the sector is still audited
    let again = auditor.audit_once_for(h).await.unwrap().unwrap();
    assert!(!again.sectors.is_empty());

    // a sector keeps its replica while any block it lists is held
    assert_eq!(holder.retire_now().await.unwrap(), 0);
    assert_eq!(
        holder.proof_status().unwrap().replica_bytes,
        before.replica_bytes
    );

    // the publisher removes the dataset: every holder retires its sectors and frees them
    // (no grace in these tests)
    let removed = nodes[0].remove(&root).await.unwrap();
    assert!(removed.failed.is_empty(), "{removed:?}");
    for n in &nodes {
        n.retire_now().await.unwrap();
        let s = n.proof_status().unwrap();
        assert_eq!(
            (s.sectors, s.sealed_bytes, s.replica_bytes),
            (0, 0, 0),
            "{s:?}"
        );
    }
    let after = holder.proof_status().unwrap();
    assert_eq!(after.retired, before.sectors);
    assert!(holder.status().await.used < used);
    let mine = retirements(holder, holder).await;
    assert_eq!(mine.len() as u64, before.sectors);
    assert!(mine
        .iter()
        .any(|r| r.sector == sector && r.comm_r == comm_r));

    // the auditor takes the signed retirement (as gossip would bring it), logs it once and no
    // longer audits the retired sectors
    for r in &mine {
        auditor
            .accept_gossip(h, RETIRE_TOPIC, r.encode())
            .await
            .unwrap();
    }
    for r in &mine {
        assert_eq!(
            auditor.accept_gossip(h, RETIRE_TOPIC, r.encode()).await,
            Ok(false),
            "a retirement known already is not new"
        );
    }
    let theirs = retirements(auditor, holder).await;
    assert_eq!(theirs.len(), mine.len(), "each retirement logged once");
    assert!(
        auditor.audit_once_for(h).await.unwrap().is_none(),
        "a prover with every sector retired has nothing to audit"
    );

    // both logs re-verify with the retirements in them (signed, of committed sectors)
    for n in [holder, auditor] {
        let report = log_verifies(&n.audit_log(0).await.unwrap());
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.retired >= before.sectors, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_only_nodes_keep_sealed_blocks_only_in_replicas_and_serve_them() {
    use cairn_repo::store::Table;
    let mut o = opts(true);
    if let Some(p) = o.proofs.as_mut() {
        p.replica_only = true;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = Gen::bytes(12, 40 << 10);
    let (nodes, root) = sealed_network(o, &data, dir.path()).await;
    let holders: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.proof_status().unwrap().sectors > 0)
        .collect();
    assert!(holders.len() >= 2, "shards spread over the nodes");
    for n in &holders {
        let s = n.proof_status().unwrap();
        // every stored block is in a replica and nothing else: the used space is the replicas
        assert_eq!(n.status().await.used, s.replica_bytes, "{s:?}");
        let rows = n.repo().store().table_scan(Table::InReplica).unwrap();
        assert!(!rows.is_empty());
    }

    // the dataset reads back whole through the network, every block unsealed by its holder
    let (client, cnet) = client_for(&nodes[3]).await;
    let out = dir.path().join("out");
    client.get(&root, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    cnet.shutdown().await;

    // scrub finds nothing missing or corrupt (it leaves replica-held blocks to the proofs)
    for n in &holders {
        let r = n.scrub_report().await.unwrap();
        assert!(r.corrupt.is_empty() && r.in_replicas > 0, "{r:?}");
    }

    // audits open the listed blocks' leaves (read back from the replica) and pass
    let mut audited = 0;
    for a in &nodes {
        for b in &nodes {
            if a.peer_id() == b.peer_id() {
                continue;
            }
            if let Some(r) = a.audit_once_for(b.peer_id()).await.unwrap() {
                assert_eq!(r.verdict, cairn_proofs::audit::Verdict::Pass, "{r:?}");
                audited += 1;
            }
        }
    }
    assert!(audited > 0);

    // removing the dataset deletes the blocks' rows, so the sectors retire and free
    nodes[0].remove(&root).await.unwrap();
    for n in &nodes {
        n.retire_now().await.unwrap();
        let s = n.proof_status().unwrap();
        assert_eq!((s.sectors, s.replica_bytes), (0, 0), "{s:?}");
        assert!(n
            .repo()
            .store()
            .table_scan(Table::InReplica)
            .unwrap()
            .is_empty());
        assert!(n
            .repo()
            .store()
            .table_scan(Table::Replicas)
            .unwrap()
            .is_empty());
    }
}

/// A repo that ran in replica-only mode is read through its replicas whatever the mode now:
/// without that, its replica-held blocks would look gone, and their sectors would be retired
/// and freed (the only copies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_with_replica_held_blocks_is_read_through_them_in_any_mode() {
    use cairn_repo::store::{Batch, BlockStore, Durability, MemoryStore, Table};
    let cid =
        cairn_core::Cid::try_from("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
            .unwrap();
    let store = MemoryStore::new();
    let mut key = cid.to_bytes();
    key.extend_from_slice(&0u64.to_be_bytes());
    let mut b = Batch::new();
    b.put(Table::InReplica, key, [0u8; 24].to_vec());
    store.write(b, Durability::Sync).unwrap();
    let o = opts(true);
    assert!(!o.proofs.as_ref().unwrap().replica_only);
    let node = Node::start(
        cairn_repo::Repo::with_store(Box::new(store)),
        cairn_net::Keypair::generate_ed25519(),
        cairn_net::NetConfig::default(),
        o,
    )
    .await
    .unwrap();
    assert!(node.repo().store().held_in_replica(&cid).unwrap());
    assert!(node.repo().store().has(&cid).unwrap());
    node.shutdown().await;
}
