//! Storage bound to assignment (docs/threat-model.md, "Storage bound to assignment"), on a
//! running network in one process on port 0. One node runs deliberately dishonest code in each
//! test: it keeps the shards it was given but never seals them, or it seals a sector from other
//! bytes than the blocks its record lists. Each test shows that the network stops counting the
//! node as a holder of those shards, rebuilds them elsewhere, and that every file of the
//! dataset still comes back byte for byte. A last test shows that what a peer pushes and never
//! commits is collected, and committed data stays.

use cairn_core::profile::Profile;
use cairn_core::testgen::Gen;
use cairn_core::{Block, Cid};
use cairn_net::wire::PutStatus;
use cairn_net::PeerId;
use cairn_proofs::audit::Verdict;
use cairn_repo::store::{Batch, Durability};
use cairn_repo::Repo;
use cairn_storage_node::node::{Node, PutReport};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{client_for, mesh, opts};

/// Puts a folder of `files` seeded files of `len` bytes through `node` (one leaf block each,
/// so the stripes spread over every node); the report and the files' names and bytes.
async fn put_folder(
    node: &Node,
    dir: &Path,
    files: usize,
    len: usize,
) -> (PutReport, Vec<(String, Vec<u8>)>) {
    let folder = dir.join("dataset");
    std::fs::create_dir_all(&folder).unwrap();
    let mut out = Vec::new();
    for i in 0..files {
        let name = format!("part-{i:02}.bin");
        let data = Gen::bytes(40 + i as u64, len);
        std::fs::write(folder.join(&name), &data).unwrap();
        out.push((name, data));
    }
    let rep = node.put(&folder).await.unwrap();
    assert!(rep.distributed);
    (rep, out)
}

/// The shards `peer` holds in a put's placement.
fn shards_of(rep: &PutReport, peer: PeerId) -> Vec<Cid> {
    let p = peer.to_string();
    rep.placement
        .iter()
        .flatten()
        .filter(|s| s.holders.contains(&p))
        .map(|s| s.cid.parse().unwrap())
        .collect()
}

/// The node other than `nodes[0]` holding the most shards of the put.
fn busiest<'a>(nodes: &'a [Node], rep: &PutReport) -> &'a Node {
    nodes[1..]
        .iter()
        .max_by_key(|n| shards_of(rep, n.peer_id()).len())
        .unwrap()
}

/// Fetches every file of the dataset through a client of `via` and compares the bytes.
async fn every_file_comes_back(
    via: &Node,
    dir: &Path,
    rep: &PutReport,
    files: &[(String, Vec<u8>)],
) {
    let (client, cnet) = client_for(via).await;
    let out = dir.join("out");
    client.get(&rep.root.parse().unwrap(), &out).await.unwrap();
    for (name, data) in files {
        assert!(std::fs::read(out.join(name)).unwrap() == *data, "{name}");
    }
    cnet.shutdown().await;
}

/// Placement as `node` counts it: no shard without a holder, and none counted on `not`.
async fn every_shard_counted_elsewhere(node: &Node, rep: &PutReport, not: PeerId) {
    let placement = node.placement(&rep.root.parse().unwrap()).await.unwrap();
    for s in placement.iter().flatten() {
        assert!(
            !s.holders.is_empty(),
            "shard {} has no counted holder",
            s.cid
        );
        assert!(
            !s.holders.contains(&not.to_string()),
            "{} still counted on the cheat",
            s.cid
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_kept_unsealed_past_the_grace_period_stop_counting_and_are_rebuilt_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    // no grace period: a claim counts only once a sealed sector of the claimer lists the block
    let mut o = opts(true);
    o.proofs.as_mut().unwrap().grace = Duration::ZERO;
    let nodes = mesh(5, &o).await;
    let (rep, files) = put_folder(&nodes[0], dir.path(), 10, 3000).await;
    // the cheat stores what it was given and answers `Have` for it, but never seals it
    let lazy = busiest(&nodes, &rep).peer_id();
    let given = shards_of(&rep, lazy);
    assert!(!given.is_empty());
    let honest: Vec<&Node> = nodes.iter().filter(|n| n.peer_id() != lazy).collect();
    for n in &honest {
        n.seal_now().await.unwrap();
    }
    learn(&honest).await;
    assert!(
        find(&nodes, lazy).repo().block(&given[0]).is_ok(),
        "the cheat keeps the shard"
    );
    // its shards have no counted holder: each stripe's leader rebuilds them on a node that
    // holds nothing of the stripe, never on the cheat (it is given nothing while it lags);
    // the new holders seal what they receive before the next round looks
    let mut rebuilt = 0;
    for n in &honest {
        let r = n.repair_round().await.unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
        rebuilt += r.rebuilt;
        for m in &honest {
            m.seal_now().await.unwrap();
        }
        learn(&honest).await;
    }
    assert_eq!(
        rebuilt,
        given.len() as u64,
        "each of the cheat's shards rebuilt once"
    );
    for n in &honest {
        every_shard_counted_elsewhere(n, &rep, lazy).await;
    }
    // not counted is not faulty: the cheat passes the audits of what it did seal
    assert!(honest.iter().all(|n| !n.faulty_peers().contains(&lazy)));
    every_file_comes_back(honest[1], dir.path(), &rep, &files).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

fn find(nodes: &[Node], id: PeerId) -> &Node {
    nodes.iter().find(|n| n.peer_id() == id).unwrap()
}

/// Every node asks every other for its sector records (they are gossiped too, but gossip
/// arrives when it arrives).
async fn learn(nodes: &[&Node]) {
    for n in nodes {
        for m in nodes.iter().filter(|m| m.peer_id() != n.peer_id()) {
            n.refresh_sectors(m.peer_id()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sector_sealed_from_other_bytes_than_it_lists_fails_its_opening() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(5, &opts(true)).await;
    let (rep, files) = put_folder(&nodes[0], dir.path(), 10, 3000).await;
    // the cheat keeps none of the bytes it was given (here: every byte flipped, same length)
    // but seals a sector whose record lists the real blocks, so the network counts it
    let cheat = busiest(&nodes, &rep).clone();
    let given = shards_of(&rep, cheat.peer_id());
    let mut b = Batch::new();
    for c in &given {
        let real = cheat.repo().block(c).unwrap();
        let junk: Vec<u8> = real.iter().map(|x| x ^ 0xff).collect();
        b.put_block(Block {
            cid: *c,
            data: junk.into(),
        });
    }
    cheat.repo().store().write(b, Durability::Sync).unwrap();
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    // every node learns the provers' sector records (the ring of the audit schedule)
    learn(&nodes.iter().collect::<Vec<_>>()).await;
    // the cheat's window proof verifies (it holds the replica of what it sealed), but the
    // audit opens leaves of one of its listed shards and compares them with the real block,
    // which the auditor rebuilds from the rest of the stripe: a signed opening that is not
    // the block, so a fail that every node re-checks
    let (primary, _) = nodes[0].auditors_of(cheat.peer_id()).unwrap();
    let auditor = find(&nodes, primary);
    let a = auditor
        .audit_once_for(cheat.peer_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
    assert!(a.reason.contains("is not the block"), "{}", a.reason);
    assert!(!a.openings.is_empty());
    for n in nodes.iter().filter(|n| n.peer_id() != cheat.peer_id()) {
        let mut ch = n.faulty_changes().unwrap();
        let _ = ch.borrow_and_update();
        if !n.faulty_peers().contains(&cheat.peer_id()) {
            tokio::time::timeout(Duration::from_secs(60), ch.changed())
                .await
                .expect("verdict not gossiped")
                .unwrap();
        }
        assert!(n.faulty_peers().contains(&cheat.peer_id()));
    }
    // an honest prover's audit opens its pieces too, and passes
    let honest = nodes
        .iter()
        .find(|n| n.peer_id() != cheat.peer_id() && !shards_of(&rep, n.peer_id()).is_empty())
        .unwrap();
    let (primary, _) = nodes[0].auditors_of(honest.peer_id()).unwrap();
    let a = find(&nodes, primary)
        .audit_once_for(honest.peer_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    assert!(!a.openings.is_empty(), "an honest audit opens a piece");
    // repair rebuilds the cheat's shards elsewhere; every file comes back byte for byte
    for n in nodes.iter().filter(|n| n.peer_id() != cheat.peer_id()) {
        let r = n.repair_round().await.unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
    }
    every_file_comes_back(&nodes[0], dir.path(), &rep, &files).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_of_a_push_never_committed_are_collected_and_committed_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(4, &opts(false)).await;
    let (rep, files) = put_folder(&nodes[0], dir.path(), 10, 3000).await;
    let target = &nodes[1];
    let before = target
        .repo()
        .store()
        .size(&rep.manifest.parse().unwrap())
        .unwrap();
    assert!(
        before.is_some(),
        "the target holds the committed dataset's manifest"
    );
    // a peer pushes another dataset's manifest and shards to the target and never commits
    // (it stopped, or meant to leave them there for free)
    let other = Repo::in_memory();
    let src = dir.path().join("other.bin");
    std::fs::write(&src, Gen::bytes(77, 5000)).unwrap();
    let profile = Profile::by_name("cairn-v1")
        .and_then(|p| p.with_stripe(2, 2))
        .unwrap();
    let ing = other.put(&src, &profile, &|_| {}).unwrap();
    let m = other.manifest(&ing.manifest).unwrap();
    let mut blocks = vec![Block {
        cid: ing.manifest,
        data: other.block(&ing.manifest).unwrap().into(),
    }];
    for p in &m.pages {
        blocks.push(Block {
            cid: *p,
            data: other.block(p).unwrap().into(),
        });
    }
    for s in other.stripes(&m).unwrap() {
        for c in s.shards() {
            blocks.push(Block {
                cid: *c,
                data: other.block(c).unwrap().into(),
            });
        }
    }
    let (_client, cnet) = client_for(target).await;
    let st = cnet
        .push(target.peer_id(), ing.manifest, &blocks)
        .await
        .unwrap();
    assert!(st.iter().all(|s| *s == PutStatus::Stored), "{st:?}");
    let held = |c: &Cid| target.repo().store().size(c).unwrap().is_some();
    assert!(blocks.iter().all(|b| held(&b.cid)));
    // the first pass notes them, the second removes them (this node collects on demand only,
    // so no push counts as still arriving)
    let first = target.collect_garbage().await.unwrap();
    assert_eq!(first.removed, 0);
    assert_eq!(first.unneeded, blocks.len() as u64, "{first:?}");
    let second = target.collect_garbage().await.unwrap();
    assert_eq!(second.removed, blocks.len() as u64, "{second:?}");
    assert!(blocks.iter().all(|b| !held(&b.cid)));
    // what the target holds of the committed dataset stays, and every file comes back
    let mine: Vec<Cid> = shards_of(&rep, target.peer_id());
    assert!(!mine.is_empty() && mine.iter().all(held));
    assert_eq!(target.collect_garbage().await.unwrap().unneeded, 0);
    every_file_comes_back(&nodes[2], dir.path(), &rep, &files).await;
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}
