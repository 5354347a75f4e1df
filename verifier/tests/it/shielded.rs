//! The shielded pool in the ledger rules (docs/spec/notes.md, "Ledger protocol"): registrar
//! mints, spends with real join-split proofs under the development keys, the nullifier set, the
//! recent roots, the binding of a proof to its transaction, and the pool's money figures.

use crate::common;

use ark_bn254::Fr;
use ark_ff::UniformRand;
use common::*;
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;
use veilwatt_circuits::joinsplit::Spend;
use veilwatt_circuits::merkle::MemoryTree;
use veilwatt_circuits::note::{Note, SpendingKey};
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::spend::{SpendProver, SpendRequest};
use veilwatt_verifier::ledger::{BlockError, Ledger, LedgerRead, MarketVerifier, TxError};
use veilwatt_verifier::pool::{Pool, PoolError};
use veilwatt_verifier::state::Overlay;
use veilwatt_verifier::types::*;
use veilwatt_verifier::{Groth16Proof, JoinSplitVerifier};

const FEE: u64 = 10;

fn shielded_genesis(root_history: u64) -> Genesis {
    let mut g = genesis(Mechanism::Uniform);
    g.shielded = Some(ShieldedParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::JoinSplit).vk_id.0),
        root_history,
        min_fee: FEE,
    });
    g.validate().expect("valid genesis");
    g
}

fn verifiers() -> &'static MarketVerifier {
    static V: OnceLock<MarketVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let k = dev::keys_of(MarketCircuit::JoinSplit).expect("join-split keys");
        MarketVerifier {
            order: verifier().clone(),
            joinsplit: Some(JoinSplitVerifier::new(&k.vk, k.vk_id).expect("verifier")),
            unlinkable: None,
        }
    })
}

fn prover() -> &'static SpendProver {
    static P: OnceLock<SpendProver> = OnceLock::new();
    P.get_or_init(|| {
        let k = dev::keys_of(MarketCircuit::JoinSplit).expect("join-split keys");
        SpendProver::new(k.pk.clone(), k.vk_id).expect("prover")
    })
}

/// A household's spending key and the next diversifier it hands out.
struct Household {
    key: SpendingKey,
    next: std::cell::Cell<u64>,
}

impl Household {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        Self {
            key: SpendingKey::generate(rng),
            next: std::cell::Cell::new(0),
        }
    }

    /// A fresh one-time tag: (diversifier, owner tag).
    fn tag(&self) -> (Fr, Fr) {
        let vk = self.key.viewing_key();
        let d = vk.diversifier(self.next.get());
        self.next.set(self.next.get() + 1);
        (d, vk.owner_tag(d))
    }
}

/// A note a household holds, with where it is.
#[derive(Clone)]
struct Held {
    note: Note,
    diversifier: Fr,
    position: u32,
}

/// The chain under test, with a wallet's mirror of the note tree (every note in ledger order).
struct Chain {
    g: Genesis,
    state: St,
    tree: MemoryTree,
    time: u64,
    rng: ChaCha20Rng,
}

impl Chain {
    fn new(root_history: u64) -> Self {
        let g = shielded_genesis(root_history);
        let state = St::genesis(&g);
        Self {
            g,
            state,
            tree: MemoryTree::new(),
            time: T0 + 10,
            rng: ChaCha20Rng::seed_from_u64(7),
        }
    }

    /// Builds and applies a block of `txs`.
    fn apply(&mut self, txs: Vec<Transaction>) -> Result<(), BlockError> {
        self.time += 1;
        let b = block(&self.g, &self.state, self.time, txs.clone(), verifiers());
        self.state = self.state.apply_block(&self.g, &b, verifiers())?;
        for tx in &txs {
            match &tx.body {
                TxBody::MintNote {
                    value, owner, rho, ..
                } => {
                    let cm = veilwatt_circuits::note::commitment(
                        Fr::from(*value),
                        owner.to_field().unwrap(),
                        rho.to_field().unwrap(),
                    );
                    self.tree.append(cm).unwrap();
                }
                TxBody::Spend { outputs, .. } => {
                    for o in outputs {
                        self.tree.append(o.cm.to_field().unwrap()).unwrap();
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A registrar mint of `value` to a fresh tag of `h`; the note it will hold once applied.
    fn mint(&mut self, h: &Household, value: u64) -> (Transaction, Held) {
        let (diversifier, owner) = h.tag();
        let note = Note::new(value, owner, &mut self.rng);
        let tx = sign(
            &self.g,
            TxBody::MintNote {
                value,
                owner: FieldBytes::from_field(owner),
                rho: FieldBytes::from_field(note.rho),
                reference: self.rng.gen(),
            },
            &registrar(),
        );
        let held = Held {
            note,
            diversifier,
            position: self.tree.size() as u32,
        };
        (tx, held)
    }

    fn one_time_key(&mut self) -> SigningKey {
        SigningKey::from_bytes(&self.rng.gen())
    }

    /// A spend by `h` of `inputs` (a missing one is a dummy) into `outputs` (value, recipient
    /// tag), proving against the current root. Returns the transaction and the outputs as held
    /// notes, at the positions they get if it is the next transaction applied.
    #[allow(clippy::too_many_arguments)]
    fn spend(
        &mut self,
        h: &Household,
        inputs: &[Held],
        outputs: [(u64, (Fr, Fr)); 2],
        public_in: u64,
        public_out: u64,
        payout: Payout,
        signer: &SigningKey,
    ) -> (Transaction, [Held; 2]) {
        let real: Vec<Spend> = inputs
            .iter()
            .map(|n| Spend {
                key: h.key.clone(),
                diversifier: n.diversifier,
                value: n.note.value,
                rho: n.note.rho,
                path: self.tree.path(n.position).unwrap(),
            })
            .collect();
        let mut spends = real.into_iter();
        let mut next = || {
            spends
                .next()
                .unwrap_or_else(|| Spend::dummy(&h.key, &mut self.rng))
        };
        let inputs = [next(), next()];
        let notes = outputs.map(|(value, (_, owner))| Note::new(value, owner, &mut self.rng));
        let at = self.tree.size() as u32;
        let held = [0, 1].map(|i| Held {
            note: notes[i],
            diversifier: outputs[i].1 .0,
            position: at + i as u32,
        });
        let request = SpendRequest {
            anchor: self.tree.root(),
            inputs,
            outputs: notes.map(|n| (n, vec![0xab; 48])),
            public_in,
            public_out,
            fee: FEE,
            payout,
        };
        let tx = prover()
            .prove(&self.g.chain_id, EXPIRY, signer, request, &mut self.rng)
            .expect("a valid spend");
        (tx, held)
    }

    fn pool(&self) -> Pool {
        Pool::load(&self.state.0).unwrap()
    }
}

fn tx_error(e: BlockError) -> (usize, TxError) {
    match e {
        BlockError::Tx { index, error, .. } => (index, error),
        e => panic!("expected a transaction error, got {e}"),
    }
}

#[test]
fn mint_transfer_withdraw_and_pay_to_a_wallet_keep_the_supply() {
    let mut c = Chain::new(8);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (alice, bob) = (Household::new(&mut rng), Household::new(&mut rng));

    let (mint, a0) = c.mint(&alice, 10_000);
    c.apply(vec![mint]).unwrap();
    assert_eq!(c.pool().balance, 10_000);

    // Alice pays bob 6,000 and keeps 3,990 as change; the fee is the public amount out.
    let signer = c.one_time_key();
    let (bob_tag, change_tag) = (bob.tag(), alice.tag());
    let (pay, [b0, a1]) = c.spend(
        &alice,
        &[a0],
        [(6_000, bob_tag), (3_990, change_tag)],
        0,
        FEE,
        Payout::None,
        &signer,
    );
    c.apply(vec![pay]).unwrap();

    // Bob withdraws his 6,000 to a bank account (two zero-value notes back to himself).
    let signer = c.one_time_key();
    let zeros = [(0, bob.tag()), (0, bob.tag())];
    let (withdraw, _) = c.spend(
        &bob,
        &[b0],
        zeros,
        0,
        6_000,
        Payout::Bank { reference: 42 },
        &signer,
    );
    c.apply(vec![withdraw]).unwrap();

    // Alice moves her change to a wallet balance (what orders still use).
    let wallet_key = owner(5);
    let signer = c.one_time_key();
    let zeros = [(0, alice.tag()), (0, alice.tag())];
    let (to_wallet, _) = c.spend(
        &alice,
        &[a1],
        zeros,
        0,
        3_990,
        Payout::Wallet {
            wallet: wallet(&wallet_key),
        },
        &signer,
    );
    c.apply(vec![to_wallet]).unwrap();

    let pool = c.pool();
    assert_eq!(pool.balance, 0);
    assert_eq!(pool.fees, 3 * FEE);
    assert_eq!(pool.frontier().size(), 7);
    let meta = c.state.0.meta().unwrap();
    assert_eq!(meta.total_deposits, 10_000);
    assert_eq!(meta.total_withdrawals, 6_000 - FEE);
    let account = c.state.0.account(&wallet(&wallet_key)).unwrap().unwrap();
    assert_eq!(account.balance, 3_990 - FEE);
    // Deposits = withdrawals + wallets + fees + what the pool holds.
    assert_eq!(
        meta.total_deposits,
        meta.total_withdrawals + account.balance + pool.fees + pool.balance
    );
}

#[test]
fn a_note_is_spent_once_across_blocks_and_within_one() {
    let mut c = Chain::new(8);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let alice = Household::new(&mut rng);
    let (mint, a0) = c.mint(&alice, 500);
    c.apply(vec![mint]).unwrap();

    // Two different spends of the same note in one block: the second is refused.
    let k1 = c.one_time_key();
    let k2 = c.one_time_key();
    let (first, _) = c.spend(
        &alice,
        std::slice::from_ref(&a0),
        [(490, alice.tag()), (0, alice.tag())],
        0,
        FEE,
        Payout::None,
        &k1,
    );
    let (second, _) = c.spend(
        &alice,
        std::slice::from_ref(&a0),
        [(250, alice.tag()), (240, alice.tag())],
        0,
        FEE,
        Payout::None,
        &k2,
    );
    let e = c.apply(vec![first.clone(), second]).unwrap_err();
    let (index, error) = tx_error(e);
    assert_eq!(index, 1);
    assert!(
        matches!(error, TxError::Pool(PoolError::DoubleSpend(_))),
        "{error}"
    );

    // Across blocks: the first alone commits; a later spend of the note is refused.
    c.apply(vec![first]).unwrap();
    let k3 = c.one_time_key();
    let (again, _) = c.spend(
        &alice,
        &[a0],
        [(490, alice.tag()), (0, alice.tag())],
        0,
        FEE,
        Payout::None,
        &k3,
    );
    let (_, error) = tx_error(c.apply(vec![again]).unwrap_err());
    assert!(
        matches!(error, TxError::Pool(PoolError::DoubleSpend(_))),
        "{error}"
    );
}

#[test]
fn a_spend_proves_against_a_recent_root_only() {
    // K = 2: the roots after the last two note-making blocks.
    let mut c = Chain::new(2);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let alice = Household::new(&mut rng);
    let (mint, a0) = c.mint(&alice, 700);
    c.apply(vec![mint]).unwrap();
    let old_root = c.tree.root();
    let old_path = c.tree.path(a0.position).unwrap();
    for value in [1, 2] {
        let (m, _) = c.mint(&alice, value);
        c.apply(vec![m]).unwrap();
    }
    // A block without notes records no root and forgets none.
    c.apply(vec![]).unwrap();

    // Against the expired root (where the note is, with its path then): refused.
    let k = c.one_time_key();
    let request = SpendRequest {
        anchor: old_root,
        inputs: [
            Spend {
                key: alice.key.clone(),
                diversifier: a0.diversifier,
                value: a0.note.value,
                rho: a0.note.rho,
                path: old_path,
            },
            Spend::dummy(&alice.key, &mut c.rng),
        ],
        outputs: [
            (Note::new(690, alice.tag().1, &mut c.rng), vec![]),
            (Note::new(0, alice.tag().1, &mut c.rng), vec![]),
        ],
        public_in: 0,
        public_out: FEE,
        fee: FEE,
        payout: Payout::None,
    };
    let stale = prover()
        .prove(&c.g.chain_id, EXPIRY, &k, request, &mut c.rng)
        .unwrap();
    let (_, error) = tx_error(c.apply(vec![stale]).unwrap_err());
    assert_eq!(
        error,
        TxError::Pool(PoolError::UnknownAnchor(FieldBytes::from_field(old_root)))
    );

    // A root that never was: refused (the proof is made for it, so only the rule stops it).
    let mut fake = c.tree.clone();
    fake.append(Fr::rand(&mut c.rng)).unwrap();
    let k = c.one_time_key();
    let request = SpendRequest {
        anchor: fake.root(),
        inputs: [
            Spend {
                key: alice.key.clone(),
                diversifier: a0.diversifier,
                value: a0.note.value,
                rho: a0.note.rho,
                path: fake.path(a0.position).unwrap(),
            },
            Spend::dummy(&alice.key, &mut c.rng),
        ],
        outputs: [
            (Note::new(690, alice.tag().1, &mut c.rng), vec![]),
            (Note::new(0, alice.tag().1, &mut c.rng), vec![]),
        ],
        public_in: 0,
        public_out: FEE,
        fee: FEE,
        payout: Payout::None,
    };
    let invented = prover()
        .prove(&c.g.chain_id, EXPIRY, &k, request, &mut c.rng)
        .unwrap();
    let (_, error) = tx_error(c.apply(vec![invented]).unwrap_err());
    assert!(
        matches!(error, TxError::Pool(PoolError::UnknownAnchor(_))),
        "{error}"
    );

    // Against the current root: accepted.
    let k = c.one_time_key();
    let (fresh, _) = c.spend(
        &alice,
        &[a0],
        [(690, alice.tag()), (0, alice.tag())],
        0,
        FEE,
        Payout::None,
        &k,
    );
    c.apply(vec![fresh]).unwrap();
}

#[test]
fn a_spend_proof_covers_every_term_and_the_signer() {
    let mut c = Chain::new(8);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let alice = Household::new(&mut rng);
    let (mint, a0) = c.mint(&alice, 900);
    c.apply(vec![mint]).unwrap();
    let k = c.one_time_key();
    let (tx, _) = c.spend(
        &alice,
        &[a0],
        [(400, alice.tag()), (0, alice.tag())],
        0,
        500,
        Payout::Bank { reference: 1 },
        &k,
    );
    let TxBody::Spend { .. } = &tx.body else {
        unreachable!()
    };
    // Each change re-signed by the same key (a valid signature): only the proof refuses it.
    type Change = Box<dyn Fn(&mut TxBody)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "payout reference",
            Box::new(|b| {
                if let TxBody::Spend { payout, .. } = b {
                    *payout = Payout::Bank { reference: 2 };
                }
            }),
        ),
        (
            "payout to a wallet",
            Box::new(|b| {
                if let TxBody::Spend { payout, .. } = b {
                    *payout = Payout::Wallet {
                        wallet: wallet(&owner(9)),
                    };
                }
            }),
        ),
        (
            "fee",
            Box::new(|b| {
                if let TxBody::Spend { fee, .. } = b {
                    *fee += 1;
                }
            }),
        ),
        (
            "memo",
            Box::new(|b| {
                if let TxBody::Spend { outputs, .. } = b {
                    outputs[1].memo[0] ^= 1;
                }
            }),
        ),
        (
            "public out",
            Box::new(|b| {
                if let TxBody::Spend { public_out, .. } = b {
                    *public_out += 1;
                }
            }),
        ),
        (
            "outputs swapped",
            Box::new(|b| {
                if let TxBody::Spend { outputs, .. } = b {
                    outputs.swap(0, 1);
                }
            }),
        ),
    ];
    for (what, change) in changes {
        let mut body = tx.body.clone();
        change(&mut body);
        let t = Transaction::sign(&c.g.chain_id, body, tx.expires_at, &k);
        let (_, error) = tx_error(c.apply(vec![t]).unwrap_err());
        assert!(matches!(error, TxError::InvalidProof(_)), "{what}: {error}");
    }
    // Another expiry, and another signer.
    let t = Transaction::sign(&c.g.chain_id, tx.body.clone(), tx.expires_at - 1, &k);
    let (_, error) = tx_error(c.apply(vec![t]).unwrap_err());
    assert!(matches!(error, TxError::InvalidProof(_)), "expiry: {error}");
    let other = c.one_time_key();
    let t = Transaction::sign(&c.g.chain_id, tx.body.clone(), tx.expires_at, &other);
    let (_, error) = tx_error(c.apply(vec![t]).unwrap_err());
    assert!(matches!(error, TxError::InvalidProof(_)), "signer: {error}");
    // A proof of all zeros does not even decode.
    let mut body = tx.body.clone();
    if let TxBody::Spend { proof, .. } = &mut body {
        *proof = Groth16Proof([0; 128]);
    }
    let t = Transaction::sign(&c.g.chain_id, body, tx.expires_at, &k);
    let (_, error) = tx_error(c.apply(vec![t]).unwrap_err());
    assert!(matches!(error, TxError::InvalidProof(_)), "zeros: {error}");
    // The untouched transaction is fine.
    c.apply(vec![tx]).unwrap();
}

/// A spend body with a placeholder proof (the rules alone, as `Ledger::apply_tx` checks them).
fn unproven_spend(anchor: FieldBytes, nf: u64, public_in: u64, public_out: u64) -> TxBody {
    TxBody::Spend {
        anchor,
        nullifiers: [
            FieldBytes::from_field(Fr::from(nf)),
            FieldBytes::from_field(Fr::from(nf + 1)),
        ],
        outputs: [1u64, 2].map(|x| NoteOutput {
            cm: FieldBytes::from_field(Fr::from(1_000 + nf + x)),
            memo: vec![],
        }),
        public_in,
        public_out,
        fee: FEE,
        payout: Payout::None,
        proof: Groth16Proof([0; 128]),
    }
}

#[test]
fn the_rules_of_mints_and_spends() {
    let g = shielded_genesis(4);
    let ledger = Ledger::new(&g).unwrap();
    let s = St::genesis(&g);
    let empty_root = FieldBytes::from_field(MemoryTree::new().root());
    let time = T0 + 10;
    let apply = |state: &mut Overlay<'_>, tx: &Transaction| ledger.apply_tx(state, tx, time);
    let mut o = Overlay::new(&s.0);

    // Mints: registrar only, positive, canonical field elements.
    let mint = |value: u64, owner: FieldBytes| TxBody::MintNote {
        value,
        owner,
        rho: FieldBytes::from_field(Fr::from(3u64)),
        reference: value,
    };
    let good = FieldBytes::from_field(Fr::from(77u64));
    let e = apply(&mut o, &sign(&g, mint(5, good), &owner(1))).unwrap_err();
    assert_eq!(e, TxError::NotRegistrar);
    let e = apply(&mut o, &sign(&g, mint(0, good), &registrar())).unwrap_err();
    assert_eq!(e, TxError::ZeroAmount);
    let bad = FieldBytes([0xff; 32]);
    let e = apply(&mut o, &sign(&g, mint(5, bad), &registrar())).unwrap_err();
    assert_eq!(e, TxError::Pool(PoolError::NotAField(bad)));
    apply(&mut o, &sign(&g, mint(100, good), &registrar())).unwrap();
    assert_eq!(Pool::load(&o).unwrap().balance, 100);

    // Spends (proofs are the block's business; these are the rules).
    let signer = owner(3);
    let spend = |body: TxBody| sign(&g, body, &signer);
    let with = |mut body: TxBody, f: &dyn Fn(&mut TxBody)| {
        f(&mut body);
        body
    };
    let base = unproven_spend(empty_root, 10, 0, FEE);
    let e = apply(
        &mut o,
        &spend(with(base.clone(), &|b| {
            if let TxBody::Spend {
                fee, public_out, ..
            } = b
            {
                *fee = FEE - 1;
                *public_out = FEE - 1;
            }
        })),
    )
    .unwrap_err();
    assert_eq!(e, TxError::FeeTooLow { fee: 9, min: FEE });
    let e = apply(
        &mut o,
        &spend(with(base.clone(), &|b| {
            if let TxBody::Spend { public_out, .. } = b {
                *public_out = FEE + 1;
            }
        })),
    )
    .unwrap_err();
    assert!(matches!(e, TxError::PayoutMismatch { .. }), "{e}");
    let e = apply(
        &mut o,
        &spend(with(base.clone(), &|b| {
            if let TxBody::Spend { public_out, .. } = b {
                *public_out = FEE - 1;
            }
        })),
    )
    .unwrap_err();
    assert!(matches!(e, TxError::PayoutMismatch { .. }), "{e}");
    let e = apply(
        &mut o,
        &spend(with(base.clone(), &|b| {
            if let TxBody::Spend {
                public_out, payout, ..
            } = b
            {
                *public_out = FEE;
                *payout = Payout::Bank { reference: 1 };
            }
        })),
    )
    .unwrap_err();
    assert_eq!(e, TxError::ZeroAmount);
    let e = apply(
        &mut o,
        &spend(with(base.clone(), &|b| {
            if let TxBody::Spend { outputs, .. } = b {
                outputs[0].memo = vec![0; MAX_NOTE_MEMO + 1];
            }
        })),
    )
    .unwrap_err();
    assert_eq!(
        e,
        TxError::MemoTooLong {
            len: MAX_NOTE_MEMO + 1,
            max: MAX_NOTE_MEMO
        }
    );
    // The empty tree's root is an anchor from genesis on; a root never recorded is not.
    let e = apply(
        &mut o,
        &spend(unproven_spend(
            FieldBytes::from_field(Fr::from(5u64)),
            20,
            0,
            FEE,
        )),
    )
    .unwrap_err();
    assert!(
        matches!(e, TxError::Pool(PoolError::UnknownAnchor(_))),
        "{e}"
    );
    // More out than the pool holds (100): refused whatever the proof says.
    let e = apply(
        &mut o,
        &spend(with(unproven_spend(empty_root, 30, 0, 101), &|b| {
            if let TxBody::Spend { payout, .. } = b {
                *payout = Payout::Bank { reference: 9 };
            }
        })),
    )
    .unwrap_err();
    assert!(
        matches!(e, TxError::Pool(PoolError::Insolvent { .. })),
        "{e}"
    );
    // Paying in from a wallet: only what the signer's balance has.
    let e = apply(&mut o, &spend(unproven_spend(empty_root, 40, 50, FEE))).unwrap_err();
    assert_eq!(e, TxError::InsufficientFunds { need: 50, have: 0 });
    apply(&mut o, &deposit(&g, 3, 80)).unwrap();
    apply(&mut o, &spend(unproven_spend(empty_root, 40, 50, FEE))).unwrap();
    assert_eq!(o.account(&wallet(&signer)).unwrap().unwrap().balance, 30);
    assert_eq!(Pool::load(&o).unwrap().balance, 100 + 50 - FEE);
    // Its nullifiers are now spent; a non-canonical one is refused.
    let e = apply(&mut o, &spend(unproven_spend(empty_root, 41, 0, FEE))).unwrap_err();
    assert!(matches!(e, TxError::Pool(PoolError::DoubleSpend(_))), "{e}");
    let e = apply(
        &mut o,
        &spend(with(unproven_spend(empty_root, 60, 0, FEE), &|b| {
            if let TxBody::Spend { nullifiers, .. } = b {
                nullifiers[1] = bad;
            }
        })),
    )
    .unwrap_err();
    assert_eq!(e, TxError::Pool(PoolError::NotAField(bad)));

    // Without a shielded pool, neither kind exists.
    let plain = genesis(Mechanism::Uniform);
    let ledger = Ledger::new(&plain).unwrap();
    let s = St::genesis(&plain);
    let mut o = Overlay::new(&s.0);
    let e = ledger
        .apply_tx(&mut o, &sign(&plain, mint(5, good), &registrar()), time)
        .unwrap_err();
    assert_eq!(e, TxError::ShieldedDisabled);
    let e = ledger
        .apply_tx(
            &mut o,
            &sign(&plain, unproven_spend(empty_root, 1, 0, FEE), &signer),
            time,
        )
        .unwrap_err();
    assert_eq!(e, TxError::ShieldedDisabled);
}

#[test]
fn shielded_genesis_parameters_are_validated() {
    let mut g = shielded_genesis(4);
    if let Some(s) = &mut g.shielded {
        s.root_history = 0;
    }
    assert!(g.validate().is_err());
    let mut g = shielded_genesis(4);
    if let Some(s) = &mut g.shielded {
        s.root_history = MAX_ROOT_HISTORY + 1;
    }
    assert!(g.validate().is_err());
    // The development join-split key on a market that does not say it is a play market.
    let mut g = shielded_genesis(4);
    g.vk_id = Hash32([7; 32]);
    g.insecure_dev_keys = false;
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("INSECURE"), "{e}");
}
