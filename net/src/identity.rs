//! The node's persistent ed25519 identity.

use libp2p::identity::Keypair;
use std::io::Write;
use std::path::Path;
use thiserror::Error;

/// Identity file failures.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("identity key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a valid key.
    #[error("identity key {0} is not a valid ed25519 key (protobuf-encoded libp2p keypair)")]
    Invalid(String),
}

/// Loads the keypair at `path`, or creates one (file mode 0600) when the file is absent.
pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            if bytes.len() > 1024 {
                return Err(IdentityError::Invalid(path.display().to_string()));
            }
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|_| IdentityError::Invalid(path.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = Keypair::generate_ed25519();
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|_| IdentityError::Invalid(path.display().to_string()))?;
            let tmp = path.with_extension("tmp");
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            Ok(kp)
        }
        Err(e) => Err(io(e)),
    }
}

/// Signs `msg` with `key` (ed25519: 64 bytes).
pub fn sign(key: &Keypair, msg: &[u8]) -> Vec<u8> {
    key.sign(msg).unwrap_or_default()
}

/// Whether `sig` is `peer`'s signature over `msg`. `peer` is the peer id's bytes; only peer ids
/// that embed their public key (ed25519 ones do) can be checked, others are rejected.
pub fn verify_signature(peer: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(id) = libp2p::PeerId::from_bytes(peer) else {
        return false;
    };
    let mh = id.as_ref();
    // identity multihash (code 0x00): the digest is the protobuf-encoded public key
    if mh.code() != 0 {
        return false;
    }
    match libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()) {
        Ok(pk) => pk.verify(msg, sig),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_and_garbage_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("identity.key");
        let a = load_or_create(&p).unwrap();
        let b = load_or_create(&p).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(load_or_create(&p), Err(IdentityError::Invalid(_))));
    }

    #[test]
    fn signatures_verify_only_for_their_signer_and_message() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let pa = a.public().to_peer_id().to_bytes();
        let pb = b.public().to_peer_id().to_bytes();
        let sig = sign(&a, b"window 7");
        assert!(verify_signature(&pa, b"window 7", &sig));
        assert!(!verify_signature(&pa, b"window 8", &sig));
        assert!(!verify_signature(&pb, b"window 7", &sig));
        assert!(!verify_signature(b"not a peer id", b"window 7", &sig));
        assert!(!verify_signature(&pa, b"window 7", &sig[..10]));
    }
}
