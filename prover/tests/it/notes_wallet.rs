//! The shielded wallet against the real ledger rules: notes minted and paid to a household's
//! addresses are found by scanning the committed blocks, spends it plans are accepted, a
//! wallet restored from its key alone finds exactly its notes, and the sealed notes file
//! reopens to the same wallet.

use ed25519_dalek::SigningKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::notes::{spending_key, NoteBook, NotesFile};
use veilwatt_prover::spend::SpendProver;
use veilwatt_verifier::ledger::{Ledger, LedgerRead, MarketVerifier};
use veilwatt_verifier::pool::Pool;
use veilwatt_verifier::state::{MemoryState, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::{JoinSplitVerifier, OrderVerifier};

const T0: u64 = 1_700_000_000;
const FEE: u64 = 10;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn wallet(k: &SigningKey) -> WalletKey {
    WalletKey(k.verifying_key().to_bytes())
}

struct Chain {
    g: Genesis,
    state: MemoryState,
    blocks: Vec<Block>,
    verifier: MarketVerifier,
    prover: SpendProver,
    time: u64,
    rng: ChaCha20Rng,
}

impl Chain {
    fn new() -> Self {
        let order = dev::keys().unwrap();
        let js = dev::keys_of(MarketCircuit::JoinSplit).unwrap();
        let g = Genesis {
            chain_id: "notes-wallet".into(),
            genesis_time: T0,
            validators: vec![Validator {
                name: "v".into(),
                key: wallet(&key(201)),
                power: 1,
            }],
            registrar: wallet(&key(200)),
            period_secs: 60,
            gate_delay_secs: 30,
            mechanism: Mechanism::Uniform,
            fees: FeeSchedule {
                grid_fee_per_kwh: 5,
                market_fee_per_kwh: 2,
                market_fee_buyer_share_bps: 5_000,
            },
            price_floor: 8,
            price_cap: 30,
            vk_id: Hash32(order.vk_id.0),
            insecure_dev_keys: true,
            max_tx_lifetime_secs: DEFAULT_MAX_TX_LIFETIME_SECS,
            result_retention_periods: DEFAULT_RESULT_RETENTION_PERIODS,
            shielded: Some(ShieldedParams {
                vk_id: Hash32(js.vk_id.0),
                root_history: 8,
                min_fee: FEE,
            }),
            anonymous: None,
            consensus: Default::default(),
            spam: Default::default(),
        };
        let mut state = MemoryState::default();
        let genesis = Ledger::new(&g).unwrap().genesis_update(&state).unwrap();
        state.commit(genesis);
        Self {
            verifier: MarketVerifier {
                order: OrderVerifier::new(&order.vk, order.vk_id).unwrap(),
                joinsplit: Some(JoinSplitVerifier::new(&js.vk, js.vk_id).unwrap()),
                unlinkable: None,
            },
            prover: SpendProver::new(js.pk.clone(), js.vk_id).unwrap(),
            g,
            state,
            blocks: Vec::new(),
            time: T0 + 10,
            rng: ChaCha20Rng::seed_from_u64(5),
        }
    }

    /// Commits a block of `txs` (which must all be valid).
    fn commit(&mut self, txs: Vec<Transaction>) -> &Block {
        self.time += 1;
        let ledger = Ledger::new(&self.g).unwrap();
        let mut b = Block {
            height: self.state.meta().unwrap().height + 1,
            prev_hash: self.state.last_block_hash().unwrap(),
            time: self.time,
            proposer: wallet(&key(201)),
            txs,
            state_root: Hash32::default(),
        };
        let (changes, _) = ledger.execute(&self.state, &b, &self.verifier).unwrap();
        b.state_root = StateUpdate::compute(&self.state, b.height, changes)
            .unwrap()
            .root;
        let applied = ledger.apply_block(&self.state, &b, &self.verifier).unwrap();
        self.state.commit(applied.update);
        self.blocks.push(b);
        self.blocks.last().unwrap()
    }

    fn mint(&mut self, to: &veilwatt_prover::notes::PaymentAddress, value: u64) -> Transaction {
        let mut rho = [0u8; 31];
        self.rng.fill_bytes(&mut rho);
        let mut bytes = [0u8; 32];
        bytes[..31].copy_from_slice(&rho);
        Transaction::sign(
            &self.g.chain_id,
            TxBody::MintNote {
                value,
                owner: FieldBytes::from_field(to.owner),
                rho: FieldBytes(bytes),
                reference: self.rng.next_u64(),
            },
            T0 + 3_000,
            &key(200),
        )
    }

    fn prove(&mut self, request: veilwatt_prover::spend::SpendRequest) -> Transaction {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let signer = SigningKey::from_bytes(&seed);
        self.prover
            .prove(
                &self.g.chain_id,
                T0 + 3_000,
                &signer,
                request,
                &mut self.rng,
            )
            .unwrap()
    }
}

fn sync(book: &mut NoteBook, chain: &Chain) {
    for b in &chain.blocks[book.height() as usize..] {
        book.scan(&chain.g, b, &[]).unwrap();
    }
}

#[test]
fn a_wallet_finds_its_notes_spends_them_and_is_restored_from_its_key() {
    let mut chain = Chain::new();
    let alice_key = spending_key(&key(1));
    let mut alice = NoteBook::new(alice_key.clone());
    let mut bob = NoteBook::new(spending_key(&key(2)));

    // Two deposits to two of alice's addresses, one to bob.
    let (a1, a2, b1) = (alice.new_address(), alice.new_address(), bob.new_address());
    let mints = vec![
        chain.mint(&a1, 4_000),
        chain.mint(&b1, 1_000),
        chain.mint(&a2, 2_500),
    ];
    chain.commit(mints);
    sync(&mut alice, &chain);
    sync(&mut bob, &chain);
    assert_eq!((alice.balance(), bob.balance()), (6_500, 1_000));

    // Alice pays bob 5,000: both her notes are needed; the change comes back to her.
    let to_bob = bob.new_address();
    let request = alice
        .plan(Some(&to_bob), 5_000, FEE, Payout::None, &mut chain.rng)
        .unwrap();
    let pay = chain.prove(request);
    chain.commit(vec![pay]);
    sync(&mut alice, &chain);
    sync(&mut bob, &chain);
    assert_eq!(alice.balance(), 6_500 - 5_000 - FEE);
    assert_eq!(bob.balance(), 6_000);
    assert_eq!(alice.unspent().count(), 1, "the change");

    // Bob withdraws 5,500 to the bank (his two notes), then moves the rest to a wallet.
    let request = bob
        .plan(
            None,
            5_500,
            FEE,
            Payout::Bank { reference: 7 },
            &mut chain.rng,
        )
        .unwrap();
    let withdraw = chain.prove(request);
    chain.commit(vec![withdraw]);
    sync(&mut bob, &chain);
    assert_eq!(bob.balance(), 6_000 - 5_500 - FEE);
    let left = bob.balance() - FEE;
    let request = bob
        .plan(
            None,
            left,
            FEE,
            Payout::Wallet {
                wallet: wallet(&key(2)),
            },
            &mut chain.rng,
        )
        .unwrap();
    let to_wallet = chain.prove(request);
    chain.commit(vec![to_wallet]);
    sync(&mut alice, &chain);
    sync(&mut bob, &chain);
    assert_eq!(bob.balance(), 0);
    // The ledger agrees: the pool holds exactly the wallets' unspent notes.
    let pool = Pool::load(&chain.state).unwrap();
    assert_eq!(pool.balance, alice.balance() + bob.balance());
    assert_eq!(
        chain
            .state
            .account(&wallet(&key(2)))
            .unwrap()
            .unwrap()
            .balance,
        left
    );

    // More than two notes cannot be spent at once, and a wallet never overspends.
    assert!(alice
        .plan(Some(&to_bob), 10_000, FEE, Payout::None, &mut chain.rng)
        .is_err());

    // Restored from the key alone, scanning from the first block: exactly the same notes.
    let mut restored = NoteBook::new(alice_key.clone());
    sync(&mut restored, &chain);
    let summary = |b: &NoteBook| {
        b.notes()
            .iter()
            .map(|n| (n.index, n.value, n.position, n.spent_at, n.nullifier))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&restored), summary(&alice));
    assert_eq!(restored.root(), alice.root());
    // None of bob's notes is alice's.
    for n in bob.notes() {
        assert!(alice.notes().iter().all(|a| a.position != n.position));
    }

    // The sealed notes file reopens to the same wallet, only with alice's key.
    let file = NotesFile::seal(&alice, &mut chain.rng).unwrap();
    let json = serde_json::to_string(&file).unwrap();
    let file: NotesFile = serde_json::from_str(&json).unwrap();
    assert!(file.open(spending_key(&key(2))).is_err());
    let reopened = file.open(alice_key).unwrap();
    assert_eq!(summary(&reopened), summary(&alice));
    // And its paths still prove: the reopened wallet spends its change.
    let mut reopened = reopened;
    let to_bob = bob.new_address();
    let request = reopened
        .plan(Some(&to_bob), 100, FEE, Payout::None, &mut chain.rng)
        .unwrap();
    let pay = chain.prove(request);
    chain.commit(vec![pay]);
    sync(&mut bob, &chain);
    assert_eq!(bob.balance(), 100);
}

mod supply {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// The registrar mints `value` to household `h`.
        Mint { h: usize, value: u64 },
        /// `from` pays `to` a fraction (per mille) of what it can.
        Transfer {
            from: usize,
            to: usize,
            permille: u64,
        },
        /// `h` takes a fraction out, to the bank or to its wallet balance.
        Withdraw { h: usize, permille: u64, bank: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..3, 1u64..100_000).prop_map(|(h, value)| Op::Mint { h, value }),
            (0usize..3, 0usize..3, 1u64..=1000).prop_map(|(from, to, permille)| Op::Transfer {
                from,
                to,
                permille
            }),
            (0usize..3, 1u64..=1000, any::<bool>()).prop_map(|(h, permille, bank)| Op::Withdraw {
                h,
                permille,
                bank
            }),
        ]
    }

    proptest! {
        // Every case proves real join-splits (~0.7 s each): few, short sequences.
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        /// Over random mints, transfers and withdrawals, one per block: the pool holds exactly
        /// what the households' wallets hold, which is what was minted less what left (bank,
        /// wallet balances, fees); and all money the registrar took in is somewhere.
        #[test]
        fn the_pool_holds_exactly_what_was_minted_less_what_left(
            ops in proptest::collection::vec(op(), 1..7),
        ) {
            let mut chain = Chain::new();
            let keys: Vec<SigningKey> = (10..13u8).map(key).collect();
            let mut books: Vec<NoteBook> =
                keys.iter().map(|k| NoteBook::new(spending_key(k))).collect();
            let (mut minted, mut out) = (0u64, 0u64);
            for op in ops {
                let tx = match op {
                    Op::Mint { h, value } => {
                        let to = books[h].new_address();
                        minted += value;
                        Some(chain.mint(&to, value))
                    }
                    Op::Transfer { from, to, permille } => {
                        let can = books[from].unspent().map(|n| n.value).max().unwrap_or(0);
                        let amount = can.saturating_sub(FEE) * permille / 1000;
                        if amount == 0 {
                            None
                        } else {
                            let addr = books[to].new_address();
                            let r = books[from]
                                .plan(Some(&addr), amount, FEE, Payout::None, &mut chain.rng)
                                .unwrap();
                            out += FEE;
                            Some(chain.prove(r))
                        }
                    }
                    Op::Withdraw { h, permille, bank } => {
                        let can = books[h].unspent().map(|n| n.value).max().unwrap_or(0);
                        let amount = can.saturating_sub(FEE) * permille / 1000;
                        if amount == 0 {
                            None
                        } else {
                            let payout = if bank {
                                Payout::Bank {
                                    reference: rand_core::RngCore::next_u64(&mut chain.rng),
                                }
                            } else {
                                Payout::Wallet { wallet: wallet(&keys[h]) }
                            };
                            let r = books[h]
                                .plan(None, amount, FEE, payout, &mut chain.rng)
                                .unwrap();
                            out += amount + FEE;
                            Some(chain.prove(r))
                        }
                    }
                };
                if let Some(tx) = tx {
                    chain.commit(vec![tx]);
                }
                for b in &mut books {
                    sync(b, &chain);
                }
                let pool = Pool::load(&chain.state).unwrap();
                let held: u64 = books.iter().map(NoteBook::balance).sum();
                prop_assert_eq!(pool.balance, held);
                prop_assert_eq!(pool.balance, minted - out);
                let meta = chain.state.meta().unwrap();
                let wallets: u64 = keys
                    .iter()
                    .map(|k| chain.state.account(&wallet(k)).unwrap().map_or(0, |a| a.balance))
                    .sum();
                prop_assert_eq!(meta.total_deposits, minted);
                prop_assert_eq!(
                    meta.total_deposits - meta.total_withdrawals,
                    wallets + pool.balance + pool.fees
                );
            }
        }
    }
}

/// The observer test: a community of 50 households makes 200 transfers among themselves
/// (after a mint each); from the public ledger alone, no two of one household's notes or
/// spends share any public value: owner tags of mints, note commitments, detection tags and
/// nonces of memos, nullifiers, signer keys. (Chain-wide values, the anchor and the fee, are
/// the same for everyone and name nobody.)
#[test]
fn an_observer_cannot_link_a_households_notes_or_spends() {
    use std::collections::BTreeMap;
    const HOUSEHOLDS: usize = 50;
    const TRANSFERS: usize = 200;
    const PER_BLOCK: usize = 10;
    let mut chain = Chain::new();
    let mut books: Vec<NoteBook> = (0..HOUSEHOLDS)
        .map(|i| NoteBook::new(spending_key(&SigningKey::from_bytes(&[i as u8 + 50; 32]))))
        .collect();
    // Which household made each public value, and through which transaction.
    let mut owners: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    let mints: Vec<Transaction> = (0..HOUSEHOLDS)
        .map(|h| {
            let to = books[h].new_address();
            chain.mint(&to, 1_000_000)
        })
        .collect();
    chain.commit(mints);
    for b in &mut books {
        sync(b, &chain);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let mut done = 0;
    while done < TRANSFERS {
        // Distinct senders per block (a household spends once per block).
        let mut senders: Vec<usize> = (0..HOUSEHOLDS).collect();
        for i in (1..senders.len()).rev() {
            senders.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut txs = Vec::new();
        for &from in senders.iter().take(PER_BLOCK) {
            let to = (from + 1 + (rng.next_u64() % (HOUSEHOLDS as u64 - 1)) as usize) % HOUSEHOLDS;
            let addr = books[to].new_address();
            let can = books[from].unspent().map(|n| n.value).max().unwrap_or(0);
            if can <= 2 * FEE {
                continue;
            }
            let amount = 1 + rng.next_u64() % (can - FEE) / 2;
            let request = books[from]
                .plan(Some(&addr), amount, FEE, Payout::None, &mut chain.rng)
                .unwrap();
            txs.push((from, chain.prove(request)));
        }
        done += txs.len();
        for (from, tx) in &txs {
            let TxBody::Spend { nullifiers, .. } = &tx.body else {
                unreachable!()
            };
            for nf in nullifiers {
                owners.entry(nf.0.to_vec()).or_default().push(*from);
            }
            owners.entry(tx.signer.0.to_vec()).or_default().push(*from);
        }
        chain.commit(txs.into_iter().map(|(_, tx)| tx).collect());
        for b in &mut books {
            sync(b, &chain);
        }
    }
    // Every public value of every note, attributed to the household that holds it.
    let mut position = 0u32;
    for block in &chain.blocks {
        for tx in &block.txs {
            match &tx.body {
                TxBody::MintNote { owner, .. } => {
                    let h = note_of_or_first(&books, position);
                    owners.entry(owner.0.to_vec()).or_default().push(h);
                    position += 1;
                }
                TxBody::Spend { outputs, .. } => {
                    for o in outputs {
                        let h = note_of_or_first(&books, position);
                        owners.entry(o.cm.0.to_vec()).or_default().push(h);
                        owners.entry(o.memo[..32].to_vec()).or_default().push(h);
                        owners.entry(o.memo[32..56].to_vec()).or_default().push(h);
                        position += 1;
                    }
                }
                _ => {}
            }
        }
    }
    // Every value appears once: nothing public ties two of one household's notes or spends
    // together (nor two households' together).
    let repeated: Vec<_> = owners.iter().filter(|(_, hs)| hs.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} repeated public values",
        repeated.len()
    );
    assert_eq!(done, TRANSFERS);
    // Every household still holds exactly what the pool says in total.
    let held: u64 = books.iter().map(NoteBook::balance).sum();
    assert_eq!(Pool::load(&chain.state).unwrap().balance, held);
}

/// The household holding the note at `position` (the first, for a note nobody holds).
fn note_of_or_first(books: &[NoteBook], position: u32) -> usize {
    books
        .iter()
        .position(|b| b.notes().iter().any(|n| n.position == position))
        .unwrap_or(0)
}
