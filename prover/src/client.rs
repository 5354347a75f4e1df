//! The validator API as the household tools use it (docs/spec/api.md).

use serde::Deserialize;
use serde_json::Value;
use veilwatt_circuits::registry::MemoryRegistry;
use veilwatt_verifier::clearing::Trade;
use veilwatt_verifier::ledger::{OrderOutcome, PeriodResult};
use veilwatt_verifier::types::{Block, FieldBytes, Genesis, Transaction, TxId, WalletKey};

use crate::notes::{NoteBook, NotesError};

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or answered garbage.
    #[error("node {base}: {source}")]
    Http {
        /// The node.
        base: String,
        /// The error.
        source: reqwest::Error,
    },
    /// The node refused the request with a reason.
    #[error("the node refused it ({status}, {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Why.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the node: {0}")]
    Unexpected(String),
}

/// Why wallets could not follow the ledger.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The node could not give the blocks or period results.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A block the wallet cannot take (out of order, or a clearing without its result).
    #[error(transparent)]
    Notes(#[from] NotesError),
}

/// A period as the node reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct PeriodView {
    /// The period.
    #[serde(default)]
    pub period: u64,
    /// `open` or `cleared`.
    pub status: String,
    /// Height of the block that cleared it (cleared periods).
    #[serde(default)]
    pub cleared_at: Option<u64>,
    /// Matched energy, Wh (cleared periods).
    #[serde(default)]
    pub volume_wh: u64,
    /// Uniform clearing price, if any.
    #[serde(default)]
    pub clearing_price: Option<u64>,
    /// Trades (cleared periods).
    #[serde(default)]
    pub trades: Vec<Trade>,
    /// Per-order outcomes (cleared periods).
    #[serde(default)]
    pub outcomes: Vec<OrderOutcome>,
}

impl PeriodView {
    /// The ledger's result of a cleared period (`None` while it is open).
    pub fn result(&self) -> Option<PeriodResult> {
        Some(PeriodResult {
            period: self.period,
            cleared_at: self.cleared_at?,
            clearing_price: self.clearing_price,
            volume_wh: self.volume_wh,
            trades: self.trades.clone(),
            orders: self.outcomes.clone(),
        })
    }
}

/// How many times a request over the client's rate is retried.
pub const RATE_RETRIES: usize = 3;
/// The longest a retry waits, whatever the node's `Retry-After`.
pub const MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends `request`, waiting out a `429 rate_limited` answer (its `Retry-After`, at most
/// [`MAX_RETRY_WAIT`]) up to `retries` times: the node limits each client's rate.
pub async fn send_waiting(
    request: reqwest::RequestBuilder,
    retries: usize,
) -> reqwest::Result<reqwest::Response> {
    let mut request = request;
    for _ in 0..retries {
        let again = request.try_clone();
        let r = request.send().await?;
        let wait = (r.status().as_u16() == 429)
            .then(|| r.headers().get(reqwest::header::RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match (wait, again) {
            (Some(secs), Some(next)) => {
                tokio::time::sleep(std::time::Duration::from_secs(secs).min(MAX_RETRY_WAIT)).await;
                request = next;
            }
            _ => return Ok(r),
        }
    }
    request.send().await
}

/// A client of one validator's API.
#[derive(Clone, Debug)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
}

impl NodeClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn http(&self) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
        |source| ClientError::Http {
            base: self.base.clone(),
            source,
        }
    }

    async fn refused(r: reqwest::Response) -> ClientError {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        ClientError::Refused {
            status,
            code: body["code"].as_str().unwrap_or("unknown").to_owned(),
            message: body["message"]
                .as_str()
                .unwrap_or("(no reason given)")
                .to_owned(),
        }
    }

    /// [`send_waiting`] with [`RATE_RETRIES`].
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        send_waiting(request, RATE_RETRIES)
            .await
            .map_err(self.http())
    }

    /// GET `path`; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ClientError> {
        let r = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(Self::refused(r).await);
        }
        r.json().await.map(Some).map_err(self.http())
    }

    async fn get_some(&self, path: &str) -> Result<Value, ClientError> {
        self.get(path)
            .await?
            .ok_or_else(|| ClientError::Unexpected(format!("{path} not found")))
    }

    /// `/v1/status`.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.get_some("/v1/status").await
    }

    /// Submits a transaction; its id once the node admitted it.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxId, ClientError> {
        let r = self
            .send(self.http.post(format!("{}/v1/tx", self.base)).json(tx))
            .await?;
        if r.status().as_u16() != 202 {
            return Err(Self::refused(r).await);
        }
        Ok(tx.id())
    }

    /// A transaction's status (`pending`, `committed`, `rejected`), `None` if unknown.
    pub async fn tx_status(&self, id: &TxId) -> Result<Option<Value>, ClientError> {
        self.get(&format!("/v1/tx/{id}")).await
    }

    /// A period's view.
    pub async fn period(&self, p: u64) -> Result<PeriodView, ClientError> {
        let v = self.get_some(&format!("/v1/periods/{p}")).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// Committed blocks `from..=to` (the node may return fewer: its responses are bounded),
    /// and the node's height.
    pub async fn blocks(&self, from: u64, to: u64) -> Result<(Vec<Block>, u64), ClientError> {
        let v = self
            .get_some(&format!("/v1/blocks?from={from}&to={to}"))
            .await?;
        let height = v["height"]
            .as_u64()
            .ok_or_else(|| ClientError::Unexpected("a block range without the height".into()))?;
        let blocks = serde_json::from_value(v["blocks"].clone())
            .map_err(|e| ClientError::Unexpected(format!("blocks: {e}")))?;
        Ok((blocks, height))
    }

    /// Brings the wallets `books` of market `g` up to the node's height: every block each has
    /// not scanned yet, with the results of the periods the block clears (the notes clearing
    /// mints to unlinkable orders' payout targets; [`NoteBook::due_periods`]). Each period's
    /// result is fetched once for all the books.
    pub async fn sync(&self, g: &Genesis, books: &mut [NoteBook]) -> Result<(), SyncError> {
        let Some(mut from) = books.iter().map(|b| b.height() + 1).min() else {
            return Ok(());
        };
        loop {
            let (blocks, height) = self.blocks(from, from.saturating_add(999)).await?;
            for b in &blocks {
                let behind: Vec<&mut NoteBook> = books
                    .iter_mut()
                    .filter(|k| k.height() + 1 == b.height)
                    .collect();
                let mut due: Vec<u64> = behind
                    .iter()
                    .flat_map(|k| k.due_periods(g, b.time))
                    .collect();
                due.sort_unstable();
                due.dedup();
                let mut cleared = Vec::new();
                for p in due {
                    cleared.extend(self.period(p).await?.result());
                }
                for book in behind {
                    book.scan(g, b, &cleared)?;
                }
            }
            from = from.saturating_add(blocks.len() as u64);
            if blocks.is_empty() || from > height {
                return Ok(());
            }
        }
    }

    /// The meter registry rebuilt from the node's public leaves (every page of
    /// `/v1/registry/leaves`; the node learns nothing of which leaf is the caller's), and its
    /// valid recent roots (`/v1/registry`). The leaves' root is checked against the node's; a
    /// block committed between the pages is retried.
    pub async fn registry(&self) -> Result<(MemoryRegistry, Vec<FieldBytes>), ClientError> {
        let field = |v: &Value, what: &str| -> Result<FieldBytes, ClientError> {
            serde_json::from_value(v.clone())
                .map_err(|e| ClientError::Unexpected(format!("registry {what}: {e}")))
        };
        for _ in 0..5 {
            let status = self.get_some("/v1/registry").await?;
            let root = field(&status["root"], "root")?;
            let recent: Vec<FieldBytes> = serde_json::from_value(status["recent_roots"].clone())
                .map_err(|e| ClientError::Unexpected(format!("registry roots: {e}")))?;
            let size = status["size"]
                .as_u64()
                .ok_or_else(|| ClientError::Unexpected("registry without a size".into()))?;
            let mut leaves = Vec::new();
            let mut moved = false;
            while (leaves.len() as u64) < size {
                let page = self
                    .get_some(&format!("/v1/registry/leaves?from={}", leaves.len()))
                    .await?;
                if field(&page["root"], "root")? != root {
                    moved = true;
                    break;
                }
                let got: Vec<FieldBytes> = serde_json::from_value(page["leaves"].clone())
                    .map_err(|e| ClientError::Unexpected(format!("registry leaves: {e}")))?;
                if got.is_empty() {
                    return Err(ClientError::Unexpected(
                        "the registry's leaves end before its size".into(),
                    ));
                }
                for l in got {
                    leaves.push(l.to_field().ok_or_else(|| {
                        ClientError::Unexpected(format!("registry leaf {l} is not a field element"))
                    })?);
                }
            }
            if moved {
                continue;
            }
            let registry = crate::unlinkable::registry_from_leaves(&leaves)
                .map_err(|e| ClientError::Unexpected(format!("registry: {e}")))?;
            if FieldBytes::from_field(registry.root()) != root {
                return Err(ClientError::Unexpected(
                    "the registry's leaves do not give its root".into(),
                ));
            }
            return Ok((registry, recent));
        }
        Err(ClientError::Unexpected(
            "the registry kept changing while it was read".into(),
        ))
    }

    /// An account (`None` until something was credited to it).
    pub async fn account(&self, a: &WalletKey) -> Result<Option<Value>, ClientError> {
        self.get(&format!("/v1/accounts/{a}")).await
    }
}
