//! A validator's home directory: `config.toml`, `genesis.json`, `validator_key.json` and
//! `data/` (the RocksDB ledger and the consensus WAL).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use veilwatt_verifier::types::{Genesis, WalletKey};

/// Config file name inside a home.
pub const CONFIG_FILE: &str = "config.toml";
/// Genesis file name inside a home.
pub const GENESIS_FILE: &str = "genesis.json";
/// Validator key file name inside a home.
pub const KEY_FILE: &str = "validator_key.json";

/// Problems with a home directory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// The home is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    }
}

/// HTTP API settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (`127.0.0.1:0` picks a free port; the bound address is written to
    /// `data/api.addr`).
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the API is served over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Open connections, all clients together; more are closed at once (lowered to what the
    /// process' open-file limit leaves).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time for a TLS handshake and for each request head, ms; a keep-alive connection that
    /// stays silent this long is closed.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Time for a request body, ms (408 after).
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Requests a second per client address (429 with `Retry-After` beyond); 0: no limit.
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    /// Requests a client address may make at once before its rate applies.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: u32,
    /// Clients of the event stream (`/v1/events`) at once; more get 503.
    #[serde(default = "default_max_subscribers")]
    pub max_subscribers: usize,
    /// The listener for the other validators' forwarded transactions (`POST /v1/peer/txs`),
    /// apart from the clients' (its own connections, not shared with the public); without it
    /// the route is served on `listen`. The bound address is written to `data/peer.addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_listen: Option<SocketAddr>,
}

/// Most connections of the peer listener: validators are few.
pub const PEER_MAX_CONNECTIONS: usize = 256;

fn default_max_connections() -> usize {
    10_000
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_body_timeout_ms() -> u64 {
    30_000
}

fn default_rate_per_sec() -> u32 {
    100
}

fn default_rate_burst() -> u32 {
    1_000
}

fn default_max_subscribers() -> usize {
    1_024
}

impl ApiConfig {
    /// Defaults for an API listening on `listen`, without TLS.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 16 * 1024,
            max_connections: default_max_connections(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            rate_per_sec: default_rate_per_sec(),
            rate_burst: default_rate_burst(),
            max_subscribers: default_max_subscribers(),
            peer_listen: None,
        }
    }

    /// The listener's limits (`max_body_bytes` is the routes' own: the listener reads up to the
    /// largest body any route accepts, a peer's forwarded batch).
    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            body_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
            max_body_bytes: self.max_body_bytes.max(crate::forward::MAX_BATCH_BYTES),
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
        }
    }
}

/// Consensus settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSettings {
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/27000`.
    pub p2p_listen: String,
    /// Other validators' p2p addresses.
    #[serde(default)]
    pub persistent_peers: Vec<String>,
    /// Target time between blocks, ms (blocks are produced even when empty).
    pub block_interval_ms: u64,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// How long validators wait for a round's proposal before voting nil, ms (grows by half a
    /// second per round). Also bounds how long a proposer waits for the block interval.
    #[serde(default = "default_propose_timeout_ms")]
    pub propose_timeout_ms: u64,
    /// How long validators wait, once a quorum has voted but not for one block, for the other
    /// votes before moving on (the prevote and precommit timeouts), ms (grows by half a second
    /// per round). A round whose proposal was refused ends after this, so keep it near the
    /// block interval.
    #[serde(default = "default_vote_timeout_ms")]
    pub vote_timeout_ms: u64,
    /// The other validators' API base URLs (`http://host:port`): transactions this node's
    /// clients submit are forwarded to them.
    #[serde(default)]
    pub peer_apis: Vec<String>,
}

fn default_propose_timeout_ms() -> u64 {
    3000
}

fn default_vote_timeout_ms() -> u64 {
    1000
}

/// Mempool settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MempoolSettings {
    /// Most pending transactions; beyond, submissions get 429.
    pub capacity: usize,
    /// Most pending transactions of one signer (the registrar excepted); beyond, its
    /// submissions get 429 `signer_quota`.
    #[serde(default = "default_per_signer")]
    pub per_signer: usize,
}

fn default_per_signer() -> usize {
    64
}

/// `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Human-readable node name.
    pub moniker: String,
    /// API.
    pub api: ApiConfig,
    /// Consensus.
    pub consensus: ConsensusSettings,
    /// Mempool.
    pub mempool: MempoolSettings,
    /// Test-only misbehaviour as a proposer (`byzantine` feature; a node built without it
    /// refuses a config that sets this).
    #[cfg(feature = "byzantine")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<crate::byzantine::Mode>,
}

impl NodeConfig {
    /// Defaults for a validator named `moniker` with the given listen addresses.
    pub fn new(moniker: &str, api: SocketAddr, p2p_port: u16) -> Self {
        Self {
            moniker: moniker.to_owned(),
            api: ApiConfig::new(api),
            consensus: ConsensusSettings {
                p2p_listen: format!("/ip4/127.0.0.1/tcp/{p2p_port}"),
                persistent_peers: Vec::new(),
                block_interval_ms: 1000,
                max_block_txs: 4000,
                propose_timeout_ms: default_propose_timeout_ms(),
                vote_timeout_ms: default_vote_timeout_ms(),
                peer_apis: Vec::new(),
            },
            mempool: MempoolSettings {
                capacity: 50_000,
                per_signer: default_per_signer(),
            },
            #[cfg(feature = "byzantine")]
            byzantine: None,
        }
    }

    /// Validator `i` of a network on 127.0.0.1 whose validators listen on `ports.api` (HTTP),
    /// `ports.p2p` (consensus) and `ports.peer` (forwarded transactions): every other validator
    /// is a persistent peer and a forwarding target.
    pub fn local_network(moniker: &str, i: usize, ports: &LocalPorts) -> Self {
        let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut cfg = Self::new(moniker, local(ports.api[i]), ports.p2p[i]);
        cfg.api.peer_listen = Some(local(ports.peer[i]));
        let others = |ports: &[u16], fmt: fn(u16) -> String| -> Vec<String> {
            (0..ports.len())
                .filter(|j| *j != i)
                .map(|j| fmt(ports[j]))
                .collect()
        };
        cfg.consensus.persistent_peers = others(&ports.p2p, |p| format!("/ip4/127.0.0.1/tcp/{p}"));
        cfg.consensus.peer_apis = others(&ports.peer, |p| format!("http://127.0.0.1:{p}"));
        cfg
    }
}

/// The ports of a local network's validators, one of each per validator.
#[derive(Clone, Debug, Default)]
pub struct LocalPorts {
    /// The clients' API.
    pub api: Vec<u16>,
    /// Consensus (libp2p).
    pub p2p: Vec<u16>,
    /// Forwarded transactions from the other validators.
    pub peer: Vec<u16>,
}

impl LocalPorts {
    /// Ports for `n` validators from `pick` (called three times per validator).
    pub fn pick<E>(n: usize, mut pick: impl FnMut() -> Result<u16, E>) -> Result<Self, E> {
        let mut ports = Self::default();
        for _ in 0..n {
            ports.api.push(pick()?);
            ports.p2p.push(pick()?);
            ports.peer.push(pick()?);
        }
        Ok(ports)
    }
}

/// The validator's consensus key, stored as hex of the 32-byte Ed25519 seed.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Public key (for reading; checked against the secret on load).
    pub public_key: WalletKey,
    /// Secret seed, hex.
    pub secret: String,
}

impl KeyFile {
    /// Reads the key file at `path` (a validator's, or the registrar's that `testnet` writes)
    /// and returns its secret seed, checked against its public key.
    pub fn read_secret(path: &Path) -> Result<[u8; 32], ConfigError> {
        let key: KeyFile = read_json(path)?;
        let secret: [u8; 32] = hex::decode(&key.secret)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| ConfigError::Parse {
                path: path.to_owned(),
                message: "secret must be 64 hex characters".into(),
            })?;
        let public = ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes();
        if public != key.public_key.0 {
            return Err(ConfigError::Invalid(format!(
                "{}: public key does not match the secret",
                path.display()
            )));
        }
        Ok(secret)
    }
}

/// A loaded home directory.
pub struct Home {
    /// Root.
    pub dir: PathBuf,
    /// Config.
    pub config: NodeConfig,
    /// Genesis.
    pub genesis: Genesis,
    /// Consensus secret seed.
    pub secret: [u8; 32],
}

impl Home {
    /// RocksDB directory.
    pub fn ledger_dir(&self) -> PathBuf {
        self.dir.join("data").join("ledger")
    }

    /// Consensus WAL file.
    pub fn wal_path(&self) -> PathBuf {
        self.dir.join("data").join("consensus.wal")
    }

    /// Where the running node writes its bound API address.
    pub fn api_addr_file(&self) -> PathBuf {
        self.dir.join("data").join("api.addr")
    }

    /// Where the node writes its bound peer-listener address.
    pub fn peer_addr_file(&self) -> PathBuf {
        self.dir.join("data").join("peer.addr")
    }

    /// This validator's consensus public key.
    pub fn public_key(&self) -> WalletKey {
        WalletKey(
            ed25519_dalek::SigningKey::from_bytes(&self.secret)
                .verifying_key()
                .to_bytes(),
        )
    }

    /// Loads and cross-checks a home.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let config = read_toml(&dir.join(CONFIG_FILE))?;
        let genesis = read_genesis(&dir.join(GENESIS_FILE))?;
        let secret = KeyFile::read_secret(&dir.join(KEY_FILE))?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            genesis,
            secret,
        })
    }

    /// Writes a new home; refuses to overwrite an existing key.
    pub fn create(
        dir: &Path,
        config: &NodeConfig,
        genesis: &Genesis,
        secret: [u8; 32],
    ) -> Result<(), ConfigError> {
        std::fs::create_dir_all(dir.join("data")).map_err(io(dir))?;
        let kpath = dir.join(KEY_FILE);
        if kpath.exists() {
            return Err(ConfigError::Invalid(format!(
                "{} exists; refusing to overwrite a validator key",
                kpath.display()
            )));
        }
        let public = WalletKey(
            ed25519_dalek::SigningKey::from_bytes(&secret)
                .verifying_key()
                .to_bytes(),
        );
        let key = KeyFile {
            public_key: public,
            secret: hex::encode(secret),
        };
        write_private(&kpath, &to_json(&key))?;
        let cpath = dir.join(CONFIG_FILE);
        let toml = toml::to_string_pretty(config).map_err(|e| ConfigError::Parse {
            path: cpath.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&cpath, toml).map_err(io(&cpath))?;
        let gpath = dir.join(GENESIS_FILE);
        std::fs::write(&gpath, to_json(genesis)).map_err(io(&gpath))?;
        Ok(())
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing plain data structures to a string cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Writes a secret to a new file readable by its owner only (0600 on Unix); refuses to
/// overwrite an existing file.
pub fn write_private(path: &Path, contents: &str) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(io(path))?;
    toml::from_str(&s).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&s).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads and validates a genesis file.
pub fn read_genesis(path: &Path) -> Result<Genesis, ConfigError> {
    let g: Genesis = read_json(path)?;
    g.validate()
        .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(g)
}

/// Writes a genesis file.
pub fn write_genesis(path: &Path, g: &Genesis) -> Result<(), ConfigError> {
    std::fs::write(path, to_json(g)).map_err(io(path))
}

/// Lowest port [`free_local_port`] hands out.
const LOCAL_PORT_FLOOR: u16 = 10_000;

/// The OS's ephemeral port range (Linux), if readable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// A free TCP port on 127.0.0.1 for a local validator (demo, tests), chosen *below* the OS's
/// ephemeral range.
///
/// A port the OS handed out by binding port 0 lies in the ephemeral range, from which outgoing
/// connections also take their local port. While a validator is down, its peers keep dialing
/// its port, and on loopback a dial whose local port happens to equal the destination port
/// connects to itself (TCP simultaneous open): the port is then taken, and the restarted
/// validator cannot listen on it. A port outside that range is never picked for a dial.
/// Falls back to an OS-chosen port when the range leaves no room below it.
pub fn free_local_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(0);
    let os_port = || {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let low = ephemeral_range().map_or(32_768, |(lo, _)| lo);
    let span = u32::from(low.saturating_sub(LOCAL_PORT_FLOOR));
    if span < 1_000 {
        return os_port();
    }
    // A per-process starting point, so that concurrent test processes rarely probe the same
    // ports; then walk the span.
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let _ = CURSOR.compare_exchange(0, seed % span + 1, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let k = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
        let port = LOCAL_PORT_FLOOR + k as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    os_port()
}
