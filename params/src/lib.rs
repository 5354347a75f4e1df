//! Groth16 keys for the market's circuits ([`MarketCircuit`]: the order circuit and the
//! join-split).
//!
//! * [`KeyId`]: SHA-256 content hash of a key file, the id every party pins.
//! * [`CircuitKeys`]: one circuit's keys and their on-disk layout (`<name>.pk`, `<name>.vk`,
//!   `<name>.json`, e.g. `order.pk`), written atomically (temporary file + rename) and loaded
//!   only if the files hash to the expected ids.
//! * [`ceremony`]: keys from a multi-party BGM17 phase-2 ceremony over a public Powers of Tau,
//!   in snarkjs' formats; [`qap::SnarkjsReduction`] is the reduction such keys prove with.
//! * [`dev`]: **insecure** development keys: the same ceremony code run by one contributor over
//!   a phase 1, both from a public seed (anyone who knows the seed can forge proofs), cached on
//!   disk so tests and demos do not regenerate them.
//!
//! File formats: `<name>.vk` is the arkworks canonical *compressed* serialization of the
//! verifying key; `<name>.pk` is the *uncompressed* serialization of the proving key (loading it
//! skips point decompression; its integrity comes from the pinned hash, so curve checks are
//! skipped too).

pub mod ceremony;
pub mod dev;
pub mod qap;

pub use ceremony::{MarketCircuit, Provenance};

use ark_bn254::{Bn254, Fr};
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_relations::gr1cs::{ConstraintSystem, SynthesisError, SynthesisMode};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the order circuit's proving key inside a key directory.
pub const PK_FILE: &str = "order.pk";
/// File name of the order circuit's verifying key inside a key directory.
pub const VK_FILE: &str = "order.vk";
/// File name of the order circuit's manifest inside a key directory.
pub const MANIFEST_FILE: &str = "order.json";

/// The files of one circuit's keys in a key directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFile {
    /// `<name>.pk`, the proving key.
    Proving,
    /// `<name>.vk`, the verifying key.
    Verifying,
    /// `<name>.json`, the manifest.
    Manifest,
}

impl KeyFile {
    /// The file name for `circuit`.
    pub fn name(self, circuit: MarketCircuit) -> String {
        let ext = match self {
            KeyFile::Proving => "pk",
            KeyFile::Verifying => "vk",
            KeyFile::Manifest => "json",
        };
        format!("{}.{ext}", circuit.name())
    }
}

/// A 32-byte content hash identifying a key file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// SHA-256 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ParamsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| ParamsError::BadKeyId(s.to_owned()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ParamsError::BadKeyId(s.to_owned()))?;
        Ok(Self(arr))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Errors from generating, writing or loading keys.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file's content hash is not the expected id.
    #[error("{path} has id {actual}, expected {expected}: refusing to use it")]
    IdMismatch {
        /// The file.
        path: PathBuf,
        /// The id the caller pinned.
        expected: KeyId,
        /// The file's actual content hash.
        actual: KeyId,
    },
    /// A key file does not deserialize.
    #[error("{path}: malformed key: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ark_serialize::SerializationError,
    },
    /// The verifying key is for a circuit with another number of public inputs.
    #[error("verifying key has {actual} public inputs, the {} circuit has {expected}", circuit.name())]
    WrongInputCount {
        /// The circuit the key was loaded for.
        circuit: MarketCircuit,
        /// Its public inputs.
        expected: usize,
        /// The key's.
        actual: usize,
    },
    /// The manifest does not parse.
    #[error("{path}: malformed manifest: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A key directory holds development keys, and the market does not allow them.
    #[error(
        "{path} holds INSECURE development keys (anyone can forge their proofs), and this market's \
         genesis does not say insecure_dev_keys: true; use the keys from its ceremony"
    )]
    InsecureKeys {
        /// The key directory.
        path: PathBuf,
    },
    /// Not a hex-encoded 32-byte id.
    #[error("not a key id: {0:?}")]
    BadKeyId(String),
    /// Key generation failed.
    #[error("key generation: {0}")]
    Synthesis(#[from] SynthesisError),
    /// The ceremony code that makes the development keys failed.
    #[error("development ceremony: {0}")]
    Ceremony(#[from] ceremony::CeremonyError),
    /// Freshly generated development keys do not match the ids pinned in code.
    #[error(
        "development keys of the {} circuit for seed {seed} have vk id {vk_id} / pk id {pk_id}, \
         but the ids pinned in params/src/dev.rs differ: the circuit changed; review the change \
         and update the pinned ids", circuit.name()
    )]
    PinnedIdsOutdated {
        /// The circuit.
        circuit: MarketCircuit,
        /// The seed.
        seed: u64,
        /// Generated verifying-key id.
        vk_id: KeyId,
        /// Generated proving-key id.
        pk_id: KeyId,
    },
}

/// What `<name>.json` records next to the keys (informational; ids are checked against the
/// files' contents).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Content hash of `order.vk`.
    pub vk_id: KeyId,
    /// Content hash of `order.pk`.
    pub pk_id: KeyId,
    /// R1CS constraints of the circuit.
    pub constraints: usize,
    /// Public inputs a verifier supplies.
    pub public_inputs: usize,
    /// Where the keys came from: a ceremony, or (insecure) a public seed.
    pub provenance: Provenance,
}

impl Manifest {
    /// True for development keys, whose trapdoor anyone can compute.
    pub fn is_insecure(&self) -> bool {
        matches!(self.provenance, Provenance::InsecureDev { .. })
    }
}

/// One circuit's proving key, its verifying key and their ids.
#[derive(Clone)]
pub struct CircuitKeys {
    /// The circuit.
    pub circuit: MarketCircuit,
    /// Proving key (households).
    pub pk: ProvingKey<Bn254>,
    /// Verifying key (validators, regulators).
    pub vk: VerifyingKey<Bn254>,
    /// Canonical bytes of `<name>.vk`.
    pub vk_bytes: Vec<u8>,
    /// Content hash of `<name>.vk`.
    pub vk_id: KeyId,
    /// Content hash of `<name>.pk`.
    pub pk_id: KeyId,
}

impl fmt::Debug for CircuitKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitKeys")
            .field("circuit", &self.circuit)
            .field("vk_id", &self.vk_id)
            .field("pk_id", &self.pk_id)
            .finish_non_exhaustive()
    }
}

/// The ids a loader insists on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedIds {
    /// Expected content hash of `<name>.vk`.
    pub vk_id: KeyId,
    /// Expected content hash of `<name>.pk`.
    pub pk_id: KeyId,
}

/// Number of R1CS constraints of `circuit`.
pub fn constraint_count(circuit: MarketCircuit) -> Result<usize, SynthesisError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_mode(SynthesisMode::Setup);
    circuit.synthesize_blank(cs.clone())?;
    Ok(cs.num_constraints())
}

fn vk_bytes(vk: &VerifyingKey<Bn254>) -> Vec<u8> {
    let mut out = Vec::with_capacity(vk.compressed_size());
    // Serializing into a Vec cannot fail.
    vk.serialize_compressed(&mut out)
        .expect("serialize into Vec");
    out
}

fn pk_bytes(pk: &ProvingKey<Bn254>) -> Vec<u8> {
    let mut out = Vec::with_capacity(pk.uncompressed_size());
    pk.serialize_uncompressed(&mut out)
        .expect("serialize into Vec");
    out
}

/// The content id of a verifying key (hash of its canonical compressed bytes).
pub fn vk_id(vk: &VerifyingKey<Bn254>) -> KeyId {
    KeyId::of_bytes(&vk_bytes(vk))
}

impl CircuitKeys {
    /// Wraps `circuit`'s proving key (from a finished ceremony) with its ids.
    pub fn from_proving_key(circuit: MarketCircuit, pk: ProvingKey<Bn254>) -> Self {
        let vk = pk.vk.clone();
        let vk_bytes = vk_bytes(&vk);
        Self {
            circuit,
            vk_id: KeyId::of_bytes(&vk_bytes),
            pk_id: KeyId::of_bytes(&pk_bytes(&pk)),
            pk,
            vk,
            vk_bytes,
        }
    }

    /// Writes `<name>.pk`, `<name>.vk` and `<name>.json` into `dir` (created if needed). Each
    /// file is written to a temporary name, synced and renamed, so readers never see a partial
    /// file.
    pub fn write(&self, dir: &Path, provenance: Provenance) -> Result<Manifest, ParamsError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ParamsError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let manifest = self.manifest(provenance)?;
        let manifest_json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        for (file, bytes) in [
            (KeyFile::Proving, pk_bytes(&self.pk)),
            (KeyFile::Verifying, self.vk_bytes.clone()),
            (KeyFile::Manifest, manifest_json),
        ] {
            let path = dir.join(file.name(self.circuit));
            write_atomically(&path, &bytes).map_err(io(&path))?;
        }
        Ok(manifest)
    }

    /// Loads `circuit`'s keys from `dir`, refusing files whose content hashes differ from
    /// `expected`.
    pub fn load(
        dir: &Path,
        circuit: MarketCircuit,
        expected: &ExpectedIds,
    ) -> Result<Self, ParamsError> {
        let vk = load_verifying_key(
            &dir.join(KeyFile::Verifying.name(circuit)),
            circuit,
            &expected.vk_id,
        )?;
        let path = dir.join(KeyFile::Proving.name(circuit));
        let bytes = read_pinned(&path, &expected.pk_id)?;
        let pk = ProvingKey::<Bn254>::deserialize_with_mode(&bytes[..], Compress::No, Validate::No)
            .map_err(|source| ParamsError::Malformed {
                path: path.clone(),
                source,
            })?;
        if pk.vk != vk {
            // Unreachable for files with matching pinned ids; a cheap guard against mis-pinning.
            return Err(ParamsError::IdMismatch {
                path,
                expected: expected.vk_id,
                actual: vk_id(&pk.vk),
            });
        }
        Ok(Self {
            circuit,
            vk_bytes: vk_bytes(&vk),
            vk,
            pk,
            vk_id: expected.vk_id,
            pk_id: expected.pk_id,
        })
    }

    /// The manifest describing these keys.
    pub fn manifest(&self, provenance: Provenance) -> Result<Manifest, ParamsError> {
        Ok(Manifest {
            vk_id: self.vk_id,
            pk_id: self.pk_id,
            constraints: constraint_count(self.circuit)?,
            public_inputs: self.circuit.public_inputs(),
            provenance,
        })
    }
}

/// Loads a verifying key file, refusing it unless its content hash is `expected` and it
/// deserializes (with curve and subgroup checks) to a key with `circuit`'s input count.
pub fn load_verifying_key(
    path: &Path,
    circuit: MarketCircuit,
    expected: &KeyId,
) -> Result<VerifyingKey<Bn254>, ParamsError> {
    let bytes = read_pinned(path, expected)?;
    let vk = VerifyingKey::<Bn254>::deserialize_compressed(&bytes[..]).map_err(|source| {
        ParamsError::Malformed {
            path: path.to_owned(),
            source,
        }
    })?;
    if vk.gamma_abc_g1.len() != circuit.public_inputs() + 1 {
        return Err(ParamsError::WrongInputCount {
            circuit,
            expected: circuit.public_inputs(),
            actual: vk.gamma_abc_g1.len().saturating_sub(1),
        });
    }
    Ok(vk)
}

/// Refuses a key directory where any circuit's manifest says its keys are development keys
/// unless the market allows them (`insecure_allowed`, the genesis flag). A circuit without a
/// manifest passes (the pinned content hash is what binds the keys).
pub fn check_provenance(dir: &Path, insecure_allowed: bool) -> Result<(), ParamsError> {
    for &circuit in MarketCircuit::ALL {
        if !dir.join(KeyFile::Manifest.name(circuit)).exists() {
            continue;
        }
        let m = read_manifest(dir, circuit)?;
        if m.is_insecure() && !insecure_allowed {
            return Err(ParamsError::InsecureKeys {
                path: dir.to_owned(),
            });
        }
    }
    Ok(())
}

/// Reads the manifest of `circuit`'s keys in a key directory.
pub fn read_manifest(dir: &Path, circuit: MarketCircuit) -> Result<Manifest, ParamsError> {
    let path = dir.join(KeyFile::Manifest.name(circuit));
    let bytes = std::fs::read(&path).map_err(|source| ParamsError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ParamsError::Manifest { path, source })
}

fn read_pinned(path: &Path, expected: &KeyId) -> Result<Vec<u8>, ParamsError> {
    let bytes = std::fs::read(path).map_err(|source| ParamsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let actual = KeyId::of_bytes(&bytes);
    if &actual != expected {
        return Err(ParamsError::IdMismatch {
            path: path.to_owned(),
            expected: *expected,
            actual,
        });
    }
    Ok(bytes)
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}
