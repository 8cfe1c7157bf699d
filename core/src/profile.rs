//! Import profiles: the named, recorded parameter sets that fix a dataset's CIDs.

use crate::block::HashAlg;
use thiserror::Error;

/// How a flat directory's size is estimated to decide when it becomes a HAMT shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSplit {
    /// Sum of name length + CID length per link (kubo's and the legacy default).
    LinksBytes,
    /// The exact encoded size of the directory block (IPIP-499 `unixfs-v1-2025`).
    BlockBytes,
}

/// An import profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Name recorded in the manifest.
    pub name: &'static str,
    /// Hash function for every block.
    pub hash: HashAlg,
    /// Fixed chunk size in bytes.
    pub chunk_size: usize,
    /// Maximum links per internal file node (balanced layout).
    pub max_links: usize,
    /// Directory size above which it is HAMT-sharded.
    pub shard_threshold: usize,
    /// How the directory size is estimated.
    pub shard_split: ShardSplit,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
}

/// Names of the built-in profiles, default first.
pub const PROFILE_NAMES: [&str; 3] = ["cairn-v1", "unixfs-v1-2025", "kubo-legacy"];

/// An unknown profile name or bad stripe parameters.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    /// No built-in profile has this name.
    #[error("unknown profile {0:?} (known: cairn-v1, unixfs-v1-2025, kubo-legacy)")]
    Unknown(String),
    /// k or m out of range.
    #[error("invalid erasure parameters k={k} m={m}: need 1 <= k, 1 <= m, k + m <= 256")]
    BadStripe {
        /// Data shards.
        k: usize,
        /// Parity shards.
        m: usize,
    },
}

impl Profile {
    /// The default profile: blake3, 1 MiB chunks, 1024 links, RS(4,2).
    pub fn cairn_v1() -> Self {
        Profile {
            name: "cairn-v1",
            hash: HashAlg::Blake3,
            chunk_size: 1 << 20,
            max_links: 1024,
            shard_threshold: 256 << 10,
            shard_split: ShardSplit::BlockBytes,
            k: 4,
            m: 2,
        }
    }

    /// IPIP-499 `unixfs-v1-2025`: as `cairn-v1` with sha2-256.
    pub fn unixfs_v1_2025() -> Self {
        Profile {
            name: "unixfs-v1-2025",
            hash: HashAlg::Sha2_256,
            ..Self::cairn_v1()
        }
    }

    /// kubo's legacy defaults with CIDv1 raw leaves: 256 KiB chunks, 174 links, sha2-256.
    pub fn kubo_legacy() -> Self {
        Profile {
            name: "kubo-legacy",
            hash: HashAlg::Sha2_256,
            chunk_size: 256 << 10,
            max_links: 174,
            shard_threshold: 256 << 10,
            shard_split: ShardSplit::LinksBytes,
            k: 4,
            m: 2,
        }
    }

    /// Looks up a built-in profile by name.
    pub fn by_name(name: &str) -> Result<Self, ProfileError> {
        match name {
            "cairn-v1" => Ok(Self::cairn_v1()),
            "unixfs-v1-2025" => Ok(Self::unixfs_v1_2025()),
            "kubo-legacy" => Ok(Self::kubo_legacy()),
            other => Err(ProfileError::Unknown(other.chars().take(64).collect())),
        }
    }

    /// The same profile with other erasure parameters.
    pub fn with_stripe(mut self, k: usize, m: usize) -> Result<Self, ProfileError> {
        if k == 0 || m == 0 || k + m > 256 {
            return Err(ProfileError::BadStripe { k, m });
        }
        self.k = k;
        self.m = m;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        for n in PROFILE_NAMES {
            assert_eq!(Profile::by_name(n).unwrap().name, n);
        }
        assert!(matches!(
            Profile::by_name("nope"),
            Err(ProfileError::Unknown(_))
        ));
        assert!(Profile::cairn_v1().with_stripe(0, 2).is_err());
        assert!(Profile::cairn_v1().with_stripe(200, 57).is_err());
    }
}
