//! `veilwatt-prover`: the household's tool. Keeps an encrypted wallet and the statements the
//! meter signed, proves and submits sell/buy orders without revealing the readings, and reports
//! what the household traded, paid and saved.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use serde_json::{json, Value};
use veilwatt_circuits::statement::SignedPeriodStatement;
use veilwatt_params::MarketCircuit;
use veilwatt_prover::accounting;
use veilwatt_prover::client::{self, NodeClient};
use veilwatt_prover::household::{
    Household, OrderRecord, Settings, UnlinkableTerms, HOUSEHOLD_FORMAT,
};
use veilwatt_prover::notes::{self, NoteBook, PaymentAddress};
use veilwatt_prover::spend::SpendProver;
use veilwatt_prover::unlinkable::{cancel_order, plan_order, OrderPlan, UnlinkableOrderProver};
use veilwatt_prover::wallet::{KdfParams, WalletFile};
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::types::{
    Genesis, Hash32, MeterKey, Payout, Side, Transaction, TxBody, TxId,
};
use veilwatt_verifier::units::{kwh, signed_minor_units as money};

#[derive(Parser)]
#[command(
    name = "veilwatt-prover",
    version,
    about = "A household's Veilwatt wallet and prover"
)]
struct Cli {
    /// The household directory.
    #[arg(
        long,
        global = true,
        env = "VEILWATT_HOME",
        default_value = "veilwatt-household"
    )]
    home: PathBuf,
    /// Read the wallet passphrase from this file (first line) instead of
    /// $VEILWATT_PASSPHRASE or a prompt.
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Directory with the market's `order.pk`, `order.vk` and `order.json` (default: the
    /// development keys, for a market whose genesis names them).
    #[arg(long, global = true, env = "VEILWATT_PARAMS")]
    params: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone, Copy)]
struct Rounding {
    /// Round quantities down to a multiple of this many Wh (coarser quantities reveal less
    /// about the readings) [default: 100 on a market of unlinkable orders, else 1].
    #[arg(long)]
    round_wh: Option<u32>,
}

impl Rounding {
    /// The rounding unit on market `g`.
    fn unit(self, g: &Genesis) -> u32 {
        self.round_wh
            .unwrap_or(if g.anonymous.is_some() { 100 } else { 1 })
    }
}

#[derive(clap::Args)]
struct OrderArgs {
    /// Settlement period.
    #[arg(long)]
    period: u64,
    /// Quantity, kWh (up to three decimals).
    #[arg(long)]
    kwh: String,
    /// Limit price, minor currency units per kWh.
    #[arg(long)]
    price: u64,
    #[command(flatten)]
    rounding: Rounding,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the household directory and its encrypted wallet.
    Init {
        /// The validator API.
        #[arg(long)]
        node: String,
        /// The market's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// The household's meter: its public key (hex) or its key file.
        #[arg(long)]
        meter: String,
    },
    /// Print the wallet's address.
    Address,
    /// Import meter-signed statements (a file or a directory of .json files).
    Import {
        /// File or directory.
        path: PathBuf,
    },
    /// Prove and submit a sell order against a period's statement.
    Sell(OrderArgs),
    /// Prove and submit a buy order against a period's statement.
    Buy(OrderArgs),
    /// Cancel the household's order of a period while its gate is open (an unlinkable buy's
    /// escrow comes back as a note).
    Cancel {
        /// The order's period.
        #[arg(long)]
        period: u64,
    },
    /// Submit an order for every period with a statement and no order yet: sell the net
    /// surplus at --sell-min, buy the net demand at --buy-max.
    Auto {
        /// Ask price for surplus, minor units per kWh.
        #[arg(long)]
        sell_min: u64,
        /// Bid price for demand, minor units per kWh.
        #[arg(long)]
        buy_max: u64,
        #[command(flatten)]
        rounding: Rounding,
        /// Keep running: import new statements from --watch and submit orders as periods end.
        #[arg(long)]
        daemon: bool,
        /// Directory the meter drops statements into (with --daemon).
        #[arg(long)]
        watch: Option<PathBuf>,
        /// Seconds between rounds (with --daemon).
        #[arg(long, default_value_t = 10)]
        poll_secs: u64,
    },
    /// Balance, meter enrolment, statements and orders at a glance.
    Status,
    /// Every order with its fate on the ledger and its trades.
    History,
    /// Itemised statement for a range of periods, with savings against the utility's tariffs.
    Statement {
        /// First period.
        #[arg(long)]
        from: u64,
        /// Last period.
        #[arg(long)]
        to: u64,
    },
    /// Shielded money: the notes this household holds (synced from the node) and the wallet
    /// account's balance.
    Balance,
    /// Serve the household's own page on this machine (loopback only): statements, orders,
    /// trades and savings, updating as blocks commit. The readings never leave the machine.
    Ui {
        /// Address to serve on: a loopback address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: std::net::SocketAddr,
    },
    /// What the registrar needs to enrol this household's meter for unlinkable orders: the
    /// meter key and the commitment to the household's nullifier key (never the key itself).
    Enrolment,
    /// A fresh one-time payment address: give it to the registrar for a deposit into notes,
    /// or to whoever pays you. Use each address once.
    DepositTag,
    /// Pay shielded money to a payment address (`vwpay1...`).
    Transfer {
        /// The recipient's payment address.
        #[arg(long)]
        to: String,
        /// Amount, minor currency units (up to three decimals).
        #[arg(long)]
        amount: String,
    },
    /// Take shielded money out of the pool: to a bank account (--reference) or to this
    /// household's wallet balance (--to-wallet), which orders use.
    Withdraw {
        /// Amount, minor currency units (up to three decimals); the fee comes on top.
        #[arg(long)]
        amount: String,
        /// The bank payment's reference.
        #[arg(
            long,
            required_unless_present = "to_wallet",
            conflicts_with = "to_wallet"
        )]
        reference: Option<u64>,
        /// Credit the household's wallet balance instead of a bank account.
        #[arg(long)]
        to_wallet: bool,
    },
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn passphrase(cli: &Cli, confirm: bool) -> Result<String> {
    if let Some(f) = &cli.passphrase_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the passphrase file {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    if let Ok(p) = std::env::var("VEILWATT_PASSPHRASE") {
        return Ok(p);
    }
    let p = rpassword::prompt_password("wallet passphrase: ")?;
    if confirm && rpassword::prompt_password("repeat passphrase: ")? != p {
        bail!("the passphrases differ");
    }
    Ok(p)
}

fn open_key(cli: &Cli, h: &Household) -> Result<SigningKey> {
    let w = h.wallet()?;
    Ok(w.open(&passphrase(cli, false)?)?)
}

/// Parses an amount of minor currency units with at most three decimals into millis.
fn parse_amount(s: &str) -> Result<u64> {
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 3
    {
        bail!("--amount {s:?} is not a non-negative number with at most three decimals");
    }
    let millis = if int.is_empty() {
        Some(0)
    } else {
        int.parse::<u64>().ok()
    }
    .and_then(|i| i.checked_mul(1000))
    .and_then(|m| m.checked_add(format!("{frac:0<3}").parse::<u64>().unwrap_or(0)))
    .with_context(|| format!("--amount {s:?} is too large"))?;
    if millis == 0 {
        bail!("--amount must be positive");
    }
    Ok(millis)
}

/// The household's shielded wallet, synced with its node.
struct Shielded {
    home: Household,
    account: SigningKey,
    book: NoteBook,
    client: NodeClient,
}

impl Shielded {
    fn open(cli: &Cli) -> Result<Self> {
        let home = Household::open(&cli.home)?;
        if home.settings.genesis.shielded.is_none() {
            bail!("this household's market has no shielded pool");
        }
        let account = open_key(cli, &home)?;
        Self::with(home, account)
    }

    /// The wallet of `home`, opened with its account key.
    fn with(home: Household, account: SigningKey) -> Result<Self> {
        if home.settings.genesis.shielded.is_none() {
            bail!("this household's market has no shielded pool");
        }
        let key = notes::spending_key(&account);
        let book = match home.notes()? {
            Some(f) => f.open(key)?,
            None => NoteBook::new(key),
        };
        let client = NodeClient::new(&home.settings.node);
        Ok(Self {
            home,
            account,
            book,
            client,
        })
    }

    /// Scans every committed block the wallet has not seen, then stores it.
    async fn sync(&mut self) -> Result<()> {
        client::sync(
            &self.client,
            &self.home.settings.genesis,
            std::slice::from_mut(&mut self.book),
        )
        .await?;
        self.save()
    }

    fn save(&self) -> Result<()> {
        self.home
            .save_notes(&notes::NotesFile::seal(&self.book, &mut OsRng)?)?;
        Ok(())
    }

    fn genesis(&self) -> &Genesis {
        &self.home.settings.genesis
    }

    /// The join-split prover for this market: keys from --params, or the development keys.
    fn prover(&self, params: Option<&Path>) -> Result<SpendProver> {
        let g = self.genesis();
        let vk_id = g
            .shielded
            .as_ref()
            .context("this market has no shielded pool")?
            .vk_id;
        let keys = circuit_keys(params, g, MarketCircuit::JoinSplit, vk_id)?;
        Ok(SpendProver::new(keys.pk.clone(), keys.vk_id)?)
    }

    /// Plans, proves (with a spinner) and submits a spend; returns its id.
    async fn spend(
        &mut self,
        params: Option<&Path>,
        to: Option<&PaymentAddress>,
        amount: u64,
        payout: Payout,
        quiet: bool,
    ) -> Result<TxId> {
        self.sync().await?;
        let fee = self.genesis().shielded.as_ref().map_or(0, |s| s.min_fee);
        let request = self.book.plan(to, amount, fee, payout, &mut OsRng)?;
        // The plan handed out a change address: keep it even if proving fails.
        self.save()?;
        let prover = self.prover(params)?;
        let g = self.genesis().clone();
        let spinner = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            let s = indicatif::ProgressBar::new_spinner()
                .with_message("proving the spend (about a second)");
            s.enable_steady_tick(Duration::from_millis(120));
            s
        };
        let tx = tokio::task::spawn_blocking(move || {
            let signer = SigningKey::generate(&mut OsRng);
            prover.prove(
                &g.chain_id,
                g.tx_expiry(now()),
                &signer,
                request,
                &mut OsRng,
            )
        })
        .await??;
        spinner.finish_and_clear();
        Ok(self.client.submit(&tx).await?)
    }
}

/// Parses a kWh quantity with at most three decimals into Wh.
fn parse_kwh(s: &str) -> Result<u32> {
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        bail!("--kwh {s:?} is not a non-negative decimal number");
    }
    if frac.len() > 3 {
        bail!("--kwh {s:?} has more than three decimals (1 Wh is the smallest unit)");
    }
    let wh = int
        .parse::<u64>()
        .unwrap_or(if int.is_empty() { 0 } else { u64::MAX })
        .checked_mul(1000)
        .and_then(|w| w.checked_add(format!("{frac:0<3}").parse::<u64>().unwrap_or(0)))
        .and_then(|w| u32::try_from(w).ok())
        .with_context(|| format!("--kwh {s:?} is too large"))?;
    Ok(wh)
}

fn round(wh: u32, unit: u32) -> Result<u32> {
    if unit == 0 {
        bail!("--round-wh must be at least 1");
    }
    Ok(wh / unit * unit)
}

/// The keys of `circuit`, whose verifying key market `g` pins as `vk_id`: from the key
/// directory `params` (its provenance checked against the market's), or the development keys
/// on a market marked insecure.
fn circuit_keys(
    params: Option<&Path>,
    g: &Genesis,
    circuit: MarketCircuit,
    vk_id: Hash32,
) -> Result<Arc<veilwatt_params::CircuitKeys>> {
    let vk_id = veilwatt_params::KeyId(vk_id.0);
    match params {
        // The verifying key is pinned by the genesis, the proving key by the directory's
        // manifest; a proving key that does not match fails every proof's self-check.
        Some(dir) => {
            veilwatt_params::check_provenance(dir, g.insecure_dev_keys)?;
            let manifest = veilwatt_params::read_manifest(dir, circuit)?;
            Ok(Arc::new(veilwatt_params::CircuitKeys::load(
                dir,
                circuit,
                &veilwatt_params::ExpectedIds {
                    vk_id,
                    pk_id: manifest.pk_id,
                },
            )?))
        }
        None => {
            if !g.insecure_dev_keys {
                bail!(
                    "this market runs on keys from a ceremony ({} vk {}); give its key \
                     directory with --params",
                    circuit.name(),
                    Hash32(vk_id.0)
                );
            }
            let keys = veilwatt_params::dev::keys_of(circuit)
                .with_context(|| format!("loading the {} proving key", circuit.name()))?;
            if keys.vk_id != vk_id {
                bail!(
                    "this market's {} verifying key is {}; give its key directory with --params",
                    circuit.name(),
                    Hash32(vk_id.0)
                );
            }
            Ok(keys)
        }
    }
}

/// The provers of a market of unlinkable orders: the order circuit v2's, and the
/// join-split's for buy orders' escrows.
struct AnonymousProvers {
    orders: Arc<UnlinkableOrderProver>,
    spends: Arc<SpendProver>,
}

/// Everything needed to place orders.
struct Trader {
    home: Household,
    key: SigningKey,
    client: NodeClient,
    prover: Arc<Prover>,
    /// On a market of unlinkable orders (its orders are all unlinkable).
    anonymous: Option<AnonymousProvers>,
}

impl Trader {
    async fn new(cli: &Cli) -> Result<Self> {
        let home = Household::open(&cli.home)?;
        let key = open_key(cli, &home)?;
        let client = NodeClient::new(&home.settings.node);
        let genesis = &home.settings.genesis;
        genesis
            .validate()
            .context("this household's market genesis is not usable")?;
        if let Some(w) = genesis.insecure_keys_warning() {
            eprintln!("{w}");
        }
        let params = cli.params.as_deref();
        let keys = circuit_keys(params, genesis, MarketCircuit::Order, genesis.vk_id)?;
        let anonymous = match (&genesis.anonymous, &genesis.shielded) {
            (Some(a), Some(sh)) => {
                let orders = circuit_keys(params, genesis, MarketCircuit::OrderV2, a.vk_id)?;
                let spends = circuit_keys(params, genesis, MarketCircuit::JoinSplit, sh.vk_id)?;
                Some(AnonymousProvers {
                    orders: Arc::new(UnlinkableOrderProver::new(orders.pk.clone(), orders.vk_id)?),
                    spends: Arc::new(SpendProver::new(spends.pk.clone(), spends.vk_id)?),
                })
            }
            _ => None,
        };
        let prover = Arc::new(Prover::new(keys.pk.clone(), keys.vk_id)?);
        Ok(Self {
            home,
            key,
            client,
            prover,
            anonymous,
        })
    }

    fn genesis(&self) -> &Genesis {
        &self.home.settings.genesis
    }

    /// Why an order for `period` cannot be placed now, if it cannot.
    fn gate_problem(&self, period: u64, t: u64) -> Option<String> {
        let g = self.genesis();
        let end = g.period_end(period)?;
        let close = g.gate_close(period)?;
        if t < end {
            Some(format!(
                "period {period} has not ended yet (ends in {} s)",
                end - t
            ))
        } else if t >= close {
            Some(format!(
                "the gate of period {period} closed {} s ago",
                t - close
            ))
        } else {
            None
        }
    }

    /// Proves and submits one order; records it locally once the node admitted it.
    async fn place(
        &self,
        statement: SignedPeriodStatement,
        side: Side,
        quantity_wh: u32,
        price: u64,
    ) -> Result<OrderRecord> {
        let period = statement.statement.period;
        let g = self.genesis();
        if let Some(o) = self.home.orders()?.get(&period) {
            bail!(
                "an order for period {period} was already submitted ({})",
                o.id
            );
        }
        if price < g.price_floor || price > g.price_cap {
            bail!(
                "price {price} is outside the market's range {}-{} per kWh",
                g.price_floor,
                g.price_cap
            );
        }
        if quantity_wh == 0 {
            bail!("the quantity is zero (after rounding)");
        }
        if let Some(why) = self.gate_problem(period, now()) {
            bail!("{why}");
        }
        // A market with a registry takes unlinkable orders only.
        let (tx, unlinkable) = match &self.anonymous {
            Some(provers) => {
                let (tx, terms) = self
                    .unlinkable_order(provers, statement, side, quantity_wh, price)
                    .await?;
                (tx, Some(terms))
            }
            None => (
                self.wallet_order(statement, side, quantity_wh, price)
                    .await?,
                None,
            ),
        };
        let id = self.client.submit(&tx).await?;
        let rec = OrderRecord {
            period,
            id,
            side,
            quantity_wh,
            limit_price: price,
            submitted_at: now(),
            unlinkable,
            cancel: None,
        };
        self.home.record_order(&rec)?;
        Ok(rec)
    }

    /// A wallet-signed order: it names the meter and is signed by the household's account.
    async fn wallet_order(
        &self,
        statement: SignedPeriodStatement,
        side: Side,
        quantity_wh: u32,
        price: u64,
    ) -> Result<Transaction> {
        let g = self.genesis();
        let period = statement.statement.period;
        let prover = Arc::clone(&self.prover);
        let request = OrderRequest {
            side: side.into(),
            quantity_wh,
        };
        let proven =
            tokio::task::spawn_blocking(move || prover.prove(&statement, &request, &mut OsRng))
                .await??;
        Ok(Transaction::sign(
            &g.chain_id,
            TxBody::Order {
                meter: self.home.settings.meter,
                period,
                side,
                quantity_wh,
                limit_price: price,
                proof: proven.proof,
            },
            g.tx_expiry(now()),
            &self.key,
        ))
    }

    /// An unlinkable order: proven from the statement, the household's nullifier key and its
    /// registry path (rebuilt from the public leaves), naming a fresh payout target and the
    /// commitment to a fresh cancel key, a buy paying its escrow from the household's notes,
    /// signed by a one-time key; with what only the household keeps (payout target, cancel
    /// key, escrow).
    async fn unlinkable_order(
        &self,
        provers: &AnonymousProvers,
        statement: SignedPeriodStatement,
        side: Side,
        quantity_wh: u32,
        price: u64,
    ) -> Result<(Transaction, UnlinkableTerms)> {
        let g = self.genesis().clone();
        let mut wallet = Shielded::with(Household::open(self.home.dir())?, self.key.clone())?;
        wallet.sync().await?;
        let (tree, recent) = client::registry(&self.client).await?;
        let plan = plan_order(
            &g,
            &mut wallet.book,
            &tree,
            &recent,
            statement,
            side,
            quantity_wh,
            price,
            &mut OsRng,
        );
        // The addresses handed out are kept even if planning or proving fails.
        wallet.save()?;
        let OrderPlan { request, terms } = plan?;
        let (orders, spends) = (Arc::clone(&provers.orders), Arc::clone(&provers.spends));
        let tx = tokio::task::spawn_blocking(move || {
            let signer = SigningKey::generate(&mut OsRng);
            orders.prove(
                &g.chain_id,
                g.tx_expiry(now()),
                &signer,
                request,
                Some(spends.as_ref()),
                &mut OsRng,
            )
        })
        .await??;
        Ok((tx, terms))
    }
}

/// Cancels the household's open order of `period` while its gate is open: an unlinkable order
/// by revealing its cancel key (a buy's escrow comes back as a note to the order's payout
/// target), a wallet order with the account's signature. Records the cancel once the node
/// admitted it.
async fn cancel(
    home: &Household,
    key: &SigningKey,
    client: &NodeClient,
    period: u64,
) -> Result<OrderRecord> {
    let g = &home.settings.genesis;
    let mut order = home
        .orders()?
        .remove(&period)
        .with_context(|| format!("this household placed no order for period {period}"))?;
    if let Some(id) = order.cancel {
        bail!("the order of period {period} was already cancelled ({id})");
    }
    let t = now();
    if t >= g.gate_close(period).context("period overflow")? {
        bail!("the gate of period {period} has closed: its order can no longer be cancelled");
    }
    let tx = match &order.unlinkable {
        Some(terms) => {
            let statement = home
                .statement(period)?
                .with_context(|| format!("the statement of period {period} is missing"))?;
            cancel_order(
                g,
                notes::spending_key(key).viewing_key().nk,
                &statement.statement.meter,
                period,
                terms.cancel_key,
                g.tx_expiry(t),
                &mut OsRng,
            )
        }
        None => Transaction::sign(
            &g.chain_id,
            TxBody::CancelOrder { order: order.id },
            g.tx_expiry(t),
            key,
        ),
    };
    order.cancel = Some(client.submit(&tx).await?);
    home.record_order(&order)?;
    Ok(order)
}

fn order_json(o: &OrderRecord) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Sell => "sell",
        Side::Buy => "buy",
    }
}

/// One round of `auto`: an order for every stored statement with none yet whose gate is open.
async fn auto_round(
    t: &Trader,
    sell_min: u64,
    buy_max: u64,
    rounding: Rounding,
    json: bool,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let orders = t.home.orders()?;
    let now = now();
    let due: Vec<(u64, SignedPeriodStatement)> = t
        .home
        .statements()?
        .into_iter()
        .filter(|(p, _)| !orders.contains_key(p) && t.gate_problem(*p, now).is_none())
        .collect();
    let bar = if json || due.is_empty() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(due.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "proving {bar:30} {pos}/{len} periods {elapsed_precise} {msg}",
            )?,
        )
    };
    let (mut placed, mut skipped) = (Vec::new(), Vec::new());
    for (p, s) in due {
        bar.set_message(format!("period {p}"));
        let (imp, exp) = (s.statement.import_wh, s.statement.export_wh);
        let (side, net, price) = if exp > imp {
            (Side::Sell, exp - imp, sell_min)
        } else {
            (Side::Buy, imp - exp, buy_max)
        };
        let q = round(net, rounding.unit(t.genesis()))?;
        if q == 0 {
            skipped.push(json!({"period": p, "reason": "no net surplus or demand after rounding"}));
        } else {
            match t.place(s, side, q, price).await {
                Ok(o) => placed.push(order_json(&o)),
                Err(e) => skipped.push(json!({"period": p, "reason": format!("{e:#}")})),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((placed, skipped))
}

fn print(json: bool, v: &Value, text: impl FnOnce() -> String) {
    if json {
        println!("{v}");
    } else {
        println!("{}", text());
    }
}

fn meter_from_arg(s: &str) -> Result<MeterKey> {
    if let Ok(k) = MeterKey::from_hex(s) {
        k.to_public_key()
            .map_err(|e| anyhow::anyhow!("--meter is not a valid meter key: {e}"))?;
        return Ok(k);
    }
    let v: Value = serde_json::from_slice(
        &std::fs::read(Path::new(s))
            .with_context(|| format!("--meter {s:?} is neither a key nor a readable file"))?,
    )
    .with_context(|| format!("{s} is not JSON"))?;
    let k = v["public_key"]
        .as_str()
        .and_then(|h| MeterKey::from_hex(h).ok())
        .with_context(|| format!("{s} has no public_key"))?;
    k.to_public_key()
        .map_err(|e| anyhow::anyhow!("{s}: not a valid meter key: {e}"))?;
    Ok(k)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Init {
            node,
            genesis,
            meter,
        } => {
            let g = Genesis::read(genesis)?;
            let meter = meter_from_arg(meter)?;
            if cli.home.join("wallet.json").exists() {
                bail!(
                    "{} already holds a wallet; refusing to overwrite it",
                    cli.home.display()
                );
            }
            let pass = passphrase(&cli, true)?;
            let key = SigningKey::generate(&mut OsRng);
            let wallet = WalletFile::seal(&key, &pass, KdfParams::default(), &mut OsRng)?;
            let settings = Settings {
                format: HOUSEHOLD_FORMAT.into(),
                node: node.clone(),
                meter,
                genesis: g,
            };
            Household::create(&cli.home, settings, &wallet)?;
            let v = json!({"address": wallet.address, "meter": meter, "home": cli.home});
            print(cli.json, &v, || {
                format!(
                    "wallet created in {}\naddress: {}\nmeter:   {meter}\nAsk the registrar to enrol the meter to this address.",
                    cli.home.display(),
                    wallet.address
                )
            });
        }
        Cmd::Address => {
            let h = Household::open(&cli.home)?;
            let a = h.wallet()?.address;
            print(cli.json, &json!({"address": a}), || a.to_string());
        }
        Cmd::Import { path } => {
            let h = Household::open(&cli.home)?;
            let r = h.import(path)?;
            print(cli.json, &serde_json::to_value(&r)?, || {
                let n = r.imported.len();
                format!(
                    "{n} statement{} imported{}",
                    if n == 1 { "" } else { "s" },
                    if r.already_present.is_empty() {
                        String::new()
                    } else {
                        format!(", {} already present", r.already_present.len())
                    }
                )
            });
        }
        Cmd::Sell(a) | Cmd::Buy(a) => {
            let side = if matches!(cli.cmd, Cmd::Sell(_)) {
                Side::Sell
            } else {
                Side::Buy
            };
            let wh = parse_kwh(&a.kwh)?;
            let t = Trader::new(&cli).await?;
            let q = round(wh, a.rounding.unit(t.genesis()))?;
            let s = t.home.statement(a.period)?.with_context(|| {
                format!("no statement for period {}: import it first", a.period)
            })?;
            let o = t.place(s, side, q, a.price).await?;
            print(cli.json, &order_json(&o), || {
                format!(
                    "{} order for period {}: {} kWh at {} per kWh submitted as {}",
                    side_name(side),
                    o.period,
                    kwh(u64::from(o.quantity_wh)),
                    o.limit_price,
                    o.id
                )
            });
        }
        Cmd::Cancel { period } => {
            let h = Household::open(&cli.home)?;
            let key = open_key(&cli, &h)?;
            let client = NodeClient::new(&h.settings.node);
            let o = cancel(&h, &key, &client, *period).await?;
            print(cli.json, &order_json(&o), || {
                format!(
                    "the {} order of period {} ({}) is cancelled by {}",
                    side_name(o.side),
                    o.period,
                    o.id,
                    o.cancel.map(|c| c.to_string()).unwrap_or_default()
                )
            });
        }
        Cmd::Auto {
            sell_min,
            buy_max,
            rounding,
            daemon,
            watch,
            poll_secs,
        } => {
            let t = Trader::new(&cli).await?;
            // Registered before the first round, so a signal during a round ends the daemon
            // after that round instead of killing it mid-submission.
            use tokio::signal::unix::{signal, SignalKind};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            loop {
                if let Some(dir) = watch {
                    if let Err(e) = t.home.import(dir) {
                        eprintln!("import from {}: {e}", dir.display());
                    }
                }
                let (placed, skipped) =
                    auto_round(&t, *sell_min, *buy_max, *rounding, cli.json).await?;
                let v = json!({"placed": placed, "skipped": skipped});
                print(cli.json, &v, || {
                    let mut s = format!("{} orders submitted", placed.len());
                    for o in &placed {
                        s.push_str(&format!(
                            "\n  period {} {} {} kWh at {} ({})",
                            o["period"],
                            o["side"].as_str().unwrap_or(""),
                            kwh(o["quantity_wh"].as_u64().unwrap_or(0)),
                            o["limit_price"],
                            o["id"].as_str().unwrap_or("")
                        ));
                    }
                    for k in &skipped {
                        s.push_str(&format!(
                            "\n  period {} skipped: {}",
                            k["period"],
                            k["reason"].as_str().unwrap_or("")
                        ));
                    }
                    s
                });
                if !daemon {
                    break;
                }
                tokio::select! {
                    _ = interrupt.recv() => break,
                    _ = terminate.recv() => break,
                    _ = tokio::time::sleep(Duration::from_secs((*poll_secs).max(1))) => {}
                }
            }
        }
        Cmd::Status => {
            let h = Household::open(&cli.home)?;
            let address = h.wallet()?.address;
            let client = NodeClient::new(&h.settings.node);
            let node = client.status().await?;
            let account = client.account(&address).await?;
            let meter = client.meter(&h.settings.meter).await?;
            let statements = h.statements()?;
            let orders = h.orders()?;
            let t = now();
            let g = &h.settings.genesis;
            let awaiting: Vec<u64> = statements
                .keys()
                .filter(|p| !orders.contains_key(p) && g.gate_close(**p).is_some_and(|c| t < c))
                .copied()
                .collect();
            let enrolled = meter
                .as_ref()
                .is_some_and(|m| m.owner == Some(address) && !m.revoked);
            let balance = account.as_ref().map_or(0, |a| a.balance_millis);
            let escrow = account.as_ref().map_or(0, |a| a.escrow_millis);
            // On a market with a shielded pool: the notes too (synced; needs the passphrase,
            // which seals them).
            let shielded = if g.shielded.is_some() {
                let mut sh = Shielded::open(&cli)?;
                sh.sync().await?;
                Some(json!({
                    "balance_millis": sh.book.balance(),
                    "notes": sh.book.unspent().count(),
                    "synced_to": sh.book.height(),
                }))
            } else {
                None
            };
            let v = json!({
                "address": address,
                "shielded": shielded,
                "meter": h.settings.meter,
                "meter_enrolled": enrolled,
                "node": {"url": h.settings.node, "chain_id": node.chain_id, "height": node.height},
                "balance_millis": balance,
                "escrow_millis": escrow,
                "statements": statements.len(),
                "orders": orders.len(),
                "periods_awaiting_order": awaiting,
                "current_period": t.saturating_sub(g.genesis_time) / g.period_secs,
            });
            let notes_line = shielded.as_ref().map_or(String::new(), |s| {
                format!(
                    "\nnotes     {} in {} note(s)",
                    money(
                        i64::try_from(s["balance_millis"].as_u64().unwrap_or(0))
                            .unwrap_or(i64::MAX)
                    ),
                    s["notes"]
                )
            });
            print(cli.json, &v, || {
                format!(
                    "address   {address}\nmeter     {} ({})\nnode      {} ({}, height {})\nbalance   {} (in escrow {}){notes_line}\nstatements {}, orders {}, periods awaiting an order: {:?}",
                    h.settings.meter,
                    if enrolled { "enrolled" } else { "NOT enrolled to this address" },
                    h.settings.node,
                    node.chain_id,
                    node.height,
                    money(i64::try_from(balance).unwrap_or(i64::MAX)),
                    money(i64::try_from(escrow).unwrap_or(i64::MAX)),
                    statements.len(),
                    orders.len(),
                    awaiting
                )
            });
        }
        Cmd::Ui { listen } => {
            veilwatt_prover::ui::serve(
                cli.home.clone(),
                *listen,
                |addr| println!("household page: http://{addr}/ (Ctrl-C stops it)"),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await?;
        }
        Cmd::Balance => {
            let mut sh = Shielded::open(&cli)?;
            sh.sync().await?;
            let address = sh.home.wallet()?.address;
            let account = sh.client.account(&address).await?;
            let wallet = account.as_ref().map_or(0, |a| a.balance_millis);
            let notes: Vec<Value> = sh
                .book
                .unspent()
                .map(|n| json!({"value_millis": n.value, "position": n.position, "height": n.height}))
                .collect();
            let shielded = sh.book.balance();
            let v = json!({
                "shielded_millis": shielded,
                "notes": notes,
                "wallet_millis": wallet,
                "synced_to": sh.book.height(),
            });
            print(cli.json, &v, || {
                format!(
                    "shielded {} in {} note(s) (synced to block {})\nwallet   {}",
                    money(i64::try_from(shielded).unwrap_or(i64::MAX)),
                    notes.len(),
                    sh.book.height(),
                    money(i64::try_from(wallet).unwrap_or(i64::MAX)),
                )
            });
        }
        Cmd::Enrolment => {
            let h = Household::open(&cli.home)?;
            if h.settings.genesis.anonymous.is_none() {
                bail!("this household's market has no meter registry (unlinkable orders)");
            }
            let account = open_key(&cli, &h)?;
            let nk = notes::spending_key(&account).viewing_key().nk;
            let nk_commit = veilwatt_verifier::types::FieldBytes::from_field(
                veilwatt_circuits::registry::nk_commitment(nk),
            );
            let meter = h.settings.meter;
            let v = json!({"meter": meter, "nk_commit": nk_commit});
            print(cli.json, &v, || {
                format!(
                    "meter     {meter}\nnk_commit {nk_commit}\n(give both to the registrar: \
                     veilwatt-node registrar enroll-household --meter {meter} --nk-commit {nk_commit})"
                )
            });
        }
        Cmd::DepositTag => {
            let mut sh = Shielded::open(&cli)?;
            let address = sh.book.new_address();
            sh.save()?;
            let v = json!({
                "address": address.encode(),
                "owner_tag": veilwatt_verifier::types::FieldBytes::from_field(address.owner),
            });
            print(cli.json, &v, || {
                format!(
                    "{}\n(one-time: give it to the registrar for one deposit, or to one payer)",
                    address.encode()
                )
            });
        }
        Cmd::Transfer { to, amount } => {
            let to = PaymentAddress::decode(to)?;
            let amount = parse_amount(amount)?;
            let mut sh = Shielded::open(&cli)?;
            let id = sh
                .spend(
                    cli.params.as_deref(),
                    Some(&to),
                    amount,
                    Payout::None,
                    cli.json,
                )
                .await?;
            let v = json!({"id": id, "amount_millis": amount});
            print(cli.json, &v, || format!("transfer submitted: {id}"));
        }
        Cmd::Withdraw {
            amount,
            reference,
            to_wallet,
        } => {
            let amount = parse_amount(amount)?;
            let mut sh = Shielded::open(&cli)?;
            let payout = match (reference, to_wallet) {
                (_, true) => Payout::Wallet {
                    wallet: veilwatt_verifier::types::WalletKey(
                        sh.account.verifying_key().to_bytes(),
                    ),
                },
                (Some(r), false) => Payout::Bank { reference: *r },
                (None, false) => bail!("give --reference or --to-wallet"),
            };
            let id = sh
                .spend(cli.params.as_deref(), None, amount, payout, cli.json)
                .await?;
            let v = json!({"id": id, "amount_millis": amount});
            print(cli.json, &v, || format!("withdrawal submitted: {id}"));
        }
        Cmd::History => {
            let h = Household::open(&cli.home)?;
            let client = NodeClient::new(&h.settings.node);
            let f = accounting::fates(&h, &client).await?;
            print(cli.json, &serde_json::to_value(&f)?, || {
                let mut s = format!(
                    "{:>8} {:<4} {:>9} {:>5} {:<10} {:>9} {:>9} {:>6}",
                    "period", "side", "kWh", "limit", "status", "filled", "unmatched", "trades"
                );
                for o in &f {
                    s.push_str(&format!(
                        "\n{:>8} {:<4} {:>9} {:>5} {:<10} {:>9} {:>9} {:>6}",
                        o.order.period,
                        side_name(o.order.side),
                        kwh(u64::from(o.order.quantity_wh)),
                        o.order.limit_price,
                        if o.cleared {
                            "cleared"
                        } else {
                            o.status.as_str()
                        },
                        kwh(u64::from(o.filled_wh)),
                        kwh(u64::from(o.unmatched_wh)),
                        o.trades.len()
                    ));
                    for t in &o.trades {
                        let fee = match o.order.side {
                            Side::Buy => t.grid_fee + t.market_fee_buyer,
                            Side::Sell => t.market_fee_seller,
                        };
                        s.push_str(&format!(
                            "\n         trade {} kWh at {} (fees {})",
                            kwh(u64::from(t.quantity_wh)),
                            t.price,
                            money(i64::try_from(fee).unwrap_or(i64::MAX))
                        ));
                    }
                    match (&o.reason, o.status.as_str()) {
                        (Some(r), "rejected") => s.push_str(&format!("\n         rejected: {r}")),
                        (Some(r), _) => s.push_str(&format!("\n         {r}")),
                        (None, _) => {}
                    }
                }
                s
            });
        }
        Cmd::Statement { from, to } => {
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let h = Household::open(&cli.home)?;
            let client = NodeClient::new(&h.settings.node);
            let f = accounting::fates(&h, &client).await?;
            let s = accounting::statement(&h.settings.genesis, *from, *to, &f);
            print(cli.json, &serde_json::to_value(&s)?, || {
                let mut out = format!(
                    "Statement for periods {}-{} (tariffs: retail {}, feed-in {} per kWh)\n{:>8} {:<4} {:>9} {:>5} {:>10} {:>9} {:>9} {:>10} {:>10}",
                    s.from, s.to, s.retail_tariff, s.feed_in_tariff,
                    "period", "side", "kWh", "price", "energy", "grid fee", "mkt fee", "net", "saving"
                );
                for l in &s.lines {
                    out.push_str(&format!(
                        "\n{:>8} {:<4} {:>9} {:>5} {:>10} {:>9} {:>9} {:>10} {:>10}",
                        l.period,
                        side_name(l.side),
                        kwh(u64::from(l.quantity_wh)),
                        l.price,
                        money(i64::try_from(l.energy_millis).unwrap_or(i64::MAX)),
                        money(i64::try_from(l.grid_fee_millis).unwrap_or(i64::MAX)),
                        money(i64::try_from(l.market_fee_millis).unwrap_or(i64::MAX)),
                        money(l.net_millis),
                        money(l.saving_millis)
                    ));
                }
                let m = |x: u64| money(i64::try_from(x).unwrap_or(i64::MAX));
                out.push_str(&format!(
                    "\nsold {} kWh for {}, bought {} kWh for {}; grid fees {}, market fees {}; net {}\n\
                     unmatched (settled with the utility): {} kWh offered, {} kWh bid\n\
                     saving against the tariffs: {}{}",
                    kwh(s.sold_wh),
                    m(s.received_energy_millis),
                    kwh(s.bought_wh),
                    m(s.paid_energy_millis),
                    m(s.grid_fees_millis),
                    m(s.market_fees_millis),
                    money(s.net_millis),
                    kwh(s.unmatched_sell_wh),
                    kwh(s.unmatched_buy_wh),
                    money(s.saving_millis),
                    if s.orders_not_cleared > 0 {
                        format!("\n({} orders of the range not cleared yet)", s.orders_not_cleared)
                    } else {
                        String::new()
                    }
                ));
                out
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwh_parsing() {
        assert_eq!(parse_kwh("1").unwrap(), 1000);
        assert_eq!(parse_kwh("1.5").unwrap(), 1500);
        assert_eq!(parse_kwh("0.001").unwrap(), 1);
        assert_eq!(parse_kwh(".25").unwrap(), 250);
        assert!(parse_kwh("1.0001").is_err());
        assert!(parse_kwh("-1").is_err());
        assert!(parse_kwh("").is_err());
        assert!(parse_kwh("1e3").is_err());
        assert!(parse_kwh("99999999999").is_err());
        assert_eq!(round(1234, 100).unwrap(), 1200);
        assert!(round(1, 0).is_err());
    }
}
