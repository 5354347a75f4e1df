//! Starting and stopping a validator: the store, the admission worker, consensus and the API.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use veilwatt_params::{KeyFile, KeyId, MarketCircuit};
use veilwatt_verifier::ledger::MarketVerifier;
use veilwatt_verifier::types::Genesis;
use veilwatt_verifier::{PublicStatement, Verifier};

use crate::admission::AdmissionConfig;
use crate::config::Home;
use crate::consensus::app::AppSettings;
use crate::consensus::{self, ConsensusHandle, ConsensusSetup};
use crate::core::NodeCore;
use crate::forward::Forwarder;
use crate::store::RocksStore;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The verifying key is missing or wrong.
    #[error("verifying key: {0}")]
    Keys(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Node state.
    #[error(transparent)]
    Core(#[from] crate::core::CoreError),
    /// Consensus.
    #[error(transparent)]
    Consensus(#[from] consensus::ConsensusError),
    /// The API could not bind or load its TLS files.
    #[error("api: {0}")]
    Api(String),
}

/// The verifier of `circuit` whose key id is `id`: `HOME/keys/<circuit>.vk` if present
/// (checked against the id), else the development key if `id` is its pinned id.
fn verifier<S: PublicStatement>(
    home: &Path,
    genesis: &Genesis,
    circuit: MarketCircuit,
    id: KeyId,
) -> Result<Verifier<S>, RunError> {
    let keys_err = |e: &dyn std::fmt::Display| RunError::Keys(e.to_string());
    let dir = home.join("keys");
    let file = dir.join(KeyFile::Verifying.name(circuit));
    let vk = if file.exists() {
        veilwatt_params::check_provenance(&dir, genesis.insecure_dev_keys)
            .map_err(|e| keys_err(&e))?;
        veilwatt_params::load_verifying_key(&file, circuit, &id).map_err(|e| keys_err(&e))?
    } else if id == veilwatt_params::dev::pinned_ids_of(circuit).vk_id {
        veilwatt_params::dev::keys_of(circuit)
            .map_err(|e| keys_err(&e))?
            .vk
            .clone()
    } else {
        return Err(RunError::Keys(format!(
            "genesis pins verifying key {} for the {} circuit; put that {} in {}",
            hex::encode(id.0),
            circuit.name(),
            KeyFile::Verifying.name(circuit),
            dir.display()
        )));
    };
    Verifier::new(&vk, id).map_err(|e| keys_err(&e))
}

/// The market's verifying keys for `genesis`: the order circuit's, and the join-split's when
/// the genesis has a shielded pool, and the unlinkable order circuit's when it has a meter
/// registry (see [`verifier`]).
pub fn verifier_for(home: &Path, genesis: &Genesis) -> Result<MarketVerifier, RunError> {
    let order = verifier(home, genesis, MarketCircuit::Order, KeyId(genesis.vk_id.0))?;
    let joinsplit = match &genesis.shielded {
        None => None,
        Some(params) => Some(verifier(
            home,
            genesis,
            MarketCircuit::JoinSplit,
            KeyId(params.vk_id.0),
        )?),
    };
    let unlinkable = match &genesis.anonymous {
        None => None,
        Some(a) => Some(verifier(
            home,
            genesis,
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

/// A running validator.
pub struct RunningNode {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Shared state.
    pub core: Arc<NodeCore>,
    shutdown: watch::Sender<bool>,
    api: JoinHandle<()>,
    peer_api: Option<JoinHandle<()>>,
    consensus: ConsensusHandle,
}

/// Set once a node of this process is shutting down ([`RunningNode::shutdown`]).
pub static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a log event is the consensus engine's shutdown noise, for a binary's log filter:
/// while the engine's actors stop, its tick timers and its channel to the application report
/// each message they can no longer deliver as an error, although nothing is wrong and nothing
/// is lost (the application finishes the message in hand; the store is consistent). These
/// two sources are silenced once [`STOPPING`] is set, and only then.
pub fn is_shutdown_noise(target: &str) -> bool {
    STOPPING.load(Ordering::Acquire)
        && (target.starts_with("arc_malachitebft_engine::util::ticker")
            || target.starts_with("arc_malachitebft_app_channel::connector"))
}

/// Logs to stderr with `RUST_LOG`'s filter (else `default`), without the consensus engine's
/// shutdown noise ([`is_shutdown_noise`]): the validator's and the demo's logging.
pub fn install_logging(default: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let quiet = tracing_subscriber::filter::filter_fn(|meta| !is_shutdown_noise(meta.target()));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(quiet),
        )
        .init();
}

/// Starts a validator from its home directory.
pub async fn start(home: &Home) -> Result<RunningNode, RunError> {
    let verifier = verifier_for(&home.dir, &home.genesis)?;
    let store = RocksStore::open(&home.ledger_dir())?;
    let cfg = &home.config;
    let (core, queue) = NodeCore::open(
        home.genesis.clone(),
        verifier,
        store,
        AdmissionConfig {
            max_body_bytes: cfg.api.max_body_bytes,
        },
        cfg.mempool.clone(),
        cfg.consensus.persistent_peers.clone(),
        cfg.moniker.clone(),
        home.public_key(),
    )?;
    #[cfg(feature = "byzantine")]
    if let Some(mode) = cfg.byzantine {
        tracing::warn!(
            ?mode,
            "BYZANTINE test mode: this validator proposes invalid blocks"
        );
        let _ = core.byzantine.set(mode);
    }
    if !cfg.consensus.peer_apis.is_empty() {
        core.set_forwarder(Forwarder::start(
            ed25519_dalek::SigningKey::from_bytes(&home.secret),
            home.genesis.chain_id.clone(),
            cfg.consensus.peer_apis.clone(),
            core.metrics.clone(),
        ));
    }
    tracing::info!(height = core.tip().height, chain = %home.genesis.chain_id, "ledger opened");
    tokio::spawn(Arc::clone(&core).run_admission(queue));

    let (shutdown, rx) = watch::channel(false);
    let consensus = consensus::start(
        Arc::clone(&core),
        ConsensusSetup {
            moniker: cfg.moniker.clone(),
            secret: home.secret,
            p2p_listen: cfg.consensus.p2p_listen.clone(),
            persistent_peers: cfg.consensus.persistent_peers.clone(),
            wal_path: home.wal_path(),
            settings: AppSettings {
                block_interval: Duration::from_millis(cfg.consensus.block_interval_ms),
                max_block_txs: cfg.consensus.max_block_txs,
                propose_timeout: Duration::from_millis(cfg.consensus.propose_timeout_ms),
                vote_timeout: Duration::from_millis(cfg.consensus.vote_timeout_ms),
            },
        },
    )
    .await?;

    let routes = crate::api::routes(
        Arc::clone(&core),
        cfg.api.max_body_bytes,
        cfg.api.max_subscribers,
        cfg.api.peer_listen.is_none(),
    );
    let tls = match (&cfg.api.tls_cert, &cfg.api.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::serve::tls_acceptor(cert, key).map_err(|e| RunError::Api(e.to_string()))?)
        }
        (None, None) => None,
        _ => {
            return Err(RunError::Api(
                "tls_cert and tls_key must be given together".into(),
            ))
        }
    };
    let mut limits = cfg.api.limits();
    limits.max_connections = crate::serve::connections_that_fit(limits.max_connections);
    let peer_limits = crate::serve::Limits {
        max_connections: crate::config::PEER_MAX_CONNECTIONS,
        ..limits.clone()
    };
    let api_error = |e: crate::serve::ServeError| RunError::Api(e.to_string());
    let (api_addr, server) = crate::serve::bind(
        cfg.api.listen,
        tls.clone(),
        limits,
        warp::service(routes),
        core.metrics.clone(),
        rx.clone(),
    )
    .await
    .map_err(api_error)?;
    // The other validators' forwarded transactions, on a listener of their own: the public
    // cannot take its connections, nor reach the route on the clients' listener.
    let peer_api = match cfg.api.peer_listen {
        Some(listen) => {
            let (addr, server) = crate::serve::bind(
                listen,
                tls,
                peer_limits,
                warp::service(crate::api::peer_routes(Arc::clone(&core))),
                core.metrics.clone(),
                rx,
            )
            .await
            .map_err(api_error)?;
            let _ = std::fs::write(home.peer_addr_file(), addr.to_string());
            tracing::info!(%addr, "peer listener for forwarded transactions");
            Some(tokio::spawn(server))
        }
        None => None,
    };
    let api = tokio::spawn(server);
    let _ = std::fs::write(home.api_addr_file(), api_addr.to_string());
    tracing::info!(%api_addr, tls = cfg.api.tls_cert.is_some(), "API listening");
    Ok(RunningNode {
        api_addr,
        core,
        shutdown,
        api,
        peer_api,
        consensus,
    })
}

impl RunningNode {
    /// Graceful shutdown: refuse new transactions, let the API finish its requests, finish
    /// the consensus message in hand (a decided block is committed completely), stop the
    /// engine; the database closes when the last reference drops.
    pub async fn shutdown(self) {
        STOPPING.store(true, Ordering::Release);
        self.core.accepting.store(false, Ordering::Release);
        self.core.closing.send_replace(true);
        let _ = self.shutdown.send(true);
        // Requests in flight get a bounded time to finish.
        let listeners = async {
            let _ = self.api.await;
            if let Some(peer) = self.peer_api {
                let _ = peer.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), listeners)
            .await
            .is_err()
        {
            tracing::warn!("API connections still open after 10 s; closing them");
        }
        self.consensus.stop().await;
        tracing::info!(height = self.core.tip().height, "stopped");
    }
}
