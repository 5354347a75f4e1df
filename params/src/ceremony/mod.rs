//! Keys from a multi-party ceremony: BGM17 phase 2 on a public Powers of Tau, in snarkjs'
//! file formats so that `snarkjs zkey verify` checks our transcripts and snarkjs users can
//! contribute to them (`docs/spec/ceremony.md`).
//!
//! A *transcript directory* holds `ceremony.json` ([`CeremonyManifest`]: the phase-1 file's
//! BLAKE2b-512 hash and power, and the circuits), and per circuit `<name>.r1cs` and
//! `<name>.zkey`. Every step reads one directory and writes a new one:
//! [`init`] (from a `.ptau`), [`contribute`], [`beacon`], [`verify`], and [`finalize`] (the
//! proving and verifying keys a market pins). The development keys come out of the same code:
//! a one-contributor ceremony over a phase 1 from a public seed ([`crate::dev`]).

pub mod binfile;
pub mod encoding;
pub mod phase2;
pub mod ptau;
pub mod r1cs;
pub mod rng;
pub mod zkey;

use crate::{write_atomically, CircuitKeys};
use ark_bn254::{Bn254, Fr};
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_relations::gr1cs::{ConstraintSynthesizer, SynthesisError};
use phase2::{Hash64, VerifiedContribution};
use ptau::Phase1File;
use r1cs::R1cs;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use veilwatt_circuits::{
    joinsplit::{self, JoinSplitCircuit},
    order::{self, OrderCircuit},
    order_v2,
};
use zkey::Zkey;

/// Errors of the ceremony.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what it claims (truncated, wrong format, invalid points).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The phase-1 file is too small for a circuit.
    #[error(
        "the phase-1 file has power {power}, a circuit needs power {needed}: use a Powers of Tau \
         file of power {needed} or more"
    )]
    Phase1TooSmall {
        /// The power the circuit needs (`ptau::phase1_power_for`).
        needed: u32,
        /// The file's power.
        power: u32,
    },
    /// The phase-1 file is not the one the ceremony started from.
    #[error("{0}")]
    Phase1Mismatch(String),
    /// A transcript does not verify.
    #[error("verification failed: {0}")]
    Verify(String),
    /// Bad beacon parameters.
    #[error("beacon: {0}")]
    Beacon(String),
    /// `ceremony.json` is missing or malformed.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Synthesizing a circuit failed.
    #[error("circuit synthesis: {0}")]
    Synthesis(#[from] SynthesisError),
}

/// A circuit of the market, by name. Nothing in the ceremony assumes there is only one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarketCircuit {
    /// The order statement (`circuits/src/order.rs`).
    Order,
    /// The join-split that spends shielded notes (`circuits/src/joinsplit.rs`).
    JoinSplit,
    /// The unlinkable order statement (`circuits/src/order_v2.rs`).
    OrderV2,
}

impl MarketCircuit {
    /// Every circuit a ceremony covers (`init`, `contribute`, `verify`, `finalize`), in the
    /// order their files are processed.
    pub const ALL: &'static [MarketCircuit] = &[
        MarketCircuit::Order,
        MarketCircuit::JoinSplit,
        MarketCircuit::OrderV2,
    ];

    /// Every circuit this build knows.
    pub const KNOWN: &'static [MarketCircuit] = MarketCircuit::ALL;

    /// A fixed number per circuit (the development ceremony's random stream).
    pub fn index(self) -> u64 {
        match self {
            MarketCircuit::Order => 0,
            MarketCircuit::JoinSplit => 1,
            MarketCircuit::OrderV2 => 2,
        }
    }

    /// The file stem (`order.r1cs`, `order.zkey`, `order.pk`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MarketCircuit::Order => "order",
            MarketCircuit::JoinSplit => "joinsplit",
            MarketCircuit::OrderV2 => "order_v2",
        }
    }

    /// Number of public inputs a verifier supplies (Groth16's constant one excluded).
    pub fn public_inputs(self) -> usize {
        match self {
            MarketCircuit::Order => order::public_input::COUNT,
            MarketCircuit::JoinSplit => joinsplit::public_input::COUNT,
            MarketCircuit::OrderV2 => order_v2::public_input::COUNT,
        }
    }

    /// The circuit's constraint system, as the prover synthesizes it.
    pub fn r1cs(self) -> Result<R1cs, CeremonyError> {
        match self {
            MarketCircuit::Order => R1cs::from_circuit(OrderCircuit::blank()),
            MarketCircuit::JoinSplit => R1cs::from_circuit(JoinSplitCircuit::blank()),
            MarketCircuit::OrderV2 => R1cs::from_circuit(order_v2::OrderCircuit::blank()),
        }
    }

    /// Synthesizes the blank circuit into `cs` (key generation and constraint counts).
    pub fn synthesize_blank(
        self,
        cs: ark_relations::gr1cs::ConstraintSystemRef<Fr>,
    ) -> Result<(), SynthesisError> {
        match self {
            MarketCircuit::Order => OrderCircuit::blank().generate_constraints(cs),
            MarketCircuit::JoinSplit => JoinSplitCircuit::blank().generate_constraints(cs),
            MarketCircuit::OrderV2 => order_v2::OrderCircuit::blank().generate_constraints(cs),
        }
    }

    /// Looks a circuit up by file stem.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::KNOWN.iter().copied().find(|c| c.name() == name)
    }
}

/// `ceremony.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyManifest {
    /// Format version (1).
    pub version: u32,
    /// The phase 1 the ceremony builds on.
    pub phase1: Phase1Record,
    /// The circuits the ceremony covers (all of [`MarketCircuit::ALL`] unless `init` was given
    /// a subset), in [`MarketCircuit::ALL`] order.
    pub circuits: Vec<CircuitRecord>,
}

impl CeremonyManifest {
    /// The circuits the ceremony covers, in [`MarketCircuit::ALL`] order (names checked by
    /// [`read_manifest`]; an unknown name is skipped here).
    pub fn market_circuits(&self) -> Vec<MarketCircuit> {
        self.circuits
            .iter()
            .filter_map(|c| MarketCircuit::from_name(&c.name))
            .collect()
    }
}

/// Which phase-1 file a ceremony uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase1Record {
    /// Where `init` read it (a hint for `verify`; the hash is what counts).
    pub file: PathBuf,
    /// BLAKE2b-512 of the whole file, hex (what the Perpetual Powers of Tau publishes).
    pub blake2b: String,
    /// Its power.
    pub power: u32,
}

/// One circuit of a ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitRecord {
    /// File stem.
    pub name: String,
    /// snarkjs' circuit hash (BLAKE2b-512 of the initial key), hex.
    pub circuit_hash: String,
    /// R1CS constraints.
    pub constraints: usize,
}

/// File name of the ceremony manifest in a transcript directory.
pub const MANIFEST: &str = "ceremony.json";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CeremonyError + '_ {
    move |source| CeremonyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CeremonyError> {
    std::fs::read(path).map_err(io_err(path))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CeremonyError> {
    write_atomically(path, bytes).map_err(io_err(path))
}

/// Reads a transcript directory's manifest.
pub fn read_manifest(dir: &Path) -> Result<CeremonyManifest, CeremonyError> {
    let path = dir.join(MANIFEST);
    let bytes = read(&path)?;
    let m: CeremonyManifest =
        serde_json::from_slice(&bytes).map_err(|e| CeremonyError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let names: Vec<&str> = m.circuits.iter().map(|c| c.name.as_str()).collect();
    let known: Vec<&str> = MarketCircuit::ALL.iter().map(|c| c.name()).collect();
    let circuits = m.market_circuits();
    // Every name known, none twice, in ALL's order (the order files are processed in).
    let ordered = circuits.windows(2).all(|w| w[0] < w[1]);
    if m.version != 1 || circuits.is_empty() || circuits.len() != names.len() || !ordered {
        return Err(CeremonyError::Manifest {
            path,
            message: format!(
                "version {} with circuits {names:?}; this build expects version 1 with one or \
                 more of {known:?}, each once, in that order",
                m.version
            ),
        });
    }
    Ok(m)
}

fn write_manifest(dir: &Path, m: &CeremonyManifest) -> Result<(), CeremonyError> {
    let json = serde_json::to_vec_pretty(m).map_err(|e| CeremonyError::Manifest {
        path: dir.join(MANIFEST),
        message: e.to_string(),
    })?;
    write(&dir.join(MANIFEST), &json)
}

fn create_dir(dir: &Path) -> Result<(), CeremonyError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

fn zkey_path(dir: &Path, c: MarketCircuit) -> PathBuf {
    dir.join(format!("{}.zkey", c.name()))
}

fn r1cs_path(dir: &Path, c: MarketCircuit) -> PathBuf {
    dir.join(format!("{}.r1cs", c.name()))
}

/// Reads `<name>.zkey` from a transcript directory.
pub fn read_zkey(dir: &Path, c: MarketCircuit) -> Result<Zkey, CeremonyError> {
    let path = zkey_path(dir, c);
    Zkey::from_bytes(&read(&path)?, &path.display().to_string())
}

/// The initial keys of `circuits` over an opened phase 1.
pub fn initial_keys<R: Read + Seek>(
    phase1: &mut Phase1File<R>,
    circuits: &[MarketCircuit],
) -> Result<Vec<(MarketCircuit, R1cs, Zkey)>, CeremonyError> {
    circuits
        .iter()
        .map(|&c| {
            let r1cs = c.r1cs()?;
            let z = initial_key_over(phase1, &r1cs)?;
            Ok((c, r1cs, z))
        })
        .collect()
}

/// The initial key of `r1cs` over an opened phase 1.
fn initial_key_over<R: Read + Seek>(
    phase1: &mut Phase1File<R>,
    r1cs: &R1cs,
) -> Result<Zkey, CeremonyError> {
    let slice = phase1.slice(r1cs.domain_power())?;
    initial_key(r1cs, &slice)
}

/// How many initial keys [`initial_key`] keeps per process.
const INITIAL_KEYS_KEPT: usize = 4;

/// [`phase2::new_zkey`], memoized per process on the digests of the R1CS and the phase-1
/// slice (a pure function of both). The join-split's initial key costs ~20 s on 2 cores, and
/// one process (a test binary, `init` then `verify` in a tool) may need it several times.
fn initial_key(r1cs: &R1cs, slice: &ptau::Phase1Slice) -> Result<Zkey, CeremonyError> {
    use blake2::{Blake2b512, Digest};
    use std::sync::Mutex;
    type Kept = Vec<([u8; 64], [u8; 64], std::sync::Arc<Zkey>)>;
    static KEPT: Mutex<Kept> = Mutex::new(Vec::new());
    let circuit: [u8; 64] = Blake2b512::digest(r1cs.to_bytes()).into();
    let found = KEPT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(c, s, _)| *c == circuit && *s == slice.digest)
        .map(|(_, _, z)| std::sync::Arc::clone(z));
    if let Some(z) = found {
        return Ok(Zkey::clone(&z));
    }
    let z = phase2::new_zkey(r1cs, slice)?;
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() == INITIAL_KEYS_KEPT {
        kept.remove(0);
    }
    kept.push((circuit, slice.digest, std::sync::Arc::new(z.clone())));
    Ok(z)
}

/// `init`: the initial transcript of `circuits` (usually [`MarketCircuit::ALL`]; a ceremony for
/// a subset serves, e.g., a circuit added after the others' ceremony) over the phase-1 file
/// `ptau`.
pub fn init(
    ptau: &Path,
    out: &Path,
    circuits: &[MarketCircuit],
) -> Result<CeremonyManifest, CeremonyError> {
    let mut circuits = circuits.to_vec();
    circuits.sort();
    circuits.dedup();
    if circuits.is_empty() {
        return Err(CeremonyError::Manifest {
            path: out.join(MANIFEST),
            message: "a ceremony needs at least one circuit".into(),
        });
    }
    let mut p1 = Phase1File::open(ptau)?;
    let power = p1.power;
    let keys = initial_keys(&mut p1, &circuits)?;
    create_dir(out)?;
    let mut circuits = Vec::new();
    for (c, r1cs, z) in &keys {
        write(&r1cs_path(out, *c), &r1cs.to_bytes())?;
        write(&zkey_path(out, *c), &z.to_bytes())?;
        circuits.push(CircuitRecord {
            name: c.name().to_owned(),
            circuit_hash: hex::encode(z.mpc.cs_hash),
            constraints: r1cs.constraints.len(),
        });
    }
    let m = CeremonyManifest {
        version: 1,
        phase1: Phase1Record {
            file: std::path::absolute(ptau).unwrap_or_else(|_| ptau.to_owned()),
            blake2b: hex::encode(ptau::file_hash(ptau)?),
            power,
        },
        circuits,
    };
    write_manifest(out, &m)?;
    Ok(m)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Applies `step` to every circuit's key in `input` and writes the results (and copies of the
/// manifest and `.r1cs` files) to `out`. Returns each circuit's contribution hash.
fn step_each(
    input: &Path,
    out: &Path,
    mut step: impl FnMut(MarketCircuit, &Zkey) -> Result<(Zkey, Hash64), CeremonyError>,
) -> Result<Vec<(MarketCircuit, Hash64)>, CeremonyError> {
    if same_dir(input, out) {
        return Err(CeremonyError::Manifest {
            path: out.to_owned(),
            message: "the output directory must differ from the input (transcripts are kept)"
                .into(),
        });
    }
    let m = read_manifest(input)?;
    let mut results = Vec::new();
    let mut outputs = Vec::new();
    for c in m.market_circuits() {
        let z = read_zkey(input, c)?;
        let (next, hash) = step(c, &z)?;
        outputs.push((c, next));
        results.push((c, hash));
    }
    create_dir(out)?;
    for (c, z) in outputs {
        write(&r1cs_path(out, c), &read(&r1cs_path(input, c))?)?;
        write(&zkey_path(out, c), &z.to_bytes())?;
    }
    write_manifest(out, &m)?;
    Ok(results)
}

/// `contribute`: a fresh secret per circuit from `rng`.
pub fn contribute<R: RngCore + CryptoRng>(
    input: &Path,
    out: &Path,
    name: Option<&str>,
    rng: &mut R,
) -> Result<Vec<(MarketCircuit, Hash64)>, CeremonyError> {
    step_each(input, out, |_, z| phase2::contribute(z, name, rng))
}

/// `beacon`: the public-randomness contribution.
pub fn beacon(
    input: &Path,
    out: &Path,
    beacon_hash: &[u8],
    iterations_exp: u8,
    name: Option<&str>,
) -> Result<Vec<(MarketCircuit, Hash64)>, CeremonyError> {
    step_each(input, out, |_, z| {
        phase2::beacon(z, beacon_hash, iterations_exp, name)
    })
}

/// What `verify` found for one circuit.
#[derive(Clone, Debug)]
pub struct CircuitReport {
    /// The circuit.
    pub circuit: MarketCircuit,
    /// snarkjs' circuit hash.
    pub circuit_hash: Hash64,
    /// Every contribution, oldest first.
    pub contributions: Vec<VerifiedContribution>,
}

/// `verify`: re-checks the whole transcript of every circuit `dir`'s manifest names against
/// this build's circuits and the phase-1 file (`ptau`, or the one `ceremony.json` names), whose
/// hash must be the one the ceremony started from.
pub fn verify(dir: &Path, ptau: Option<&Path>) -> Result<Vec<CircuitReport>, CeremonyError> {
    let m = read_manifest(dir)?;
    let ptau = ptau.unwrap_or(&m.phase1.file);
    let hash = hex::encode(ptau::file_hash(ptau)?);
    if hash != m.phase1.blake2b {
        return Err(CeremonyError::Phase1Mismatch(format!(
            "{} is not the phase-1 file this ceremony started from (BLAKE2b {}…, expected {}…)",
            ptau.display(),
            &hash[..16],
            &m.phase1.blake2b.get(..16).unwrap_or(&m.phase1.blake2b)
        )));
    }
    let mut p1 = Phase1File::open(ptau)?;
    let mut reports = Vec::new();
    for c in m.market_circuits() {
        // The cheap checks first: the circuit file, then the key file, then the transcript.
        let r1cs = c.r1cs()?;
        let path = r1cs_path(dir, c);
        if read(&path)? != r1cs.to_bytes() {
            return Err(CeremonyError::Verify(format!(
                "{} is not the {} circuit of this build (swapped or altered circuit)",
                path.display(),
                c.name()
            )));
        }
        let z = read_zkey(dir, c)?;
        let init = initial_key_over(&mut p1, &r1cs)?;
        let contributions = phase2::verify(&z, &init).map_err(|e| match e {
            CeremonyError::Verify(m) => CeremonyError::Verify(format!("{}: {m}", c.name())),
            other => other,
        })?;
        reports.push(CircuitReport {
            circuit: c,
            circuit_hash: z.mpc.cs_hash,
            contributions,
        });
    }
    Ok(reports)
}

/// The arkworks proving key held by a `.zkey` (its verifying key inside).
pub fn proving_key(z: &Zkey) -> ProvingKey<Bn254> {
    ProvingKey {
        vk: VerifyingKey {
            alpha_g1: z.alpha1,
            beta_g2: z.beta2,
            gamma_g2: z.gamma2,
            delta_g2: z.delta2,
            gamma_abc_g1: z.ic.clone(),
        },
        beta_g1: z.beta1,
        delta_g1: z.delta1,
        a_query: z.a.clone(),
        b_g1_query: z.b1.clone(),
        b_g2_query: z.b2.clone(),
        h_query: z.h.clone(),
        l_query: z.l.clone(),
    }
}

/// Where a key directory's keys came from (recorded in its manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// INSECURE: a one-contributor ceremony over a phase 1, both from a public seed.
    InsecureDev {
        /// The seed.
        seed: u64,
    },
    /// A multi-party ceremony.
    Ceremony {
        /// BLAKE2b-512 of the phase-1 file, hex.
        phase1_blake2b: String,
        /// snarkjs' circuit hash, hex.
        circuit_hash: String,
        /// Every contribution: name and published hash.
        contributions: Vec<ContributionRecord>,
    },
}

/// One contribution as a key directory records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContributionRecord {
    /// Position in the chain, from 1.
    pub index: usize,
    /// The contributor's name.
    pub name: Option<String>,
    /// The contribution hash it published, hex.
    pub hash: String,
    /// True for the public random beacon.
    pub beacon: bool,
}

/// `finalize`: verifies `input` (as [`verify`]) and writes every circuit's proving and
/// verifying keys to `out` in the layout `--params DIR` reads, each with its provenance.
pub fn finalize(
    input: &Path,
    out: &Path,
    ptau: Option<&Path>,
) -> Result<Vec<(CircuitKeys, Provenance)>, CeremonyError> {
    let m = read_manifest(input)?;
    let reports = verify(input, ptau)?;
    let mut finished = Vec::with_capacity(reports.len());
    for report in &reports {
        if report.contributions.is_empty() {
            return Err(CeremonyError::Verify(format!(
                "{}: no contribution yet: the initial key's trapdoor is phase 1's alone",
                report.circuit.name()
            )));
        }
        let z = read_zkey(input, report.circuit)?;
        let keys = CircuitKeys::from_proving_key(report.circuit, proving_key(&z));
        let provenance = Provenance::Ceremony {
            phase1_blake2b: m.phase1.blake2b.clone(),
            circuit_hash: hex::encode(report.circuit_hash),
            contributions: report
                .contributions
                .iter()
                .map(|c| ContributionRecord {
                    index: c.index,
                    name: c.name.clone(),
                    hash: hex::encode(c.hash),
                    beacon: matches!(c.kind, zkey::ContributionKind::Beacon { .. }),
                })
                .collect(),
        };
        finished.push((keys, provenance));
    }
    for (keys, provenance) in &finished {
        keys.write(out, provenance.clone())
            .map_err(|e| CeremonyError::Manifest {
                path: out.to_owned(),
                message: e.to_string(),
            })?;
    }
    Ok(finished)
}

/// Synthesizes any circuit to R1CS (used by tests for a circuit of another shape).
pub fn r1cs_of<C: ConstraintSynthesizer<Fr>>(circuit: C) -> Result<R1cs, CeremonyError> {
    R1cs::from_circuit(circuit)
}
