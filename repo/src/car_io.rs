//! CAR v1 export and import of a DAG.

use crate::*;
use cairn_core::car;

impl Repo {
    /// Every block of the DAG under `root`, once each, parents first.
    fn dag_blocks(&self, root: &Cid) -> Result<Vec<Cid>, RepoError> {
        let mut order = Vec::new();
        self.reader().walk(root, &mut |c| order.push(*c))?;
        Ok(order)
    }

    /// Writes the DAG under `root` as a CAR v1 (each block once, parents first).
    pub fn car_export(&self, root: &Cid, out: &mut dyn Write) -> Result<u64, RepoError> {
        let order = self.dag_blocks(root)?;
        let wrap = |e: std::io::Error| RepoError::Io {
            path: PathBuf::from("<car output>"),
            source: e,
        };
        out.write_all(&car::header(&[*root])).map_err(wrap)?;
        let mut buf = Vec::new();
        for c in &order {
            buf.clear();
            car::section(
                &Block {
                    cid: *c,
                    data: self.block(c)?.into(),
                },
                &mut buf,
            );
            out.write_all(&buf).map_err(wrap)?;
        }
        Ok(order.len() as u64)
    }

    /// Imports a CAR v1: every block is verified against its CID before it is stored; nothing
    /// is pinned unless the whole file verifies and each root's DAG is complete. Complete roots
    /// are erasure-coded with `profile`'s k and m, like ingested datasets.
    pub fn car_import(
        &self,
        r: &mut dyn Read,
        profile: &Profile,
    ) -> Result<(Vec<Cid>, u64), RepoError> {
        let mut reader = CarReader::new(r)?;
        let roots = reader.roots().to_vec();
        let mut n = 0;
        let mut batch = Batch::new();
        let mut pending = 0usize;
        while let Some(b) = reader.next_block()? {
            n += 1;
            pending += b.data.len();
            batch.put_block(b);
            if pending >= 8 << 20 {
                self.store
                    .write(std::mem::take(&mut batch), Durability::Deferred)?;
                pending = 0;
            }
        }
        self.store.write(batch, Durability::Deferred)?;
        self.store.persist()?;
        for root in &roots {
            if self
                .store
                .table_get(Table::Datasets, &root.to_bytes())?
                .is_none()
            {
                self.protect(root, profile)?;
            } else {
                self.pin_add(root)?;
            }
        }
        Ok((roots, n))
    }

    /// Erasure-codes the complete DAG under `root` (blocks in walk order) and pins it.
    fn protect(&self, root: &Cid, profile: &Profile) -> Result<(), RepoError> {
        let order = self.dag_blocks(root)?;
        let coder = Coder::new(profile.k, profile.m)?;
        let mut stripes = Vec::new();
        let mut bytes = 0u64;
        for group in order.chunks(profile.k) {
            let blocks: Vec<Block> = group
                .iter()
                .map(|c| {
                    Ok(Block {
                        cid: *c,
                        data: self.block(c)?.into(),
                    })
                })
                .collect::<Result<_, RepoError>>()?;
            bytes += blocks
                .iter()
                .filter(|b| b.cid.codec() == cairn_core::block::RAW)
                .map(|b| b.data.len() as u64)
                .sum::<u64>();
            let refs: Vec<&Block> = blocks.iter().collect();
            let (stripe, parity) = coder.encode(profile.hash, &refs)?;
            let mut batch = Batch::new();
            for p in parity {
                batch.put_block(p);
            }
            self.store.write(batch, Durability::Deferred)?;
            stripes.push(stripe);
        }
        ingest::commit(
            &*self.store,
            profile,
            *root,
            bytes,
            order.len() as u64,
            &stripes,
        )?;
        Ok(())
    }
}
