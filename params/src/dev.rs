//! INSECURE development keys: a one-contributor ceremony (the same code as a real one, see
//! [`crate::ceremony`]) over a phase 1, with every secret drawn from a public seed. Anyone can
//! recompute the trapdoor ([`trapdoor`]) and forge proofs ([`forge`]). For tests, benchmarks
//! and the local demo only; a market using them must say `insecure_dev_keys: true` in its
//! genesis, and every tool refuses them otherwise.
//!
//! Every circuit's keys come from the same seeded phase-1 secrets (tau, alpha, beta), over a
//! phase-1 file of the power that circuit needs, and its own contribution: the order circuit's
//! secret continues the seed's ChaCha20 stream 0 after the phase-1 draws (as before there was
//! a second circuit, so its keys did not change); circuit `c` draws from stream
//! [`MarketCircuit::index`] at the same point.

use crate::ceremony::{self, phase2, ptau, MarketCircuit, Provenance};
use crate::{CircuitKeys, ExpectedIds, KeyId, ParamsError};
use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{Field, UniformRand, Zero};
use ark_groth16::{Proof, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The seed of the development keys used by tests and the demo.
pub const DEFAULT_SEED: u64 = 0;

/// Content ids of the order circuit's development keys for [`DEFAULT_SEED`], pinned so that a
/// change to the circuit (which changes the keys) is noticed: `pinned_ids_match_the_circuit`
/// fails until these are updated deliberately.
pub const PINNED_VK_ID: &str = "d805d10036bbfe9d9d54cb13515b6be396bfa08ed7bb20ea5f9f24134c57f28c";
/// See [`PINNED_VK_ID`].
pub const PINNED_PK_ID: &str = "9b847c70972eb6e2b527d1ca5e83f2c492f13f80c93f3afa860a1305d39930b1";
/// The join-split circuit's development verifying-key id (see [`PINNED_VK_ID`]).
pub const PINNED_JOINSPLIT_VK_ID: &str =
    "e55f2f7aa4c1577435b555f2af7e914e517d8443d33673567a01291195f63bdd";
/// The join-split circuit's development proving-key id.
pub const PINNED_JOINSPLIT_PK_ID: &str =
    "7ae35177d268865d38802d7de5ee2575f8157acd8ea81cb4267ec56557b815eb";

/// The unlinkable order circuit's development verifying-key id.
pub const PINNED_ORDER_V2_VK_ID: &str =
    "b5c8699ba202ae6905dc8f04d756ee0eca22fabe611a1e0603269f024ff2b4d8";
/// The unlinkable order circuit's development proving-key id.
pub const PINNED_ORDER_V2_PK_ID: &str =
    "5f61ae554b05398668c207223b60b0079ccd949cec496a0e2a89c1505d05181f";

/// The order circuit's pinned ids as [`ExpectedIds`].
pub fn pinned_ids() -> ExpectedIds {
    pinned_ids_of(MarketCircuit::Order)
}

/// `circuit`'s pinned ids.
pub fn pinned_ids_of(circuit: MarketCircuit) -> ExpectedIds {
    let (vk, pk) = match circuit {
        MarketCircuit::Order => (PINNED_VK_ID, PINNED_PK_ID),
        MarketCircuit::JoinSplit => (PINNED_JOINSPLIT_VK_ID, PINNED_JOINSPLIT_PK_ID),
        MarketCircuit::OrderV2 => (PINNED_ORDER_V2_VK_ID, PINNED_ORDER_V2_PK_ID),
    };
    ExpectedIds {
        vk_id: vk.parse().expect("pinned id is valid hex"),
        pk_id: pk.parse().expect("pinned id is valid hex"),
    }
}

/// The development ceremony's secrets: phase 1's and the single contribution's.
#[derive(Clone, Copy, Debug)]
pub struct Trapdoor {
    /// Phase 1 (tau, alpha, beta).
    pub phase1: ptau::InsecurePhase1Secrets,
    /// The contribution's secret, the final delta.
    pub delta: Fr,
}

/// Draws the development secrets in the order [`generate_insecure`] consumes them.
fn draw_phase1(rng: &mut ChaCha20Rng) -> ptau::InsecurePhase1Secrets {
    ptau::InsecurePhase1Secrets {
        tau: Fr::rand(rng),
        alpha: Fr::rand(rng),
        beta: Fr::rand(rng),
    }
}

/// The phase-1 secrets a seed gives (as [`generate_insecure`] draws them).
pub fn phase1_secrets(seed: u64) -> ptau::InsecurePhase1Secrets {
    draw_phase1(&mut ChaCha20Rng::seed_from_u64(seed))
}

/// The phase-1 power `circuit` needs.
pub fn phase1_power(circuit: MarketCircuit) -> Result<u32, ParamsError> {
    Ok(ptau::phase1_power_for(circuit.r1cs()?.domain_power()))
}

/// The smallest phase-1 power every circuit of a ceremony ([`MarketCircuit::ALL`]) fits in.
pub fn market_phase1_power() -> Result<u32, ParamsError> {
    let mut power = 1;
    for &c in MarketCircuit::ALL {
        power = power.max(phase1_power(c)?);
    }
    Ok(power)
}

/// The random stream of `circuit`'s contribution: the seed's phase-1 draws, then stream
/// [`MarketCircuit::index`] from that point (stream 0 simply continues).
fn contribution_rng(seed: u64, circuit: MarketCircuit) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    draw_phase1(&mut rng);
    if circuit.index() > 0 {
        rng.set_stream(circuit.index());
    }
    rng
}

/// The trapdoor of `circuit`'s development keys for `seed`: phase 1's secrets, then the first
/// nonzero field element the contribution draws.
pub fn trapdoor(seed: u64, circuit: MarketCircuit) -> Trapdoor {
    let phase1 = phase1_secrets(seed);
    let mut rng = contribution_rng(seed, circuit);
    let mut delta = Fr::zero();
    while delta.is_zero() {
        delta = Fr::rand(&mut rng);
    }
    Trapdoor { phase1, delta }
}

/// Runs the development ceremony of `circuit` for `seed`: a phase 1 of the power it needs,
/// its initial key, one contribution (deterministic: same seed, same bytes).
pub fn generate_insecure(seed: u64, circuit: MarketCircuit) -> Result<CircuitKeys, ParamsError> {
    let secrets = phase1_secrets(seed);
    let power = phase1_power(circuit)?;
    let mut phase1 = ptau::Phase1File::from_bytes(ptau::write_insecure(power, &secrets)?)?;
    let r1cs = circuit.r1cs()?;
    let slice = phase1.slice(r1cs.domain_power())?;
    let init = phase2::new_zkey(&r1cs, &slice)?;
    let (z, _) = phase2::contribute(
        &init,
        Some("INSECURE development key"),
        &mut contribution_rng(seed, circuit),
    )?;
    Ok(CircuitKeys::from_proving_key(
        circuit,
        ceremony::proving_key(&z),
    ))
}

/// Forges a proof that verifies under `vk` for any `public` inputs, using the trapdoor. This is
/// what anyone can do against a market that runs on development keys: tests use it to show
/// that ceremony keys refuse such proofs, benchmarks to build large ledgers without hours of
/// proving.
pub fn forge<R: RngCore + CryptoRng>(
    vk: &VerifyingKey<Bn254>,
    t: &Trapdoor,
    public: &[Fr],
    rng: &mut R,
) -> Proof<Bn254> {
    // e(A, B) = e(alpha, beta) e(vk_x, gamma) e(C, delta) with gamma = 1:
    // pick A = [a]_1, B = [b]_2, then C = ([ab - alpha beta]_1 - vk_x) / delta.
    let a = Fr::rand(rng);
    let b = Fr::rand(rng);
    // A handful of public inputs: summed sequentially. (ark's MSM is parallel, and callers
    // forge many proofs from rayon tasks; nested waits on the pool there steal further forge
    // tasks recursively until a worker's stack overflows at ~1,000 proofs.)
    let vk_x: G1Projective = vk.gamma_abc_g1[0].into_group()
        + vk.gamma_abc_g1[1..]
            .iter()
            .zip(public)
            .map(|(g, x)| *g * x)
            .sum::<G1Projective>();
    let g1 = G1Affine::generator();
    let numerator = g1 * (a * b - t.phase1.alpha * t.phase1.beta) - vk_x;
    let c = numerator * t.delta.inverse().unwrap_or_default();
    Proof {
        a: (g1 * a).into_affine(),
        b: (G2Affine::generator() * b).into_affine(),
        c: c.into_affine(),
    }
}

/// Where cached development keys live: `$VEILWATT_PARAMS_DIR`, else `target/veilwatt-params`
/// in this workspace.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VEILWATT_PARAMS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/veilwatt-params")
        })
}

/// The order circuit's development keys for [`DEFAULT_SEED`] ([`keys_of`]).
pub fn keys() -> Result<Arc<CircuitKeys>, ParamsError> {
    keys_of(MarketCircuit::Order)
}

/// `circuit`'s development keys for [`DEFAULT_SEED`], loaded from the cache if the cached files
/// hash to the pinned ids, generated (and checked against the pinned ids, then cached)
/// otherwise. Memoized per process.
pub fn keys_of(circuit: MarketCircuit) -> Result<Arc<CircuitKeys>, ParamsError> {
    static KEYS: Mutex<BTreeMap<MarketCircuit, Arc<CircuitKeys>>> = Mutex::new(BTreeMap::new());
    let mut guard = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = guard.get(&circuit) {
        return Ok(Arc::clone(k));
    }
    let dir = cache_dir().join(format!("dev-ceremony-seed-{DEFAULT_SEED}"));
    let expected = pinned_ids_of(circuit);
    let keys = match CircuitKeys::load(&dir, circuit, &expected) {
        Ok(k) => k,
        Err(_) => {
            let k = generate_insecure(DEFAULT_SEED, circuit)?;
            check_pinned(&k, &expected)?;
            k.write(&dir, Provenance::InsecureDev { seed: DEFAULT_SEED })?;
            k
        }
    };
    let keys = Arc::new(keys);
    guard.insert(circuit, Arc::clone(&keys));
    Ok(keys)
}

fn check_pinned(k: &CircuitKeys, expected: &ExpectedIds) -> Result<(), ParamsError> {
    if k.vk_id != expected.vk_id || k.pk_id != expected.pk_id {
        return Err(ParamsError::PinnedIdsOutdated {
            circuit: k.circuit,
            seed: DEFAULT_SEED,
            vk_id: k.vk_id,
            pk_id: k.pk_id,
        });
    }
    Ok(())
}

/// The pinned verifying-key id of the development keys.
pub fn pinned_vk_id() -> KeyId {
    pinned_ids().vk_id
}
