//! `veilwatt-demo`: a local community from scratch, on the anonymous record. Writes a
//! genesis with short periods, a shielded pool and a meter registry (a market of unlinkable
//! orders), starts the validator(s), simulates the households' meters
//! (`veilwatt_prover::simulate`), enrols each meter in the registry with its household's
//! nullifier-key commitment, mints every household's deposit as a shielded note to a one-time
//! address, proves and submits every household's unlinkable order for each period as it ends
//! (no meter key, no wallet; a buy escrows its maximum cost from the household's notes), waits
//! for the periods to clear, has the households' wallets find their proceeds and refunds in
//! the note tree, and reports what the ledger says.
//!
//! Every step goes through the node's real HTTP API and the real provers; the report is read
//! back from the ledger (`/v1/periods/{p}`), not computed locally.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use std::sync::Arc;
use veilwatt_circuits::registry;
use veilwatt_node::config::{Home, LocalPorts, NodeConfig};
use veilwatt_params::MarketCircuit;
use veilwatt_prover::client::{self, NodeClient};
use veilwatt_prover::notes::{self, NoteBook};
use veilwatt_prover::simulate::{community, simulate_hour, Household, Site, Weather};
use veilwatt_prover::spend::SpendProver;
use veilwatt_prover::unlinkable::{plan_order, UnlinkableOrderProver};
use veilwatt_verifier::api::{PeriodView, TxStatus};
use veilwatt_verifier::clearing::Trade;
use veilwatt_verifier::types::*;
use veilwatt_verifier::units::{kwh, minor_units as units};

/// Demo settings.
pub struct DemoOptions {
    /// Households.
    pub households: usize,
    /// Periods traded.
    pub periods: u64,
    /// Validators.
    pub validators: usize,
    /// Period length, seconds (each period stands for one simulated hour).
    pub period_secs: u64,
    /// Seed of the simulation and the households' keys.
    pub seed: u64,
    /// Working directory (ledger, homes).
    pub dir: PathBuf,
}

/// Deposit credited to every household, minor units.
const DEPOSIT_UNITS: u64 = 50_000;
/// The demo market's smallest spend fee, millis (each buy's escrow pays it).
const SPEND_FEE: u64 = 10;
/// Quantities are rounded down to this many Wh, as `veilwatt-prover auto` does on a market of
/// unlinkable orders: the public quantity is not the exact net.
const QUANTITY_UNIT_WH: u32 = 100;
/// Simulated solar hour of the first period.
const FIRST_HOUR: f64 = 9.0;
const T: Duration = Duration::from_secs(120);

/// One period's line of the report.
#[derive(Serialize, Debug)]
pub struct PeriodLine {
    /// Period number.
    pub period: u64,
    /// Simulated solar hour it stands for.
    pub hour: String,
    /// Sell orders.
    pub sell_orders: u64,
    /// Buy orders.
    pub buy_orders: u64,
    /// Energy traded, Wh.
    pub volume_wh: u64,
    /// Clearing price, minor units per kWh.
    pub clearing_price: Option<u64>,
    /// Money paid by buyers to sellers for energy, millis.
    pub money_millis: u64,
    /// Grid/wheeling fees, millis.
    pub grid_fees_millis: u64,
    /// Market fees, millis.
    pub market_fees_millis: u64,
    /// Offered energy nobody bought (goes to the utility at the feed-in tariff), Wh.
    pub unmatched_sell_wh: u64,
    /// Demand not met locally (drawn from the utility at retail), Wh.
    pub unmatched_buy_wh: u64,
}

/// The community summary.
#[derive(Serialize, Debug)]
pub struct Summary {
    /// Households.
    pub households: usize,
    /// Validators.
    pub validators: usize,
    /// Orders submitted.
    pub orders: u64,
    /// Trades.
    pub trades: u64,
    /// Energy traded locally, Wh.
    pub energy_traded_wh: u64,
    /// Money that stayed in the community (paid by neighbours to neighbours), millis.
    pub money_kept_millis: u64,
    /// Fees, millis.
    pub fees_millis: u64,
    /// Average saving per household against selling everything at the feed-in tariff and
    /// buying everything at the retail tariff, millis.
    pub average_saving_millis: u64,
    /// Final height.
    pub height: u64,
    /// Unlinkable order proofs the first validator verified (Groth16, before anything was
    /// committed).
    pub order_proofs_verified: u64,
    /// Join-split proofs (buy orders' escrows) the first validator verified.
    pub spend_proofs_verified: u64,
    /// Orders on the ledger that name a meter or a wallet: none (every order is unlinkable).
    pub orders_naming_a_household: u64,
    /// What the households' wallets hold in notes at the end, found by scanning the ledger
    /// (deposits, less escrows and fees, plus proceeds and refunds), millis.
    pub wallet_notes_millis: u64,
    /// One-minute meter readings the households used and kept: none left the homes.
    pub private_readings: u64,
    /// Wall time of the demo, seconds.
    pub seconds: u64,
}

/// The whole report.
#[derive(Serialize, Debug)]
pub struct Report {
    /// Per period.
    pub periods: Vec<PeriodLine>,
    /// Community summary.
    pub summary: Summary,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn secret(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::RngCore::fill_bytes(rng, &mut s);
    s
}

fn free_port() -> Result<u16> {
    Ok(veilwatt_node::config::free_local_port()?)
}

/// The running validators: one in this process, or several child processes.
enum Validators {
    Embedded(veilwatt_node::run::RunningNode),
    Processes(Vec<std::process::Child>),
}

impl Validators {
    async fn stop(self) {
        match self {
            Validators::Embedded(node) => node.shutdown().await,
            Validators::Processes(children) => {
                for mut c in children {
                    // SIGTERM for a graceful stop, then reap.
                    let _ = std::process::Command::new("kill")
                        .arg(c.id().to_string())
                        .status();
                    let _ = c.wait();
                }
            }
        }
    }
}

/// The order a household places for a period's readings: sell its net surplus or buy its net
/// demand, rounded down; asks between the feed-in tariff and 40 % of the way to retail, bids
/// from 60 % of the way to retail.
fn choose_order(
    g: &Genesis,
    import_wh: u32,
    export_wh: u32,
    rng: &mut ChaCha20Rng,
) -> Option<(Side, u32, u64)> {
    let (side, net) = if export_wh > import_wh {
        (Side::Sell, export_wh - import_wh)
    } else {
        (Side::Buy, import_wh - export_wh)
    };
    let q = net / QUANTITY_UNIT_WH * QUANTITY_UNIT_WH;
    if q == 0 {
        return None;
    }
    let spread = g.price_cap - g.price_floor;
    let x = rand::RngCore::next_u64(rng) % (spread * 4 / 10 + 1);
    let price = match side {
        Side::Sell => g.price_floor + x,
        Side::Buy => g.price_cap - x,
    };
    Some((side, q, price))
}

/// Waits until every one of `ids` is committed (one deadline for all).
async fn wait_committed(node: &NodeClient, ids: &[TxId]) -> Result<()> {
    let deadline = Instant::now() + T;
    for id in ids {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.wait_for(id, Duration::from_millis(100), left).await? {
            TxStatus::Committed { .. } => {}
            other => bail!("transaction {id}: {other:?}"),
        }
    }
    Ok(())
}

async fn sleep_until(t: u64) {
    while now() < t {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let marker = dir.join("veilwatt-demo");
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !marker.exists() && !empty {
            bail!(
                "{} exists and is not a demo directory; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("veilwatt-demo"), "created by veilwatt-demo\n")?;
    Ok(())
}

/// Runs the demo; progress goes to stderr.
pub async fn run(opts: DemoOptions) -> Result<Report> {
    if opts.households == 0 || opts.periods == 0 || opts.validators == 0 {
        bail!("--households, --periods and --validators must be at least 1");
    }
    let started = Instant::now();
    prepare_dir(&opts.dir)?;
    let mut rng = ChaCha20Rng::seed_from_u64(opts.seed);

    // Genesis: short periods; the gate leaves time to prove every household's order.
    let registrar = SigningKey::from_bytes(&secret(&mut rng));
    let secrets: Vec<[u8; 32]> = (0..opts.validators).map(|_| secret(&mut rng)).collect();
    let period = opts.period_secs.max(2);
    let t = now();
    let g = Genesis {
        chain_id: "veilwatt-demo".into(),
        genesis_time: t - t % period,
        validators: secrets
            .iter()
            .enumerate()
            .map(|(i, s)| Validator {
                name: format!("validator-{i}"),
                key: WalletKey(SigningKey::from_bytes(s).verifying_key().to_bytes()),
                power: 1,
            })
            .collect(),
        registrar: WalletKey(registrar.verifying_key().to_bytes()),
        period_secs: period,
        // About a second of proving per household and period.
        gate_delay_secs: 2 * period + opts.households as u64 + 10,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 4,
            market_fee_per_kwh: 1,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32(veilwatt_params::dev::pinned_vk_id().0),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: Some(ShieldedParams {
            vk_id: Hash32(
                veilwatt_params::dev::pinned_ids_of(MarketCircuit::JoinSplit)
                    .vk_id
                    .0,
            ),
            // A buy's escrow proves against the root its wallet synced to at the period's
            // end, and every block with escrows or clearing mints records a new one.
            root_history: MAX_ROOT_HISTORY,
            min_fee: SPEND_FEE,
        }),
        anonymous: Some(AnonymousParams {
            vk_id: Hash32(
                veilwatt_params::dev::pinned_ids_of(MarketCircuit::OrderV2)
                    .vk_id
                    .0,
            ),
            // The registry changes only while the households enrol.
            registry_history: 16,
        }),
        consensus: Default::default(),
        spam: Default::default(),
    };
    g.validate()?;

    // Validators.
    let n = opts.validators;
    let ports = LocalPorts::pick(n, free_port)?;
    let mut homes = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        let mut cfg = NodeConfig::local_network(&format!("validator-{i}"), i, &ports);
        cfg.consensus.block_interval_ms = 500;
        let home = opts.dir.join(format!("node{i}"));
        Home::create(&home, &cfg, &g, *s)?;
        homes.push(home);
    }
    let validators = if n == 1 {
        let home = Home::load(&homes[0])?;
        Validators::Embedded(veilwatt_node::run::start(&home).await?)
    } else {
        let exe = node_binary()?;
        let mut children = Vec::new();
        for (i, h) in homes.iter().enumerate() {
            let log = std::fs::File::create(opts.dir.join(format!("node{i}.log")))?;
            children.push(
                std::process::Command::new(&exe)
                    .args(["run", "--home"])
                    .arg(h)
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .spawn()
                    .context("starting a validator process")?,
            );
        }
        Validators::Processes(children)
    };
    eprintln!(
        "the market, live while the demo runs: http://127.0.0.1:{}/",
        ports.api[0]
    );
    let result = community_run(&opts, &g, &registrar, &ports.api, &mut rng, started).await;
    validators.stop().await;
    result
}

/// The `veilwatt-node` binary next to this one (the workspace builds them side by side), for
/// validators run as processes.
fn node_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?
        .with_file_name(format!("veilwatt-node{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        bail!(
            "{} is not built: more than one validator runs as veilwatt-node processes \
             (`cargo build --release --workspace --bins`)",
            exe.display()
        );
    }
    Ok(exe)
}

async fn community_run(
    opts: &DemoOptions,
    g: &Genesis,
    registrar: &SigningKey,
    api_ports: &[u16],
    rng: &mut ChaCha20Rng,
    started: Instant,
) -> Result<Report> {
    let clients: Vec<NodeClient> = api_ports
        .iter()
        .map(|p| NodeClient::new(&format!("http://127.0.0.1:{p}")))
        .collect();
    let first = &clients[0];
    let t0 = Instant::now();
    while first.status().await.is_err() {
        if t0.elapsed() > T {
            bail!("the validator API did not come up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Households: the registrar enrols each meter in the registry of unlinkable orders with
    // the commitment to its household's nullifier key, and mints each deposit as a shielded
    // note to a one-time address of the household (buy orders escrow from it).
    let mut homes: Vec<Household> = community(opts.households, opts.seed);
    let mut books: Vec<NoteBook> = homes
        .iter()
        .map(|_| NoteBook::new(notes::spending_key(&SigningKey::from_bytes(&secret(rng)))))
        .collect();
    let mut setup = Vec::new();
    for (i, (h, book)) in homes.iter().zip(&mut books).enumerate() {
        let to = book.new_address();
        let mut rho = [0u8; 32];
        rand::RngCore::fill_bytes(rng, &mut rho[..31]);
        for body in [
            TxBody::EnrollHousehold {
                meter: MeterKey::from_public_key(&h.meter.public_key()),
                nk_commit: FieldBytes::from_field(registry::nk_commitment(book.nk())),
            },
            TxBody::MintNote {
                value: DEPOSIT_UNITS * 1_000,
                owner: FieldBytes::from_field(to.owner),
                rho: FieldBytes(rho),
                reference: i as u64,
            },
        ] {
            let tx = Transaction::sign(&g.chain_id, body, g.tx_expiry(now()), registrar);
            setup.push(clients[i % clients.len()].submit(&tx).await?);
        }
    }
    wait_committed(first, &setup).await?;
    client::sync(first, g, &mut books).await?;
    // The registry as its public leaves give it (each household finds its own path in it).
    let (registry, recent_roots) = client::registry(first).await?;
    eprintln!(
        "{} households enrolled for unlinkable orders and funded with shielded notes \
         ({} with PV, {} with batteries)",
        homes.len(),
        homes.iter().filter(|h| h.pv_peak_w > 0.0).count(),
        homes.iter().filter(|h| h.battery_wh > 0.0).count()
    );

    // Periods: the next full period and the ones after it.
    let order_keys = veilwatt_params::dev::keys_of(MarketCircuit::OrderV2)?;
    let spend_keys = veilwatt_params::dev::keys_of(MarketCircuit::JoinSplit)?;
    let provers = Arc::new((
        UnlinkableOrderProver::new(order_keys.pk.clone(), order_keys.vk_id)?,
        SpendProver::new(spend_keys.pk.clone(), spend_keys.vk_id)?,
    ));
    let first_period = (now() - g.genesis_time) / g.period_secs + 1;
    let periods: Vec<u64> = (first_period..first_period + opts.periods).collect();
    let site = Site::default();
    let mut weather = Weather::new(opts.seed);
    let bar = ProgressBar::new(opts.households as u64 * opts.periods).with_style(
        ProgressStyle::with_template(
            "proving {bar:40} {pos}/{len} orders ({msg}) {elapsed_precise}",
        )?,
    );
    let mut orders = 0u64;
    let mut private_readings = 0u64;
    let mut submitted = Vec::new();
    let mut last_period = 0;
    for (k, &p) in periods.iter().enumerate() {
        let end = g.period_end(p).context("period overflow")?;
        bar.set_message(format!("period {p} ends in {}s", end.saturating_sub(now())));
        sleep_until(end).await;
        bar.set_message(format!("period {p}"));
        // The last period's escrows are on the ledger: the wallets see their change notes.
        wait_committed(first, &submitted[last_period..]).await?;
        last_period = submitted.len();
        client::sync(first, g, &mut books).await?;
        // The meters close the period and sign their statements for this market.
        let readings = simulate_hour(site, &mut weather, &mut homes, FIRST_HOUR + k as f64);
        private_readings += readings.iter().map(|r| r.minutes.len() as u64).sum::<u64>();
        // The households submit in a fresh order every period: a fixed order would put each
        // household at the same position in every period's blocks, linking its orders.
        let mut turn: Vec<usize> = (0..homes.len()).collect();
        rand::seq::SliceRandom::shuffle(turn.as_mut_slice(), rng);
        for i in turn {
            let (h, book, r) = (&homes[i], &mut books[i], &readings[i]);
            let Some((side, q, price)) = choose_order(g, r.import_wh, r.export_wh, rng) else {
                bar.inc(1);
                continue;
            };
            let statement = r.sign(&h.meter, p, Some(g.market_id()));
            let plan = plan_order(
                g,
                book,
                &registry,
                &recent_roots,
                statement,
                side,
                q,
                price,
                rng,
            )?;
            let provers = Arc::clone(&provers);
            let (chain_id, expires_at) = (g.chain_id.clone(), g.tx_expiry(now()));
            let seed = opts.seed ^ (p << 20) ^ i as u64;
            let tx = tokio::task::spawn_blocking(move || {
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                // A one-time signer: the order names no wallet.
                let signer = SigningKey::from_bytes(&secret(&mut rng));
                let (orders, spends) = &*provers;
                orders.prove(
                    &chain_id,
                    expires_at,
                    &signer,
                    plan.request,
                    Some(spends),
                    &mut rng,
                )
            })
            .await??;
            submitted.push(clients[i % clients.len()].submit(&tx).await?);
            orders += 1;
            bar.inc(1);
        }
    }
    bar.finish_with_message("all orders submitted");
    wait_committed(first, &submitted[last_period..]).await?;

    // Wait for every period to clear, then read the ledger's own figures.
    let last_close = g
        .gate_close(*periods.last().unwrap_or(&first_period))
        .unwrap_or(0);
    eprintln!(
        "waiting for the last gate to close ({}s)",
        last_close.saturating_sub(now())
    );
    let mut lines = Vec::new();
    let mut trades_all: Vec<Trade> = Vec::new();
    for (k, &p) in periods.iter().enumerate() {
        let t0 = Instant::now();
        let v = loop {
            match first.period(p).await? {
                PeriodView::Cleared(v) => break v,
                PeriodView::Open(_)
                    if t0.elapsed() > T + Duration::from_secs(g.gate_delay_secs) =>
                {
                    bail!("period {p} did not clear")
                }
                PeriodView::Open(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let h = FIRST_HOUR as u64 + k as u64;
        lines.push(PeriodLine {
            period: p,
            hour: format!("{h:02}:00-{:02}:00", h + 1),
            sell_orders: v.orders.sell,
            buy_orders: v.orders.buy,
            volume_wh: v.volume_wh,
            clearing_price: v.clearing_price,
            money_millis: v.money_exchanged_millis,
            grid_fees_millis: v.fees_millis.grid,
            market_fees_millis: v.fees_millis.market,
            unmatched_sell_wh: v.unmatched_wh.sell,
            unmatched_buy_wh: v.unmatched_wh.buy,
        });
        trades_all.extend(v.trades);
    }

    // Savings against the plain utility tariffs of genesis (unmatched energy goes to or comes
    // from the utility at those tariffs either way, so only traded energy saves anything).
    let mut saving: i128 = 0;
    for t in &trades_all {
        let q = i128::from(t.quantity_wh);
        let (value, grid, fee_buyer, fee_seller) = (
            i128::from(t.energy_value),
            i128::from(t.grid_fee),
            i128::from(t.market_fee_buyer),
            i128::from(t.market_fee_seller),
        );
        let buyer_paid = value + grid + fee_buyer;
        let seller_got = value - fee_seller;
        saving += q * i128::from(g.price_cap) - buyer_paid;
        saving += seller_got - q * i128::from(g.price_floor);
    }
    // The households' wallets find their proceeds and refunds: notes the clearing minted to
    // the payout targets their orders named, known to nobody else.
    client::sync(first, g, &mut books).await?;
    // The public record: no order names a household's meter (or any wallet).
    let meters: Vec<String> = homes
        .iter()
        .map(|h| MeterKey::from_public_key(&h.meter.public_key()).to_hex())
        .collect();
    let mut orders_naming_a_household = 0u64;
    for block in first.blocks_from(1).await? {
        let block = block.block();
        for tx in &block.txs {
            let named = match &tx.body {
                TxBody::Order { .. } => true,
                TxBody::UnlinkableOrder { .. } | TxBody::CancelUnlinkable { .. } => {
                    let text = serde_json::to_string(tx)?;
                    meters.iter().any(|m| text.contains(m.as_str()))
                }
                _ => false,
            };
            orders_naming_a_household += u64::from(named);
        }
    }
    let status = first.status().await?;
    let metrics = first.metrics().await?;
    let money: u64 = lines.iter().map(|l| l.money_millis).sum();
    let summary = Summary {
        households: opts.households,
        validators: opts.validators,
        orders,
        trades: trades_all.len() as u64,
        energy_traded_wh: lines.iter().map(|l| l.volume_wh).sum(),
        money_kept_millis: money,
        fees_millis: lines
            .iter()
            .map(|l| l.grid_fees_millis + l.market_fees_millis)
            .sum(),
        average_saving_millis: u64::try_from(saving.max(0) / opts.households as i128).unwrap_or(0),
        height: status.height,
        order_proofs_verified: proofs_verified(&metrics, "unlinkable-order"),
        spend_proofs_verified: proofs_verified(&metrics, "join-split"),
        orders_naming_a_household,
        wallet_notes_millis: books.iter().map(NoteBook::balance).sum(),
        private_readings,
        seconds: started.elapsed().as_secs(),
    };
    Ok(Report {
        periods: lines,
        summary,
    })
}

/// The valid proofs of `circuit` that a node's `/metrics` text counts.
fn proofs_verified(metrics: &str, circuit: &str) -> u64 {
    let circuit = format!("circuit=\"{circuit}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("veilwatt_proofs_verified_total{"))
        .filter(|l| l.contains(&circuit) && l.contains("result=\"valid\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The report as terminal tables (money in minor units with two decimals, energy in kWh).
pub fn render(r: &Report) -> String {
    let mut rows: Vec<[String; 10]> = vec![[
        "period".into(),
        "hour".into(),
        "sell".into(),
        "buy".into(),
        "traded kWh".into(),
        "price/kWh".into(),
        "paid".into(),
        "grid fees".into(),
        "market fees".into(),
        "unmatched kWh (sell/buy)".into(),
    ]];
    for l in &r.periods {
        rows.push([
            l.period.to_string(),
            l.hour.clone(),
            l.sell_orders.to_string(),
            l.buy_orders.to_string(),
            kwh(l.volume_wh),
            l.clearing_price.map_or("-".into(), |p| p.to_string()),
            units(l.money_millis),
            units(l.grid_fees_millis),
            units(l.market_fees_millis),
            format!("{} / {}", kwh(l.unmatched_sell_wh), kwh(l.unmatched_buy_wh)),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (k, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
        if k == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 18));
            out.push('\n');
        }
    }
    let s = &r.summary;
    let lines = [
        format!(
            "\ncommunity of {} households, {} validator(s), {} s",
            s.households, s.validators, s.seconds
        ),
        format!("  orders {}, trades {}", s.orders, s.trades),
        format!(
            "  energy traded locally         {} kWh",
            kwh(s.energy_traded_wh)
        ),
        format!(
            "  money kept in the community   {}",
            units(s.money_kept_millis)
        ),
        format!("  fees                          {}", units(s.fees_millis)),
        format!(
            "  average saving per household  {} (against the utility's tariffs)",
            units(s.average_saving_millis)
        ),
        format!("  ledger height                 {}", s.height),
        format!(
            "  proven                        {} unlinkable order proofs and {} join-split \
             proofs (buy escrows) verified by the validator before commit",
            s.order_proofs_verified, s.spend_proofs_verified
        ),
        format!(
            "  stayed private                {} one-minute meter readings: they never left the \
             households;",
            s.private_readings
        ),
        format!(
            "                                the ledger holds each order's quantity (rounded \
             down to {QUANTITY_UNIT_WH} Wh), price and proof,"
        ),
        format!(
            "                                and no household ({} orders name a meter or a \
             wallet; proceeds are paid as notes)",
            s.orders_naming_a_household
        ),
        format!(
            "  households' wallets           {} in notes, proceeds and refunds found by \
             scanning the ledger",
            units(s.wallet_notes_millis)
        ),
        "  keys                          INSECURE development keys (a play market: anyone can \
         forge its proofs; a real market runs on keys from `veilwatt-params ceremony`)"
            .to_owned(),
    ];
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}
