//! The block store: a [`BlockStore`] trait with a RocksDB backend ([`RocksStore`]) and an
//! in-memory twin ([`MemoryStore`]) that pass one shared test suite.
//!
//! A store holds blocks by CID plus small tables (pins, datasets, quarantine). Writes go through
//! an atomic [`Batch`]. Reads through [`BlockStore::get`] are verified against the CID; a
//! mismatch is reported as [`StoreError::Corrupt`], never returned as data.
//!
//! No RocksDB type appears in this module's public signatures.

mod memory;
pub(crate) mod packs;
mod rocks;
#[cfg(test)]
pub(crate) mod suite;

pub use memory::MemoryStore;
pub use rocks::RocksStore;

use cairn_core::block::{Block, VerifyError};
use cid::Cid;
use thiserror::Error;

/// A small key-value table beside the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Pinned roots: root CID bytes -> manifest CID bytes (empty if the root has no manifest).
    Pins,
    /// Datasets ingested here: root CID bytes -> manifest CID bytes.
    Datasets,
    /// Blocks found corrupt: CID bytes -> UTF-8 reason.
    Quarantine,
    /// Second copies of manifest head and page blocks: CID bytes -> block bytes. Manifests are
    /// what lets repair rebuild everything else, so they are not left to the erasure code.
    Manifests,
    /// This node's sealed sectors: sector number (u64 big-endian) -> sector metadata (JSON).
    Sectors,
    /// Replicas of the sealed sectors: sector number (u64 big-endian) -> 32 bytes per leaf.
    Replicas,
    /// Blocks already sealed into a sector: CID bytes -> sector number (u64 big-endian).
    Sealed,
    /// Blocks kept only inside sealed replicas (a node's replica-only mode): CID bytes ++ where
    /// the piece starts in the block (u64 big-endian) -> sector number, where the piece starts
    /// in the sector's data, its length (three u64 big-endian).
    InReplica,
    /// The hash-chained audit log: position (u64 big-endian) -> encoded log entry.
    AuditLog,
    /// This node's shards it promoted to fast peers: CID bytes -> promotion record
    /// (`docs/formats.md`).
    Promoted,
    /// Promoted copies held here for peers (the fast tier): CID bytes -> block bytes.
    Cache,
    /// What is known of each promoted copy held here: CID bytes -> cache record
    /// (`docs/formats.md`).
    CacheIndex,
    /// Who published each network dataset held here, the only peer whose `Remove` is
    /// honoured: manifest CID bytes -> publisher peer id bytes (the first claim is kept).
    Publishers,
    /// Bytes of each network dataset that each peer pushed here, charged to that peer's push
    /// quota: manifest CID bytes ++ pusher peer id bytes -> u64 big-endian byte count.
    Pushed,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 14] = [
        Table::Pins,
        Table::Datasets,
        Table::Quarantine,
        Table::Manifests,
        Table::Sectors,
        Table::Replicas,
        Table::Sealed,
        Table::InReplica,
        Table::AuditLog,
        Table::Promoted,
        Table::Cache,
        Table::CacheIndex,
        Table::Publishers,
        Table::Pushed,
    ];

    /// Column family / map name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Pins => "pins",
            Table::Datasets => "datasets",
            Table::Quarantine => "quarantine",
            Table::Manifests => "manifests",
            Table::Sectors => "sectors",
            Table::Replicas => "replicas",
            Table::Sealed => "sealed",
            Table::InReplica => "in_replica",
            Table::AuditLog => "audit_log",
            Table::Promoted => "promoted",
            Table::Cache => "cache",
            Table::CacheIndex => "cache_index",
            Table::Publishers => "publishers",
            Table::Pushed => "pushed",
        }
    }
}

/// One change in a batch.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store a block.
    PutBlock(Block),
    /// Remove a block.
    DeleteBlock(Cid),
    /// Set a table entry.
    Put(Table, Vec<u8>, Vec<u8>),
    /// Remove a table entry.
    Delete(Table, Vec<u8>),
}

/// Changes applied all together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The changes, in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a block.
    pub fn put_block(&mut self, b: Block) -> &mut Self {
        self.ops.push(Op::PutBlock(b));
        self
    }
    /// Removes a block.
    pub fn delete_block(&mut self, cid: Cid) -> &mut Self {
        self.ops.push(Op::DeleteBlock(cid));
        self
    }
    /// Sets a table entry.
    pub fn put(&mut self, t: Table, k: Vec<u8>, v: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put(t, k, v));
        self
    }
    /// Removes a table entry.
    pub fn delete(&mut self, t: Table, k: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Delete(t, k));
        self
    }
}

/// Key-value pairs of a table scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// How durable a write must be when `write` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (write-ahead log synced).
    Sync,
    /// Bulk ingest: atomic, but may be lost in a crash until [`BlockStore::persist`] returns.
    /// Used for stripes, which a re-run of the same ingest rewrites. A crash keeps the Deferred
    /// batches up to some point in write order, each whole, and loses the rest, while Sync
    /// batches written after the lost ones survive: persist before a Sync write that refers
    /// to Deferred data.
    Deferred,
}

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The disk is full.
    #[error("no space left on device while writing to the repo at {path}")]
    NoSpace {
        /// Repo path.
        path: String,
    },
    /// The backend failed.
    #[error("block store: {0}")]
    Backend(String),
    /// A stored block does not match its CID.
    #[error("block {cid} is corrupt on disk")]
    Corrupt {
        /// The block.
        cid: Cid,
        /// What verification found.
        source: VerifyError,
    },
    /// A key in the store is not a CID (the repo was tampered with or is not a Cairn repo).
    #[error("store holds a malformed key in {0}")]
    BadKey(&'static str),
    /// Opening the repo failed.
    #[error("cannot open repo at {path}: {reason}")]
    Open {
        /// Repo path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A store of CID-addressed blocks plus small tables.
pub trait BlockStore: Send + Sync {
    /// Applies `batch` atomically.
    fn write(&self, batch: Batch, durability: Durability) -> Result<(), StoreError>;
    /// Makes every earlier [`Durability::Deferred`] write durable.
    fn persist(&self) -> Result<(), StoreError>;
    /// A block's stored bytes, unverified (scrub and repair use this; everyone else [`get`]).
    ///
    /// [`get`]: BlockStore::get
    fn get_raw(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether a block is present (without reading it).
    fn has(&self, cid: &Cid) -> Result<bool, StoreError>;
    /// A block's stored size, without reading it.
    fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError>;
    /// Calls `f` with every block CID in key order until it returns false.
    fn for_each_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError>;
    /// Like [`for_each_cid`], but walks the stored block bytes rather than any index of them
    /// (so it may read every byte). Both name the same blocks, also after a crash
    /// (`docs/formats.md`, "Crash safety"); consistency checks compare them. The default is for
    /// stores that keep no separate index.
    ///
    /// [`for_each_cid`]: BlockStore::for_each_cid
    fn for_each_stored_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        self.for_each_cid(f)
    }
    /// Whether a block is held only inside a sealed replica, so reading it unseals a sector
    /// (a storage node's replica-only mode); scrub leaves such blocks to the proofs. The default
    /// is for stores that hold every block as its bytes.
    fn held_in_replica(&self, _cid: &Cid) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// A table entry.
    fn table_get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry of a table, in key order.
    fn table_scan(&self, t: Table) -> Result<Entries, StoreError>;
    /// At most `limit` entries of a table with keys from `from` on (inclusive), in key order.
    /// The default filters a whole scan; stores with ordered iterators start at `from`.
    fn table_scan_from(&self, t: Table, from: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(self
            .table_scan(t)?
            .into_iter()
            .filter(|(k, _)| k.as_slice() >= from)
            .take(limit)
            .collect())
    }

    /// A block's bytes, verified against its CID.
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get_raw(cid)? {
            None => Ok(None),
            Some(data) => {
                Block::verify(cid, &data)
                    .map_err(|source| StoreError::Corrupt { cid: *cid, source })?;
                Ok(Some(data))
            }
        }
    }
}
