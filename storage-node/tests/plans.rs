//! A training job's access plan, followed by a running network in one process on port 0: the
//! node it is registered with copies the blocks the reader reaches next onto a fast peer it
//! measured, ahead of the reader, serves the reader's gateway reads from those copies, and
//! drops each copy once it is read (`storage-node/src/tier/prefetch.rs`).

use cairn_core::dagpb::PbNode;
use cairn_core::testgen::Gen;
use cairn_core::Cid;
use cairn_net::{Keypair, NetConfig};
use cairn_repo::Repo;
use cairn_storage_node::gateway::BlockSource;
use cairn_storage_node::node::{Node, PlanRequest};
use cairn_storage_node::tier::TierOptions;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

mod common;

/// The leaf blocks of file `file` (a root over raw leaves), in order.
async fn leaves(node: &Node, root: &Cid, file: &Cid) -> Vec<Cid> {
    let b = node.block_in(root, file).await.unwrap().unwrap();
    PbNode::decode(&b)
        .unwrap()
        .links
        .iter()
        .map(|l| l.hash)
        .collect()
}

/// The CIDs a node keeps for its peers in its fast tier.
async fn cached(node: &Node) -> HashSet<String> {
    node.tier_status()
        .await
        .cached
        .iter()
        .map(|c| c["cid"].as_str().unwrap().to_string())
        .collect()
}

/// Six nodes, four slow (each block served after 300 ms, as from slow media), with 4 MiB of
/// plan budget and ticks the test drives; a dataset of four 2 MiB files (two 1 MiB leaves
/// each) put through node 0: the nodes, the files' bytes and the put's report.
async fn slow_network(
    folder: &std::path::Path,
) -> (Vec<Node>, Vec<Vec<u8>>, cairn_storage_node::node::PutReport) {
    // fixed keys: the rendezvous placement, and so which leaves need copies, is the same
    // every run
    let nodes = common::slow_six(0x60, |_| cairn_storage_node::node::NodeOptions {
        tier: TierOptions {
            // four 1 MiB leaves ahead of the reader; the test drives every tick
            plan_bytes: 4 << 20,
            // a copy goes once read (keeping copies for a later plan is tested in
            // tier/plans.rs)
            plan_keep: Duration::ZERO,
            prefetch_every: Duration::from_secs(24 * 3600),
            ..TierOptions::default()
        },
        ..common::opts(false)
    })
    .await;
    // four files of 2 MiB: two 1 MiB leaves each
    std::fs::create_dir_all(folder).unwrap();
    let data: Vec<Vec<u8>> = (0..4).map(|i| Gen::bytes(300 + i, 2 << 20)).collect();
    for (i, f) in data.iter().enumerate() {
        std::fs::write(folder.join(format!("f{i}.bin")), f).unwrap();
    }
    let rep = nodes[0].put(folder).await.unwrap();
    assert!(rep.distributed);
    (nodes, data, rep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_prefetched_onto_a_fast_peer_ahead_of_the_reader_and_dropped_once_read() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, data, rep) = slow_network(&dir.path().join("ds")).await;
    let root: Cid = rep.root.parse().unwrap();
    // (the placement lists every shard; the leaves are data shards)
    let reader = &nodes[1]; // a slow node: the job reads through its gateway
    let ds = cairn_retrieval::dataset::Dataset::open(common::client_for(reader).await.0, &root)
        .await
        .unwrap();
    let files: Vec<Cid> = ds.files().iter().map(|f| f.cid).collect();
    assert_eq!(files.len(), 4);
    let order = vec![files[2], files[0], files[3], files[1]];
    let mut planned = Vec::new();
    for f in &order {
        planned.extend(leaves(reader, &root, f).await);
    }
    assert_eq!(planned.len(), 8);

    // the fast peers are measured
    assert!(reader.probe_peers().await >= 4);
    let fast: HashSet<_> = reader.fast_peers().into_iter().collect();
    let want: HashSet<_> = [nodes[4].peer_id(), nodes[5].peer_id()].into();
    assert_eq!(fast, want, "the two unhindered nodes are the fast ones");

    // where the leaves are: a leaf a fast node holds as a base shard needs no copy (it is
    // read from there); one the reader's node holds is read from its own store
    let fast_ids = [
        nodes[4].peer_id().to_string(),
        nodes[5].peer_id().to_string(),
    ];
    let fast_held: HashSet<Cid> = rep
        .placement
        .iter()
        .flatten()
        .filter(|s| s.holders.iter().any(|h| fast_ids.contains(h)))
        .map(|s| s.cid.parse().unwrap())
        .collect();
    let local: HashSet<Cid> = planned
        .iter()
        .filter(|c| reader.repo().store().has(c).unwrap())
        .copied()
        .collect();
    let copies_of = |r: std::ops::Range<usize>| -> HashSet<String> {
        planned[r]
            .iter()
            .filter(|c| !fast_held.contains(c))
            .map(Cid::to_string)
            .collect()
    };
    let fast_reads_of = |r: std::ops::Range<usize>| -> u64 {
        planned[r]
            .iter()
            .filter(|c| !fast_held.contains(c) && !local.contains(c))
            .count() as u64
    };

    let copies = copies_of(0..8).len();
    assert!(
        copies >= 4 && fast_reads_of(0..2) >= 1,
        "a placement that tests little: {copies} copies"
    );

    // the plan: 1 MiB/s, so 30 s of look-ahead is the whole budget, four leaves
    let plan = reader
        .register_plan(PlanRequest {
            root,
            files: order.clone(),
            rate: Some(1e6),
            job: "train".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((plan.files, plan.blocks, plan.bytes), (4, 8, 8 << 20));
    let t1 = reader.prefetch_tick().await;
    assert_eq!(t1.prefetched, copies_of(0..4).len(), "{t1:?}");
    assert_eq!(t1.dropped, 0, "{t1:?}");
    let on_fast = || async {
        let mut a = cached(&nodes[4]).await;
        a.extend(cached(&nodes[5]).await);
        a
    };
    assert_eq!(
        on_fast().await,
        copies_of(0..4),
        "the first four planned leaves wait on fast peers"
    );

    // the reader reads the first file through the gateway (from the copies, which count it)
    for (i, leaf) in planned[..2].iter().enumerate() {
        let b = reader.block_in(&root, leaf).await.unwrap().unwrap();
        assert_eq!(&b[..], &data[2][i << 20..(i + 1) << 20]);
    }
    let t2 = reader.prefetch_tick().await;
    assert_eq!(t2.reads, 2, "{t2:?}");
    assert_eq!(t2.dropped, copies_of(0..2).len(), "{t2:?}");
    assert_eq!(t2.prefetched, copies_of(4..6).len(), "{t2:?}");
    assert_eq!(
        on_fast().await,
        copies_of(2..6),
        "read copies dropped, the next two copied"
    );
    let st = reader.tier_status().await;
    assert_eq!(st.plans.len(), 1);
    let p = &st.plans[0];
    assert_eq!(p.read, 2);
    assert_eq!(p.held, copies_of(2..6).len());
    assert_eq!(p.prefetched as usize, copies_of(0..6).len());
    assert_eq!(p.dropped as usize, copies_of(0..2).len());
    assert_eq!(p.fast_reads, fast_reads_of(0..2));
    let drops: Vec<_> = st.moves.iter().filter(|m| m.kind == "drop").collect();
    assert_eq!(drops.len(), copies_of(0..2).len());
    assert!(drops
        .iter()
        .all(|m| m.rule == "plan" && m.reason.contains("read by")));

    // the rest of the epoch, a tick after each file: every read is served, every copy goes
    for (fi, f) in order.iter().enumerate().skip(1) {
        let src = files.iter().position(|x| x == f).unwrap();
        for (i, leaf) in planned[2 * fi..2 * fi + 2].iter().enumerate() {
            let b = reader.block_in(&root, leaf).await.unwrap().unwrap();
            assert_eq!(&b[..], &data[src][i << 20..(i + 1) << 20]);
        }
        reader.prefetch_tick().await;
    }
    let st = reader.tier_status().await;
    let p = &st.plans[0];
    let copies = copies as u64;
    assert_eq!((p.read, p.held), (8, 0), "{p:?}");
    assert_eq!((p.prefetched, p.dropped), (copies, copies), "{p:?}");
    assert_eq!(
        p.fast_reads,
        fast_reads_of(0..8),
        "every read not served here came from a prefetched copy"
    );
    assert!(on_fast().await.is_empty());
    println!(
        "{copies} of 8 planned leaves copied ahead of the reader; {} reads served by copies",
        p.fast_reads
    );
    // the base placement never moved: a copy is no holder
    for n in &nodes {
        n.shutdown().await;
    }
}

/// `POST {base}{path}` with a JSON body (and the token when given): status and JSON answer.
async fn post_json(url: String, token: Option<&'static str>, body: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.post(&url).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_through_the_api_need_the_token_and_refuse_what_is_malformed() {
    let node = Node::start(
        Repo::in_memory(),
        Keypair::generate_ed25519(),
        NetConfig::default(),
        common::opts(false),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ds");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..3u64 {
        std::fs::write(
            folder.join(format!("f{i}.bin")),
            Gen::bytes(400 + i, 3 << 19),
        )
        .unwrap();
    }
    let rep = node.put(&folder).await.unwrap();
    const TOKEN: &str = "plan-token";
    let app =
        cairn_storage_node::api::router(node.clone(), TOKEN.into(), dir.path().to_path_buf(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v0/plan", listener.local_addr().unwrap());
    let status_url = url.replace("/plan", "/placement/status");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let root = rep.root.clone();

    let body = format!(r#"{{"root":"{root}","seed":3,"rate":5e6,"job":"epoch-loader"}}"#);
    let (st, _) = post_json(url.clone(), None, body.clone()).await;
    assert_eq!(st, 401, "a plan needs the token");
    // no files: every file in the seeded shuffle; 1.5 MiB files are two leaves each
    let (st, v) = post_json(url.clone(), Some(TOKEN), body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["files"].as_u64(), v["blocks"].as_u64()),
        (Some(3), Some(6)),
        "{v}"
    );
    assert_eq!(v["bytes"].as_u64(), Some(3 * (3 << 19)));
    let status: Value = tokio::task::spawn_blocking(move || {
        let mut r = ureq::get(&status_url).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    })
    .await
    .unwrap();
    let plans = status["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 1, "{status}");
    assert_eq!(plans[0]["job"], "epoch-loader");
    assert_eq!(plans[0]["rate_bps"].as_f64(), Some(5e6));
    // malformed plans get a clear 400 and change nothing
    for bad in [
        format!(r#"{{"root":"{root}","seed":"three"}}"#),
        format!(r#"{{"root":"{root}","seed":-1}}"#),
        format!(r#"{{"root":"{root}","rate":-5}}"#),
        format!(r#"{{"root":"{root}","rate":0}}"#),
        format!(r#"{{"root":"{root}","job":"{}"}}"#, "j".repeat(200)),
        format!(r#"{{"root":"{root}","files":["not-a-cid"]}}"#),
        r#"{"root":"bafynotacid"}"#.to_string(),
    ] {
        let (st, v) = post_json(url.clone(), Some(TOKEN), bad.clone()).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let (st, _) = post_json(url.clone(), Some(TOKEN), "{not json".into()).await;
    assert!((400..500).contains(&st), "{st}");
    assert_eq!(node.tier_status().await.plans.len(), 1);
    node.shutdown().await;
}

/// Reads every file of `ds` in `order` to its end; checks each against `data` (by name).
async fn read_epoch(
    ds: &cairn_retrieval::dataset::Dataset,
    order: cairn_retrieval::dataset::Order,
    data: &[Vec<u8>],
    after_each: impl Fn() -> futures::future::BoxFuture<'static, ()>,
) {
    use tokio::io::AsyncReadExt;
    for (entry, mut r) in ds.readers(order) {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        let i: usize = entry.path[1..2].parse().unwrap(); // "fN.bin"
        assert!(got == data[i], "{} read wrong", entry.path);
        after_each().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_dataset_registers_its_plan_over_the_network_and_reads_the_copies() {
    use cairn_retrieval::client::Progress;
    use cairn_retrieval::dataset::{Dataset, Order};
    let dir = tempfile::tempdir().unwrap();
    let (nodes, data, rep) = slow_network(&dir.path().join("ds")).await;
    let root: Cid = rep.root.parse().unwrap();
    // a training job: a client of the network, not a node
    let (client, _net) = common::client_for(&nodes[0]).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 14);
    let ds = Dataset::open(client.with_progress(tx), &root)
        .await
        .unwrap();
    let pn = ds.plan_node().expect("the dataset has holders");
    let node = nodes.iter().find(|n| n.peer_id() == pn).unwrap().clone();
    node.probe_peers().await;
    let fast = node.fast_peers();
    assert!(!fast.is_empty(), "the plan node measured fast peers");
    let order = Order::Shuffled { seed: 5 };
    // the plan goes over libp2p; the node answers with where its copies go
    let peers = ds.register_plan(pn, order, Some(1e6)).await.unwrap();
    assert_eq!(peers, fast);
    // a stranger's plan for a dataset the node does not keep is refused before any work
    let junk = cairn_core::block::HashAlg::Blake3.cid(0x70, b"no such dataset");
    let req = cairn_net::wire::CtrlRequest::Plan {
        root: junk,
        seed: None,
        rate: 0,
    };
    match _net.ctrl(pn, req).await.unwrap() {
        cairn_net::wire::CtrlResponse::Error(e) => assert!(e.contains("keeps no dataset"), "{e}"),
        other => panic!("a plan for a dataset not kept was answered {other:?}"),
    }
    // registered in the background: wait for it (an event, not a sleep length)
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while node.tier_status().await.plans.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the plan was never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = node.tier_status().await;
    assert_eq!(
        st.plans[0].blocks, 8,
        "every file of the dataset, by the seed"
    );
    // while it follows peers' plans over this dataset, a peer's plan over another dataset it
    // keeps is refused: the job asks the next of that dataset's holders
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("g.bin"), Gen::bytes(400, 1 << 20)).unwrap();
    let rep2 = nodes[0].put(&other).await.unwrap();
    let root2: Cid = rep2.root.parse().unwrap();
    let req = cairn_net::wire::CtrlRequest::Plan {
        root: root2,
        seed: None,
        rate: 0,
    };
    match _net.ctrl(pn, req).await.unwrap() {
        cairn_net::wire::CtrlResponse::Error(e) => {
            assert!(e.contains("busy") && e.contains(&root.to_string()), "{e}")
        }
        other => panic!("a plan over a second dataset was answered {other:?}"),
    }
    assert_eq!(st.plans[0].job, format!("peer {}", _net.peer_id()));
    let first = node.prefetch_tick().await;
    assert!(first.prefetched > 0 || first.failed.is_empty(), "{first:?}");
    // the job reads the epoch in that order (auto registration sees it registered already);
    // the node follows after each file
    let n2 = node.clone();
    read_epoch(&ds, order, &data, move || {
        let n = n2.clone();
        Box::pin(async move {
            n.prefetch_tick().await;
        })
    })
    .await;
    // the reader's last report of what it read is sent in the background: wait for it
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = node.tier_status().await;
        if st.plans[0].read == 8 || std::time::Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let p = &st.plans[0];
    assert!(p.prefetched > 0, "{p:?}");
    // the reader reported every block it read (the node sees the reads other holders served
    // only that way), and read every copy made for it
    assert_eq!(p.read, 8, "every planned read was reported: {p:?}");
    assert_eq!(p.fast_reads, p.prefetched, "every copy was read: {p:?}");
    assert!(p.fast_reads > 0, "the reader read copies: {p:?}");
    // and the progress says which leaves came from a fast peer
    let mut from_fast = 0;
    while let Ok(ev) = rx.try_recv() {
        if let Progress::Fetched { peer, .. } = ev {
            from_fast += usize::from(fast.contains(&peer));
        }
    }
    assert!(
        from_fast as u64 >= p.fast_reads,
        "{from_fast} blocks from fast peers"
    );
    println!(
        "plan node {pn}: {} copies made, {} reads of them, {from_fast} blocks from fast peers",
        p.prefetched, p.fast_reads
    );

    // a second job reading in path order registers by itself when it starts
    let (c2, n2net) = common::client_for(&nodes[1]).await;
    let ds2 = Dataset::open(c2, &root).await.unwrap();
    assert_eq!(ds2.plan_node(), Some(pn));
    let _readers: Vec<_> = ds2.readers(Order::Sequential).collect();
    let job = format!("peer {}", n2net.peer_id());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !node.tier_status().await.plans.iter().any(|p| p.job == job) {
        assert!(std::time::Instant::now() < deadline, "no automatic plan");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_told_of_no_fast_peers_asks_again_until_the_node_measured_them() {
    use cairn_retrieval::dataset::{Dataset, Order};
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _data, rep) = slow_network(&dir.path().join("ds")).await;
    let root: Cid = rep.root.parse().unwrap();
    let (client, net) = common::client_for(&nodes[0]).await;
    let ds = Dataset::open(client.clone(), &root).await.unwrap();
    let pn = ds.plan_node().unwrap();
    let node = nodes.iter().find(|n| n.peer_id() == pn).unwrap().clone();
    // the plan node has measured nobody yet: the first answer lists no fast peer
    let _readers: Vec<_> = ds.readers(Order::Shuffled { seed: 9 }).collect();
    let job = format!("peer {}", net.peer_id());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !node.tier_status().await.plans.iter().any(|p| p.job == job) {
        assert!(std::time::Instant::now() < deadline, "no automatic plan");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(client.preferred().is_empty());
    // the node measures its peers (its worker does it on its first tick); the reader's next
    // try learns where the copies go, and the plan is still the one followed
    node.probe_peers().await;
    let fast = node.fast_peers();
    assert!(!fast.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while client.preferred().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never asked again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.preferred(), fast);
    let st = node.tier_status().await;
    assert_eq!(st.plans.iter().filter(|p| p.job == job).count(), 1);
    for n in &nodes {
        n.shutdown().await;
    }
}
