//! Block production with the Malachite BFT engine (decision 0004).

pub mod app;
pub mod codec;
pub mod context;
pub mod signing;
pub mod streams;

use std::path::PathBuf;
use std::sync::Arc;

use arc_malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig as EngineNodeConfig, ValuePayload, ValueSyncConfig,
};
use arc_malachitebft_app_channel::app::net::Multiaddr;
use arc_malachitebft_app_channel::app::types::codec::Codec;
use arc_malachitebft_app_channel::app::types::Keypair;
use arc_malachitebft_app_channel::{
    start_engine, ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, RequestContext,
    Signer, SyncContext, WalContext,
};
use arc_malachitebft_signing_ed25519::PrivateKey;
use tokio::task::JoinHandle;

use crate::core::NodeCore;
use app::{App, AppSettings, EngineLink};
use arc_malachitebft_app_channel::app::engine::consensus::{ConsensusRef, Msg as EngineMsg};
use codec::VwCodec;
use context::{Address, VwContext};
use signing::{VwSigner, VwVerifier};

/// Engine configuration as the engine reads it.
#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl EngineNodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// Why consensus could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// A configured address does not parse.
    #[error("bad p2p address {0:?}: {1}")]
    Address(String, String),
    /// This node's key is not in the genesis validator set.
    #[error("this node's key {0} is not a genesis validator")]
    NotAValidator(String),
    /// The p2p listen address stays taken (another process, or an old connection).
    #[error("cannot listen for peers on {0}: {1}")]
    Listen(String, std::io::Error),
    /// The engine failed.
    #[error("consensus engine: {0}")]
    Engine(String),
}

/// What starting consensus needs.
pub struct ConsensusSetup {
    /// Moniker.
    pub moniker: String,
    /// Validator Ed25519 seed.
    pub secret: [u8; 32],
    /// libp2p listen address.
    pub p2p_listen: String,
    /// Peers.
    pub persistent_peers: Vec<String>,
    /// WAL file.
    pub wal_path: PathBuf,
    /// Cadence and limits.
    pub settings: AppSettings,
}

/// A running engine and application.
pub struct ConsensusHandle {
    engine: EngineHandle,
    app: JoinHandle<()>,
}

/// How long the application may take to finish its message in hand once the engine stopped.
const APP_STOP: std::time::Duration = std::time::Duration::from_secs(10);

impl ConsensusHandle {
    /// Stops the engine, then waits for the application loop to finish the message in hand.
    /// This order matters: stopping the application first would leave the engine's actors
    /// (connector, WAL) sending into a closed channel, each logging an error.
    pub async fn stop(self) {
        self.engine.actor.stop(None);
        let _ = self.engine.handle.await;
        let mut app = self.app;
        if tokio::time::timeout(APP_STOP, &mut app).await.is_err() {
            tracing::warn!(
                "consensus application still busy after the engine stopped; aborting it"
            );
            app.abort();
        }
    }
}

fn multiaddr(s: &str) -> Result<Multiaddr, ConsensusError> {
    s.parse()
        .map_err(|e: <Multiaddr as std::str::FromStr>::Err| {
            ConsensusError::Address(s.to_owned(), e.to_string())
        })
}

/// How long [`start`] waits for a taken p2p port to come free.
const LISTEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks that this node can listen on its `/ip4/A/tcp/P` address before the engine starts:
/// the engine only logs a failed listen and would run deaf (it can still dial out, but no
/// peer reaches it). Waits up to [`LISTEN_WAIT`] for a port held briefly, e.g. by a leftover
/// connection. Other address forms are left to the engine.
async fn check_listen(listen: &str) -> Result<(), ConsensusError> {
    let parts: Vec<&str> = listen.split('/').collect();
    let (ip, port) = match parts.as_slice() {
        ["", "ip4", ip, "tcp", port] => {
            match (ip.parse::<std::net::Ipv4Addr>(), port.parse::<u16>()) {
                (Ok(ip), Ok(port)) if port != 0 => (ip, port),
                _ => return Ok(()),
            }
        }
        _ => return Ok(()),
    };
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    loop {
        match std::net::TcpListener::bind((ip, port)) {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(ConsensusError::Listen(listen.to_owned(), e))
            }
            Err(e) => {
                tracing::warn!(%listen, error = %e, "p2p address taken; waiting for it");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// How often a validator tells its peers its height (the engine's default is 10 s). A validator
/// that missed a decided block (its proposer streamed other blocks to it first, or a message
/// was lost) learns from these that its peers are ahead and fetches the block by value sync;
/// at 10 s it stood still that long, and every client watching it waited with it.
const SYNC_STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts the engine and the application loop.
pub async fn start(
    core: Arc<NodeCore>,
    setup: ConsensusSetup,
) -> Result<ConsensusHandle, ConsensusError> {
    let key = PrivateKey::from(setup.secret);
    let address = Address(key.public_key().as_bytes().to_owned());
    if !core.genesis.validators.iter().any(|v| v.key.0 == address.0) {
        return Err(ConsensusError::NotAValidator(address.to_string()));
    }
    let chain_id = core.genesis.chain_id.clone();
    let signer = VwSigner::new(chain_id.clone(), key);

    let mut consensus = ConsensusConfig {
        value_payload: ValuePayload::ProposalAndParts,
        ..ConsensusConfig::default()
    };
    consensus.p2p.listen_addr = multiaddr(&setup.p2p_listen)?;
    check_listen(&setup.p2p_listen).await?;
    consensus.p2p.persistent_peers = setup
        .persistent_peers
        .iter()
        .map(|p| multiaddr(p))
        .collect::<Result<_, _>>()?;
    let config = EngineConfig {
        moniker: setup.moniker.clone(),
        consensus,
        value_sync: ValueSyncConfig {
            status_update_interval: SYNC_STATUS_INTERVAL,
            ..ValueSyncConfig::default()
        },
    };

    let keypair = Keypair::ed25519_from_bytes(setup.secret)
        .map_err(|e| ConsensusError::Engine(e.to_string()))?;
    let peer_id = keypair.public().to_peer_id();
    let proof = signer
        .sign_validator_proof(address.0.to_vec(), peer_id.to_bytes())
        .await
        .map_err(|e| ConsensusError::Engine(e.to_string()))?;
    let proof_bytes = VwCodec
        .encode(&proof)
        .map_err(|e| ConsensusError::Engine(e.to_string()))?;
    let identity =
        NetworkIdentity::new_validator(setup.moniker, keypair, address.to_string(), proof_bytes);

    let (channels, engine) = start_engine(
        VwContext,
        config,
        WalContext::new(setup.wal_path, VwCodec),
        NetworkContext::new(identity, VwCodec),
        ConsensusContext::new_validator(
            address,
            Box::new(VwVerifier::new(chain_id)),
            Box::new(signer.clone()),
        ),
        SyncContext::new(VwCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| ConsensusError::Engine(format!("{e:#}")))?;

    // The engine's consensus actor, to hand it values unasked: the engine links it under its
    // node actor, and no channel of the application's interface reaches it.
    let consensus = engine
        .actor
        .get_children()
        .into_iter()
        .find(|c| c.is_message_type_of::<EngineMsg<VwContext>>() == Some(true))
        .map(ConsensusRef::<VwContext>::from);
    let link = EngineLink::new(channels.events.subscribe(), consensus);
    let app = App::new(core, signer, setup.settings);
    let app = tokio::spawn(app.run(channels, link));
    Ok(ConsensusHandle { engine, app })
}
