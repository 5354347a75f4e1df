//! The HTTP API of a real node (Malachite, RocksDB, warp) on 127.0.0.1 with OS-chosen ports:
//! every route, every error code with its body, the SSE stream, metrics, the OpenAPI document
//! checked against the live routes (and every answer against the document and the shared API
//! types: tests/common/openapi.rs), and an order lifecycle with real proofs whose outcome is
//! compared with a replay of the committed blocks through the state machine.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use veilwatt_node::config::Home;
use veilwatt_node::run;
use veilwatt_verifier::ledger::LedgerRead;
use veilwatt_verifier::types::*;

const T: Duration = Duration::from_secs(60);

async fn start(
    dir: &std::path::Path,
    g: &Genesis,
    tweak: impl FnOnce(&mut veilwatt_node::config::NodeConfig),
) -> (run::RunningNode, Api) {
    let home = make_home(dir, g, tweak);
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let api = Api::new(format!("http://{}", node.api_addr));
    (node, api)
}

fn assert_error(r: &(u16, Value), status: u16, code: &str) {
    assert_eq!(r.0, status, "{r:?}");
    assert_eq!(r.1["code"], code, "{r:?}");
    assert!(
        r.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{r:?}"
    );
}

/// The document is strict enough for the answer checks to mean something: every object lists
/// its fields, all required; nothing is untyped; every component is used.
#[test]
fn the_openapi_document_is_strict_and_complete() {
    openapi::lint().unwrap();
}

/// The checks catch an answer that drifted: a field added, dropped or mistyped, a hex value
/// of the wrong length, a type that would lose a field.
#[test]
fn answers_that_differ_from_the_document_are_caught() {
    use veilwatt_verifier::api::{AccountView, TxStatus, TxStatusView};
    let account = serde_json::to_value(AccountView {
        address: wallet(&key(1)),
        balance_millis: 5,
        escrow_millis: 0,
        open_orders: vec![],
        meters: vec![meter_key(1)],
    })
    .unwrap();
    let schema = openapi::component("Account");
    openapi::validate(schema, &account, "account").unwrap();
    openapi::round_trips::<AccountView>(&account, "account").unwrap();
    let mut extra = account.clone();
    extra["nickname"] = "x".into();
    assert!(openapi::validate(schema, &extra, "extra").is_err());
    assert!(openapi::round_trips::<AccountView>(&extra, "extra").is_err());
    let mut missing = account.clone();
    missing.as_object_mut().unwrap().remove("escrow_millis");
    assert!(openapi::validate(schema, &missing, "missing").is_err());
    let mut mistyped = account.clone();
    mistyped["balance_millis"] = "5".into();
    assert!(openapi::validate(schema, &mistyped, "mistyped").is_err());
    let mut short = account.clone();
    short["meters"][0] = "ab".repeat(32).into();
    assert!(openapi::validate(schema, &short, "short").is_err());
    // A status of one kind with another kind's fields matches none of the variants.
    let committed = serde_json::to_value(TxStatusView {
        id: TxId([1; 32]),
        status: TxStatus::Committed {
            height: 3,
            index: 0,
        },
    })
    .unwrap();
    let tx_status = openapi::component("TxStatus");
    openapi::validate(tx_status, &committed, "committed").unwrap();
    let mut mixed = committed.clone();
    mixed["status"] = "pending".into();
    assert!(openapi::validate(tx_status, &mixed, "mixed").is_err());
    // An answer of a flattened type with a field the type drops does not round-trip.
    let mut padded = committed;
    padded["reason"] = "none".into();
    assert!(openapi::round_trips::<TxStatusView>(&padded, "padded").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis("api-test", 60, 30);
    let (node, api) = start(dir.path(), &g, |c| c.api.max_body_bytes = 4096).await;

    // Blocks are produced (empty ones too) at the configured cadence.
    api.wait_height(2, T).await;

    // POST /v1/tx: 202 and the id.
    let owner = key(1);
    let dep = deposit(&g, &owner, 5_000_000, 1);
    let r = api.submit(&dep).await;
    assert_eq!(r.0, 202, "{r:?}");
    assert_eq!(r.1["id"], dep.id().to_hex());
    // 409: the same transaction again (pending or committed).
    assert_error(&api.submit(&dep).await, 409, "duplicate");
    // 400: not JSON, and JSON that is not a transaction.
    assert_error(&api.post_raw(b"{not json".to_vec()).await, 400, "malformed");
    assert_error(
        &api.post_raw(br#"{"body":{"kind":"deposit"}}"#.to_vec())
            .await,
        400,
        "malformed",
    );
    // 413: over the body limit.
    assert_error(&api.post_raw(vec![b' '; 5000]).await, 413, "too_large");
    // 422: forged signature.
    let mut forged = deposit(&g, &owner, 1, 2);
    forged.signature.0[3] ^= 1;
    assert_error(&api.submit(&forged).await, 422, "bad_signature");
    // 422: a deposit signed by someone who is not the registrar (a rule).
    let not_registrar = Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: wallet(&owner),
            amount: 1,
            reference: 3,
        },
        g.tx_expiry(now()),
        &key(9),
    );
    assert_error(&api.submit(&not_registrar).await, 422, "rule_violation");
    // 422: withdrawing more than the balance.
    let greedy = Transaction::sign(
        &g.chain_id,
        TxBody::Withdraw {
            amount: u64::MAX / 2,
            nonce: 1,
        },
        g.tx_expiry(now()),
        &key(8),
    );
    assert_error(&api.submit(&greedy).await, 422, "rule_violation");
    // 422: a proof for another quantity (the order claims 101 Wh, the proof 100 Wh).
    let p = (now() - g.genesis_time) / g.period_secs - 1;
    let mut bad = order(&g, &owner, 1, p, Side::Sell, 10, 500, 100, 10);
    if let TxBody::Order { quantity_wh, .. } = &mut bad.body {
        *quantity_wh = 101;
    }
    let bad = Transaction::sign(&g.chain_id, bad.body, g.tx_expiry(now()), &owner);
    assert_error(&api.submit(&bad).await, 422, "invalid_proof");
    // 422: past its expiry, or valid for longer than the genesis allows; and once expired, a
    // committed transaction cannot be replayed (refused as expired, not merely a duplicate).
    let (_, status) = api.get("/v1/status").await;
    assert_eq!(status["max_tx_lifetime_secs"], g.max_tx_lifetime_secs);
    let expiring = |reference, expires_at| {
        Transaction::sign(
            &g.chain_id,
            TxBody::Deposit {
                to: wallet(&key(55)),
                amount: 1,
                reference,
            },
            expires_at,
            &registrar(),
        )
    };
    assert_error(&api.submit(&expiring(10, now() - 1)).await, 422, "expired");
    let too_far = expiring(11, now() + g.max_tx_lifetime_secs + 120);
    assert_error(&api.submit(&too_far).await, 422, "expiry_too_far");
    let short = expiring(12, now() + 5);
    assert_eq!(api.submit(&short).await.0, 202);
    api.wait_committed(&short.id(), T).await;
    while now() <= short.expires_at + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_error(&api.submit(&short).await, 422, "expired");

    // GET /v1/tx/{id}: committed with its height; 404 unknown; 400 not hex.
    let h = api.wait_committed(&dep.id(), T).await;
    let (s, v) = api.get(&format!("/v1/tx/{}", dep.id())).await;
    assert_eq!(
        (s, v["status"].as_str(), v["height"].as_u64()),
        (200, Some("committed"), Some(h))
    );
    assert_error(
        &api.get(&format!("/v1/tx/{}", "ab".repeat(32))).await,
        404,
        "not_found",
    );
    assert_error(&api.get("/v1/tx/xyz").await, 400, "malformed");

    // GET /v1/blocks/{height}: the block with its hash and certificate.
    let (s, b) = api.get(&format!("/v1/blocks/{h}")).await;
    assert_eq!(s, 200);
    assert_eq!(b["height"], h);
    assert!(b["txs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == dep.id().to_hex()));
    let block: Block = serde_json::from_value(b.clone()).unwrap();
    assert_eq!(b["hash"], block.hash().to_hex());
    assert_eq!(b["certificate"]["block_hash"], block.hash().to_hex());
    assert_eq!(b["certificate"]["signatures"].as_array().unwrap().len(), 1);
    assert_error(&api.get("/v1/blocks/999999999").await, 404, "not_found");
    // Range.
    let (s, r) = api.get("/v1/blocks?from=1&to=3").await;
    assert_eq!(s, 200);
    let heights: Vec<u64> = r["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, vec![1, 2, 3]);
    assert_error(&api.get("/v1/blocks?from=0").await, 400, "malformed");
    assert_error(&api.get("/v1/blocks?from=5&to=2").await, 400, "malformed");
    assert_error(&api.get("/v1/blocks?to=2").await, 400, "malformed");

    // GET /v1/accounts/{address}.
    let (s, a) = api.get(&format!("/v1/accounts/{}", wallet(&owner))).await;
    assert_eq!((s, a["balance_millis"].as_u64()), (200, Some(5_000_000)));
    assert_error(
        &api.get(&format!("/v1/accounts/{}", wallet(&key(77)))).await,
        404,
        "not_found",
    );
    assert_error(&api.get("/v1/accounts/nothex").await, 400, "malformed");

    // GET /v1/meters/{id}.
    let en = enroll(&g, 1, &owner);
    assert_eq!(api.submit(&en).await.0, 202);
    api.wait_committed(&en.id(), T).await;
    let (s, m) = api.get(&format!("/v1/meters/{}", meter_key(1))).await;
    assert_eq!(
        (s, &m["owner"], &m["revoked"]),
        (
            200,
            &Value::String(wallet(&owner).to_hex()),
            &Value::Bool(false)
        )
    );
    assert_error(
        &api.get(&format!("/v1/meters/{}", meter_key(2))).await,
        404,
        "not_found",
    );
    assert_error(&api.get("/v1/meters/zz").await, 400, "malformed");

    // GET /v1/periods/{p}: an open period.
    let (s, per) = api.get(&format!("/v1/periods/{}", p + 10)).await;
    assert_eq!((s, per["status"].as_str()), (200, Some("open")));
    assert_eq!(per["orders"]["sell"], 0);

    // GET /v1/status.
    let (s, st) = api.get("/v1/status").await;
    assert_eq!(s, 200);
    assert_eq!(st["chain_id"], "api-test");
    assert!(st["height"].as_u64().unwrap() >= h);
    assert_eq!(st["validators"].as_array().unwrap().len(), 1);
    assert!(st["peers"].is_array());
    assert!(st["sync"]["catching_up"].is_boolean());
    assert_eq!(st["state_root"].as_str().map(str::len), Some(64));

    // SSE: the next commit arrives as an event.
    let mut resp = api
        .http
        .get(format!("{}/v1/events", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + T;
    while !buf.contains("event:commit") && !buf.contains("event: commit") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = buf.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
    let ev: Value = serde_json::from_str(data.trim()).unwrap();
    openapi::check_commit_event(&ev);
    assert!(ev["height"].as_u64().unwrap() > h);
    assert_eq!(ev["hash"].as_str().map(str::len), Some(64));

    // /metrics: node and engine metrics.
    let text = reqwest::get(format!("{}/metrics", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("veilwatt_blocks_total"), "{text}");
    assert!(text.contains("veilwatt_tx_accepted_total"));
    assert!(text.contains("veilwatt_tx_refused_total{"));

    // Unknown route and wrong method: JSON errors.
    assert_error(&api.get("/v1/nothing").await, 404, "not_found");

    // The OpenAPI document names exactly the live routes: each documented operation answers
    // with something other than "no such route", and each answer's status is documented.
    let (s, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            documented.push(format!("{method} {path}"));
            let url = path
                .replace("{id}", &dep.id().to_hex())
                .replace("{height}", &h.to_string())
                .replace("{period}", &p.to_string())
                .replace("{address}", &wallet(&owner).to_hex())
                .replace(
                    "{key}",
                    &hex::encode(veilwatt_verifier::state::keys::account(&wallet(&owner))),
                );
            let url = url.replace("/v1/meters/{id}", &format!("/v1/meters/{}", meter_key(1)));
            let url = if path == "/v1/blocks" {
                format!("{url}?from=1&to=2")
            } else {
                url
            };
            let status = match method.as_str() {
                "get" if path == "/v1/events" => {
                    let r = api
                        .http
                        .get(format!("{}{url}", api.base))
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                }
                "get" => api.get(&url).await.0,
                "post" if path == "/v1/peer/txs" => {
                    let r = api
                        .http
                        .post(format!("{}{url}", api.base))
                        .body(vec![7u8; 100])
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                }
                "post" => api.submit(&deposit(&g, &owner, 1, 1000)).await.0,
                m => panic!("undocumented method {m}"),
            };
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{method} {path} answered {status}, which the document does not list"
            );
        }
    }
    documented.sort();
    let mut live = vec![
        "get /",
        "get /metrics",
        "get /v1/accounts/{address}",
        "get /v1/blocks",
        "get /v1/blocks/{height}",
        "get /v1/events",
        "get /v1/meters/{id}",
        "get /v1/openapi.json",
        "get /v1/periods/{period}",
        "get /v1/registry",
        "get /v1/registry/leaves",
        "get /v1/state/{key}",
        "get /v1/status",
        "get /v1/tx/{id}",
        "post /v1/tx",
        "post /v1/peer/txs",
    ];
    live.sort();
    assert_eq!(documented, live);

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mempool_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis("full-test", 60, 30);
    let (node, api) = start(dir.path(), &g, |c| c.mempool.capacity = 2).await;
    let owner = key(1);
    let futs: Vec<_> = (0..12u64)
        .map(|i| {
            let api = api.clone();
            let tx = deposit(&g, &owner, 1, 100 + i);
            async move { api.submit(&tx).await }
        })
        .collect();
    let results = futures::future::join_all(futs).await;
    let full: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert!(!full.is_empty(), "{results:?}");
    for r in full {
        assert_error(r, 429, "mempool_full");
    }
    assert!(
        results.iter().all(|r| r.0 == 202 || r.0 == 429),
        "{results:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lifecycle_with_real_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = genesis("lifecycle-test", 4, 4);
    // Only the last cleared period stays in the committed state: the next one archives it.
    g.result_retention_periods = 1;
    let (node, api) = start(dir.path(), &g, |_| {}).await;
    let seller = key(11);
    let buyer = key(12);

    // Enrol both meters, fund the buyer; orders for the current period, proven now,
    // submitted once the period has ended.
    let (p, [sell, buy]) = one_trade(&api, &g, &seller, &buyer).await;
    let (_, open) = api.get(&format!("/v1/periods/{p}")).await;
    assert_eq!(open["status"], "open");
    api.wait_committed(&sell.id(), T).await;
    api.wait_committed(&buy.id(), T).await;

    // The period clears once its gate closes.
    let cleared = api.wait_cleared(p, T).await;
    assert_eq!(cleared["volume_wh"], 1_000);
    assert_eq!(cleared["orders"]["sell"], 1);
    assert_eq!(cleared["orders"]["buy"], 1);
    assert_eq!(cleared["unmatched_wh"]["sell"], 500);
    assert_eq!(cleared["trades"].as_array().unwrap().len(), 1);
    // Uniform price: midpoint of the marginal ask (10) and bid (20).
    assert_eq!(cleared["clearing_price"], 15);

    // Balances and trades are exactly what the state machine computes from the blocks.
    let (_, st) = api.get("/v1/status").await;
    let height = st["height"].as_u64().unwrap();
    let replayed = replay(&api, &g, height).await;
    let (_, b) = api.get(&format!("/v1/blocks/{height}")).await;
    assert_eq!(replayed.root().to_hex(), b["state_root"].as_str().unwrap());
    for who in [&seller, &buyer] {
        let (_, a) = api.get(&format!("/v1/accounts/{}", wallet(who))).await;
        let acct = replayed.account(&wallet(who)).unwrap().unwrap();
        assert_eq!(a["balance_millis"].as_u64(), Some(acct.balance));
        assert_eq!(a["escrow_millis"].as_u64(), Some(acct.escrow));
    }
    let result = replayed.period_result(p).unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&result.trades).unwrap(),
        cleared["trades"]
    );
    // The seller earned 1,000 Wh x 15/kWh = 15 minor units = 15,000 millis, less its half of the
    // 2/kWh market fee (1 minor unit = 1,000 millis).
    let (_, s) = api.get(&format!("/v1/accounts/{}", wallet(&seller))).await;
    assert_eq!(s["balance_millis"], 14_000);

    // A household checks its balance and the period's result against a committed root, and
    // that a key is absent, through `GET /v1/state/{key}?proof=true`.
    use veilwatt_verifier::state::{keys, verify_proof, StateProof};
    let prove = |key: Vec<u8>| {
        let api = &api;
        async move {
            let (status, v) = api
                .get(&format!("/v1/state/{}?proof=true", hex::encode(key)))
                .await;
            assert_eq!(status, 200, "{v}");
            let proof: StateProof = serde_json::from_value(v).unwrap();
            let (_, b) = api.get(&format!("/v1/blocks/{}", proof.height)).await;
            let root = Hash32::from_hex(b["state_root"].as_str().unwrap()).unwrap();
            (root, proof)
        }
    };
    let (root, proof) = prove(keys::account(&wallet(&seller))).await;
    let value = verify_proof(&root, &proof).unwrap().expect("present");
    let acct: veilwatt_verifier::ledger::Account = decode(&value).unwrap();
    assert_eq!(acct.balance, 14_000);
    assert_eq!(
        acct,
        replayed.account(&wallet(&seller)).unwrap().unwrap(),
        "the proven account is the replayed one"
    );
    let (root, proof) = prove(keys::result(p)).await;
    let value = verify_proof(&root, &proof).unwrap().expect("present");
    let proven: veilwatt_verifier::ledger::PeriodResult = decode(&value).unwrap();
    assert_eq!(proven, result);
    // Tampering with the value breaks the proof.
    let mut forged = proof.clone();
    let mut bytes = value.clone();
    bytes[0] ^= 1;
    forged.value = Some(hex::encode(bytes));
    assert!(verify_proof(&root, &forged).is_err());
    // An absent account: a non-inclusion proof, which cannot be turned into an inclusion one.
    let (root, proof) = prove(keys::account(&wallet(&key(99)))).await;
    assert_eq!(verify_proof(&root, &proof).unwrap(), None);
    let forged = StateProof {
        value: Some(hex::encode(encode(&acct))),
        ..proof
    };
    assert!(verify_proof(&root, &forged).is_err());
    // Without a proof: the value, or 404.
    let (status, v) = api
        .get(&format!(
            "/v1/state/{}",
            hex::encode(keys::account(&wallet(&seller)))
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["value"].as_str().unwrap(), hex::encode(encode(&acct)));
    assert_error(
        &api.get(&format!(
            "/v1/state/{}",
            hex::encode(keys::account(&wallet(&key(99))))
        ))
        .await,
        404,
        "not_found",
    );
    // Bad keys.
    assert_error(&api.get("/v1/state/zz?proof=true").await, 400, "malformed");
    assert_error(&api.get("/v1/state/?proof=true").await, 404, "not_found");
    assert_error(
        &api.get(&format!("/v1/state/{}", "00".repeat(129))).await,
        400,
        "malformed",
    );
    assert_error(&api.get("/v1/state/80?proof=true").await, 400, "malformed");

    // Bounded history: once a later period clears, period p's result leaves the committed
    // state (a proven absence) for the archive, and the API still serves it unchanged.
    let q = (now() - g.genesis_time) / g.period_secs;
    let next = order(&g, &seller, 1, q, Side::Sell, 0, 700, 500, 10);
    sleep_until_unix(g.period_end(q).unwrap()).await;
    let r = api.submit(&next).await;
    assert_eq!(r.0, 202, "{r:?}");
    api.wait_committed(&next.id(), T).await;
    let t0 = std::time::Instant::now();
    while api.get(&format!("/v1/periods/{q}")).await.1["status"] != "cleared" {
        assert!(t0.elapsed() < T, "period {q} did not clear");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (root, proof) = prove(keys::result(p)).await;
    assert_eq!(verify_proof(&root, &proof).unwrap(), None, "archived");
    let (_, archived) = api.get(&format!("/v1/periods/{p}")).await;
    assert_eq!(archived, cleared, "the archive serves the same view");
    node.shutdown().await;
}
