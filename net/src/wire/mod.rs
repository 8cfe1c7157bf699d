//! Wire formats of Cairn's own protocols, as pure encode/decode functions with explicit limits.
//!
//! Two protocols (byte layouts in `docs/wire.md`):
//!
//! - **control** (`/cairn/ctrl/1`, request-response): small questions a node answers from memory
//!   or its indexes: [`CtrlRequest::Info`] (capacity and use) and [`CtrlRequest::Have`] (which of
//!   these CIDs do you hold, verified and not quarantined), plus [`CtrlRequest::Commit`] (make a
//!   dataset's pushed blocks durable and keep it) and [`CtrlRequest::Remove`] (its publisher
//!   takes it off the network).
//! - **blocks** (`/cairn/blocks/1`, one libp2p stream per exchange): bulk transfer. A stream
//!   carries one [`StreamRequest`]: either `GET` of up to [`MAX_BATCH`] CIDs, answered by one
//!   [`GetStatus`] frame per CID in order, or `PUT` of up to [`MAX_BATCH`] blocks of one dataset,
//!   answered by one [`PutStatus`] byte per block once all were read, or `CACHE` of up to
//!   [`MAX_BATCH`] blocks to keep as promoted copies (the fast tier), answered the same way.
//!
//! Every decoder rejects trailing bytes, oversized counts and lengths with a [`WireError`].

mod codec;

use bytes::Bytes;
use cairn_core::block::cid_from_bytes;
use cairn_core::{varint, Cid, MAX_BLOCK_SIZE};
use codec::{put_cid, too_large, Reader};
pub use codec::{WireError, MAX_CID_LEN};
use futures::{AsyncRead, AsyncReadExt};
use libp2p::PeerId;

/// Largest encoded control request: 4,096 CIDs of up to 64 bytes each fit with room to spare.
pub const MAX_CTRL_REQUEST: usize = 320 << 10;
/// Largest encoded control response: a 4,096-entry bitmap is 512 bytes; error texts are capped.
pub const MAX_CTRL_RESPONSE: usize = 16 << 10;
/// Most CIDs in one `Have` request (a 1 GiB dataset has 1,536 shards at the default profile).
pub const MAX_HAVE: usize = 4096;
/// Most CIDs or blocks in one stream exchange; bounds what a peer can make us do per stream.
pub const MAX_BATCH: usize = 256;
/// Longest error text carried in a response.
pub const MAX_ERROR_TEXT: usize = 1024;
/// Most CIDs in one `Cached` or `Uncache` request (the `Reads` answer stays under
/// [`MAX_CTRL_RESPONSE`]: at most 5 bytes per entry).
pub const MAX_CACHED: usize = 1024;
/// Longest application message ([`CtrlRequest::App`], [`CtrlResponse::App`]).
pub const MAX_APP: usize = 12 << 10;

/// What a node says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// Bytes it is configured to store.
    pub capacity: u64,
    /// Bytes it stores now.
    pub used: u64,
}

impl NodeInfo {
    /// Bytes still free.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}

/// A fast node's room for promoted copies, as it tells one promoter
/// ([`CtrlResponse::Space`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheSpace {
    /// Bytes of promoted copies it keeps for all peers (0: it offers no fast tier).
    pub capacity: u64,
    /// Bytes of promoted copies it holds now.
    pub used: u64,
    /// Bytes of them the asking peer pushed.
    pub yours: u64,
    /// Bytes the asking peer may hold there at most.
    pub limit: u64,
}

impl CacheSpace {
    /// Bytes of copies the asking peer can have there: what it holds plus what is free, within
    /// its limit.
    pub fn room(&self) -> u64 {
        self.limit.min(
            self.yours
                .saturating_add(self.capacity.saturating_sub(self.used)),
        )
    }
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlRequest {
    /// Capacity and use.
    Info,
    /// Which of these blocks do you hold (verified, not quarantined)?
    Have(Vec<Cid>),
    /// An application message (proof audits), opaque to this crate, at most [`MAX_APP`]
    /// bytes; answered by [`CtrlResponse::App`] or [`CtrlResponse::Error`].
    App(Vec<u8>),
    /// Which of these blocks do you hold as promoted copies (the fast tier, not counted as
    /// holders by repair), and how often was each read? Answered by [`CtrlResponse::Reads`].
    Cached(Vec<Cid>),
    /// Drop the promoted copies of these blocks that I pushed to you (demotion). Answered by
    /// [`CtrlResponse::Have`]: true for each copy dropped.
    Uncache(Vec<Cid>),
    /// Make every block I pushed for dataset `manifest` durable and keep the dataset (pin it),
    /// recording `publisher` as the peer that may later remove it. Sent once after the last
    /// push of a put, a repair or a rebalance, so a receiver syncs once per dataset rather
    /// than once per push. Answered by [`CtrlResponse::Have`] with one flag (true: durable),
    /// or [`CtrlResponse::Error`].
    Commit {
        /// The dataset's manifest head CID.
        manifest: Cid,
        /// The peer that published the dataset (its peer id's bytes).
        publisher: PeerId,
    },
    /// Remove dataset `manifest`: unpin it and drop its blocks that nothing else kept here
    /// needs. Honoured only from the dataset's recorded publisher. Answered by
    /// [`CtrlResponse::Have`] with one flag (true: it was held and is gone, false: it was
    /// not held), or [`CtrlResponse::Error`] (refused).
    Remove(Cid),
    /// A reader's plan for an epoch: it will read every file of dataset `root` in the order of
    /// the seeded shuffle of `seed` (`retrieval::dataset::shuffle_order` over the dataset's
    /// files in path order), or in path order without a seed, at about `rate` bytes per second
    /// (0: unknown). The receiver may copy what the reader reaches next onto fast peers.
    /// Answered by [`CtrlResponse::Peers`] (the fast peers the copies go to, fastest first)
    /// or [`CtrlResponse::Error`] (refused).
    Plan {
        /// The dataset's root.
        root: Cid,
        /// The shuffle's seed.
        seed: Option<u64>,
        /// The reader's bytes per second (0: unknown).
        rate: u64,
    },
    /// How much room for promoted copies do you have for me? Answered by
    /// [`CtrlResponse::Space`].
    Space,
    /// I read these blocks of the plan I registered with you over dataset `root` (at most
    /// [`MAX_READ_REPORT`]), so you know where I am. Answered by [`CtrlResponse::Have`] with
    /// no flags, or [`CtrlResponse::Error`].
    Read {
        /// The dataset.
        root: Cid,
        /// Blocks read since the last report, in the order they were read.
        cids: Vec<Cid>,
    },
}

/// Blocks one [`CtrlRequest::Read`] reports at most.
pub const MAX_READ_REPORT: usize = 64;

/// A control response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlResponse {
    /// Answer to [`CtrlRequest::Info`].
    Info(NodeInfo),
    /// Answer to [`CtrlRequest::Have`]: one flag per CID, in order.
    Have(Vec<bool>),
    /// The request was understood but refused.
    Error(String),
    /// Answer to [`CtrlRequest::App`], at most [`MAX_APP`] bytes.
    App(Vec<u8>),
    /// Answer to [`CtrlRequest::Cached`]: per CID, in order, `None` if no promoted copy is
    /// held, else the reads that copy has served.
    Reads(Vec<Option<u32>>),
    /// Answer to [`CtrlRequest::Plan`]: at most [`MAX_PEERS`] peers, fastest first.
    Peers(Vec<PeerId>),
    /// Answer to [`CtrlRequest::Space`].
    Space(CacheSpace),
}

/// Peers a [`CtrlResponse::Peers`] lists at most.
pub const MAX_PEERS: usize = 16;

/// Status of one CID of a `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetStatus {
    /// The block's bytes (the receiver verifies them against the CID).
    Found(Bytes),
    /// Not held here.
    NotFound,
}

/// Outcome of one block of a `PUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PutStatus {
    /// Stored durably.
    Stored = 0,
    /// The bytes do not match the CID.
    BadBlock = 1,
    /// The block is not part of the named dataset.
    NotInDataset = 2,
    /// The node is out of configured capacity.
    NoSpace = 3,
    /// The node failed to store it.
    Failed = 4,
    /// Not accepted from this peer: the receiver's own placement does not assign the shard's
    /// stripe to it, or the pusher has used its quota of the receiver's space.
    Refused = 5,
}

impl PutStatus {
    /// Parses a status byte.
    pub fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => PutStatus::Stored,
            1 => PutStatus::BadBlock,
            2 => PutStatus::NotInDataset,
            3 => PutStatus::NoSpace,
            4 => PutStatus::Failed,
            5 => PutStatus::Refused,
            t => return Err(WireError::Tag(t)),
        })
    }
}

const T_INFO: u8 = 0x01;
const T_HAVE: u8 = 0x02;
const T_APP: u8 = 0x03;
const T_CACHED: u8 = 0x04;
const T_UNCACHE: u8 = 0x05;
const T_COMMIT: u8 = 0x06;
const T_REMOVE: u8 = 0x07;
const T_PLAN: u8 = 0x08;
const T_SPACE: u8 = 0x09;
const T_READ: u8 = 0x0a;
/// Longest peer id accepted on the wire (an ed25519 peer id is 38 bytes; 64 leaves room for
/// other key types' identity multihashes).
pub const MAX_PEER_ID_LEN: usize = 64;
const T_APP_R: u8 = 0x83;
const T_INFO_R: u8 = 0x81;
const T_HAVE_R: u8 = 0x82;
const T_READS_R: u8 = 0x84;
const T_PEERS_R: u8 = 0x85;
const T_SPACE_R: u8 = 0x86;
const T_ERROR_R: u8 = 0xff;
/// Stream opcode: fetch blocks.
pub const OP_GET: u8 = 0x01;
/// Stream opcode: store blocks.
pub const OP_PUT: u8 = 0x02;
/// Stream opcode: store blocks as promoted copies (the fast tier).
pub const OP_CACHE: u8 = 0x03;
/// Stream opcode: store blocks as copies for a reader's access plan (the fast tier; such a
/// copy may take the room of unplanned ones).
pub const OP_CACHE_PLANNED: u8 = 0x04;

impl CtrlRequest {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            CtrlRequest::Info => out.push(T_INFO),
            CtrlRequest::Have(cids) | CtrlRequest::Cached(cids) | CtrlRequest::Uncache(cids) => {
                // Have: up to MAX_HAVE; Cached and Uncache: up to MAX_CACHED
                out.push(match self {
                    CtrlRequest::Have(_) => T_HAVE,
                    CtrlRequest::Cached(_) => T_CACHED,
                    _ => T_UNCACHE,
                });
                varint::write(&mut out, cids.len() as u64);
                for c in cids {
                    put_cid(&mut out, c);
                }
            }
            CtrlRequest::App(b) => {
                out.push(T_APP);
                varint::write(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            CtrlRequest::Commit {
                manifest,
                publisher,
            } => {
                out.push(T_COMMIT);
                put_cid(&mut out, manifest);
                let p = publisher.to_bytes();
                varint::write(&mut out, p.len() as u64);
                out.extend_from_slice(&p);
            }
            CtrlRequest::Remove(manifest) => {
                out.push(T_REMOVE);
                put_cid(&mut out, manifest);
            }
            CtrlRequest::Plan { root, seed, rate } => {
                out.push(T_PLAN);
                put_cid(&mut out, root);
                match seed {
                    Some(s) => {
                        out.push(1);
                        out.extend_from_slice(&s.to_be_bytes());
                    }
                    None => out.push(0),
                }
                varint::write(&mut out, *rate);
            }
            CtrlRequest::Space => out.push(T_SPACE),
            CtrlRequest::Read { root, cids } => {
                out.push(T_READ);
                put_cid(&mut out, root);
                varint::write(&mut out, cids.len() as u64);
                for c in cids {
                    put_cid(&mut out, c);
                }
            }
        }
        out
    }

    /// Decodes a request.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        if buf.len() > MAX_CTRL_REQUEST {
            return Err(too_large("control request", buf.len(), MAX_CTRL_REQUEST));
        }
        let mut r = Reader::new(buf);
        let req = match r.u8()? {
            T_INFO => CtrlRequest::Info,
            t @ (T_HAVE | T_CACHED | T_UNCACHE) => {
                let n = if t == T_HAVE {
                    r.varint("Have count", MAX_HAVE as u64)?
                } else {
                    r.varint("Cached count", MAX_CACHED as u64)?
                } as usize;
                let mut cids = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    cids.push(r.cid()?);
                }
                match t {
                    T_HAVE => CtrlRequest::Have(cids),
                    T_CACHED => CtrlRequest::Cached(cids),
                    _ => CtrlRequest::Uncache(cids),
                }
            }
            T_APP => {
                let n = r.varint("app message", MAX_APP as u64)? as usize;
                CtrlRequest::App(r.take(n)?.to_vec())
            }
            T_COMMIT => {
                let manifest = r.cid()?;
                let n = r.varint("peer id length", MAX_PEER_ID_LEN as u64)? as usize;
                let publisher = PeerId::from_bytes(r.take(n)?).map_err(|_| WireError::PeerId)?;
                CtrlRequest::Commit {
                    manifest,
                    publisher,
                }
            }
            T_REMOVE => CtrlRequest::Remove(r.cid()?),
            T_PLAN => {
                let root = r.cid()?;
                let seed = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    t => return Err(WireError::Tag(t)),
                };
                let rate = r.varint("plan rate", u64::MAX)?;
                CtrlRequest::Plan { root, seed, rate }
            }
            T_SPACE => CtrlRequest::Space,
            T_READ => {
                let root = r.cid()?;
                let n = r.varint("Read count", MAX_READ_REPORT as u64)? as usize;
                let mut cids = Vec::with_capacity(n);
                for _ in 0..n {
                    cids.push(r.cid()?);
                }
                CtrlRequest::Read { root, cids }
            }
            t => return Err(WireError::Tag(t)),
        };
        r.end()?;
        Ok(req)
    }
}

impl CtrlResponse {
    /// Encodes the response (error texts are cut to [`MAX_ERROR_TEXT`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            CtrlResponse::Info(i) => {
                out.push(T_INFO_R);
                out.extend_from_slice(&i.capacity.to_be_bytes());
                out.extend_from_slice(&i.used.to_be_bytes());
            }
            CtrlResponse::Have(flags) => {
                out.push(T_HAVE_R);
                varint::write(&mut out, flags.len() as u64);
                let mut bits = vec![0u8; flags.len().div_ceil(8)];
                for (i, &f) in flags.iter().enumerate() {
                    if f {
                        bits[i / 8] |= 1 << (i % 8);
                    }
                }
                out.extend_from_slice(&bits);
            }
            CtrlResponse::Error(msg) => {
                out.push(T_ERROR_R);
                let mut end = msg.len().min(MAX_ERROR_TEXT);
                while !msg.is_char_boundary(end) {
                    end -= 1;
                }
                varint::write(&mut out, end as u64);
                out.extend_from_slice(&msg.as_bytes()[..end]);
            }
            CtrlResponse::App(b) => {
                out.push(T_APP_R);
                varint::write(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            CtrlResponse::Reads(v) => {
                out.push(T_READS_R);
                varint::write(&mut out, v.len() as u64);
                for r in v {
                    varint::write(&mut out, r.map_or(0, |n| u64::from(n) + 1));
                }
            }
            CtrlResponse::Peers(v) => {
                out.push(T_PEERS_R);
                varint::write(&mut out, v.len() as u64);
                for p in v {
                    let b = p.to_bytes();
                    varint::write(&mut out, b.len() as u64);
                    out.extend_from_slice(&b);
                }
            }
            CtrlResponse::Space(s) => {
                out.push(T_SPACE_R);
                for x in [s.capacity, s.used, s.yours, s.limit] {
                    out.extend_from_slice(&x.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes a response.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        if buf.len() > MAX_CTRL_RESPONSE {
            return Err(too_large("control response", buf.len(), MAX_CTRL_RESPONSE));
        }
        let mut r = Reader::new(buf);
        let resp = match r.u8()? {
            T_INFO_R => CtrlResponse::Info(NodeInfo {
                capacity: r.u64()?,
                used: r.u64()?,
            }),
            T_HAVE_R => {
                let n = r.varint("Have count", MAX_HAVE as u64)? as usize;
                let bits = r.take(n.div_ceil(8))?;
                CtrlResponse::Have((0..n).map(|i| bits[i / 8] >> (i % 8) & 1 == 1).collect())
            }
            T_ERROR_R => {
                let n = r.varint("error text", MAX_ERROR_TEXT as u64)? as usize;
                let s = std::str::from_utf8(r.take(n)?).map_err(|_| WireError::Utf8)?;
                CtrlResponse::Error(s.to_string())
            }
            T_APP_R => {
                let n = r.varint("app message", MAX_APP as u64)? as usize;
                CtrlResponse::App(r.take(n)?.to_vec())
            }
            T_READS_R => {
                let n = r.varint("Reads count", MAX_CACHED as u64)? as usize;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let x = r.varint("read count", u64::from(u32::MAX) + 1)?;
                    v.push(x.checked_sub(1).map(|x| x as u32));
                }
                CtrlResponse::Reads(v)
            }
            T_PEERS_R => {
                let n = r.varint("peer count", MAX_PEERS as u64)? as usize;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = r.varint("peer id length", MAX_PEER_ID_LEN as u64)? as usize;
                    v.push(PeerId::from_bytes(r.take(len)?).map_err(|_| WireError::PeerId)?);
                }
                CtrlResponse::Peers(v)
            }
            T_SPACE_R => CtrlResponse::Space(CacheSpace {
                capacity: r.u64()?,
                used: r.u64()?,
                yours: r.u64()?,
                limit: r.u64()?,
            }),
            t => return Err(WireError::Tag(t)),
        };
        r.end()?;
        Ok(resp)
    }
}

/// The request that opens a blocks stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    /// Send me these blocks.
    Get(Vec<Cid>),
    /// Store `count` blocks of the dataset whose manifest is `manifest`; the blocks follow as
    /// block frames.
    Put {
        /// Manifest head CID of the dataset the blocks belong to.
        manifest: Cid,
        /// Number of block frames that follow.
        count: usize,
    },
    /// Store `count` blocks as promoted copies (a hot shard copied to a fast node); the blocks
    /// follow as block frames.
    Cache {
        /// Number of block frames that follow.
        count: usize,
        /// Copies for a reader's access plan (read within seconds), which may take the room
        /// of unplanned copies (a placement window's guesses), rather than hot shards.
        planned: bool,
    },
}

impl StreamRequest {
    /// Encodes the request header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            StreamRequest::Get(cids) => {
                out.push(OP_GET);
                varint::write(&mut out, cids.len() as u64);
                for c in cids {
                    put_cid(&mut out, c);
                }
            }
            StreamRequest::Put { manifest, count } => {
                out.push(OP_PUT);
                put_cid(&mut out, manifest);
                varint::write(&mut out, *count as u64);
            }
            StreamRequest::Cache { count, planned } => {
                out.push(if *planned { OP_CACHE_PLANNED } else { OP_CACHE });
                varint::write(&mut out, *count as u64);
            }
        }
        out
    }

    /// Decodes a request header that is exactly `buf` (for fuzzing and tests).
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf);
        let op = r.u8()?;
        let op_planned = |op: u8| op == OP_CACHE_PLANNED;
        let req = match op {
            OP_GET => {
                let n = r.varint("GET count", MAX_BATCH as u64)? as usize;
                let mut cids = Vec::with_capacity(n);
                for _ in 0..n {
                    cids.push(r.cid()?);
                }
                StreamRequest::Get(cids)
            }
            OP_PUT => {
                let manifest = r.cid()?;
                let count = r.varint("PUT count", MAX_BATCH as u64)? as usize;
                StreamRequest::Put { manifest, count }
            }
            OP_CACHE | OP_CACHE_PLANNED => StreamRequest::Cache {
                count: r.varint("CACHE count", MAX_BATCH as u64)? as usize,
                planned: op_planned(op),
            },
            t => return Err(WireError::Tag(t)),
        };
        r.end()?;
        Ok(req)
    }

    /// Reads a request header from a stream.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, WireError> {
        let op = read_u8(r).await?;
        Self::read_after_op(op, r).await
    }

    /// Reads the rest of a request header whose opcode byte `op` was already read.
    pub async fn read_after_op<R: AsyncRead + Unpin>(op: u8, r: &mut R) -> Result<Self, WireError> {
        match op {
            OP_GET => {
                let n = read_varint(r, "GET count", MAX_BATCH as u64).await? as usize;
                let mut cids = Vec::with_capacity(n);
                for _ in 0..n {
                    cids.push(read_cid(r).await?);
                }
                Ok(StreamRequest::Get(cids))
            }
            OP_PUT => {
                let manifest = read_cid(r).await?;
                let count = read_varint(r, "PUT count", MAX_BATCH as u64).await? as usize;
                Ok(StreamRequest::Put { manifest, count })
            }
            OP_CACHE | OP_CACHE_PLANNED => Ok(StreamRequest::Cache {
                count: read_varint(r, "CACHE count", MAX_BATCH as u64).await? as usize,
                planned: op == OP_CACHE_PLANNED,
            }),
            t => Err(WireError::Tag(t)),
        }
    }
}

/// Encodes one block frame: CID, 4-byte big-endian length, bytes.
pub fn encode_block_header(cid: &Cid, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    put_cid(&mut out, cid);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out
}

/// Reads one block frame (CID, length, bytes); the length is checked before any allocation.
pub async fn read_block<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Cid, Bytes), WireError> {
    let cid = read_cid(r).await?;
    let data = read_sized(r).await?;
    Ok((cid, data))
}

/// Encodes the header of one `GET` answer: status 0 plus length, or status 1.
pub fn encode_get_status(found_len: Option<usize>) -> Vec<u8> {
    match found_len {
        Some(n) => {
            let mut v = vec![0u8];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
        None => vec![1u8],
    }
}

/// Reads one `GET` answer.
pub async fn read_get_status<R: AsyncRead + Unpin>(r: &mut R) -> Result<GetStatus, WireError> {
    match read_u8(r).await? {
        0 => Ok(GetStatus::Found(read_sized(r).await?)),
        1 => Ok(GetStatus::NotFound),
        t => Err(WireError::Tag(t)),
    }
}

async fn read_sized<R: AsyncRead + Unpin>(r: &mut R) -> Result<Bytes, WireError> {
    let mut len = [0u8; 4];
    read_exact(r, &mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_BLOCK_SIZE {
        return Err(too_large("block length", len, MAX_BLOCK_SIZE));
    }
    let mut data = vec![0u8; len];
    read_exact(r, &mut data).await?;
    Ok(Bytes::from(data))
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    r.read_exact(buf).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Truncated
        } else {
            WireError::Io(e.to_string())
        }
    })
}

/// Reads one byte.
pub async fn read_u8<R: AsyncRead + Unpin>(r: &mut R) -> Result<u8, WireError> {
    let mut b = [0u8; 1];
    read_exact(r, &mut b).await?;
    Ok(b[0])
}

async fn read_varint<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
    limit: u64,
) -> Result<u64, WireError> {
    let mut buf = [0u8; 10];
    for i in 0..10 {
        buf[i] = read_u8(r).await?;
        if buf[i] & 0x80 == 0 {
            let (v, _) = varint::read(&buf[..=i]).map_err(|_| WireError::Truncated)?;
            if i + 1 != varint::len(v) {
                return Err(WireError::NonMinimal);
            }
            if v > limit {
                return Err(WireError::TooLarge {
                    what,
                    got: v,
                    limit,
                });
            }
            return Ok(v);
        }
    }
    Err(WireError::Truncated)
}

async fn read_cid<R: AsyncRead + Unpin>(r: &mut R) -> Result<Cid, WireError> {
    let n = read_varint(r, "CID length", MAX_CID_LEN as u64).await? as usize;
    let mut b = vec![0u8; n];
    read_exact(r, &mut b).await?;
    cid_from_bytes(&b).map_err(|_| WireError::Cid)
}

#[cfg(test)]
mod tests;
