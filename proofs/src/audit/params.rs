//! A network's sector shape and proof parameters, its development keys, and sealing and proving with them.

use super::*;
use crate::keys::{load_or_setup, KeyError, Keys};
use crate::porep::SealCircuit;
use crate::post::{PostCircuit, Shape};
use crate::sdr::{self, Sealed, SectorParams};
use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_snark::SNARK;
use std::path::{Path, PathBuf};

/// Where a node's Groth16 keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The deterministic development setup, cached in the directory. Its trapdoor is public,
    /// so anyone can forge proofs under it: development networks and tests only.
    Dev(PathBuf),
    /// Keys from a ceremony (`cairn ceremony finalize`) in the directory, loaded only if the
    /// SHA-256 (hex) of its manifest is `sha256` ([`crate::keys::pinned`]).
    Pinned {
        /// The key directory.
        dir: PathBuf,
        /// The pinned SHA-256 of its `keys.manifest`.
        sha256: String,
    },
}

/// The graph seed of format version 1 (fixed: every node must label on the same graph).
pub fn graph_seed() -> [u8; 32] {
    *blake3::hash(b"cairn sdr-lite graph v1").as_bytes()
}

/// A network's proof parameters: every node of a network must use the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetParams {
    /// Sector size in bytes (a power of two, at least 64).
    pub sector_size: usize,
    /// Labelling layers.
    pub layers: usize,
    /// PoSt challenges per sector.
    pub challenges: usize,
    /// Sectors per PoSt proof.
    pub batch: usize,
    /// Seal (PoRep) challenges per proof.
    pub seal_challenges: usize,
}

impl NetParams {
    /// Checks the shape.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.sector_size < 64
            || !self.sector_size.is_power_of_two()
            || self.sector_size > 1 << 30
        {
            return Err(AuditError::Field("sector size"));
        }
        if self.layers == 0 || self.layers > 16 {
            return Err(AuditError::Field("layers"));
        }
        if self.challenges == 0 || self.challenges > 64 {
            return Err(AuditError::Field("challenges"));
        }
        if self.batch == 0 || self.batch > MAX_AUDIT_SECTORS {
            return Err(AuditError::Field("batch"));
        }
        if self.seal_challenges == 0 || self.seal_challenges > 16 {
            return Err(AuditError::Field("seal challenges"));
        }
        // every sector record must fit a log entry (and so a sector page)
        let revealed = crate::porep::revealed_len(&self.sector(), self.seal_challenges);
        if SectorRecord::max_len(revealed) > MAX_ENTRY_BODY {
            return Err(AuditError::Field(
                "seal challenges x layers: the revealed labels do not fit a sector record",
            ));
        }
        Ok(())
    }

    /// The sector parameters.
    pub fn sector(&self) -> SectorParams {
        SectorParams {
            nodes: self.sector_size / 32,
            layers: self.layers,
            graph_seed: graph_seed(),
        }
    }

    /// The PoSt circuit shape.
    pub fn post_shape(&self) -> Shape {
        Shape {
            sectors: self.batch,
            depth: (self.sector_size / 32).trailing_zeros() as usize,
            challenges: self.challenges,
        }
    }

    /// The parameters as a key manifest lists them.
    pub fn manifest_params(&self) -> [u64; 5] {
        [
            self.sector_size as u64,
            self.layers as u64,
            self.challenges as u64,
            self.batch as u64,
            self.seal_challenges as u64,
        ]
    }

    /// The seal and window keys from `source`: pinned keys must have been made for these
    /// parameters.
    pub fn load_keys(&self, source: &KeySource) -> Result<(Keys, Keys), KeyError> {
        match source {
            KeySource::Dev(dir) => Ok((self.seal_keys(dir)?, self.post_keys(dir)?)),
            KeySource::Pinned { dir, sha256 } => {
                let k = crate::keys::pinned::load(dir, Some(sha256))?;
                if k.manifest.params != self.manifest_params() {
                    return Err(KeyError::Malformed(format!(
                        "the keys in {} were made for parameters {:?} (sector size, layers, \
                         challenges, batch, seal challenges), the network uses {:?}",
                        dir.display(),
                        k.manifest.params,
                        self.manifest_params()
                    )));
                }
                Ok((k.seal, k.post))
            }
        }
    }

    /// Development seal keys, cached in `dir`.
    pub fn seal_keys(&self, dir: &Path) -> Result<Keys, KeyError> {
        let p = self.sector();
        // named by the sealing format too: a key cached for another format's circuit of the
        // same shape is another key
        let name = format!(
            "seal-v{}-n{}-l{}-c{}",
            sdr::VERSION,
            p.nodes,
            p.layers,
            self.seal_challenges
        );
        let k = self.seal_challenges;
        load_or_setup(dir, &name, DEV_SETUP_SEED, move || SealCircuit::blank(p, k))
    }

    /// Development PoSt keys, cached in `dir`.
    pub fn post_keys(&self, dir: &Path) -> Result<Keys, KeyError> {
        let shape = self.post_shape();
        let name = format!(
            "post-v{}-s{}-d{}-c{}",
            sdr::VERSION,
            shape.sectors,
            shape.depth,
            shape.challenges
        );
        load_or_setup(dir, &name, DEV_SETUP_SEED, move || {
            PostCircuit::blank(shape)
        })
    }
}

/// Seals `data` as `prover`'s sector `sector` with `ticket` and proves the seal: the sealed
/// sector (kept by the prover) and its public record.
pub fn seal_sector(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sector: u64,
    ticket: [u8; 32],
    data: &[u8],
) -> Result<(Sealed, SectorRecord), AuditError> {
    let mut out = seal_sectors(params, seal_keys, prover, &[(sector, ticket, data)])?;
    out.pop()
        .ok_or_else(|| AuditError::Prove("no sector sealed".into()))
}

/// [`seal_sector`] for several sectors `(sector, ticket, data)`, each listing no pieces and
/// sealed with the ticket bound to the empty piece list ([`label_sector`], then
/// [`prove_seal`]). The results are in order.
pub fn seal_sectors(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sectors: &[(u64, [u8; 32], &[u8])],
) -> Result<Vec<(Sealed, SectorRecord)>, AuditError> {
    let mut out = Vec::with_capacity(sectors.len());
    for s in sectors {
        let (id, ticket, data) = *s;
        let (sealed, work) = label_sector(params, prover, (id, bound_ticket(&ticket, &[]), data))?;
        let record = prove_seal(params, seal_keys, prover, s, Vec::new(), &sealed, work)?;
        out.push((sealed, record));
    }
    Ok(out)
}

/// Seals `(sector, ticket, data)` as `prover`'s (`ticket` is the one the sector is sealed
/// with: [`bound_ticket`] of the record's ticket and pieces): the sealed sector with the labels
/// and trees its seal proof needs.
pub fn label_sector(
    params: &NetParams,
    prover: &[u8],
    sector: (u64, [u8; 32], &[u8]),
) -> Result<sdr::SealedWithWork, AuditError> {
    params.check()?;
    let (id, ticket, data) = sector;
    sdr::seal_keeping_work(&params.sector(), data, &node_id(prover), id, &ticket)
        .map_err(|e| AuditError::Prove(e.to_string()))
}

/// Proves the seal of `sector` `(sector, ticket, data)` listing `pieces`, sealed as `sealed`
/// (with [`bound_ticket`] of `ticket` and `pieces`) keeping `work` (consumed: its labels and
/// trees are most of sealing's memory): its public record. Errors when the sector was sealed
/// with another ticket or piece list.
pub fn prove_seal(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sector: &(u64, [u8; 32], &[u8]),
    pieces: Vec<Piece>,
    sealed: &Sealed,
    work: sdr::SealWork,
) -> Result<SectorRecord, AuditError> {
    let &(id, ticket, data) = sector;
    if pieces.len() > MAX_PIECES {
        return Err(AuditError::Field("piece count"));
    }
    let rid = sdr::replica_id(
        &node_id(prover),
        id,
        &bound_ticket(&ticket, &pieces),
        sealed.comm_d,
    );
    if rid != sealed.replica_id {
        return Err(AuditError::Prove(
            "the sector was sealed with another ticket or piece list".into(),
        ));
    }
    let p = params.sector();
    let (circuit, revealed) =
        SealCircuit::prove_with_work(&p, params.seal_challenges, sealed, &work)
            .map_err(|e| AuditError::Prove(e.to_string()))?;
    drop(work);
    let proof = Groth16::<Bn254>::prove(&seal_keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    let record = SectorRecord {
        prover: prover.to_vec(),
        sector: id,
        sector_size: params.sector_size as u64,
        layers: params.layers as u8,
        data_len: data.len() as u64,
        ticket,
        pieces,
        comm_d: sealed.comm_d,
        comm_r: sealed.comm_r,
        seal_proof: encode_proof(&proof),
        revealed,
    };
    Ok(record)
}

/// Answers a seal check of `record` (this prover's) seeded by `nonce`: labels the sector
/// again and rebuilds its trees from the `replica` leaves alone ([`sdr::rework`]), then proves
/// the seal over the check's challenges ([`SealCircuit::prove_check`]). The proof and the
/// revealed labels. [`AuditError::Field`] when the replica does not give the record's
/// commitments (it changed on disk, or was sealed from labels that do not follow the graph),
/// [`AuditError::Prove`] when proving fails.
pub fn prove_check(
    params: &NetParams,
    seal_keys: &Keys,
    record: &SectorRecord,
    replica: &[Fr],
    nonce: &[u8; 32],
) -> Result<([u8; PROOF_LEN], Vec<Fr>), AuditError> {
    params.check()?;
    let p = params.sector();
    let (sealed, work) = sdr::rework(&p, record.replica_id(), replica)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    if sealed.comm_r != record.comm_r || sealed.comm_d != record.comm_d {
        return Err(AuditError::Field(
            "the stored replica does not give the sector's commitments",
        ));
    }
    let seed = crate::porep::check_seed(nonce);
    let (circuit, revealed) =
        SealCircuit::prove_check(&p, params.seal_challenges, &sealed, &work, seed)
            .map_err(|e| AuditError::Prove(e.to_string()))?;
    drop(work);
    let proof = Groth16::<Bn254>::prove(&seal_keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    Ok((encode_proof(&proof), revealed))
}

/// [`prove_window`] over sectors that open their own leaves (a node's stored sectors, which
/// keep only the top of their replica's tree: [`crate::post::StoredReplica`]).
pub fn prove_window_with(
    params: &NetParams,
    post_keys: &Keys,
    nonce: &[u8; 32],
    window: u64,
    sectors: &[(u64, &dyn crate::post::Openable)],
) -> Result<[u8; PROOF_LEN], AuditError> {
    let circuit = PostCircuit::prove_with(params.post_shape(), nonce, window, sectors)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    prove_post(post_keys, circuit)
}

/// The 128-byte Groth16 proof of a window circuit.
fn prove_post(post_keys: &Keys, circuit: PostCircuit) -> Result<[u8; PROOF_LEN], AuditError> {
    let proof = Groth16::<Bn254>::prove(&post_keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    Ok(encode_proof(&proof))
}

/// Proves window `window` for `nonce` over `sectors` (exactly `params.batch` of them, a sector
/// may repeat), building each replica's tree: the 128-byte proof.
pub fn prove_window(
    params: &NetParams,
    post_keys: &Keys,
    nonce: &[u8; 32],
    window: u64,
    sectors: &[(u64, &Sealed)],
) -> Result<[u8; PROOF_LEN], AuditError> {
    let circuit = PostCircuit::prove_for(params.post_shape(), nonce, window, sectors)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    prove_post(post_keys, circuit)
}
