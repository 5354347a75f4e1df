//! Ed25519 signing and verification of consensus messages, domain-separated by purpose and by
//! chain id so that no signature can be replayed as another kind of message or on another chain.

use arc_malachitebft_app_channel::app::types::core::{
    SignedMessage, ValidatorProof, VoteExtensionScope,
};
use arc_malachitebft_app_channel::{Signer, Verifier};
use arc_malachitebft_signing::{Error as SigningError, VerificationResult};
use arc_malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};
use async_trait::async_trait;

use arc_malachitebft_app_channel::app::types::core::{NilOrVal, VoteType};
use veilwatt_verifier::certificate;
use veilwatt_verifier::types::{Hash32, WalletKey};

use super::codec::{proposal_body, Writer};
use super::context::{Proposal, Vote, VwContext};

fn domain(purpose: &str, chain_id: &str) -> Writer {
    let mut w = Writer::default();
    w.tag(purpose.as_bytes());
    w.tag(chain_id.as_bytes());
    w
}

/// What a validator signs for a vote: the verifier crate's definition
/// ([`certificate::vote_signing_bytes`]), which the audit checks commit certificates with.
pub fn vote_signing_bytes(chain_id: &str, vote: &Vote) -> Vec<u8> {
    certificate::vote_signing_bytes(
        chain_id,
        &certificate::VoteBody {
            vote_type: match vote.vote_type {
                VoteType::Prevote => certificate::VoteType::Prevote,
                VoteType::Precommit => certificate::VoteType::Precommit,
            },
            height: vote.height.0,
            round: vote.round.as_i64(),
            value: match &vote.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(Hash32(id.0)),
            },
            validator: WalletKey(vote.validator.0),
        },
    )
}

/// What a proposer signs for a proposal.
pub fn proposal_signing_bytes(chain_id: &str, p: &Proposal) -> Vec<u8> {
    let mut w = domain("veilwatt/proposal/v1", chain_id);
    proposal_body(&mut w, p);
    w.finish()
}

fn extension_signing_bytes(chain_id: &str, scope: &VoteExtensionScope<VwContext>) -> Vec<u8> {
    let mut w = domain("veilwatt/vote-extension/v1", chain_id);
    w.tag(&scope.height.0.to_be_bytes());
    w.tag(&scope.round.as_i64().to_be_bytes());
    w.tag(&scope.value_id.0);
    w.tag(&scope.validator_address.0);
    w.finish()
}

fn verdict(pk: &PublicKey, msg: &[u8], sig: &Signature) -> VerificationResult {
    VerificationResult::from_bool(pk.verify(msg, sig).is_ok())
}

/// Verifies consensus signatures for one chain.
#[derive(Clone, Debug)]
pub struct VwVerifier {
    chain_id: String,
}

impl VwVerifier {
    /// A verifier for `chain_id`.
    pub fn new(chain_id: String) -> Self {
        Self { chain_id }
    }
}

#[async_trait]
impl Verifier<VwContext> for VwVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verdict(
            public_key,
            &vote_signing_bytes(&self.chain_id, vote),
            signature,
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verdict(
            public_key,
            &proposal_signing_bytes(&self.chain_id, proposal),
            signature,
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<VwContext>,
        _extension: &(),
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verdict(
            public_key,
            &extension_signing_bytes(&self.chain_id, scope),
            signature,
        ))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<VwContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(bytes) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        let Ok(pk) = PublicKey::from_bytes(bytes) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(verdict(&pk, &proof.preimage(), &proof.signature))
    }
}

/// Signs consensus messages with a validator's key.
#[derive(Clone)]
pub struct VwSigner {
    key: PrivateKey,
    verifier: VwVerifier,
}

impl VwSigner {
    /// A signer for `chain_id` with `key`.
    pub fn new(chain_id: String, key: PrivateKey) -> Self {
        Self {
            key,
            verifier: VwVerifier::new(chain_id),
        }
    }

    /// Signs raw bytes (proposal stream fin parts).
    pub fn sign_bytes(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

#[async_trait]
impl Signer<VwContext> for VwSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<VwContext, Vote>, SigningError> {
        let sig = self
            .key
            .sign(&vote_signing_bytes(&self.verifier.chain_id, &vote));
        Ok(SignedMessage::new(vote, sig))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<VwContext, Proposal>, SigningError> {
        let sig = self
            .key
            .sign(&proposal_signing_bytes(&self.verifier.chain_id, &proposal));
        Ok(SignedMessage::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<VwContext>,
        extension: (),
    ) -> Result<SignedMessage<VwContext, ()>, SigningError> {
        let sig = self
            .key
            .sign(&extension_signing_bytes(&self.verifier.chain_id, &scope));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<VwContext>, SigningError> {
        let sig = self.key.sign(&ValidatorProof::<VwContext>::signing_bytes(
            &public_key,
            &peer_id,
        ));
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}
