//! `veilwatt-node`: run and administer a Veilwatt validator.

/// A block's state tree allocates and frees ~10^5 small nodes; mimalloc does it at a fraction
/// of glibc's cost (decision 0007, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rand_core::{OsRng, RngCore};
use veilwatt_node::config::{read_genesis, write_genesis, Home, KeyFile, LocalPorts, NodeConfig};
use veilwatt_node::consensus::codec::decode_commit_certificate;
use veilwatt_node::store::RocksStore;
use veilwatt_verifier::api::{TxStatus, TxStatusView};
use veilwatt_verifier::client::NodeClient;
use veilwatt_verifier::types::{
    AnonymousParams, ConsensusParams, FeeSchedule, Genesis, Hash32, Mechanism, MeterKey,
    ShieldedParams, SpamParams, Transaction, TxBody, Validator, WalletKey, MILLIS_PER_MINOR,
};

#[derive(Parser)]
#[command(name = "veilwatt-node", version, about = "Veilwatt validator node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum MechanismArg {
    Uniform,
    PayAsBid,
    Midpoint,
}

impl From<MechanismArg> for Mechanism {
    fn from(m: MechanismArg) -> Self {
        match m {
            MechanismArg::Uniform => Mechanism::Uniform,
            MechanismArg::PayAsBid => Mechanism::PayAsBid,
            MechanismArg::Midpoint => Mechanism::Midpoint,
        }
    }
}

/// Market parameters shared by `genesis` and `testnet`.
#[derive(clap::Args, Clone)]
struct MarketArgs {
    /// Chain id.
    #[arg(long, default_value = "veilwatt-local")]
    chain_id: String,
    /// Start of period 0, Unix seconds (default: now, rounded down to the period).
    #[arg(long)]
    genesis_time: Option<u64>,
    /// Settlement period length, seconds.
    #[arg(long, default_value_t = 900)]
    period_secs: u64,
    /// Gate delay after a period ends, seconds.
    #[arg(long, default_value_t = 300)]
    gate_delay_secs: u64,
    /// Clearing mechanism.
    #[arg(long, value_enum, default_value = "uniform")]
    mechanism: MechanismArg,
    /// Grid/wheeling fee, minor units per kWh (paid by buyers).
    #[arg(long, default_value_t = 4)]
    grid_fee: u64,
    /// Market fee, minor units per kWh.
    #[arg(long, default_value_t = 1)]
    market_fee: u64,
    /// Buyer's share of the market fee, basis points.
    #[arg(long, default_value_t = 5000)]
    buyer_share_bps: u16,
    /// Price floor (feed-in tariff), minor units per kWh.
    #[arg(long, default_value_t = 8)]
    price_floor: u64,
    /// Price cap (retail tariff), minor units per kWh.
    #[arg(long, default_value_t = 30)]
    price_cap: u64,
    /// Verifying-key id (hex) of the order circuit's keys, as `veilwatt-params ceremony
    /// finalize` prints it.
    #[arg(long, required_unless_present = "insecure_dev_keys")]
    vk_id: Option<String>,
    /// A play market on the INSECURE development keys (anyone can forge proofs): demos, tests.
    #[arg(long)]
    insecure_dev_keys: bool,
    /// Longest a transaction may stay valid after the block time, seconds (bounds the replay
    /// set).
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS)]
    max_tx_lifetime_secs: u64,
    /// Number of most recent period results kept in the committed state (older ones move to
    /// the archive).
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS)]
    result_retention_periods: u64,
    /// Most transactions in one block (every validator refuses a larger block).
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_MAX_BLOCK_TXS)]
    max_block_txs: u32,
    /// Largest encoded block, bytes (at most 8 MiB).
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_MAX_BLOCK_BYTES)]
    max_block_bytes: u64,
    /// How far a proposed block's time may be from a validator's clock, seconds; also how
    /// late after its gate an order can still be admitted.
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_MAX_CLOCK_SKEW_SECS)]
    max_clock_skew_secs: u64,
    /// Fee of every wallet-signed order, cancellation and withdrawal, millis (paid from the
    /// wallet's balance into the fee totals; the price of a transaction that costs validators
    /// work).
    #[arg(long, default_value_t = 0)]
    tx_fee: u64,
    /// Most cancellations of one meter's orders for one period.
    #[arg(long, default_value_t = veilwatt_verifier::types::DEFAULT_MAX_CANCELS_PER_PERIOD)]
    max_cancels_per_period: u32,
    /// Give the market a shielded pool (notes spent with join-split proofs).
    #[arg(long)]
    shielded: bool,
    /// Verifying-key id (hex) of the join-split circuit's keys (with --shielded; default with
    /// --insecure-dev-keys: the development key).
    #[arg(long, requires = "shielded")]
    joinsplit_vk_id: Option<String>,
    /// How many recent note-tree roots a spend may prove against.
    #[arg(long, default_value_t = 100)]
    note_root_history: u64,
    /// The smallest fee of a spend, millis.
    #[arg(long, default_value_t = 0)]
    spend_min_fee: u64,
    /// A meter registry for unlinkable orders (needs --shielded).
    #[arg(long, requires = "shielded")]
    anonymous: bool,
    /// The unlinkable order circuit's verifying-key id, hex (with --anonymous; with
    /// --insecure-dev-keys: the development key).
    #[arg(long, requires = "anonymous")]
    order_v2_vk_id: Option<String>,
    /// How many recent registry roots an unlinkable order may prove against.
    #[arg(long, default_value_t = 100)]
    registry_history: u64,
}

impl MarketArgs {
    fn genesis(&self, validators: Vec<Validator>, registrar: WalletKey) -> Result<Genesis> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let vk_id = match (&self.vk_id, self.insecure_dev_keys) {
            (Some(h), _) => Hash32::from_hex(h).map_err(anyhow::Error::msg)?,
            (None, true) => Hash32(veilwatt_params::dev::pinned_vk_id().0),
            (None, false) => anyhow::bail!(
                "pass --vk-id (from `veilwatt-params ceremony finalize`), or --insecure-dev-keys \
                 for a play market"
            ),
        };
        let shielded = if self.shielded {
            let vk_id = match (&self.joinsplit_vk_id, self.insecure_dev_keys) {
                (Some(h), _) => Hash32::from_hex(h).map_err(anyhow::Error::msg)?,
                (None, true) => Hash32(
                    veilwatt_params::dev::pinned_ids_of(veilwatt_params::MarketCircuit::JoinSplit)
                        .vk_id
                        .0,
                ),
                (None, false) => anyhow::bail!(
                    "pass --joinsplit-vk-id (from `veilwatt-params ceremony finalize`) with \
                     --shielded, or --insecure-dev-keys for a play market"
                ),
            };
            Some(ShieldedParams {
                vk_id,
                root_history: self.note_root_history,
                min_fee: self.spend_min_fee,
            })
        } else {
            None
        };
        let anonymous = if self.anonymous {
            let vk_id = match (&self.order_v2_vk_id, self.insecure_dev_keys) {
                (Some(h), _) => Hash32::from_hex(h).map_err(anyhow::Error::msg)?,
                (None, true) => Hash32(
                    veilwatt_params::dev::pinned_ids_of(veilwatt_params::MarketCircuit::OrderV2)
                        .vk_id
                        .0,
                ),
                (None, false) => anyhow::bail!(
                    "pass --order-v2-vk-id (from `veilwatt-params ceremony finalize`) with \
                     --anonymous, or --insecure-dev-keys for a play market"
                ),
            };
            Some(AnonymousParams {
                vk_id,
                registry_history: self.registry_history,
            })
        } else {
            None
        };
        let g = Genesis {
            chain_id: self.chain_id.clone(),
            genesis_time: self
                .genesis_time
                .unwrap_or(now - now % self.period_secs.max(1)),
            validators,
            registrar,
            period_secs: self.period_secs,
            gate_delay_secs: self.gate_delay_secs,
            mechanism: self.mechanism.into(),
            fees: FeeSchedule {
                grid_fee_per_kwh: self.grid_fee,
                market_fee_per_kwh: self.market_fee,
                market_fee_buyer_share_bps: self.buyer_share_bps,
            },
            price_floor: self.price_floor,
            price_cap: self.price_cap,
            vk_id,
            insecure_dev_keys: self.insecure_dev_keys,
            max_tx_lifetime_secs: self.max_tx_lifetime_secs,
            result_retention_periods: self.result_retention_periods,
            shielded,
            anonymous,
            consensus: ConsensusParams {
                max_block_txs: self.max_block_txs,
                max_block_bytes: self.max_block_bytes,
                max_clock_skew_secs: self.max_clock_skew_secs,
            },
            spam: SpamParams {
                tx_fee: self.tx_fee,
                max_cancels_per_period: self.max_cancels_per_period,
            },
        };
        g.validate()?;
        Ok(g)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a validator home: a new consensus key, config.toml and the genesis.
    Init {
        /// Genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Home directory to create.
        #[arg(long)]
        home: PathBuf,
        /// Node name.
        #[arg(long, default_value = "validator")]
        moniker: String,
        /// API listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
        /// p2p TCP port.
        #[arg(long, default_value_t = 27000)]
        p2p_port: u16,
    },
    /// Run a validator.
    Run {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Write a genesis file.
    Genesis {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Validators as NAME:PUBKEY_HEX[:POWER] (repeat).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// The registrar's Ed25519 public key, hex.
        #[arg(long)]
        registrar: String,
        #[command(flatten)]
        market: MarketArgs,
    },
    /// Generate a local network: keys, one genesis, one home per validator on 127.0.0.1.
    Testnet {
        /// Number of validators.
        #[arg(long, default_value_t = 1)]
        validators: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// First API port (validator i uses base + i; p2p base + 100 + i; the other validators'
        /// forwarded transactions base + 200 + i).
        #[arg(long, default_value_t = 26600)]
        base_port: u16,
        /// Target block interval, ms.
        #[arg(long, default_value_t = 1000)]
        block_interval_ms: u64,
        #[command(flatten)]
        market: MarketArgs,
    },
    /// The registrar's transactions (the utility or community operator): enrol a household's
    /// meter to its wallet, credit a deposit.
    Registrar {
        /// The registrar's key file (`{"public_key": .., "secret": ..}`, as `testnet` writes).
        #[arg(long)]
        key: PathBuf,
        /// A validator's API.
        #[arg(long)]
        node: String,
        /// Wait until the transaction is committed.
        #[arg(long)]
        wait: bool,
        #[command(subcommand)]
        action: RegistrarCmd,
    },
    /// Export committed blocks with their commit certificates (for offline audit).
    Export {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
        /// First height.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last height (default: the latest).
        #[arg(long)]
        to: Option<u64>,
        /// Output file (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a snapshot of the committed state at the latest height, with that block and its
    /// certificate: an auditor can start from it (`veilwatt-verifier audit --snapshot`).
    Snapshot {
        /// Node home directory.
        #[arg(long)]
        home: PathBuf,
        /// Output file (JSON lines).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum RegistrarCmd {
    /// Enrol a meter to the wallet that may trade against its statements.
    Enroll {
        /// The meter's public key, hex.
        #[arg(long)]
        meter: String,
        /// The household's wallet address, hex.
        #[arg(long)]
        owner: String,
    },
    /// Enrol a meter in the registry of unlinkable orders with its household's nullifier-key
    /// commitment (both from `veilwatt-prover enrolment`).
    EnrollHousehold {
        /// The meter's public key, hex.
        #[arg(long)]
        meter: String,
        /// The household's `nk_commit`, hex.
        #[arg(long)]
        nk_commit: String,
    },
    /// Revoke a meter: it backs no new order, wallet-signed or unlinkable.
    Revoke {
        /// The meter's public key, hex.
        #[arg(long)]
        meter: String,
    },
    /// Credit a household's account (money the household paid in to the registrar).
    Deposit {
        /// The wallet address, hex.
        #[arg(long)]
        to: String,
        /// Amount, minor currency units.
        #[arg(long)]
        amount: u64,
        /// The payment's reference (repeated deposits need distinct references).
        #[arg(long)]
        reference: u64,
    },
    /// Mint a shielded note for money a household paid in: to the one-time payment address
    /// its `veilwatt-prover deposit-tag` printed.
    Mint {
        /// The household's payment address (`vwpay1...`).
        #[arg(long)]
        to: String,
        /// Amount, minor currency units.
        #[arg(long)]
        amount: u64,
        /// The payment's reference.
        #[arg(long)]
        reference: u64,
    },
}

/// Signs and submits one registrar transaction.
async fn registrar(
    key: &Path,
    node: &str,
    wait: bool,
    action: RegistrarCmd,
) -> Result<serde_json::Value> {
    let signer = ed25519_dalek::SigningKey::from_bytes(&KeyFile::read_secret(key)?);
    let client = NodeClient::new(node);
    let status = client.status().await?;
    let chain_id = status.chain_id.as_str();
    let body = match action {
        RegistrarCmd::Enroll { meter, owner } => {
            let meter = MeterKey::from_hex(&meter).map_err(|e| anyhow::anyhow!("--meter: {e}"))?;
            meter
                .to_public_key()
                .map_err(|e| anyhow::anyhow!("--meter is not a valid meter key: {e}"))?;
            TxBody::EnrollMeter {
                meter,
                owner: WalletKey::from_hex(&owner).map_err(|e| anyhow::anyhow!("--owner: {e}"))?,
            }
        }
        RegistrarCmd::EnrollHousehold { meter, nk_commit } => {
            let meter = MeterKey::from_hex(&meter).map_err(|e| anyhow::anyhow!("--meter: {e}"))?;
            meter
                .to_public_key()
                .map_err(|e| anyhow::anyhow!("--meter is not a valid meter key: {e}"))?;
            let nk_commit = veilwatt_verifier::types::FieldBytes::from_hex(&nk_commit)
                .map_err(|e| anyhow::anyhow!("--nk-commit: {e}"))?;
            if nk_commit.to_field().is_none() {
                anyhow::bail!("--nk-commit is not a canonical field element");
            }
            TxBody::EnrollHousehold { meter, nk_commit }
        }
        RegistrarCmd::Revoke { meter } => TxBody::RevokeMeter {
            meter: MeterKey::from_hex(&meter).map_err(|e| anyhow::anyhow!("--meter: {e}"))?,
        },
        RegistrarCmd::Deposit {
            to,
            amount,
            reference,
        } => TxBody::Deposit {
            to: WalletKey::from_hex(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
            amount: amount
                .checked_mul(MILLIS_PER_MINOR)
                .context("--amount is too large")?,
            reference,
        },
        RegistrarCmd::Mint {
            to,
            amount,
            reference,
        } => {
            let to = veilwatt_verifier::address::PaymentAddress::decode(&to)
                .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            // A fresh rho: 248 random bits are always a canonical field element.
            let mut rho = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rho[..31]);
            TxBody::MintNote {
                value: amount
                    .checked_mul(MILLIS_PER_MINOR)
                    .context("--amount is too large")?,
                owner: veilwatt_verifier::types::FieldBytes::from_field(to.owner),
                rho: veilwatt_verifier::types::FieldBytes(rho),
                reference,
            }
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let expires_at =
        now + veilwatt_verifier::types::DEFAULT_TX_TTL_SECS.min(status.max_tx_lifetime_secs);
    let tx = Transaction::sign(chain_id, body, expires_at, &signer);
    let id = client.submit(&tx).await?;
    let status = if wait {
        match client
            .wait_for(&id, Duration::from_millis(100), Duration::from_secs(60))
            .await?
        {
            TxStatus::Rejected { reason, .. } => bail!("transaction {id} rejected: {reason}"),
            done => done,
        }
    } else {
        TxStatus::Pending
    };
    Ok(serde_json::to_value(TxStatusView { id, status })?)
}

fn random_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    s
}

fn public_of(secret: &[u8; 32]) -> WalletKey {
    WalletKey(
        ed25519_dalek::SigningKey::from_bytes(secret)
            .verifying_key()
            .to_bytes(),
    )
}

fn parse_validator(s: &str) -> Result<Validator> {
    let parts: Vec<&str> = s.split(':').collect();
    let (name, key, power) = match parts.as_slice() {
        [n, k] => (*n, *k, 1),
        [n, k, p] => (*n, *k, p.parse().context("validator power")?),
        _ => bail!("validator must be NAME:PUBKEY_HEX[:POWER], got {s:?}"),
    };
    Ok(Validator {
        name: name.to_owned(),
        key: WalletKey::from_hex(key).map_err(anyhow::Error::msg)?,
        power,
    })
}

fn init_tracing(single_validator: bool) {
    // A lone validator has no gossip peers: the engine's network layer would log every
    // publication as an error, so its logs are silenced unless RUST_LOG asks for them.
    let default = if single_validator {
        "info,arc_malachitebft_network=off"
    } else {
        "info"
    };
    veilwatt_node::run::install_logging(default);
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`), without the engine's shutdown
/// noise ([`veilwatt_node::run::is_shutdown_noise`]).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Calls `f` on every committed entry of `view`, in key order, a page at a time.
fn for_each_committed(
    view: &veilwatt_node::store::StoreView<'_>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    use veilwatt_verifier::state::{keys, StateRead};
    const PAGE: usize = 4096;
    let (mut from, to) = (Vec::new(), vec![keys::LOCAL]);
    loop {
        let page = view.scan(&from, &to, PAGE)?;
        for (k, v) in &page {
            f(k, v)?;
        }
        match page.last() {
            // The next key after the last one read.
            Some((k, _)) if page.len() == PAGE => from = [k.as_slice(), &[0]].concat(),
            _ => return Ok(()),
        }
    }
}

fn snapshot(home: &Path, out: &Path) -> Result<()> {
    use veilwatt_verifier::audit::ExportedBlock;
    use veilwatt_verifier::ledger::LedgerRead;
    use veilwatt_verifier::snapshot::{SnapshotHeader, SnapshotWriter, SNAPSHOT_FORMAT};
    let genesis = read_genesis(&home.join(veilwatt_node::config::GENESIS_FILE))?;
    let store = RocksStore::open_read_only(&home.join("data").join("ledger"))
        .context("opening the ledger")?;
    // One consistent view: the entries and the anchor block are of the same height.
    let view = store.snapshot();
    let height = view.meta()?.height;
    if height == 0 {
        bail!("nothing committed yet: a snapshot starts after a block");
    }
    let block = store
        .block(height)?
        .with_context(|| format!("block {height} missing"))?;
    let cert = store
        .certificate(height)?
        .with_context(|| format!("certificate {height} missing"))?;
    // Committed entries (the keys below the local tags) are counted first: the header says
    // how many follow, so a truncated file is detected.
    let mut count = 0u64;
    for_each_committed(&view, |_, _| {
        count += 1;
        Ok(())
    })?;
    let header = SnapshotHeader {
        format: SNAPSHOT_FORMAT.into(),
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        height,
        entries: count,
        anchor: ExportedBlock {
            hash: block.hash(),
            block,
            certificate: hex::encode(&cert),
        },
    };
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = SnapshotWriter::new(std::io::BufWriter::new(file), &header)?;
    for_each_committed(&view, |k, v| Ok(w.push(k, v)?))?;
    w.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    eprintln!(
        "snapshot of the state at height {height} ({count} entries) written to {}",
        out.display()
    );
    Ok(())
}

fn export(home: &Path, from: u64, to: Option<u64>, out: &Path) -> Result<()> {
    use veilwatt_verifier::audit::{ExportHeader, ExportWriter, ExportedBlock, EXPORT_FORMAT};
    let genesis = read_genesis(&home.join(veilwatt_node::config::GENESIS_FILE))?;
    let store = RocksStore::open_read_only(&home.join("data").join("ledger"))
        .context("opening the ledger")?;
    let top = store.height()?;
    let to = to.unwrap_or(top).min(top);
    if from == 0 || from > to {
        bail!("nothing to export: from {from} to {to} (ledger height {top})");
    }
    // One block at a time, straight to the file: memory does not grow with the ledger.
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        from,
        to,
    };
    let mut w = ExportWriter::new(std::io::BufWriter::new(file), &header)?;
    for h in from..=to {
        let block = store
            .block(h)?
            .with_context(|| format!("block {h} missing"))?;
        let cert = store
            .certificate(h)?
            .with_context(|| format!("certificate {h} missing"))?;
        decode_commit_certificate(&cert).with_context(|| format!("certificate {h}"))?;
        w.push(&ExportedBlock {
            hash: block.hash(),
            block,
            certificate: hex::encode(&cert),
        })?;
    }
    w.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    eprintln!("exported blocks {from}..={to} to {}", out.display());
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Init {
            genesis,
            home,
            moniker,
            api,
            p2p_port,
        } => {
            let g = read_genesis(&genesis)?;
            let secret = random_secret();
            Home::create(&home, &NodeConfig::new(&moniker, api, p2p_port), &g, secret)?;
            let key = public_of(&secret);
            println!(
                "{}",
                serde_json::json!({"home": home, "validator_key": key})
            );
            if !g.validators.iter().any(|v| v.key == key) {
                eprintln!(
                    "note: this key is not in the genesis validator set; add it with \
                     `veilwatt-node genesis --validator NAME:{key}` and copy the new genesis \
                     to {}",
                    home.join(veilwatt_node::config::GENESIS_FILE).display()
                );
            }
        }
        Cmd::Genesis {
            out,
            validators,
            registrar,
            market,
        } => {
            let validators = validators
                .iter()
                .map(|v| parse_validator(v))
                .collect::<Result<Vec<_>>>()?;
            let registrar = WalletKey::from_hex(&registrar).map_err(anyhow::Error::msg)?;
            let g = market.genesis(validators, registrar)?;
            write_genesis(&out, &g)?;
            println!("{}", serde_json::json!({"genesis": out, "hash": g.hash()}));
        }
        Cmd::Testnet {
            validators,
            out,
            base_port,
            block_interval_ms,
            market,
        } => {
            if validators == 0 || validators > 100 {
                bail!(
                    "--validators must be between 1 and 100 (ports base+i, base+100+i, base+200+i)"
                );
            }
            if usize::from(base_port) + 200 + validators > usize::from(u16::MAX) {
                bail!("--base-port too high for {validators} validators");
            }
            let secrets: Vec<[u8; 32]> = (0..validators).map(|_| random_secret()).collect();
            let registrar = random_secret();
            let set = secrets
                .iter()
                .enumerate()
                .map(|(i, s)| Validator {
                    name: format!("validator-{i}"),
                    key: public_of(s),
                    power: 1,
                })
                .collect();
            let g = market.genesis(set, public_of(&registrar))?;
            std::fs::create_dir_all(&out)?;
            write_genesis(&out.join("genesis.json"), &g)?;
            veilwatt_node::config::write_private(
                &out.join("registrar_key.json"),
                &serde_json::to_string_pretty(&serde_json::json!({
                    "public_key": public_of(&registrar),
                    "secret": hex::encode(registrar),
                }))?,
            )?;
            // Validator i: API on base + i, consensus on base + 100 + i, the other validators'
            // forwarded transactions on base + 200 + i.
            let api: Vec<u16> = (0..validators).map(|i| base_port + i as u16).collect();
            let ports = LocalPorts {
                p2p: api.iter().map(|p| p + 100).collect(),
                peer: api.iter().map(|p| p + 200).collect(),
                api,
            };
            for (i, secret) in secrets.iter().enumerate() {
                let moniker = format!("validator-{i}");
                let mut cfg = NodeConfig::local_network(&moniker, i, &ports);
                cfg.consensus.block_interval_ms = block_interval_ms;
                Home::create(&out.join(format!("node{i}")), &cfg, &g, *secret)?;
            }
            println!(
                "{}",
                serde_json::json!({"out": out, "validators": validators, "genesis_hash": g.hash()})
            );
        }
        Cmd::Run { home } => {
            let home = Home::load(&home)?;
            if let Some(w) = home.genesis.insecure_keys_warning() {
                eprintln!("\n!!! {w}\n");
            }
            init_tracing(home.genesis.validators.len() == 1);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let node = veilwatt_node::run::start(&home).await?;
                println!("{}", serde_json::json!({"api": node.api_addr.to_string()}));
                wait_for_signal().await;
                tracing::info!("shutting down");
                node.shutdown().await;
                anyhow::Ok(())
            })?;
        }
        Cmd::Export {
            home,
            from,
            to,
            out,
        } => export(&home, from, to, &out)?,
        Cmd::Snapshot { home, out } => snapshot(&home, &out)?,
        Cmd::Registrar {
            key,
            node,
            wait,
            action,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let v = rt.block_on(registrar(&key, &node, wait, action))?;
            println!("{v}");
        }
    }
    Ok(())
}
