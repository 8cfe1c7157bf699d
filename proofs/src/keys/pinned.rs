//! Keys from a ceremony, pinned by digest. `cairn ceremony finalize` writes a key directory:
//!
//! - `seal.pk`, `seal.vk`, `post.pk`, `post.vk`: arkworks' uncompressed serialization of the
//!   seal and window circuits' proving and verifying keys;
//! - `keys.manifest`: text, one `name value` pair per line, in this order: `cairn-keys 1`,
//!   `sector_size`, `layers`, `challenges`, `batch`, `seal_challenges` (decimal: the network
//!   parameters the circuits were built for), then `seal.pk`, `seal.vk`, `post.pk`, `post.vk`
//!   each with the lowercase hex SHA-256 of that file.
//!
//! A network pins the SHA-256 of `keys.manifest`; a node loads a key file only when the
//! manifest matches the pin and the file matches the manifest, so a key nobody pinned is never
//! used to prove or to verify.

use super::{keys_from_bytes, write_atomic, KeyError, Keys};
use ark_bn254::Bn254;
use ark_groth16::ProvingKey;
use ark_serialize::CanonicalSerialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The manifest's file name.
pub const MANIFEST: &str = "keys.manifest";
/// The key files, in manifest order.
pub const FILES: [&str; 4] = ["seal.pk", "seal.vk", "post.pk", "post.vk"];
/// Largest manifest read.
const MAX_MANIFEST: u64 = 4096;
/// Largest key file read (a 1 GiB sector's keys are far below this).
const MAX_KEY_FILE: u64 = 8 << 30;

/// What a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The network parameters, in manifest order: sector size, layers, challenges, batch and
    /// seal challenges.
    pub params: [u64; 5],
    /// SHA-256 (hex) of each of [`FILES`].
    pub files: [String; 4],
}

/// The network parameters' names, in manifest order.
pub const PARAM_NAMES: [&str; 5] = [
    "sector_size",
    "layers",
    "challenges",
    "batch",
    "seal_challenges",
];

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Manifest {
    /// The manifest's text.
    pub fn encode(&self) -> String {
        let mut s = String::from("cairn-keys 1\n");
        for (n, v) in PARAM_NAMES.iter().zip(self.params) {
            s.push_str(&format!("{n} {v}\n"));
        }
        for (n, d) in FILES.iter().zip(&self.files) {
            s.push_str(&format!("{n} {d}\n"));
        }
        s
    }

    /// Parses a manifest (untrusted text: every line is checked, in order).
    pub fn decode(text: &str) -> Result<Manifest, KeyError> {
        let bad = |why: &str| KeyError::Malformed(format!("{MANIFEST}: {why}"));
        let mut lines = text.lines();
        if lines.next() != Some("cairn-keys 1") {
            return Err(bad("not a cairn-keys 1 manifest"));
        }
        let mut field = |name: &str| -> Result<String, KeyError> {
            let line = lines.next().ok_or_else(|| bad("ends early"))?;
            match line.split_once(' ') {
                Some((n, v)) if n == name => Ok(v.to_string()),
                _ => Err(bad(&format!("expected {name}"))),
            }
        };
        let mut params = [0u64; 5];
        for (p, n) in params.iter_mut().zip(PARAM_NAMES) {
            *p = field(n)?
                .parse()
                .map_err(|_| bad(&format!("{n} is not a number")))?;
        }
        let mut files: [String; 4] = Default::default();
        for (f, n) in files.iter_mut().zip(FILES) {
            let v = field(n)?;
            if v.len() != 64
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(&format!("{n} needs 64 lowercase hex digits")));
            }
            *f = v;
        }
        if lines.next().is_some() {
            return Err(bad("trailing lines"));
        }
        Ok(Manifest { params, files })
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > max {
        return Err(KeyError::Malformed(format!(
            "{} is {len} bytes, more than {max}",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io)
}

/// Writes `seal` and `post` proving keys (with their verifying keys) and the manifest for
/// network parameters `params` (manifest order) to `dir`: the manifest's SHA-256 (hex), which
/// a network pins.
pub fn write(
    dir: &Path,
    params: [u64; 5],
    seal: &ProvingKey<Bn254>,
    post: &ProvingKey<Bn254>,
) -> Result<String, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: [String; 4] = Default::default();
    let mut staged = Vec::new();
    for (k, pk) in [seal, post].into_iter().enumerate() {
        let ser = |e: ark_serialize::SerializationError| KeyError::Setup(e.to_string());
        let mut pk_bytes = Vec::new();
        let mut vk_bytes = Vec::new();
        pk.serialize_uncompressed(&mut pk_bytes).map_err(ser)?;
        pk.vk.serialize_uncompressed(&mut vk_bytes).map_err(ser)?;
        files[2 * k] = sha256_hex(&pk_bytes);
        files[2 * k + 1] = sha256_hex(&vk_bytes);
        staged.push((FILES[2 * k], pk_bytes));
        staged.push((FILES[2 * k + 1], vk_bytes));
    }
    for (name, bytes) in staged {
        write_atomic(&dir.join(name), &bytes)?;
    }
    let text = Manifest { params, files }.encode();
    write_atomic(&dir.join(MANIFEST), text.as_bytes())?;
    Ok(sha256_hex(text.as_bytes()))
}

/// Keys loaded from a pinned directory.
pub struct PinnedKeys {
    /// The manifest.
    pub manifest: Manifest,
    /// Seal circuit keys.
    pub seal: Keys,
    /// Window circuit keys.
    pub post: Keys,
}

/// Loads the keys in `dir` if its manifest's SHA-256 is `pin` (hex) and every file matches
/// the manifest; `pin = None` trusts the manifest found (the CLI's `--keys`, which prints it).
pub fn load(dir: &Path, pin: Option<&str>) -> Result<PinnedKeys, KeyError> {
    let mpath = dir.join(MANIFEST);
    let mbytes = read_bounded(&mpath, MAX_MANIFEST)?;
    if let Some(pin) = pin {
        if sha256_hex(&mbytes) != pin.to_ascii_lowercase() {
            return Err(KeyError::Digest(mpath));
        }
    }
    let text = std::str::from_utf8(&mbytes)
        .map_err(|_| KeyError::Malformed(format!("{MANIFEST} is not UTF-8")))?;
    let manifest = Manifest::decode(text)?;
    let mut bytes = Vec::with_capacity(4);
    for (name, want) in FILES.iter().zip(&manifest.files) {
        let p: PathBuf = dir.join(name);
        let b = read_bounded(&p, MAX_KEY_FILE)?;
        if &sha256_hex(&b) != want {
            return Err(KeyError::Digest(p));
        }
        bytes.push(b);
    }
    let seal = keys_from_bytes(&bytes[0], &bytes[1])?;
    let post = keys_from_bytes(&bytes[2], &bytes[3])?;
    Ok(PinnedKeys {
        manifest,
        seal,
        post,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_reject_anything_else() {
        let m = Manifest {
            params: [262_144, 2, 10, 2, 2],
            files: std::array::from_fn(|i| format!("{:064x}", i + 1)),
        };
        let text = m.encode();
        assert_eq!(Manifest::decode(&text).unwrap(), m);
        for bad in [
            "",
            "cairn-keys 2\n",
            &text.replace("layers", "levels"),
            &text.replace("sector_size 262144", "sector_size -1"),
            &text.replace(&format!("{:064x}", 3), "XYZ"),
            &format!("{text}extra 1\n"),
            &text[..text.len() - 30],
        ] {
            assert!(Manifest::decode(bad).is_err(), "{bad:?}");
        }
    }
}
