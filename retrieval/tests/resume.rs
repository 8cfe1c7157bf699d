//! Resuming a download after a power loss, end to end: a provider and a client on loopback,
//! in one process. The state a power loss leaves (a journal naming leaves whose bytes never
//! reached the disk) is written by hand before the download runs again.

use bytes::Bytes;
use cairn_core::erasure::Coder;
use cairn_core::importer::import_bytes;
use cairn_core::profile::Profile;
use cairn_core::testgen::Gen;
use cairn_core::{manifest, Block, Cid};
use cairn_net::wire::{NodeInfo, PutStatus};
use cairn_net::{Keypair, NetClient, NetConfig, NoService, PeerId, Service};
use cairn_retrieval::{Client, Options, Progress};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Serves every block of one dataset, except those in `refuse`.
struct Provider {
    blocks: HashMap<Cid, Bytes>,
    refuse: HashSet<Cid>,
}

impl Provider {
    fn get(&self, cid: &Cid) -> Option<Bytes> {
        if self.refuse.contains(cid) {
            return None;
        }
        self.blocks.get(cid).cloned()
    }
}

impl Service for Provider {
    fn info(&self) -> NodeInfo {
        NodeInfo::default()
    }
    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        cids.iter().map(|c| self.get(c).is_some()).collect()
    }
    fn get_block(&self, _: PeerId, cid: &Cid) -> Option<Bytes> {
        self.get(cid)
    }
    fn put_block(&self, _: PeerId, _: &Cid, _: Block) -> PutStatus {
        PutStatus::NoSpace
    }
}

const CHUNK: usize = 1 << 20;

/// A dataset of one file: 6 full 1 MiB leaves and a short one, in two RS(4,2) stripes (the
/// second holds the root node).
struct Dataset {
    data: Vec<u8>,
    root: Cid,
    blocks: HashMap<Cid, Bytes>,
    /// Leaf CIDs in file order.
    leaves: Vec<Cid>,
    /// For each stripe: its data and parity shard CIDs.
    stripes: Vec<Vec<Cid>>,
    head: Block,
}

fn dataset() -> Dataset {
    let profile = Profile::cairn_v1();
    let data = Gen::bytes(14, 6 * CHUNK + 12_345);
    let mut dag = Vec::new();
    let root = import_bytes(&profile, &data, &mut dag).cid;
    let coder = Coder::new(profile.k, profile.m).unwrap();
    let mut blocks: HashMap<Cid, Bytes> = HashMap::new();
    let mut stripes = Vec::new();
    let mut records = Vec::new();
    for group in dag.chunks(profile.k) {
        let refs: Vec<&Block> = group.iter().collect();
        let (s, parity) = coder.encode(profile.hash, &refs).unwrap();
        stripes.push(s.shards().copied().collect());
        records.push(s);
        blocks.extend(parity.into_iter().map(|b| (b.cid, b.data)));
    }
    let leaves = data
        .chunks(CHUNK)
        .map(|c| profile.hash.cid(cairn_core::block::RAW, c))
        .collect();
    blocks.extend(dag.into_iter().map(|b| (b.cid, b.data)));
    let (_, mut mblocks) = manifest::encode(
        &profile,
        root,
        data.len() as u64,
        blocks.len() as u64,
        &records,
    );
    let head = mblocks.pop().unwrap();
    blocks.extend(mblocks.into_iter().map(|b| (b.cid, b.data)));
    blocks.insert(head.cid, head.data.clone());
    Dataset {
        data,
        root,
        blocks,
        leaves,
        stripes,
        head,
    }
}

/// Starts a provider of `d` (refusing `refuse`) and a client connected to it.
async fn provider_and_client(d: &Dataset, refuse: HashSet<Cid>) -> (NetClient, NetClient) {
    let service = Provider {
        blocks: d.blocks.clone(),
        refuse,
    };
    let (pnet, _ev) = cairn_net::start(
        Keypair::generate_ed25519(),
        NetConfig::default(),
        Arc::new(service),
    )
    .await
    .unwrap();
    pnet.publish_manifest(&d.root, &d.head).await.unwrap();
    let addr = pnet.listen_addrs().await.unwrap()[0].clone();
    let cfg = NetConfig {
        bootstrap: vec![addr.clone()],
        server: false,
        ..NetConfig::default()
    };
    let (cnet, _ev) = cairn_net::start(Keypair::generate_ed25519(), cfg, Arc::new(NoService))
        .await
        .unwrap();
    cnet.dial(addr).await.unwrap();
    (pnet, cnet)
}

/// What a power loss after run 1 journaled every leaf leaves behind: the journal names all
/// leaves, the partial file holds the source except leaf `lost`, whose bytes are zeros.
fn power_loss_state(d: &Dataset, out: &Path, lost: usize) {
    let dir = out.with_file_name("out.cairn-blocks");
    std::fs::create_dir_all(&dir).unwrap();
    let journal: String = d.leaves.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(dir.join("done"), journal).unwrap();
    let mut bytes = d.data.clone();
    let end = ((lost + 1) * CHUNK).min(bytes.len());
    bytes[lost * CHUNK..end].fill(0);
    // as a lost write leaves it: the file has its full length, the range holds zeros
    std::fs::write(out.with_file_name("out.cairn-partial"), &bytes).unwrap();
}

/// Runs `get`, returning its result and the raw leaves it fetched.
async fn get(
    cnet: &NetClient,
    root: &Cid,
    out: &Path,
) -> (Result<u64, cairn_retrieval::RetrievalError>, Vec<Cid>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let client = Client::new(cnet.clone(), Options::default()).with_progress(tx);
    let r = client.get(root, out).await;
    drop(client);
    let mut fetched = Vec::new();
    while let Some(e) = rx.recv().await {
        if let Progress::Fetched { cid, .. } = e {
            if cid.codec() == cairn_core::block::RAW {
                fetched.push(cid);
            }
        }
    }
    (r, fetched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeroed_journaled_leaf_is_refetched_on_resume() {
    let d = dataset();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let lost = 5;
    power_loss_state(&d, &out, lost);
    let (pnet, cnet) = provider_and_client(&d, HashSet::new()).await;
    let (r, fetched) = get(&cnet, &d.root, &out).await;
    assert_eq!(r.unwrap(), d.data.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), d.data);
    // only the leaf that does not verify is fetched again; the others are trusted from disk
    assert_eq!(fetched, vec![d.leaves[lost]]);
    assert!(!dir.path().join("out.cairn-partial").exists());
    assert!(!dir.path().join("out.cairn-blocks").exists());
    cnet.shutdown().await;
    pnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_leaf_that_cannot_be_refetched_is_not_renamed_into_place() {
    let d = dataset();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let lost = 1;
    power_loss_state(&d, &out, lost);
    // the provider no longer serves the leaf, nor its stripe's parity: it cannot be rebuilt
    let stripe = d
        .stripes
        .iter()
        .find(|s| s.contains(&d.leaves[lost]))
        .unwrap();
    let mut refuse: HashSet<Cid> = stripe[stripe.len() - 2..].iter().copied().collect();
    refuse.insert(d.leaves[lost]);
    let (pnet, cnet) = provider_and_client(&d, refuse).await;
    let (r, _) = get(&cnet, &d.root, &out).await;
    assert!(r.is_err(), "a download with a zeroed leaf finished");
    assert!(
        !out.exists(),
        "a tree with a zeroed leaf was renamed into place"
    );
    assert!(dir.path().join("out.cairn-partial").exists());
    cnet.shutdown().await;
    pnet.shutdown().await;
}
