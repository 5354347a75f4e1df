//! The HTTP API (warp), versioned under `/v1`, JSON in and out: every answer is a type of
//! `veilwatt_verifier::api`, every error `{"code": ..., "message": ...}` with a stable code;
//! see docs/spec/node.md ("API") and the OpenAPI document served at `/v1/openapi.json`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use veilwatt_verifier::api::{
    AccountView, BlockView, ClearedPeriod, ErrorBody, MeterView, OpenPeriod, OrderRef, PerSide,
    PeriodView, RegistryLeaves, RegistryView, StateValue, StatusView, SyncView, TxStatus,
    TxStatusView,
};
use veilwatt_verifier::certificate::Certificate;
use veilwatt_verifier::ledger::LedgerRead;
use veilwatt_verifier::registry;
use veilwatt_verifier::state::{keys, StateRead};
use veilwatt_verifier::types::{Block, MeterKey, TxId, WalletKey};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::admission::AdmitError;
use crate::core::NodeCore;
use crate::forward::ForwardError;

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The live market page served at `/` (`node/src/web/market.html`), embedded in the binary.
pub const MARKET_PAGE: &str = include_str!("web/market.html");

/// Most blocks returned by one range request.
pub const MAX_BLOCK_RANGE: u64 = 100;

/// Most bytes of blocks in one range answer (at least one block is always in it).
pub const MAX_RANGE_BYTES: usize = 4 << 20;

/// An error reply.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    fn malformed(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", what)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        Self {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        warp::reply::with_status(
            warp::reply::json(&ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            }),
            self.status,
        )
        .into_response()
    }
}

type ApiResult = Result<warp::reply::Response, Infallible>;

fn ok<T: Serialize>(v: &T) -> ApiResult {
    Ok(warp::reply::json(v).into_response())
}

fn answer(r: Result<warp::reply::Response, ApiError>) -> ApiResult {
    Ok(r.unwrap_or_else(Reply::into_response))
}

fn with_core(
    core: Arc<NodeCore>,
) -> impl Filter<Extract = (Arc<NodeCore>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&core))
}

/// The route of the other validators' forwarded transactions.
fn peer_txs(
    core: Arc<NodeCore>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "peer" / "txs")
        .and(warp::post())
        .and(warp::body::content_length_limit(
            crate::forward::MAX_BATCH_BYTES as u64,
        ))
        .and(warp::body::bytes())
        .and(with_core(core))
        .and_then(receive_forwarded)
}

/// The routes of the peer listener (`api.peer_listen`): forwarded transactions only.
pub fn peer_routes(
    core: Arc<NodeCore>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    peer_txs(core).recover(recover).with(warp::trace::request())
}

/// All the clients' routes, with errors recovered into JSON: bodies of transactions up to
/// `max_body_bytes`, at most `max_subscribers` clients of the event stream at once, and the
/// other validators' forwarded transactions unless they have a listener of their own
/// (`with_peer_txs` false: the route answers 404 here).
pub fn routes(
    core: Arc<NodeCore>,
    max_body_bytes: usize,
    max_subscribers: usize,
    with_peer_txs: bool,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let c = || with_core(Arc::clone(&core));
    let subscribers = Arc::new(tokio::sync::Semaphore::new(max_subscribers));
    let submit = warp::path!("v1" / "tx")
        .and(warp::post())
        .and(warp::body::content_length_limit(max_body_bytes as u64))
        .and(warp::body::bytes())
        .and(c())
        .and_then(submit_tx);
    let peer_txs = warp::any()
        .and_then(move || async move {
            if with_peer_txs {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(peer_txs(Arc::clone(&core)));
    let tx = warp::path!("v1" / "tx" / String)
        .and(warp::get())
        .and(c())
        .and_then(get_tx);
    let block = warp::path!("v1" / "blocks" / u64)
        .and(warp::get())
        .and(c())
        .and_then(get_block);
    let blocks = warp::path!("v1" / "blocks")
        .and(warp::get())
        .and(warp::query::<RangeQuery>())
        .and(c())
        .and_then(get_blocks);
    let period = warp::path!("v1" / "periods" / u64)
        .and(warp::get())
        .and(c())
        .and_then(get_period);
    let account = warp::path!("v1" / "accounts" / String)
        .and(warp::get())
        .and(c())
        .and_then(get_account);
    let meter = warp::path!("v1" / "meters" / String)
        .and(warp::get())
        .and(c())
        .and_then(get_meter);
    let registry = warp::path!("v1" / "registry")
        .and(warp::get())
        .and(c())
        .and_then(get_registry);
    let registry_leaves = warp::path!("v1" / "registry" / "leaves")
        .and(warp::get())
        .and(warp::query::<LeavesQuery>())
        .and(c())
        .and_then(get_registry_leaves);
    let state = warp::path!("v1" / "state" / String)
        .and(warp::get())
        .and(warp::query::<StateQuery>())
        .and(c())
        .and_then(get_state);
    let status = warp::path!("v1" / "status")
        .and(warp::get())
        .and(c())
        .and_then(get_status);
    let events = warp::path!("v1" / "events")
        .and(warp::get())
        .and(c())
        .map(move |core| sse_commits(core, &subscribers));
    let metrics = warp::path!("metrics").and(warp::get()).map(|| {
        warp::reply::with_header(
            crate::metrics::export(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    // The live market page: one self-contained document (no CDN, no build step), which
    // the browser may only connect back to this node.
    let page = warp::path::end().and(warp::get()).map(|| {
        let r = warp::reply::with_header(MARKET_PAGE, "content-type", "text/html; charset=utf-8");
        warp::reply::with_header(
            r,
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:",
        )
    });
    let openapi = warp::path!("v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(OPENAPI, "content-type", "application/json"));
    submit
        .or(peer_txs)
        .or(tx)
        .or(block)
        .or(blocks)
        .or(period)
        .or(account)
        .or(meter)
        .or(registry)
        .or(registry_leaves)
        .or(state)
        .or(status)
        .or(events)
        .or(metrics)
        .or(openapi)
        .or(page)
        .recover(recover)
        .with(warp::trace::request())
}

async fn recover(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    let e = if r.is_not_found() {
        ApiError::not_found("no such route")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body exceeds the limit",
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    } else if let Some(e) = r.find::<warp::reject::InvalidQuery>() {
        ApiError::malformed(e.to_string())
    } else {
        ApiError::malformed(format!("{r:?}"))
    };
    Ok(e.into_response())
}

async fn submit_tx(body: bytes::Bytes, core: Arc<NodeCore>) -> ApiResult {
    if !core.accepting.load(Ordering::Acquire) {
        return answer(Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the node is shutting down",
        )));
    }
    let tx = match core.decode(&body) {
        Ok(tx) => tx,
        Err(e) => return answer(Err(e.into())),
    };
    match core.submit(tx).await {
        Ok(id) => Ok(warp::reply::with_status(
            warp::reply::json(&TxStatusView {
                id,
                status: TxStatus::Pending,
            }),
            StatusCode::ACCEPTED,
        )
        .into_response()),
        Err(e) => answer(Err(e.into())),
    }
}

async fn receive_forwarded(body: bytes::Bytes, core: Arc<NodeCore>) -> ApiResult {
    if !core.accepting.load(Ordering::Acquire) {
        return answer(Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the node is shutting down",
        )));
    }
    match core.receive_forwarded(&body).await {
        Ok(outcome) => ok(&outcome),
        Err(e) => {
            let (status, code) = match e {
                ForwardError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                ForwardError::WrongChain(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_chain"),
                ForwardError::UnknownSender(_) | ForwardError::BadSignature => {
                    (StatusCode::UNAUTHORIZED, "unauthorized")
                }
                ForwardError::Replayed { .. } | ForwardError::Stale { .. } => {
                    (StatusCode::CONFLICT, "replayed")
                }
            };
            answer(Err(ApiError::new(status, code, e.to_string())))
        }
    }
}

fn parse_hex<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, ApiError> {
    parse(s).map_err(|e| ApiError::malformed(format!("{s:?}: {e}")))
}

async fn get_tx(id: String, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let id = parse_hex(&id, TxId::from_hex)?;
        let status = core
            .tx_status(&id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("transaction {id}")))?;
        ok(&TxStatusView { id, status }).map_err(|_| ApiError::internal("encoding"))
    })())
}

fn block_view(block: &Block, cert: Option<Vec<u8>>) -> BlockView {
    // The node stored the certificate it decided with; one it cannot read is left out.
    let certificate = cert.and_then(|c| Certificate::decode(&c).ok());
    BlockView::new(block, certificate.as_ref())
}

/// A block and its encoded certificate.
type Stored = (Block, Option<Vec<u8>>);

fn load_block(core: &NodeCore, height: u64) -> Result<Option<Stored>, ApiError> {
    let Some(block) = core.store.block(height).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let cert = core.store.certificate(height).map_err(ApiError::internal)?;
    Ok(Some((block, cert)))
}

async fn get_block(height: u64, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let (block, cert) = load_block(&core, height)?
            .ok_or_else(|| ApiError::not_found(format!("block {height}")))?;
        ok(&block_view(&block, cert)).map_err(|_| ApiError::internal("encoding"))
    })())
}

/// `?from=&to=` (inclusive).
#[derive(serde::Deserialize)]
pub struct RangeQuery {
    from: u64,
    to: Option<u64>,
}

async fn get_blocks(q: RangeQuery, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let top = core.tip().height;
        let to =
            q.to.unwrap_or(u64::MAX)
                .min(top)
                .min(q.from.saturating_add(MAX_BLOCK_RANGE - 1));
        if q.from == 0 {
            return Err(ApiError::malformed("heights start at 1"));
        }
        if q.to.is_some_and(|t| t < q.from) {
            return Err(ApiError::malformed("`to` is below `from`"));
        }
        // Blocks in order until the range or the byte budget ends (one block always goes
        // in); `to` says where the answer stops, so a client asks again from `to + 1`.
        let (mut blocks, mut last, mut bytes) = (Vec::new(), to, 0usize);
        for h in q.from..=to {
            let Some((b, c)) = load_block(&core, h)? else {
                continue;
            };
            let json = serde_json::to_string(&block_view(&b, c)).map_err(ApiError::internal)?;
            if !blocks.is_empty() && bytes + json.len() > MAX_RANGE_BYTES {
                last = h - 1;
                break;
            }
            bytes += json.len() + 1;
            blocks.push(json);
        }
        let body = format!(
            r#"{{"from":{},"to":{},"height":{},"blocks":[{}]}}"#,
            q.from,
            last,
            top,
            blocks.join(",")
        );
        Ok(warp::reply::with_header(body, "content-type", "application/json").into_response())
    })())
}

/// Longest state key the API looks up, bytes.
const MAX_STATE_KEY: usize = 128;

/// `?proof=true`.
#[derive(serde::Deserialize)]
pub struct StateQuery {
    #[serde(default)]
    proof: bool,
}

async fn get_state(key: String, q: StateQuery, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let key = hex::decode(&key).map_err(|e| ApiError::malformed(format!("key: {e}")))?;
        if key.is_empty() || key.len() > MAX_STATE_KEY {
            return Err(ApiError::malformed(format!(
                "key: 1..={MAX_STATE_KEY} bytes, hex"
            )));
        }
        if !keys::is_committed(&key) {
            return Err(ApiError::malformed(
                "key: a local index, not an entry of the state root",
            ));
        }
        let view = core.store.snapshot();
        if q.proof {
            let proof = view.prove(&key).map_err(ApiError::internal)?;
            return ok(&proof).map_err(|_| ApiError::internal("encoding"));
        }
        let height = view.meta().map_err(ApiError::internal)?.height;
        let value = view
            .get(&key)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("state key {}", hex::encode(&key))))?;
        ok(&StateValue {
            height,
            key: hex::encode(&key),
            value: hex::encode(value),
        })
        .map_err(|_| ApiError::internal("encoding"))
    })())
}

async fn get_period(period: u64, core: Arc<NodeCore>) -> ApiResult {
    answer(period_view(period, &core))
}

fn period_view(period: u64, core: &NodeCore) -> Result<warp::reply::Response, ApiError> {
    let view = core.store.snapshot();
    let g = core.genesis;
    if let Some(r) = view.period_result(period).map_err(ApiError::internal)? {
        return ok(&PeriodView::Cleared(ClearedPeriod::new(&r)))
            .map_err(|_| ApiError::internal("encoding"));
    }
    let (mut orders, mut quantity_wh) = (PerSide::default(), PerSide::default());
    let wallet_orders = view.orders_of_period(period).map_err(ApiError::internal)?;
    let unlinkable = view
        .unlinkable_orders_of_period(period)
        .map_err(ApiError::internal)?;
    let open = wallet_orders
        .iter()
        .map(|o| (o.side, o.quantity_wh))
        .chain(unlinkable.iter().map(|o| (o.side, o.quantity_wh)));
    for (side, wh) in open {
        orders.add(side, 1);
        quantity_wh.add(side, u64::from(wh));
    }
    ok(&PeriodView::Open(OpenPeriod {
        period,
        period_end: g.period_end(period),
        gate_close: g.gate_close(period),
        orders,
        quantity_wh,
    }))
    .map_err(|_| ApiError::internal("encoding"))
}

async fn get_account(address: String, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let key = parse_hex(&address, WalletKey::from_hex)?;
        let view = core.store.snapshot();
        let acct = view
            .account(&key)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("account {address}")))?;
        ok(&AccountView {
            address: key,
            balance_millis: acct.balance,
            escrow_millis: acct.escrow,
            open_orders: view.orders_of_owner(&key).map_err(ApiError::internal)?,
            meters: view.meters_of_owner(&key).map_err(ApiError::internal)?,
        })
        .map_err(|_| ApiError::internal("encoding"))
    })())
}

async fn get_meter(id: String, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let key = parse_hex(&id, MeterKey::from_hex)?;
        let view = core.store.snapshot();
        let m = view.meter(&key).map_err(ApiError::internal)?;
        let enrolment = view.enrolment(&key).map_err(ApiError::internal)?;
        if m.is_none() && enrolment.is_none() {
            return Err(ApiError::not_found(format!("meter {id}")));
        }
        let orders: Vec<(u64, TxId)> = view.orders_of_meter(&key).map_err(ApiError::internal)?;
        ok(&MeterView {
            id: key,
            owner: m.map(|m| m.owner),
            revoked: m.is_none_or(|m| m.revoked) && enrolment.is_none_or(|e| e.revoked),
            open_orders: orders
                .into_iter()
                .map(|(period, id)| OrderRef { period, id })
                .collect(),
            enrolment,
        })
        .map_err(|_| ApiError::internal("encoding"))
    })())
}

/// The registry of a market with unlinkable orders, or 404.
fn registry_params(
    core: &NodeCore,
) -> Result<&veilwatt_verifier::types::AnonymousParams, ApiError> {
    core.genesis
        .anonymous
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this market has no meter registry"))
}

async fn get_registry(core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        let params = registry_params(&core)?;
        let view = core.store.snapshot();
        let rec = registry::record(&view).map_err(ApiError::internal)?;
        ok(&RegistryView {
            size: rec.size,
            depth: veilwatt_circuits::registry::DEPTH as u32,
            root: registry::root(&view).map_err(ApiError::internal)?,
            recent_roots: registry::recent_roots(&view).map_err(ApiError::internal)?,
            registry_history: params.registry_history,
        })
        .map_err(|_| ApiError::internal("encoding"))
    })())
}

/// Most leaves one `/v1/registry/leaves` answer carries (128 KiB of field elements).
pub const MAX_REGISTRY_LEAVES: usize = 4_096;

/// `?from=&limit=`.
#[derive(serde::Deserialize)]
pub struct LeavesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// The registry's leaves from a position on: a wallet rebuilds the tree and its own path
/// from them, so no node learns which leaf is the household's.
async fn get_registry_leaves(q: LeavesQuery, core: Arc<NodeCore>) -> ApiResult {
    answer((|| {
        registry_params(&core)?;
        let limit = q
            .limit
            .unwrap_or(MAX_REGISTRY_LEAVES)
            .min(MAX_REGISTRY_LEAVES);
        let view = core.store.snapshot();
        let rec = registry::record(&view).map_err(ApiError::internal)?;
        let leaves = registry::leaves(&view, q.from, limit).map_err(ApiError::internal)?;
        ok(&RegistryLeaves {
            size: rec.size,
            root: registry::root(&view).map_err(ApiError::internal)?,
            from: q.from,
            leaves: leaves.into_iter().map(|(_, l)| l).collect(),
        })
        .map_err(|_| ApiError::internal("encoding"))
    })())
}

async fn get_status(core: Arc<NodeCore>) -> ApiResult {
    let tip = core.tip();
    let synced_to = core.synced_to.load(Ordering::Relaxed);
    let g = core.genesis;
    ok(&StatusView {
        chain_id: g.chain_id.clone(),
        max_tx_lifetime_secs: g.max_tx_lifetime_secs,
        moniker: core.moniker.clone(),
        height: tip.height,
        last_block_hash: tip.last_block_hash,
        last_block_time: tip.last_time,
        genesis_time: g.genesis_time,
        period_secs: g.period_secs,
        gate_delay_secs: g.gate_delay_secs,
        state_root: (tip.height > 0).then_some(tip.state_root),
        validators: g.validators.clone(),
        peers: core.peers.clone(),
        sync: SyncView {
            catching_up: synced_to > 0 && synced_to == tip.height,
            last_synced_height: synced_to,
        },
        mempool: core.mempool_len() as u64,
        accepting: core.accepting.load(Ordering::Relaxed),
        db_bytes: core.store.disk_size(),
    })
}

fn sse_commits(
    core: Arc<NodeCore>,
    subscribers: &Arc<tokio::sync::Semaphore>,
) -> warp::reply::Response {
    // The permit lives as long as the stream: a client that goes frees its place.
    let Ok(permit) = Arc::clone(subscribers).try_acquire_owned() else {
        core.metrics.api_subscribers_refused.inc();
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            "the event stream has as many clients as it serves; read blocks by height",
        )
        .into_response();
    };
    let rx = core.subscribe();
    let closing = core.closing.subscribe();
    let state = (rx, closing, permit);
    let stream = futures::stream::unfold(state, |(mut rx, mut closing, permit)| async move {
        loop {
            if *closing.borrow() {
                return None;
            }
            let next = tokio::select! {
                r = rx.recv() => r,
                // The node is shutting down: end the stream so the server can stop.
                _ = closing.changed() => return None,
            };
            match next {
                Ok(ev) => {
                    let event = warp::sse::Event::default()
                        .event("commit")
                        .id(ev.height.to_string())
                        .json_data(&*ev);
                    return Some((event, (rx, closing, permit)));
                }
                // A slow subscriber skips what it missed; it can read blocks by height.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response()
}
