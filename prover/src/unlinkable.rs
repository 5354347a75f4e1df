//! Unlinkable orders on the household's side (docs/spec/ledger.md, "Unlinkable orders"): from
//! a statement its meter signed for this market, the household's nullifier key and its
//! registry path to an `UnlinkableOrder` transaction that names neither meter nor wallet, with
//! a buy's escrow paid from the household's notes by a join-split bound to the order.

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, ProvingKey};
use ark_snark::SNARK;
use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use veilwatt_circuits::joinsplit::Spend;
use veilwatt_circuits::note::Note;
use veilwatt_circuits::order_v2::{
    check_relation, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness,
};
use veilwatt_circuits::registry::{self, MemoryRegistry, RegistryError, RegistryPath};
use veilwatt_circuits::statement::SignedPeriodStatement;
use veilwatt_params::qap::SnarkjsReduction;
use veilwatt_params::KeyId;
use veilwatt_verifier::clearing::buy_escrow;
use veilwatt_verifier::types::{
    cancel_commitment, escrow_binding, order_terms_hash, Escrow, FieldBytes, Genesis, Hash32,
    Millis, NoteOutput, NoteTarget, Side, Transaction, TxBody,
};
use veilwatt_verifier::{Groth16Proof, UnlinkableOrderVerifier, VerifyError, PROOF_BYTES};

use crate::household::UnlinkableTerms;
use crate::notes::{NoteBook, NotesError};
use crate::spend::SpendProver;
use crate::ProveError;

/// The meter registry as the ledger's public leaves give it (`GET /v1/registry/leaves`, in
/// position order): a zero leaf is a revoked enrolment.
pub fn registry_from_leaves(leaves: &[Fr]) -> Result<MemoryRegistry, RegistryError> {
    let mut r = MemoryRegistry::new();
    for leaf in leaves {
        if *leaf == Fr::from(0u64) {
            let p = r.enrol(Fr::from(1u64))?;
            r.revoke(u64::from(p))?;
        } else {
            r.enrol(*leaf)?;
        }
    }
    Ok(r)
}

/// The live position of `leaf` in `registry` (a meter has at most one live leaf; a
/// re-enrolled meter's earlier ones are revoked).
pub fn position_of(registry: &MemoryRegistry, leaf: Fr) -> Option<u64> {
    (0..registry.size())
        .rev()
        .find(|p| registry.leaf(*p) == leaf)
}

/// A buy order's escrow, before its proof: the notes it spends and makes.
#[derive(Clone, Debug)]
pub struct EscrowRequest {
    /// The recent note-tree root the inputs' paths lead to.
    pub anchor: Fr,
    /// The notes spent (either may be [`Spend::dummy`]).
    pub inputs: [Spend; 2],
    /// The notes made (change, dummy), each with its memo.
    pub outputs: [(Note, Vec<u8>); 2],
    /// The escrow: the order's maximum cost, millis.
    pub amount: Millis,
    /// The spend's fee, millis.
    pub fee: Millis,
}

/// An unlinkable order, before its proofs.
#[derive(Clone, Debug)]
pub struct UnlinkableOrderRequest {
    /// The market's id (`Genesis::market_id`).
    pub market: Fr,
    /// The household's nullifier key.
    pub nk: Fr,
    /// The meter's registry path.
    pub path: RegistryPath,
    /// The registry root the path leads to (one of the ledger's recent roots).
    pub registry_root: Fr,
    /// The meter's statement for the period, signed for this market.
    pub statement: SignedPeriodStatement,
    /// Sell or buy.
    pub side: Side,
    /// Quantity, Wh.
    pub quantity_wh: u32,
    /// Limit price, minor units per kWh.
    pub limit_price: u64,
    /// Where proceeds or the unused escrow go.
    pub payout: NoteTarget,
    /// Commitment to the household's cancel key.
    pub cancel_commit: Hash32,
    /// A buy's escrow.
    pub escrow: Option<EscrowRequest>,
}

/// Why an unlinkable order cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The market takes no unlinkable orders (its genesis has no registry or no pool).
    #[error(
        "this market takes no unlinkable orders (its genesis has no registry or no note pool)"
    )]
    NotAnonymous,
    /// The meter has no live leaf in the registry.
    #[error(
        "this household's meter is not enrolled for unlinkable orders (or its enrolment was \
         revoked): give the registrar what `veilwatt-prover enrolment` prints"
    )]
    NotEnrolled,
    /// The registry rebuilt from the node's leaves has a root the node does not accept.
    #[error("the registry's root is not among the node's valid recent roots; try again")]
    StaleRegistry,
    /// The registry gives no path for the meter's live position (a bug in the registry).
    #[error("no registry path for the meter's position")]
    NoPath,
    /// The household's notes cannot pay a buy's escrow.
    #[error("paying the buy order's escrow from the household's notes: {0}")]
    Escrow(#[from] NotesError),
}

/// An unlinkable order ready to prove, with what only the household keeps of it.
#[derive(Clone, Debug)]
pub struct OrderPlan {
    /// The order to prove.
    pub request: UnlinkableOrderRequest,
    /// Its payout target, cancel key and escrow (for the household's order record).
    pub terms: UnlinkableTerms,
}

/// Plans an unlinkable order of market `g` from the household's `statement` (signed for this
/// market): its meter's path in `registry` (rebuilt from the public leaves; its root must be
/// one of `recent_roots`), a fresh payout target and cancel key, and for a buy an escrow of
/// its maximum cost (`buy_escrow`) paid from `book`'s notes with the pool's smallest fee.
/// Addresses handed out are consumed from `book` (save it even if proving fails).
#[allow(clippy::too_many_arguments)]
pub fn plan_order<R: RngCore + CryptoRng>(
    g: &Genesis,
    book: &mut NoteBook,
    registry: &MemoryRegistry,
    recent_roots: &[FieldBytes],
    statement: SignedPeriodStatement,
    side: Side,
    quantity_wh: u32,
    limit_price: u64,
    rng: &mut R,
) -> Result<OrderPlan, PlanError> {
    let (Some(_), Some(pool)) = (&g.anonymous, &g.shielded) else {
        return Err(PlanError::NotAnonymous);
    };
    let nk = book.nk();
    let leaf = registry::leaf(&statement.statement.meter, registry::nk_commitment(nk));
    let position = position_of(registry, leaf).ok_or(PlanError::NotEnrolled)?;
    let registry_root = registry.root();
    if !recent_roots.contains(&FieldBytes::from_field(registry_root)) {
        return Err(PlanError::StaleRegistry);
    }
    let path = registry.path(position).ok_or(PlanError::NoPath)?;
    let payout = book.payout_target(rng);
    let mut cancel_key = [0u8; 32];
    rng.fill_bytes(&mut cancel_key);
    let cancel_key = Hash32(cancel_key);
    let escrow = match side {
        Side::Sell => None,
        Side::Buy => Some(book.plan_escrow(
            buy_escrow(quantity_wh, limit_price, &g.fees),
            pool.min_fee,
            rng,
        )?),
    };
    let terms = UnlinkableTerms {
        payout,
        cancel_key,
        escrow: escrow.as_ref().map_or(0, |e| e.amount),
    };
    let request = UnlinkableOrderRequest {
        market: g.market_id(),
        nk,
        path,
        registry_root,
        statement,
        side,
        quantity_wh,
        limit_price,
        payout,
        cancel_commit: cancel_commitment(&cancel_key),
        escrow,
    };
    Ok(OrderPlan { request, terms })
}

/// The transaction that cancels the household's open unlinkable order of `period` placed
/// from meter `meter` (the order's nullifier is recomputed from the household's nullifier key
/// `nk`), revealing its `cancel_key`; signed by a one-time key.
pub fn cancel_order<R: RngCore + CryptoRng>(
    g: &Genesis,
    nk: Fr,
    meter: &veilwatt_circuits::eddsa::PublicKey,
    period: u64,
    cancel_key: Hash32,
    expires_at: u64,
    rng: &mut R,
) -> Transaction {
    let order_nf = registry::order_nullifier(nk, meter.x(), Fr::from(period));
    let body = TxBody::CancelUnlinkable {
        period,
        order_nf: FieldBytes::from_field(order_nf),
        cancel_key,
    };
    Transaction::sign(&g.chain_id, body, expires_at, &SigningKey::generate(rng))
}

/// The unlinkable order circuit's proving key with the verifier of its own verifying key.
pub struct UnlinkableOrderProver {
    pk: ProvingKey<Bn254>,
    self_check: UnlinkableOrderVerifier,
}

impl std::fmt::Debug for UnlinkableOrderProver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlinkableOrderProver")
            .field("vk_id", &self.self_check.vk_id())
            .finish_non_exhaustive()
    }
}

impl UnlinkableOrderProver {
    /// Wraps an unlinkable order proving key whose verifying key has id `vk_id`.
    pub fn new(pk: ProvingKey<Bn254>, vk_id: KeyId) -> Result<Self, VerifyError> {
        let self_check = UnlinkableOrderVerifier::new(&pk.vk, vk_id)?;
        Ok(Self { pk, self_check })
    }

    /// Proves `request` (and its escrow with `spends`) for chain `chain_id`, signed by a
    /// one-time key `signer`, valid until block time `expires_at`. Each relation is checked
    /// natively first and each fresh proof verified before the transaction is returned.
    pub fn prove<R: RngCore + CryptoRng>(
        &self,
        chain_id: &str,
        expires_at: u64,
        signer: &SigningKey,
        request: UnlinkableOrderRequest,
        spends: Option<&SpendProver>,
        rng: &mut R,
    ) -> Result<Transaction, ProveError> {
        let s = &request.statement.statement;
        let order_nf = registry::order_nullifier(request.nk, s.meter.x(), Fr::from(s.period));
        let order_nf_bytes = FieldBytes::from_field(order_nf);
        let public = OrderPublic {
            registry_root: request.registry_root,
            order_nullifier: order_nf,
            market: request.market,
            period: s.period,
            side: request.side.into(),
            quantity_wh: request.quantity_wh,
            terms: order_terms_hash(
                chain_id,
                request.limit_price,
                &request.payout,
                &request.cancel_commit,
            ),
        };
        let witness = OrderWitness::new(
            &public,
            &OrderPrivate {
                nk: request.nk,
                path: request.path.clone(),
                statement: request.statement,
            },
        );
        check_relation(&witness)?;
        let proof =
            Groth16::<Bn254, SnarkjsReduction>::prove(&self.pk, OrderCircuit::new(witness), rng)?;
        let proof = Groth16Proof::from_proof(&proof);
        self.self_check
            .verify(&public, &proof)
            .map_err(ProveError::SelfCheck)?;

        let escrow = match request.escrow {
            None => None,
            Some(e) => {
                let spends = spends.ok_or(ProveError::NotASpend)?;
                let notes = [e.outputs[0].0, e.outputs[1].0];
                let [(_, memo_0), (_, memo_1)] = e.outputs;
                let mut escrow = Escrow {
                    anchor: FieldBytes::from_field(e.anchor),
                    nullifiers: [
                        FieldBytes::from_field(e.inputs[0].nullifier()),
                        FieldBytes::from_field(e.inputs[1].nullifier()),
                    ],
                    outputs: [
                        NoteOutput {
                            cm: FieldBytes::from_field(notes[0].commitment()),
                            memo: memo_0,
                        },
                        NoteOutput {
                            cm: FieldBytes::from_field(notes[1].commitment()),
                            memo: memo_1,
                        },
                    ],
                    amount: e.amount,
                    fee: e.fee,
                    proof: Groth16Proof([0; PROOF_BYTES]),
                };
                let binding = escrow_binding(chain_id, &order_nf_bytes, &escrow);
                let out = e.amount.checked_add(e.fee).ok_or(ProveError::NotASpend)?;
                escrow.proof =
                    spends.prove_join_split(e.anchor, &e.inputs, &notes, (0, out), binding, rng)?;
                Some(Box::new(escrow))
            }
        };
        let body = TxBody::UnlinkableOrder {
            registry_root: FieldBytes::from_field(request.registry_root),
            order_nf: order_nf_bytes,
            period: s.period,
            side: request.side,
            quantity_wh: request.quantity_wh,
            limit_price: request.limit_price,
            payout: request.payout,
            cancel_commit: request.cancel_commit,
            escrow,
            proof,
        };
        Ok(Transaction::sign(chain_id, body, expires_at, signer))
    }
}
