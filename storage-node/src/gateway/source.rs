//! Where the gateway's blocks come from: the [`BlockSource`] trait, and the fetch helper the
//! rest of the gateway goes through (identity CIDs are answered from the CID itself).

use super::error::GatewayError;
use super::params::IDENTITY;
use bytes::Bytes;
use cid::Cid;
use std::future::Future;

/// A source of verified blocks for the gateway: the embedded repo ([`super::RepoSource`]), or
/// a node that also fetches what it lacks from its peers.
///
/// Implementations must only ever return bytes that hash to the CID asked for: the gateway
/// serves them as they are (raw blocks, CAR sections, file bytes).
pub trait BlockSource: Send + Sync + 'static {
    /// The block's bytes, verified against its CID; `Ok(None)` when it cannot be had.
    fn block(&self, cid: &Cid) -> impl Future<Output = Result<Option<Bytes>, GatewayError>> + Send;

    /// The block `cid`, asked for while serving a request rooted at `root` (the CID the URL
    /// names): a source that fetches from the network may use the dataset `root` belongs to
    /// (its stripes, parity and holders) to find the block. By default [`Self::block`].
    fn block_in(
        &self,
        root: &Cid,
        cid: &Cid,
    ) -> impl Future<Output = Result<Option<Bytes>, GatewayError>> + Send {
        let _ = root;
        self.block(cid)
    }

    /// Whether the block is held locally, without fetching anything (for
    /// `Cache-Control: only-if-cached`, answered with 412 when it is not).
    fn has_local(&self, cid: &Cid) -> bool;
}

/// The data of an identity CID (its digest), or `None` for a hashed CID.
pub fn identity_data(cid: &Cid) -> Option<Bytes> {
    (cid.hash().code() == IDENTITY).then(|| Bytes::copy_from_slice(cid.hash().digest()))
}

/// A block from `src` (identity CIDs from the CID itself); a block that cannot be had is
/// [`GatewayError::BlockUnavailable`].
pub async fn fetch<S: BlockSource>(src: &S, cid: &Cid) -> Result<Bytes, GatewayError> {
    if let Some(data) = identity_data(cid) {
        return Ok(data);
    }
    src.block(cid)
        .await?
        .ok_or(GatewayError::BlockUnavailable(*cid))
}

/// `S` serving one request rooted at `root`: every block is asked for with
/// [`BlockSource::block_in`].
pub struct Rooted<S> {
    /// The source.
    pub inner: std::sync::Arc<S>,
    /// The CID the request's URL names.
    pub root: Cid,
}

impl<S: BlockSource> BlockSource for Rooted<S> {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        self.inner.block_in(&self.root, cid).await
    }

    fn has_local(&self, cid: &Cid) -> bool {
        self.inner.has_local(cid)
    }
}

/// A source limited to what `S` holds locally (`Cache-Control: only-if-cached`): blocks that
/// would have to be fetched are not had.
pub struct LocalOnly<S>(pub std::sync::Arc<S>);

impl<S: BlockSource> BlockSource for LocalOnly<S> {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        if self.0.has_local(cid) {
            self.0.block(cid).await
        } else {
            Ok(None)
        }
    }

    fn has_local(&self, cid: &Cid) -> bool {
        self.0.has_local(cid)
    }
}

/// A source over a map of blocks, for the gateway's unit tests.
#[cfg(test)]
pub struct MapSource(pub std::collections::HashMap<Cid, Bytes>);

#[cfg(test)]
impl BlockSource for MapSource {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        Ok(self.0.get(cid).cloned())
    }

    fn has_local(&self, cid: &Cid) -> bool {
        self.0.contains_key(cid)
    }
}
