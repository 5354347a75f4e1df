//! The Veilwatt instantiation of Malachite's [`Context`]: heights are block heights, addresses
//! and validator keys are the Ed25519 consensus keys of the genesis validator set, and the value
//! consensus decides on is a block hash (the block itself travels as proposal parts).

use std::fmt;

use arc_malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use arc_malachitebft_signing_ed25519::{Ed25519, PublicKey};
use borsh::{BorshDeserialize, BorshSerialize};
use veilwatt_verifier::types::{Genesis, Hash32, Transaction, WalletKey};

/// Block height as consensus sees it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its Ed25519 consensus public key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl mc::Address for Address {}

impl From<WalletKey> for Address {
    fn from(k: WalletKey) -> Self {
        Address(k.0)
    }
}

impl From<Address> for WalletKey {
    fn from(a: Address) -> Self {
        WalletKey(a.0)
    }
}

/// What consensus decides: the hash of a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub [u8; 32]);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl From<Hash32> for BlockId {
    fn from(h: Hash32) -> Self {
        BlockId(h.0)
    }
}

impl From<BlockId> for Hash32 {
    fn from(b: BlockId) -> Self {
        Hash32(b.0)
    }
}

impl mc::Value for BlockId {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        *self
    }
}

/// A validator of the genesis set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Address (= public key bytes).
    pub address: Address,
    /// Consensus key.
    pub public_key: PublicKey,
    /// Voting power.
    pub power: VotingPower,
}

impl mc::Validator<VwContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// The validator set, sorted by power (descending) then address, as the engine requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

/// Why a genesis validator set is unusable for consensus.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorSetError {
    /// A key is not a valid Ed25519 point.
    #[error("validator {0}: key is not a valid Ed25519 public key")]
    BadKey(String),
    /// The same key appears twice.
    #[error("validator key {0} appears twice")]
    Duplicate(String),
    /// Total power overflows.
    #[error("total voting power overflows")]
    PowerOverflow,
}

impl ValidatorSet {
    /// The set named by `genesis`.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, ValidatorSetError> {
        let mut validators = Vec::with_capacity(genesis.validators.len());
        for v in &genesis.validators {
            let public_key = PublicKey::from_bytes(v.key.0)
                .map_err(|_| ValidatorSetError::BadKey(v.name.clone()))?;
            validators.push(Validator {
                address: Address(v.key.0),
                public_key,
                power: v.power,
            });
        }
        let mut keys: Vec<&Address> = validators.iter().map(|v| &v.address).collect();
        keys.sort();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(ValidatorSetError::Duplicate(w[0].to_string()));
        }
        validators.sort_by(|a, b| b.power.cmp(&a.power).then(a.address.cmp(&b.address)));
        validators
            .iter()
            .try_fold(0u64, |acc, v| acc.checked_add(v.power))
            .ok_or(ValidatorSetError::PowerOverflow)?;
        Ok(Self { validators })
    }

    /// The validators, in the engine's order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
}

impl mc::ValidatorSet<VwContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.validators.iter().map(|v| v.power).sum()
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == address)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// A proposal: the block id proposed at (height, round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Proposed block id.
    pub value: BlockId,
    /// Proof-of-lock round.
    pub pol_round: Round,
    /// Proposer.
    pub proposer: Address,
}

impl mc::Proposal<VwContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockId {
        &self.value
    }
    fn take_value(self) -> BlockId {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// Voter.
    pub validator: Address,
    /// Vote extension (unused by Veilwatt; carried for the engine).
    pub extension: Option<SignedExtension<VwContext>>,
}

// Equality ignores the extension, as the engine's WAL replay requires.
impl PartialEq for Vote {
    fn eq(&self, o: &Self) -> bool {
        self.vote_type == o.vote_type
            && self.height == o.height
            && self.round == o.round
            && self.value == o.value
            && self.validator == o.validator
    }
}
impl Eq for Vote {}

impl mc::Vote<VwContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<VwContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<VwContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<VwContext>) -> Self {
        Self {
            extension: Some(extension),
            ..self
        }
    }
}

/// The header fields of a proposed block (everything but the transactions).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// Height.
    pub height: u64,
    /// Previous block hash.
    pub prev_hash: Hash32,
    /// Consensus time.
    pub time: u64,
    /// Proposer.
    pub proposer: WalletKey,
    /// State root after the block.
    pub state_root: Hash32,
}

/// A piece of a streamed proposal: the header, then transactions in chunks, then the
/// proposer's signature over (height, round, block hash) that authenticates the stream.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    /// First part.
    Init {
        /// Consensus round.
        round: i64,
        /// Proof-of-lock round (-1 for none).
        pol_round: i64,
        /// Block header.
        header: BlockHeader,
    },
    /// Transactions, in block order.
    Data(Vec<Transaction>),
    /// Last part: Ed25519 signature of the proposer over [`fin_signing_bytes`].
    Fin([u8; 64]),
}

impl mc::ProposalPart<VwContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// What the proposer signs at the end of a proposal stream.
pub fn fin_signing_bytes(chain_id: &str, height: u64, round: i64, block: &Hash32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + chain_id.len());
    b.extend_from_slice(b"veilwatt/proposal-fin/v1");
    b.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    b.extend_from_slice(chain_id.as_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&round.to_be_bytes());
    b.extend_from_slice(&block.0);
    b
}

/// The context. Carries nothing: proposer selection is a function of the set, height and round.
#[derive(Clone, Copy, Debug, Default)]
pub struct VwContext;

impl mc::Context for VwContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    /// Round-robin over the sorted set, shifted by height so that proposers rotate per block.
    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = validator_set.validators.len() as u64;
        let r = round.as_u32().map_or(0, u64::from);
        let i = (height.0.wrapping_add(r)) % n.max(1);
        &validator_set.validators[i as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}
