//! Push admission (docs/threat-model.md, "Push admission"), on a running network in one process
//! on port 0. Peers that are not honest publishers push junk: one test shows that a node stores
//! only the shards its own placement assigns to it, the other that any number of identities
//! with nothing proven (Sybils) fill no more than a quarter of a node's disk and of its
//! fast-tier cache, while a publisher that has proven storage still gets its data in, and the
//! honest data comes back byte for byte.

use cairn_core::profile::Profile;
use cairn_core::rendezvous::{self, Candidate};
use cairn_core::testgen::Gen;
use cairn_core::{Block, Cid};
use cairn_net::wire::PutStatus;
use cairn_net::PeerId;
use cairn_repo::Repo;
use std::path::Path;

mod common;
use common::{client_for, mesh_with, opts};

/// A pushed dataset: its manifest CID, its blocks, each shard's stripe key and shard count.
type Junk = (Cid, Vec<Block>, Vec<(Vec<u8>, usize)>);

/// A dataset built by a pusher on its own (never published): its manifest CID, and every
/// block a push of it sends (manifest head, pages, then each stripe's shards), each shard with
/// its stripe's rendezvous key and shard count.
fn junk(src: &Path, profile: &str, k: usize, m: usize) -> Junk {
    let repo = Repo::in_memory();
    let profile = Profile::by_name(profile)
        .and_then(|p| p.with_stripe(k, m))
        .unwrap();
    let ing = repo.put(src, &profile, &|_| {}).unwrap();
    let man = repo.manifest(&ing.manifest).unwrap();
    let block = |c: &Cid| Block {
        cid: *c,
        data: repo.block(c).unwrap().into(),
    };
    let mut blocks = vec![block(&ing.manifest)];
    blocks.extend(man.pages.iter().map(block));
    let mut stripe_of = Vec::new();
    for s in repo.stripes(&man).unwrap() {
        let key = s.data.first().map(|c| c.to_bytes()).unwrap_or_default();
        for c in s.shards() {
            blocks.push(block(c));
            stripe_of.push((key.clone(), s.data.len() + s.parity.len()));
        }
    }
    (ing.manifest, blocks, stripe_of)
}

/// Pushes `blocks` of dataset `manifest` to `to` from `net`, in batches; one status each.
async fn push_all(
    net: &cairn_net::NetClient,
    to: PeerId,
    manifest: Cid,
    blocks: &[Block],
) -> Vec<PutStatus> {
    let mut out = Vec::new();
    for chunk in blocks.chunks(64) {
        out.extend(net.push(to, manifest, chunk).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stores_only_the_shards_its_own_placement_assigns_to_it() {
    let dir = tempfile::tempdir().unwrap();
    // six nodes, one shard per stripe on each of 2 (k = 1, m = 1): a node takes a shard of a
    // stripe where it ranks among the first 4
    let nodes = mesh_with(6, |_| {
        let mut o = opts(false);
        (o.k, o.m) = (1, 1);
        o
    })
    .await;
    let target = &nodes[3];
    // an honest put lands wherever it goes
    let folder = dir.path().join("honest");
    std::fs::create_dir_all(&folder).unwrap();
    let mut files = Vec::new();
    for i in 0..12 {
        let data = Gen::bytes(300 + i, 900);
        std::fs::write(folder.join(format!("f{i:02}")), &data).unwrap();
        files.push(data);
    }
    let rep = nodes[0].put(&folder).await.unwrap();
    assert!(rep.distributed);
    // the target's view of the live nodes, as its placement ranks them
    let view = target.live_nodes().await;
    let cands: Vec<Candidate> = view
        .iter()
        .map(|(p, i)| Candidate {
            id: p.to_bytes(),
            weight: i.free().max(1),
        })
        .collect();
    let me = view
        .iter()
        .position(|(p, _)| *p == target.peer_id())
        .unwrap();
    // a peer pushes the target every shard of a dataset of its own: 41 one-block stripes
    let src = dir.path().join("junk");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("j{i:02}")), Gen::bytes(900 + i, 100)).unwrap();
    }
    let (manifest, blocks, stripe_of) = junk(&src, "cairn-v1", 1, 1);
    let heads = blocks.len() - stripe_of.len();
    let (_client, cnet) = client_for(target).await;
    let st = push_all(&cnet, target.peer_id(), manifest, &blocks).await;
    assert!(
        st[..heads].iter().all(|s| *s == PutStatus::Stored),
        "{st:?}"
    );
    let mut refused = 0;
    for ((key, n), s) in stripe_of.iter().zip(&st[heads..]) {
        let rank = rendezvous::rank(key, &cands)
            .iter()
            .position(|&i| i == me)
            .unwrap();
        let want = if rank < 2 * n {
            PutStatus::Stored
        } else {
            refused += 1;
            PutStatus::Refused
        };
        assert_eq!(*s, want, "rank {rank} of {}", cands.len());
    }
    // each stripe ranks the target among the first 4 of 6 with probability 2/3: none refused
    // of 41 has probability (2/3)^41 < 1e-7
    assert!(refused > 0, "every junk stripe was assigned here");
    // honest data comes back byte for byte
    let (client, cnet2) = client_for(&nodes[1]).await;
    let out = dir.path().join("out");
    client.get(&rep.root.parse().unwrap(), &out).await.unwrap();
    for (i, data) in files.iter().enumerate() {
        assert!(std::fs::read(out.join(format!("f{i:02}"))).unwrap() == *data);
    }
    cnet.shutdown().await;
    cnet2.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sybils_fill_neither_the_disk_nor_the_cache_and_a_proven_publisher_gets_in() {
    const CAPACITY: u64 = 8 << 20;
    const CACHE: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    // node 3 offers 8 MiB (its shared bucket for pushers beyond their allowance: 2 MiB) and a
    // 1 MiB cache (a quarter for all promoters with nothing proven)
    let nodes = mesh_with(4, |i| {
        let mut o = opts(true);
        if i == 3 {
            o.capacity = CAPACITY;
            o.tier.cache_bytes = CACHE;
        }
        o
    })
    .await;
    let target = &nodes[3];
    // the publisher puts a dataset, every node seals what it holds, and the target learns the
    // publisher's sectors: the publisher has proven storage
    let first = dir.path().join("first.bin");
    let first_data = Gen::bytes(61, 60 << 10);
    std::fs::write(&first, &first_data).unwrap();
    let rep1 = nodes[0].put(&first).await.unwrap();
    assert!(rep1.distributed);
    for n in &nodes {
        n.seal_now().await.unwrap();
    }
    target.refresh_sectors(nodes[0].peer_id()).await;
    // a Sybil with nothing proven pushes 3.5 MiB of junk: it gets no more than the bucket
    let src = dir.path().join("junk.bin");
    std::fs::write(&src, Gen::bytes(62, 3 << 19)).unwrap();
    let (manifest, blocks, _) = junk(&src, "kubo-legacy", 2, 2);
    let used_before = target.status().await.used;
    let (_c1, sybil1) = client_for(target).await;
    let st = push_all(&sybil1, target.peer_id(), manifest, &blocks).await;
    assert!(st.contains(&PutStatus::Stored), "{st:?}");
    assert!(st.contains(&PutStatus::Refused), "{st:?}");
    assert!(!st.contains(&PutStatus::NoSpace), "{st:?}");
    let junk_bytes = target.status().await.used - used_before;
    assert!(junk_bytes <= CAPACITY / 4, "{junk_bytes} bytes of junk");
    // a second identity finds the bucket used up: its full-size shards are refused, and the
    // two together hold no more than the bucket
    let src2 = dir.path().join("junk2.bin");
    std::fs::write(&src2, Gen::bytes(63, 1 << 20)).unwrap();
    let (manifest2, blocks2, _) = junk(&src2, "kubo-legacy", 2, 2);
    let (_c2, sybil2) = client_for(target).await;
    let st2 = push_all(&sybil2, target.peer_id(), manifest2, &blocks2).await;
    for (b, s) in blocks2.iter().zip(&st2) {
        if b.data.len() >= 256 << 10 {
            assert_eq!(*s, PutStatus::Refused, "{st2:?}");
        }
    }
    let junk_bytes = target.status().await.used - used_before;
    assert!(junk_bytes <= CAPACITY / 4, "{junk_bytes} bytes of junk");
    // the publisher, within twice what it proved, still gets a dataset in
    // (four small files: stripes of 2 + 2 shards, one on every node)
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let mut second_files = Vec::new();
    for i in 0..4 {
        let data = Gen::bytes(64 + i, 3 << 10);
        std::fs::write(second.join(format!("s{i}")), &data).unwrap();
        second_files.push(data);
    }
    let rep2 = nodes[0].put(&second).await.unwrap();
    assert!(rep2.distributed);
    let mine = target.peer_id().to_string();
    assert!(
        rep2.placement
            .iter()
            .flatten()
            .any(|s| s.holders.contains(&mine)),
        "nothing of the second dataset was placed on the target"
    );
    // the fast-tier cache: two Sybils get a quarter of it together, a prover gets its copy in
    let copy = |seed: u64, len: usize| {
        Block::new(
            cairn_core::block::HashAlg::Blake3,
            0x55,
            Gen::bytes(seed, len),
        )
    };
    let a = sybil1
        .push_cached(target.peer_id(), &[copy(70, 200 << 10)], false)
        .await
        .unwrap();
    assert_eq!(a, vec![PutStatus::Stored]);
    let b = sybil2
        .push_cached(target.peer_id(), &[copy(71, 100 << 10)], false)
        .await
        .unwrap();
    assert_eq!(
        b,
        vec![PutStatus::NoSpace],
        "the Sybils together passed a quarter"
    );
    let honest = nodes[0]
        .net()
        .push_cached(target.peer_id(), &[copy(72, 300 << 10)], false)
        .await
        .unwrap();
    assert_eq!(honest, vec![PutStatus::Stored]);
    // both honest datasets come back byte for byte
    let (client, cnet) = client_for(&nodes[1]).await;
    let out = dir.path().join("out1");
    client.get(&rep1.root.parse().unwrap(), &out).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == first_data);
    let out = dir.path().join("out2");
    client.get(&rep2.root.parse().unwrap(), &out).await.unwrap();
    for (i, data) in second_files.iter().enumerate() {
        assert!(std::fs::read(out.join(format!("s{i}"))).unwrap() == *data);
    }
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}
