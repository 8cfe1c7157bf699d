//! Streaming a dataset's files through `Dataset` in bounded memory, end to end: a provider
//! that logs every block it serves and a client on loopback, in one process. Files of every
//! boundary size of a small profile (1 KiB chunks, 4 links per node, so three DAG levels
//! appear at 17 KiB), a hand-built DAG with dag-pb leaves and inline data, parity fallback,
//! and the errors a reader reports.

use bytes::Bytes;
use cairn_core::block::{Block, DAG_PB, RAW};
use cairn_core::dagpb::{PbLink, PbNode};
use cairn_core::erasure::Coder;
use cairn_core::importer::{build_directory, import_bytes, DirEntry};
use cairn_core::profile::Profile;
use cairn_core::testgen::Gen;
use cairn_core::unixfs::{DataType, UnixFsData};
use cairn_core::{manifest, Cid};
use cairn_net::wire::{NodeInfo, PutStatus};
use cairn_net::{Keypair, NetClient, NetConfig, NoService, PeerId, Service};
use cairn_retrieval::dataset::{Dataset, FileEntry, Order};
use cairn_retrieval::{Client, Options, RetrievalError};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Serves every block of one dataset, except those in `refuse`, and logs what it serves.
struct Provider {
    blocks: HashMap<Cid, Bytes>,
    refuse: HashSet<Cid>,
    served: Mutex<Vec<Cid>>,
}

impl Provider {
    fn get(&self, cid: &Cid) -> Option<Bytes> {
        if self.refuse.contains(cid) {
            return None;
        }
        self.blocks.get(cid).cloned()
    }

    fn served(&self) -> Vec<Cid> {
        self.served.lock().unwrap().clone()
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
        let b = self.get(cid);
        if b.is_some() {
            self.served.lock().unwrap().push(*cid);
        }
        b
    }
    fn put_block(&self, _: PeerId, _: &Cid, _: Block) -> PutStatus {
        PutStatus::NoSpace
    }
}

/// A dataset's blocks in RS(4,2) stripes and its manifest.
struct Published {
    root: Cid,
    blocks: HashMap<Cid, Bytes>,
    /// Data then parity shard CIDs, per stripe.
    stripes: Vec<Vec<Cid>>,
    head: Block,
}

fn publish(profile: &Profile, root: Cid, dag: Vec<Block>) -> Published {
    let mut seen = HashSet::new();
    let dag: Vec<Block> = dag.into_iter().filter(|b| seen.insert(b.cid)).collect();
    let coder = Coder::new(profile.k, profile.m).unwrap();
    let mut blocks: HashMap<Cid, Bytes> = HashMap::new();
    let (mut stripes, mut records) = (Vec::new(), Vec::new());
    for group in dag.chunks(profile.k) {
        let refs: Vec<&Block> = group.iter().collect();
        let (s, parity) = coder.encode(profile.hash, &refs).unwrap();
        stripes.push(s.shards().copied().collect());
        records.push(s);
        blocks.extend(parity.into_iter().map(|b| (b.cid, b.data)));
    }
    let bytes = dag.iter().map(|b| b.data.len() as u64).sum();
    blocks.extend(dag.into_iter().map(|b| (b.cid, b.data)));
    let (_, mut mblocks) = manifest::encode(profile, root, bytes, blocks.len() as u64, &records);
    let head = mblocks.pop().unwrap();
    blocks.extend(mblocks.into_iter().map(|b| (b.cid, b.data)));
    blocks.insert(head.cid, head.data.clone());
    Published {
        root,
        blocks,
        stripes,
        head,
    }
}

/// Starts a provider of `p` (refusing `refuse`) and a client network connected to it.
async fn serve(p: &Published, refuse: HashSet<Cid>) -> (Arc<Provider>, NetClient, NetClient) {
    let provider = Arc::new(Provider {
        blocks: p.blocks.clone(),
        refuse,
        served: Mutex::new(Vec::new()),
    });
    let (pnet, _ev) = cairn_net::start(
        Keypair::generate_ed25519(),
        NetConfig::default(),
        provider.clone(),
    )
    .await
    .unwrap();
    pnet.publish_manifest(&p.root, &p.head).await.unwrap();
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
    (provider, pnet, cnet)
}

/// 1 KiB chunks, 4 links per file node.
fn small_profile() -> Profile {
    let mut p = Profile::cairn_v1();
    p.chunk_size = 1024;
    p.max_links = 4;
    p
}

/// File sizes, each hitting one path of the reader.
const SIZES: &[(usize, &str)] = &[
    (0, "empty: the empty raw block, nothing to fetch"),
    (1, "one byte: the root is a raw leaf"),
    (1024, "exactly one chunk: still a raw root"),
    (
        1025,
        "one chunk + 1: a file node over a full and a 1-byte leaf",
    ),
    (4 * 1024, "exactly max_links chunks: one file node, full"),
    (
        4 * 1024 + 1,
        "max_links chunks + 1: two levels of file nodes",
    ),
    (17 * 1024 + 7, "three levels, the last leaf short"),
];

/// A directory of one file per size in [`SIZES`], named `size-NNNNN`.
fn sizes_dataset(profile: &Profile) -> (Published, Vec<(String, Vec<u8>)>) {
    let mut dag = Vec::new();
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (i, &(n, _)) in SIZES.iter().enumerate() {
        let data = Gen::bytes(40 + i as u64, n);
        let name = format!("size-{n:05}");
        let entry = import_bytes(profile, &data, &mut dag);
        entries.push(DirEntry {
            name: name.clone(),
            entry,
            counts_in_estimate: true,
        });
        files.push((name, data));
    }
    let dir = build_directory(profile, entries, &mut dag).unwrap();
    (publish(profile, dir.cid, dag), files)
}

fn client(cnet: &NetClient, cache_bytes: u64, read_ahead: usize) -> Client {
    Client::new(
        cnet.clone(),
        Options {
            cache_bytes,
            read_ahead,
            ..Options::default()
        },
    )
}

/// The whole file through a `FileReader`.
async fn read_all(ds: &Dataset, f: &FileEntry) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    ds.reader(f).read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_boundary_size_reads_back_whole_by_range_and_by_seek() {
    let profile = small_profile();
    let (p, files) = sizes_dataset(&profile);
    let (_prov, pnet, cnet) = serve(&p, HashSet::new()).await;
    // a cache of 3 blocks, so reads evict
    let limit = 3 * 1024;
    let ds = Dataset::open(client(&cnet, limit, 2), &p.root)
        .await
        .unwrap();
    let listed: Vec<(&str, u64)> = ds
        .files()
        .iter()
        .map(|f| (f.path.as_str(), f.size))
        .collect();
    let want: Vec<(&str, u64)> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.len() as u64))
        .collect();
    assert_eq!(listed, want);
    let mut seed = 9u64;
    let mut rand = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if n == 0 {
            0
        } else {
            (seed >> 33) % n
        }
    };
    for ((name, data), &(_, what)) in files.iter().zip(SIZES) {
        let f = ds.file(name).unwrap().clone();
        let len = data.len() as u64;
        assert_eq!(&ds.read(&f).await.unwrap()[..], &data[..], "{what}");
        assert_eq!(read_all(&ds, &f).await.unwrap(), *data, "{what}");
        for _ in 0..20 {
            let a = rand(len + 1);
            let b = a + rand(len - a + 1);
            let got = ds.read_range(&f, a..b).await.unwrap();
            assert_eq!(&got[..], &data[a as usize..b as usize], "{what}: {a}..{b}");
        }
        // seeks: forward inside the block being read, backwards, from the end, past the end
        let mut r = ds.reader(&f);
        let mut buf = vec![0u8; 100];
        for pos in [len / 2, len / 2 + 10, len / 3, len.saturating_sub(50), 0] {
            let pos = pos.min(len);
            r.seek(SeekFrom::Start(pos)).await.unwrap();
            let n = r.read(&mut buf).await.unwrap();
            let end = (pos as usize + n).min(data.len());
            assert!(n > 0 || pos == len, "{what}: no bytes at {pos}");
            assert_eq!(&buf[..n], &data[pos as usize..end], "{what}: at {pos}");
        }
        assert_eq!(r.seek(SeekFrom::End(-1)).await.ok(), len.checked_sub(1));
        r.seek(SeekFrom::Start(len + 5)).await.unwrap();
        assert_eq!(r.read(&mut buf).await.unwrap(), 0, "{what}: past the end");
        assert!(r.seek(SeekFrom::Current(-(len as i64) - 6)).await.is_err());
        // a range outside the file is refused
        assert!(matches!(
            ds.read_range(&f, 0..len + 1).await,
            Err(RetrievalError::Range { .. })
        ));
    }
    let s = ds.stats().cache;
    assert!(s.peak_bytes <= limit, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
    // whole files in a seeded order, and readers in the same order
    let order = cairn_retrieval::dataset::shuffle_order(files.len(), 3);
    let got: Vec<_> = ds.stream(Order::Shuffled { seed: 3 }, 2).collect().await;
    for (g, &i) in got.into_iter().zip(&order) {
        let (f, b) = g.unwrap();
        assert_eq!(
            (f.path.as_str(), &b[..]),
            (files[i].0.as_str(), &files[i].1[..])
        );
    }
    for ((f, mut r), &i) in ds.readers(Order::Shuffled { seed: 3 }).zip(&order) {
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(
            (f.path.as_str(), out),
            (files[i].0.as_str(), files[i].1.clone())
        );
    }
    cnet.shutdown().await;
    pnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_fetches_only_the_leaves_under_it() {
    let profile = small_profile();
    let data = Gen::bytes(77, 40 * 1024 + 5);
    let mut dag = Vec::new();
    let file = import_bytes(&profile, &data, &mut dag);
    let leaves: Vec<Cid> = data
        .chunks(1024)
        .map(|c| profile.hash.cid(RAW, c))
        .collect();
    let p = publish(&profile, file.cid, dag);
    let (prov, pnet, cnet) = serve(&p, HashSet::new()).await;
    let limit = 8 * 1024;
    let ds = Dataset::open(client(&cnet, limit, 3), &p.root)
        .await
        .unwrap();
    let f = ds.files()[0].clone();
    assert_eq!((f.path.as_str(), f.size), ("", data.len() as u64));
    // (range, the leaves under it): leaf i holds bytes [1024 i, 1024 (i + 1))
    let cases: &[(std::ops::Range<u64>, std::ops::Range<usize>)] = &[
        (0..1, 0..1),
        (1023..1025, 0..2),
        (5 * 1024..7 * 1024, 5..7),
        (13 * 1024 + 1..30 * 1024 - 1, 13..30),
        (40 * 1024..40 * 1024 + 5, 40..41),
        (7..7, 0..0),
    ];
    for (range, under) in cases {
        ds.cache().clear();
        let before = prov.served().len();
        let fetched_before = ds.stats().fetched_blocks;
        let got = ds.read_range(&f, range.clone()).await.unwrap();
        assert_eq!(
            &got[..],
            &data[range.start as usize..range.end as usize],
            "{range:?}"
        );
        let served = prov.served()[before..].to_vec();
        let raw: HashSet<Cid> = served
            .iter()
            .filter(|c| c.codec() == RAW)
            .copied()
            .collect();
        let want: HashSet<Cid> = leaves[under.clone()].iter().copied().collect();
        assert_eq!(raw, want, "{range:?}: leaves fetched");
        // besides the leaves: the file nodes on their paths (3 levels at most), each once
        let nodes = served.iter().filter(|c| c.codec() == DAG_PB).count();
        assert!(
            nodes <= 3 * under.len().max(1),
            "{range:?}: {nodes} file nodes"
        );
        assert_eq!(served.len(), raw.len() + nodes, "{range:?}: {served:?}");
        assert_eq!(
            ds.stats().fetched_blocks - fetched_before,
            served.len() as u64
        );
    }
    // a range read twice: the second time all from the cache
    ds.cache().clear();
    let before = prov.served().len();
    ds.read_range(&f, 3000..6000).await.unwrap();
    let first = prov.served().len() - before;
    // leaves 2..6, their 2 level-1 nodes, 1 level-2 node, the root
    assert_eq!(first, 4 + 2 + 1 + 1);
    ds.read_range(&f, 3000..6000).await.unwrap();
    assert_eq!(
        prov.served().len() - before,
        first,
        "a cached range was fetched again"
    );
    // a whole read through the reader evicts and stays within the limit
    assert_eq!(read_all(&ds, &f).await.unwrap(), data);
    let s = ds.stats().cache;
    assert!(s.peak_bytes <= limit && s.evictions > 0, "{s:?}");
    cnet.shutdown().await;
    pnet.shutdown().await;
}

/// A file node with inline data over a dag-pb leaf and a raw leaf, as some importers write:
/// `head` + `abc` + `defg`. With `blocksizes` of `lie` instead of the truth, reads fail.
fn inline_dag(lie: Option<[u64; 2]>) -> (Cid, Vec<Block>) {
    let profile = small_profile();
    let hash = profile.hash;
    let mut leaf_data = UnixFsData::new(DataType::File);
    leaf_data.data = b"abc".to_vec();
    leaf_data.filesize = Some(3);
    let pb_leaf = Block::new(
        hash,
        DAG_PB,
        PbNode {
            links: vec![],
            data: Some(leaf_data.encode()),
        }
        .encode(),
    );
    let raw_leaf = Block::new(hash, RAW, b"defg".to_vec());
    let mut d = UnixFsData::new(DataType::File);
    d.data = b"head".to_vec();
    d.blocksizes = lie.map(|l| l.to_vec()).unwrap_or(vec![3, 4]);
    d.filesize = Some(4 + d.blocksizes.iter().sum::<u64>());
    let link = |b: &Block| PbLink {
        hash: b.cid,
        name: Some(String::new()),
        tsize: Some(b.data.len() as u64),
    };
    let root = Block::new(
        hash,
        DAG_PB,
        PbNode {
            links: vec![link(&pb_leaf), link(&raw_leaf)],
            data: Some(d.encode()),
        }
        .encode(),
    );
    (root.cid, vec![pb_leaf, raw_leaf, root])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_data_and_dag_pb_leaves_read_and_lying_sizes_are_errors() {
    let profile = small_profile();
    let (root, dag) = inline_dag(None);
    let p = publish(&profile, root, dag);
    let (_prov, pnet, cnet) = serve(&p, HashSet::new()).await;
    let ds = Dataset::open(client(&cnet, 1 << 20, 2), &root)
        .await
        .unwrap();
    let f = ds.files()[0].clone();
    assert_eq!(f.size, 11);
    let want = b"headabcdefg";
    assert_eq!(read_all(&ds, &f).await.unwrap(), want);
    for a in 0..=11u64 {
        for b in a..=11 {
            let got = ds.read_range(&f, a..b).await.unwrap();
            assert_eq!(&got[..], &want[a as usize..b as usize], "{a}..{b}");
        }
    }
    cnet.shutdown().await;
    pnet.shutdown().await;
    // blocksizes that do not match the leaves: the read that reaches them fails
    for lie in [[3, 5], [2, 4]] {
        let (root, dag) = inline_dag(Some(lie));
        let p = publish(&profile, root, dag);
        let (_prov, pnet, cnet) = serve(&p, HashSet::new()).await;
        let ds = Dataset::open(client(&cnet, 1 << 20, 2), &root)
            .await
            .unwrap();
        let f = ds.files()[0].clone();
        let e = read_all(&ds, &f).await.unwrap_err();
        let inner = e
            .into_inner()
            .unwrap()
            .downcast::<RetrievalError>()
            .unwrap();
        assert!(
            matches!(
                *inner,
                RetrievalError::Dag(cairn_core::dag::DagError::Inconsistent(_))
            ),
            "{lie:?}: {inner}"
        );
        // bytes before the lie still read
        assert_eq!(&ds.read_range(&f, 0..4).await.unwrap()[..], b"head");
        cnet.shutdown().await;
        pnet.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_leaves_are_decoded_from_parity_until_too_few_shards_remain() {
    let profile = small_profile();
    let data = Gen::bytes(5, 12 * 1024);
    let mut dag = Vec::new();
    let file = import_bytes(&profile, &data, &mut dag);
    let p = publish(&profile, file.cid, dag);
    // stripe 1 holds leaves 4..8 (the DAG lists leaves before the nodes above them)
    let stripe = p.stripes[1].clone();
    let leaf = profile.hash.cid(RAW, &data[4 * 1024..5 * 1024]);
    assert!(stripe[..4].contains(&leaf));
    // one leaf gone: decoded from parity
    let (_prov, pnet, cnet) = serve(&p, HashSet::from([leaf])).await;
    let ds = Dataset::open(client(&cnet, 1 << 20, 4), &p.root)
        .await
        .unwrap();
    let f = ds.files()[0].clone();
    assert_eq!(read_all(&ds, &f).await.unwrap(), data);
    cnet.shutdown().await;
    pnet.shutdown().await;
    // the leaf and both parity shards gone: reads of other stripes work, that one fails
    let refuse: HashSet<Cid> = [leaf, stripe[4], stripe[5]].into_iter().collect();
    let (_prov, pnet, cnet) = serve(&p, refuse).await;
    let ds = Dataset::open(client(&cnet, 1 << 20, 4), &p.root)
        .await
        .unwrap();
    let f = ds.files()[0].clone();
    assert_eq!(
        &ds.read_range(&f, 0..4096).await.unwrap()[..],
        &data[..4096]
    );
    let e = read_all(&ds, &f).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Other);
    let inner = e
        .into_inner()
        .unwrap()
        .downcast::<RetrievalError>()
        .unwrap();
    assert!(
        matches!(*inner, RetrievalError::Stripe { index: 1, .. }),
        "{inner}"
    );
    cnet.shutdown().await;
    pnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hamt_directories_and_subdirectories_list_in_path_order() {
    let mut profile = small_profile();
    profile.shard_threshold = 200; // 40 entries shard into a HAMT with sub-shards
    let mut dag = Vec::new();
    let entry = |name: &str, entry| DirEntry {
        name: name.to_string(),
        entry,
        counts_in_estimate: true,
    };
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    let mut many = Vec::new();
    for i in 0..40u64 {
        let data = Gen::bytes(i, 100 + 50 * i as usize);
        many.push(entry(
            &format!("f{i:02}"),
            import_bytes(&profile, &data, &mut dag),
        ));
        want.push((format!("many/f{i:02}"), data));
    }
    let many = build_directory(&profile, many, &mut dag).unwrap();
    let b_data = Gen::bytes(100, 3000);
    let b = import_bytes(&profile, &b_data, &mut dag);
    let a = build_directory(&profile, vec![entry("b", b)], &mut dag).unwrap();
    let ac_data = Gen::bytes(101, 10);
    let ac = import_bytes(&profile, &ac_data, &mut dag);
    let link = cairn_core::importer::symlink(&profile, "a/b", &mut dag);
    let root = build_directory(
        &profile,
        vec![
            DirEntry {
                counts_in_estimate: false,
                ..entry("many", many)
            },
            DirEntry {
                counts_in_estimate: false,
                ..entry("a", a)
            },
            entry("a-c", ac),
            entry("link", link),
        ],
        &mut dag,
    )
    .unwrap();
    let hamt_root = dag.iter().find(|b| b.cid == many.cid).unwrap();
    let node = PbNode::decode(&hamt_root.data).unwrap();
    let kind = UnixFsData::decode(node.data.as_deref().unwrap())
        .unwrap()
        .kind;
    assert_eq!(kind, DataType::HamtShard);
    let sub_shards = node
        .links
        .iter()
        .filter(|l| l.name.as_ref().unwrap().len() == 2);
    assert!(sub_shards.count() > 0, "no second HAMT level");
    // depth first, entries by name: a/b before a-c although '-' < '/'; the symlink is skipped
    want.insert(0, ("a-c".into(), ac_data));
    want.insert(0, ("a/b".into(), b_data));
    let p = publish(&profile, root.cid, dag);
    let (_prov, pnet, cnet) = serve(&p, HashSet::new()).await;
    let ds = Dataset::open(client(&cnet, 1 << 20, 2), &p.root)
        .await
        .unwrap();
    let listed: Vec<&str> = ds.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        listed,
        want.iter().map(|w| w.0.as_str()).collect::<Vec<_>>()
    );
    for (path, data) in &want {
        let f = ds.file(path).unwrap();
        assert_eq!(f.size, data.len() as u64);
        assert_eq!(&ds.read(f).await.unwrap()[..], &data[..], "{path}");
    }
    assert!(ds.file("link").is_none() && ds.file("many").is_none());
    cnet.shutdown().await;
    pnet.shutdown().await;
}
