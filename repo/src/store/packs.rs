//! Pack files: the bytes of large blocks, appended to files outside RocksDB.
//!
//! A block of [`PACK_MIN`] bytes or more is written once, straight to disk: its record (a small
//! header naming the CID, then the bytes) goes into the active pack file with one `O_DIRECT |
//! O_DSYNC` `pwrite` per batch, so it is durable when the write returns and never passes
//! through a memtable, a write-ahead log or the page cache. RocksDB's `block_index` then says
//! where it is. Every record starts on a 4 KiB boundary (the alignment `O_DIRECT` needs), so a
//! deleted block's record is given back to the file system with `fallocate(PUNCH_HOLE)` and
//! reads as zeros afterwards. The byte layout is in `docs/formats.md` ("Pack files").
//!
//! This module only writes, reads, scans and punches records; what is live is decided by the
//! index in [`super::rocks`].

use super::StoreError;
use cid::Cid;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Blocks at least this large go to pack files; smaller ones stay in RocksDB.
pub const PACK_MIN: usize = 64 << 10;
/// A pack file is closed to new records once it reaches this size.
pub const PACK_MAX: u64 = 4 << 30;
/// Records start on multiples of this (the `O_DIRECT` alignment).
pub const ALIGN: usize = 4096;
/// The first bytes of every record.
pub const MAGIC: [u8; 4] = *b"CPK1";
/// Largest block a record may hold (above the 4 MiB block limit, with room to spare).
const MAX_RECORD_DATA: u64 = 16 << 20;
/// Longest CID a record may name.
const MAX_CID: usize = 128;
/// Largest staging buffer a thread keeps between writes (a 4+2 stripe of 1 MiB blocks fits);
/// a larger batch gets a buffer of its own, freed after the write.
const KEEP_STAGING: usize = 8 << 20;
/// Read handles kept open; beyond this the cache is emptied and refilled on demand.
const MAX_READERS: usize = 256;

/// Where a block's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Pack file number.
    pub pack: u32,
    /// Offset of the record (its header) in the pack.
    pub record: u64,
    /// Offset of the block bytes in the pack.
    pub data: u64,
    /// Length of the block bytes.
    pub len: u64,
}

impl Loc {
    /// The record's span on disk, from its header to its padding's end.
    pub fn span(&self) -> u64 {
        padded(self.data - self.record + self.len)
    }
}

/// `n` rounded up to [`ALIGN`].
pub fn padded(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

fn header_len(cid: &[u8]) -> usize {
    MAGIC.len() + 2 + 4 + cid.len()
}

/// A record's header: magic, CID length (u16 LE), data length (u32 LE), CID bytes.
fn header(cid: &[u8], len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(header_len(cid));
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&(cid.len() as u16).to_le_bytes());
    h.extend_from_slice(&(len as u32).to_le_bytes());
    h.extend_from_slice(cid);
    h
}

/// A buffer whose start is [`ALIGN`]-aligned, for `O_DIRECT` writes. Each writing thread keeps
/// its own and reuses it, so a stripe's records are not written into freshly zeroed pages.
struct Aligned {
    buf: Vec<u8>,
}

impl Aligned {
    /// The first `len` aligned bytes (contents left from earlier use: callers overwrite or
    /// zero every byte they write).
    fn slice(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len + ALIGN {
            self.buf = vec![0u8; len + ALIGN];
        }
        let start = self.buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        &mut self.buf[start..start + len]
    }
}

thread_local! {
    static STAGING: std::cell::RefCell<Aligned> =
        const { std::cell::RefCell::new(Aligned { buf: Vec::new() }) };
}

struct Active {
    pack: u32,
    file: Arc<File>,
    end: u64,
}

/// The pack files of one store.
pub struct Packs {
    dir: PathBuf,
    active: Mutex<Option<Active>>,
    readers: Mutex<HashMap<u32, Arc<File>>>,
    direct: bool,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return StoreError::NoSpace {
            path: path.display().to_string(),
        };
    }
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

impl Packs {
    /// Opens the pack directory `dir` (created if missing). New records go to a new pack file
    /// after the highest-numbered one.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let probe = dir.join(".direct-probe");
        // O_DIRECT is refused by some file systems (tmpfs): fall back to O_DSYNC alone there
        let direct = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        Ok(Packs {
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            readers: Mutex::new(HashMap::new()),
            direct,
        })
    }

    /// The path of pack `n`.
    pub fn path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{n:08}.pack"))
    }

    /// The pack numbers present, ascending.
    pub fn list(&self) -> Result<Vec<u32>, StoreError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(|e| io("listing", &self.dir, e))? {
            let e = e.map_err(|e| io("listing", &self.dir, e))?;
            let name = e.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|s| s.strip_suffix(".pack"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            out.push(n);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reserves `len` bytes in the active pack (starting a new pack when it is full) and tells
    /// `reserved` where, before another write can reserve space after them.
    fn reserve(
        &self,
        len: u64,
        reserved: &mut dyn FnMut(u32, u64) -> Result<(), StoreError>,
    ) -> Result<(u32, Arc<File>, u64), StoreError> {
        let mut active = self
            .active
            .lock()
            .map_err(|_| StoreError::Backend("pack writer lock poisoned".into()))?;
        let full = active
            .as_ref()
            .is_none_or(|a| a.end > 0 && a.end + len > PACK_MAX);
        if full {
            let next = match active.as_ref() {
                Some(a) => a.pack + 1,
                None => self.list()?.last().map_or(0, |n| n + 1),
            };
            let path = self.path(next);
            let mut o = OpenOptions::new();
            o.write(true).create_new(true);
            o.custom_flags(libc::O_DSYNC | if self.direct { libc::O_DIRECT } else { 0 });
            let file = o.open(&path).map_err(|e| io("creating", &path, e))?;
            // the new file's directory entry must survive a crash before any index names it
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("syncing", &self.dir, e))?;
            *active = Some(Active {
                pack: next,
                file: Arc::new(file),
                end: 0,
            });
        }
        let a = active
            .as_mut()
            .ok_or_else(|| StoreError::Backend("no active pack".into()))?;
        let at = a.end;
        reserved(a.pack, at)?;
        a.end += len;
        Ok((a.pack, a.file.clone(), at))
    }

    /// Appends one record per block, with one synced write, and returns where each landed.
    /// The records are durable when this returns. `reserved` learns the pack and offset of
    /// the write while the space is reserved, before the write.
    pub fn append(
        &self,
        blocks: &[(&[u8], &[u8])],
        reserved: &mut dyn FnMut(u32, u64) -> Result<(), StoreError>,
    ) -> Result<Vec<Loc>, StoreError> {
        let total: u64 = blocks
            .iter()
            .map(|(cid, data)| padded((header_len(cid) + data.len()) as u64))
            .sum();
        let (pack, file, base) = self.reserve(total, reserved)?;
        let mut locs = Vec::with_capacity(blocks.len());
        let mut own = Aligned { buf: Vec::new() };
        let mut fill = |staging: &mut Aligned| {
            let out = staging.slice(total as usize);
            let mut at = 0usize;
            for (cid, data) in blocks {
                let h = header(cid, data.len());
                out[at..at + h.len()].copy_from_slice(&h);
                let d = at + h.len();
                out[d..d + data.len()].copy_from_slice(data);
                locs.push(Loc {
                    pack,
                    record: base + at as u64,
                    data: base + d as u64,
                    len: data.len() as u64,
                });
                let next = padded((d + data.len()) as u64) as usize;
                out[d + data.len()..next].fill(0);
                at = next;
            }
            file.write_all_at(out, base).map_err(|e| {
                // whatever part landed is named by nothing: give it back at once
                let _ = self.punch(pack, base, total);
                io("writing", &self.path(pack), e)
            })
        };
        if total as usize <= KEEP_STAGING {
            STAGING.with_borrow_mut(&mut fill)?;
        } else {
            fill(&mut own)?;
        }
        Ok(locs)
    }

    fn reader(&self, pack: u32) -> Result<Arc<File>, StoreError> {
        let mut readers = self
            .readers
            .lock()
            .map_err(|_| StoreError::Backend("pack reader lock poisoned".into()))?;
        if let Some(f) = readers.get(&pack) {
            return Ok(f.clone());
        }
        if readers.len() >= MAX_READERS {
            readers.clear();
        }
        let path = self.path(pack);
        let f = Arc::new(File::open(&path).map_err(|e| io("opening", &path, e))?);
        readers.insert(pack, f.clone());
        Ok(f)
    }

    /// A block's bytes (unverified).
    pub fn read(&self, loc: &Loc) -> Result<Vec<u8>, StoreError> {
        // a damaged index entry is a damaged block (scrub quarantines it, repair rebuilds it)
        if loc.len > MAX_RECORD_DATA {
            return Err(StoreError::Backend(format!(
                "block_index names {} bytes in pack {}, more than a record holds",
                loc.len, loc.pack
            )));
        }
        let f = self.reader(loc.pack)?;
        let mut v = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut v, loc.data)
            .map_err(|e| io("reading", &self.path(loc.pack), e))?;
        Ok(v)
    }

    /// Gives a record's space back to the file system; it reads as zeros afterwards.
    pub fn punch(&self, pack: u32, record: u64, span: u64) -> Result<(), StoreError> {
        let path = self.path(pack);
        let f = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            // a pack removed by hand has nothing left to free
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("opening", &path, e)),
        };
        let (Ok(off), Ok(len)) = (i64::try_from(record), i64::try_from(span)) else {
            return Err(StoreError::BadKey("packs"));
        };
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate reads only its integer arguments; the descriptor is open for writing.
        let r = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // file systems without hole punching keep the bytes: space, not correctness
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(io("punching", &path, e));
            }
        }
        Ok(())
    }

    /// The length of pack `n`'s file.
    pub fn len(&self, n: u32) -> Result<u64, StoreError> {
        let path = self.path(n);
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| io("reading", &path, e))
    }

    /// Calls `f` with each record in pack `n` from offset `from` on: the CID and where its
    /// bytes are. Zeroed space (holes, unwritten gaps) is skipped; a header that does not
    /// parse is skipped like zeros, so a torn or hostile file cannot stop the walk.
    pub fn scan(
        &self,
        n: u32,
        from: u64,
        f: &mut dyn FnMut(Cid, Loc) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let file = self.reader(n)?;
        let end = self.len(n)?;
        let mut at = padded(from);
        let mut head = [0u8; ALIGN];
        while at < end {
            let want = (end - at).min(ALIGN as u64) as usize;
            file.read_exact_at(&mut head[..want], at)
                .map_err(|e| io("reading", &self.path(n), e))?;
            match parse_header(&head[..want]) {
                Some((cid, hlen, len)) if at + hlen as u64 + len <= end => {
                    let loc = Loc {
                        pack: n,
                        record: at,
                        data: at + hlen as u64,
                        len,
                    };
                    f(cid, loc)?;
                    at += loc.span();
                }
                _ => at += ALIGN as u64,
            }
        }
        Ok(())
    }
}

/// Parses a record header: the CID, the header's length and the data length.
pub fn parse_header(b: &[u8]) -> Option<(Cid, usize, u64)> {
    if b.len() < 10 || b[..4] != MAGIC {
        return None;
    }
    let clen = u16::from_le_bytes([b[4], b[5]]) as usize;
    let len = u32::from_le_bytes([b[6], b[7], b[8], b[9]]) as u64;
    if clen == 0 || clen > MAX_CID || b.len() < 10 + clen || len > MAX_RECORD_DATA {
        return None;
    }
    let cid = Cid::try_from(&b[10..10 + clen]).ok()?;
    // a CID must be exactly the bytes named, as `block_index` keys are
    (cid.to_bytes().len() == clen).then_some((cid, 10 + clen, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::{Block, HashAlg, RAW};
    use cairn_core::testgen::Gen;

    #[test]
    fn records_round_trip_scan_and_punch() {
        let d = tempfile::tempdir().unwrap();
        let p = Packs::open(d.path()).unwrap();
        let blocks: Vec<Block> = [70_000usize, 1 << 20, 65_536]
            .iter()
            .enumerate()
            .map(|(i, n)| Block::new(HashAlg::Blake3, RAW, Gen::bytes(i as u64, *n)))
            .collect();
        let keys: Vec<Vec<u8>> = blocks.iter().map(|b| b.cid.to_bytes()).collect();
        let refs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&blocks)
            .map(|(k, b)| (k.as_slice(), b.data.as_ref()))
            .collect();
        let locs = p.append(&refs, &mut |_, _| Ok(())).unwrap();
        let more = p.append(&refs[..1], &mut |_, _| Ok(())).unwrap();
        for (l, b) in locs.iter().zip(&blocks) {
            assert_eq!(l.record % ALIGN as u64, 0);
            assert_eq!(p.read(l).unwrap(), b.data.to_vec());
        }
        assert_eq!(more[0].record, locs[2].record + locs[2].span());
        let mut seen = Vec::new();
        p.scan(0, 0, &mut |c, l| {
            seen.push((c, l));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[1], (blocks[1].cid, locs[1]));
        p.punch(0, locs[1].record, locs[1].span()).unwrap();
        let mut after = Vec::new();
        p.scan(0, 0, &mut |c, _| {
            after.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            after,
            vec![blocks[0].cid, blocks[2].cid, blocks[0].cid],
            "a punched record reads as zeros and is skipped"
        );
    }

    #[test]
    fn hostile_headers_are_skipped_not_trusted() {
        let c = Block::new(HashAlg::Blake3, RAW, vec![1u8; 10])
            .cid
            .to_bytes();
        let mut h = header(&c, 10);
        assert!(parse_header(&h).is_some());
        h[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_header(&h).is_none(), "oversized data length");
        let mut h = header(&c, 10);
        h[4] = 200;
        assert!(parse_header(&h).is_none(), "CID length beyond the header");
        assert!(parse_header(&h[..8]).is_none());
        assert!(parse_header(&[0u8; 64]).is_none());
        // a pack whose header claims more bytes than the file holds: skipped, no panic
        let d = tempfile::tempdir().unwrap();
        let p = Packs::open(d.path()).unwrap();
        let mut f = header(&c, 1 << 20);
        f.resize(ALIGN * 2, 0);
        std::fs::write(p.path(0), &f).unwrap();
        let mut n = 0;
        p.scan(0, 0, &mut |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 0);
    }
}
