//! `veilwatt-prover ui`: the household's own page (docs/spec/household.md, "Household page"),
//! served on the loopback interface only. It shows the meter's statements (the household's
//! readings, summed per period), its orders with what the ledger made of them, the trades and
//! the savings against the utility's tariffs.
//!
//! The readings never leave the machine: the page is served from this process, loads nothing
//! from anywhere else (a `Content-Security-Policy` of `'self'` forbids it), and the server asks
//! the validator only what the ledger makes public (order status, period results, the account).
//! Requests whose `Host` is not the loopback address the page is served on are refused, so a
//! web site cannot read the page through a DNS name rebound to 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;
use veilwatt_verifier::client::NodeClient;
use veilwatt_verifier::types::{MeterKey, WalletKey};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::accounting::{self, OrderFate, Statement};
use crate::household::{HomeError, Household};

/// The page (`prover/src/web/household.html`), embedded in the binary.
pub const PAGE: &str = include_str!("web/household.html");

/// What the page may load and send: only from and to this server.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Why the page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Only loopback addresses: the page shows the meter's readings.
    #[error("the household page serves on a loopback address only (127.0.0.1 or ::1), not {0}: it shows the meter's readings")]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The household directory.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// The node as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// Its API.
    pub url: String,
    /// The market's chain id (when the node answered).
    pub chain_id: Option<String>,
    /// The ledger's height (when the node answered).
    pub height: Option<u64>,
    /// Why the node could not be asked (the local figures are shown anyway).
    pub error: Option<String>,
}

/// One period statement of the household's meter.
#[derive(Clone, Debug, Serialize)]
pub struct StatementRow {
    /// Period.
    pub period: u64,
    /// Its start, Unix seconds.
    pub start: Option<u64>,
    /// Drawn from the grid, Wh.
    pub import_wh: u32,
    /// Fed into the grid, Wh.
    pub export_wh: u32,
    /// Net surplus (export - import), Wh.
    pub net_wh: i64,
    /// Whether the household placed an order for it.
    pub ordered: bool,
}

/// Everything the page shows, computed afresh on every request.
#[derive(Debug, Serialize)]
pub struct PageView {
    /// The household's wallet.
    pub address: WalletKey,
    /// Its meter.
    pub meter: MeterKey,
    /// The validator it uses.
    pub node: NodeView,
    /// Length of a period, seconds.
    pub period_secs: u64,
    /// Start of period 0, Unix seconds.
    pub genesis_time: u64,
    /// The wallet account's available balance, millis (when the node answered).
    pub balance_millis: Option<u64>,
    /// Held for open buy orders, millis.
    pub escrow_millis: Option<u64>,
    /// The meter's statements, oldest first.
    pub statements: Vec<StatementRow>,
    /// Every order and its fate, oldest first (empty when the node did not answer).
    pub orders: Vec<OrderFate>,
    /// The itemised statement of every period with an order: trades, fees, savings.
    pub summary: Option<Statement>,
}

/// Reads the household at `dir` and asks its node what the ledger made of its orders.
pub async fn view(dir: &std::path::Path) -> Result<PageView, UiError> {
    let home = Household::open(dir)?;
    let g = &home.settings.genesis;
    let address = home.wallet()?.address;
    let orders = home.orders()?;
    let statements: Vec<StatementRow> = home
        .statements()?
        .into_iter()
        .map(|(period, s)| StatementRow {
            period,
            start: g
                .period_end(period)
                .map(|e| e.saturating_sub(g.period_secs)),
            import_wh: s.statement.import_wh,
            export_wh: s.statement.export_wh,
            net_wh: i64::from(s.statement.export_wh) - i64::from(s.statement.import_wh),
            ordered: orders.contains_key(&period),
        })
        .collect();
    let client = NodeClient::new(&home.settings.node);
    let mut node = NodeView {
        url: home.settings.node.clone(),
        chain_id: None,
        height: None,
        error: None,
    };
    let (mut balance_millis, mut escrow_millis, mut fates) = (None, None, Vec::new());
    let asked = async {
        let status = client.status().await?;
        let account = client.account(&address).await?;
        let fates = accounting::fates(&home, &client).await?;
        Ok::<_, accounting::FatesError>((status, account, fates))
    };
    match asked.await {
        Ok((status, account, f)) => {
            node.chain_id = Some(status.chain_id);
            node.height = Some(status.height);
            balance_millis = Some(account.as_ref().map_or(0, |a| a.balance_millis));
            escrow_millis = Some(account.as_ref().map_or(0, |a| a.escrow_millis));
            fates = f;
        }
        Err(e) => node.error = Some(e.to_string()),
    }
    let periods = fates.iter().map(|f| f.order.period);
    let summary = periods
        .clone()
        .min()
        .zip(periods.max())
        .map(|(from, to)| accounting::statement(g, from, to, &fates));
    Ok(PageView {
        address,
        meter: home.settings.meter,
        node,
        period_secs: g.period_secs,
        genesis_time: g.genesis_time,
        balance_millis,
        escrow_millis,
        statements,
        orders: fates,
        summary,
    })
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"code": code, "message": message.into()})),
        status,
    )
    .into_response()
}

/// Binds `listen` (a loopback address; port 0 picks one), calls `ready` with the bound
/// address, and serves the page of the household at `dir` until `shutdown` resolves.
pub async fn serve(
    dir: PathBuf,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), UiError> {
    if !listen.ip().is_loopback() {
        return Err(UiError::NotLoopback(listen));
    }
    // The household must open before the page is offered.
    Household::open(&dir)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| UiError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| UiError::Bind {
        addr: listen,
        source,
    })?;
    // The names this page answers to: its own address, and localhost on its port.
    let hosts: Vec<String> = vec![
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        format!("127.0.0.1:{}", addr.port()),
        format!("[::1]:{}", addr.port()),
    ];
    let host_ok = warp::header::optional::<String>("host").and_then(move |h: Option<String>| {
        let ok = h.is_some_and(|h| hosts.iter().any(|a| a.eq_ignore_ascii_case(&h)));
        async move {
            if ok {
                Ok(())
            } else {
                Err(warp::reject::custom(ForeignHost))
            }
        }
    });
    let page = warp::path::end().and(warp::get()).map(|| {
        let r = warp::reply::html(PAGE);
        let r = warp::reply::with_header(r, "content-security-policy", CSP);
        let r = warp::reply::with_header(r, "referrer-policy", "no-referrer");
        warp::reply::with_header(r, "x-content-type-options", "nosniff").into_response()
    });
    let api = warp::path!("api" / "household")
        .and(warp::get())
        .then(move || {
            let dir = dir.clone();
            async move {
                match view(&dir).await {
                    Ok(v) => {
                        warp::reply::with_header(warp::reply::json(&v), "cache-control", "no-store")
                            .into_response()
                    }
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
                }
            }
        });
    let routes =
        host_ok
            .untuple_one()
            .and(page.or(api).unify())
            .recover(|r: warp::Rejection| async move {
                Ok::<_, std::convert::Infallible>(if r.find::<ForeignHost>().is_some() {
                    error(
                        StatusCode::FORBIDDEN,
                        "foreign_host",
                        "this page answers only to its loopback address",
                    )
                } else if r.is_not_found() {
                    error(StatusCode::NOT_FOUND, "not_found", "no such page")
                } else {
                    error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "GET only",
                    )
                })
            });
    ready(addr);
    let incoming = futures::stream::unfold(listener, |l| async move {
        Some((l.accept().await.map(|(s, _)| s), l))
    });
    warp::serve(routes)
        .serve_incoming_with_graceful_shutdown(incoming, shutdown)
        .await;
    Ok(())
}

/// A request for another host name than the page's.
#[derive(Debug)]
struct ForeignHost;

impl warp::reject::Reject for ForeignHost {}
