//! A node pinned to a network's keys refuses what was proved under other keys: sector records
//! sealed under the development keys (whose trapdoor is public) are not registered, so their
//! sectors are never counted or audited, while a development node accepts the same records.
//! The pinned keys here come from an independent seeded setup written in the ceremony's key
//! format (the ceremony itself is tested in `cairn-proofs`); a wrong pin stops the node.

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use cairn_core::testgen::Gen;
use cairn_net::{Keypair, NetConfig};
use cairn_proofs::audit::{EntryKind, KeySource};
use cairn_proofs::keys::pinned;
use cairn_proofs::porep::SealCircuit;
use cairn_proofs::post::PostCircuit;
use cairn_repo::Repo;
use cairn_storage_node::node::{Node, NodeOptions};
use cairn_storage_node::proving::SECTOR_TOPIC;

mod common;
use common::{opts, params};

/// Keys for [`params`] from a seeded setup other than the development one, pinned in `dir`.
fn other_keys(dir: &std::path::Path) -> String {
    let p = params();
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(0x0BAD_5EED);
    let (seal, _) = Groth16::<Bn254>::circuit_specific_setup(
        SealCircuit::blank(p.sector(), p.seal_challenges),
        &mut rng,
    )
    .unwrap();
    let (post, _) =
        Groth16::<Bn254>::circuit_specific_setup(PostCircuit::blank(p.post_shape()), &mut rng)
            .unwrap();
    pinned::write(dir, p.manifest_params(), &seal, &post).unwrap()
}

fn with_keys(keys: KeySource) -> NodeOptions {
    let mut o = opts(true);
    if let Some(p) = o.proofs.as_mut() {
        p.keys = keys;
    }
    o
}

async fn start(o: NodeOptions) -> Result<Node, cairn_storage_node::node::NodeError> {
    Node::start(
        Repo::in_memory(),
        Keypair::generate_ed25519(),
        NetConfig::default(),
        o,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_node_refuses_records_proved_under_development_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let pin = other_keys(&keys);

    // a wrong pin, or pinned keys made for other parameters, stop the node at start
    let wrong = KeySource::Pinned {
        dir: keys.clone(),
        sha256: "ab".repeat(32),
    };
    assert!(start(with_keys(wrong)).await.is_err());
    let mut other_params = with_keys(KeySource::Pinned {
        dir: keys.clone(),
        sha256: pin.clone(),
    });
    if let Some(p) = other_params.proofs.as_mut() {
        p.params.challenges += 1;
    }
    assert!(start(other_params).await.is_err());

    let pinned_node = start(with_keys(KeySource::Pinned {
        dir: keys.clone(),
        sha256: pin,
    }))
    .await
    .unwrap();
    let dev_node = start(opts(true)).await.unwrap();
    let witness = start(opts(true)).await.unwrap();

    // the development node seals what it stores and logs its own records
    let path = dir.path().join("data.bin");
    std::fs::write(&path, Gen::bytes(11, 8 << 10)).unwrap();
    dev_node.put(&path).await.unwrap();
    assert!(dev_node.seal_now().await.unwrap() > 0);
    let records: Vec<Vec<u8>> = dev_node
        .audit_log(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Sector)
        .map(|e| e.body)
        .collect();
    assert!(!records.is_empty());

    for r in &records {
        // another development node registers it
        assert_eq!(
            witness
                .accept_gossip(dev_node.peer_id(), SECTOR_TOPIC, r.clone())
                .await,
            Ok(false)
        );
        // the pinned node refuses it: the seal proof does not verify under its keys
        let refused = pinned_node
            .accept_gossip(dev_node.peer_id(), SECTOR_TOPIC, r.clone())
            .await;
        let why = refused.expect_err("a pinned node registered a dev-key record");
        assert!(why.contains("seal proof does not verify"), "{why}");
    }
    // so it knows no sector of the development node and has nothing to audit there
    assert!(pinned_node
        .audit_log(0)
        .await
        .unwrap()
        .iter()
        .all(|e| e.kind != EntryKind::Sector));
    assert!(pinned_node
        .audit_once_for(dev_node.peer_id())
        .await
        .unwrap()
        .is_none());
    // and it reports its pin
    assert!(pinned_node.proof_status().unwrap().keys_sha256.is_some());
    assert!(dev_node.proof_status().unwrap().keys_sha256.is_none());
}
