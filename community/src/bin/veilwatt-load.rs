//! `veilwatt-load`: load generator for a Veilwatt node. Pre-generates valid signed orders with
//! real proofs for many households (cached on disk, since proving dominates), enrols their
//! meters, then submits the orders from concurrent clients and reports orders accepted and
//! committed per second and the submit-to-commit latency (commit times from the node's SSE
//! stream).
//!
//! On a market of unlinkable orders (genesis `anonymous`) the households are enrolled in the
//! registry and the buyers funded with notes first; then every order is proven against the
//! registry and note tree the households rebuilt from the node (an order proof, and for a buy
//! an escrow join-split), signed by a one-time key, and submitted as above. Those orders
//! depend on the node's roots, so they are not cached.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ed25519_dalek::SigningKey;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::registry;
use veilwatt_circuits::statement::{profile_digest, PeriodStatement};
use veilwatt_community::beside::{self, Beside};
use veilwatt_node::config::KeyFile;
use veilwatt_params::MarketCircuit;
use veilwatt_prover::client::{self, ClientError, NodeClient};
use veilwatt_prover::notes::{self, NoteBook};
use veilwatt_prover::spend::SpendProver;
use veilwatt_prover::unlinkable::{plan_order, UnlinkableOrderProver};
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::types::{
    FieldBytes, Genesis, MeterKey, Side, Transaction, TxBody, TxId, WalletKey,
};

#[derive(Parser)]
#[command(
    name = "veilwatt-load",
    about = "Submit many proven orders to a Veilwatt node"
)]
struct Args {
    /// Node API base URL; repeat to spread the clients over several validators (commit times
    /// are read from the first).
    #[arg(long = "node", default_value = "http://127.0.0.1:26600")]
    nodes: Vec<String>,
    /// Genesis file of the node's chain.
    #[arg(long)]
    genesis: PathBuf,
    /// Registrar key file (`registrar_key.json` from `veilwatt-node testnet`).
    #[arg(long)]
    registrar_key: PathBuf,
    /// Number of orders (= households; one order each).
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Settlement period of the orders (default: the last ended period).
    #[arg(long)]
    period: Option<u64>,
    /// Seed of the households' keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cache file for generated orders (reused when chain, period, seed and count match).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Give up waiting for commits after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Orders submitted per second in the measured part, spread evenly (a sustained load over
    /// many blocks, for commit latency); without it, as fast as the clients go (throughput).
    #[arg(long)]
    rate: Option<f64>,
    /// Beside the measured orders, an attack from outside the validators (issue 17's
    /// benchmark); its answers are counted in the report.
    #[arg(long, value_enum)]
    beside: Option<Beside>,
    /// `--beside forward-replay`: key file of the validator whose forwarding batch is
    /// replayed (its `validator_key.json`).
    #[arg(long, required_if_eq("beside", "forward-replay"))]
    validator_key: Option<PathBuf>,
    /// `--beside forward-replay`: base URL of another validator's peer listener
    /// (`peer_listen`); repeat for each.
    #[arg(long = "peer", required_if_eq("beside", "forward-replay"))]
    peers: Vec<String>,
}

/// An attack running beside the measured part: its name, and a task returning its answers
/// once `stop` is set.
struct SideAttack {
    name: &'static str,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<beside::Answers>,
}

/// The signing key of a key file (as `veilwatt-node testnet` writes them).
fn read_key(path: &std::path::Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&KeyFile::read_secret(path)?))
}

/// Prepares `args.beside` (funds the spamming wallet, seals the batch to replay) and starts it.
async fn start_beside(
    g: &Genesis,
    args: &Args,
    registrar: &SigningKey,
    http: &reqwest::Client,
    nodes: &[NodeClient],
) -> Result<Option<SideAttack>> {
    let stop = Arc::new(AtomicBool::new(false));
    let (name, task) = match args.beside {
        None => return Ok(None),
        Some(Beside::ForwardReplay) => {
            let path = args
                .validator_key
                .as_deref()
                .context("--beside forward-replay needs --validator-key")?;
            let validator = read_key(path)?;
            let known = WalletKey(validator.verifying_key().to_bytes());
            if !g.validators.iter().any(|v| v.key == known) {
                bail!("{} is not a genesis validator's key", path.display());
            }
            let body = beside::captured_batch(g, &validator, registrar);
            let task = tokio::spawn(beside::replay(
                http.clone(),
                body,
                args.peers.clone(),
                stop.clone(),
            ));
            ("forward_replay", task)
        }
        Some(Beside::WalletSpam) => {
            let (key, fund) = beside::spammer(g, registrar);
            submit_committed(nodes, vec![fund], args, "funding the spammer").await?;
            let node = nodes[0].clone().retries(0);
            let task = tokio::spawn(beside::spam(g.clone(), node, key, stop.clone()));
            ("wallet_spam", task)
        }
    };
    Ok(Some(SideAttack { name, stop, task }))
}

fn household(seed: u64, i: usize) -> (SigningKey, SecretKey) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ i as u64);
    let mut w = [0u8; 32];
    let mut m = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rng, &mut w);
    rand::RngCore::fill_bytes(&mut rng, &mut m);
    (SigningKey::from_bytes(&w), SecretKey::from_bytes(m))
}

/// Household `i`'s order for `period` (half sell, half buy, with overlapping prices so that the
/// period clears trades): its meter's statement that covers it, side, quantity and limit price.
fn household_order(
    seed: u64,
    i: usize,
    period: u64,
) -> (SecretKey, PeriodStatement, Side, u32, u64) {
    let (_, meter) = household(seed, i);
    let sell = i.is_multiple_of(2);
    let q = 500 + (i % 7) as u32 * 100;
    let statement = PeriodStatement {
        meter: meter.public_key(),
        period,
        import_wh: if sell { 100 } else { q + 100 },
        export_wh: if sell { q + 100 } else { 0 },
        profile_digest: profile_digest(&[]),
    };
    if sell {
        (meter, statement, Side::Sell, q, 9 + (i % 5) as u64)
    } else {
        (meter, statement, Side::Buy, q, 12 + (i % 9) as u64)
    }
}

/// The expiry of the generated orders: the last second of the period's gate, but no later than
/// the genesis lifetime after now (every block that applies them is later than now; cached
/// orders are usable for that long).
fn order_expiry(g: &Genesis, period: u64) -> Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let close = g.gate_close(period).context("period overflow")?;
    Ok(close
        .saturating_sub(1)
        .min(now.saturating_add(g.max_tx_lifetime_secs)))
}

fn generate(g: &Genesis, args: &Args, period: u64) -> Result<Vec<Transaction>> {
    let keys = veilwatt_params::dev::keys()?;
    let prover = Prover::new(keys.pk.clone(), keys.vk_id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let expiry = order_expiry(g, period)?;
    let bar = ProgressBar::new(args.orders as u64).with_style(ProgressStyle::with_template(
        "proving {bar:40} {pos}/{len} orders, {per_sec}, eta {eta}",
    )?);
    // One order at a time: the prover is itself parallel (and its constraint synthesis needs
    // more stack than rayon's worker threads have).
    let txs = (0..args.orders)
        .map(|i| {
            let (wallet, _) = household(args.seed, i);
            let (meter, statement, side, q, price) = household_order(args.seed, i, period);
            let proven = prover
                .prove(
                    &statement.sign(&meter),
                    &OrderRequest {
                        side: side.into(),
                        quantity_wh: q,
                    },
                    &mut ChaCha20Rng::seed_from_u64(i as u64),
                )
                .map_err(|e| anyhow::anyhow!("proving order {i}: {e}"))?;
            bar.inc(1);
            Ok(Transaction::sign(
                &g.chain_id,
                TxBody::Order {
                    meter: MeterKey::from_public_key(&meter.public_key()),
                    period,
                    side,
                    quantity_wh: q,
                    limit_price: price,
                    proof: proven.proof,
                },
                // Cached orders stay valid for the genesis lifetime (or to the gate).
                expiry,
                &wallet,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish();
    Ok(txs)
}

/// Enrols every household in the registry of unlinkable orders, mints each buyer a note,
/// rebuilds the registry and the buyers' wallets from the node, then proves every household's
/// unlinkable order for `period` (half sell, half buy, as [`generate`]).
async fn generate_unlinkable(
    g: &Genesis,
    args: &Args,
    period: u64,
    registrar: &SigningKey,
    nodes: &[NodeClient],
    now: u64,
) -> Result<Vec<Transaction>> {
    let keys = |c| veilwatt_params::dev::keys_of(c).map_err(anyhow::Error::from);
    let (o2, js) = (
        keys(MarketCircuit::OrderV2)?,
        keys(MarketCircuit::JoinSplit)?,
    );
    let orders = UnlinkableOrderProver::new(o2.pk.clone(), o2.vk_id)?;
    let spends = SpendProver::new(js.pk.clone(), js.vk_id)?;
    let mut books: Vec<NoteBook> = (0..args.orders)
        .map(|i| NoteBook::new(notes::spending_key(&household(args.seed, i).0)))
        .collect();
    let mut setup = Vec::new();
    for (i, book) in books.iter_mut().enumerate() {
        let (_, meter) = household(args.seed, i);
        setup.push(Transaction::sign(
            &g.chain_id,
            TxBody::EnrollHousehold {
                meter: MeterKey::from_public_key(&meter.public_key()),
                nk_commit: FieldBytes::from_field(registry::nk_commitment(book.nk())),
            },
            g.tx_expiry(now),
            registrar,
        ));
        if i % 2 == 1 {
            let to = book.new_address();
            // A canonical field element (little-endian, high bytes zero), unique per note.
            let mut rho = [0u8; 32];
            rho[..8].copy_from_slice(&(args.seed << 32 | i as u64).to_le_bytes());
            setup.push(Transaction::sign(
                &g.chain_id,
                TxBody::MintNote {
                    value: 100_000_000,
                    owner: FieldBytes::from_field(to.owner),
                    rho: FieldBytes(rho),
                    reference: args.seed << 32 | i as u64,
                },
                g.tx_expiry(now),
                registrar,
            ));
        }
    }
    submit_committed(nodes, setup, args, "enrolling and funding").await?;
    let (tree, recent) = client::registry(&nodes[0]).await?;
    eprintln!("syncing {} wallets", books.len());
    client::sync(&nodes[0], g, &mut books).await?;
    let expiry = order_expiry(g, period)?;
    let bar = ProgressBar::new(args.orders as u64).with_style(ProgressStyle::with_template(
        "proving {bar:40} {pos}/{len} unlinkable orders, {per_sec}, eta {eta}",
    )?);
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut txs = Vec::with_capacity(args.orders);
    for (i, book) in books.iter_mut().enumerate() {
        let (meter, statement, side, q, price) = household_order(args.seed, i, period);
        let statement = statement.sign_for_market(&meter, g.market_id());
        let plan = plan_order(g, book, &tree, &recent, statement, side, q, price, &mut rng)?;
        let signer = SigningKey::generate(&mut rand::rngs::OsRng);
        txs.push(
            orders
                .prove(
                    &g.chain_id,
                    expiry,
                    &signer,
                    plan.request,
                    Some(&spends),
                    &mut rng,
                )
                .map_err(|e| anyhow::anyhow!("proving order {i}: {e}"))?,
        );
        bar.inc(1);
    }
    bar.finish();
    Ok(txs)
}

/// Submits `txs` from `concurrency` clients spread over `nodes`, at most `rate` a second
/// (evenly spaced from the start) if given; returns the accepted ids with their send times,
/// the count of each answer status and the time taken.
async fn submit_all(
    nodes: &[NodeClient],
    txs: Vec<Transaction>,
    concurrency: usize,
    rate: Option<f64>,
    label: &str,
) -> Result<(Vec<(TxId, Instant)>, BTreeMap<u16, usize>, Duration)> {
    let total = txs.len();
    let queue = Arc::new(Mutex::new(txs.into_iter().rev().collect::<Vec<_>>()));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let bar = ProgressBar::new(total as u64).with_style(ProgressStyle::with_template(&format!(
        "{label} {{bar:40}} {{pos}}/{{len}} {{per_sec}}"
    ))?);
    let spacing = rate
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|k| {
            let (queue, accepted, statuses, node, bar) = (
                queue.clone(),
                accepted.clone(),
                statuses.clone(),
                nodes[k % nodes.len()].clone(),
                bar.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some((n, tx)) = queue
                        .lock()
                        .ok()
                        .and_then(|mut q| q.pop().map(|tx| (total - q.len() - 1, tx)))
                    else {
                        return;
                    };
                    if let Some(spacing) = spacing {
                        tokio::time::sleep_until((t0 + spacing.mul_f64(n as f64)).into()).await;
                    }
                    let sent = Instant::now();
                    let status = match node.submit(&tx).await {
                        Ok(_) => 202,
                        Err(e) => {
                            let status = match &e {
                                ClientError::Refused { status, .. } => *status,
                                _ => 0,
                            };
                            // The first failure of each kind, for the operator.
                            if let Ok(s) = statuses.lock() {
                                if !s.contains_key(&status) {
                                    eprintln!("{e}");
                                }
                            }
                            status
                        }
                    };
                    if status == 202 {
                        if let Ok(mut a) = accepted.lock() {
                            a.push((tx.id(), sent));
                        }
                    }
                    if let Ok(mut s) = statuses.lock() {
                        *s.entry(status).or_default() += 1;
                    }
                    bar.inc(1);
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    bar.finish();
    let took = t0.elapsed();
    let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let statuses = statuses.lock().map(|s| s.clone()).unwrap_or_default();
    Ok((accepted, statuses, took))
}

/// Commit times of transactions, from the node's event stream.
fn watch_commits(
    node: NodeClient,
) -> (
    Arc<Mutex<BTreeMap<TxId, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen: Arc<Mutex<BTreeMap<TxId, Instant>>> = Arc::default();
    let s = seen.clone();
    let h = tokio::spawn(async move {
        let followed = node
            .follow_commits(|event| {
                let now = Instant::now();
                if let Ok(mut seen) = s.lock() {
                    seen.extend(event.txs.into_iter().map(|id| (id, now)));
                }
            })
            .await;
        if let Err(e) = followed {
            eprintln!("event stream: {e}");
        }
    });
    (seen, h)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let g: Genesis = serde_json::from_str(&std::fs::read_to_string(&args.genesis)?)?;
    let registrar = read_key(&args.registrar_key)?;
    if WalletKey(registrar.verifying_key().to_bytes()) != g.registrar {
        bail!("the registrar key is not the genesis registrar");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let period = match args.period {
        Some(p) => p,
        None => (now.saturating_sub(g.genesis_time) / g.period_secs)
            .checked_sub(1)
            .context("no period has ended yet")?,
    };

    // One connection pool for every client; each waits out `429 rate_limited` a few times
    // (a load generator is one client, and the node limits each client's rate).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let nodes: Vec<NodeClient> = args
        .nodes
        .iter()
        .map(|b| NodeClient::with_http(http.clone(), b).retries(5))
        .collect();

    // A market of unlinkable orders: enrolment and funding first (the proofs depend on the
    // roots they leave), then the measured part.
    if g.anonymous.is_some() {
        let orders = generate_unlinkable(&g, &args, period, &registrar, &nodes, now).await?;
        let side = start_beside(&g, &args, &registrar, &http, &nodes).await?;
        return measure(&nodes, orders, &args, period, side).await;
    }

    // Orders: from the cache if it matches, else proven now.
    let tag = format!("{}:{}:{}:{}", g.chain_id, period, args.seed, args.orders);
    let cached = args.cache.as_ref().and_then(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        let (head, body) = text.split_once('\n')?;
        (head == tag).then(|| serde_json::from_str::<Vec<Transaction>>(body).ok())?
    });
    let orders = match cached {
        Some(o) => {
            eprintln!("using {} cached orders", o.len());
            o
        }
        None => {
            let o = generate(&g, &args, period)?;
            if let Some(p) = &args.cache {
                std::fs::write(p, format!("{tag}\n{}", serde_json::to_string(&o)?))?;
            }
            o
        }
    };

    // Enrol the meters.
    let enrolls: Vec<Transaction> = (0..args.orders)
        .map(|i| {
            let (wallet, meter) = household(args.seed, i);
            Transaction::sign(
                &g.chain_id,
                TxBody::EnrollMeter {
                    meter: MeterKey::from_public_key(&meter.public_key()),
                    owner: WalletKey(wallet.verifying_key().to_bytes()),
                },
                g.tx_expiry(now),
                &registrar,
            )
        })
        .collect();
    // Buyers need funds for escrow.
    let deposits: Vec<Transaction> = (0..args.orders)
        .filter(|i| i % 2 == 1)
        .map(|i| {
            let (wallet, _) = household(args.seed, i);
            Transaction::sign(
                &g.chain_id,
                TxBody::Deposit {
                    to: WalletKey(wallet.verifying_key().to_bytes()),
                    amount: 100_000_000,
                    reference: args.seed << 32 | i as u64,
                },
                g.tx_expiry(now),
                &registrar,
            )
        })
        .collect();
    let setup = enrolls.into_iter().chain(deposits).collect();
    submit_committed(&nodes, setup, &args, "enrolling and funding").await?;
    let side = start_beside(&g, &args, &registrar, &http, &nodes).await?;
    measure(&nodes, orders, &args, period, side).await
}

/// Submits the setup transactions `txs` (enrolments, deposits, mints) and waits until every
/// one the node accepted is committed.
async fn submit_committed(
    nodes: &[NodeClient],
    txs: Vec<Transaction>,
    args: &Args,
    label: &str,
) -> Result<()> {
    let (seen, watcher) = watch_commits(nodes[0].clone());
    let (sent, _, _) = submit_all(nodes, txs, args.concurrency, None, label).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while sent
        .iter()
        .any(|(id, _)| !seen.lock().map(|s| s.contains_key(id)).unwrap_or(false))
    {
        if Instant::now() > deadline {
            watcher.abort();
            bail!("{label}: transactions were not committed in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    Ok(())
}

/// The measured part: submits `orders` from concurrent clients, waits for their commits and
/// prints the figures (with the answers `side` got, if it ran beside them).
async fn measure(
    nodes: &[NodeClient],
    orders: Vec<Transaction>,
    args: &Args,
    period: u64,
    side: Option<SideAttack>,
) -> Result<()> {
    let (seen, watcher) = watch_commits(nodes[0].clone());
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    // The measured part: orders.
    let t0 = Instant::now();
    let (accepted, statuses, submit_time) =
        submit_all(nodes, orders, args.concurrency, args.rate, "orders").await?;
    let mut last_commit = t0;
    let mut latencies = Vec::with_capacity(accepted.len());
    while Instant::now() < deadline {
        let s = seen.lock().map(|s| s.clone()).unwrap_or_default();
        if accepted.iter().all(|(id, _)| s.contains_key(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = seen.lock().map(|s| s.clone()).unwrap_or_default();
    for (id, sent) in &accepted {
        if let Some(at) = s.get(id) {
            latencies.push(at.saturating_duration_since(*sent));
            last_commit = last_commit.max(*at);
        }
    }
    watcher.abort();
    let beside = match side {
        Some(side) => {
            side.stop.store(true, Ordering::Relaxed);
            let answers = side.task.await?;
            serde_json::json!({ "attack": side.name, "answers": answers })
        }
        None => serde_json::Value::Null,
    };
    latencies.sort();
    let committed = latencies.len();
    let commit_span = last_commit.saturating_duration_since(t0).as_secs_f64();
    let report = serde_json::json!({
        "orders": accepted.len() + statuses.iter().filter(|(k, _)| **k != 202).map(|(_, v)| v).sum::<usize>(),
        "accepted": accepted.len(),
        "responses": statuses.iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
        "accepted_per_s": (accepted.len() as f64 / submit_time.as_secs_f64()).round(),
        "committed": committed,
        "committed_per_s": if commit_span > 0.0 { (committed as f64 / commit_span).round() } else { 0.0 },
        "latency_ms": {
            "p50": percentile(&latencies, 0.50).as_millis(),
            "p99": percentile(&latencies, 0.99).as_millis(),
            "max": latencies.last().map_or(0, |d| d.as_millis()),
        },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "period": period,
        "beside": beside,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if committed < accepted.len() {
        bail!(
            "{} accepted orders were not committed in time",
            accepted.len() - committed
        );
    }
    Ok(())
}
