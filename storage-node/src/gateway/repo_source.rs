//! [`RepoSource`]: the gateway over the embedded repo alone (a non-recursive gateway: what the
//! repo does not hold is not found).

use super::error::GatewayError;
use super::source::BlockSource;
use bytes::Bytes;
use cairn_core::block::{DAG_PB, SHA2_256};
use cairn_repo::{Repo, RepoError};
use cid::{Cid, Version};
use std::sync::Arc;

/// A [`BlockSource`] over a [`Repo`]: blocks are read (and verified, corruption quarantined)
/// on the blocking thread pool, since the store is synchronous.
///
/// A dag-pb sha2-256 block is found under either CID version: kubo's CIDv0 `Qm...` and its
/// CIDv1 `bafy...` name the same bytes, and CARs written by kubo store the version they link.
#[derive(Clone)]
pub struct RepoSource {
    repo: Arc<Repo>,
}

impl RepoSource {
    /// A source over `repo`.
    pub fn new(repo: Arc<Repo>) -> Self {
        RepoSource { repo }
    }

    /// The repo served.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }
}

/// The other CID version of a dag-pb sha2-256 CID, under which the same block may be stored.
pub fn other_version(cid: &Cid) -> Option<Cid> {
    let mh = cid.hash();
    if cid.codec() != DAG_PB || mh.code() != SHA2_256 || mh.size() != 32 {
        return None;
    }
    match cid.version() {
        Version::V0 => Some(Cid::new_v1(DAG_PB, *mh)),
        Version::V1 => Cid::new_v0(*mh).ok(),
    }
}

fn read(repo: &Repo, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
    for c in std::iter::once(*cid).chain(other_version(cid)) {
        match repo.block(&c) {
            Ok(b) => return Ok(Some(Bytes::from(b))),
            Err(RepoError::Missing(_)) => continue,
            Err(e) => {
                return Err(GatewayError::Source {
                    cid: *cid,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(None)
}

impl BlockSource for RepoSource {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        let (repo, c) = (self.repo.clone(), *cid);
        tokio::task::spawn_blocking(move || read(&repo, &c))
            .await
            .map_err(|e| GatewayError::Source {
                cid: *cid,
                reason: format!("read task failed: {e}"),
            })?
    }

    fn has_local(&self, cid: &Cid) -> bool {
        std::iter::once(*cid)
            .chain(other_version(cid))
            .any(|c| self.repo.store().has(&c).unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::{Block, HashAlg, RAW};
    use cairn_repo::store::{Batch, Durability};

    #[tokio::test]
    async fn finds_a_dag_pb_block_under_either_cid_version() {
        let repo = Repo::in_memory();
        let node = Block::new(HashAlg::Sha2_256, DAG_PB, vec![0x0a, 0x02, 0x08, 0x01]);
        let v0 = Cid::new_v0(*node.cid.hash()).unwrap();
        let mut b = Batch::new();
        b.put_block(Block {
            cid: v0,
            data: node.data.clone(),
        });
        repo.store().write(b, Durability::Sync).unwrap();
        let src = RepoSource::new(Arc::new(repo));
        assert_eq!(other_version(&v0), Some(node.cid));
        assert_eq!(other_version(&node.cid), Some(v0));
        for c in [v0, node.cid] {
            assert!(src.has_local(&c));
            assert_eq!(src.block(&c).await.unwrap(), Some(node.data.clone()));
        }
        let raw = HashAlg::Sha2_256.cid(RAW, b"x");
        assert_eq!(other_version(&raw), None);
        assert!(!src.has_local(&raw));
        assert_eq!(src.block(&raw).await.unwrap(), None);
    }
}
