//! A small community for ledger tests: a registrar, one validator, meters with owners, and real
//! proofs made once under the development keys.
#![allow(dead_code)]

pub mod reference;

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
pub use reference::RefState;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use veilwatt_circuits::{eddsa::SecretKey, statement::PeriodStatement};
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::audit::{Certificate, Export, ExportedBlock, EXPORT_FORMAT};
use veilwatt_verifier::ledger::{Applied, BlockError, Ledger, ProofCheck};
use veilwatt_verifier::state::MemoryState;
use veilwatt_verifier::types::*;
use veilwatt_verifier::{OrderProof, OrderVerifier};

pub const PERIOD: u64 = 60;
pub const GATE: u64 = 30;
pub const T0: u64 = 1_700_000_000;
/// The expiry the helpers sign with: valid at every block time these tests use (up to
/// `after_gate(10)` and beyond), within the genesis lifetime from `T0` on.
pub const EXPIRY: u64 = T0 + 3_000;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn wallet(k: &SigningKey) -> WalletKey {
    WalletKey(k.verifying_key().to_bytes())
}

pub fn registrar() -> SigningKey {
    key(200)
}

pub fn validator() -> SigningKey {
    key(201)
}

pub fn genesis(mechanism: Mechanism) -> Genesis {
    let g = Genesis {
        chain_id: "veilwatt-test".into(),
        genesis_time: T0,
        validators: vec![Validator {
            name: "utility".into(),
            key: wallet(&validator()),
            power: 1,
        }],
        registrar: wallet(&registrar()),
        period_secs: PERIOD,
        gate_delay_secs: GATE,
        mechanism,
        fees: FeeSchedule {
            grid_fee_per_kwh: 5,
            market_fee_per_kwh: 2,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32(dev::keys().expect("keys").vk_id.0),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    };
    g.validate().expect("valid genesis");
    g
}

/// Household `i`: meter secret and wallet.
pub fn meter_secret(i: u8) -> SecretKey {
    SecretKey::from_bytes([i; 32])
}

pub fn meter_key(i: u8) -> MeterKey {
    MeterKey::from_public_key(&meter_secret(i).public_key())
}

pub fn owner(i: u8) -> SigningKey {
    key(i)
}

pub fn verifier() -> &'static OrderVerifier {
    static V: OnceLock<OrderVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let k = dev::keys().expect("keys");
        OrderVerifier::new(&k.vk, k.vk_id).expect("verifier")
    })
}

/// A real proof for household `i`, period `p`, `side`, `quantity` (memoized per process).
pub fn proof(i: u8, p: u64, side: Side, quantity_wh: u32) -> OrderProof {
    static PROVER: OnceLock<Prover> = OnceLock::new();
    static CACHE: Mutex<BTreeMap<(u8, u64, Side, u32), OrderProof>> = Mutex::new(BTreeMap::new());
    if let Some(p) = CACHE.lock().unwrap().get(&(i, p, side, quantity_wh)) {
        return *p;
    }
    let prover = PROVER.get_or_init(|| {
        let k = dev::keys().expect("keys");
        Prover::new(k.pk.clone(), k.vk_id).expect("prover")
    });
    let sk = meter_secret(i);
    let (import_wh, export_wh) = match side {
        Side::Sell => (100, 100 + quantity_wh),
        Side::Buy => (100 + quantity_wh, 100),
    };
    let st = PeriodStatement {
        meter: sk.public_key(),
        period: p,
        import_wh,
        export_wh,
        profile_digest: veilwatt_circuits::statement::profile_digest(&[(import_wh, export_wh)]),
    }
    .sign(&sk);
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(i) ^ (p << 8));
    let proven = prover
        .prove(
            &st,
            &OrderRequest {
                side: side.into(),
                quantity_wh,
            },
            &mut rng,
        )
        .expect("proof");
    CACHE
        .lock()
        .unwrap()
        .insert((i, p, side, quantity_wh), proven.proof);
    proven.proof
}

pub fn sign(g: &Genesis, body: TxBody, k: &SigningKey) -> Transaction {
    Transaction::sign(&g.chain_id, body, EXPIRY, k)
}

/// `tx` signed again by `k` with another expiry.
pub fn resign(g: &Genesis, tx: Transaction, expires_at: u64, k: &SigningKey) -> Transaction {
    Transaction::sign(&g.chain_id, tx.body, expires_at, k)
}

pub fn enroll(g: &Genesis, i: u8) -> Transaction {
    sign(
        g,
        TxBody::EnrollMeter {
            meter: meter_key(i),
            owner: wallet(&owner(i)),
        },
        &registrar(),
    )
}

pub fn deposit(g: &Genesis, i: u8, amount: Millis) -> Transaction {
    sign(
        g,
        TxBody::Deposit {
            to: wallet(&owner(i)),
            amount,
            reference: (u64::from(i) << 32) | (amount % 1_000_000),
        },
        &registrar(),
    )
}

pub fn order(g: &Genesis, i: u8, p: u64, side: Side, q: u32, price: u64) -> Transaction {
    let body = TxBody::Order {
        meter: meter_key(i),
        period: p,
        side,
        quantity_wh: q,
        limit_price: price,
        proof: proof(i, p, side, q),
    };
    sign(g, body, &owner(i))
}

/// Time inside period `p`'s order window.
pub fn in_gate(p: u64) -> u64 {
    T0 + (p + 1) * PERIOD + 1
}

/// Time after period `p`'s gate closed.
pub fn after_gate(p: u64) -> u64 {
    T0 + (p + 1) * PERIOD + GATE
}

/// A keyed ledger state in memory, cheap to keep per block in tests (cloned, never shared).
#[derive(Clone, Debug)]
pub struct St(pub MemoryState);

impl St {
    /// The genesis state.
    pub fn genesis(g: &Genesis) -> Self {
        let mut m = MemoryState::default();
        let u = Ledger::new(g)
            .expect("valid genesis")
            .genesis_update(&m)
            .expect("genesis");
        m.commit(u);
        St(m)
    }

    /// Everything in it, decoded (and its indexes checked).
    pub fn view(&self) -> RefState {
        RefState::from_keyed(&self.0)
    }

    /// The state root.
    pub fn root(&self) -> Hash32 {
        self.0.root()
    }

    /// The state after `applied`.
    pub fn after(&self, applied: Applied) -> St {
        let mut next = self.clone();
        next.0.commit(applied.update);
        next
    }

    /// Applies `block`, returning the next state.
    pub fn apply_block(
        &self,
        g: &Genesis,
        block: &Block,
        proofs: &dyn ProofCheck,
    ) -> Result<St, BlockError> {
        let applied = Ledger::new(g)
            .expect("valid genesis")
            .apply_block(&self.0, block, proofs)?;
        Ok(self.after(applied))
    }
}

/// A block on top of `state` with the correct root.
pub fn block(
    g: &Genesis,
    state: &St,
    time: u64,
    txs: Vec<Transaction>,
    proofs: &dyn ProofCheck,
) -> Block {
    let view = state.view();
    let mut b = Block {
        height: view.height + 1,
        prev_hash: view.last_block_hash,
        time,
        proposer: wallet(&validator()),
        txs,
        state_root: Hash32::default(),
    };
    let ledger = Ledger::new(g).expect("valid genesis");
    if let Ok((changes, _)) = ledger.execute(&state.0, &b, proofs) {
        if let Ok(u) = veilwatt_verifier::state::StateUpdate::compute(&state.0, b.height, changes) {
            b.state_root = u.root;
        }
    }
    b
}

/// Applies a block built by [`block`], panicking on error.
pub fn apply(g: &Genesis, state: &St, time: u64, txs: Vec<Transaction>) -> St {
    let b = block(g, state, time, txs, verifier());
    state.apply_block(g, &b, verifier()).expect("valid block")
}

/// `blocks` as an export of `g`'s chain, each with a commit certificate of its (only)
/// validator.
pub fn export(g: &Genesis, blocks: &[Block]) -> Export {
    let me = wallet(&validator());
    let blocks = blocks
        .iter()
        .map(|b| {
            let mut cert = Certificate {
                height: b.height,
                round: 0,
                block_hash: b.hash(),
                signatures: vec![],
            };
            let sig =
                ed25519_dalek::Signer::sign(&validator(), &cert.signing_bytes(&g.chain_id, &me));
            cert.signatures.push((me, Signature64(sig.to_bytes())));
            ExportedBlock {
                hash: b.hash(),
                block: b.clone(),
                certificate: hex::encode(cert.encode()),
            }
        })
        .collect::<Vec<_>>();
    Export {
        format: EXPORT_FORMAT.into(),
        chain_id: g.chain_id.clone(),
        genesis_hash: g.hash(),
        from: 1,
        to: blocks.len() as u64,
        blocks,
    }
}
