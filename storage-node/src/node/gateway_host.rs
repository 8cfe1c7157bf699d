//! The node as the gateway's [`BlockSource`]: a block comes from the local repo when it is
//! here (verified, under either CID version), else from the nodes that announced it in the
//! DHT through the retrieval client (verified; lying providers skipped). Fetched blocks are
//! not kept: the gateway reads, it does not pin.

use super::Node;
use crate::gateway::{BlockSource, GatewayError, RepoSource};
use bytes::Bytes;
use cairn_retrieval::client::{Client, Options};
use cid::Cid;

impl BlockSource for Node {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        match RepoSource::new(self.repo_arc()).block(cid).await {
            Ok(Some(b)) => return Ok(Some(b)),
            Ok(None) => {}
            Err(e) => tracing::warn!(%cid, error = %e, "local copy unreadable; asking providers"),
        }
        Client::new(self.net().clone(), Options::default())
            .fetch_block(cid)
            .await
            .map_err(|e| GatewayError::Source {
                cid: *cid,
                reason: e.to_string(),
            })
    }

    fn has_local(&self, cid: &Cid) -> bool {
        RepoSource::new(self.repo_arc()).has_local(cid)
    }
}
