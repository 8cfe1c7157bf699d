//! A read-only memory map of a whole file, for hashing a file without copying it.
//!
//! Only `cairn put --only-hash` uses it: nothing mapped is ever stored. If another process
//! truncates the file while it is mapped, reading the lost pages raises `SIGBUS` (as with any
//! mmap reader, `b3sum` among them); a file changed in place yields the CIDs of some mix of old
//! and new bytes, as reading it would.

use std::fs::File;
use std::os::fd::AsRawFd;

/// A mapped file; unmapped on drop.
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; sharing or sending a pointer to
// immutable memory between threads is sound.
unsafe impl Send for Mapped {}
// SAFETY: as above: no one writes through the mapping.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `f` whole; `None` for an empty file or one the kernel will not map (a pipe, say),
    /// which the caller reads instead.
    pub fn of(f: &File) -> std::io::Result<Option<Mapped>> {
        let len = f.metadata()?.len();
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: a fresh shared read-only mapping of an open descriptor; the result is checked
        // against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Ok(None);
        }
        // SAFETY: advice on the mapping just made; failure is harmless and ignored.
        unsafe {
            libc::madvise(ptr, len, libc::MADV_SEQUENTIAL);
        }
        Ok(Some(Mapped { ptr, len }))
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns, once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
