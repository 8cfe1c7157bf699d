//! Reading a dataset through a node (`--api`): `cat`, `ls`, `stat CID/path`, `get CID/path`
//! and `car export` resolve the dataset's manifest in the network the node belongs to and
//! fetch only the blocks they need with the retrieval client (parallel, verified, decoded from
//! parity when holders are gone), like `get` of a whole dataset does. Nothing is read from the
//! local repo.

use crate::node_api::{bootstrap_of, client_net};
use anyhow::{Context, Result};
use cairn_core::dag::{DagReader, FetchError};
use cairn_core::{Block, Cid};
use cairn_net::NetClient;
use cairn_retrieval::cache::BlockCache;
use cairn_retrieval::client::{Client, Options, Resolved};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A dataset resolved through a node, with a private block cache in a temporary directory
/// (removed when this is dropped).
pub struct Remote {
    rt: tokio::runtime::Runtime,
    net: NetClient,
    client: Client,
    resolved: Resolved,
    cache: BlockCache,
    _tmp: tempfile::TempDir,
}

impl Remote {
    /// Joins the network of the node behind `api` and resolves dataset `root`.
    pub fn open(api: &str, root: &Cid) -> Result<Remote> {
        let bootstrap = bootstrap_of(api)?;
        let rt = tokio::runtime::Runtime::new()?;
        let net = rt.block_on(client_net(&bootstrap))?;
        let client = Client::new(net.clone(), Options::default());
        let resolved = match rt.block_on(client.resolve(root)) {
            Ok(r) => r,
            Err(e) => {
                rt.block_on(net.shutdown());
                return Err(e).with_context(|| format!("resolving {root} in the network of {api}"));
            }
        };
        let tmp = tempfile::Builder::new()
            .prefix("cairn-remote-")
            .tempdir()
            .context("creating a temporary block cache")?;
        let cache = BlockCache::open(tmp.path()).context("creating a temporary block cache")?;
        Ok(Remote {
            rt,
            net,
            client,
            resolved,
            cache,
            _tmp: tmp,
        })
    }

    /// One verified block of the dataset: from the cache, or fetched (its stripe's holders,
    /// or decoded from parity).
    fn block(&self, cid: &Cid) -> Result<Vec<u8>, FetchError> {
        if let Some(b) = self.cache.get(cid) {
            return Ok(b);
        }
        let &(stripe, pos) =
            self.resolved.position.get(cid).ok_or_else(|| {
                format!("block {cid} is not part of dataset {}", self.resolved.root)
            })?;
        let got = self
            .rt
            .block_on(self.client.obtain(&self.resolved, stripe, &[pos]))?;
        let (_, bytes) = got
            .into_iter()
            .find(|(c, _)| c == cid)
            .ok_or_else(|| format!("block {cid} could not be fetched"))?;
        self.cache.put(cid, &bytes)?;
        Ok(bytes)
    }

    /// A DAG reader that fetches what it reads.
    pub fn reader(&self) -> DagReader<impl FnMut(&Cid) -> Result<Vec<u8>, FetchError> + '_> {
        DagReader::new(move |c: &Cid| self.block(c))
    }

    /// Fetches every block under `cid` at once (stripes in parallel) into the cache, so the
    /// reads that follow hit it.
    pub fn prefetch(&self, cid: &Cid) -> Result<()> {
        self.rt
            .block_on(self.client.fetch_dag(&self.resolved, cid, &self.cache))
            .with_context(|| format!("fetching {cid}"))
    }

    /// Resolves `path` under the dataset's root.
    pub fn resolve(&self, path: &str) -> Result<Cid> {
        let root = self.resolved.root;
        self.reader()
            .resolve(&root, path)
            .with_context(|| format!("resolving {root}/{path}"))
    }

    /// Writes the file at `cid` to `out`.
    pub fn cat(&self, cid: &Cid, out: &mut dyn Write) -> Result<u64, cairn_core::dag::DagError> {
        if let Err(e) = self.prefetch(cid) {
            return Err(cairn_core::dag::DagError::Fetch(e.into()));
        }
        self.reader().read_file(cid, out)
    }

    /// Writes the tree at `cid` to `out` (which must not exist), through `out.cairn-partial`.
    pub fn get(&self, cid: &Cid, out: &Path) -> Result<u64> {
        if out.symlink_metadata().is_ok() {
            anyhow::bail!(
                "{} already exists; choose another output path",
                out.display()
            );
        }
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".cairn-partial");
        let tmp = PathBuf::from(tmp);
        if tmp.symlink_metadata().is_ok() {
            anyhow::bail!(
                "{} already exists; choose another output path",
                tmp.display()
            );
        }
        self.prefetch(cid)?;
        match cairn_repo::export::export(&mut self.reader(), cid, &tmp) {
            Ok(n) => {
                std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
                Err(e).with_context(|| format!("writing {}", out.display()))
            }
        }
    }

    /// Writes the DAG under `cid` as a CAR v1 (each block once, parents first); returns the
    /// blocks written.
    pub fn car_export(&self, cid: &Cid, out: &mut dyn Write) -> Result<u64> {
        self.prefetch(cid)?;
        let mut order = Vec::new();
        self.reader()
            .walk(cid, &mut |c| order.push(*c))
            .with_context(|| format!("walking {cid}"))?;
        out.write_all(&cairn_core::car::header(&[*cid]))?;
        let mut buf = Vec::new();
        for c in &order {
            let data = self
                .block(c)
                .map_err(|e| anyhow::anyhow!("block {c}: {e}"))?;
            buf.clear();
            cairn_core::car::section(
                &Block {
                    cid: *c,
                    data: data.into(),
                },
                &mut buf,
            );
            out.write_all(&buf)?;
        }
        Ok(order.len() as u64)
    }

    /// Leaves the network.
    pub fn close(self) {
        self.rt.block_on(self.net.shutdown());
    }
}
