//! The shielded pool through a real node (RocksDB, Malachite, warp) on 127.0.0.1: a mint and a
//! spend with a real join-split proof are admitted and committed; at admission a spend whose
//! terms were changed after proving gets 422 `invalid_proof`, a second spend of a note 422
//! `rule_violation`; the committed chain replays (proofs verified again) to the node's root.

use crate::common;

use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::joinsplit::Spend;
use veilwatt_circuits::merkle::MemoryTree;
use veilwatt_circuits::note::{Note, SpendingKey};
use veilwatt_node::config::Home;
use veilwatt_node::run;
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::spend::{SpendProver, SpendRequest};
use veilwatt_verifier::pool::Pool;
use veilwatt_verifier::types::*;

const T: Duration = Duration::from_secs(60);
const FEE: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_and_a_spend_commit_and_bad_spends_are_refused_at_admission() {
    let dir = tempfile::tempdir().unwrap();
    let g = with_pool(genesis("shielded-node", 60, 30), 16, FEE);
    g.validate().unwrap();
    let home = make_home(dir.path(), &g, |_| {});
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let api = Api::new(format!("http://{}", node.api_addr));

    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let key = SpendingKey::generate(&mut rng);
    let vk = key.viewing_key();
    let tag = |i: u64| (vk.diversifier(i), vk.owner_tag(vk.diversifier(i)));

    // The registrar mints 5,000 to a one-time tag of the household.
    let (d0, owner0) = tag(0);
    let note = Note::new(5_000, owner0, &mut rng);
    let mint = Transaction::sign(
        &g.chain_id,
        TxBody::MintNote {
            value: 5_000,
            owner: FieldBytes::from_field(owner0),
            rho: FieldBytes::from_field(note.rho),
            reference: 1,
        },
        g.tx_expiry(now()),
        &registrar(),
    );
    assert_eq!(api.submit(&mint).await.0, 202);
    api.wait_committed(&mint.id(), T).await;
    let mut tree = MemoryTree::new();
    let position = tree.append(note.commitment()).unwrap();

    // A spend: 3,000 to a neighbour's tag, 1,990 change, the fee out.
    let keys = dev::keys_of(MarketCircuit::JoinSplit).unwrap();
    let prover = SpendProver::new(keys.pk.clone(), keys.vk_id).unwrap();
    let neighbour = SpendingKey::generate(&mut rng).viewing_key();
    let request = |rng: &mut ChaCha20Rng, change: u64| SpendRequest {
        anchor: tree.root(),
        inputs: [
            Spend {
                key: key.clone(),
                diversifier: d0,
                value: note.value,
                rho: note.rho,
                path: tree.path(position).unwrap(),
            },
            Spend::dummy(&key, rng),
        ],
        outputs: [
            (
                Note::new(
                    5_000 - FEE - change,
                    neighbour.owner_tag(neighbour.diversifier(0)),
                    rng,
                ),
                vec![1; 40],
            ),
            (Note::new(change, tag(1).1, rng), vec![2; 40]),
        ],
        public_in: 0,
        public_out: FEE,
        fee: FEE,
        payout: Payout::None,
    };
    let signer = SigningKey::from_bytes(&rng.gen());
    let expires = g.tx_expiry(now());
    let spend = prover
        .prove(
            &g.chain_id,
            expires,
            &signer,
            request(&mut rng, 1_990),
            &mut rng,
        )
        .unwrap();

    // Terms changed after proving (a bigger fee, re-signed): the proof no longer fits.
    let mut lifted = spend.body.clone();
    if let TxBody::Spend {
        fee, public_out, ..
    } = &mut lifted
    {
        *fee += 5;
        *public_out += 5;
    }
    let lifted = Transaction::sign(&g.chain_id, lifted, expires, &signer);
    let r = api.submit(&lifted).await;
    assert_eq!(
        (r.0, r.1["code"].as_str()),
        (422, Some("invalid_proof")),
        "{r:?}"
    );

    assert_eq!(api.submit(&spend).await.0, 202);
    let height = api.wait_committed(&spend.id(), T).await;

    // The same note again (another valid proof): refused by the rules at admission.
    let signer = SigningKey::from_bytes(&rng.gen());
    let again = prover
        .prove(
            &g.chain_id,
            g.tx_expiry(now()),
            &signer,
            request(&mut rng, 990),
            &mut rng,
        )
        .unwrap();
    let r = api.submit(&again).await;
    assert_eq!(
        (r.0, r.1["code"].as_str()),
        (422, Some("rule_violation")),
        "{r:?}"
    );
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("already revealed"),
        "{r:?}"
    );

    // The committed chain replays, proofs verified again, to the node's root; the pool holds
    // what was minted less the fee.
    let state = replay(&api, &g, height).await;
    let (_, block) = api.get(&format!("/v1/blocks/{height}")).await;
    assert_eq!(
        state.root().to_hex(),
        block["state_root"].as_str().unwrap(),
        "{block}"
    );
    let pool = Pool::load(&state).unwrap();
    assert_eq!((pool.balance, pool.fees), (5_000 - FEE, FEE));
    assert_eq!(pool.frontier().size(), 3);

    // The regulator's audit of the export: the spend's proof re-verified, the pool's figures
    // what the public transactions add up to.
    let gfile = dir.path().join("genesis.json");
    std::fs::write(&gfile, serde_json::to_vec(&g).unwrap()).unwrap();
    let xfile = dir.path().join("export.jsonl");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(["export", "--home"])
        .arg(&home)
        .arg("--out")
        .arg(&xfile)
        .status()
        .unwrap();
    assert!(st.success());
    let out = std::process::Command::new(sibling_bin("veilwatt-verifier"))
        .args(["audit", "--genesis"])
        .arg(&gfile)
        .arg("--ledger")
        .arg(&xfile)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sh = &report["shielded"];
    assert_eq!(sh["spend_proofs"], 1, "{report}");
    assert_eq!(sh["mints"], 1);
    assert_eq!(sh["minted_millis"], 5_000);
    assert_eq!(sh["fees_millis"], FEE);
    assert_eq!(sh["notes"], 3);
    assert_eq!(sh["nullifiers"], 2);
    assert_eq!(sh["balance_millis"], 5_000 - FEE);

    // A spend whose fee was changed in the export (blocks re-sealed by a tamperer holding the
    // validator key): its proof no longer verifies, and the audit names it.
    let bytes = std::fs::read(&xfile).unwrap();
    let mut export =
        veilwatt_verifier::audit::Export::read_from(std::io::BufReader::new(&bytes[..])).unwrap();
    let pos = export
        .blocks
        .iter()
        .position(|b| b.block.txs.iter().any(|t| t.id() == spend.id()))
        .unwrap();
    for tx in &mut export.blocks[pos].block.txs {
        if let TxBody::Spend {
            fee, public_out, ..
        } = &mut tx.body
        {
            *fee += 1;
            *public_out += 1;
        }
    }
    reseal(&g, &mut export, pos);
    let err = veilwatt_verifier::audit::audit(
        &g,
        &export,
        &market_verifier(&g),
        None,
        &veilwatt_verifier::audit::Quiet,
    )
    .unwrap_err();
    assert!(
        matches!(err, veilwatt_verifier::audit::AuditError::SpendProof { height, .. } if height == export.blocks[pos].block.height),
        "{err}"
    );
    node.shutdown().await;
}

/// An unlinkable order through a real node: the registrar enrols the household's meter with
/// its key commitment, the household rebuilds its registry path from the API's public leaves
/// and proves a sell order that names neither meter nor wallet; the node admits and commits
/// it, refuses (422 `invalid_proof`) the same proof lifted onto another price, and refuses
/// (422 `rule_violation`) a second order of the meter for the period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinkable_order_is_admitted_committed_and_bound_to_its_terms() {
    use veilwatt_circuits::registry::{self as reg, MemoryRegistry};
    use veilwatt_circuits::statement::PeriodStatement;
    use veilwatt_prover::unlinkable::{UnlinkableOrderProver, UnlinkableOrderRequest};
    let dir = tempfile::tempdir().unwrap();
    // A long gate: the last period's orders are open throughout the test.
    let g = with_registry(with_pool(genesis("unlinkable-node", 60, 600), 16, FEE), 8);
    g.validate().unwrap();
    let home = make_home(dir.path(), &g, |_| {});
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let api = Api::new(format!("http://{}", node.api_addr));
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let household = SpendingKey::generate(&mut rng).viewing_key();

    let enrol = Transaction::sign(
        &g.chain_id,
        TxBody::EnrollHousehold {
            meter: meter_key(1),
            nk_commit: FieldBytes::from_field(reg::nk_commitment(household.nk)),
        },
        g.tx_expiry(now()),
        &registrar(),
    );
    assert_eq!(api.submit(&enrol).await.0, 202);
    api.wait_committed(&enrol.id(), T).await;

    let (_, leaves) = api.get("/v1/registry/leaves").await;
    let mut registry = MemoryRegistry::new();
    for l in leaves["leaves"].as_array().unwrap() {
        let l = FieldBytes::from_hex(l.as_str().unwrap()).unwrap();
        registry.enrol(l.to_field().unwrap()).unwrap();
    }
    let period = (now() - g.genesis_time) / g.period_secs - 1;
    let statement = PeriodStatement {
        meter: meter(1).public_key(),
        period,
        import_wh: 400,
        export_wh: 2_900,
        profile_digest: ark_bn254::Fr::from(5u64),
    };
    let keys = dev::keys_of(MarketCircuit::OrderV2).unwrap();
    let prover = UnlinkableOrderProver::new(keys.pk.clone(), keys.vk_id).unwrap();
    let order = |rng: &mut ChaCha20Rng, price: u64| {
        let tag = household.owner_tag(household.diversifier(price));
        let request = UnlinkableOrderRequest {
            market: g.market_id(),
            nk: household.nk,
            path: registry.path(0).unwrap(),
            registry_root: registry.root(),
            statement: statement.sign_for_market(&meter(1), g.market_id()),
            side: Side::Sell,
            quantity_wh: 2_000,
            limit_price: price,
            payout: NoteTarget {
                owner: FieldBytes::from_field(tag),
                rho: FieldBytes::from_field(ark_bn254::Fr::from(price)),
            },
            cancel_commit: cancel_commitment(&Hash32([7; 32])),
            escrow: None,
        };
        let signer = SigningKey::from_bytes(&rng.gen());
        prover
            .prove(&g.chain_id, g.tx_expiry(now()), &signer, request, None, rng)
            .unwrap()
    };
    let sell = order(&mut rng, 12);

    let mut lifted = sell.body.clone();
    if let TxBody::UnlinkableOrder { limit_price, .. } = &mut lifted {
        *limit_price = 11;
    }
    let lifted = Transaction::sign(&g.chain_id, lifted, sell.expires_at, &key(9));
    let r = api.submit(&lifted).await;
    assert_eq!(
        (r.0, r.1["code"].as_str()),
        (422, Some("invalid_proof")),
        "{r:?}"
    );
    assert_eq!(api.submit(&sell).await.0, 202);
    api.wait_committed(&sell.id(), T).await;
    // The open period counts it (no meter or owner shown).
    let (s, view) = api.get(&format!("/v1/periods/{period}")).await;
    assert_eq!((s, view["status"].as_str()), (200, Some("open")), "{view}");
    assert_eq!(view["orders"]["sell"], 1, "{view}");
    assert_eq!(view["quantity_wh"]["sell"], 2_000, "{view}");
    let r = api.submit(&order(&mut rng, 14)).await;
    assert_eq!(
        (r.0, r.1["code"].as_str()),
        (422, Some("rule_violation")),
        "{r:?}"
    );
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("one order per meter"),
        "{r:?}"
    );
    node.shutdown().await;
}
