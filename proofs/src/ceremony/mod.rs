//! A multi-party setup of the seal and window circuits' Groth16 keys (Bowe-Gabizon-Miers
//! 2017): phase 1 is Powers of Tau ([`phase1`]), phase 2 fixes the circuits and randomizes
//! `delta` ([`phase2`]). Each contributor multiplies fresh secrets from the OS into the state
//! and publishes proofs of knowledge of them bound to the transcript so far; anyone can check
//! every step ([`verify`]). Each phase ends with a random beacon ([`beacon()`]), a last step
//! whose secrets everyone recomputes from a public value. The keys are sound (no one can forge a proof) if at least one
//! contributor of each phase kept their secrets out of reach (destroyed them), because the
//! trapdoor is the product of every contributor's secrets. `docs/proofs.md` has the argument
//! and `docs/formats.md` the files.
//!
//! A ceremony directory holds `ceremony.txt` (the network parameters and phase-1 size),
//! `phase1/NNNN.bin` and, once phase 2 is open, `phase2/seal/NNNN.bin` and
//! `phase2/post/NNNN.bin`: file 0 of each is computed by anyone from public data, file `k > 0`
//! is contributor `k`'s new state followed by their proofs of knowledge, and `NNNN.beacon`
//! (`phase2/NNNN.beacon` for both circuits) marks a beacon step with its public value.

pub mod beacon;
pub mod group;
pub mod phase1;
pub mod phase2;
mod transcript;

pub use transcript::*;

use thiserror::Error;

/// Ceremony failures.
#[derive(Debug, Error)]
pub enum CeremonyError {
    /// Reading or writing a ceremony file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not decode.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A step of the transcript does not check.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A size is out of range.
    #[error("unsupported {0}")]
    Shape(&'static str),
    /// A circuit could not be synthesized.
    #[error("circuit: {0}")]
    Circuit(String),
    /// The command does not fit the ceremony's state.
    #[error("{0}")]
    State(String),
    /// Writing keys failed.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}
