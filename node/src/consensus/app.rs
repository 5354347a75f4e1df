//! The application side of the Malachite engine: answers the engine's requests with Veilwatt
//! blocks. Proposals travel as parts (header, transaction chunks, a signed fin); every
//! validator checks a proposed block in full before its vote, and a decided block is written
//! durably with its certificate before the engine hears that the commit is done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_malachitebft_app_channel::app::consensus::VoteExtensionVerdicts;
use arc_malachitebft_app_channel::app::engine::consensus::{ConsensusRef, Msg as EngineMsg};
use arc_malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use arc_malachitebft_app_channel::app::streaming::StreamContent;
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context, ExtendedCommitCertificate, ExtendedCommitSignature, LinearTimeouts,
    Round, SignedProposal, Validity, ValueOrigin,
};
use arc_malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use arc_malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use arc_malachitebft_signing_ed25519::{PublicKey, Signature};
use arc_malachitebft_sync::RawDecidedValue;
use bytes::Bytes;
use tokio::sync::mpsc;
use veilwatt_verifier::ledger::Applied;
use veilwatt_verifier::types::{decode, encode, Block, Hash32, WalletKey};

use super::codec::{decode_commit_certificate, encode_commit_certificate};
use super::context::{
    fin_signing_bytes, Address, BlockHeader, BlockId, Height, ProposalPart, ValidatorSet, VwContext,
};
use super::signing::{proposal_signing_bytes, VwSigner};
use super::streams::{Received, StreamLimits, Streams, TXS_PER_PART};
use crate::core::{now_secs, NodeCore};

/// Heights beyond the next one whose proposals are still taken (a validator a block behind
/// its peers); a proposal further ahead is dropped on its header.
const HEIGHT_WINDOW: u64 = 2;
/// Rounds beyond the current one whose proposals are taken (round 0 at a height not started).
const ROUND_WINDOW: u32 = 4;
/// Distinct proposals of one proposer and round that are checked as they complete. An honest
/// proposer sends one. An equivocating one streams several, and the engine decides on the
/// value its signed `Proposal` message names; past this many, a round's blocks are parked
/// unchecked until that message names one of them (see [`App::named`]), so the cost of a flood
/// stays bounded: each block is hashed, and at most this many plus the named one are checked
/// and persisted, all dropped when the height commits.
const PROPOSALS_PER_ROUND: usize = 4;
/// Blocks parked unchecked (complete proposals past [`PROPOSALS_PER_ROUND`]), in all, and
/// their bytes in full blocks; beyond either a new one is dropped.
const PARKED_MAX: usize = 32;
const PARKED_BLOCKS: u64 = 4;
/// Signed `Proposal` messages waiting for the application (the engine's event channel holds
/// 128 events of every kind; a task moves the proposals here as they pass).
const NAMED_QUEUE: usize = 256;
/// Most bytes of blocks in one value-sync response (one block is always sent: the genesis
/// bounds a block below the engine's 10 MiB response limit).
const SYNC_RESPONSE_BYTES: u64 = veilwatt_verifier::types::MAX_BLOCK_BYTES_BOUND;

/// Consensus timing and limits.
#[derive(Clone, Copy, Debug)]
pub struct AppSettings {
    /// Target time between blocks.
    pub block_interval: Duration,
    /// Most transactions per block this validator proposes (the genesis bounds it too).
    pub max_block_txs: usize,
    /// Base propose timeout.
    pub propose_timeout: Duration,
    /// Base prevote and precommit timeouts (LinearTimeouts' other defaults apply).
    pub vote_timeout: Duration,
}

/// A block seen at the current height (proposed by us, received, synced or recovered).
struct Candidate {
    block: Block,
    /// Round and valid round it was proposed in, if known.
    round: Option<(Round, Round)>,
    proposer: Address,
    /// The state it produces, once checked valid.
    next: Option<Applied>,
    validity: Option<Validity>,
    /// Its place in the order candidates reached this validator. Those that arrive before their
    /// height starts go to the engine in this order, first come first served, as live ones do:
    /// the engine keeps two values a round, and an equivocating proposer's real block, sent
    /// first, must not lose its place to variants that sort before it by id.
    arrived: u64,
    /// Whether its verdict went to the engine.
    handed: bool,
}

/// A complete proposal whose fin carries its round proposer's signature, not yet checked. Past
/// its round's [`PROPOSALS_PER_ROUND`] it is parked: held unchecked until the proposer's signed
/// `Proposal` names it (then checked and handed to the engine) or its height commits (then
/// dropped, or taken if it is what was decided).
struct Complete {
    block: Block,
    round: Round,
    pol_round: Round,
    proposer: Address,
}

/// The engine's signed `Proposal` messages as they arrive, and the engine itself, which takes
/// a value the application hands it unasked (what a part's reply carries, sent on its own):
/// the way a block checked after its last part arrived reaches consensus.
pub struct EngineLink {
    /// Signed proposals the engine received (not yet verified).
    pub proposals: mpsc::Receiver<SignedProposal<VwContext>>,
    /// The engine's consensus actor, if it was found.
    pub consensus: Option<ConsensusRef<VwContext>>,
}

impl EngineLink {
    /// Follows `events` for received proposals, and takes `consensus` for hand-offs.
    pub fn new(
        mut events: arc_malachitebft_app_channel::app::events::RxEvent<VwContext>,
        consensus: Option<ConsensusRef<VwContext>>,
    ) -> Self {
        use arc_malachitebft_app_channel::app::consensus::SignedConsensusMsg;
        use arc_malachitebft_app_channel::app::engine::util::events::Event;
        use tokio::sync::broadcast::error::RecvError;
        let (tx, proposals) = mpsc::channel(NAMED_QUEUE);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Received(SignedConsensusMsg::Proposal(p))) => {
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(p) {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "consensus events passed unread");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Self {
            proposals,
            consensus,
        }
    }
}

/// The application.
pub struct App {
    core: Arc<NodeCore>,
    signer: VwSigner,
    address: Address,
    validators: ValidatorSet,
    timeouts: LinearTimeouts,
    settings: AppSettings,
    last_commit: Instant,
    candidates: BTreeMap<BlockId, Candidate>,
    streams: Streams,
    /// The id of the last proposal stream sent (with the height); starts at the clock's
    /// microseconds.
    stream_counter: u64,
    /// Candidates received so far (their [`Candidate::arrived`]).
    arrivals: u64,
    /// The height and round consensus is in.
    current: (u64, Round),
    /// The block each round's proposer named in its signed `Proposal` (the first whose
    /// signature checks), for the heights of the window. A block so named is checked and handed
    /// to the engine whatever the bound on a round's proposals; others beyond the first are
    /// not handed unasked, so an equivocating proposer's variants cannot fill the two places
    /// the engine keeps a round before its real block arrives.
    named: BTreeMap<(u64, Round), BlockId>,
    parked: BTreeMap<BlockId, Complete>,
    parked_bytes: u64,
    /// The engine's consensus actor (`None`: values only go to it as replies).
    engine: Option<ConsensusRef<VwContext>>,
}

fn block_from_parts(
    parts: &BTreeMap<u64, StreamContent<ProposalPart>>,
) -> Option<(Block, Round, Round, Signature)> {
    let mut header = None;
    let mut txs = Vec::new();
    let mut fin = None;
    for content in parts.values() {
        match content {
            StreamContent::Data(ProposalPart::Init {
                round,
                pol_round,
                header: h,
            }) if header.is_none() => header = Some((*round, *pol_round, h.clone())),
            StreamContent::Data(ProposalPart::Data(chunk)) if header.is_some() => {
                txs.extend(chunk.iter().cloned())
            }
            StreamContent::Data(ProposalPart::Fin(sig)) if header.is_some() => fin = Some(*sig),
            StreamContent::Fin => {}
            _ => return None,
        }
    }
    let (round, pol_round, h) = header?;
    let fin = fin?;
    let to_round = |r: i64| match r {
        -1 => Some(Round::Nil),
        r => u32::try_from(r).ok().map(Round::new),
    };
    let block = Block {
        height: h.height,
        prev_hash: h.prev_hash,
        time: h.time,
        proposer: h.proposer,
        txs,
        state_root: h.state_root,
    };
    Some((
        block,
        to_round(round)?,
        to_round(pol_round)?,
        Signature::from_bytes(fin),
    ))
}

impl App {
    /// An application for `core`, signing with `signer`.
    pub fn new(core: Arc<NodeCore>, signer: VwSigner, settings: AppSettings) -> Self {
        let address = Address(signer.public_key().as_bytes().to_owned());
        let streams = Streams::new(StreamLimits::of(core.genesis));
        Self {
            validators: core.validators.clone(),
            core,
            signer,
            address,
            timeouts: LinearTimeouts {
                propose: settings.propose_timeout,
                prevote: settings.vote_timeout,
                precommit: settings.vote_timeout,
                // As the engine's defaults derive it: the three steps of a round.
                rebroadcast: settings.propose_timeout + settings.vote_timeout * 2,
                ..LinearTimeouts::default()
            },
            settings,
            last_commit: Instant::now(),
            candidates: BTreeMap::new(),
            streams,
            // Unique across restarts: peers ignore the later parts of a stream id they saw end
            // (streams.rs), so a restarted proposer must not reuse the ids it sent before.
            stream_counter: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            arrivals: 0,
            current: (0, Round::Nil),
            named: BTreeMap::new(),
            parked: BTreeMap::new(),
            parked_bytes: 0,
            engine: None,
        }
    }

    fn params(&self) -> HeightParams<VwContext> {
        HeightParams::new(self.validators.clone(), self.timeouts, None)
    }

    fn next_height(&self) -> u64 {
        self.core.tip().height + 1
    }

    /// Runs until the engine stops (its end closes the channel). The node stops the engine
    /// first ([`super::ConsensusHandle::stop`]), so the application answers every request the
    /// engine makes until then, and the message in hand is always finished (a decided block is
    /// committed completely).
    pub async fn run(mut self, mut channels: Channels<VwContext>, link: EngineLink) {
        let EngineLink {
            mut proposals,
            consensus,
        } = link;
        if consensus.is_none() {
            tracing::warn!("the engine's consensus actor was not found: blocks checked after their last part wait for the next one");
        }
        self.engine = consensus;
        let mut following = true;
        loop {
            tokio::select! {
                msg = channels.consensus.recv() => match msg {
                    Some(msg) => self.handle(msg, &mut channels).await,
                    None => break,
                },
                p = proposals.recv(), if following => match p {
                    Some(p) => self.named_proposal(p).await,
                    None => following = false,
                },
            }
        }
        tracing::info!("consensus application stopped");
    }

    async fn handle(&mut self, msg: AppMsg<VwContext>, channels: &mut Channels<VwContext>) {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let h = Height(self.next_height());
                tracing::info!(height = %h, "consensus ready");
                self.recover_pending(h.0);
                let _ = reply.send((h, self.params()));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                tracing::debug!(%height, %round, %proposer, ?role, "started round");
                self.current = (height.0, round);
                #[cfg(feature = "byzantine")]
                if self.core.byzantine.get() == Some(&crate::byzantine::Mode::OpenStreams) {
                    self.open_streams(channels).await;
                }
                self.validate_known(height.0).await;
                let named = self.named.get(&(height.0, round)).copied();
                let values = values_known(&self.candidates, named, height, round);
                for v in &values {
                    if let Some(c) = self.candidates.get_mut(&v.value) {
                        c.handed = true;
                    }
                }
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                if let Some(id) = self.propose(height, round, timeout).await {
                    let _ = reply.send(LocallyProposedValue::new(height, round, id));
                    self.publish(id, round, Round::Nil, channels).await;
                }
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let verdicts: VoteExtensionVerdicts<VwContext> =
                    extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect();
                let _ = reply.send(verdicts);
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                if self
                    .candidates
                    .get(&value_id)
                    .is_some_and(|c| c.block.height == height.0)
                {
                    self.publish(value_id, round, valid_round, channels).await;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let value = self.received_part(from, published_by, part).await;
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                self.decided(&certificate).await;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let committed = self.core.tip().height;
                let next = if committed >= certificate.height.0 {
                    Next::Start(Height(committed + 1), self.params())
                } else {
                    tracing::error!(height = %certificate.height, "decided block not committed; restarting the height");
                    Next::Restart(Height(committed + 1), self.params())
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range.start().0, range.end().0));
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self.synced(height, round, proposer, value_bytes).await;
                let _ = reply.send(outcome);
            }
        }
    }

    /// The next place in arrival order ([`Candidate::arrived`]).
    fn arrival(&mut self) -> u64 {
        self.arrivals += 1;
        self.arrivals
    }

    /// Blocks written as pending before a crash become candidates again.
    fn recover_pending(&mut self, height: u64) {
        match self.core.store.pending(height) {
            Ok(blocks) => {
                for block in blocks {
                    let id = BlockId::from(block.hash());
                    let arrived = self.arrival();
                    self.candidates.entry(id).or_insert(Candidate {
                        proposer: Address(block.proposer.0),
                        block,
                        round: None,
                        next: None,
                        validity: None,
                        arrived,
                        handed: false,
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read pending blocks"),
        }
    }

    /// Validates candidates of `height` not yet checked (received early or recovered).
    async fn validate_known(&mut self, height: u64) {
        if height != self.next_height() {
            return;
        }
        let mut ids: Vec<(u64, BlockId)> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.block.height == height && c.validity.is_none())
            .map(|(id, c)| (c.arrived, *id))
            .collect();
        ids.sort_unstable();
        for (_, id) in ids {
            if let Some(c) = self.candidates.get(&id) {
                let block = c.block.clone();
                let (validity, next) = self.validate(block, true).await;
                if let Some(c) = self.candidates.get_mut(&id) {
                    c.validity = Some(validity);
                    c.next = next;
                }
            }
        }
    }

    /// Checks `block` against the committed state; a `live` proposal (not yet decided by a
    /// quorum) must also carry a time within the genesis' clock skew of this validator's
    /// clock, either way.
    async fn validate(&self, block: Block, live: bool) -> (Validity, Option<Applied>) {
        if live {
            let skew = self.core.genesis.consensus.max_clock_skew_secs;
            let now = now_secs();
            if block.time.abs_diff(now) > skew {
                tracing::warn!(
                    height = block.height,
                    block_time = block.time,
                    now,
                    skew,
                    "invalid block; voting against it: its time is off this validator's clock \
                     by more than the genesis' max_clock_skew_secs"
                );
                self.core.metrics.proposals_refused.inc();
                return (Validity::Invalid, None);
            }
        }
        let core = Arc::clone(&self.core);
        let height = block.height;
        match tokio::task::spawn_blocking(move || core.validate_block(&block)).await {
            Ok(Ok(next)) => (Validity::Valid, Some(next)),
            Ok(Err(e)) => {
                tracing::warn!(height, error = %e, "invalid block; voting against it");
                if live {
                    self.core.metrics.proposals_refused.inc();
                }
                (Validity::Invalid, None)
            }
            Err(e) => {
                tracing::error!(height, error = %e, "validation panicked");
                (Validity::Invalid, None)
            }
        }
    }

    async fn propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
    ) -> Option<BlockId> {
        // A restarted round re-proposes the block already built for it.
        if let Some((id, _)) = self.candidates.iter().find(|(_, c)| {
            c.block.height == height.0
                && c.proposer == self.address
                && c.round.is_some_and(|(r, _)| r == round)
        }) {
            return Some(*id);
        }
        // Steady cadence: wait for the block interval, but never past half the timeout.
        let due = self.last_commit + self.settings.block_interval;
        let latest = Instant::now() + timeout / 2;
        tokio::time::sleep_until(due.min(latest).into()).await;

        let core = Arc::clone(&self.core);
        let proposer = WalletKey(self.address.0);
        let max = self.settings.max_block_txs;
        let built = tokio::task::spawn_blocking(move || {
            core.build_block(height.0, now_secs(), proposer, max)
        })
        .await;
        let (block, next) = match built {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(%height, error = %e, "cannot build a block");
                return None;
            }
            Err(e) => {
                tracing::error!(%height, error = %e, "block building panicked");
                return None;
            }
        };
        #[cfg(feature = "byzantine")]
        let block = self.misbehave(block);
        if let Err(e) = self.core.store.put_pending(&block) {
            tracing::error!(error = %e, "cannot persist the proposed block");
            return None;
        }
        let id = BlockId::from(block.hash());
        tracing::debug!(%height, %round, txs = block.txs.len(), "proposing");
        let arrived = self.arrival();
        self.candidates.insert(
            id,
            Candidate {
                block,
                round: Some((round, Round::Nil)),
                proposer: self.address,
                next: Some(next),
                validity: Some(Validity::Valid),
                arrived,
                // The engine has it as this validator's own value.
                handed: true,
            },
        );
        Some(id)
    }

    async fn publish(
        &mut self,
        id: BlockId,
        round: Round,
        pol_round: Round,
        channels: &mut Channels<VwContext>,
    ) {
        let Some(c) = self.candidates.get(&id) else {
            return;
        };
        if self.validators.validators().len() == 1 {
            // Nobody else needs the parts.
            return;
        }
        let parts = self.proposal_parts(&c.block, round, pol_round);
        #[cfg(feature = "byzantine")]
        let flood = (self.core.byzantine.get() == Some(&crate::byzantine::Mode::ProposalFlood))
            .then(|| c.block.clone());
        self.send_stream(parts, channels).await;
        #[cfg(feature = "byzantine")]
        if let Some(block) = flood {
            self.flood(block, round, channels).await;
        }
    }

    /// The parts of `block`'s proposal in `round`: header, transaction chunks, signed fin.
    fn proposal_parts(&self, b: &Block, round: Round, pol_round: Round) -> Vec<ProposalPart> {
        let id = BlockId::from(b.hash());
        let mut parts = vec![ProposalPart::Init {
            round: round.as_i64(),
            pol_round: pol_round.as_i64(),
            header: BlockHeader {
                height: b.height,
                prev_hash: b.prev_hash,
                time: b.time,
                proposer: b.proposer,
                state_root: b.state_root,
            },
        }];
        parts.extend(
            b.txs
                .chunks(TXS_PER_PART)
                .map(|c| ProposalPart::Data(c.to_vec())),
        );
        let sig = self.signer.sign_bytes(&fin_signing_bytes(
            &self.core.genesis.chain_id,
            b.height,
            round.as_i64(),
            &Hash32(id.0),
        ));
        parts.push(ProposalPart::Fin(sig.to_bytes()));
        parts
    }

    /// Publishes `parts` as one stream (with a fresh id) closed by its end marker.
    async fn send_stream(&mut self, parts: Vec<ProposalPart>, channels: &mut Channels<VwContext>) {
        self.stream_counter += 1;
        let mut sid = self.next_height().to_be_bytes().to_vec();
        sid.extend_from_slice(&self.stream_counter.to_be_bytes());
        let stream_id = StreamId::new(Bytes::from(sid));
        let n = parts.len() as u64;
        let messages = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| StreamMessage::new(stream_id.clone(), i as u64, StreamContent::Data(p)))
            .chain(std::iter::once(StreamMessage::new(
                stream_id.clone(),
                n,
                StreamContent::Fin,
            )));
        for m in messages {
            if channels
                .network
                .send(NetworkMsg::PublishProposalPart(m))
                .await
                .is_err()
            {
                tracing::warn!("network channel closed while publishing a proposal");
                return;
            }
        }
    }

    /// Test-only ([`crate::byzantine::Mode::ProposalFlood`]): after its proposal, many other
    /// signed proposals for the same round, and some for a height a million blocks ahead.
    #[cfg(feature = "byzantine")]
    async fn flood(&mut self, block: Block, round: Round, channels: &mut Channels<VwContext>) {
        tracing::warn!(height = block.height, %round, "byzantine: flooding proposals");
        for k in 1..=crate::byzantine::FLOOD_PER_ROUND {
            let mut variant = block.clone();
            variant.time += k;
            if k.is_multiple_of(4) {
                variant.height += 1_000_000;
            }
            let parts = self.proposal_parts(&variant, round, Round::Nil);
            self.send_stream(parts, channels).await;
        }
    }

    /// Test-only ([`crate::byzantine::Mode::OpenStreams`]): streams that never finish, each
    /// a lone data part, to crowd out the round's honest proposal.
    #[cfg(feature = "byzantine")]
    async fn open_streams(&mut self, channels: &mut Channels<VwContext>) {
        let pad = crate::byzantine::padding(&self.core.genesis.chain_id, 1);
        for _ in 0..crate::byzantine::OPEN_STREAMS_PER_ROUND {
            self.stream_counter += 1;
            let mut sid = self.next_height().to_be_bytes().to_vec();
            sid.extend_from_slice(&self.stream_counter.to_be_bytes());
            let m = StreamMessage::new(
                StreamId::new(Bytes::from(sid)),
                1,
                StreamContent::Data(ProposalPart::Data(pad.clone())),
            );
            if channels
                .network
                .send(NetworkMsg::PublishProposalPart(m))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Test-only: what a Byzantine proposer changes in the block it built.
    #[cfg(feature = "byzantine")]
    fn misbehave(&self, mut block: Block) -> Block {
        use crate::byzantine::{padding, Mode, TIME_SHIFT_SECS};
        match self.core.byzantine.get() {
            Some(Mode::OversizedBlock) => {
                let max = self.core.genesis.consensus.max_block_txs as usize;
                let n = (max + 1).saturating_sub(block.txs.len());
                block.txs.extend(padding(&self.core.genesis.chain_id, n));
                tracing::warn!(
                    height = block.height,
                    txs = block.txs.len(),
                    "byzantine: oversized block"
                );
            }
            Some(Mode::BackdatedTime) => {
                block.time = now_secs().saturating_sub(TIME_SHIFT_SECS);
                tracing::warn!(height = block.height, "byzantine: back-dated block");
            }
            Some(Mode::ForwardDatedTime) => {
                block.time = now_secs() + TIME_SHIFT_SECS;
                tracing::warn!(height = block.height, "byzantine: forward-dated block");
            }
            _ => {}
        }
        block
    }

    async fn received_part(
        &mut self,
        from: PeerId,
        published_by: Option<PeerId>,
        part: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<VwContext>> {
        let publisher = published_by.unwrap_or(from).to_bytes();
        let next_height = self.next_height();
        let Self {
            streams,
            current,
            validators,
            ..
        } = self;
        let received = streams.receive(publisher, part, |round, header| {
            header_acceptable(*current, validators, next_height, round, header)
        });
        self.core
            .metrics
            .proposal_streams_held
            .set(self.streams.len() as i64);
        let parts = match received {
            Received::Incomplete | Received::Ended => return None,
            Received::Dropped(why) => {
                tracing::warn!(%from, reason = %why, "dropped a proposal stream");
                self.core.metrics.proposal_streams_dropped.inc();
                return None;
            }
            Received::Complete(parts) => parts,
        };
        let chain_id = self.core.genesis.chain_id.clone();
        let (block, round, pol_round, sig) = block_from_parts(&parts)?;
        let id = BlockId::from(block.hash());

        // The stream must come from the round's proposer, and carry its signature.
        let height = Height(block.height);
        let expected = VwContext.select_proposer(&self.validators, height, round);
        if expected.address.0 != block.proposer.0 {
            tracing::warn!(%height, %round, "proposal from a validator that is not the proposer");
            return None;
        }
        let pk: &PublicKey = &expected.public_key;
        let msg = fin_signing_bytes(&chain_id, block.height, round.as_i64(), &Hash32(id.0));
        if pk.verify(&msg, &sig).is_err() {
            tracing::warn!(%height, %round, "proposal stream with a bad proposer signature");
            return None;
        }
        let next_height = self.next_height();
        if block.height < next_height {
            return None;
        }
        let proposer = expected.address;
        let proposed = |validity| ProposedValue {
            height,
            round,
            valid_round: pol_round,
            proposer,
            value: id,
            validity,
        };
        let named = self.named.get(&(block.height, round)) == Some(&id);
        if let Some(known) = self.candidates.get_mut(&id) {
            // A restream of a block already checked: its verdict stands, for the engine if it
            // had it or its round's `Proposal` names it.
            let give = known.handed || named;
            known.handed |= give && known.validity.is_some();
            return known.validity.filter(|_| give).map(proposed);
        }
        let held = proposals_held(&self.candidates, block.height, round, &proposer);
        if held > 0 {
            tracing::warn!(%height, %round, %proposer, "the proposer equivocates: a second, different proposal for one round");
        }
        let complete = Complete {
            block,
            round,
            pol_round,
            proposer,
        };
        if held >= PROPOSALS_PER_ROUND && !named {
            self.park(id, complete);
            return None;
        }
        let (validity, handed) = self
            .check(id, complete, to_engine(held == 0, named))
            .await?;
        validity.filter(|_| handed).map(proposed)
    }

    /// Checks a received proposal (if its height is the next one), persists it as pending and
    /// keeps it as a candidate; `to_engine` says whether its verdict goes to the engine.
    /// Returns the verdict and whether it goes (`None`: it could not be persisted).
    async fn check(
        &mut self,
        id: BlockId,
        complete: Complete,
        to_engine: bool,
    ) -> Option<(Option<Validity>, bool)> {
        let Complete {
            block,
            round,
            pol_round,
            proposer,
        } = complete;
        let (validity, next) = if block.height == self.next_height() {
            let (v, n) = self.validate(block.clone(), true).await;
            (Some(v), n)
        } else {
            (None, None)
        };
        if let Err(e) = self.core.store.put_pending(&block) {
            tracing::error!(error = %e, "cannot persist a received proposal");
            return None;
        }
        let arrived = self.arrival();
        let handed = to_engine && validity.is_some();
        self.candidates.insert(
            id,
            Candidate {
                block,
                round: Some((round, pol_round)),
                proposer,
                next,
                validity,
                arrived,
                handed,
            },
        );
        self.core
            .metrics
            .candidates
            .set(self.candidates.len() as i64);
        Some((validity, handed))
    }

    /// Holds a complete proposal past its round's bound, unchecked, if there is room.
    fn park(&mut self, id: BlockId, complete: Complete) {
        if self.parked.contains_key(&id) {
            return;
        }
        let Complete {
            ref block,
            round,
            ref proposer,
            ..
        } = complete;
        let bytes = block.encoded_len();
        let budget = self
            .core
            .genesis
            .consensus
            .max_block_bytes
            .saturating_mul(PARKED_BLOCKS);
        if self.parked.len() >= PARKED_MAX || self.parked_bytes.saturating_add(bytes) > budget {
            tracing::warn!(height = block.height, %round, %proposer, "more proposals for one round than are kept; dropped");
            self.core.metrics.proposal_streams_dropped.inc();
            return;
        }
        tracing::debug!(height = block.height, %round, %proposer, %id, "proposal parked until its round's Proposal names it");
        self.parked_bytes += bytes;
        self.parked.insert(id, complete);
        self.core
            .metrics
            .proposals_parked
            .set(self.parked.len() as i64);
    }

    /// Takes a parked block back (to check it or to commit it).
    fn unpark(&mut self, id: &BlockId) -> Option<Complete> {
        let p = self.parked.remove(id)?;
        self.parked_bytes = self.parked_bytes.saturating_sub(p.block.encoded_len());
        self.core
            .metrics
            .proposals_parked
            .set(self.parked.len() as i64);
        Some(p)
    }

    /// A signed `Proposal` the engine received: if its signature is the round's proposer's,
    /// the block it names is checked (if parked) and handed to the engine (if not yet).
    async fn named_proposal(&mut self, signed: SignedProposal<VwContext>) {
        let chain_id = &self.core.genesis.chain_id;
        let next = self.next_height();
        let (height, round, id) =
            match followed_proposal(chain_id, &self.validators, self.current, next, &signed) {
                Ok(named) => named,
                Err(why) => {
                    tracing::debug!(reason = %why, "a Proposal not followed");
                    return;
                }
            };
        // The first stands: a second is the proposer's equivocation, the engine's to report.
        if self.named.contains_key(&(height, round)) {
            return;
        }
        self.named.insert((height, round), id);
        if let Some(parked) = self.unpark(&id) {
            tracing::info!(height, %round, %id, "the round's Proposal names a parked proposal; checking it");
            if self.check(id, parked, false).await.is_none() {
                return;
            }
        }
        self.hand(id);
    }

    /// Hands a checked candidate of the current height to the engine unasked, once.
    fn hand(&mut self, id: BlockId) {
        let current = self.current.0;
        let Some(c) = self.candidates.get_mut(&id) else {
            return;
        };
        let (Some(validity), Some((round, valid_round))) = (c.validity, c.round) else {
            return;
        };
        if c.handed || c.block.height != current {
            return;
        }
        let Some(engine) = &self.engine else { return };
        let value = ProposedValue {
            height: Height(c.block.height),
            round,
            valid_round,
            proposer: c.proposer,
            value: id,
            validity,
        };
        match engine.send_message(EngineMsg::ReceivedProposedValue(
            value,
            ValueOrigin::Consensus,
        )) {
            Ok(()) => c.handed = true,
            Err(e) => tracing::warn!(error = %e, "cannot hand a value to the engine"),
        }
    }

    async fn decided(&mut self, certificate: &CommitCertificate<VwContext>) {
        let height = certificate.height.0;
        let committed = self.core.tip().height;
        if height <= committed {
            return;
        }
        if height != committed + 1 {
            tracing::error!(height, committed, "decided a height beyond the next one");
            return;
        }
        let id = certificate.value_id;
        if let Some(p) = self.unpark(&id) {
            // Decided by a quorum that saw its `Proposal`; this validator had only parked it.
            let arrived = self.arrival();
            self.candidates.entry(id).or_insert(Candidate {
                block: p.block,
                round: Some((p.round, p.pol_round)),
                proposer: p.proposer,
                next: None,
                validity: None,
                arrived,
                handed: false,
            });
        }
        if !self.candidates.contains_key(&id) {
            self.recover_pending(height);
        }
        let Some(c) = self.candidates.get(&id) else {
            tracing::error!(height, %id, "decided block is unknown to this node");
            return;
        };
        let (block, next) = match &c.next {
            Some(next) => (c.block.clone(), next.clone()),
            None => {
                let block = c.block.clone();
                match self.validate(block.clone(), false).await {
                    (Validity::Valid, Some(next)) => (block, next),
                    _ => {
                        tracing::error!(height, %id, "decided block does not apply to the state");
                        return;
                    }
                }
            }
        };
        let core = Arc::clone(&self.core);
        let cert = encode_commit_certificate(certificate);
        let result =
            tokio::task::spawn_blocking(move || core.commit(&block, next, &cert).map(|_| block))
                .await;
        match result {
            Ok(Ok(block)) => {
                tracing::info!(height, txs = block.txs.len(), hash = %id, "committed");
                self.last_commit = Instant::now();
                self.candidates.retain(|_, c| c.block.height > height);
                self.parked.retain(|_, p| p.block.height > height);
                self.parked_bytes = self.parked.values().map(|p| p.block.encoded_len()).sum();
                self.core
                    .metrics
                    .proposals_parked
                    .set(self.parked.len() as i64);
                self.named.retain(|(h, _), _| *h > height);
                self.core
                    .metrics
                    .candidates
                    .set(self.candidates.len() as i64);
            }
            Ok(Err(e)) => tracing::error!(height, error = %e, "commit failed"),
            Err(e) => tracing::error!(height, error = %e, "commit panicked"),
        }
    }

    fn decided_values(&self, from: u64, to: u64) -> Vec<RawDecidedValue<VwContext>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let top = self.core.tip().height;
        for h in from.max(1)..=to.min(top) {
            let (Ok(Some(block)), Ok(Some(cert))) =
                (self.core.store.block(h), self.core.store.certificate(h))
            else {
                break;
            };
            // A response always fits the engine's limit: at least one block, then as many as
            // fit in the budget.
            bytes = bytes.saturating_add(block.encoded_len());
            if !out.is_empty() && bytes > SYNC_RESPONSE_BYTES {
                break;
            }
            let Ok(cert) = decode_commit_certificate(&cert) else {
                break;
            };
            let certificate = ExtendedCommitCertificate {
                height: cert.height,
                round: cert.round,
                value_id: cert.value_id,
                commit_signatures: cert
                    .commit_signatures
                    .into_iter()
                    .map(|s| ExtendedCommitSignature::new(s.address, s.signature, None))
                    .collect(),
            };
            out.push(RawDecidedValue::new(
                Bytes::from(encode(&block)),
                certificate,
            ));
        }
        out
    }

    async fn synced(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        value_bytes: Bytes,
    ) -> SyncedValueOutcome<VwContext> {
        let Ok(block) = decode::<Block>(&value_bytes) else {
            return SyncedValueOutcome::PeerFault;
        };
        if block.height != height.0 || block.proposer.0 != proposer.0 {
            return SyncedValueOutcome::PeerFault;
        }
        if block.height != self.next_height() {
            return SyncedValueOutcome::LocalTransientError;
        }
        let id = BlockId::from(block.hash());
        let (validity, next) = self.validate(block.clone(), false).await;
        self.core
            .synced_to
            .store(height.0, std::sync::atomic::Ordering::Relaxed);
        let arrived = self.arrival();
        self.candidates.insert(
            id,
            Candidate {
                block,
                round: Some((round, Round::Nil)),
                proposer,
                next,
                validity: Some(validity),
                arrived,
                handed: true,
            },
        );
        SyncedValueOutcome::Verdict(ProposedValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer,
            value: id,
            validity,
        })
    }
}

/// Whether a checked candidate goes to the engine unasked: the first of its proposer's round,
/// whatever its verdict (so that a round whose one block is invalid gets its nil prevotes at
/// once), and the one the round's signed `Proposal` names. The engine keeps two values a
/// round, the `Proposal` included, and cannot take the real block once two others hold its
/// places: an equivocating proposer's variants, arriving before its real block and its
/// `Proposal` (gossip does not keep their order), would fail its round.
fn to_engine(first: bool, named: bool) -> bool {
    first || named
}

/// The checked candidates of `height` and `round` that go to the engine ([`to_engine`]; `named`:
/// what the round's `Proposal` names), in the order they arrived ([`Candidate::arrived`]).
fn values_known(
    candidates: &BTreeMap<BlockId, Candidate>,
    named: Option<BlockId>,
    height: Height,
    round: Round,
) -> Vec<ProposedValue<VwContext>> {
    let mut known: Vec<(&BlockId, &Candidate)> = candidates
        .iter()
        .filter(|(_, c)| {
            c.block.height == height.0
                && c.round.is_some_and(|(r, _)| r == round)
                && c.validity.is_some()
        })
        .collect();
    known.sort_unstable_by_key(|(_, c)| c.arrived);
    known
        .into_iter()
        .enumerate()
        .filter(|(k, (id, _))| to_engine(*k == 0, named == Some(**id)))
        .map(|(_, (id, c))| ProposedValue {
            height,
            round,
            valid_round: c.round.map_or(Round::Nil, |(_, v)| v),
            proposer: c.proposer,
            value: *id,
            validity: c.validity.unwrap_or(Validity::Invalid),
        })
        .collect()
}

/// Whether a proposal stream with this header may be reassembled: a height from the next
/// one to [`HEIGHT_WINDOW`] beyond, a round at most [`ROUND_WINDOW`] past the current one,
/// and the proposer of that round. (How many of a round's proposals are checked is decided
/// when they complete: the one its `Proposal` names may be any of them.)
fn header_acceptable(
    current: (u64, Round),
    validators: &ValidatorSet,
    next: u64,
    round: i64,
    header: &BlockHeader,
) -> Result<(), String> {
    let round = in_window(current, next, header.height, round)?;
    let expected = VwContext.select_proposer(validators, Height(header.height), round);
    if expected.address.0 != header.proposer.0 {
        return Err(format!(
            "{} is not the proposer of height {} round {round}",
            header.proposer, header.height
        ));
    }
    Ok(())
}

/// The round, if `height` is from the `next` one to [`HEIGHT_WINDOW`] beyond and `round` at
/// most [`ROUND_WINDOW`] past the `current` one (round 0 at a height not started).
fn in_window(current: (u64, Round), next: u64, height: u64, round: i64) -> Result<Round, String> {
    if height < next {
        return Err(format!("height {height} is already decided"));
    }
    if height > next.saturating_add(HEIGHT_WINDOW) {
        return Err(format!(
            "height {height} is more than {HEIGHT_WINDOW} beyond the next one ({next})"
        ));
    }
    let round = u32::try_from(round).map_err(|_| format!("round {round} is not a round"))?;
    let current = match current {
        (h, r) if h == height => r.as_u32().unwrap_or(0),
        _ => 0,
    };
    if round > current.saturating_add(ROUND_WINDOW) {
        return Err(format!(
            "round {round} is more than {ROUND_WINDOW} beyond the current one ({current})"
        ));
    }
    Ok(Round::new(round))
}

/// The height, round and block a signed `Proposal` names, if it is within the window and
/// signed by its round's proposer (the engine checks it too, after the application sees it).
fn followed_proposal(
    chain_id: &str,
    validators: &ValidatorSet,
    current: (u64, Round),
    next: u64,
    signed: &SignedProposal<VwContext>,
) -> Result<(u64, Round, BlockId), String> {
    let p = &signed.message;
    let round = in_window(current, next, p.height.0, p.round.as_i64())?;
    let expected = VwContext.select_proposer(validators, p.height, round);
    if expected.address != p.proposer {
        return Err(format!(
            "{} is not the proposer of height {} round {round}",
            p.proposer, p.height
        ));
    }
    let msg = proposal_signing_bytes(chain_id, p);
    if expected.public_key.verify(&msg, &signed.signature).is_err() {
        return Err("its signature is not its proposer's".into());
    }
    Ok((p.height.0, round, p.value))
}

/// Proposals of `proposer` for `height`, `round` held.
fn proposals_held(
    candidates: &BTreeMap<BlockId, Candidate>,
    height: u64,
    round: Round,
    proposer: &Address,
) -> usize {
    candidates
        .values()
        .filter(|c| {
            c.block.height == height
                && &c.proposer == proposer
                && c.round.is_some_and(|(r, _)| r == round)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use veilwatt_verifier::types::{Genesis, Validator};

    /// Four validators; the genesis fields other than the set do not matter here.
    fn validators() -> ValidatorSet {
        let mut g: Genesis = serde_json::from_value(serde_json::json!({
            "chain_id": "t", "genesis_time": 0, "validators": [],
            "registrar": "00".repeat(32), "period_secs": 60, "gate_delay_secs": 60,
            "mechanism": "uniform",
            "fees": {"grid_fee_per_kwh": 0, "market_fee_per_kwh": 0, "market_fee_buyer_share_bps": 0},
            "price_floor": 0, "price_cap": 10, "vk_id": "00".repeat(32)
        }))
        .unwrap();
        g.validators = (1..=4u8)
            .map(|i| {
                let k = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
                Validator {
                    name: format!("v{i}"),
                    key: WalletKey(k.verifying_key().to_bytes()),
                    power: 1,
                }
            })
            .collect();
        ValidatorSet::from_genesis(&g).unwrap()
    }

    fn header(set: &ValidatorSet, height: u64, round: u32) -> BlockHeader {
        let p = VwContext.select_proposer(set, Height(height), Round::new(round));
        BlockHeader {
            height,
            prev_hash: Hash32::default(),
            time: 0,
            proposer: WalletKey(p.address.0),
            state_root: Hash32::default(),
        }
    }

    #[test]
    fn a_header_outside_the_window_or_not_from_the_proposer_is_refused() {
        let set = validators();
        let at =
            |current, round: i64, h: &BlockHeader| header_acceptable(current, &set, 10, round, h);
        let current = (10, Round::new(1));
        // The next height in the round window, and up to two heights ahead.
        assert!(at(current, 5, &header(&set, 10, 5)).is_ok());
        assert!(at(current, 4, &header(&set, 12, 4)).is_ok());
        // Decided, too far ahead, a round too far, a negative round.
        assert!(at(current, 0, &header(&set, 9, 0))
            .unwrap_err()
            .contains("already decided"));
        let far = at(current, 0, &header(&set, 13, 0)).unwrap_err();
        assert!(far.contains("more than 2 beyond"), "{far}");
        let late = at(current, 6, &header(&set, 10, 6)).unwrap_err();
        assert!(
            late.contains("more than 4 beyond the current one (1)"),
            "{late}"
        );
        assert!(at(current, 5, &header(&set, 12, 5)).is_err());
        assert!(at(current, -1, &header(&set, 10, 0)).is_err());
        // Another validator's header for the round.
        let mut other = header(&set, 10, 1);
        other.proposer = header(&set, 10, 2).proposer;
        assert!(at(current, 1, &other)
            .unwrap_err()
            .contains("not the proposer"));
    }

    /// Only a `Proposal` signed by its round's proposer, within the window, names a block.
    #[test]
    fn a_proposal_is_followed_only_when_its_proposer_signed_it_within_the_window() {
        use arc_malachitebft_app_channel::app::types::core::SignedMessage;
        use arc_malachitebft_signing_ed25519::PrivateKey;
        let set = validators();
        let key_of = |address: &Address| {
            (1..=4u8)
                .map(|i| PrivateKey::from([i; 32]))
                .find(|k| k.public_key().as_bytes() == &address.0)
                .unwrap()
        };
        let proposal = |height: u64, round: u32| {
            let proposer = VwContext
                .select_proposer(&set, Height(height), Round::new(round))
                .address;
            super::super::context::Proposal {
                height: Height(height),
                round: Round::new(round),
                value: id(9),
                pol_round: Round::Nil,
                proposer,
            }
        };
        let signed = |p: super::super::context::Proposal, key: &PrivateKey| {
            let sig = key.sign(&proposal_signing_bytes("t", &p));
            SignedMessage::new(p, sig)
        };
        let current = (10, Round::new(1));
        let follow = |s: &SignedProposal<VwContext>| followed_proposal("t", &set, current, 10, s);
        let p = proposal(10, 2);
        let right = key_of(&p.proposer);
        assert_eq!(
            follow(&signed(p.clone(), &right)).unwrap(),
            (10, Round::new(2), id(9))
        );
        // Signed by another validator, or for another chain, or altered after signing.
        let other = (1..=4u8)
            .map(|i| PrivateKey::from([i; 32]))
            .find(|k| k.public_key().as_bytes() != &p.proposer.0)
            .unwrap();
        assert!(follow(&signed(p.clone(), &other))
            .unwrap_err()
            .contains("not its proposer's"));
        let elsewhere = SignedMessage::new(p.clone(), right.sign(&proposal_signing_bytes("u", &p)));
        assert!(follow(&elsewhere).is_err());
        let mut altered = signed(p.clone(), &right);
        altered.message.value = id(8);
        assert!(follow(&altered).is_err());
        // Named as proposer a validator who is not the round's, signed by that one.
        let mut wrong = proposal(10, 2);
        wrong.proposer = proposal(10, 3).proposer;
        let by_wrong = key_of(&wrong.proposer);
        assert!(follow(&signed(wrong, &by_wrong))
            .unwrap_err()
            .contains("not the proposer"));
        // Outside the window: decided, too far ahead, a round too far.
        for (h, r) in [(9, 0), (13, 0), (10, 6)] {
            let p = proposal(h, r);
            let k = key_of(&p.proposer);
            assert!(follow(&signed(p, &k)).is_err(), "height {h} round {r}");
        }
    }

    fn candidate(arrived: u64, round: u32, validity: Option<Validity>) -> Candidate {
        Candidate {
            block: Block {
                height: 7,
                prev_hash: Hash32::default(),
                time: arrived,
                proposer: WalletKey([1; 32]),
                txs: vec![],
                state_root: Hash32::default(),
            },
            round: Some((Round::new(round), Round::Nil)),
            proposer: Address([1; 32]),
            next: None,
            validity,
            arrived,
            handed: false,
        }
    }

    fn id(k: u8) -> BlockId {
        BlockId::from(Hash32([k; 32]))
    }

    /// The values a round starts with are in arrival order, not id order: an equivocating
    /// proposer's variant that arrived first keeps its place before the named block.
    #[test]
    fn values_known_before_a_round_go_to_the_engine_in_arrival_order() {
        let mut held = BTreeMap::new();
        // Ids sort against arrival: the first to arrive has the highest id.
        for (k, arrived) in [(1u8, 4), (2, 3), (3, 2), (9, 1)] {
            held.insert(id(k), candidate(arrived, 0, Some(Validity::Valid)));
        }
        // Another round, another height, and one not yet checked stay out.
        held.insert(id(4), candidate(0, 1, Some(Validity::Valid)));
        held.insert(id(5), {
            let mut c = candidate(0, 0, Some(Validity::Valid));
            c.block.height = 8;
            c
        });
        held.insert(id(6), candidate(0, 0, None));
        let order = |named| -> Vec<u8> {
            values_known(&held, named, Height(7), Round::new(0))
                .iter()
                .map(|v| v.value.0[0])
                .collect()
        };
        assert_eq!(order(Some(id(1))), vec![9, 1]);
        assert_eq!(order(Some(id(9))), vec![9]);
        // Unnamed yet: only the first.
        assert_eq!(order(None), vec![9]);
        // Named but not checked (or not held): the first alone.
        assert_eq!(order(Some(id(6))), vec![9]);
    }

    /// Of a round's proposals the engine gets the first whatever its verdict, and the one its
    /// `Proposal` names whatever its verdict; no other, valid or not: variants, valid ones
    /// included, must not take the places its signed `Proposal` and real block need.
    #[test]
    fn only_the_first_and_the_named_proposal_go_to_the_engine() {
        let held: BTreeMap<BlockId, Candidate> = [
            (1u8, Validity::Invalid),
            (2, Validity::Valid),
            (3, Validity::Valid),
            (4, Validity::Invalid),
        ]
        .into_iter()
        .map(|(k, v)| (id(k), candidate(k as u64, 0, Some(v))))
        .collect();
        let sent = |named| -> Vec<(u8, Validity)> {
            values_known(&held, named, Height(7), Round::new(0))
                .iter()
                .map(|v| (v.value.0[0], v.validity))
                .collect()
        };
        assert_eq!(sent(None), vec![(1, Validity::Invalid)]);
        assert_eq!(
            sent(Some(id(3))),
            vec![(1, Validity::Invalid), (3, Validity::Valid)]
        );
        assert_eq!(
            sent(Some(id(4))),
            vec![(1, Validity::Invalid), (4, Validity::Invalid)]
        );
        assert!(to_engine(true, false) && to_engine(false, true) && to_engine(true, true));
        assert!(!to_engine(false, false));
    }
}
