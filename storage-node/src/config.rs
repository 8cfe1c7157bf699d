//! `cairn-node` configuration: a documented TOML file (see `storage-node/config.example.toml`).

use cairn_proofs::audit::KeySource;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Config file failures.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Reading or writing the file failed.
    #[error("config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("config {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The node's configuration. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Repo directory: blocks (RocksDB), `identity.key` (ed25519, the peer id) and `api.token`.
    pub repo: PathBuf,
    /// libp2p listen addresses. Port 0 picks a free port.
    pub listen: Vec<String>,
    /// Peers to join at start, as multiaddrs ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// HTTP API address. Keep it on loopback: reads are open, writes need the token.
    pub api: String,
    /// IPFS HTTP gateway address (`docs/gateway.md`): the trustless and path gateway over
    /// this node's blocks and, for blocks it lacks, its peers'. Port 0 picks a free port (the
    /// bound address is in `/api/v0/status` as `gateway`). Empty or `off`: no gateway. It is
    /// read-only and needs no token, but it fetches from peers on any request: keep it on
    /// loopback unless it is meant to be public.
    pub gateway: String,
    /// Bytes this node offers to store; peers weight placement by what is free.
    pub capacity: u64,
    /// Import profile of datasets put through this node (`cairn-v1`, `unixfs-v1-2025`,
    /// `kubo-legacy`).
    pub profile: String,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe; any `m` of a stripe's `k + m` holders may be lost.
    pub m: usize,
    /// Seconds between repair rounds (0 turns the timer off; a disconnect still triggers one).
    pub repair_interval_secs: u64,
    /// Seconds between scrubs of the local store (0 turns scrubbing off).
    pub scrub_interval_secs: u64,
    /// Seconds between collection passes (0 turns them off): a block that no dataset, pin or
    /// push of the last interval needs goes when two passes in a row find it so.
    pub collect_interval_secs: u64,
    /// Proofs of storage.
    pub proofs: ProofsConfig,
    /// The fast tier: promoting hot shards to fast peers.
    pub placement: PlacementConfig,
}

/// `[placement]`: the fast tier (design §4). Each window a node runs the placement engine on the
/// reads it served, copies the shards it predicts hot to the fastest peers it measured, and
/// drops copies that went cold. The erasure-coded base placement never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementConfig {
    /// Run placement windows (probes, engine, promotions and demotions).
    pub enabled: bool,
    /// Seconds per placement window.
    pub window_secs: u64,
    /// Bytes of this node's shards that may be promoted at once (the engine's capacity).
    pub promote_bytes: u64,
    /// Bytes promoted per window at most (the migration budget).
    pub budget_bytes: u64,
    /// Bytes of promoted copies this node keeps for its peers (0: it offers no fast tier).
    pub cache_bytes: u64,
    /// Reads a shard needs before it may be promoted.
    pub min_reads: u64,
    /// Windows without a read after which a promoted shard is demoted.
    pub idle_windows: u64,
    /// Bytes of readers' planned blocks (`POST /api/v0/plan`) this node may hold on fast peers
    /// at once, over all plans (0: plans only rank shards for the engine, nothing is
    /// prefetched).
    pub plan_bytes: u64,
    /// How far ahead of a planned reader to prefetch, in seconds of reading at its declared
    /// rate.
    pub lookahead_secs: u64,
    /// Seconds a plan's copy that no followed plan reads again (a spare) stays on its fast
    /// peer: the next epoch's plan, registered after it, reads it again. Plans keep what they
    /// hold, spares included, before they copy more (0: dropped once read, and the plans'
    /// room follows the readers).
    pub plan_keep_secs: u64,
    /// Milliseconds between steps of following readers' plans (reads observed, blocks copied
    /// and dropped).
    pub prefetch_ms: u64,
    /// What ranks the shards to promote: `engine` (the placement engine) or `lru` (least
    /// recently used, a baseline for `cairn bench tier`).
    pub policy: crate::tier::TierPolicy,
    /// Labelled examples (from the reads here) the placement engine's first model needs;
    /// until it is trained, `min_reads` decides admission, then the model does.
    pub train_after: u64,
    /// Delay before serving each block, in milliseconds: emulates slow media in a local
    /// devnet, so that peers measure this node as slow. Keep 0 in production.
    pub emulated_read_delay_ms: u64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            enabled: true,
            window_secs: 60,
            promote_bytes: 1 << 30,
            budget_bytes: 256 << 20,
            cache_bytes: 1 << 30,
            min_reads: 2,
            idle_windows: 3,
            plan_bytes: 256 << 20,
            lookahead_secs: 30,
            plan_keep_secs: 60,
            train_after: 256,
            prefetch_ms: 1000,
            policy: crate::tier::TierPolicy::Engine,
            emulated_read_delay_ms: 0,
        }
    }
}

impl PlacementConfig {
    /// The node options (windows run on a timer only when enabled; they can always be run
    /// through the API).
    pub fn options(&self) -> crate::tier::TierOptions {
        crate::tier::TierOptions {
            auto: self.enabled,
            window: std::time::Duration::from_secs(self.window_secs.max(1)),
            promote_bytes: self.promote_bytes,
            budget_bytes: self.budget_bytes,
            cache_bytes: self.cache_bytes,
            min_reads: self.min_reads.max(1),
            idle_windows: self.idle_windows.max(1),
            plan_bytes: self.plan_bytes,
            lookahead: std::time::Duration::from_secs(self.lookahead_secs.max(1)),
            plan_keep: std::time::Duration::from_secs(self.plan_keep_secs),
            train_after: usize::try_from(self.train_after.max(1)).unwrap_or(usize::MAX),
            policy: self.policy,
            prefetch_every: std::time::Duration::from_millis(self.prefetch_ms.max(50)),
        }
    }
}

/// `[proofs]`: sealing, window proofs and audits. Every node of a network must use the same
/// sector size, layers, challenges and batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProofsConfig {
    /// Seal stored data, answer audits and audit peers.
    pub enabled: bool,
    /// Sector size in bytes (a power of two; 31/32 of it holds data).
    pub sector_size: usize,
    /// Labelling layers.
    pub layers: usize,
    /// PoSt challenges per sector.
    pub challenges: usize,
    /// Sectors per window proof.
    pub batch: usize,
    /// Seconds per proving window.
    pub window_secs: u64,
    /// Seconds between looks for unsealed blocks.
    pub seal_interval_secs: u64,
    /// Seconds data too small to fill a sector waits for more before it is sealed in a
    /// partly empty sector (0: at once). Keep it well below `grace_secs`.
    pub seal_wait_secs: u64,
    /// Seconds a peer counts as the holder of a block it says it has before a sealed sector
    /// of its verified records lists the block (the grace period for new shards: sealing
    /// takes time).
    pub grace_secs: u64,
    /// Windows a retired sector's replica is kept (and proved when an auditor asks) after its
    /// retirement is gossiped, before it is deleted: auditors that missed the gossip still get
    /// answers meanwhile.
    pub retire_grace_windows: u64,
    /// Seconds a verified sector counts for the blocks it lists before it has passed a seal
    /// check (its designated auditors ask one a window; a prover that never answers stops
    /// counting for those blocks after this).
    pub seal_check_grace_secs: u64,
    /// How sealed data is kept: `"plain-and-replica"` (the plain blocks beside the replicas,
    /// about twice the disk, reads at disk speed) or `"replica-only"` (only the replicas, each
    /// block unsealed when read).
    pub storage_mode: String,
    /// Use the deterministic development keys, whose trapdoor is public so anyone can forge
    /// proofs under them: development networks and tests only.
    pub dev: bool,
    /// Where development keys are cached (empty: `$CAIRN_KEYS`, else `~/.cache/cairn/keys`).
    pub keys_dir: PathBuf,
    /// The network's key directory from `cairn ceremony finalize` (when `dev` is false).
    pub keys: PathBuf,
    /// The SHA-256 (hex) the network pins for that directory's `keys.manifest`.
    pub keys_sha256: String,
}

/// Seal challenges per seal proof (fixed by the circuit's format).
pub const SEAL_CHALLENGES: usize = 2;

impl Default for ProofsConfig {
    fn default() -> Self {
        ProofsConfig {
            enabled: true,
            sector_size: 64 << 20,
            layers: 2,
            challenges: 10,
            batch: 2,
            window_secs: 60,
            seal_interval_secs: 10,
            seal_wait_secs: 3600,
            grace_secs: 6 * 3600,
            retire_grace_windows: 3,
            seal_check_grace_secs: 6 * 3600,
            storage_mode: "plain-and-replica".into(),
            dev: false,
            keys_dir: PathBuf::new(),
            keys: PathBuf::new(),
            keys_sha256: String::new(),
        }
    }
}

/// `$CAIRN_KEYS`, else `~/.cache/cairn/keys`.
pub fn default_keys_dir() -> PathBuf {
    cairn_proofs::keys::default_dir()
}

impl ProofsConfig {
    /// The network parameters.
    pub fn params(&self) -> cairn_proofs::audit::NetParams {
        cairn_proofs::audit::NetParams {
            sector_size: self.sector_size,
            layers: self.layers,
            challenges: self.challenges,
            batch: self.batch,
            seal_challenges: SEAL_CHALLENGES,
        }
    }

    /// Where the node's keys come from: pinned ceremony keys, or the development keys when
    /// `dev` is set; an error names what to set otherwise.
    pub fn key_source(&self) -> Result<KeySource, String> {
        if self.dev {
            return Ok(KeySource::Dev(if self.keys_dir.as_os_str().is_empty() {
                default_keys_dir()
            } else {
                self.keys_dir.clone()
            }));
        }
        let sha = self.keys_sha256.trim().to_ascii_lowercase();
        if self.keys.as_os_str().is_empty() || sha.is_empty() {
            return Err(
                "proofs need the network's keys: set keys (the directory written by \
                        `cairn ceremony finalize`) and keys_sha256 (its manifest's pinned \
                        SHA-256), or dev = true on a development network"
                    .into(),
            );
        }
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("keys_sha256 must be 64 hex digits".into());
        }
        Ok(KeySource::Pinned {
            dir: self.keys.clone(),
            sha256: sha,
        })
    }

    /// The node options, or `None` when proofs are off; an error when proofs are on without
    /// keys ([`ProofsConfig::key_source`]).
    pub fn options(&self) -> Result<Option<crate::proving::ProofOptions>, String> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(crate::proving::ProofOptions {
            params: self.params(),
            window: std::time::Duration::from_secs(self.window_secs.max(5)),
            keys: self.key_source()?,
            seal_interval: std::time::Duration::from_secs(self.seal_interval_secs.max(1)),
            seal_wait: std::time::Duration::from_secs(self.seal_wait_secs),
            grace: std::time::Duration::from_secs(self.grace_secs),
            retire_grace: self.retire_grace_windows,
            check_grace: std::time::Duration::from_secs(self.seal_check_grace_secs),
            replica_only: match self.storage_mode.as_str() {
                "plain-and-replica" => false,
                "replica-only" => true,
                other => {
                    return Err(format!(
                        "storage_mode is \"plain-and-replica\" or \"replica-only\", not {other:?}"
                    ))
                }
            },
        }))
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            repo: default_repo(),
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into()],
            bootstrap: Vec::new(),
            api: "127.0.0.1:5001".into(),
            gateway: DEFAULT_GATEWAY.into(),
            capacity: 64 << 30,
            profile: "cairn-v1".into(),
            k: 4,
            m: 2,
            repair_interval_secs: 60,
            scrub_interval_secs: 3600,
            collect_interval_secs: 3600,
            proofs: ProofsConfig::default(),
            placement: PlacementConfig::default(),
        }
    }
}

/// The gateway address a node serves on unless its config says otherwise.
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:8080";

/// The `gateway` values that turn the gateway off.
pub const GATEWAY_OFF: [&str; 2] = ["", "off"];

/// `$CAIRN_NODE_REPO`, else `~/.cairn-node`.
pub fn default_repo() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_NODE_REPO") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cairn-node")
}

impl NodeConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The gateway's listen address, or `None` when it is off (`gateway = ""` or `"off"`).
    pub fn gateway_addr(&self) -> Option<&str> {
        let g = self.gateway.trim();
        (!GATEWAY_OFF.iter().any(|off| g.eq_ignore_ascii_case(off))).then_some(g)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the config file.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        std::fs::write(path, self.to_toml()).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let c = NodeConfig::default();
        assert_eq!(toml::from_str::<NodeConfig>(&c.to_toml()).unwrap(), c);
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
        let partial: NodeConfig = toml::from_str("k = 6").unwrap();
        assert_eq!(partial.k, 6);
        assert_eq!(partial.m, 2);
    }

    #[test]
    fn the_gateway_is_on_by_default_and_turns_off() {
        // (config value, listen address)
        for (value, want) in [
            (None, Some(DEFAULT_GATEWAY)), // a config written before the key existed
            (Some("127.0.0.1:0"), Some("127.0.0.1:0")),
            (Some(" 0.0.0.0:8081 "), Some("0.0.0.0:8081")),
            (Some(""), None),
            (Some("off"), None),
            (Some("OFF"), None),
        ] {
            let text = value.map_or(String::new(), |v| format!("gateway = {v:?}"));
            let c: NodeConfig = toml::from_str(&text).unwrap();
            assert_eq!(c.gateway_addr(), want, "{text}");
        }
    }

    #[test]
    fn proofs_need_pinned_keys_unless_the_network_is_a_development_one() {
        let sha = "ab".repeat(32);
        for (dev, keys, pin, want) in [
            (true, "", "", Some(KeySource::Dev(default_keys_dir()))),
            (false, "", "", None),
            (false, "/k", "", None),
            (false, "", sha.as_str(), None),
            (false, "/k", "xyz", None),
            (
                false,
                "/k",
                sha.as_str(),
                Some(KeySource::Pinned {
                    dir: "/k".into(),
                    sha256: sha.clone(),
                }),
            ),
            (
                false,
                "/k",
                &sha.to_ascii_uppercase(),
                Some(KeySource::Pinned {
                    dir: "/k".into(),
                    sha256: sha.clone(),
                }),
            ),
        ] {
            let c = ProofsConfig {
                dev,
                keys: keys.into(),
                keys_sha256: pin.into(),
                ..ProofsConfig::default()
            };
            assert_eq!(c.key_source().ok(), want, "{dev} {keys} {pin}");
            assert_eq!(c.options().is_ok(), want.is_some());
        }
        let off = ProofsConfig {
            enabled: false,
            ..ProofsConfig::default()
        };
        assert!(off.options().unwrap().is_none());
    }

    #[test]
    fn storage_modes() {
        // (storage_mode, replica-only, or refused)
        for (mode, want) in [
            ("plain-and-replica", Some(false)),
            ("replica-only", Some(true)),
            ("replica", None),
            ("", None),
        ] {
            let c = ProofsConfig {
                dev: true,
                storage_mode: mode.into(),
                ..ProofsConfig::default()
            };
            let got = c.options().ok().map(|o| o.map(|o| o.replica_only));
            assert_eq!(got, want.map(Some), "{mode:?}");
        }
        assert!(!ProofsConfig::default()
            .options()
            .is_ok_and(|o| o.is_some_and(|o| o.replica_only)));
    }

    #[test]
    fn example_file_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        NodeConfig::load(&p).unwrap();
    }
}
