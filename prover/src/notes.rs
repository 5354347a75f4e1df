//! The household's shielded wallet (docs/spec/notes.md, "Wallet"): one-time payment
//! addresses, note memos, discovery of the household's notes in committed blocks, their
//! incremental Merkle paths, and the spends it builds from them.
//!
//! Keys. The spending key derives from the account key the encrypted wallet file already
//! holds (`SHA-512("veilwatt.spending-key.v1" || account secret)`, reduced into Fr), so one
//! file and one passphrase hold both. Address `i` is the owner tag of diversifier `i` with a
//! memo key `SHA-256("veilwatt.memo-key.v1" || nk || d_i)`: whoever holds the viewing key can
//! find and read the notes, only the spending key spends them.
//!
//! Memos. An output's memo is `detect || nonce || XChaCha20-Poly1305(memo key, nonce,
//! value || rho; aad = "veilwatt.memo.v1" || cm)` with `detect = SHA-256("veilwatt.detect.v1" ||
//! owner tag)`: the recipient finds its outputs with one lookup each (it knows the tags it
//! handed out), nobody else learns anything, and a one-time tag makes every detection tag
//! unique. A memo that does not open, or opens to a note whose commitment is not the output's,
//! is ignored (a sender can always make a note its recipient cannot use; it can only lose the
//! value).

use std::collections::BTreeMap;

use ark_bn254::Fr;
use ark_ff::PrimeField;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use veilwatt_circuits::joinsplit::Spend;
use veilwatt_circuits::merkle::{Frontier, Witness, WitnessParts, DEPTH};
use veilwatt_circuits::note::{self, Note, SpendingKey, ViewingKey};
use veilwatt_verifier::ledger::PeriodResult;
use veilwatt_verifier::types::{
    Block, FieldBytes, Genesis, Millis, NoteOutput, NoteTarget, Payout, Side, TxBody, TxId,
};

pub use veilwatt_verifier::address::{AddressError, PaymentAddress, ADDRESS_PREFIX};

use crate::spend::SpendRequest;
use crate::unlinkable::EscrowRequest;

const SPENDING_KEY_DOMAIN: &[u8] = b"veilwatt.spending-key.v1";
const MEMO_KEY_DOMAIN: &[u8] = b"veilwatt.memo-key.v1";
const DETECT_DOMAIN: &[u8] = b"veilwatt.detect.v1";
const MEMO_AAD_DOMAIN: &[u8] = b"veilwatt.memo.v1";
const BOOK_KEY_DOMAIN: &[u8] = b"veilwatt.notes-file.v1";
/// Format tag of the notes file.
pub const NOTES_FORMAT: &str = "veilwatt-notes/1";
/// Addresses past the last one used that a wallet still watches (a restored wallet finds
/// notes paid to up to this many addresses beyond the last it knows of).
pub const LOOKAHEAD: u64 = 100;
/// Bytes of a memo: detection tag, nonce, value and rho, authentication tag.
pub const MEMO_BYTES: usize = 32 + 24 + 8 + 32 + 16;

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// A payment address does not decode.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Blocks must be scanned in order, each once.
    #[error("expected block {expected}, got {got}")]
    OutOfOrder {
        /// The next height the wallet needs.
        expected: u64,
        /// The block offered.
        got: u64,
    },
    /// The note tree is full (2^32 notes).
    #[error("the note tree is full")]
    TreeFull,
    /// Not enough value in at most two unspent notes.
    #[error("need {need} in at most two notes; the two largest hold {have} (balance {balance})")]
    InsufficientNotes {
        /// Needed, millis.
        need: u64,
        /// The two largest unspent notes, millis.
        have: u64,
        /// All unspent notes, millis.
        balance: u64,
    },
    /// An amount overflows.
    #[error("amount overflows")]
    Overflow,
    /// The notes file does not open (wrong key, altered) or does not parse.
    #[error("notes file: {0}")]
    File(String),
    /// A block clears a period with unlinkable orders, and its result was not given (or is
    /// not the one that block cleared).
    #[error("block {height} clears period {period}: its result (cleared at that height) is needed to follow the note tree")]
    MissingResult {
        /// The block.
        height: u64,
        /// The period.
        period: u64,
    },
    /// A period's result disagrees with the orders the wallet saw.
    #[error("period {period}: {why}")]
    Result {
        /// The period.
        period: u64,
        /// What disagrees.
        why: String,
    },
}

/// The account's spending key (see the module documentation).
pub fn spending_key(account: &SigningKey) -> SpendingKey {
    let mut h = Sha512::new();
    h.update(SPENDING_KEY_DOMAIN);
    h.update(account.to_bytes());
    SpendingKey::from_field(Fr::from_le_bytes_mod_order(&h.finalize()))
}

fn fr_bytes(x: Fr) -> [u8; 32] {
    FieldBytes::from_field(x).0
}

/// The detection tag of an owner tag (the first 32 bytes of a memo).
pub fn detection_tag(owner: Fr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DETECT_DOMAIN);
    h.update(fr_bytes(owner));
    h.finalize().into()
}

fn memo_aad(cm: Fr) -> Vec<u8> {
    let mut aad = MEMO_AAD_DOMAIN.to_vec();
    aad.extend(fr_bytes(cm));
    aad
}

/// The memo telling `to` about `note` (whose commitment is `cm`).
pub fn seal_memo<R: RngCore + CryptoRng>(to: &PaymentAddress, note: &Note, rng: &mut R) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut plain = note.value.to_le_bytes().to_vec();
    plain.extend(fr_bytes(note.rho));
    let aad = memo_aad(note.commitment());
    let cipher = XChaCha20Poly1305::new((&to.memo_key).into());
    // Encryption into a Vec cannot fail.
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut memo = detection_tag(to.owner).to_vec();
    memo.extend(nonce);
    memo.extend(sealed);
    memo
}

/// Opens a memo with `memo_key` for the output `cm`: `(value, rho)`, or `None`.
pub fn open_memo(memo: &[u8], memo_key: &[u8; 32], cm: Fr) -> Option<(u64, Fr)> {
    if memo.len() != MEMO_BYTES {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(memo_key.into());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&memo[32..56]),
            Payload {
                msg: &memo[56..],
                aad: &memo_aad(cm),
            },
        )
        .ok()?;
    let value = u64::from_le_bytes(plain[..8].try_into().ok()?);
    let rho = FieldBytes(plain[8..40].try_into().ok()?).to_field()?;
    Some((value, rho))
}

/// A note the household holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedNote {
    /// The address (diversifier number) it was paid to.
    pub index: u64,
    /// Value, millis.
    pub value: u64,
    /// Its randomness.
    pub rho: Fr,
    /// Its up-to-date path (dropped once spent).
    pub witness: Option<Witness>,
    /// Its position in the tree.
    pub position: u32,
    /// Its nullifier (revealed when it is spent).
    pub nullifier: Fr,
    /// Height of the block that spent it.
    pub spent_at: Option<u64>,
    /// Height of the block that made it.
    pub height: u64,
}

/// What a block brought the wallet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Notes received (their positions).
    pub received: Vec<u32>,
    /// Own notes spent (their positions).
    pub spent: Vec<u32>,
}

/// An unlinkable order on the ledger, not settled yet (anyone's: clearing appends notes to the
/// tree for all of them, and every wallet follows the tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenOrder {
    /// Its transaction id.
    pub id: TxId,
    /// Period.
    pub period: u64,
    /// Order nullifier (cancels name it).
    pub order_nf: FieldBytes,
    /// Side.
    pub side: Side,
    /// Escrow held, millis (buys).
    pub escrow: Millis,
    /// Where its proceeds or unused escrow go.
    pub payout: NoteTarget,
}

/// The household's notes and the note tree as far as it has scanned.
#[derive(Clone, Debug)]
pub struct NoteBook {
    key: SpendingKey,
    viewing: ViewingKey,
    /// Addresses handed out: `0..next_index`.
    next_index: u64,
    /// Watched addresses (`0..next_index + LOOKAHEAD`) by owner tag and by detection tag.
    by_owner: BTreeMap<[u8; 32], u64>,
    by_detect: BTreeMap<[u8; 32], u64>,
    /// Blocks scanned: `1..=height`.
    height: u64,
    frontier: Frontier,
    notes: Vec<OwnedNote>,
    /// The market's unlinkable orders not settled yet.
    open_orders: BTreeMap<TxId, OpenOrder>,
}

impl NoteBook {
    /// A new wallet (or one restored from its key: scanning the chain from the first block
    /// finds every note paid to its first addresses, see [`LOOKAHEAD`]).
    pub fn new(key: SpendingKey) -> Self {
        let viewing = key.viewing_key();
        let mut book = Self {
            key,
            viewing,
            next_index: 0,
            by_owner: BTreeMap::new(),
            by_detect: BTreeMap::new(),
            height: 0,
            frontier: Frontier::new(),
            notes: Vec::new(),
            open_orders: BTreeMap::new(),
        };
        book.watch();
        book
    }

    /// Watches every address up to `next_index + LOOKAHEAD`.
    fn watch(&mut self) {
        let upto = self.next_index.saturating_add(LOOKAHEAD);
        let from = self.by_owner.len() as u64;
        for i in from..upto {
            let owner = self.owner(i);
            self.by_owner.insert(fr_bytes(owner), i);
            self.by_detect.insert(detection_tag(owner), i);
        }
    }

    fn owner(&self, index: u64) -> Fr {
        self.viewing.owner_tag(self.viewing.diversifier(index))
    }

    fn memo_key(&self, index: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(MEMO_KEY_DOMAIN);
        h.update(fr_bytes(self.viewing.nk));
        h.update(fr_bytes(self.viewing.diversifier(index)));
        h.finalize().into()
    }

    /// The household's nullifier key (its unlinkable orders' nullifiers derive from it; the
    /// registry holds only its commitment).
    pub fn nk(&self) -> Fr {
        self.viewing.nk
    }

    /// Payment address number `index`.
    pub fn address(&self, index: u64) -> PaymentAddress {
        PaymentAddress {
            owner: self.owner(index),
            memo_key: self.memo_key(index),
        }
    }

    /// A fresh address (never handed out before by this wallet).
    pub fn new_address(&mut self) -> PaymentAddress {
        let index = self.next_index;
        self.next_index += 1;
        self.watch();
        self.address(index)
    }

    /// Blocks scanned so far (`1..=height`).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The note tree's root after the last block scanned: a recent root while the wallet is
    /// in sync.
    pub fn root(&self) -> Fr {
        self.frontier.root()
    }

    /// Every note the household has held, oldest first.
    pub fn notes(&self) -> &[OwnedNote] {
        &self.notes
    }

    /// Unspent notes.
    pub fn unspent(&self) -> impl Iterator<Item = &OwnedNote> {
        self.notes.iter().filter(|n| n.spent_at.is_none())
    }

    /// Value of the unspent notes, millis.
    pub fn balance(&self) -> u64 {
        self.unspent().map(|n| n.value).sum()
    }

    /// Appends a leaf to the tree and to every unspent note's path.
    fn append(&mut self, cm: Fr) -> Result<u32, NotesError> {
        let position = self.frontier.append(cm).map_err(|_| NotesError::TreeFull)?;
        for n in &mut self.notes {
            if let Some(w) = &mut n.witness {
                w.append(cm).map_err(|_| NotesError::TreeFull)?;
            }
        }
        Ok(position)
    }

    /// Records a note of ours just appended at `position`.
    fn receive(&mut self, index: u64, value: u64, rho: Fr, cm: Fr, position: u32, height: u64) {
        self.next_index = self.next_index.max(index + 1);
        self.watch();
        self.notes.push(OwnedNote {
            index,
            value,
            rho,
            witness: Witness::new(&self.frontier, cm),
            position,
            nullifier: self.viewing.nullifier(cm, position),
            spent_at: None,
            height,
        });
    }

    /// The periods whose result [`NoteBook::scan`] needs for a block at `time` of market `g`:
    /// those with unlinkable orders not settled yet whose gate has closed by then (the block
    /// clears them, appending their orders' notes).
    pub fn due_periods(&self, g: &Genesis, time: u64) -> Vec<u64> {
        let mut periods: Vec<u64> = self
            .open_orders
            .values()
            .map(|o| o.period)
            .filter(|p| g.gate_close(*p).is_some_and(|c| c <= time))
            .collect();
        periods.sort_unstable();
        periods.dedup();
        periods
    }

    /// The market's unlinkable orders not settled yet, in id order.
    pub fn open_orders(&self) -> impl Iterator<Item = &OpenOrder> {
        self.open_orders.values()
    }

    /// Appends a note the ledger minted to `target` (an order's payout) and keeps it if the
    /// target is one of this wallet's tags.
    fn minted(
        &mut self,
        value: u64,
        target: &NoteTarget,
        height: u64,
        report: &mut ScanReport,
    ) -> Result<(), NotesError> {
        // A committed order has canonical fields (the rules refused others).
        let (Some(o), Some(r)) = (target.owner.to_field(), target.rho.to_field()) else {
            return Ok(());
        };
        let cm = note::commitment(Fr::from(value), o, r);
        let position = self.append(cm)?;
        if let Some(&index) = self.by_owner.get(&target.owner.0) {
            self.receive(index, value, r, cm, position, height);
            report.received.push(position);
        }
        Ok(())
    }

    /// The two outputs of a spend or an escrow: appended, and kept if their memo opens for
    /// one of this wallet's addresses to exactly that note.
    fn outputs(
        &mut self,
        outputs: &[NoteOutput; 2],
        height: u64,
        report: &mut ScanReport,
    ) -> Result<(), NotesError> {
        for o in outputs {
            let Some(cm) = o.cm.to_field() else { continue };
            let position = self.append(cm)?;
            let Some(&index) = o.memo.get(..32).and_then(|d| self.by_detect.get(d)) else {
                continue;
            };
            let Some((value, rho)) = open_memo(&o.memo, &self.memo_key(index), cm) else {
                continue;
            };
            if note::commitment(Fr::from(value), self.owner(index), rho) != cm {
                continue;
            }
            self.receive(index, value, rho, cm, position, height);
            report.received.push(position);
        }
        Ok(())
    }

    /// Marks the notes whose nullifiers a spend or escrow reveals as spent.
    fn reveal(&mut self, nullifiers: &[FieldBytes; 2], height: u64, report: &mut ScanReport) {
        for nf in nullifiers {
            for n in &mut self.notes {
                if n.spent_at.is_none() && fr_bytes(n.nullifier) == nf.0 {
                    n.spent_at = Some(height);
                    n.witness = None;
                    report.spent.push(n.position);
                }
            }
        }
    }

    /// Settles the open orders of the period `r` cleared: appends the notes its clearing
    /// minted (proceeds, unused escrow), in the ledger's order.
    fn settle(
        &mut self,
        r: &PeriodResult,
        height: u64,
        report: &mut ScanReport,
    ) -> Result<(), NotesError> {
        let bad = |why: String| NotesError::Result {
            period: r.period,
            why,
        };
        let notes = r
            .order_notes(|id| {
                self.open_orders
                    .get(id)
                    .filter(|o| o.period == r.period)
                    .map(|o| (o.side, o.escrow))
            })
            .map_err(bad)?;
        let open: Vec<TxId> = self
            .open_orders
            .values()
            .filter(|o| o.period == r.period)
            .map(|o| o.id)
            .collect();
        let cleared = r.orders.iter().filter(|o| o.owner.is_none()).count();
        if cleared != open.len() {
            return Err(bad(format!(
                "{cleared} unlinkable orders cleared, {} were open",
                open.len()
            )));
        }
        for (id, value) in notes {
            let payout = self.open_orders[&id].payout;
            self.minted(value, &payout, height, report)?;
        }
        for id in open {
            self.open_orders.remove(&id);
        }
        Ok(())
    }

    /// Takes the next committed block of market `g` into account: appends the notes it adds
    /// to the tree (the clearing's, then its transactions'), finds the household's among them,
    /// marks its spent ones. `cleared` holds the results of the periods the block clears that
    /// had unlinkable orders ([`NoteBook::due_periods`] at the block's time; others are
    /// ignored).
    pub fn scan(
        &mut self,
        g: &Genesis,
        block: &Block,
        cleared: &[PeriodResult],
    ) -> Result<ScanReport, NotesError> {
        let expected = self.height + 1;
        if block.height != expected {
            return Err(NotesError::OutOfOrder {
                expected,
                got: block.height,
            });
        }
        let mut report = ScanReport::default();
        // The ledger clears due periods before the block's transactions, in period order.
        for period in self.due_periods(g, block.time) {
            let r = cleared
                .iter()
                .find(|r| r.period == period && r.cleared_at == block.height)
                .ok_or(NotesError::MissingResult {
                    height: block.height,
                    period,
                })?;
            self.settle(r, block.height, &mut report)?;
        }
        for tx in &block.txs {
            match &tx.body {
                TxBody::MintNote {
                    value, owner, rho, ..
                } => {
                    // A committed mint has canonical fields (the rules refused others).
                    let (Some(o), Some(r)) = (owner.to_field(), rho.to_field()) else {
                        continue;
                    };
                    let cm = note::commitment(Fr::from(*value), o, r);
                    let position = self.append(cm)?;
                    if let Some(&index) = self.by_owner.get(&owner.0) {
                        self.receive(index, *value, r, cm, position, block.height);
                        report.received.push(position);
                    }
                }
                TxBody::Spend {
                    nullifiers,
                    outputs,
                    ..
                } => {
                    self.reveal(nullifiers, block.height, &mut report);
                    self.outputs(outputs, block.height, &mut report)?;
                }
                TxBody::UnlinkableOrder {
                    order_nf,
                    period,
                    side,
                    payout,
                    escrow,
                    ..
                } => {
                    if let Some(e) = escrow {
                        self.reveal(&e.nullifiers, block.height, &mut report);
                        self.outputs(&e.outputs, block.height, &mut report)?;
                    }
                    let id = tx.id();
                    self.open_orders.insert(
                        id,
                        OpenOrder {
                            id,
                            period: *period,
                            order_nf: *order_nf,
                            side: *side,
                            escrow: escrow.as_ref().map_or(0, |e| e.amount),
                            payout: *payout,
                        },
                    );
                }
                TxBody::CancelUnlinkable {
                    period, order_nf, ..
                } => {
                    let found = self
                        .open_orders
                        .values()
                        .find(|o| o.period == *period && o.order_nf == *order_nf)
                        .copied();
                    if let Some(o) = found {
                        self.open_orders.remove(&o.id);
                        // The escrow comes back whole (a sell has none: no note).
                        if o.escrow > 0 {
                            self.minted(o.escrow, &o.payout, block.height, &mut report)?;
                        }
                    }
                }
                _ => {}
            }
        }
        self.height = block.height;
        Ok(report)
    }

    /// A spend of `amount` to `to` (or, with `to = None`, out of the pool only: withdrawals and
    /// payouts to a wallet), paying `fee`: the largest unspent notes that cover it (at most
    /// two), the change to a fresh own address, memos sealed for both outputs. With
    /// `to = Some(..)` the public amount out is the fee; without, `amount + fee` with `payout`.
    pub fn plan<R: RngCore + CryptoRng>(
        &mut self,
        to: Option<&PaymentAddress>,
        amount: u64,
        fee: u64,
        payout: Payout,
        rng: &mut R,
    ) -> Result<SpendRequest, NotesError> {
        let need = amount.checked_add(fee).ok_or(NotesError::Overflow)?;
        // Only notes with a path can be spent (every unspent note has one).
        let mut candidates: Vec<(&OwnedNote, &Witness)> = self
            .unspent()
            .filter_map(|n| Some((n, n.witness.as_ref()?)))
            .collect();
        candidates
            .sort_by(|(a, _), (b, _)| b.value.cmp(&a.value).then(a.position.cmp(&b.position)));
        // The smallest single note that covers it, else the two largest.
        let chosen: Vec<(&OwnedNote, &Witness)> =
            match candidates.iter().rev().find(|(n, _)| n.value >= need) {
                Some(single) => vec![*single],
                None => candidates.into_iter().take(2).collect(),
            };
        let have: u64 = chosen.iter().map(|(n, _)| n.value).sum();
        if have < need {
            return Err(NotesError::InsufficientNotes {
                need,
                have,
                balance: self.balance(),
            });
        }
        let change = have - need;
        let mut spends: Vec<Spend> = chosen
            .iter()
            .map(|(n, w)| Spend {
                key: self.key.clone(),
                diversifier: self.viewing.diversifier(n.index),
                value: n.value,
                rho: n.rho,
                path: w.path(),
            })
            .collect();
        while spends.len() < 2 {
            spends.push(Spend::dummy(&self.key, rng));
        }
        let inputs = [spends.swap_remove(0), spends.swap_remove(0)];
        let change_to = self.new_address();
        let (out_0, public_out, payout) = match to {
            Some(addr) => (
                (Note::new(amount, addr.owner, rng), *addr),
                fee,
                Payout::None,
            ),
            // Nothing to anyone inside the pool: a zero note to a fresh own address.
            None => {
                let own = self.new_address();
                ((Note::new(0, own.owner, rng), own), need, payout)
            }
        };
        let change_note = Note::new(change, change_to.owner, rng);
        let outputs = [
            (out_0.0, seal_memo(&out_0.1, &out_0.0, rng)),
            (change_note, seal_memo(&change_to, &change_note, rng)),
        ];
        Ok(SpendRequest {
            anchor: self.root(),
            inputs,
            outputs,
            public_in: 0,
            public_out,
            fee,
            payout,
        })
    }

    /// An unlinkable buy order's escrow of `amount`, paying `fee`: a spend out of the pool
    /// only ([`NoteBook::plan`] with no recipient), its change to a fresh own address.
    pub fn plan_escrow<R: RngCore + CryptoRng>(
        &mut self,
        amount: u64,
        fee: u64,
        rng: &mut R,
    ) -> Result<EscrowRequest, NotesError> {
        let r = self.plan(None, amount, fee, Payout::None, rng)?;
        Ok(EscrowRequest {
            anchor: r.anchor,
            inputs: r.inputs,
            outputs: r.outputs,
            amount,
            fee,
        })
    }

    /// Where an order's proceeds or unused escrow go: the owner tag of a fresh address (the
    /// wallet finds the note the ledger mints to it) and a random `rho`.
    pub fn payout_target<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> NoteTarget {
        let to = self.new_address();
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        NoteTarget {
            owner: FieldBytes::from_field(to.owner),
            rho: FieldBytes::from_field(Fr::from_le_bytes_mod_order(&wide)),
        }
    }

    /// The stored form.
    pub fn to_stored(&self) -> StoredBook {
        let (size, filled) = self.frontier.parts();
        StoredBook {
            next_index: self.next_index,
            height: self.height,
            tree_size: size,
            tree: filled.iter().map(|x| FieldBytes::from_field(*x)).collect(),
            notes: self.notes.iter().map(StoredNote::from_note).collect(),
            open_orders: self.open_orders.values().copied().collect(),
        }
    }

    /// Rebuilds a wallet from its key and [`NoteBook::to_stored`]'s form.
    pub fn from_stored(key: SpendingKey, s: StoredBook) -> Result<Self, NotesError> {
        let bad = |m: &str| NotesError::File(m.to_owned());
        let frontier = Frontier::from_parts(s.tree_size, fields(&s.tree)?)
            .ok_or_else(|| bad("tree size beyond capacity"))?;
        let mut book = Self::new(key);
        book.next_index = s.next_index;
        book.watch();
        book.height = s.height;
        book.frontier = frontier;
        book.notes = s
            .notes
            .into_iter()
            .map(StoredNote::into_note)
            .collect::<Result<_, _>>()?;
        book.open_orders = s.open_orders.into_iter().map(|o| (o.id, o)).collect();
        Ok(book)
    }
}

fn fields<const N: usize>(v: &[FieldBytes]) -> Result<[Fr; N], NotesError> {
    let xs: Vec<Fr> = v
        .iter()
        .map(FieldBytes::to_field)
        .collect::<Option<_>>()
        .ok_or_else(|| NotesError::File("not a field element".into()))?;
    xs.try_into()
        .map_err(|_| NotesError::File("wrong number of field elements".into()))
}

/// A frontier in a file: size and `DEPTH + 1` nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredFrontier {
    /// Leaves.
    pub size: u64,
    /// Left-subtree roots.
    pub filled: Vec<FieldBytes>,
}

/// A witness in a file ([`WitnessParts`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredWitness {
    leaf: FieldBytes,
    base: StoredFrontier,
    right: Vec<FieldBytes>,
    cursor: Option<StoredFrontier>,
    appended: u64,
}

/// A note in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredNote {
    index: u64,
    value: u64,
    rho: FieldBytes,
    witness: Option<StoredWitness>,
    position: u32,
    nullifier: FieldBytes,
    spent_at: Option<u64>,
    height: u64,
}

fn stored_frontier(size: u64, filled: &[Fr; DEPTH + 1]) -> StoredFrontier {
    StoredFrontier {
        size,
        filled: filled.iter().map(|x| FieldBytes::from_field(*x)).collect(),
    }
}

impl StoredNote {
    fn from_note(n: &OwnedNote) -> Self {
        Self {
            index: n.index,
            value: n.value,
            rho: FieldBytes::from_field(n.rho),
            witness: n.witness.as_ref().map(|w| {
                let p = w.parts();
                StoredWitness {
                    leaf: FieldBytes::from_field(p.leaf),
                    base: stored_frontier(p.base.0, &p.base.1),
                    right: p.right.iter().map(|x| FieldBytes::from_field(*x)).collect(),
                    cursor: p
                        .cursor
                        .map(|(size, filled)| stored_frontier(size, &filled)),
                    appended: p.appended,
                }
            }),
            position: n.position,
            nullifier: FieldBytes::from_field(n.nullifier),
            spent_at: n.spent_at,
            height: n.height,
        }
    }

    fn into_note(self) -> Result<OwnedNote, NotesError> {
        let bad = |m: &str| NotesError::File(m.to_owned());
        let field = |x: &FieldBytes| x.to_field().ok_or_else(|| bad("not a field element"));
        let witness = match self.witness {
            None => None,
            Some(w) => {
                let right: Vec<Fr> = w.right.iter().map(field).collect::<Result<_, _>>()?;
                let parts = WitnessParts {
                    leaf: field(&w.leaf)?,
                    base: (w.base.size, fields(&w.base.filled)?),
                    right,
                    cursor: match w.cursor {
                        Some(c) => Some((c.size, fields(&c.filled)?)),
                        None => None,
                    },
                    appended: w.appended,
                };
                Some(Witness::from_parts(parts).ok_or_else(|| bad("impossible witness"))?)
            }
        };
        Ok(OwnedNote {
            index: self.index,
            value: self.value,
            rho: field(&self.rho)?,
            witness,
            position: self.position,
            nullifier: field(&self.nullifier)?,
            spent_at: self.spent_at,
            height: self.height,
        })
    }
}

/// What the notes file holds, before encryption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredBook {
    next_index: u64,
    height: u64,
    tree_size: u64,
    tree: Vec<FieldBytes>,
    notes: Vec<StoredNote>,
    /// The market's unsettled unlinkable orders (absent in files written before them).
    #[serde(default)]
    open_orders: Vec<OpenOrder>,
}

/// The notes file: [`StoredBook`] as JSON, sealed with XChaCha20-Poly1305 under a key derived
/// from the spending key (its contents reveal the household's notes and values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotesFile {
    /// Always [`NOTES_FORMAT`].
    pub format: String,
    /// Nonce, hex.
    pub nonce: String,
    /// Sealed JSON, hex.
    pub ciphertext: String,
}

fn book_key(key: &SpendingKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(BOOK_KEY_DOMAIN);
    h.update(key.to_bytes());
    h.finalize().into()
}

impl NotesFile {
    /// Seals `book`.
    pub fn seal<R: RngCore + CryptoRng>(book: &NoteBook, rng: &mut R) -> Result<Self, NotesError> {
        let json =
            serde_json::to_vec(&book.to_stored()).map_err(|e| NotesError::File(e.to_string()))?;
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&book_key(&book.key)).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &json,
                    aad: NOTES_FORMAT.as_bytes(),
                },
            )
            .map_err(|_| NotesError::File("encryption failed".into()))?;
        Ok(Self {
            format: NOTES_FORMAT.to_owned(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(sealed),
        })
    }

    /// Opens the file with the household's key.
    pub fn open(&self, key: SpendingKey) -> Result<NoteBook, NotesError> {
        let bad = |m: &str| NotesError::File(m.to_owned());
        if self.format != NOTES_FORMAT {
            return Err(bad("not a veilwatt-notes/1 file"));
        }
        let nonce = hex::decode(&self.nonce).map_err(|_| bad("nonce is not hex"))?;
        if nonce.len() != 24 {
            return Err(bad("nonce must be 24 bytes"));
        }
        let sealed = hex::decode(&self.ciphertext).map_err(|_| bad("ciphertext is not hex"))?;
        let cipher = XChaCha20Poly1305::new((&book_key(&key)).into());
        let json = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: NOTES_FORMAT.as_bytes(),
                },
            )
            .map_err(|_| {
                bad("does not open with this wallet's key (another wallet, or altered)")
            })?;
        let stored: StoredBook =
            serde_json::from_slice(&json).map_err(|e| NotesError::File(e.to_string()))?;
        NoteBook::from_stored(key, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn addresses_round_trip_and_bad_ones_are_refused() {
        let book = NoteBook::new(SpendingKey::generate(&mut ChaCha20Rng::seed_from_u64(1)));
        let a = book.address(3);
        assert_eq!(PaymentAddress::decode(&a.encode()).unwrap(), a);
        assert_ne!(book.address(4).owner, a.owner);
        for bad in [
            "vwpay1zz",
            "vwpay100",
            &a.encode()[1..],
            &format!("vwpay1{}", "ff".repeat(64)),
        ] {
            assert!(PaymentAddress::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_memo_opens_only_with_its_key_and_for_its_output() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let book = NoteBook::new(SpendingKey::generate(&mut rng));
        let to = book.address(0);
        let note = Note::new(1234, to.owner, &mut rng);
        let memo = seal_memo(&to, &note, &mut rng);
        assert_eq!(memo.len(), MEMO_BYTES);
        assert_eq!(memo[..32], detection_tag(to.owner));
        let cm = note.commitment();
        assert_eq!(open_memo(&memo, &to.memo_key, cm), Some((1234, note.rho)));
        assert_eq!(open_memo(&memo, &book.address(1).memo_key, cm), None);
        assert_eq!(open_memo(&memo, &to.memo_key, cm + Fr::from(1u64)), None);
        let mut altered = memo.clone();
        altered[70] ^= 1;
        assert_eq!(open_memo(&altered, &to.memo_key, cm), None);
        assert_eq!(open_memo(&memo[..MEMO_BYTES - 1], &to.memo_key, cm), None);
    }

    #[test]
    fn the_spending_key_follows_the_account_key() {
        let a = spending_key(&SigningKey::from_bytes(&[1; 32]));
        let b = spending_key(&SigningKey::from_bytes(&[1; 32]));
        let c = spending_key(&SigningKey::from_bytes(&[2; 32]));
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_ne!(a.to_bytes(), c.to_bytes());
    }
}
