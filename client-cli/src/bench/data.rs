//! Seeded benchmark and demo inputs: incompressible bytes and a sample WebDataset.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;

/// Seeded pseudo-random bytes (xorshift64*): incompressible, reproducible.
pub(crate) fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    for c in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

/// One ustar header + body, padded to 512 bytes.
fn tar_entry(out: &mut Vec<u8>, name: &str, body: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

pub(crate) fn sample_dataset(out: &Path, shards: u32, shard_bytes: u64, seed: u64) -> Result<()> {
    anyhow::ensure!(!out.exists(), "{} already exists", out.display());
    std::fs::create_dir_all(out.join("train"))
        .with_context(|| format!("creating {}", out.display()))?;
    let sample = 96 * 1024;
    let per_shard = (shard_bytes / sample as u64).max(1);
    for s in 0..shards {
        let mut tar = Vec::with_capacity(shard_bytes as usize + 4096);
        for i in 0..per_shard {
            let key = format!("sample{:06}", u64::from(s) * per_shard + i);
            let mut img = vec![0u8; sample - 1024 + (i as usize * 37) % 2048];
            fill(seed * 1_000_003 + u64::from(s) * 65_537 + i, &mut img);
            img[..3].copy_from_slice(&[0xff, 0xd8, 0xff]); // JPEG magic, for realism
            tar_entry(&mut tar, &format!("{key}.jpg"), &img);
            tar_entry(
                &mut tar,
                &format!("{key}.cls"),
                format!("{}", (i * 7 + u64::from(s)) % 1000).as_bytes(),
            );
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let p = out.join("train").join(format!("shard-{s:06}.tar"));
        std::fs::write(&p, &tar).with_context(|| format!("writing {}", p.display()))?;
    }
    std::fs::write(
        out.join("dataset.json"),
        serde_json::to_vec_pretty(
            &json!({"name": "cairn-sample", "format": "webdataset", "shards": shards, "samples_per_shard": per_shard, "seed": seed}),
        )?,
    )?;
    Ok(())
}
