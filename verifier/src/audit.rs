//! The regulator's audit (docs/spec/audit.md): trust no validator. Given the genesis and a
//! ledger export (`veilwatt-node export`, format `veilwatt-export/2`: JSON lines, a header and
//! then one block per line, read as a stream), check
//!
//! 1. that the export belongs to this genesis and its blocks are heights `1..=n` in order,
//!    each hashing to its stated hash and linked to its parent;
//! 2. every block's commit certificate: signatures by distinct genesis validators over the
//!    precommit for exactly that height and block hash, every one valid, together more than
//!    2/3 of the voting power;
//! 3. every proof (orders, unlinkable orders, spends and escrows), in batches across blocks;
//! 4. the replay of every block through the very state machine the validators run, whose state
//!    root must equal each block's;
//!
//! and report the market's figures of each period as it clears. The checks run as a pipeline
//! over chunks of blocks (read and certificates | proofs | replay), so the proofs of the next
//! chunk are verified while the previous one is replayed, and memory holds a few chunks and
//! the live state, not the ledger. The first failing block stops the audit with an
//! [`AuditError`] naming the height, the transaction and what differs.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use veilwatt_circuits::joinsplit::JoinSplitPublic;
use veilwatt_circuits::order::OrderPublic;

pub use crate::certificate::{CertError, Certificate, VOTE_DOMAIN};
use crate::ledger::{BlockError, Ledger, LedgerRead, MarketVerifier, ProofCheck};
use crate::pool::Pool;
use crate::proof::{BatchFailure, OrderProof, SpendProof};
use crate::snapshot::Checkpoint;
use crate::state::{MemoryState, StateError};
use crate::types::{
    Block, FieldBytes, Genesis, Hash32, MeterKey, Side, TxBody, TxId, UnlinkableOrderPublic,
};

/// The export format this audit reads.
pub const EXPORT_FORMAT: &str = "veilwatt-export/2";

/// The first line of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Chain id.
    pub chain_id: String,
    /// Hash of the genesis the ledger started from.
    pub genesis_hash: Hash32,
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
}

/// A whole export in memory (tests, small ledgers); [`ExportReader`] and [`ExportWriter`]
/// stream one.
#[derive(Clone, Debug)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Chain id.
    pub chain_id: String,
    /// Hash of the genesis the ledger started from.
    pub genesis_hash: Hash32,
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
    /// The blocks, in height order.
    pub blocks: Vec<ExportedBlock>,
}

impl Export {
    /// Its header line.
    pub fn header(&self) -> ExportHeader {
        ExportHeader {
            format: self.format.clone(),
            chain_id: self.chain_id.clone(),
            genesis_hash: self.genesis_hash,
            from: self.from,
            to: self.to,
        }
    }

    /// Writes it in the export format.
    pub fn write_to<W: std::io::Write>(&self, w: W) -> Result<(), ExportIoError> {
        let mut out = ExportWriter::new(w, &self.header())?;
        for b in &self.blocks {
            out.push(b)?;
        }
        out.finish()?;
        Ok(())
    }

    /// Reads a whole export.
    pub fn read_from<R: std::io::BufRead>(r: R) -> Result<Self, AuditError> {
        let reader = ExportReader::new(r)?;
        let h = reader.header().clone();
        let blocks = reader.collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            format: h.format,
            chain_id: h.chain_id,
            genesis_hash: h.genesis_hash,
            from: h.from,
            to: h.to,
            blocks,
        })
    }
}

/// Writing an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportIoError {
    /// The output failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// A value did not encode.
    #[error("encoding the export: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes an export line by line: the header, then [`ExportWriter::push`] per block.
pub struct ExportWriter<W: std::io::Write> {
    out: W,
}

impl<W: std::io::Write> ExportWriter<W> {
    /// Starts an export with its header line.
    pub fn new(mut out: W, header: &ExportHeader) -> Result<Self, ExportIoError> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(Self { out })
    }

    /// Appends a block.
    pub fn push(&mut self, block: &ExportedBlock) -> Result<(), ExportIoError> {
        serde_json::to_writer(&mut self.out, block)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> Result<W, ExportIoError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an export as a stream: the header at once, then the blocks one line at a time.
pub struct ExportReader<R> {
    lines: std::io::Lines<R>,
    header: ExportHeader,
    line: usize,
}

impl<R: std::io::BufRead> ExportReader<R> {
    /// Reads the header line.
    pub fn new(r: R) -> Result<Self, AuditError> {
        let mut lines = r.lines();
        let first = lines
            .next()
            .ok_or_else(|| AuditError::Format("empty file".into()))?
            .map_err(|e| AuditError::Format(format!("reading line 1: {e}")))?;
        let header: ExportHeader = serde_json::from_str(&first)
            .map_err(|e| AuditError::Format(format!("line 1 is not an export header: {e}")))?;
        if header.format != EXPORT_FORMAT {
            return Err(AuditError::Format(format!("format {:?}", header.format)));
        }
        Ok(Self {
            lines,
            header,
            line: 1,
        })
    }

    /// The header.
    pub fn header(&self) -> &ExportHeader {
        &self.header
    }
}

impl<R: std::io::BufRead> Iterator for ExportReader<R> {
    type Item = Result<ExportedBlock, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line += 1;
            let n = self.line;
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(AuditError::Format(format!("reading line {n}: {e}")))),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(serde_json::from_str(&line).map_err(|e| {
                AuditError::Format(format!("line {n} is not an exported block: {e}"))
            }));
        }
    }
}

/// One block of an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportedBlock {
    /// The block's hash as the exporter states it.
    pub hash: Hash32,
    /// The block.
    pub block: Block,
    /// Its commit certificate, canonical encoding in hex ([`Certificate::encode`]).
    pub certificate: String,
}

/// Why an audit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The replayed state could not be read.
    #[error(transparent)]
    State(StateError),
    /// Not an export this audit reads.
    #[error("not a {EXPORT_FORMAT} export: {0}")]
    Format(String),
    /// The export is of another chain or genesis.
    #[error("the export is of another market: {0}")]
    OtherGenesis(String),
    /// The export does not start at height 1 (a replay needs every block).
    #[error("the export starts at height {0}; an audit replays from height 1 (or from a snapshot: --snapshot)")]
    NotFromGenesis(u64),
    /// The export does not start right after the snapshot it is audited from.
    #[error("the export starts at height {got}; the snapshot is of height {snapshot}, so it must start at {}", snapshot + 1)]
    NotAfterSnapshot {
        /// The snapshot's height.
        snapshot: u64,
        /// The export's first height.
        got: u64,
    },
    /// A snapshot is malformed or incomplete.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A snapshot's entries do not rebuild its anchor block's state root.
    #[error("snapshot at height {height}: its entries give the state root {computed}, but the chain committed {stated} (entries altered, added or removed)")]
    SnapshotRoot {
        /// Anchor height.
        height: u64,
        /// The anchor block's state root.
        stated: Hash32,
        /// The root the entries give.
        computed: Hash32,
    },
    /// A block is missing, repeated or out of order.
    #[error("block {position} of the export has height {got}; expected {expected} (missing, repeated or out-of-order block)")]
    OutOfOrder {
        /// Position in the export.
        position: usize,
        /// Expected height.
        expected: u64,
        /// Its height.
        got: u64,
    },
    /// A block does not hash to its stated hash.
    #[error("height {height}: the block hashes to {computed}, but the export says {stated} (block content altered)")]
    BlockHash {
        /// Height.
        height: u64,
        /// Stated.
        stated: Hash32,
        /// Computed.
        computed: Hash32,
    },
    /// A block's parent link is wrong.
    #[error("height {height}: prev_hash {stated} is not the hash of block {} ({expected})", height - 1)]
    Parent {
        /// Height.
        height: u64,
        /// In the block.
        stated: Hash32,
        /// The previous block's hash.
        expected: Hash32,
    },
    /// A commit certificate is invalid.
    #[error("height {height}: commit certificate invalid: {error}")]
    Certificate {
        /// Height.
        height: u64,
        /// Why.
        error: CertError,
    },
    /// An order proof does not verify.
    #[error("height {height}, transaction #{index} ({id}): the order's proof does not verify for meter {meter}, period {period}, {side:?} {quantity_wh} Wh: {why}")]
    Proof {
        /// Height.
        height: u64,
        /// Position in the block.
        index: usize,
        /// Transaction id.
        id: TxId,
        /// Meter.
        meter: Box<MeterKey>,
        /// Period.
        period: u64,
        /// Side.
        side: Side,
        /// Quantity.
        quantity_wh: u32,
        /// Verifier's reason.
        why: String,
    },
    /// An unlinkable order's proof does not verify.
    #[error("height {height}, transaction #{index} ({id}): the unlinkable order's proof does not verify for period {period}, {side:?} {quantity_wh} Wh and its terms: {why}")]
    UnlinkableProof {
        /// Height.
        height: u64,
        /// Position in the block.
        index: usize,
        /// Transaction id.
        id: TxId,
        /// Period.
        period: u64,
        /// Side.
        side: Side,
        /// Quantity.
        quantity_wh: u32,
        /// Verifier's reason.
        why: String,
    },
    /// A spend's join-split proof does not verify.
    #[error("height {height}, transaction #{index} ({id}): the spend's proof does not verify for its terms: {why}")]
    SpendProof {
        /// Height.
        height: u64,
        /// Position in the block.
        index: usize,
        /// Transaction id.
        id: TxId,
        /// Verifier's reason.
        why: String,
    },
    /// The pool's state disagrees with the sums of the public transactions.
    #[error("shielded supply: {0}")]
    Supply(String),
    /// The replay refused a block (including a state-root mismatch).
    #[error("height {height}: replay: {error}")]
    Replay {
        /// Height.
        height: u64,
        /// What the state machine says.
        error: BlockError,
    },
}

/// Progress of a long audit (a progress bar in the CLI).
pub trait Progress: Sync {
    /// A stage starts with `total` steps.
    fn stage(&self, _name: &str, _total: u64) {}
    /// `n` steps done.
    fn advance(&self, _n: u64) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// A period's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeriodFigures {
    /// Period.
    pub period: u64,
    /// Height of the block that cleared it.
    pub cleared_at: u64,
    /// Sell orders.
    pub sell_orders: u64,
    /// Buy orders.
    pub buy_orders: u64,
    /// Energy offered, Wh.
    pub offered_wh: u64,
    /// Energy bid for, Wh.
    pub bid_wh: u64,
    /// Energy traded, Wh.
    pub traded_wh: u64,
    /// Trades.
    pub trades: u64,
    /// Uniform clearing price, minor units per kWh.
    pub clearing_price: Option<u64>,
    /// Lowest and highest trade price.
    pub price_range: Option<(u64, u64)>,
    /// Money paid for energy, millis.
    pub money_millis: u64,
    /// Grid/wheeling fees, millis.
    pub grid_fees_millis: u64,
    /// Market fees, millis.
    pub market_fees_millis: u64,
    /// Offered energy not traded (sold to the utility), Wh.
    pub unmatched_sell_wh: u64,
    /// Demand not traded (bought from the utility), Wh.
    pub unmatched_buy_wh: u64,
    /// Distinct meters with an order: the meters of wallet-signed orders, plus one per
    /// unlinkable order (its order nullifier is unique per meter and period). In the totals:
    /// the distinct meters of wallet-signed orders over the range plus the most unlinkable
    /// orders of one period, a lower bound: unlinkable orders cannot be grouped across periods,
    /// by design.
    pub meters: u64,
    /// Unlinkable orders (distinct order nullifiers) among the orders; in the totals, their
    /// sum.
    pub anonymous_orders: u64,
    /// Whether no meter had more than one order in the period.
    pub one_order_per_meter: bool,
}

/// What the audit checked and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash32,
    /// Blocks checked (heights 1..=blocks).
    pub blocks: u64,
    /// Transactions replayed.
    pub transactions: u64,
    /// Order proofs re-verified.
    pub proofs: u64,
    /// Commit signatures verified.
    pub signatures: u64,
    /// Final state root.
    pub state_root: Hash32,
    /// Cleared periods in the requested range.
    pub periods: Vec<PeriodFigures>,
    /// Totals over `periods` (its `period` and `cleared_at` are zero, `clearing_price` none).
    pub totals: PeriodFigures,
    /// Periods with orders on the ledger that have not cleared yet.
    pub open_periods: Vec<u64>,
    /// The chain runs on the INSECURE development keys: its proofs prove nothing.
    pub insecure_dev_keys: bool,
    /// The shielded pool's public figures (`None` when the genesis has no pool).
    pub shielded: Option<ShieldedFigures>,
}

/// What the public ledger says about the shielded pool, summed by the audit from the
/// transactions and the cleared periods' trades, and checked against the pool's state (supply
/// invariant: the pool holds exactly what it held at the audit's start plus what was minted,
/// paid in and paid to unlinkable orders as notes, less what was paid out, paid as fees and
/// escrowed; the escrow holds what was escrowed less what clearing and cancels released;
/// every spend proof, verified above, conserves value inside the pool). Counts and sums cover
/// the audited blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShieldedFigures {
    /// Spend (join-split) proofs re-verified.
    pub spend_proofs: u64,
    /// Notes minted by the registrar (shielded deposits), and their value, millis.
    pub mints: u64,
    /// Value minted, millis.
    pub minted_millis: u64,
    /// Paid into the pool from wallet balances, millis.
    pub paid_in_millis: u64,
    /// Paid out of the pool to wallet balances, millis.
    pub to_wallets_millis: u64,
    /// Withdrawn to bank accounts, millis.
    pub withdrawn_millis: u64,
    /// Fees paid by spends, millis.
    pub fees_millis: u64,
    /// Unlinkable buy orders that escrowed their maximum cost from notes.
    pub escrows: u64,
    /// Paid from notes into those escrows, millis.
    pub escrowed_millis: u64,
    /// Notes minted to unlinkable orders' payout targets: sellers' proceeds, buyers' unused
    /// escrow (at clearing or cancel).
    pub order_notes: u64,
    /// Their value, millis.
    pub order_notes_millis: u64,
    /// Escrow released by clearing or cancel (spent on trades or refunded), millis.
    pub escrow_released_millis: u64,
    /// Notes added to the tree (mints, two per spend or escrow, order notes).
    pub notes: u64,
    /// Nullifiers revealed (two per spend or escrow, dummies included).
    pub nullifiers: u64,
    /// Value the pool holds at the end, millis: what it held at the audit's start + minted +
    /// paid in + order notes - paid out - fees - escrowed.
    pub balance_millis: u64,
    /// Escrow of the unlinkable buy orders still open at the end, millis.
    pub escrow_held_millis: u64,
}

impl ShieldedFigures {
    /// The unlinkable orders' money in one sentence (text and HTML reports); `None` on a
    /// market without them.
    pub fn escrow_summary(&self) -> Option<String> {
        use crate::units::minor_units as units;
        (self.escrows > 0 || self.order_notes > 0 || self.escrow_held_millis > 0).then(|| {
            format!(
                "Unlinkable orders: {} escrowed from notes by {} buy orders, {} released by \
                 clearing and cancels; {} paid back as {} notes (sellers' proceeds, buyers' \
                 unused escrow); {} still in escrow.",
                units(self.escrowed_millis),
                self.escrows,
                units(self.escrow_released_millis),
                units(self.order_notes_millis),
                self.order_notes,
                units(self.escrow_held_millis)
            )
        })
    }
}

/// Proofs per batch: big enough to amortise the pairing, small enough to parallelise.
const PROOF_BATCH: usize = 256;

/// One block's proofs, already verified; the replay asks for exactly these.
struct Verified<'a>(&'a BlockProofs);

/// `Ok` if the replay asks for exactly the proofs verified; never reached otherwise for
/// blocks this audit verified, but refuse rather than trust.
fn same_as_verified<T: PartialEq>(asked: &[T], verified: &[T]) -> Result<(), BatchFailure> {
    if asked == verified {
        return Ok(());
    }
    Err(BatchFailure {
        invalid: (0..asked.len())
            .map(|i| (i, crate::VerifyError::Rejected))
            .collect(),
    })
}

impl ProofCheck for Verified<'_> {
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        same_as_verified(items, &self.0.orders.items)
    }

    fn check_spends(&self, items: &[(JoinSplitPublic, SpendProof)]) -> Result<(), BatchFailure> {
        same_as_verified(items, &self.0.spends.items)
    }

    fn check_unlinkable(
        &self,
        items: &[(UnlinkableOrderPublic, OrderProof)],
    ) -> Result<(), BatchFailure> {
        same_as_verified(items, &self.0.unlinkable.items)
    }
}

/// Audits `export` against `g`, verifying proofs with `verifier`; reports the cleared periods
/// within `periods` (all when `None`). See [`audit_stream`].
pub fn audit(
    g: &Genesis,
    export: &Export,
    verifier: &MarketVerifier,
    periods: Option<(u64, u64)>,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError> {
    audit_stream(
        g,
        &export.header(),
        export.blocks.iter().cloned().map(Ok),
        verifier,
        periods,
        progress,
    )
}

/// Blocks per pipeline chunk, at most.
const CHUNK_BLOCKS: usize = 256;
/// Proofs per pipeline chunk, about: a chunk ends at the first block that reaches it.
const CHUNK_PROOFS: usize = 4 * 1024;

/// Blocks that passed the checks of the stages so far, with their proofs.
struct Chunk {
    blocks: Vec<ExportedBlock>,
    /// Per block, its proofs.
    proofs: Vec<BlockProofs>,
    signatures: u64,
}

/// One kind of proof of a block, with the public inputs the ledger derives, in transaction
/// order, and the index of each one's transaction in the block.
struct Proofs<T: ProofKind> {
    items: Vec<(T, <T as ProofKind>::Proof)>,
    at: Vec<usize>,
}

/// A statement whose proofs the audit verifies.
trait ProofKind: Copy + PartialEq + Send + Sync {
    type Proof: Copy + PartialEq + Send + Sync;
}

impl ProofKind for OrderPublic {
    type Proof = OrderProof;
}

impl ProofKind for JoinSplitPublic {
    type Proof = SpendProof;
}

impl ProofKind for UnlinkableOrderPublic {
    type Proof = OrderProof;
}

/// A block's proofs, as the ledger asks for them.
struct BlockProofs {
    orders: Proofs<OrderPublic>,
    spends: Proofs<JoinSplitPublic>,
    unlinkable: Proofs<UnlinkableOrderPublic>,
}

impl BlockProofs {
    /// The proofs of `block`: orders whose meter key decodes (an order with an undecodable
    /// key is refused by the rules as from an unknown meter); spends and escrows with the
    /// inputs the ledger derives (binding hash included); unlinkable orders against the
    /// market's id `market` when the genesis has a registry. An item naming a non-canonical
    /// field element is left out: the replay refuses its transaction.
    fn of(g: &Genesis, market: Option<ark_bn254::Fr>, block: &Block) -> Self {
        fn collect<T: ProofKind, E>(
            block: &Block,
            item: impl Fn(&crate::types::Transaction) -> Option<Result<(T, T::Proof), E>>,
        ) -> Proofs<T> {
            let (items, at) = block
                .txs
                .iter()
                .enumerate()
                .filter_map(|(k, tx)| item(tx).and_then(Result::ok).map(|x| (x, k)))
                .unzip();
            Proofs { items, at }
        }
        Self {
            orders: collect(block, |tx| {
                tx.body
                    .order_proof_item(|m| m.to_public_key_unchecked().ok_or(()))
            }),
            spends: collect(block, |tx| tx.spend_proof_item(&g.chain_id)),
            unlinkable: collect(block, |tx| tx.unlinkable_order_item(&g.chain_id, market?)),
        }
    }
}

/// What a stage passes on: the blocks before the first failure, then the failure.
type Stage = Result<Chunk, AuditError>;

/// Audits a stream of blocks (an [`ExportReader`], or blocks fetched from a node) against `g`:
/// the header and every block as described in the module documentation, as a three-stage
/// pipeline (read, hash links and certificates | proofs | replay and figures) over chunks of
/// blocks, each stage a thread joined by bounded channels. Memory holds a few chunks, the live
/// state and the open orders' meters; archived period results are not kept (the figures of a
/// period are taken when it clears).
pub fn audit_stream<I>(
    g: &Genesis,
    header: &ExportHeader,
    blocks: I,
    verifier: &MarketVerifier,
    periods: Option<(u64, u64)>,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError>
where
    I: Iterator<Item = Result<ExportedBlock, AuditError>> + Send,
{
    audit_stream_from(g, None, header, blocks, verifier, periods, progress)
}

/// [`audit_stream`] starting from a verified snapshot ([`crate::snapshot::load`]) instead of
/// the genesis: the export must start right after the snapshot's height, and the report covers
/// the periods cleared from there on.
pub fn audit_stream_from<I>(
    g: &Genesis,
    start: Option<Checkpoint>,
    header: &ExportHeader,
    blocks: I,
    verifier: &MarketVerifier,
    periods: Option<(u64, u64)>,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError>
where
    I: Iterator<Item = Result<ExportedBlock, AuditError>> + Send,
{
    if header.format != EXPORT_FORMAT {
        return Err(AuditError::Format(format!("format {:?}", header.format)));
    }
    if header.chain_id != g.chain_id {
        return Err(AuditError::OtherGenesis(format!(
            "chain {:?}, genesis says {:?}",
            header.chain_id, g.chain_id
        )));
    }
    if header.genesis_hash != g.hash() {
        return Err(AuditError::OtherGenesis(format!(
            "genesis hash {}, the genesis file hashes to {}",
            header.genesis_hash,
            g.hash()
        )));
    }
    let ledger = Ledger::new(g).map_err(|e| AuditError::OtherGenesis(e.to_string()))?;
    let start = match start {
        Some(c) if header.from != c.height + 1 => {
            return Err(AuditError::NotAfterSnapshot {
                snapshot: c.height,
                got: header.from,
            })
        }
        Some(c) => c,
        None if header.from != 1 => return Err(AuditError::NotFromGenesis(header.from)),
        None => {
            let mut state = MemoryState::default();
            let genesis = ledger.genesis_update(&state).map_err(AuditError::State)?;
            state.commit(genesis);
            Checkpoint {
                state,
                height: 0,
                hash: Hash32::default(),
            }
        }
    };
    progress.stage("audit", header.to.saturating_sub(header.from) + 1);
    let (first, prev) = (start.height + 1, start.hash);
    std::thread::scope(|scope| {
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<Stage>(1);
        let (proof_tx, proof_rx) = std::sync::mpsc::sync_channel::<Stage>(1);
        scope.spawn(move || read_stage(g, blocks, first, prev, &read_tx));
        scope.spawn(move || proof_stage(verifier, &read_rx, &proof_tx));
        replay_stage(g, &ledger, start.state, &proof_rx, periods, progress)
    })
}

/// Stage 1: reads blocks, checks heights, hashes and parent links, and the certificates of
/// each chunk in parallel.
fn read_stage<I>(
    g: &Genesis,
    blocks: I,
    first: u64,
    mut prev: Hash32,
    out: &std::sync::mpsc::SyncSender<Stage>,
) where
    I: Iterator<Item = Result<ExportedBlock, AuditError>>,
{
    let mut expected = first;
    let mut chunk = Vec::new();
    let mut proofs = 0usize;
    let mut failure = None;
    let mut blocks = blocks;
    loop {
        let next = match blocks.next() {
            None => None,
            Some(Err(e)) => {
                failure = Some(e);
                None
            }
            Some(Ok(b)) => match check_link(&b, first, expected, &prev) {
                Ok(hash) => {
                    prev = hash;
                    expected += 1;
                    Some(b)
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            },
        };
        let end = next.is_none();
        if let Some(b) = next {
            proofs += b
                .block
                .txs
                .iter()
                .filter(|t| {
                    matches!(
                        t.body,
                        TxBody::Order { .. }
                            | TxBody::UnlinkableOrder { .. }
                            | TxBody::Spend { .. }
                    )
                })
                .count();
            chunk.push(b);
        }
        if end || chunk.len() >= CHUNK_BLOCKS || proofs >= CHUNK_PROOFS {
            let (ok, cert_failure) = check_certificates(g, std::mem::take(&mut chunk));
            proofs = 0;
            let stop = cert_failure.is_some() || end;
            if !ok.blocks.is_empty() && out.send(Ok(ok)).is_err() {
                return;
            }
            if let Some(e) = cert_failure.or(failure.take()) {
                let _ = out.send(Err(e));
                return;
            }
            if stop {
                return;
            }
        }
    }
}

/// Height, hash and parent link of the next block; returns its hash.
fn check_link(
    b: &ExportedBlock,
    first: u64,
    expected: u64,
    prev: &Hash32,
) -> Result<Hash32, AuditError> {
    if b.block.height != expected {
        return Err(AuditError::OutOfOrder {
            position: (expected - first) as usize,
            expected,
            got: b.block.height,
        });
    }
    let computed = b.block.hash();
    if computed != b.hash {
        return Err(AuditError::BlockHash {
            height: expected,
            stated: b.hash,
            computed,
        });
    }
    if b.block.prev_hash != *prev {
        return Err(AuditError::Parent {
            height: expected,
            stated: b.block.prev_hash,
            expected: *prev,
        });
    }
    Ok(computed)
}

/// Verifies the certificates of `blocks` in parallel: the blocks before the first invalid one
/// (all, if none is), and its error.
fn check_certificates(g: &Genesis, mut blocks: Vec<ExportedBlock>) -> (Chunk, Option<AuditError>) {
    let checked: Vec<Result<u64, AuditError>> = blocks
        .par_iter()
        .map(|b| {
            let height = b.block.height;
            let fail = |error| AuditError::Certificate { height, error };
            let bytes = hex::decode(&b.certificate)
                .map_err(|e| fail(CertError::Malformed(e.to_string())))?;
            let cert = Certificate::decode(&bytes).map_err(|e| fail(CertError::Malformed(e)))?;
            cert.verify(g, height, &b.hash).map_err(fail)?;
            Ok(cert.signatures.len() as u64)
        })
        .collect();
    let mut signatures = 0;
    let mut failure = None;
    for (k, r) in checked.into_iter().enumerate() {
        match r {
            Ok(n) => signatures += n,
            Err(e) => {
                blocks.truncate(k);
                failure = Some(e);
                break;
            }
        }
    }
    let market = g.anonymous.is_some().then(|| g.market_id());
    let proofs = blocks
        .iter()
        .map(|b| BlockProofs::of(g, market, &b.block))
        .collect();
    (
        Chunk {
            blocks,
            proofs,
            signatures,
        },
        failure,
    )
}

impl Chunk {
    /// Keeps the first `n` blocks.
    fn truncate(&mut self, n: usize) {
        self.blocks.truncate(n);
        self.proofs.truncate(n);
    }
}

/// The first proof of one kind in `chunk` (by block, then transaction) that does not
/// verify: (block position, transaction index, why). Verified in parallel batches.
fn first_invalid<T: ProofKind>(
    chunk: &Chunk,
    kind: impl Fn(&BlockProofs) -> &Proofs<T>,
    check: impl Fn(&[(T, T::Proof)]) -> Result<(), BatchFailure> + Sync,
) -> Option<(usize, usize, String)> {
    let flat: Vec<(usize, usize, (T, T::Proof))> = chunk
        .proofs
        .iter()
        .enumerate()
        .flat_map(|(pos, p)| {
            let p = kind(p);
            p.items.iter().zip(&p.at).map(move |(x, k)| (pos, *k, *x))
        })
        .collect();
    flat.par_chunks(PROOF_BATCH)
        .flat_map_iter(|batch| {
            let items: Vec<(T, T::Proof)> = batch.iter().map(|(_, _, x)| *x).collect();
            check(&items)
                .err()
                .map(|f| f.invalid)
                .unwrap_or_default()
                .into_iter()
                .map(|(i, e)| (batch[i].0, batch[i].1, e.to_string()))
                .collect::<Vec<_>>()
        })
        .min_by_key(|(pos, index, _)| (*pos, *index))
}

/// Stage 2: verifies every proof of a chunk (orders, spends and escrows, unlinkable orders),
/// in parallel batches; passes on the blocks before the first invalid proof, then its error.
fn proof_stage(
    verifier: &MarketVerifier,
    input: &std::sync::mpsc::Receiver<Stage>,
    out: &std::sync::mpsc::SyncSender<Stage>,
) {
    for msg in input {
        let mut chunk = match msg {
            Ok(c) => c,
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        };
        #[derive(Clone, Copy)]
        enum Kind {
            Order,
            Spend,
            Unlinkable,
        }
        let failures = [
            first_invalid(
                &chunk,
                |p| &p.orders,
                |b| verifier.order.verify_batch_deterministic(b),
            )
            .map(|f| (f, Kind::Order)),
            first_invalid(&chunk, |p| &p.spends, |b| verifier.check_spends(b))
                .map(|f| (f, Kind::Spend)),
            first_invalid(&chunk, |p| &p.unlinkable, |b| verifier.check_unlinkable(b))
                .map(|f| (f, Kind::Unlinkable)),
        ];
        // The earliest failure of any kind: every block before it is sound. (An unlinkable
        // buy carries two proofs, its own and its escrow's: the order's is named first.)
        let Some(((pos, index, why), kind)) = failures
            .into_iter()
            .flatten()
            .min_by_key(|((pos, index, _), kind)| (*pos, *index, matches!(kind, Kind::Spend)))
        else {
            if out.send(Ok(chunk)).is_err() {
                return;
            }
            continue;
        };
        let b = &chunk.blocks[pos];
        let (height, tx) = (b.block.height, &b.block.txs[index]);
        let id = tx.id();
        let error = match (&tx.body, kind) {
            (
                TxBody::Order {
                    meter,
                    period,
                    side,
                    quantity_wh,
                    ..
                },
                Kind::Order,
            ) => AuditError::Proof {
                height,
                index,
                id,
                meter: Box::new(*meter),
                period: *period,
                side: *side,
                quantity_wh: *quantity_wh,
                why,
            },
            (
                TxBody::UnlinkableOrder {
                    period,
                    side,
                    quantity_wh,
                    ..
                },
                Kind::Unlinkable,
            ) => AuditError::UnlinkableProof {
                height,
                index,
                id,
                period: *period,
                side: *side,
                quantity_wh: *quantity_wh,
                why,
            },
            _ => AuditError::SpendProof {
                height,
                index,
                id,
                why,
            },
        };
        chunk.truncate(pos);
        if !chunk.blocks.is_empty() && out.send(Ok(chunk)).is_err() {
            return;
        }
        let _ = out.send(Err(error));
        return;
    }
}

/// Running figures of the replay.
#[derive(Default)]
struct Figures {
    periods: Vec<PeriodFigures>,
    meters: BTreeSet<MeterKey>,
    /// Meters of the orders not cleared yet (orders name no meter in their result).
    open: BTreeMap<TxId, MeterKey>,
}

impl Figures {
    /// Takes a block's transactions into account.
    fn block(&mut self, block: &Block) {
        for tx in &block.txs {
            match &tx.body {
                TxBody::Order { meter, .. } => {
                    self.open.insert(tx.id(), *meter);
                }
                TxBody::CancelOrder { order } => {
                    self.open.remove(order);
                }
                _ => {}
            }
        }
    }

    /// A period cleared with result `r`; `report` if it is in the requested range.
    fn cleared(&mut self, r: &crate::ledger::PeriodResult, report: bool) {
        let mut f = PeriodFigures {
            period: r.period,
            cleared_at: r.cleared_at,
            clearing_price: r.clearing_price,
            traded_wh: r.volume_wh,
            trades: r.trades.len() as u64,
            one_order_per_meter: true,
            ..PeriodFigures::default()
        };
        let mut per_meter: BTreeMap<MeterKey, u64> = BTreeMap::new();
        let mut anonymous = 0;
        for o in &r.orders {
            let q = u64::from(o.filled_wh) + u64::from(o.unmatched_wh);
            match o.side {
                Side::Sell => {
                    f.sell_orders += 1;
                    f.offered_wh += q;
                    f.unmatched_sell_wh += u64::from(o.unmatched_wh);
                }
                Side::Buy => {
                    f.buy_orders += 1;
                    f.bid_wh += q;
                    f.unmatched_buy_wh += u64::from(o.unmatched_wh);
                }
            }
            if o.owner.is_none() {
                anonymous += 1;
            } else if let Some(m) = self.open.remove(&o.id) {
                *per_meter.entry(m).or_default() += 1;
            }
        }
        if !report {
            return;
        }
        f.anonymous_orders = anonymous;
        f.meters = per_meter.len() as u64 + anonymous;
        f.one_order_per_meter = per_meter.values().all(|n| *n <= 1);
        self.meters.extend(per_meter.into_keys());
        for t in &r.trades {
            f.money_millis += t.energy_value;
            f.grid_fees_millis += t.grid_fee;
            f.market_fees_millis += t.market_fee_buyer + t.market_fee_seller;
            f.price_range = Some(match f.price_range {
                None => (t.price, t.price),
                Some((a, z)) => (a.min(t.price), z.max(t.price)),
            });
        }
        self.periods.push(f);
    }

    fn totals(&self) -> PeriodFigures {
        let most_anonymous = self.periods.iter().map(|f| f.anonymous_orders).max();
        let mut totals = PeriodFigures {
            one_order_per_meter: self.periods.iter().all(|f| f.one_order_per_meter),
            meters: self.meters.len() as u64 + most_anonymous.unwrap_or(0),
            ..PeriodFigures::default()
        };
        for f in &self.periods {
            totals.anonymous_orders += f.anonymous_orders;
            totals.sell_orders += f.sell_orders;
            totals.buy_orders += f.buy_orders;
            totals.offered_wh += f.offered_wh;
            totals.bid_wh += f.bid_wh;
            totals.traded_wh += f.traded_wh;
            totals.trades += f.trades;
            totals.money_millis += f.money_millis;
            totals.grid_fees_millis += f.grid_fees_millis;
            totals.market_fees_millis += f.market_fees_millis;
            totals.unmatched_sell_wh += f.unmatched_sell_wh;
            totals.unmatched_buy_wh += f.unmatched_buy_wh;
            if let Some((a, z)) = f.price_range {
                totals.price_range = Some(match totals.price_range {
                    None => (a, z),
                    Some((x, y)) => (x.min(a), y.max(z)),
                });
            }
        }
        totals
    }
}

/// The results of the periods a block cleared, from its changes.
fn cleared_results(
    events: &[crate::ledger::Event],
    changes: &crate::state::ChangeSet,
) -> Result<Vec<crate::ledger::PeriodResult>, AuditError> {
    events
        .iter()
        .filter_map(|e| match e {
            crate::ledger::Event::PeriodCleared { period, .. } => Some(*period),
            crate::ledger::Event::TxApplied { .. } => None,
        })
        .map(|p| {
            let key = crate::state::keys::result(p);
            match changes.get(&key) {
                Some(Some(value)) => {
                    crate::state::decode_entry(&key, value).map_err(AuditError::State)
                }
                _ => Err(AuditError::State(StateError::Storage(format!(
                    "period {p} cleared but has no result"
                )))),
            }
        })
        .collect()
}

/// Drops the values of the retained period results from the audit's state, keeping their
/// keys and the tree's hashes of them.
///
/// A city period's result is tens of megabytes (every order's outcome and every trade) and the
/// genesis retains the last `result_retention_periods` of them in the committed state: kept
/// whole, a day of them would hold gigabytes of the audit's memory. The audit reads a result
/// once, from the changes of the block that clears its period; the tree needs only its hash,
/// taken when the block's root was computed; and the rules read a retained result back only
/// to move it to the archive, which the audit drops. An empty value does not decode as a
/// result, so a rule that ever read one for its content would fail the audit with
/// [`StateError::Corrupt`] naming the key, not replay something else.
fn forget_results(state: &mut MemoryState) {
    state.forget_values(&crate::state::keys::all_results());
}

/// Stage 3: replays every block through the state machine, in order, and takes each
/// period's figures when it clears.
fn replay_stage(
    g: &Genesis,
    ledger: &Ledger<'_>,
    mut state: MemoryState,
    input: &std::sync::mpsc::Receiver<Stage>,
    periods: Option<(u64, u64)>,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError> {
    let (lo, hi) = periods.unwrap_or((0, u64::MAX));
    forget_results(&mut state);
    let mut figures = Figures::default();
    // Orders already open at the start (from a snapshot) clear later: their meters.
    for p in state.open_periods().map_err(AuditError::State)? {
        for o in state.orders_of_period(p).map_err(AuditError::State)? {
            figures.open.insert(o.id, o.meter);
        }
    }
    let (mut blocks, mut transactions, mut proofs, mut signatures) = (0u64, 0u64, 0u64, 0u64);
    let mut shielded = PoolTracker::start(&state).map_err(AuditError::State)?;
    for msg in input {
        let chunk = msg?;
        signatures += chunk.signatures;
        for (b, p) in chunk.blocks.iter().zip(&chunk.proofs) {
            let height = b.block.height;
            let mut applied = ledger
                .apply_block(&state, &b.block, &Verified(p))
                .map_err(|error| AuditError::Replay { height, error })?;
            // The archive is not committed and the figures of a period are taken when it
            // clears: the audit keeps no archived results.
            applied
                .update
                .changes
                .retain(|k, _| k.first() != Some(&crate::state::keys::ARCHIVE));
            let cleared = cleared_results(&applied.events, &applied.update.changes)?;
            state.commit(applied.update);
            forget_results(&mut state);
            figures.block(&b.block);
            shielded.block(&b.block).map_err(AuditError::Supply)?;
            for r in &cleared {
                figures.cleared(r, (lo..=hi).contains(&r.period));
                shielded.cleared(r).map_err(AuditError::Supply)?;
            }
            blocks += 1;
            transactions += b.block.txs.len() as u64;
            proofs += (p.orders.items.len() + p.unlinkable.items.len()) as u64;
            shielded.figures.spend_proofs += p.spends.items.len() as u64;
            progress.advance(1);
        }
    }
    let open_periods = state.open_periods().map_err(AuditError::State)?;
    let shielded = match &g.shielded {
        None => None,
        Some(_) => Some(shielded.checked_against(&state)?),
    };
    Ok(AuditReport {
        chain_id: g.chain_id.clone(),
        genesis_hash: g.hash(),
        blocks,
        transactions,
        proofs,
        signatures,
        state_root: state.root(),
        totals: figures.totals(),
        periods: figures.periods,
        open_periods,
        insecure_dev_keys: g.insecure_dev_keys,
        shielded,
    })
}

/// The shielded pool's running figures, and what the audit remembers between blocks to
/// compute them: the pool as it found it at its start, and the open unlinkable orders' side
/// and escrow (the notes their clearing mints follow from those and the period's trades).
struct PoolTracker {
    figures: ShieldedFigures,
    /// Balance, fees, notes and escrow of the pool at the audit's start.
    start: (u64, u64, u64, u64),
    /// Open unlinkable orders: side and escrow.
    open: BTreeMap<TxId, (Side, u64)>,
    /// Their ids by (period, order nullifier), for cancels.
    by_nullifier: BTreeMap<(u64, FieldBytes), TxId>,
}

fn add_to(total: &mut u64, x: u64) -> Result<(), String> {
    *total = total
        .checked_add(x)
        .ok_or_else(|| "a total overflows 64 bits".to_owned())?;
    Ok(())
}

impl PoolTracker {
    /// Starts from `state` (the genesis state, or a snapshot's with orders already open).
    fn start(state: &MemoryState) -> Result<Self, StateError> {
        let pool = Pool::load(state)?;
        let mut t = Self {
            figures: ShieldedFigures::default(),
            start: (
                pool.balance,
                pool.fees,
                pool.frontier().size(),
                pool.escrowed,
            ),
            open: BTreeMap::new(),
            by_nullifier: BTreeMap::new(),
        };
        for p in state.open_periods()? {
            for o in state.unlinkable_orders_of_period(p)? {
                t.open.insert(o.id, (o.side, o.escrow));
                t.by_nullifier.insert((o.period, o.order_nf), o.id);
            }
        }
        Ok(t)
    }

    /// A note minted to an unlinkable order's payout target.
    fn order_note(&mut self, value: u64) -> Result<(), String> {
        let f = &mut self.figures;
        f.order_notes += 1;
        f.notes += 1;
        add_to(&mut f.order_notes_millis, value)
    }

    /// Takes a replayed (so valid) block's pool transactions into account.
    fn block(&mut self, block: &Block) -> Result<(), String> {
        for tx in &block.txs {
            let f = &mut self.figures;
            match &tx.body {
                TxBody::MintNote { value, .. } => {
                    f.mints += 1;
                    f.notes += 1;
                    add_to(&mut f.minted_millis, *value)?;
                }
                TxBody::Spend {
                    public_in,
                    public_out,
                    fee,
                    payout,
                    ..
                } => {
                    f.notes += 2;
                    f.nullifiers += 2;
                    add_to(&mut f.paid_in_millis, *public_in)?;
                    add_to(&mut f.fees_millis, *fee)?;
                    let paid = public_out - fee;
                    match payout {
                        crate::types::Payout::None => {}
                        crate::types::Payout::Wallet { .. } => {
                            add_to(&mut f.to_wallets_millis, paid)?
                        }
                        crate::types::Payout::Bank { .. } => add_to(&mut f.withdrawn_millis, paid)?,
                    }
                }
                TxBody::UnlinkableOrder {
                    period,
                    order_nf,
                    side,
                    escrow,
                    ..
                } => {
                    let held = escrow.as_ref().map_or(0, |e| e.amount);
                    if let Some(e) = escrow {
                        f.escrows += 1;
                        f.notes += 2;
                        f.nullifiers += 2;
                        add_to(&mut f.escrowed_millis, e.amount)?;
                        add_to(&mut f.fees_millis, e.fee)?;
                    }
                    self.open.insert(tx.id(), (*side, held));
                    self.by_nullifier.insert((*period, *order_nf), tx.id());
                }
                TxBody::CancelUnlinkable {
                    period, order_nf, ..
                } => {
                    let id = self.by_nullifier.remove(&(*period, *order_nf));
                    if let Some((_, escrow)) = id.and_then(|id| self.open.remove(&id)) {
                        add_to(&mut self.figures.escrow_released_millis, escrow)?;
                        if escrow > 0 {
                            self.order_note(escrow)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A period cleared: its unlinkable orders' escrow is released, and sellers' proceeds
    /// and buyers' unused escrow come back as notes.
    fn cleared(&mut self, r: &crate::ledger::PeriodResult) -> Result<(), String> {
        let notes = r.order_notes(|id| self.open.get(id).copied())?;
        for o in r.orders.iter().filter(|o| o.owner.is_none()) {
            if let Some((_, escrow)) = self.open.remove(&o.id) {
                add_to(&mut self.figures.escrow_released_millis, escrow)?;
            }
        }
        for (_, value) in notes {
            self.order_note(value)?;
        }
        self.by_nullifier.retain(|(p, _), _| *p > r.period);
        Ok(())
    }

    /// The supply invariant: the pool's stored balance, fees, tree size and escrow are what
    /// the public transactions and trades add up to from the audit's start.
    fn checked_against(self, state: &MemoryState) -> Result<ShieldedFigures, AuditError> {
        let mut f = self.figures;
        let (balance, fees, notes, escrowed) = self.start;
        let pool = Pool::load(state).map_err(AuditError::State)?;
        let sum = |xs: &[u64]| xs.iter().try_fold(0u64, |a, x| a.checked_add(*x));
        let expected = sum(&[
            balance,
            f.minted_millis,
            f.paid_in_millis,
            f.order_notes_millis,
        ])
        .zip(sum(&[
            f.to_wallets_millis,
            f.withdrawn_millis,
            f.fees_millis,
            f.escrowed_millis,
        ]))
        .and_then(|(i, o)| i.checked_sub(o));
        if expected != Some(pool.balance) {
            return Err(AuditError::Supply(format!(
                "the pool holds {} but {balance} at the start + minted {} + paid in {} + order \
                 notes {} - to wallets {} - withdrawn {} - fees {} - escrowed {} is {expected:?}",
                pool.balance,
                f.minted_millis,
                f.paid_in_millis,
                f.order_notes_millis,
                f.to_wallets_millis,
                f.withdrawn_millis,
                f.fees_millis,
                f.escrowed_millis
            )));
        }
        let held = sum(&[escrowed, f.escrowed_millis])
            .and_then(|x| x.checked_sub(f.escrow_released_millis));
        if held != Some(pool.escrowed) {
            return Err(AuditError::Supply(format!(
                "the escrow holds {} but {escrowed} at the start + escrowed {} - released {} is \
                 {held:?}",
                pool.escrowed, f.escrowed_millis, f.escrow_released_millis
            )));
        }
        if Some(pool.fees) != fees.checked_add(f.fees_millis)
            || Some(pool.frontier().size()) != notes.checked_add(f.notes)
        {
            return Err(AuditError::Supply(format!(
                "the pool records fees {} and {} notes, the transactions {} + {} and {} + {}",
                pool.fees,
                pool.frontier().size(),
                fees,
                f.fees_millis,
                notes,
                f.notes
            )));
        }
        f.balance_millis = pool.balance;
        f.escrow_held_millis = pool.escrowed;
        Ok(f)
    }
}
