//! `veilwatt-verifier`: the regulator's tool. Audits a ledger (an export file or a live node)
//! against the genesis without trusting any validator, and checks single orders' proofs.

/// The audit's replay keeps a city's state and tree, millions of small allocations freed and
/// made again every block: under glibc's malloc its resident memory was half as large again as
/// its heap (docs/benchmarks.md, "The city-day audit's memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use veilwatt_params::{KeyFile, KeyId, MarketCircuit};
use veilwatt_verifier::api::PeriodView;
use veilwatt_verifier::audit::{
    audit_stream, audit_stream_from, AuditError, AuditReport, ExportHeader, ExportReader,
    ExportedBlock, PeriodFigures, Progress, EXPORT_FORMAT,
};
use veilwatt_verifier::client::NodeClient;
use veilwatt_verifier::ledger::MarketVerifier;
use veilwatt_verifier::types::{Genesis, Transaction, TxBody};
use veilwatt_verifier::units::{kwh, minor_units as units};
use veilwatt_verifier::{PublicStatement, Verifier};

#[derive(Parser)]
#[command(
    name = "veilwatt-verifier",
    version,
    about = "Audit a Veilwatt ledger; check single orders"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify the hash chain, every commit certificate and every proof, replay every block
    /// through the state machine, and report the market's figures per period.
    Audit {
        /// The market's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Directory holding the market's `order.vk` (default: the development key).
        #[arg(long)]
        params: Option<PathBuf>,
        /// A `veilwatt-node export` file.
        #[arg(long, conflicts_with = "node", required_unless_present = "node")]
        ledger: Option<PathBuf>,
        /// A validator's API: fetch every block with its certificate, and compare the node's
        /// own period figures with the replay.
        #[arg(long)]
        node: Option<String>,
        /// Start from a `veilwatt-node snapshot` of the state after block H instead of the
        /// genesis (its certificate is checked and its entries must rebuild the state root
        /// block H commits); the ledger must then start at block H + 1
        /// (`veilwatt-node export --from H+1`).
        #[arg(long, requires = "ledger")]
        snapshot: Option<PathBuf>,
        /// First period of the report.
        #[arg(long)]
        from: Option<u64>,
        /// Last period of the report.
        #[arg(long)]
        to: Option<u64>,
        /// Print the report as JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print the per-period figures as CSV.
        #[arg(long)]
        csv: bool,
        /// Also write the report as a self-contained HTML page with charts.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Check one order's proof (its JSON as `GET /v1/tx/{id}` or a block returns it).
    VerifyProof {
        /// The market's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Directory holding the market's `order.vk` (default: the development key).
        #[arg(long)]
        params: Option<PathBuf>,
        /// The order transaction, JSON (`-` for stdin).
        #[arg(long)]
        order: PathBuf,
    },
}

/// A progress bar per stage; remembers how long each stage took.
struct Bar(
    Mutex<Option<ProgressBar>>,
    Mutex<Vec<(String, std::time::Instant)>>,
);

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), std::time::Instant::now()));
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = g.take() {
            b.finish_and_clear();
        }
        let style =
            ProgressStyle::with_template("{prefix:>12} {bar:40} {pos}/{len} {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        let b = ProgressBar::new(total).with_style(style);
        b.set_prefix(name.to_owned());
        *g = Some(b);
    }
    fn advance(&self, n: u64) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(n);
        }
    }
}

impl Bar {
    fn new() -> Self {
        Self(Mutex::new(None), Mutex::new(Vec::new()))
    }

    /// Ends the last stage; the time of each stage, e.g. `proofs 1.20 s, replay 0.40 s`.
    fn finish(&self) -> String {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
        let stages = self.1.lock().unwrap_or_else(|e| e.into_inner());
        let end = std::time::Instant::now();
        stages
            .iter()
            .enumerate()
            .map(|(i, (name, t))| {
                let next = stages.get(i + 1).map_or(end, |s| s.1);
                format!("{name} {:.2} s", (next - *t).as_secs_f64())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn read_genesis(path: &Path) -> Result<Genesis> {
    Ok(Genesis::read(path)?)
}

/// The verifier of `circuit` whose key id is `id`: `<circuit>.vk` from `params` (its content
/// hash must be `id`), or the development key when `id` is its pinned id.
fn verifier_of<S: PublicStatement>(
    g: &Genesis,
    params: Option<&Path>,
    circuit: MarketCircuit,
    id: KeyId,
) -> Result<Verifier<S>> {
    let vk = match params {
        Some(dir) => {
            veilwatt_params::check_provenance(dir, g.insecure_dev_keys)?;
            veilwatt_params::load_verifying_key(
                &dir.join(KeyFile::Verifying.name(circuit)),
                circuit,
                &id,
            )
            .with_context(|| {
                format!(
                    "loading the market's {} verifying key from {}",
                    circuit.name(),
                    dir.display()
                )
            })?
        }
        None => {
            let keys = veilwatt_params::dev::keys_of(circuit)
                .with_context(|| format!("loading the development {} key", circuit.name()))?;
            if keys.vk_id != id {
                bail!(
                    "the market's {} verifying key is {}; give its key directory with --params",
                    circuit.name(),
                    hex::encode(id.0)
                );
            }
            keys.vk.clone()
        }
    };
    Ok(Verifier::new(&vk, id)?)
}

/// The market's verifiers: the order circuit's (genesis `vk_id`) and, when the genesis has a
/// shielded pool, the join-split's, and with unlinkable orders theirs (see [`verifier_of`]).
fn verifier_for(g: &Genesis, params: Option<&Path>) -> Result<MarketVerifier> {
    let order = verifier_of(g, params, MarketCircuit::Order, KeyId(g.vk_id.0))?;
    let joinsplit = match &g.shielded {
        None => None,
        Some(s) => Some(verifier_of(
            g,
            params,
            MarketCircuit::JoinSplit,
            KeyId(s.vk_id.0),
        )?),
    };
    let unlinkable = match &g.anonymous {
        None => None,
        Some(a) => Some(verifier_of(
            g,
            params,
            MarketCircuit::OrderV2,
            KeyId(a.vk_id.0),
        )?),
    };
    Ok(MarketVerifier {
        order,
        joinsplit,
        unlinkable,
    })
}

/// The export header of a live node's ledger (heights `1..=` its current height).
async fn node_header(node: &NodeClient, g: &Genesis) -> Result<ExportHeader> {
    let status = node.status().await?;
    Ok(ExportHeader {
        format: EXPORT_FORMAT.into(),
        chain_id: status.chain_id,
        genesis_hash: g.hash(),
        from: 1,
        to: status.height,
    })
}

/// Streams a live node's blocks `1..=top` page by page into `out` (bounded: the download
/// waits for the audit).
async fn fetch_blocks(
    node: &NodeClient,
    top: u64,
    out: &std::sync::mpsc::SyncSender<Result<ExportedBlock, AuditError>>,
) -> Result<()> {
    let mut from = 1;
    while from <= top {
        let page = node.blocks(from, top).await?;
        if page.blocks.is_empty() {
            bail!("the node returned no blocks from height {from}");
        }
        for v in page.blocks {
            let certificate = v
                .certificate
                .as_ref()
                .with_context(|| format!("block {} has no certificate", v.height))?
                .certificate(v.height);
            from = v.height + 1;
            let b = ExportedBlock {
                hash: v.hash,
                block: v.block(),
                certificate: hex::encode(certificate.encode()),
            };
            if out.send(Ok(b)).is_err() {
                return Ok(()); // the audit stopped
            }
        }
    }
    Ok(())
}

/// Compares the node's own period views with the replay.
async fn compare_with_node(node: &NodeClient, r: &AuditReport) -> Result<()> {
    for f in &r.periods {
        let PeriodView::Cleared(v) = node.period(f.period).await? else {
            bail!(
                "period {}: the node reports it open, the replay cleared it",
                f.period
            );
        };
        let node_says = [
            ("volume_wh", v.volume_wh, f.traded_wh),
            (
                "money_exchanged_millis",
                v.money_exchanged_millis,
                f.money_millis,
            ),
            ("fees_millis.grid", v.fees_millis.grid, f.grid_fees_millis),
            (
                "fees_millis.market",
                v.fees_millis.market,
                f.market_fees_millis,
            ),
            ("orders.sell", v.orders.sell, f.sell_orders),
            ("orders.buy", v.orders.buy, f.buy_orders),
            ("trades (count)", v.trades.len() as u64, f.trades),
        ];
        for (what, node, replay) in node_says {
            if node != replay {
                bail!(
                    "period {}: the node reports {what} = {node}, the replay gives {replay}",
                    f.period
                );
            }
        }
        if v.clearing_price != f.clearing_price {
            bail!(
                "period {}: the node reports clearing_price = {:?}, the replay gives {:?}",
                f.period,
                v.clearing_price,
                f.clearing_price
            );
        }
    }
    Ok(())
}

fn price(f: &PeriodFigures) -> String {
    match (f.clearing_price, f.price_range) {
        (Some(p), _) => p.to_string(),
        (None, Some((a, z))) if a == z => a.to_string(),
        (None, Some((a, z))) => format!("{a}-{z}"),
        (None, None) => "-".into(),
    }
}

fn row(label: &str, f: &PeriodFigures) -> String {
    format!(
        "{label:>8} {:>5} {:>5} {:>10} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {}",
        f.sell_orders,
        f.buy_orders,
        kwh(f.traded_wh),
        units(f.money_millis),
        price(f),
        units(f.grid_fees_millis),
        units(f.market_fees_millis),
        kwh(f.unmatched_sell_wh),
        kwh(f.unmatched_buy_wh),
        f.trades,
        f.meters,
        if f.one_order_per_meter { "yes" } else { "NO" }
    )
}

fn table(r: &AuditReport) -> String {
    let mut s = String::new();
    if r.insecure_dev_keys {
        s.push_str(INSECURE_BANNER);
    }
    s += &format!(
        "AUDIT PASSED: chain {} (genesis {}), blocks 1-{}, {} transactions, {} proofs and {} commit signatures verified, state root {}\n\n",
        r.chain_id, r.genesis_hash, r.blocks, r.transactions, r.proofs, r.signatures, r.state_root
    );
    s.push_str(&format!(
        "{:>8} {:>5} {:>5} {:>10} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {}\n",
        "period",
        "sells",
        "buys",
        "kWh",
        "money",
        "price",
        "grid fee",
        "mkt fee",
        "unsold kWh",
        "unmet kWh",
        "trades",
        "meters",
        "1/meter"
    ));
    for f in &r.periods {
        s.push_str(&row(&f.period.to_string(), f));
        s.push('\n');
    }
    s.push_str(&row("total", &r.totals));
    s.push_str("\n\nmoney in minor currency units; prices per kWh; 1/meter: no meter had two orders in the period");
    if r.totals.anonymous_orders > 0 {
        s.push_str(&format!(
            "\n{} unlinkable orders (no meter or wallet on the ledger; each counts as one meter of \
             its period, and the total's meters are a lower bound)",
            r.totals.anonymous_orders
        ));
    }
    if !r.open_periods.is_empty() {
        s.push_str(&format!(
            "\nperiods with orders not yet cleared: {:?}",
            r.open_periods
        ));
    }
    if let Some(sh) = &r.shielded {
        s.push_str(&format!(
            "\nshielded pool: {} join-split proofs verified; minted {} ({} mints), paid in {}, \
             to wallets {}, withdrawn {}, fees {}; holds {} in {} notes ({} spent): supply \
             invariant holds",
            sh.spend_proofs,
            units(sh.minted_millis),
            sh.mints,
            units(sh.paid_in_millis),
            units(sh.to_wallets_millis),
            units(sh.withdrawn_millis),
            units(sh.fees_millis),
            units(sh.balance_millis),
            sh.notes,
            sh.nullifiers
        ));
        if let Some(escrow) = sh.escrow_summary() {
            s.push('\n');
            s.push_str(&escrow);
        }
    }
    s
}

fn csv(r: &AuditReport) -> String {
    let mut s = String::from("period,cleared_at,sell_orders,buy_orders,offered_wh,bid_wh,traded_wh,trades,clearing_price,min_price,max_price,money_millis,grid_fees_millis,market_fees_millis,unmatched_sell_wh,unmatched_buy_wh,meters,one_order_per_meter,anonymous_orders\n");
    for f in &r.periods {
        let (lo, hi) = f
            .price_range
            .map_or((String::new(), String::new()), |(a, z)| {
                (a.to_string(), z.to_string())
            });
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{lo},{hi},{},{},{},{},{},{},{},{}\n",
            f.period,
            f.cleared_at,
            f.sell_orders,
            f.buy_orders,
            f.offered_wh,
            f.bid_wh,
            f.traded_wh,
            f.trades,
            f.clearing_price.map_or(String::new(), |p| p.to_string()),
            f.money_millis,
            f.grid_fees_millis,
            f.market_fees_millis,
            f.unmatched_sell_wh,
            f.unmatched_buy_wh,
            f.meters,
            f.one_order_per_meter,
            f.anonymous_orders
        ));
    }
    s
}

fn main() {
    let cli = Cli::parse();
    let prefix = match cli.cmd {
        Cmd::Audit { .. } => "AUDIT FAILED",
        Cmd::VerifyProof { .. } => "INVALID",
    };
    if let Err(e) = run(cli) {
        eprintln!("{prefix}: {e:#}");
        std::process::exit(1);
    }
}

/// Printed above everything about a chain on development keys.
const INSECURE_BANNER: &str = "\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! INSECURE DEVELOPMENT KEYS: anyone can forge this chain's proofs.             !!
!! The proofs verified below prove nothing. A play market only.                 !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
";

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Audit {
            genesis,
            params,
            ledger,
            node,
            snapshot,
            from,
            to,
            json,
            csv: as_csv,
            html,
        } => {
            let g = read_genesis(&genesis)?;
            if let Some(w) = g.insecure_keys_warning() {
                eprint!("{INSECURE_BANNER}{w}\n\n");
            }
            let verifier = verifier_for(&g, params.as_deref())?;
            let bar = Bar::new();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let range = (from.is_some() || to.is_some())
                .then(|| (from.unwrap_or(0), to.unwrap_or(u64::MAX)));
            let report = match (&ledger, &node) {
                (Some(path), _) => {
                    let file = std::fs::File::open(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let reader =
                        ExportReader::new(std::io::BufReader::new(file)).with_context(|| {
                            format!("{} is not a {EXPORT_FORMAT} file", path.display())
                        })?;
                    let header = reader.header().clone();
                    let start = match &snapshot {
                        Some(path) => {
                            bar.stage("snapshot", 1);
                            let file = std::fs::File::open(path)
                                .with_context(|| format!("reading {}", path.display()))?;
                            let c = veilwatt_verifier::snapshot::load(
                                &g,
                                std::io::BufReader::new(file),
                            )?;
                            bar.advance(1);
                            Some(c)
                        }
                        None => None,
                    };
                    let report =
                        audit_stream_from(&g, start, &header, reader, &verifier, range, &bar);
                    eprintln!("time: {}", bar.finish());
                    report?
                }
                (None, Some(url)) => {
                    let node = NodeClient::new(url);
                    let header = rt.block_on(node_header(&node, &g))?;
                    // The download runs on its own thread, a page ahead of the audit.
                    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
                    let download = {
                        let (url, top) = (url.clone(), header.to);
                        std::thread::spawn(move || -> Result<()> {
                            // Its own client: pooled connections belong to the runtime that
                            // opened them, and the main thread's is busy auditing.
                            let node = NodeClient::new(&url);
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()?;
                            rt.block_on(fetch_blocks(&node, top, &tx))
                        })
                    };
                    let report = audit_stream(&g, &header, rx.into_iter(), &verifier, range, &bar);
                    eprintln!("time: {}", bar.finish());
                    // A download failure explains a short ledger better than the audit does.
                    download
                        .join()
                        .map_err(|_| anyhow::anyhow!("the download thread panicked"))??;
                    let report = report?;
                    rt.block_on(compare_with_node(&node, &report))?;
                    report
                }
                (None, None) => bail!("give --ledger FILE or --node URL"),
            };
            if let Some(path) = &html {
                std::fs::write(path, veilwatt_verifier::audit_html::render(&report))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if as_csv {
                print!("{}", csv(&report));
            } else {
                println!("{}", table(&report));
            }
            Ok(())
        }
        Cmd::VerifyProof {
            genesis,
            params,
            order,
        } => {
            let g = read_genesis(&genesis)?;
            let verifier: Verifier<veilwatt_circuits::order::OrderPublic> = verifier_of(
                &g,
                params.as_deref(),
                MarketCircuit::Order,
                KeyId(g.vk_id.0),
            )?;
            let bytes = if order.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&order).with_context(|| format!("reading {}", order.display()))?
            };
            let tx: Transaction =
                serde_json::from_slice(&bytes).context("not a transaction in JSON")?;
            if !tx.verify_signature(&g.chain_id) {
                bail!(
                    "the transaction's signature does not verify for chain {}",
                    g.chain_id
                );
            }
            let TxBody::Order {
                meter,
                period,
                side,
                quantity_wh,
                ..
            } = &tx.body
            else {
                bail!("the transaction is not an order");
            };
            let (public, proof) = tx
                .body
                .order_proof_item(|m| m.to_public_key())
                .context("not an order")?
                .map_err(|e| anyhow::anyhow!("the meter key is invalid: {e}"))?;
            verifier
                .verify(&public, &proof)
                .map_err(|e| anyhow::anyhow!("the proof does not verify: {e}"))?;
            println!(
                "{}",
                json!({"id": tx.id(), "valid": true, "meter": meter, "period": period, "side": side, "quantity_wh": quantity_wh, "signer": tx.signer})
            );
            Ok(())
        }
    }
}
