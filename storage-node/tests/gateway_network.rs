//! A node's gateway serving a dataset it holds only part of, with holders gone: the blocks it
//! lacks come through the retrieval client as shards of their stripes, decoded from parity
//! when their holders are down (`storage-node/src/node/gateway_host.rs`), on a running network
//! in one process on port 0; and a reader's access plan registered with that node.

use cairn_core::car::CarReader;
use cairn_core::testgen::Gen;
use cairn_core::Cid;
use cairn_storage_node::gateway;
use std::sync::Arc;

mod common;

/// A GET of `url`: status, the `X-Ipfs-Roots` header, the body.
async fn get(url: String) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&url).call().unwrap();
        let roots = r
            .headers()
            .get("x-ipfs-roots")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap();
        (r.status().as_u16(), roots, body)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gateway_serves_a_dataset_whose_holders_are_down_from_parity() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let nodes = common::mesh(6, &common::opts(false)).await;
    // three files of 3 MiB and a bit (1 MiB leaves), RS(2,2) over six nodes
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ds");
    std::fs::create_dir_all(&folder).unwrap();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| Gen::bytes(80 + i, (3 << 20) + 777))
        .collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(folder.join(format!("f{i}.bin")), f).unwrap();
    }
    let rep = nodes[0].put(&folder).await.unwrap();
    assert!(rep.distributed);
    // two holders go down; the gateway runs on a node that lacks some of the data shards they
    // held, which only parity can give back now
    let (gw, dead) = (&nodes[5], [nodes[1].peer_id(), nodes[2].peer_id()]);
    let gone: Vec<Cid> = rep
        .placement
        .iter()
        .flat_map(|stripe| stripe.iter().take(2)) // the data shards
        .filter(|s| {
            s.holders
                .iter()
                .any(|h| dead.iter().any(|d| d.to_string() == *h))
        })
        .map(|s| s.cid.parse().unwrap())
        .filter(|c| !gw.repo().store().has(c).unwrap())
        .collect();
    assert!(
        !gone.is_empty(),
        "no data shard of the dead nodes to rebuild"
    );
    nodes[1].shutdown().await;
    nodes[2].shutdown().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(listener, Arc::new(gw.clone())));
    // every file by path, byte for byte
    let mut file_cids = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (status, roots, body) = get(format!("{base}/ipfs/{}/f{i}.bin", rep.root)).await;
        assert_eq!(status, 200);
        assert!(body == *f, "f{i}.bin differs");
        let file: Cid = roots.split(',').next_back().unwrap().parse().unwrap();
        file_cids.push(file);
    }
    // a byte range of a file asked by the file's own CID (as the Python client reads ranges):
    // the gateway finds the file's dataset again and serves verified blocks covering it
    let (status, _, car) = get(format!(
        "{base}/ipfs/{}?format=car&dag-scope=entity&entity-bytes=1048000:2200000",
        file_cids[1]
    ))
    .await;
    assert_eq!(status, 200);
    let mut r = CarReader::new(car.as_slice()).unwrap();
    assert_eq!(r.roots(), &[file_cids[1]]);
    let mut leaves = Vec::new();
    while let Some(b) = r.next_block().unwrap() {
        if b.cid.codec() == 0x55 {
            leaves.push(b.data);
        }
    }
    // bytes 1048000..=2200000 lie in leaves 0, 1 and 2 (1 MiB each)
    assert_eq!(leaves.len(), 3);
    assert!(leaves.concat() == files[1][..3 << 20]);
    // a reader's plan for the epoch (files in a shuffled order) expands to every leaf block,
    // the internal nodes fetched as the gateway fetches them
    let order = [file_cids[2], file_cids[0], file_cids[1]];
    let req = |files: Vec<Cid>| cairn_storage_node::node::PlanRequest {
        root: rep.root.parse().unwrap(),
        files,
        ..Default::default()
    };
    let plan = gw.register_plan(req(order.to_vec())).await.unwrap();
    assert_eq!((plan.files, plan.blocks), (3, 12)); // 4 leaves of each file
    let total: usize = files.iter().map(Vec::len).sum();
    assert_eq!(plan.bytes, total as u64, "leaf sizes from the links");
    // with no files, the dataset's every file in the seeded shuffle
    let mut r = req(Vec::new());
    r.seed = Some(7);
    let all = gw.register_plan(r).await.unwrap();
    assert_eq!((all.files, all.blocks, all.bytes), (3, 12, total as u64));
    let junk = cairn_core::block::HashAlg::Blake3.cid(0x70, b"no such node");
    assert!(gw.register_plan(req(vec![junk])).await.is_err());
    let mut bad = req(order.to_vec());
    bad.rate = Some(f64::NAN);
    assert!(gw.register_plan(bad).await.is_err());
    for (i, n) in nodes.iter().enumerate() {
        if i != 1 && i != 2 {
            n.shutdown().await;
        }
    }
}
