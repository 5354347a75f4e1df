//! INSECURE development keys: the Groth16 toxic waste is derived from a public seed, so anyone
//! can forge proofs under these keys. For tests, benchmarks and the local demo only.

use crate::{ExpectedIds, KeyId, OrderKeys, ParamsError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The seed of the development keys used by tests and the demo.
pub const DEFAULT_SEED: u64 = 0;

/// Content ids of the development keys for [`DEFAULT_SEED`], pinned so that a change to the
/// order circuit (which changes the keys) is noticed: `pinned_ids_match_the_circuit` fails until
/// these are updated deliberately.
pub const PINNED_VK_ID: &str = "31c2c2cc6f1136ce8bb25b6831cd5b3be046dee03b8ffd8f3a064c60ada7c2de";
/// See [`PINNED_VK_ID`].
pub const PINNED_PK_ID: &str = "4a10ee5edeb814d79f917a9bf40f6ef88b1102439d9094f4606ac97288d781ac";

/// The pinned ids as [`ExpectedIds`].
pub fn pinned_ids() -> ExpectedIds {
    ExpectedIds {
        vk_id: PINNED_VK_ID.parse().expect("pinned id is valid hex"),
        pk_id: PINNED_PK_ID.parse().expect("pinned id is valid hex"),
    }
}

/// Generates the insecure development keys for `seed` (deterministic: same seed, same bytes).
pub fn generate_insecure(seed: u64) -> Result<OrderKeys, ParamsError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    OrderKeys::generate(&mut rng)
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

/// The development keys for [`DEFAULT_SEED`], loaded from the cache if the cached files hash to
/// the pinned ids, generated (and checked against the pinned ids, then cached) otherwise.
/// Memoized per process.
pub fn keys() -> Result<Arc<OrderKeys>, ParamsError> {
    static KEYS: Mutex<Option<Arc<OrderKeys>>> = Mutex::new(None);
    let mut guard = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = guard.as_ref() {
        return Ok(Arc::clone(k));
    }
    let dir = cache_dir().join(format!("dev-seed-{DEFAULT_SEED}"));
    let expected = pinned_ids();
    let keys = match OrderKeys::load(&dir, &expected) {
        Ok(k) => k,
        Err(_) => {
            let k = generate_insecure(DEFAULT_SEED)?;
            check_pinned(&k, &expected)?;
            k.write(&dir, Some(DEFAULT_SEED))?;
            k
        }
    };
    let keys = Arc::new(keys);
    *guard = Some(Arc::clone(&keys));
    Ok(keys)
}

fn check_pinned(k: &OrderKeys, expected: &ExpectedIds) -> Result<(), ParamsError> {
    if k.vk_id != expected.vk_id || k.pk_id != expected.pk_id {
        return Err(ParamsError::PinnedIdsOutdated {
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
