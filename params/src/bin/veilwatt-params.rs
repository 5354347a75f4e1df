//! `veilwatt-params`: the market's Groth16 keys: a multi-party key ceremony (snarkjs-compatible
//! transcripts), and the insecure development keys for tests and demos.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Duration;
use veilwatt_params::ceremony::{self, phase2::Hash64, zkey::ContributionKind, MarketCircuit};
use veilwatt_params::{dev, read_manifest, CircuitKeys, ExpectedIds, Provenance};

#[derive(Parser)]
#[command(version, about = "Groth16 keys for Veilwatt's circuits")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The multi-party key ceremony (BGM17 phase 2; docs/spec/ceremony.md).
    #[command(subcommand)]
    Ceremony(CeremonyCommand),
    /// Write INSECURE development keys derived from a public seed (tests and demos only).
    DevSetup {
        /// Directory to write the keys of every circuit a ceremony covers into (order.pk,
        /// order.vk, order.json).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the deterministic setup.
        #[arg(long, default_value_t = dev::DEFAULT_SEED)]
        seed: u64,
    },
    /// Write an INSECURE prepared phase-1 file whose secrets follow from a public seed (tests
    /// and benchmarks of the ceremony; a real ceremony uses a public Powers of Tau).
    DevPtau {
        /// The .ptau file to write.
        #[arg(long)]
        out: PathBuf,
        /// Its power (2^power rows); default: the smallest all the market's circuits fit in.
        #[arg(long)]
        power: Option<u32>,
        /// Seed of the secrets.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Check that a key directory's files of one circuit hash to the given ids and load.
    Check {
        /// Key directory.
        #[arg(long)]
        dir: PathBuf,
        /// The circuit (order, joinsplit).
        #[arg(long, default_value = "order", value_parser = parse_circuit)]
        circuit: MarketCircuit,
        /// Expected verifying-key id (hex SHA-256).
        #[arg(long)]
        vk_id: String,
        /// Expected proving-key id (hex SHA-256).
        #[arg(long)]
        pk_id: String,
    },
}

#[derive(Subcommand)]
enum CeremonyCommand {
    /// Start a ceremony: the circuits' .r1cs and initial .zkey from a prepared Powers of Tau.
    Init {
        /// A phase-1 file prepared for phase 2 (snarkjs / Perpetual Powers of Tau .ptau).
        #[arg(long)]
        ptau: PathBuf,
        /// New transcript directory.
        #[arg(long)]
        out: PathBuf,
        /// A circuit the ceremony covers (repeat for several; default: every market circuit).
        /// A ceremony for a subset serves a circuit added after the others' ceremony.
        #[arg(long = "circuit", value_parser = parse_circuit)]
        circuits: Vec<MarketCircuit>,
    },
    /// Add your contribution: a secret from the OS's randomness (and, with --entropy, text you
    /// type), used in memory only and then forgotten.
    Contribute {
        /// The transcript you received.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the new transcript (to pass on).
        #[arg(long)]
        out: PathBuf,
        /// Your name, recorded in the transcript (at most 64 bytes).
        #[arg(long)]
        name: Option<String>,
        /// Also ask for random text to mix into the OS's randomness (not echoed).
        #[arg(long)]
        entropy: bool,
    },
    /// Finish with a public random beacon (e.g. a future block hash announced in advance).
    Beacon {
        /// The transcript to finish.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the final transcript.
        #[arg(long)]
        out: PathBuf,
        /// The beacon value, hex.
        #[arg(long)]
        beacon: String,
        /// log2 of the number of SHA-256 iterations (10..=63).
        #[arg(long)]
        iterations: u8,
        /// Name recorded for the beacon.
        #[arg(long, default_value = "final beacon")]
        name: String,
    },
    /// Re-check a whole transcript and list every contribution with its hash.
    Verify {
        /// The transcript directory.
        dir: PathBuf,
        /// The phase-1 file (default: the path init recorded; its hash must match).
        #[arg(long)]
        ptau: Option<PathBuf>,
    },
    /// Verify, then write the proving and verifying keys a market pins (--params DIR layout).
    Finalize {
        /// The finished transcript.
        #[arg(long = "in")]
        input: PathBuf,
        /// Key directory to write.
        #[arg(long)]
        out: PathBuf,
        /// The phase-1 file (default: the path init recorded).
        #[arg(long)]
        ptau: Option<PathBuf>,
    },
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A hash as snarkjs prints it: four lines of four 8-hex-digit words.
fn format_hash(h: &Hash64) -> String {
    h.chunks(16)
        .map(|line| {
            let words: Vec<String> = line.chunks(4).map(hex::encode).collect();
            format!("\t{}", words.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_hashes(what: &str, hashes: &[(MarketCircuit, Hash64)]) {
    for (c, h) in hashes {
        println!("{what} for the {} circuit:\n{}", c.name(), format_hash(h));
    }
}

/// OS randomness, optionally mixed with typed text, seeds the contribution's generator.
fn contribution_rng(entropy: bool) -> Result<ChaCha20Rng> {
    let mut os = [0u8; 64];
    OsRng.fill_bytes(&mut os);
    let mut h = blake2::Blake2b512::default();
    use blake2::Digest;
    h.update(os);
    if entropy {
        let text = rpassword::prompt_password("Type some random text (not shown), then Enter: ")
            .context("reading entropy")?;
        h.update(text.as_bytes());
    }
    let digest = h.finalize();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest[..32]);
    Ok(ChaCha20Rng::from_seed(seed))
}

fn verify_and_report(dir: &Path, ptau: Option<&Path>) -> Result<()> {
    let pb = spinner("verifying the transcript");
    let reports = ceremony::verify(dir, ptau);
    pb.finish_and_clear();
    let reports = reports?;
    for r in &reports {
        println!(
            "circuit {}: circuit hash\n{}",
            r.circuit.name(),
            format_hash(&r.circuit_hash)
        );
        for c in &r.contributions {
            let kind = match &c.kind {
                ContributionKind::Secret => String::new(),
                ContributionKind::Beacon {
                    hash,
                    iterations_exp,
                } => format!(
                    " [beacon {} , 2^{iterations_exp} iterations]",
                    hex::encode(hash)
                ),
            };
            println!(
                "  contribution #{} {}{kind}:\n{}",
                c.index,
                c.name.as_deref().unwrap_or("(no name)"),
                format_hash(&c.hash)
            );
        }
    }
    println!("transcript OK: every contribution verifies");
    Ok(())
}

fn parse_circuit(name: &str) -> Result<MarketCircuit, String> {
    MarketCircuit::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = MarketCircuit::KNOWN.iter().map(|c| c.name()).collect();
        format!("unknown circuit {name:?} (one of {names:?})")
    })
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Ceremony(c) => match c {
            CeremonyCommand::Init {
                ptau,
                out,
                circuits,
            } => {
                let circuits = if circuits.is_empty() {
                    MarketCircuit::ALL.to_vec()
                } else {
                    circuits
                };
                let pb = spinner("building the initial keys from phase 1");
                let m = ceremony::init(&ptau, &out, &circuits);
                pb.finish_and_clear();
                let m = m?;
                for c in &m.circuits {
                    println!(
                        "{}: {} constraints, circuit hash {}",
                        c.name, c.constraints, c.circuit_hash
                    );
                }
                println!(
                    "initial transcript written to {} (phase 1: power {}, BLAKE2b {}…)",
                    out.display(),
                    m.phase1.power,
                    &m.phase1.blake2b[..16]
                );
            }
            CeremonyCommand::Contribute {
                input,
                out,
                name,
                entropy,
            } => {
                let mut rng = contribution_rng(entropy)?;
                let pb = spinner("contributing");
                let hashes = ceremony::contribute(&input, &out, name.as_deref(), &mut rng);
                pb.finish_and_clear();
                print_hashes("Your contribution hash", &hashes?);
                println!(
                    "new transcript in {}: publish the hash above, pass the directory on",
                    out.display()
                );
            }
            CeremonyCommand::Beacon {
                input,
                out,
                beacon,
                iterations,
                name,
            } => {
                let value =
                    hex::decode(beacon.trim_start_matches("0x")).context("--beacon must be hex")?;
                let pb = spinner("applying the beacon");
                let hashes = ceremony::beacon(&input, &out, &value, iterations, Some(&name));
                pb.finish_and_clear();
                print_hashes("Beacon contribution hash", &hashes?);
            }
            CeremonyCommand::Verify { dir, ptau } => verify_and_report(&dir, ptau.as_deref())?,
            CeremonyCommand::Finalize { input, out, ptau } => {
                let pb = spinner("verifying and writing the keys");
                let done = ceremony::finalize(&input, &out, ptau.as_deref());
                pb.finish_and_clear();
                let done = done?;
                println!("keys written to {}", out.display());
                for (keys, provenance) in &done {
                    let Provenance::Ceremony { contributions, .. } = provenance else {
                        bail!("finalize produced keys without a ceremony record");
                    };
                    println!(
                        "{}: {} contributions\nvk_id {}\npk_id {}",
                        keys.circuit.name(),
                        contributions.len(),
                        keys.vk_id,
                        keys.pk_id
                    );
                }
                if let Some((order, _)) =
                    done.iter().find(|(k, _)| k.circuit == MarketCircuit::Order)
                {
                    println!(
                        "pin the order vk_id in the market's genesis: veilwatt-node genesis --vk-id {}",
                        order.vk_id
                    );
                }
            }
        },
        Command::DevSetup { out, seed } => {
            eprintln!(
                "veilwatt-params: generating INSECURE development keys from public seed {seed}"
            );
            let mut summary = serde_json::Map::new();
            for &circuit in MarketCircuit::ALL {
                let pb = spinner(&format!("{} circuit", circuit.name()));
                let keys = dev::generate_insecure(seed, circuit);
                pb.finish_and_clear();
                let m = keys
                    .context("key generation")?
                    .write(&out, Provenance::InsecureDev { seed })
                    .context("writing keys")?;
                summary.insert(
                    circuit.name().to_owned(),
                    serde_json::json!({
                        "vk_id": m.vk_id,
                        "pk_id": m.pk_id,
                        "constraints": m.constraints,
                        "public_inputs": m.public_inputs,
                    }),
                );
            }
            println!("{}", serde_json::Value::Object(summary));
        }
        Command::DevPtau { out, power, seed } => {
            let power = match power {
                Some(p) => p,
                None => dev::market_phase1_power()?,
            };
            eprintln!("veilwatt-params: writing an INSECURE phase 1 (power {power}) from public seed {seed}");
            let bytes = ceremony::ptau::write_insecure(power, &dev::phase1_secrets(seed))?;
            std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
        }
        Command::Check {
            dir,
            circuit,
            vk_id,
            pk_id,
        } => {
            let expected = ExpectedIds {
                vk_id: vk_id.parse()?,
                pk_id: pk_id.parse()?,
            };
            CircuitKeys::load(&dir, circuit, &expected)?;
            let m = read_manifest(&dir, circuit)?;
            println!("{}", serde_json::to_string(&m)?);
        }
    }
    Ok(())
}
