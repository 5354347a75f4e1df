//! The key of every state entry (docs/spec/ledger.md lists keys and values).
//!
//! The first byte is a table tag. Tags below [`LOCAL`] are *committed*: they are leaves of the
//! state root's tree. Tags from [`LOCAL`] up are the chain tip, the archive, and indexes for
//! lookups by id and owner; they are written by the same rules (so they are just as
//! deterministic) but not committed, so they can change without a change of protocol. Every
//! index follows from the committed entries ([`crate::ledger::derive_indexes`]), so a state
//! restored from a snapshot has them too. Numbers are big-endian so that keys sort
//! numerically.

use crate::types::{FieldBytes, MeterKey, TxId, WalletKey};

/// Height, time, fee and money totals.
pub const META: u8 = 0x00;
/// `wallet` -> account.
pub const ACCOUNT: u8 = 0x01;
/// `meter` -> meter record.
pub const METER: u8 = 0x02;
/// `period || meter` -> the open order occupying the meter's slot for the period.
pub const ORDER: u8 = 0x03;
// 0x04 (the order-id index) and 0x12 (the owner-side index) were committed until
// 2026-12-06; they are local now (`ORDER_ID`, `OWNER_SIDE`), and a store holding either tag
// is of the earlier format.
/// `expires_at || tx id` -> empty: the applied transactions that have not expired (replay
/// protection). Keyed by expiry first, so the expired ones are a prefix, pruned every block.
pub const APPLIED: u8 = 0x05;
/// `period` -> result of a cleared period within the genesis retention window.
pub const RESULT: u8 = 0x06;

/// The shielded pool's note-commitment tree: its frontier (size and left subtrees).
pub const NOTE_TREE: u8 = 0x07;
/// `root` -> its sequence number: the recent note-tree roots a spend may prove against.
pub const NOTE_ROOT: u8 = 0x08;
/// `sequence` -> root: the same roots in the order they were recorded (drops the oldest).
pub const NOTE_ROOT_SEQ: u8 = 0x09;
/// `nullifier` -> empty: every nullifier revealed (spent notes).
pub const NULLIFIER: u8 = 0x0a;

/// The meter registry's record: positions used, roots recorded, first root still valid.
pub const REGISTRY: u8 = 0x0b;
/// `level || index` -> node of the meter registry's tree (level 0: the leaves).
pub const REGISTRY_NODE: u8 = 0x0c;
/// `root` -> its sequence number: the recent registry roots an order may prove against.
pub const REGISTRY_ROOT: u8 = 0x0d;
/// `sequence` -> registry root, in the order recorded (drops the oldest).
pub const REGISTRY_ROOT_SEQ: u8 = 0x0e;
/// `meter` -> its enrolment in the registry (position, key commitment, revoked).
pub const ENROLMENT: u8 = 0x0f;

/// `period || order_nf` -> an open unlinkable order.
pub const UNLINKABLE_ORDER: u8 = 0x10;
/// `period || order_nf` -> empty: every order nullifier of a period whose gate is open (one
/// order per meter and period, cancelled or not); forgotten once the gate closes.
pub const ORDER_NULLIFIER: u8 = 0x11;

/// `period || meter` -> how many times the meter's orders for the period were cancelled;
/// forgotten once the gate closes.
pub const CANCELS: u8 = 0x13;
/// `reference` -> empty: every payment reference a deposit or a mint has used (one payment
/// is credited once).
pub const DEPOSIT_REFERENCE: u8 = 0x14;

/// First tag that is not committed.
pub const LOCAL: u8 = 0x80;
/// The last block's hash (a block cannot commit to its own hash).
pub const CHAIN: u8 = 0x80;
/// `owner || meter` -> empty.
pub const METER_BY_OWNER: u8 = 0x81;
/// `owner || period || order id` -> meter (open orders only).
pub const ORDER_BY_OWNER: u8 = 0x82;
/// `meter || period` -> order id (open orders only).
pub const ORDER_BY_METER: u8 = 0x83;
/// `period` -> result of a cleared period older than the retention window (moved out of the
/// committed state; a node keeps it in its archive column).
pub const ARCHIVE: u8 = 0x84;
/// `order id` -> the `(period, meter)` slot of an open order (finds it for a cancellation).
/// Local: it follows from the committed orders ([`crate::ledger::derive_indexes`]).
pub const ORDER_ID: u8 = 0x85;
/// `period || owner` -> `(side, open orders)`: the side a wallet's open orders of a period are
/// on (all on one, so none of them can trade with another); gone when none is open. Local: it
/// follows from the committed orders.
pub const OWNER_SIDE: u8 = 0x86;
/// The applied-id key where the next block's pruning starts: every applied id below it has
/// expired and been forgotten. Local, and only a shortcut: a state without it (restored from
/// a snapshot) prunes from the start of the table and finds the same ids.
pub const PRUNED_TO: u8 = 0x87;
/// Tags that were committed in an earlier format and are no longer written.
pub const RETIRED: [u8; 2] = [0x04, 0x12];

/// Whether the entry under `key` is a leaf of the state root.
pub fn is_committed(key: &[u8]) -> bool {
    key.first().is_some_and(|t| *t < LOCAL)
}

/// The smallest key above every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: no tag is, so nothing sorts above this.
    vec![0xff; 256]
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Key of the note tree's frontier.
pub fn note_tree() -> Vec<u8> {
    vec![NOTE_TREE]
}

/// Key of a recent note-tree root.
pub fn note_root(root: &FieldBytes) -> Vec<u8> {
    key(NOTE_ROOT, &[&root.0])
}

/// Key of the `seq`-th recorded note-tree root.
pub fn note_root_seq(seq: u64) -> Vec<u8> {
    key(NOTE_ROOT_SEQ, &[&seq.to_be_bytes()])
}

/// Key of a revealed nullifier.
pub fn nullifier(nf: &FieldBytes) -> Vec<u8> {
    key(NULLIFIER, &[&nf.0])
}

/// Key of the meter registry's record.
pub fn registry() -> Vec<u8> {
    vec![REGISTRY]
}

/// Key of the registry tree's node at (`level`, `index`).
pub fn registry_node(level: u8, index: u64) -> Vec<u8> {
    key(REGISTRY_NODE, &[&[level], &index.to_be_bytes()])
}

/// Key of a recent registry root.
pub fn registry_root(root: &FieldBytes) -> Vec<u8> {
    key(REGISTRY_ROOT, &[&root.0])
}

/// Key of the `seq`-th recorded registry root.
pub fn registry_root_seq(seq: u64) -> Vec<u8> {
    key(REGISTRY_ROOT_SEQ, &[&seq.to_be_bytes()])
}

/// Key of a meter's registry enrolment.
pub fn enrolment(meter: &MeterKey) -> Vec<u8> {
    key(ENROLMENT, &[&meter.0])
}

/// Key of an open unlinkable order.
pub fn unlinkable_order(period: u64, order_nf: &FieldBytes) -> Vec<u8> {
    key(UNLINKABLE_ORDER, &[&period.to_be_bytes(), &order_nf.0])
}

/// Prefix of a period's open unlinkable orders.
pub fn unlinkable_orders_of_period(period: u64) -> Vec<u8> {
    key(UNLINKABLE_ORDER, &[&period.to_be_bytes()])
}

/// Key of a period's order nullifier.
pub fn order_nullifier(period: u64, order_nf: &FieldBytes) -> Vec<u8> {
    key(ORDER_NULLIFIER, &[&period.to_be_bytes(), &order_nf.0])
}

/// Prefix of a period's order nullifiers.
pub fn order_nullifiers_of_period(period: u64) -> Vec<u8> {
    key(ORDER_NULLIFIER, &[&period.to_be_bytes()])
}

/// Key of the side of a wallet's open orders for a period.
pub fn owner_side(period: u64, owner: &WalletKey) -> Vec<u8> {
    key(OWNER_SIDE, &[&period.to_be_bytes(), &owner.0])
}

/// Key of a meter's cancellation count for a period.
pub fn cancels(period: u64, meter: &MeterKey) -> Vec<u8> {
    key(CANCELS, &[&period.to_be_bytes(), &meter.0])
}

/// Prefix of a period's cancellation counts.
pub fn cancels_of_period(period: u64) -> Vec<u8> {
    key(CANCELS, &[&period.to_be_bytes()])
}

/// Key of a used payment reference.
pub fn deposit_reference(reference: u64) -> Vec<u8> {
    key(DEPOSIT_REFERENCE, &[&reference.to_be_bytes()])
}

/// Key of the totals.
pub fn meta() -> Vec<u8> {
    vec![META]
}

/// Key of a wallet's account.
pub fn account(wallet: &WalletKey) -> Vec<u8> {
    key(ACCOUNT, &[&wallet.0])
}

/// Key of a meter's record.
pub fn meter(meter: &MeterKey) -> Vec<u8> {
    key(METER, &[&meter.0])
}

/// Prefix of a period's open orders.
pub fn orders_of_period(period: u64) -> Vec<u8> {
    key(ORDER, &[&period.to_be_bytes()])
}

/// Key of the open order in a meter's slot for a period.
pub fn order(period: u64, meter: &MeterKey) -> Vec<u8> {
    key(ORDER, &[&period.to_be_bytes(), &meter.0])
}

/// Prefix of all open orders.
pub fn all_orders() -> Vec<u8> {
    vec![ORDER]
}

/// Key of an open order's slot, by the order's id.
pub fn order_id(id: &TxId) -> Vec<u8> {
    key(ORDER_ID, &[&id.0])
}

/// Key of an applied transaction that expires at `expires_at`.
pub fn applied(expires_at: u64, id: &TxId) -> Vec<u8> {
    key(APPLIED, &[&expires_at.to_be_bytes(), &id.0])
}

/// Lower bound of the applied transactions expiring at or after `time`.
pub fn applied_from(time: u64) -> Vec<u8> {
    key(APPLIED, &[&time.to_be_bytes()])
}

/// Prefix of all applied transactions.
pub fn all_applied() -> Vec<u8> {
    vec![APPLIED]
}

/// Key of the applied-id key where pruning resumes.
pub fn pruned_to() -> Vec<u8> {
    vec![PRUNED_TO]
}

/// The smallest key above `key`.
pub fn next_key(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Key of a period's result.
pub fn result(period: u64) -> Vec<u8> {
    key(RESULT, &[&period.to_be_bytes()])
}

/// Key of an archived period result.
pub fn archived_result(period: u64) -> Vec<u8> {
    key(ARCHIVE, &[&period.to_be_bytes()])
}

/// Prefix of all archived period results.
pub fn all_archived_results() -> Vec<u8> {
    vec![ARCHIVE]
}

/// Prefix of all period results.
pub fn all_results() -> Vec<u8> {
    vec![RESULT]
}

/// Key of the chain tip (last block hash).
pub fn chain() -> Vec<u8> {
    vec![CHAIN]
}

/// Key of an owner's meter.
pub fn meter_by_owner(owner: &WalletKey, meter: &MeterKey) -> Vec<u8> {
    key(METER_BY_OWNER, &[&owner.0, &meter.0])
}

/// Prefix of an owner's meters.
pub fn meters_of_owner(owner: &WalletKey) -> Vec<u8> {
    key(METER_BY_OWNER, &[&owner.0])
}

/// Key of an owner's open order.
pub fn order_by_owner(owner: &WalletKey, period: u64, id: &TxId) -> Vec<u8> {
    key(ORDER_BY_OWNER, &[&owner.0, &period.to_be_bytes(), &id.0])
}

/// Prefix of an owner's open orders.
pub fn orders_of_owner(owner: &WalletKey) -> Vec<u8> {
    key(ORDER_BY_OWNER, &[&owner.0])
}

/// Key of a meter's open order for a period.
pub fn order_by_meter(meter: &MeterKey, period: u64) -> Vec<u8> {
    key(ORDER_BY_METER, &[&meter.0, &period.to_be_bytes()])
}

/// Prefix of a meter's open orders.
pub fn orders_of_meter(meter: &MeterKey) -> Vec<u8> {
    key(ORDER_BY_METER, &[&meter.0])
}

/// The big-endian u64 at `at` of `key`, if there.
pub fn u64_at(key: &[u8], at: usize) -> Option<u64> {
    let b = key.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// The 32 bytes at `at` of `key`, if there.
pub fn bytes32_at(key: &[u8], at: usize) -> Option<[u8; 32]> {
    key.get(at..at.checked_add(32)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_exactly_the_prefix() {
        assert_eq!(prefix_end(&[3]), vec![4]);
        assert_eq!(prefix_end(&[3, 0xff]), vec![4]);
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0xff; 256]);
        let p = orders_of_period(7);
        let end = prefix_end(&p);
        assert!(order(7, &MeterKey([0xff; 64])) < end);
        assert!(order(8, &MeterKey([0; 64])) >= end);
        assert!(is_committed(&order(7, &MeterKey([0; 64]))));
        assert!(!is_committed(&order_by_meter(&MeterKey([0; 64]), 7)));
        assert!(applied(7, &TxId([0xff; 32])) < applied_from(8));
        assert!(applied(8, &TxId([0; 32])) >= applied_from(8));
        assert!(is_committed(&applied(7, &TxId([0; 32]))));
        assert!(!is_committed(&chain()));
        assert!(!is_committed(&archived_result(7)));
        assert!(!is_committed(&order_id(&TxId([0; 32]))));
        assert!(!is_committed(&owner_side(7, &WalletKey([0; 32]))));
    }
}
