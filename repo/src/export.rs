//! Writing a UnixFS DAG out as files, directories and symlinks.

use cairn_core::dag::{safe_name, DagError, DagReader, FetchError, Kind, Node, MAX_DEPTH};
use cairn_core::dagpb::DagPbError;
use cairn_core::Cid;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Export failures.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Reading the DAG failed.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// Writing failed.
    #[error("writing {path}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the file, directory tree or symlink at `cid` to `out` (which must not exist) and
/// returns the file bytes written. Entry names that could escape `out` are refused, and
/// nothing is ever written through a link: every file, directory and symlink is created new
/// (a file with `O_CREAT | O_EXCL | O_NOFOLLOW`, which fails on any existing path, a
/// symlink included), symlinks are written as links and never followed, and a directory
/// listing one name twice is refused before anything under it is written.
pub fn export<F>(reader: &mut DagReader<F>, cid: &Cid, out: &Path) -> Result<u64, ExportError>
where
    F: FnMut(&Cid) -> Result<Vec<u8>, FetchError>,
{
    export_at(reader, cid, out, 0)
}

/// Creates the regular file `path`, failing if anything (a symlink included) is there.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

fn export_at<F>(
    reader: &mut DagReader<F>,
    cid: &Cid,
    out: &Path,
    depth: usize,
) -> Result<u64, ExportError>
where
    F: FnMut(&Cid) -> Result<Vec<u8>, FetchError>,
{
    if depth > MAX_DEPTH {
        return Err(DagError::TooDeep.into());
    }
    let node = reader.node(cid)?;
    match node.kind() {
        Kind::File => {
            let f = create_new(out).map_err(io(out))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let n = reader.read_file(cid, &mut w)?;
            w.flush().map_err(io(out))?;
            Ok(n)
        }
        Kind::Directory => {
            std::fs::create_dir(out).map_err(io(out))?;
            let mut n = 0;
            for (name, child, _) in reader.list(cid)? {
                // names come from the DAG: refuse anything that would escape `out`
                if !safe_name(&name) {
                    return Err(DagError::Decode {
                        cid: *cid,
                        source: DagPbError::Malformed("unsafe entry name"),
                    }
                    .into());
                }
                n += export_at(reader, &child, &out.join(&name), depth + 1)?;
            }
            Ok(n)
        }
        Kind::Symlink => {
            let Node::Symlink(target) = node else {
                return Ok(0);
            };
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, out).map_err(io(out))?;
            #[cfg(not(unix))]
            let _ = target;
            Ok(0)
        }
    }
}
