//! The placement engine deciding in a running network (in one process, on port 0): its
//! capacity is the room its fast peer reports, it trains on the node's own reads, and its
//! trained model then declines shards that the "read twice" rule would promote.

use cairn_core::testgen::Gen;
use cairn_core::Cid;
use cairn_storage_node::node::NodeOptions;
use cairn_storage_node::tier::TierOptions;
use std::collections::HashSet;

mod common;

/// Room the fast node keeps for copies (each promoter may use half of it).
const FAST_CACHE: u64 = 10 << 10;
/// Size of each file (one raw block, so one shard).
const FILE: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_engine_sizes_itself_to_the_fast_tier_and_declines_what_read_twice_would_take() {
    // six nodes: 0-3 serve each block 300 ms late (slow media); 4 is the node whose reads the
    // engine learns from, 5 the fast node with a small fast tier
    let nodes = common::slow_six(0x70, |i| NodeOptions {
        tier: TierOptions {
            cache_bytes: if i == 5 { FAST_CACHE } else { 1 << 30 },
            // a model after 64 labelled examples (a few hundred reads)
            train_after: 64,
            ..TierOptions::default()
        },
        ..common::opts(false)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ds");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..900u64 {
        std::fs::write(
            folder.join(format!("s{i:04}.bin")),
            Gen::bytes(0xe6_0000 + i, FILE),
        )
        .unwrap();
    }
    let rep = nodes[0].put(&folder).await.unwrap();
    assert!(rep.distributed);
    let (learner, fast) = (&nodes[4], &nodes[5]);
    let me = learner.peer_id().to_string();
    let mine: Vec<Cid> = rep
        .placement
        .iter()
        // data shards: a stripe lists its data shards, then its 2 parity shards
        .flat_map(|s| s.iter().take(s.len() - 2))
        .filter(|s| s.holders[0] == me)
        .map(|s| s.cid.parse().unwrap())
        .filter(|c: &Cid| c.codec() == cairn_core::block::RAW)
        .collect();
    assert!(mine.len() >= 150, "node 4 holds {} data shards", mine.len());
    let (hot, pairs) = (&mine[..10], &mine[10..150]);

    // the reads: ten shards in turn, and between them, in turn, 140 shards each read twice in
    // a row and then not for 420 reads
    let (_client, cnet) = common::client_for(learner).await;
    let read = |c: Cid| {
        let cnet = cnet.clone();
        async move {
            assert!(cnet
                .fetch_verified(learner.peer_id(), &c)
                .await
                .unwrap()
                .is_some());
        }
    };
    for i in 0..700 {
        read(hot[i % 10]).await;
        read(pairs[i % 140]).await;
        read(pairs[i % 140]).await;
    }

    let w = learner.placement_window().await.unwrap();
    assert_eq!(w.reads, 2_100, "{w:?}");
    assert_eq!(w.fast_peers, vec![fast.peer_id().to_string()], "{w:?}");
    // the engine's capacity is the room the fast peer reported for this node: half its cache
    assert_eq!(
        (w.fast_space, w.engine_capacity),
        (FAST_CACHE / 2, FAST_CACHE / 2)
    );
    assert!(w.engine_trainings >= 1, "the engine trained: {w:?}");
    // residents with a prediction: the model decided them, and some against the reads rule
    assert!(w.modelled > 0 && w.overrides > 0, "{w:?}");
    let pair_set: HashSet<String> = pairs.iter().map(Cid::to_string).collect();
    let hot_set: HashSet<String> = hot.iter().map(Cid::to_string).collect();
    let declined: Vec<_> = w
        .override_list
        .iter()
        .filter(|o| !o.admitted && o.reads >= 2 && pair_set.contains(&o.cid))
        .collect();
    assert!(
        !declined.is_empty(),
        "the model declined shards read twice: {:?}",
        w.override_list
    );
    for o in &declined {
        assert!(o.no_reuse >= 0.5, "{o:?}");
    }
    println!(
        "engine: {} trainings, capacity {} B (the fast peer's room); {} shards decided by the model, {} against \"read twice\", e.g. {} read {} times: no-reuse probability {:.2}, declined",
        w.engine_trainings,
        w.engine_capacity,
        w.modelled,
        w.overrides,
        declined[0].cid,
        declined[0].reads,
        declined[0].no_reuse
    );

    // what moved: each decided by the engine, none it declined, within the fast peer's room
    let st = learner.tier_status().await;
    let promoted: Vec<_> = st.moves.iter().filter(|m| m.kind == "promote").collect();
    for m in &promoted {
        assert!(m.ok && m.rule == "engine", "{m:?}");
        assert!(declined.iter().all(|o| o.cid != m.cid), "{m:?}");
    }
    let hot_moved = promoted.iter().filter(|m| hot_set.contains(&m.cid)).count();
    println!(
        "promoted: {hot_moved} of the 10 hot shards, {} of the shards read in pairs",
        promoted.len() - hot_moved
    );
    assert!(hot_moved > promoted.len() - hot_moved, "{promoted:?}");
    assert!(promoted.len() as u64 * FILE as u64 <= FAST_CACHE / 2);
    let held: HashSet<String> = fast
        .tier_status()
        .await
        .cached
        .iter()
        .map(|c| c["cid"].as_str().unwrap().to_string())
        .collect();
    let moved: HashSet<String> = promoted.iter().map(|m| m.cid.clone()).collect();
    assert_eq!(held, moved);
}
