//! Reassembly of proposal streams under a budget no peer can exhaust for another.
//!
//! A proposal travels as a stream of parts (header, transaction chunks, signed fin). Until its
//! last part arrives a stream is held in memory, so what a peer can make a validator hold is
//! bounded here: per stream what a block within the genesis' limits needs (parts, transactions
//! per part, bytes); per publisher [`STREAMS_PER_PUBLISHER`] unfinished streams and the bytes of
//! [`BLOCKS_PER_PUBLISHER`] full blocks (beyond either, that publisher's oldest goes, never
//! another's); and [`MAX_STREAMS`] in all. The header part is checked as soon as it arrives
//! (height window, round, proposer) so that a stream the validator would refuse anyway is
//! dropped at once.
//!
//! The count per publisher is generous on purpose. An equivocating proposer streams many
//! blocks for its round at once, their parts interleaved; with a handful of places its real
//! block, sent first, was evicted by its own variants before it could complete, and the round
//! was lost. Small variants now all complete (and past a few, wait unchecked for the proposer's
//! signed `Proposal` to name the real one: app.rs); large ones still meet the byte budget,
//! which bounds what any publisher can make a validator hold.
//!
//! A stream dropped or evicted can never complete (what it held is gone), and one completed is
//! done, so their later parts are ignored: the last [`ENDED_REMEMBERED`] such streams are
//! remembered. Without that, each later part of a refused stream opened it again as an
//! unfinished stream, which took a place in its publisher's share and evicted the oldest there:
//! under an equivocating proposer's flood, the real block.
//!
//! The block's transaction count is left to the ledger's rule: a stream carrying more
//! transactions than a block may, within the parts and bytes above, is reassembled, so that
//! validators find the block invalid and vote against it at once. Dropping it would leave the
//! engine waiting for a value until the round's propose timeout.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arc_malachitebft_app_channel::app::streaming::StreamContent;
use arc_malachitebft_app_channel::app::types::streaming::StreamMessage;
use bytes::Bytes;
use veilwatt_verifier::types::{Block, Genesis};

use super::context::{BlockHeader, ProposalPart};

/// Transactions per proposal part.
pub const TXS_PER_PART: usize = 256;
/// Unfinished streams held per publisher; a new one evicts that publisher's oldest. An honest
/// proposer has one stream per round in flight (two across a round change or a restream).
pub const STREAMS_PER_PUBLISHER: usize = 32;
/// The bytes of a publisher's unfinished streams, in full blocks: a part that takes it beyond
/// evicts that publisher's oldest other streams.
pub const BLOCKS_PER_PUBLISHER: u64 = 2;
/// Unfinished streams held in all; beyond, the oldest stream of the publisher holding the most
/// goes.
pub const MAX_STREAMS: usize = 64;
/// Streams ended (completed, dropped or evicted) whose later parts are ignored (the oldest
/// forgotten first).
pub const ENDED_REMEMBERED: usize = 1024;

/// What one stream may carry: the genesis' block limits, as parts and bytes.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Highest part sequence number (the fin marker included).
    pub max_sequence: u64,
    /// Encoded bytes of its transactions.
    pub max_bytes: u64,
}

impl StreamLimits {
    /// The limits of `genesis`' blocks: a header, the data parts of `max_block_txs`, a fin part
    /// and the end-of-stream marker; the bytes of `max_block_bytes`.
    pub fn of(genesis: &Genesis) -> Self {
        let c = &genesis.consensus;
        Self {
            max_sequence: ((c.max_block_txs as usize).div_ceil(TXS_PER_PART) + 2) as u64,
            max_bytes: c.max_block_bytes.saturating_sub(Block::EMPTY_ENCODED_LEN),
        }
    }
}

/// Why a stream was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefusal {
    /// More parts than a block within the limits needs.
    #[error("part {0} is beyond the most a block needs")]
    TooManyParts(u64),
    /// More bytes than a block may carry.
    #[error("carries more bytes than the genesis allows in a block")]
    TooLarge,
    /// A data part with more transactions than a proposer puts in one.
    #[error("a part carries more than {TXS_PER_PART} transactions")]
    OversizedPart,
    /// The header was refused by the caller's check.
    #[error("{0}")]
    Header(String),
}

/// What a received part did.
#[derive(Debug)]
pub enum Received {
    /// The stream is not complete yet.
    Incomplete,
    /// The stream is complete: its parts, in sequence order.
    Complete(BTreeMap<u64, StreamContent<ProposalPart>>),
    /// The stream broke a limit and was dropped with everything it held.
    Dropped(StreamRefusal),
    /// A part of a stream that ended before (completed, dropped or evicted): ignored.
    Ended,
}

struct Partial {
    parts: BTreeMap<u64, StreamContent<ProposalPart>>,
    fin_at: Option<u64>,
    opened: u64,
    bytes: u64,
}

type Key = (Vec<u8>, Bytes);

/// Unfinished streams, by publisher and stream id.
pub struct Streams {
    limits: StreamLimits,
    open: BTreeMap<Key, Partial>,
    counter: u64,
    /// Streams ended, oldest first, and the same as a set.
    ended: VecDeque<Key>,
    ended_set: BTreeSet<Key>,
}

impl Streams {
    /// No stream open yet.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            open: BTreeMap::new(),
            counter: 0,
            ended: VecDeque::new(),
            ended_set: BTreeSet::new(),
        }
    }

    /// Unfinished streams held.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Unfinished streams held for `publisher`.
    pub fn held_for(&self, publisher: &[u8]) -> usize {
        self.open.keys().filter(|(p, _)| p == publisher).count()
    }

    /// Takes a part published by `publisher`. `check_header` decides on a header part as
    /// soon as it arrives; an `Err` drops the stream.
    pub fn receive(
        &mut self,
        publisher: Vec<u8>,
        part: StreamMessage<ProposalPart>,
        check_header: impl FnOnce(i64, &BlockHeader) -> Result<(), String>,
    ) -> Received {
        let key = (publisher, part.stream_id.to_bytes());
        if self.ended_set.contains(&key) {
            return Received::Ended;
        }
        if !self.open.contains_key(&key) {
            self.make_room(&key.0);
            self.counter += 1;
            self.open.insert(
                key.clone(),
                Partial {
                    parts: BTreeMap::new(),
                    fin_at: None,
                    opened: self.counter,
                    bytes: 0,
                },
            );
        }
        match self.add(&key, part, check_header) {
            Err(refusal) => {
                self.end(key);
                Received::Dropped(refusal)
            }
            Ok(false) => {
                self.within_budget(&key);
                Received::Incomplete
            }
            Ok(true) => {
                // Complete: a late copy of one of its parts must not open it again.
                let stream = self.open.remove(&key);
                self.end(key);
                match stream {
                    Some(stream) => Received::Complete(stream.parts),
                    None => Received::Incomplete,
                }
            }
        }
    }

    /// Adds a part to the open stream `key`; returns whether the stream is complete.
    fn add(
        &mut self,
        key: &Key,
        part: StreamMessage<ProposalPart>,
        check_header: impl FnOnce(i64, &BlockHeader) -> Result<(), String>,
    ) -> Result<bool, StreamRefusal> {
        let limits = self.limits;
        let Some(stream) = self.open.get_mut(key) else {
            return Ok(false);
        };
        if part.sequence > limits.max_sequence {
            return Err(StreamRefusal::TooManyParts(part.sequence));
        }
        match &part.content {
            StreamContent::Data(ProposalPart::Init { round, header, .. }) => {
                check_header(*round, header).map_err(StreamRefusal::Header)?;
            }
            StreamContent::Data(ProposalPart::Data(chunk)) => {
                if chunk.len() > TXS_PER_PART {
                    return Err(StreamRefusal::OversizedPart);
                }
                // A part sent twice counts twice: an honest proposer never repeats one.
                stream.bytes = chunk
                    .iter()
                    .fold(stream.bytes, |b, tx| b.saturating_add(tx.encoded_len()));
                if stream.bytes > limits.max_bytes {
                    return Err(StreamRefusal::TooLarge);
                }
            }
            StreamContent::Data(ProposalPart::Fin(_)) => {}
            StreamContent::Fin => stream.fin_at = Some(part.sequence),
        }
        stream.parts.insert(part.sequence, part.content);
        Ok(stream
            .fin_at
            .is_some_and(|f| (0..=f).all(|i| stream.parts.contains_key(&i))))
    }

    /// Unfinished bytes held for `publisher`.
    pub fn bytes_held_for(&self, publisher: &[u8]) -> u64 {
        self.open
            .iter()
            .filter(|((p, _), _)| p == publisher)
            .fold(0, |b, (_, s)| b.saturating_add(s.bytes))
    }

    /// Evicts the oldest other streams of `key`'s publisher while its bytes are over budget.
    fn within_budget(&mut self, key: &Key) {
        let budget = self.limits.max_bytes.saturating_mul(BLOCKS_PER_PUBLISHER);
        while self.bytes_held_for(&key.0) > budget {
            let oldest = self
                .open
                .iter()
                .filter(|(k, _)| k.0 == key.0 && *k != key)
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(oldest) => self.end(oldest),
                // One stream alone is within a block's bytes (`add`).
                None => break,
            }
        }
    }

    /// Room for one more stream of `publisher`: its own oldest goes when it holds its share,
    /// and at the total cap the oldest stream of whoever holds the most.
    fn make_room(&mut self, publisher: &[u8]) {
        if self.held_for(publisher) >= STREAMS_PER_PUBLISHER {
            self.evict_oldest_of(publisher.to_vec());
        }
        if self.open.len() >= MAX_STREAMS {
            let mut held: BTreeMap<&[u8], usize> = BTreeMap::new();
            for (p, _) in self.open.keys() {
                *held.entry(p.as_slice()).or_default() += 1;
            }
            if let Some(most) = held
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(p, _)| p.to_vec())
            {
                self.evict_oldest_of(most);
            }
        }
    }

    fn evict_oldest_of(&mut self, publisher: Vec<u8>) {
        if let Some(oldest) = self
            .open
            .iter()
            .filter(|((p, _), _)| *p == publisher)
            .min_by_key(|(_, s)| s.opened)
            .map(|(k, _)| k.clone())
        {
            self.end(oldest);
        }
    }

    /// Drops the stream `key` and ignores its later parts.
    fn end(&mut self, key: Key) {
        self.open.remove(&key);
        if self.ended_set.insert(key.clone()) {
            self.ended.push_back(key);
        }
        while self.ended.len() > ENDED_REMEMBERED {
            if let Some(old) = self.ended.pop_front() {
                self.ended_set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_app_channel::app::types::streaming::StreamId;
    use veilwatt_verifier::types::{Hash32, Transaction, TxBody, WalletKey};

    const LIMITS: StreamLimits = StreamLimits {
        max_sequence: 4,
        max_bytes: 1_000,
    };

    fn msg(
        stream: u64,
        sequence: u64,
        content: StreamContent<ProposalPart>,
    ) -> StreamMessage<ProposalPart> {
        StreamMessage::new(
            StreamId::new(Bytes::from(stream.to_be_bytes().to_vec())),
            sequence,
            content,
        )
    }

    fn init() -> StreamContent<ProposalPart> {
        StreamContent::Data(ProposalPart::Init {
            round: 0,
            pol_round: -1,
            header: BlockHeader {
                height: 1,
                prev_hash: Hash32::default(),
                time: 0,
                proposer: WalletKey([1; 32]),
                state_root: Hash32::default(),
            },
        })
    }

    /// `n` signed deposits (153 encoded bytes each).
    fn data(n: usize) -> StreamContent<ProposalPart> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let tx = |reference| {
            Transaction::sign(
                "t",
                TxBody::Deposit {
                    to: WalletKey([7; 32]),
                    amount: 1,
                    reference,
                },
                0,
                &key,
            )
        };
        StreamContent::Data(ProposalPart::Data((0..n as u64).map(tx).collect()))
    }

    fn fin() -> StreamContent<ProposalPart> {
        StreamContent::Data(ProposalPart::Fin([0; 64]))
    }

    fn ok(_: i64, _: &BlockHeader) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_stream_completes_whatever_the_order_of_its_parts() {
        let mut s = Streams::new(LIMITS);
        let p = b"honest".to_vec();
        assert!(matches!(
            s.receive(p.clone(), msg(1, 3, StreamContent::Fin), ok),
            Received::Incomplete
        ));
        assert!(matches!(
            s.receive(p.clone(), msg(1, 1, data(2)), ok),
            Received::Incomplete
        ));
        assert!(matches!(
            s.receive(p.clone(), msg(1, 2, fin()), ok),
            Received::Incomplete
        ));
        match s.receive(p, msg(1, 0, init()), ok) {
            Received::Complete(parts) => assert_eq!(parts.len(), 4),
            other => panic!("{other:?}"),
        }
        assert!(s.is_empty());
    }

    #[test]
    fn a_publisher_opening_many_streams_evicts_only_its_own() {
        // Bytes to spare: the count is the bound here.
        let mut s = Streams::new(StreamLimits {
            max_bytes: 1 << 20,
            ..LIMITS
        });
        let honest = b"honest".to_vec();
        assert!(matches!(
            s.receive(honest.clone(), msg(1, 0, init()), ok),
            Received::Incomplete
        ));
        // 65 unfinished streams from one peer (the attack the old shared cap of 64 allowed).
        for k in 0..65 {
            let r = s.receive(b"spammer".to_vec(), msg(100 + k, 1, data(1)), ok);
            assert!(matches!(r, Received::Incomplete));
        }
        assert_eq!(s.held_for(b"spammer"), STREAMS_PER_PUBLISHER);
        assert_eq!(s.held_for(&honest), 1);
        s.receive(honest.clone(), msg(1, 1, data(1)), ok);
        s.receive(honest.clone(), msg(1, 2, fin()), ok);
        assert!(matches!(
            s.receive(honest, msg(1, 3, StreamContent::Fin), ok),
            Received::Complete(_)
        ));
    }

    #[test]
    fn the_total_stays_bounded_over_many_publishers() {
        let mut s = Streams::new(LIMITS);
        for p in 0..100u64 {
            for k in 0..3 {
                s.receive(p.to_be_bytes().to_vec(), msg(k, 1, data(1)), ok);
                assert!(s.len() <= MAX_STREAMS);
            }
        }
        assert_eq!(s.len(), MAX_STREAMS);
    }

    #[test]
    fn a_stream_over_a_block_limit_is_dropped() {
        let p = || b"p".to_vec();
        let mut s = Streams::new(LIMITS);
        assert!(matches!(
            s.receive(p(), msg(1, LIMITS.max_sequence + 1, StreamContent::Fin), ok),
            Received::Dropped(StreamRefusal::TooManyParts(5))
        ));
        // 6 deposits are 918 bytes, 7 would be 1,071 (the limit is 1,000).
        s.receive(p(), msg(2, 1, data(6)), ok);
        assert!(matches!(
            s.receive(p(), msg(2, 2, data(1)), ok),
            Received::Dropped(StreamRefusal::TooLarge)
        ));
        assert!(matches!(
            s.receive(p(), msg(3, 1, data(7)), ok),
            Received::Dropped(StreamRefusal::TooLarge)
        ));
        let wide = StreamLimits {
            max_bytes: 1 << 20,
            ..LIMITS
        };
        let mut s = Streams::new(wide);
        assert!(matches!(
            s.receive(p(), msg(4, 1, data(TXS_PER_PART + 1)), ok),
            Received::Dropped(StreamRefusal::OversizedPart)
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn a_stream_with_more_transactions_than_a_block_may_carry_completes_within_the_bytes() {
        // Its block is invalid by the ledger's count rule; reassembled, validators vote
        // against it at once instead of waiting out the round.
        let limits = StreamLimits::of(&{
            let mut g: Genesis = serde_json::from_value(serde_json::json!({
                "chain_id": "t", "genesis_time": 0, "validators": [],
                "registrar": "00".repeat(32), "period_secs": 60, "gate_delay_secs": 60,
                "mechanism": "uniform",
                "fees": {"grid_fee_per_kwh": 0, "market_fee_per_kwh": 0,
                         "market_fee_buyer_share_bps": 0},
                "price_floor": 0, "price_cap": 10, "vk_id": "00".repeat(32)
            }))
            .unwrap();
            g.consensus.max_block_txs = 64;
            g
        });
        assert_eq!(limits.max_sequence, 3);
        let mut s = Streams::new(limits);
        let p = || b"p".to_vec();
        s.receive(p(), msg(1, 0, init()), ok);
        assert!(matches!(
            s.receive(p(), msg(1, 1, data(65)), ok),
            Received::Incomplete
        ));
        s.receive(p(), msg(1, 2, fin()), ok);
        match s.receive(p(), msg(1, 3, StreamContent::Fin), ok) {
            Received::Complete(parts) => assert_eq!(parts.len(), 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_header_drops_the_stream_with_what_it_held() {
        let mut s = Streams::new(LIMITS);
        s.receive(b"p".to_vec(), msg(1, 1, data(1)), ok);
        let r = s.receive(b"p".to_vec(), msg(1, 0, init()), |_, h| {
            Err(format!("height {} is too far ahead", h.height))
        });
        match r {
            Received::Dropped(StreamRefusal::Header(why)) => assert!(why.contains("too far")),
            other => panic!("{other:?}"),
        }
        assert!(s.is_empty());
        // Its later parts are ignored: they do not open it again.
        for (seq, part) in [(2, fin()), (3, StreamContent::Fin)] {
            assert!(matches!(
                s.receive(b"p".to_vec(), msg(1, seq, part), ok),
                Received::Ended
            ));
        }
        assert!(s.is_empty());
    }

    /// An equivocating proposer's flood: its real stream first, then variants whose headers are
    /// refused. Their later parts must not take the publisher's places and evict the real one.
    #[test]
    fn the_rest_of_refused_streams_does_not_evict_the_real_one() {
        let mut s = Streams::new(LIMITS);
        let p = || b"proposer".to_vec();
        s.receive(p(), msg(1, 0, init()), ok);
        for k in 0..20 {
            let r = s.receive(p(), msg(100 + k, 0, init()), |_, _| Err("held".into()));
            assert!(matches!(r, Received::Dropped(_)));
            for (seq, part) in [(1, data(1)), (2, fin()), (3, StreamContent::Fin)] {
                assert!(matches!(
                    s.receive(p(), msg(100 + k, seq, part), ok),
                    Received::Ended
                ));
            }
        }
        assert_eq!(s.held_for(&p()), 1);
        s.receive(p(), msg(1, 1, data(1)), ok);
        s.receive(p(), msg(1, 2, fin()), ok);
        assert!(matches!(
            s.receive(p(), msg(1, 3, StreamContent::Fin), ok),
            Received::Complete(_)
        ));
    }

    /// An evicted stream can never complete: its later parts are ignored, not opened again
    /// (where they would evict the next oldest).
    #[test]
    fn the_later_parts_of_an_evicted_stream_are_ignored() {
        let mut s = Streams::new(LIMITS);
        let p = || b"proposer".to_vec();
        for k in 0..=STREAMS_PER_PUBLISHER as u64 {
            s.receive(p(), msg(200 + k, 0, init()), ok);
        }
        assert_eq!(s.held_for(&p()), STREAMS_PER_PUBLISHER);
        assert!(matches!(
            s.receive(p(), msg(200, 1, data(1)), ok),
            Received::Ended
        ));
        // The others are untouched and complete.
        s.receive(p(), msg(201, 1, data(1)), ok);
        s.receive(p(), msg(201, 2, fin()), ok);
        assert!(matches!(
            s.receive(p(), msg(201, 3, StreamContent::Fin), ok),
            Received::Complete(_)
        ));
        assert_eq!(s.held_for(&p()), STREAMS_PER_PUBLISHER - 1);
    }

    /// A publisher's unfinished bytes stay within [`BLOCKS_PER_PUBLISHER`] blocks: its oldest
    /// streams go, the newest part's stream and other publishers' streams stay.
    #[test]
    fn a_publisher_over_its_bytes_loses_its_oldest_streams() {
        let mut s = Streams::new(LIMITS);
        let (p, other) = (|| b"big".to_vec(), || b"other".to_vec());
        s.receive(other(), msg(9, 1, data(6)), ok);
        // 6 deposits are 918 bytes: two such streams fit the 2,000-byte budget, a third not.
        for k in 0..2 {
            s.receive(p(), msg(k, 1, data(6)), ok);
        }
        assert_eq!(s.bytes_held_for(&p()), 2 * 918);
        s.receive(p(), msg(2, 1, data(6)), ok);
        assert_eq!(s.held_for(&p()), 2);
        assert_eq!(s.bytes_held_for(&p()), 2 * 918);
        assert!(matches!(
            s.receive(p(), msg(0, 2, fin()), ok),
            Received::Ended
        ));
        assert_eq!(s.held_for(&other()), 1);
        // Under the budget nothing goes, however many streams.
        for k in 10..20 {
            s.receive(b"small".to_vec(), msg(k, 1, data(1)), ok);
        }
        assert_eq!(s.held_for(b"small"), 10);
    }

    /// An equivocating proposer's flood: its real stream first, then many variants, all their
    /// parts interleaved. Every one completes, the real one included (with the old three places
    /// a publisher, the variants evicted it before its end arrived).
    #[test]
    fn interleaved_variants_do_not_evict_the_real_stream() {
        // Small blocks against the genesis' limit, as a flood of copies of a real block is.
        let mut s = Streams::new(StreamLimits {
            max_bytes: 1 << 20,
            ..LIMITS
        });
        let p = || b"proposer".to_vec();
        let streams: Vec<u64> = (0..19).collect();
        let mut completed = Vec::new();
        for (seq, part) in [
            (0, init as fn() -> StreamContent<ProposalPart>),
            (1, || data(1)),
            (2, fin),
            (3, || StreamContent::Fin),
        ] {
            for &k in &streams {
                if let Received::Complete(_) = s.receive(p(), msg(k, seq, part()), ok) {
                    completed.push(k);
                }
            }
        }
        assert_eq!(completed, streams);
        assert!(s.is_empty());
    }
}
