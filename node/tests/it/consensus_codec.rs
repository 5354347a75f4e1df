//! The consensus wire codec and signing: every message type round-trips; every truncation,
//! trailing byte and inflated length is refused without panicking; signatures are bound to
//! their purpose, their chain and their content.

use arc_malachitebft_app_channel::app::consensus::LivenessMsg;
use arc_malachitebft_app_channel::app::streaming::StreamContent;
use arc_malachitebft_app_channel::app::types::codec::Codec;
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, Validity, VoteType,
};
use arc_malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::{
    Keypair, PeerId, ProposedValue, SignedConsensusMsg,
};
use arc_malachitebft_app_channel::{Signer, Verifier};
use arc_malachitebft_signing_ed25519::PrivateKey;
use arc_malachitebft_sync::{
    RawDecidedValue, Request, Response, Status, ValueRequest, ValueResponse,
};
use bytes::Bytes;
use veilwatt_node::consensus::codec::{
    decode_commit_certificate, encode_commit_certificate, VwCodec,
};
use veilwatt_node::consensus::context::*;
use veilwatt_node::consensus::signing::{VwSigner, VwVerifier};
use veilwatt_verifier::types::{Hash32, WalletKey};

fn signer(chain: &str) -> VwSigner {
    VwSigner::new(chain.into(), PrivateKey::from([7u8; 32]))
}

fn addr(s: &VwSigner) -> Address {
    Address(*s.public_key().as_bytes())
}

fn vote(a: Address) -> Vote {
    Vote {
        vote_type: VoteType::Precommit,
        height: Height(9),
        round: Round::new(2),
        value: NilOrVal::Val(BlockId([5; 32])),
        validator: a,
        extension: None,
    }
}

fn proposal(a: Address) -> Proposal {
    Proposal {
        height: Height(9),
        round: Round::new(2),
        value: BlockId([5; 32]),
        pol_round: Round::Nil,
        proposer: a,
    }
}

fn peer() -> PeerId {
    let kp = Keypair::ed25519_from_bytes([3u8; 32]).unwrap();
    PeerId::from_bytes(&kp.public().to_peer_id().to_bytes()).unwrap()
}

/// Round trip, then every strict prefix and one trailing byte must be refused.
fn check<T, C>(codec: &C, msg: &T)
where
    C: Codec<T>,
    T: PartialEq + std::fmt::Debug,
{
    let bytes = codec.encode(msg).unwrap();
    assert_eq!(&codec.decode(bytes.clone()).unwrap(), msg);
    for n in 0..bytes.len() {
        assert!(
            codec.decode(bytes.slice(..n)).is_err(),
            "prefix of {n} bytes decoded"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(
        codec.decode(Bytes::from(longer)).is_err(),
        "trailing byte accepted"
    );
}

#[tokio::test]
async fn every_message_round_trips_and_truncations_are_refused() {
    let s = signer("codec");
    let a = addr(&s);
    let sig = s.sign_bytes(b"x");

    let v = s.sign_vote(vote(a)).await.unwrap();
    check::<SignedConsensusMsg<VwContext>, _>(&VwCodec, &SignedConsensusMsg::Vote(v.clone()));
    let p = s.sign_proposal(proposal(a)).await.unwrap();
    check::<SignedConsensusMsg<VwContext>, _>(&VwCodec, &SignedConsensusMsg::Proposal(p));

    let mut extended = vote(a);
    extended.extension = Some(SignedMessage::new((), sig));
    extended.value = NilOrVal::Nil;
    let ev = SignedMessage::new(extended, sig);
    check::<LivenessMsg<VwContext>, _>(&VwCodec, &LivenessMsg::Vote(ev));
    let polka = PolkaCertificate {
        height: Height(9),
        round: Round::new(1),
        value_id: BlockId([1; 32]),
        polka_signatures: vec![PolkaSignature::new(a, sig); 3],
    };
    check::<LivenessMsg<VwContext>, _>(&VwCodec, &LivenessMsg::PolkaCertificate(polka.clone()));
    check::<PolkaCertificate<VwContext>, _>(&VwCodec, &polka);
    let skip = RoundCertificate {
        height: Height(9),
        round: Round::new(4),
        cert_type: RoundCertificateType::Skip,
        round_signatures: vec![
            RoundSignature::new(VoteType::Prevote, NilOrVal::Nil, a, sig),
            RoundSignature::new(VoteType::Precommit, NilOrVal::Val(BlockId([2; 32])), a, sig),
        ],
    };
    check::<LivenessMsg<VwContext>, _>(&VwCodec, &LivenessMsg::SkipRoundCertificate(skip));

    let header = BlockHeader {
        height: 9,
        prev_hash: Hash32([1; 32]),
        time: 1_800_000_000,
        proposer: WalletKey(a.0),
        state_root: Hash32([2; 32]),
    };
    for part in [
        ProposalPart::Init {
            round: 2,
            pol_round: -1,
            header,
        },
        ProposalPart::Data(vec![]),
        ProposalPart::Fin(sig.to_bytes()),
    ] {
        check::<ProposalPart, _>(&VwCodec, &part);
        let m = StreamMessage::new(
            StreamId::new(Bytes::from_static(b"sid")),
            3,
            StreamContent::Data(part),
        );
        check::<StreamMessage<ProposalPart>, _>(&VwCodec, &m);
    }
    let fin = StreamMessage::new(
        StreamId::new(Bytes::from_static(b"sid")),
        4,
        StreamContent::<ProposalPart>::Fin,
    );
    check::<StreamMessage<ProposalPart>, _>(&VwCodec, &fin);

    check::<ProposedValue<VwContext>, _>(
        &VwCodec,
        &ProposedValue {
            height: Height(9),
            round: Round::new(0),
            valid_round: Round::Nil,
            proposer: a,
            value: BlockId([4; 32]),
            validity: Validity::Invalid,
        },
    );
    check::<Status<VwContext>, _>(
        &VwCodec,
        &Status {
            peer_id: peer(),
            tip_height: Height(10),
            history_min_height: Height(1),
        },
    );
    check::<Request<VwContext>, _>(
        &VwCodec,
        &Request::ValueRequest(ValueRequest::new(Height(3)..=Height(7))),
    );
    let cert = ExtendedCommitCertificate {
        height: Height(3),
        round: Round::new(0),
        value_id: BlockId([6; 32]),
        commit_signatures: vec![
            ExtendedCommitSignature::new(a, sig, None),
            ExtendedCommitSignature::new(a, sig, Some(SignedMessage::new((), sig))),
        ],
    };
    check::<Response<VwContext>, _>(
        &VwCodec,
        &Response::ValueResponse(ValueResponse::new(
            Height(3),
            vec![RawDecidedValue::new(Bytes::from_static(b"block"), cert)],
        )),
    );
    let proof = s
        .sign_validator_proof(a.0.to_vec(), peer().to_bytes())
        .await
        .unwrap();
    check(&VwCodec, &proof);

    let commit = CommitCertificate {
        height: Height(3),
        round: Round::new(1),
        value_id: BlockId([6; 32]),
        commit_signatures: vec![CommitSignature::new(a, sig); 4],
    };
    let bytes = encode_commit_certificate(&commit);
    assert_eq!(decode_commit_certificate(&bytes).unwrap(), commit);
    for n in 0..bytes.len() {
        assert!(decode_commit_certificate(&bytes[..n]).is_err());
    }
}

#[test]
fn an_inflated_length_is_refused_before_allocating() {
    // A commit certificate claiming 2^32-1 signatures in a 60-byte message.
    let mut b = Vec::new();
    b.extend_from_slice(&3u64.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&[6; 32]);
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_commit_certificate(&b).is_err());
    // A round outside u32 is refused too.
    let mut r = b.clone();
    r[8..16].copy_from_slice(&(i64::from(u32::MAX) + 1).to_be_bytes());
    assert!(decode_commit_certificate(&r).is_err());
}

#[tokio::test]
async fn signatures_are_bound_to_purpose_chain_and_content() {
    let s = signer("chain-a");
    let a = addr(&s);
    let pk = s.public_key();
    let ours = VwVerifier::new("chain-a".into());
    let other_chain = VwVerifier::new("chain-b".into());

    let v = s.sign_vote(vote(a)).await.unwrap();
    assert!(ours
        .verify_signed_vote(&v.message, &v.signature, &pk)
        .await
        .unwrap()
        .is_valid());
    assert!(other_chain
        .verify_signed_vote(&v.message, &v.signature, &pk)
        .await
        .unwrap()
        .is_invalid());
    let mut changed = vote(a);
    changed.value = NilOrVal::Nil;
    assert!(ours
        .verify_signed_vote(&changed, &v.signature, &pk)
        .await
        .unwrap()
        .is_invalid());
    let mut prevote = vote(a);
    prevote.vote_type = VoteType::Prevote;
    assert!(ours
        .verify_signed_vote(&prevote, &v.signature, &pk)
        .await
        .unwrap()
        .is_invalid());
    // The extension is not part of what a vote signs (the engine's WAL replay relies on it).
    let mut ext = vote(a);
    ext.extension = Some(SignedMessage::new((), v.signature));
    assert!(ours
        .verify_signed_vote(&ext, &v.signature, &pk)
        .await
        .unwrap()
        .is_valid());

    let p = s.sign_proposal(proposal(a)).await.unwrap();
    assert!(ours
        .verify_signed_proposal(&p.message, &p.signature, &pk)
        .await
        .unwrap()
        .is_valid());
    assert!(other_chain
        .verify_signed_proposal(&p.message, &p.signature, &pk)
        .await
        .unwrap()
        .is_invalid());
    // A proposal signature is not a vote signature.
    assert!(ours
        .verify_signed_vote(&v.message, &p.signature, &pk)
        .await
        .unwrap()
        .is_invalid());

    let proof = s
        .sign_validator_proof(a.0.to_vec(), peer().to_bytes())
        .await
        .unwrap();
    assert!(ours
        .verify_validator_proof(&proof)
        .await
        .unwrap()
        .is_valid());
    let mut forged = proof.clone();
    forged.peer_id[5] ^= 1;
    assert!(ours
        .verify_validator_proof(&forged)
        .await
        .unwrap()
        .is_invalid());
    let mut short_key = proof;
    short_key.public_key.pop();
    assert!(ours
        .verify_validator_proof(&short_key)
        .await
        .unwrap()
        .is_invalid());
}

use crate::common;

#[test]
fn validator_set_is_sorted_and_refuses_duplicates() {
    use arc_malachitebft_app_channel::app::types::core::Context as _;
    let mut g = common::genesis("set", 60, 30);
    let k = |b: u8| common::wallet(&common::key(b));
    g.validators = vec![
        veilwatt_verifier::types::Validator {
            name: "a".into(),
            key: k(1),
            power: 1,
        },
        veilwatt_verifier::types::Validator {
            name: "b".into(),
            key: k(2),
            power: 3,
        },
        veilwatt_verifier::types::Validator {
            name: "c".into(),
            key: k(3),
            power: 1,
        },
    ];
    let set = ValidatorSet::from_genesis(&g).unwrap();
    let powers: Vec<u64> = set.validators().iter().map(|v| v.power).collect();
    assert_eq!(powers, vec![3, 1, 1]);
    assert!(set.validators()[1].address < set.validators()[2].address);
    // Proposers rotate through the whole set.
    let proposers: std::collections::BTreeSet<Address> = (0..3)
        .map(|h| {
            VwContext
                .select_proposer(&set, Height(h), Round::new(0))
                .address
        })
        .collect();
    assert_eq!(proposers.len(), 3);
    g.validators[2].key = k(1);
    assert!(matches!(
        ValidatorSet::from_genesis(&g),
        Err(ValidatorSetError::Duplicate(_))
    ));
}
