//! The one client of a validator's API (docs/spec/node.md, "API"), typed by [`crate::api`]:
//! the household tools, the registrar command, the demo, the load generator and the audit all
//! talk to nodes through it.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::{
    AccountView, BlockRange, BlockView, CommitEvent, ErrorBody, MeterView, PeriodView,
    RegistryLeaves, RegistryView, StatusView, TxStatus, TxStatusView,
};
use crate::state::StateProof;
use crate::types::{MeterKey, Transaction, TxId, WalletKey};

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the connection failed.
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
    #[error("unexpected answer from node {base} to {path}: {why}")]
    Unexpected {
        /// The node.
        base: String,
        /// What was asked.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// A transaction did not reach a block in time.
    #[error("transaction {id} still {status} after {waited:?}")]
    Timeout {
        /// The transaction.
        id: TxId,
        /// Its last status (`pending` or `unknown`).
        status: &'static str,
        /// How long the client waited.
        waited: Duration,
    },
}

impl ClientError {
    /// The node's stable error code, if it refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How many times a request over the client's rate is retried by default.
pub const RATE_RETRIES: usize = 3;
/// The longest a retry waits, whatever the node's `Retry-After`.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

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
                tokio::time::sleep(Duration::from_secs(secs).min(MAX_RETRY_WAIT)).await;
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
    retries: usize,
}

impl NodeClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str) -> Self {
        Self::with_http(reqwest::Client::new(), base)
    }

    /// A client sharing `http`'s connection pool (and its settings).
    pub fn with_http(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            retries: RATE_RETRIES,
        }
    }

    /// Waits out `429 rate_limited` up to `retries` times per request (default
    /// [`RATE_RETRIES`]).
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn http_error(&self) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
        |source| ClientError::Http {
            base: self.base.clone(),
            source,
        }
    }

    fn unexpected(&self, path: &str, why: impl std::fmt::Display) -> ClientError {
        ClientError::Unexpected {
            base: self.base.clone(),
            path: path.to_owned(),
            why: why.to_string(),
        }
    }

    async fn refused(r: reqwest::Response) -> ClientError {
        let status = r.status().as_u16();
        let body: Option<ErrorBody> = r.json().await.ok();
        let (code, message) = body.map_or_else(
            || ("unknown".to_owned(), "(no reason given)".to_owned()),
            |b| (b.code, b.message),
        );
        ClientError::Refused {
            status,
            code,
            message,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        send_waiting(request, self.retries)
            .await
            .map_err(self.http_error())
    }

    /// GET `path` as text; `None` on 404.
    async fn get_text(&self, path: &str) -> Result<Option<String>, ClientError> {
        let r = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(Self::refused(r).await);
        }
        r.text().await.map(Some).map_err(self.http_error())
    }

    /// GET `path` decoded as `T`; `None` on 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        let Some(body) = self.get_text(path).await? else {
            return Ok(None);
        };
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| self.unexpected(path, e))
    }

    async fn get_some<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get(path)
            .await?
            .ok_or_else(|| self.unexpected(path, "not found"))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get_some("/v1/status").await
    }

    /// `POST /v1/tx`: the transaction's id once the node admitted it.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxId, ClientError> {
        let r = self
            .send(self.http.post(format!("{}/v1/tx", self.base)).json(tx))
            .await?;
        if r.status().as_u16() != 202 {
            return Err(Self::refused(r).await);
        }
        let id = tx.id();
        let answer: TxStatusView = r.json().await.map_err(|e| self.unexpected("/v1/tx", e))?;
        if answer.id != id {
            return Err(self.unexpected(
                "/v1/tx",
                format!("admitted {} for transaction {id}", answer.id),
            ));
        }
        Ok(id)
    }

    /// `GET /v1/tx/{id}`: `None` if the node does not know it.
    pub async fn tx_status(&self, id: &TxId) -> Result<Option<TxStatusView>, ClientError> {
        self.get(&format!("/v1/tx/{id}")).await
    }

    /// Polls every `poll` until `id` leaves the mempool (committed or rejected), at most
    /// `timeout`.
    pub async fn wait_for(
        &self,
        id: &TxId,
        poll: Duration,
        timeout: Duration,
    ) -> Result<TxStatus, ClientError> {
        let t0 = tokio::time::Instant::now();
        loop {
            let status = self.tx_status(id).await?.map(|s| s.status);
            match status {
                Some(TxStatus::Pending) | None => {}
                Some(done) => return Ok(done),
            }
            if t0.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    id: *id,
                    status: if status.is_some() {
                        "pending"
                    } else {
                        "unknown"
                    },
                    waited: t0.elapsed(),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// `GET /v1/blocks/{height}`: `None` above the node's height.
    pub async fn block(&self, height: u64) -> Result<Option<BlockView>, ClientError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    /// `GET /v1/blocks?from=&to=`: committed blocks `from..=to`; the node may return fewer
    /// (its answers are bounded; [`BlockRange::to`] says where this one stops).
    pub async fn blocks(&self, from: u64, to: u64) -> Result<BlockRange, ClientError> {
        self.get_some(&format!("/v1/blocks?from={from}&to={to}"))
            .await
    }

    /// Every committed block from `from` to the node's height, page by page (for small
    /// ledgers: it holds them all; stream [`NodeClient::blocks`] pages otherwise).
    pub async fn blocks_from(&self, from: u64) -> Result<Vec<BlockView>, ClientError> {
        let (mut out, mut from) = (Vec::new(), from);
        loop {
            let page = self.blocks(from, from.saturating_add(999)).await?;
            let done = page.blocks.is_empty() || page.to >= page.height;
            from = page.to.saturating_add(1);
            out.extend(page.blocks);
            if done {
                return Ok(out);
            }
        }
    }

    /// `GET /v1/periods/{period}`.
    pub async fn period(&self, p: u64) -> Result<PeriodView, ClientError> {
        self.get_some(&format!("/v1/periods/{p}")).await
    }

    /// `GET /v1/accounts/{address}`: `None` until something was credited to it.
    pub async fn account(&self, a: &WalletKey) -> Result<Option<AccountView>, ClientError> {
        self.get(&format!("/v1/accounts/{a}")).await
    }

    /// `GET /v1/meters/{id}`: `None` for a meter never enrolled.
    pub async fn meter(&self, m: &MeterKey) -> Result<Option<MeterView>, ClientError> {
        self.get(&format!("/v1/meters/{m}")).await
    }

    /// `GET /v1/registry`: `None` in a market without unlinkable orders.
    pub async fn registry(&self) -> Result<Option<RegistryView>, ClientError> {
        self.get("/v1/registry").await
    }

    /// `GET /v1/registry/leaves?from=`: a page of the registry's leaves.
    pub async fn registry_leaves(&self, from: u64) -> Result<RegistryLeaves, ClientError> {
        self.get_some(&format!("/v1/registry/leaves?from={from}"))
            .await
    }

    /// `GET /v1/state/{key}?proof=true`: the committed entry under `key` (or its absence)
    /// with its proof against the last block's state root.
    pub async fn state_proof(&self, key: &[u8]) -> Result<StateProof, ClientError> {
        self.get_some(&format!("/v1/state/{}?proof=true", hex::encode(key)))
            .await
    }

    /// Follows `GET /v1/events`: calls `on_commit` with every commit event as it arrives,
    /// until the node ends the stream (it shuts down) or the connection fails. A slow reader
    /// skips events the node could not hold for it; blocks stay readable by height.
    pub async fn follow_commits(
        &self,
        mut on_commit: impl FnMut(CommitEvent),
    ) -> Result<(), ClientError> {
        const PATH: &str = "/v1/events";
        let mut r = self
            .send(self.http.get(format!("{}{PATH}", self.base)))
            .await?;
        if !r.status().is_success() {
            return Err(Self::refused(r).await);
        }
        let mut buf = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(self.http_error())? {
            buf.extend_from_slice(&chunk);
            // Server-sent events end with a blank line; a commit's JSON is one `data:` line.
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let is_commit = text.lines().any(|l| {
                    l.strip_prefix("event:")
                        .is_some_and(|v| v.trim() == "commit")
                });
                for data in text.lines().filter_map(|l| l.strip_prefix("data:")) {
                    if is_commit {
                        let e = serde_json::from_str(data.trim())
                            .map_err(|e| self.unexpected(PATH, e))?;
                        on_commit(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.get_text("/metrics")
            .await?
            .ok_or_else(|| self.unexpected("/metrics", "not found"))
    }
}
