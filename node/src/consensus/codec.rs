//! The wire and WAL encoding of every consensus message, written by hand because the engine's
//! generic types have no serialization of their own in 0.8.2.
//!
//! Format: fixed-width big-endian integers, `u32` length prefixes, one tag byte per enum
//! variant. Decoding never trusts a length: a vector may claim at most as many elements as the
//! remaining bytes could hold, so a hostile peer cannot make a node allocate more than it sent.
//! Every decoder rejects trailing bytes.

use arc_malachitebft_app_channel::app::consensus::LivenessMsg;
use arc_malachitebft_app_channel::app::streaming::StreamContent;
use arc_malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use arc_malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use arc_malachitebft_signing_ed25519::Signature;
use arc_malachitebft_sync::{
    RawDecidedValue, Request, Response, Status, ValueRequest, ValueResponse,
};
use bytes::Bytes;
use veilwatt_verifier::certificate::Certificate;
use veilwatt_verifier::types::{Hash32, Signature64, WalletKey};

use super::context::{Address, BlockId, Height, Proposal, ProposalPart, Vote, VwContext};

/// A message that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {why}")]
pub struct CodecError {
    what: &'static str,
    why: String,
}

fn err(what: &'static str, why: impl Into<String>) -> CodecError {
    CodecError {
        what,
        why: why.into(),
    }
}

/// Appends canonical bytes.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.raw(b);
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    /// A length-prefixed field (domain tags, chain ids, hashes).
    pub fn tag(&mut self, b: &[u8]) {
        self.bytes(b);
    }
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads canonical bytes.
pub struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Self { b, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.b.len() < n {
            return Err(err(self.what, "truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A vector length, bounded by what the remaining bytes could hold at `min_size` each.
    fn len(&mut self, min_size: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.b.len() {
            return Err(err(self.what, "length exceeds the message"));
        }
        Ok(n)
    }
    fn end(self) -> Result<(), CodecError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(err(self.what, "trailing bytes"))
        }
    }
}

// ---- building blocks -------------------------------------------------------------------------

fn w_round(w: &mut Writer, r: Round) {
    w.i64(r.as_i64());
}
fn r_round(r: &mut Reader) -> Result<Round, CodecError> {
    match r.i64()? {
        -1 => Ok(Round::Nil),
        v if (0..=i64::from(u32::MAX)).contains(&v) => Ok(Round::new(v as u32)),
        _ => Err(err(r.what, "round out of range")),
    }
}
fn w_sig(w: &mut Writer, s: &Signature) {
    w.raw(&s.to_bytes());
}
fn r_sig(r: &mut Reader) -> Result<Signature, CodecError> {
    Ok(Signature::from_bytes(r.arr()?))
}
fn r_addr(r: &mut Reader) -> Result<Address, CodecError> {
    Ok(Address(r.arr()?))
}
fn r_id(r: &mut Reader) -> Result<BlockId, CodecError> {
    Ok(BlockId(r.arr()?))
}
fn w_nil_or_val(w: &mut Writer, v: &NilOrVal<BlockId>) {
    match v {
        NilOrVal::Nil => w.u8(0),
        NilOrVal::Val(id) => {
            w.u8(1);
            w.raw(&id.0);
        }
    }
}
fn r_nil_or_val(r: &mut Reader) -> Result<NilOrVal<BlockId>, CodecError> {
    match r.u8()? {
        0 => Ok(NilOrVal::Nil),
        1 => Ok(NilOrVal::Val(r_id(r)?)),
        _ => Err(err(r.what, "bad nil-or-value tag")),
    }
}
fn w_vote_type(w: &mut Writer, t: VoteType) {
    w.u8(match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    });
}
fn r_vote_type(r: &mut Reader) -> Result<VoteType, CodecError> {
    match r.u8()? {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        _ => Err(err(r.what, "bad vote type")),
    }
}
fn w_ext(w: &mut Writer, e: Option<&SignedMessage<VwContext, ()>>) {
    match e {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w_sig(w, &s.signature);
        }
    }
}
fn r_ext(r: &mut Reader) -> Result<Option<SignedMessage<VwContext, ()>>, CodecError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(SignedMessage::new((), r_sig(r)?))),
        _ => Err(err(r.what, "bad extension tag")),
    }
}

/// The canonical bytes of a vote without its extension: what a validator signs.
fn vote_body(w: &mut Writer, v: &Vote) {
    w_vote_type(w, v.vote_type);
    w.u64(v.height.0);
    w_round(w, v.round);
    w_nil_or_val(w, &v.value);
    w.raw(&v.validator.0);
}
fn w_vote(w: &mut Writer, v: &Vote) {
    vote_body(w, v);
    w_ext(w, v.extension.as_ref());
}
fn r_vote(r: &mut Reader) -> Result<Vote, CodecError> {
    Ok(Vote {
        vote_type: r_vote_type(r)?,
        height: Height(r.u64()?),
        round: r_round(r)?,
        value: r_nil_or_val(r)?,
        validator: r_addr(r)?,
        extension: r_ext(r)?,
    })
}

/// The canonical bytes of a proposal: what the proposer signs.
pub fn proposal_body(w: &mut Writer, p: &Proposal) {
    w.u64(p.height.0);
    w_round(w, p.round);
    w.raw(&p.value.0);
    w_round(w, p.pol_round);
    w.raw(&p.proposer.0);
}
fn r_proposal(r: &mut Reader) -> Result<Proposal, CodecError> {
    Ok(Proposal {
        height: Height(r.u64()?),
        round: r_round(r)?,
        value: r_id(r)?,
        pol_round: r_round(r)?,
        proposer: r_addr(r)?,
    })
}

fn w_signed_msg(w: &mut Writer, m: &SignedConsensusMsg<VwContext>) {
    match m {
        SignedConsensusMsg::Vote(v) => {
            w.u8(0);
            w_vote(w, &v.message);
            w_sig(w, &v.signature);
        }
        SignedConsensusMsg::Proposal(p) => {
            w.u8(1);
            proposal_body(w, &p.message);
            w_sig(w, &p.signature);
        }
    }
}
fn r_signed_msg(r: &mut Reader) -> Result<SignedConsensusMsg<VwContext>, CodecError> {
    match r.u8()? {
        0 => {
            let v = r_vote(r)?;
            Ok(SignedConsensusMsg::Vote(SignedMessage::new(v, r_sig(r)?)))
        }
        1 => {
            let p = r_proposal(r)?;
            Ok(SignedConsensusMsg::Proposal(SignedMessage::new(
                p,
                r_sig(r)?,
            )))
        }
        _ => Err(err(r.what, "bad consensus message tag")),
    }
}

fn w_polka(w: &mut Writer, c: &PolkaCertificate<VwContext>) {
    w.u64(c.height.0);
    w_round(w, c.round);
    w.raw(&c.value_id.0);
    w.len(c.polka_signatures.len());
    for s in &c.polka_signatures {
        w.raw(&s.address.0);
        w_sig(w, &s.signature);
    }
}
fn r_polka(r: &mut Reader) -> Result<PolkaCertificate<VwContext>, CodecError> {
    let height = Height(r.u64()?);
    let round = r_round(r)?;
    let value_id = r_id(r)?;
    let n = r.len(96)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        polka_signatures.push(PolkaSignature::new(r_addr(r)?, r_sig(r)?));
    }
    Ok(PolkaCertificate {
        height,
        round,
        value_id,
        polka_signatures,
    })
}

fn w_round_cert(w: &mut Writer, c: &RoundCertificate<VwContext>) {
    w.u64(c.height.0);
    w_round(w, c.round);
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 0,
        RoundCertificateType::Precommit => 1,
    });
    w.len(c.round_signatures.len());
    for s in &c.round_signatures {
        w_vote_type(w, s.vote_type);
        w_nil_or_val(w, &s.value_id);
        w.raw(&s.address.0);
        w_sig(w, &s.signature);
    }
}
fn r_round_cert(r: &mut Reader) -> Result<RoundCertificate<VwContext>, CodecError> {
    let height = Height(r.u64()?);
    let round = r_round(r)?;
    let cert_type = match r.u8()? {
        0 => RoundCertificateType::Skip,
        1 => RoundCertificateType::Precommit,
        _ => return Err(err(r.what, "bad round certificate type")),
    };
    let n = r.len(98)?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let vote_type = r_vote_type(r)?;
        let value_id = r_nil_or_val(r)?;
        round_signatures.push(RoundSignature::new(
            vote_type,
            value_id,
            r_addr(r)?,
            r_sig(r)?,
        ));
    }
    Ok(RoundCertificate {
        height,
        round,
        cert_type,
        round_signatures,
    })
}

/// Encodes a commit certificate (stored with each block, exported for audits): the verifier
/// crate's [`Certificate`] encoding, which the audit decodes.
pub fn encode_commit_certificate(c: &CommitCertificate<VwContext>) -> Vec<u8> {
    Certificate {
        height: c.height.0,
        round: c.round.as_i64(),
        block_hash: Hash32(c.value_id.0),
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| (WalletKey(s.address.0), Signature64(s.signature.to_bytes())))
            .collect(),
    }
    .encode()
}

/// Decodes a commit certificate ([`Certificate::decode`], and a round the engine knows).
pub fn decode_commit_certificate(b: &[u8]) -> Result<CommitCertificate<VwContext>, CodecError> {
    const WHAT: &str = "commit certificate";
    let c = Certificate::decode(b).map_err(|e| err(WHAT, e))?;
    let round = match c.round {
        -1 => Round::Nil,
        v => Round::new(u32::try_from(v).map_err(|_| err(WHAT, "round out of range"))?),
    };
    Ok(CommitCertificate {
        height: Height(c.height),
        round,
        value_id: BlockId(c.block_hash.0),
        commit_signatures: c
            .signatures
            .into_iter()
            .map(|(k, s)| CommitSignature::new(Address(k.0), Signature::from_bytes(s.0)))
            .collect(),
    })
}

fn w_ext_cert(w: &mut Writer, c: &ExtendedCommitCertificate<VwContext>) {
    w.u64(c.height.0);
    w_round(w, c.round);
    w.raw(&c.value_id.0);
    w.len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.raw(&s.address.0);
        w_sig(w, &s.signature);
        w_ext(w, s.extension.as_ref());
    }
}
fn r_ext_cert(r: &mut Reader) -> Result<ExtendedCommitCertificate<VwContext>, CodecError> {
    let height = Height(r.u64()?);
    let round = r_round(r)?;
    let value_id = r_id(r)?;
    let n = r.len(97)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = r_addr(r)?;
        let signature = r_sig(r)?;
        let extension = r_ext(r)?;
        commit_signatures.push(ExtendedCommitSignature::new(address, signature, extension));
    }
    Ok(ExtendedCommitCertificate {
        height,
        round,
        value_id,
        commit_signatures,
    })
}

fn w_peer(w: &mut Writer, p: &PeerId) {
    w.bytes(&p.to_bytes());
}
fn r_peer(r: &mut Reader) -> Result<PeerId, CodecError> {
    PeerId::from_bytes(r.bytes()?).map_err(|e| err(r.what, e.to_string()))
}

// ---- the codec -------------------------------------------------------------------------------

/// Veilwatt's codec for the network, sync and WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct VwCodec;

macro_rules! codec {
    ($t:ty, $what:literal, |$w:ident, $m:ident| $enc:block, |$r:ident| $dec:block) => {
        impl Codec<$t> for VwCodec {
            type Error = CodecError;

            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                let mut $r = Reader::new(&bytes, $what);
                let v = $dec;
                $r.end()?;
                Ok(v)
            }

            fn encode(&self, $m: &$t) -> Result<Bytes, CodecError> {
                let mut $w = Writer::default();
                $enc;
                Ok(Bytes::from($w.finish()))
            }
        }
    };
}

codec!(
    ProposalPart,
    "proposal part",
    |w, m| {
        w.raw(&borsh::to_vec(m).map_err(|e| err("proposal part", e.to_string()))?);
    },
    |r| {
        let all = r.take(r.b.len())?;
        borsh::from_slice::<ProposalPart>(all).map_err(|e| err("proposal part", e.to_string()))?
    }
);

codec!(
    SignedConsensusMsg<VwContext>,
    "consensus message",
    |w, m| {
        w_signed_msg(&mut w, m);
    },
    |r| { r_signed_msg(&mut r)? }
);

codec!(
    LivenessMsg<VwContext>,
    "liveness message",
    |w, m| {
        match m {
            LivenessMsg::Vote(v) => {
                w.u8(0);
                w_vote(&mut w, &v.message);
                w_sig(&mut w, &v.signature);
            }
            LivenessMsg::PolkaCertificate(c) => {
                w.u8(1);
                w_polka(&mut w, c);
            }
            LivenessMsg::SkipRoundCertificate(c) => {
                w.u8(2);
                w_round_cert(&mut w, c);
            }
        }
    },
    |r| {
        match r.u8()? {
            0 => {
                let v = r_vote(&mut r)?;
                LivenessMsg::Vote(SignedMessage::new(v, r_sig(&mut r)?))
            }
            1 => LivenessMsg::PolkaCertificate(r_polka(&mut r)?),
            2 => LivenessMsg::SkipRoundCertificate(r_round_cert(&mut r)?),
            _ => return Err(err("liveness message", "bad tag")),
        }
    }
);

codec!(
    StreamMessage<ProposalPart>,
    "stream message",
    |w, m| {
        w.bytes(&m.stream_id.to_bytes());
        w.u64(m.sequence);
        match &m.content {
            StreamContent::Data(p) => {
                w.u8(0);
                w.bytes(&borsh::to_vec(p).map_err(|e| err("stream message", e.to_string()))?);
            }
            StreamContent::Fin => w.u8(1),
        }
    },
    |r| {
        let stream_id = StreamId::new(Bytes::copy_from_slice(r.bytes()?));
        let sequence = r.u64()?;
        let content = match r.u8()? {
            0 => StreamContent::Data(
                borsh::from_slice::<ProposalPart>(r.bytes()?)
                    .map_err(|e| err("stream message", e.to_string()))?,
            ),
            1 => StreamContent::Fin,
            _ => return Err(err("stream message", "bad content tag")),
        };
        StreamMessage::new(stream_id, sequence, content)
    }
);

codec!(
    ValidatorProof<VwContext>,
    "validator proof",
    |w, m| {
        w.bytes(&m.public_key);
        w.bytes(&m.peer_id);
        w_sig(&mut w, &m.signature);
    },
    |r| {
        let public_key = r.bytes()?.to_vec();
        let peer_id = r.bytes()?.to_vec();
        ValidatorProof::new(public_key, peer_id, r_sig(&mut r)?)
    }
);

codec!(
    ProposedValue<VwContext>,
    "proposed value",
    |w, m| {
        w.u64(m.height.0);
        w_round(&mut w, m.round);
        w_round(&mut w, m.valid_round);
        w.raw(&m.proposer.0);
        w.raw(&m.value.0);
        w.u8(match m.validity {
            Validity::Valid => 1,
            Validity::Invalid => 0,
        });
    },
    |r| {
        ProposedValue {
            height: Height(r.u64()?),
            round: r_round(&mut r)?,
            valid_round: r_round(&mut r)?,
            proposer: r_addr(&mut r)?,
            value: r_id(&mut r)?,
            validity: match r.u8()? {
                1 => Validity::Valid,
                0 => Validity::Invalid,
                _ => return Err(err("proposed value", "bad validity")),
            },
        }
    }
);

codec!(
    PolkaCertificate<VwContext>,
    "polka certificate",
    |w, m| {
        w_polka(&mut w, m);
    },
    |r| { r_polka(&mut r)? }
);

codec!(
    Status<VwContext>,
    "sync status",
    |w, m| {
        w_peer(&mut w, &m.peer_id);
        w.u64(m.tip_height.0);
        w.u64(m.history_min_height.0);
    },
    |r| {
        Status {
            peer_id: r_peer(&mut r)?,
            tip_height: Height(r.u64()?),
            history_min_height: Height(r.u64()?),
        }
    }
);

codec!(
    Request<VwContext>,
    "sync request",
    |w, m| {
        let Request::ValueRequest(v) = m;
        w.u64(v.range.start().0);
        w.u64(v.range.end().0);
    },
    |r| {
        let start = Height(r.u64()?);
        let end = Height(r.u64()?);
        Request::ValueRequest(ValueRequest::new(start..=end))
    }
);

codec!(
    Response<VwContext>,
    "sync response",
    |w, m| {
        let Response::ValueResponse(v) = m;
        w.u64(v.start_height.0);
        w.len(v.values.len());
        for d in &v.values {
            w.bytes(&d.value_bytes);
            w_ext_cert(&mut w, &d.certificate);
        }
    },
    |r| {
        let start_height = Height(r.u64()?);
        let n = r.len(4 + 8 + 8 + 32 + 4)?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let value_bytes = Bytes::copy_from_slice(r.bytes()?);
            values.push(RawDecidedValue::new(value_bytes, r_ext_cert(&mut r)?));
        }
        Response::ValueResponse(ValueResponse::new(start_height, values))
    }
);

impl HasEncodedLen<Response<VwContext>> for VwCodec {
    fn encoded_len(&self, msg: &Response<VwContext>) -> Result<usize, CodecError> {
        Ok(Codec::<Response<VwContext>>::encode(self, msg)?.len())
    }
}
