//! What local and node-backed commands share: atomic writes, how results are reported, and
//! `CID/path` arguments.

use anyhow::{Context, Result};
use cairn_core::block::parse_cid;
use cairn_core::dag::Kind;
use cid::Cid;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `output` through `output.partial`, renamed into place once `write` succeeded.
pub(crate) fn write_atomically(
    output: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let n = match write(&mut w) {
        Ok(n) => n,
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    w.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    Ok(n)
}

/// What `car export` prints.
pub(crate) fn report_car_export(json: bool, c: &Cid, n: u64, output: &Path) {
    if json {
        println!(
            "{}",
            json!({"root": c.to_string(), "blocks": n, "output": output.display().to_string()})
        );
    } else {
        eprintln!("exported {n} blocks to {}", output.display());
    }
}

/// What `get` prints: a JSON line, or one line on stderr.
pub(crate) fn report_get(json: bool, c: &Cid, output: &Path, n: u64) {
    if json {
        println!(
            "{}",
            json!({"cid": c.to_string(), "output": output.display().to_string(), "bytes": n})
        );
    } else {
        eprintln!("wrote {} ({n} bytes)", output.display());
    }
}

/// Splits `cid[/path]` (also accepting a leading `/ipfs/`).
pub(crate) fn target(s: &str) -> Result<(Cid, String)> {
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    let (c, p) = s.split_once('/').unwrap_or((s, ""));
    Ok((parse_cid(c)?, p.to_string()))
}

pub(crate) fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Directory => "directory",
        Kind::Symlink => "symlink",
    }
}
