//! The regulator's audit against a real node: a `veilwatt-node run` validator clears a period
//! with real proofs; `veilwatt-verifier audit` on its export and on its live API passes and
//! reports exactly the node's own period figures; tampered exports fail with the right message
//! even when the tamperer re-hashes the chain and holds the validator key to re-sign it.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use veilwatt_verifier::audit::{audit, AuditError, CertError, Certificate, Export, Quiet};
use veilwatt_verifier::ledger::BlockError;
use veilwatt_verifier::types::{Genesis, Hash32, Side, TxBody};
use veilwatt_verifier::OrderVerifier;

fn bin(name: &str) -> PathBuf {
    sibling_bin(name)
}

fn run_audit(g: &Genesis, e: &Export) -> Result<veilwatt_verifier::audit::AuditReport, AuditError> {
    let keys = veilwatt_params::dev::keys().unwrap();
    let v = OrderVerifier::new(&keys.vk, keys.vk_id).unwrap();
    audit(g, e, &v.into(), None, &Quiet)
}

/// Renders the HTML report in headless Chromium (Debian's `chromium`, which `.ci/run`
/// installs): the DOM holds both charts and no script, and the screenshot shows each chart
/// colour over more pixels than its legend swatch alone (12 x 12) could cover.
fn check_html_renders(html: &std::path::Path) {
    let page = std::fs::read_to_string(html).unwrap();
    assert!(
        !page.contains("<script"),
        "the report must work without scripts"
    );
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "no remote resources"
    );
    let chromium = |args: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(args)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap_or_else(|e| panic!("chromium not runnable ({e}): apt-get install chromium"))
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in ["chart-volume", "chart-fees"] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "{id} missing from the rendered DOM"
        );
    }
    assert!(dom.contains("AUDIT PASSED"));
    let shot = html.with_extension("png");
    let out = chromium(&[
        "--window-size=1100,1500",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let count = |hex: &str| {
        let c: Vec<u8> = (0..3)
            .map(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap())
            .collect();
        buf[..info.buffer_size()]
            .chunks_exact(channels)
            .filter(|p| (0..3).all(|i| p[i].abs_diff(c[i]) <= 6))
            .count()
    };
    use veilwatt_verifier::audit_html::*;
    for (what, colour, min) in [
        ("volume bars", VOLUME_COLOUR, 2_000),
        ("price levels", PRICE_COLOUR, 800),
        ("grid-fee bars", GRID_FEE_COLOUR, 2_000),
        ("market-fee bars", MARKET_FEE_COLOUR, 300),
    ] {
        let n = count(colour);
        assert!(
            n >= min,
            "{what}: only {n} pixels of {colour} in the screenshot"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_of_a_real_ledger_passes_and_tampering_fails_precisely() {
    let g = genesis_n("audit", 2, 6, 1);
    let mut net = Net::new(g.clone(), |_, _| {});
    net.start_all();
    let api = net.apis[0].clone();
    let owners: Vec<SigningKey> = (1..=4u8).map(|i| key(100 + i)).collect();
    let mut setup = Vec::new();
    for (i, o) in owners.iter().enumerate() {
        for tx in [
            enroll(&g, i as u8 + 1, o),
            deposit(&g, o, 100_000_000, i as u64),
        ] {
            let (s, v) = api.submit(&tx).await;
            assert_eq!(s, 202, "{v}");
            setup.push(tx.id());
        }
    }
    for id in &setup {
        api.wait_committed(id, Duration::from_secs(30)).await;
    }
    // Two sellers, two buyers, proven before their period ends.
    let p = (now() - g.genesis_time) / g.period_secs + 2;
    let orders = vec![
        order(&g, &owners[0], 1, p, Side::Sell, 0, 3_000, 2_000, 10),
        order(&g, &owners[1], 2, p, Side::Sell, 500, 2_500, 1_500, 12),
        order(&g, &owners[2], 3, p, Side::Buy, 3_000, 0, 1_000, 25),
        order(&g, &owners[3], 4, p, Side::Buy, 3_000, 100, 2_500, 20),
    ];
    sleep_until_unix(g.period_end(p).unwrap()).await;
    for tx in &orders {
        let (s, v) = api.submit(tx).await;
        assert_eq!(s, 202, "{v}");
    }
    for tx in &orders {
        api.wait_committed(&tx.id(), Duration::from_secs(30)).await;
    }
    // A snapshot while the orders are open (taken read-only next to the running node).
    let snap_dir = tempfile::tempdir().unwrap();
    let snap = snap_dir.path().join("snapshot.jsonl");
    let out = Command::new(bin("veilwatt-node"))
        .args(["snapshot", "--home"])
        .arg(&net.homes[0])
        .arg("--out")
        .arg(&snap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let snap_header: Value = serde_json::from_str(
        std::fs::read_to_string(&snap)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let snap_height = snap_header["height"].as_u64().unwrap();
    let view = api.wait_cleared(p, Duration::from_secs(60)).await;
    assert!(view["volume_wh"].as_u64().unwrap() > 0, "{view}");

    // Export (read-only, next to the running node) and audit with the CLI.
    let dir = tempfile::tempdir().unwrap();
    let gfile = dir.path().join("genesis.json");
    std::fs::write(&gfile, serde_json::to_vec(&g).unwrap()).unwrap();
    let xfile = dir.path().join("export.json");
    let st = Command::new(bin("veilwatt-node"))
        .args(["export", "--home"])
        .arg(&net.homes[0])
        .arg("--out")
        .arg(&xfile)
        .status()
        .unwrap();
    assert!(st.success());
    let cli = |args: &[&str]| {
        Command::new(bin("veilwatt-verifier"))
            .arg("audit")
            .arg("--genesis")
            .arg(&gfile)
            .args(args)
            .output()
            .unwrap()
    };
    let check_figures_with = |out: &std::process::Output, proofs: u64| {
        assert!(
            out.status.success(),
            "audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let f = r["periods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["period"] == p)
            .unwrap_or_else(|| panic!("period {p} missing: {r}"))
            .clone();
        assert_eq!(f["traded_wh"], view["volume_wh"]);
        assert_eq!(f["clearing_price"], view["clearing_price"]);
        assert_eq!(f["money_millis"], view["money_exchanged_millis"]);
        assert_eq!(f["grid_fees_millis"], view["fees_millis"]["grid"]);
        assert_eq!(f["market_fees_millis"], view["fees_millis"]["market"]);
        assert_eq!(f["sell_orders"], view["orders"]["sell"]);
        assert_eq!(f["buy_orders"], view["orders"]["buy"]);
        assert_eq!(f["unmatched_sell_wh"], view["unmatched_wh"]["sell"]);
        assert_eq!(f["unmatched_buy_wh"], view["unmatched_wh"]["buy"]);
        assert_eq!(f["trades"], view["trades"].as_array().unwrap().len());
        assert_eq!(f["meters"], 4);
        assert_eq!(f["one_order_per_meter"], true);
        assert_eq!(r["proofs"], proofs);
        r
    };
    let check_figures = |out: &std::process::Output| check_figures_with(out, 4);
    let x = xfile.to_str().unwrap();
    check_figures(&cli(&["--ledger", x, "--json"]));
    // From the snapshot: the blocks after it, the open orders' proofs taken on the chain's
    // word (its certificate over the root the entries rebuild), the same figures.
    let tail = dir.path().join("tail.jsonl");
    let x_header: Value = serde_json::from_str(
        std::fs::read_to_string(&xfile)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let x_to = x_header["to"].to_string();
    let st = Command::new(bin("veilwatt-node"))
        .args([
            "export",
            "--from",
            &(snap_height + 1).to_string(),
            "--to",
            &x_to,
            "--home",
        ])
        .arg(&net.homes[0])
        .arg("--out")
        .arg(&tail)
        .status()
        .unwrap();
    assert!(st.success());
    let (snap_s, tail_s) = (snap.to_str().unwrap(), tail.to_str().unwrap());
    let r = check_figures_with(
        &cli(&["--snapshot", snap_s, "--ledger", tail_s, "--json"]),
        0,
    );
    let full: Value = serde_json::from_slice(&cli(&["--ledger", x, "--json"]).stdout).unwrap();
    assert_eq!(r["state_root"], full["state_root"], "same final state");
    // The snapshot must fit the ledger and the chain: a tail that does not start right after
    // it, an altered entry, a dropped entry, an anchor without a valid certificate.
    let out = cli(&["--snapshot", snap_s, "--ledger", x, "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("must start at {}", snap_height + 1)),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&snap).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bad_snap = dir.path().join("bad-snapshot.jsonl");
    let try_snapshot = |lines: Vec<String>, needle: &str| {
        std::fs::write(&bad_snap, lines.join("\n")).unwrap();
        let out = cli(&["--snapshot", bad_snap.to_str().unwrap(), "--ledger", tail_s]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    };
    let owned = || lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    // An account entry with one more unit of money.
    let mut altered = owned();
    let k = altered
        .iter()
        .position(|l| l.starts_with("[\"01"))
        .expect("an account entry");
    let (key, value): (String, String) = serde_json::from_str(&altered[k]).unwrap();
    let mut v = hex::decode(value).unwrap();
    v[0] = v[0].wrapping_add(1);
    altered[k] = serde_json::to_string(&(key, hex::encode(v))).unwrap();
    try_snapshot(altered, "entries give the state root");
    let mut dropped = owned();
    dropped.remove(k);
    try_snapshot(dropped, "truncated");
    let mut header: Value = serde_json::from_str(lines[0]).unwrap();
    header["anchor"]["certificate"] = Value::String("00".repeat(52));
    let mut forged = owned();
    forged[0] = header.to_string();
    try_snapshot(forged, "commit certificate invalid");
    check_figures(&cli(&[
        "--node",
        &api.base,
        "--json",
        "--from",
        &p.to_string(),
        "--to",
        &p.to_string(),
    ]));
    // The market's key from a key directory (as a regulator gets it), and a wrong one.
    for (seed, ok) in [("0", true), ("1", false)] {
        let keys = dir.path().join(format!("keys-{seed}"));
        let st = Command::new(bin("veilwatt-params"))
            .args(["dev-setup", "--seed", seed, "--out"])
            .arg(&keys)
            .output()
            .unwrap();
        assert!(st.status.success());
        let out = cli(&["--ledger", x, "--json", "--params", keys.to_str().unwrap()]);
        if ok {
            check_figures(&out);
        } else {
            assert_eq!(out.status.code(), Some(1));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("refusing to use it"), "{err}");
        }
    }
    let table = cli(&["--ledger", x]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("AUDIT PASSED"));
    // This chain runs on the development keys (insecure_dev_keys: true): the report says so
    // above everything, on stdout, stderr and the HTML page.
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(
        stdout.starts_with("!!!") && stdout.contains("INSECURE DEVELOPMENT KEYS"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&table.stderr).contains("INSECURE development keys"));
    let csv = cli(&["--ledger", x, "--csv"]);
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("period,cleared_at,"));
    let html = dir.path().join("report.html");
    let out = cli(&["--ledger", x, "--html", html.to_str().unwrap()]);
    assert!(out.status.success());
    check_html_renders(&html);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("INSECURE DEVELOPMENT KEYS"));

    // verify-proof on one order as a block returns it.
    let h = api
        .wait_committed(&orders[0].id(), Duration::from_secs(5))
        .await;
    let (_, b) = api.get(&format!("/v1/blocks/{h}")).await;
    let tx = b["txs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == orders[0].id().to_hex())
        .unwrap()
        .clone();
    let ofile = dir.path().join("order.json");
    std::fs::write(&ofile, tx.to_string()).unwrap();
    let out = Command::new(bin("veilwatt-verifier"))
        .args(["verify-proof", "--genesis"])
        .arg(&gfile)
        .arg("--order")
        .arg(&ofile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The owner re-signs its order with a larger quantity: the signature is fine, the proof
    // does not cover it.
    let mut forged = orders[0].clone();
    if let TxBody::Order { quantity_wh, .. } = &mut forged.body {
        *quantity_wh = 2_001;
    }
    let forged = veilwatt_verifier::types::Transaction::sign(
        &g.chain_id,
        forged.body,
        g.tx_expiry(now()),
        &owners[0],
    );
    std::fs::write(&ofile, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = Command::new(bin("veilwatt-verifier"))
        .args(["verify-proof", "--genesis"])
        .arg(&gfile)
        .arg("--order")
        .arg(&ofile)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("proof does not verify"),
        "{out:?}"
    );
    assert!(!out.status.success());

    // Tampering, at the library level on the real export.
    let read = |bytes: &[u8]| Export::read_from(std::io::BufReader::new(bytes));
    let bytes = std::fs::read(&xfile).unwrap();
    let export = read(&bytes).unwrap();
    assert!(run_audit(&g, &export).is_ok());
    // The format round-trips; a damaged line is named.
    let mut again = Vec::new();
    export.write_to(&mut again).unwrap();
    assert_eq!(again, bytes);
    let text = String::from_utf8(bytes.clone()).unwrap();
    let damaged = text.replacen("\"certificate\"", "\"certificat\"", 1);
    let err = read(damaged.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, AuditError::Format(m) if m.contains("line 2")),
        "{err}"
    );
    let err = read(b"{\"blocks\": []}").unwrap_err();
    assert!(matches!(err, AuditError::Format(_)), "{err}");
    let pos = export
        .blocks
        .iter()
        .position(|b| {
            b.block
                .txs
                .iter()
                .any(|t| matches!(t.body, TxBody::Order { .. }))
        })
        .unwrap();
    let height = export.blocks[pos].block.height;
    let order_idx: Vec<usize> = export.blocks[pos]
        .block
        .txs
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t.body, TxBody::Order { .. }))
        .map(|(i, _)| i)
        .collect();
    let set_quantity = |e: &mut Export, q: u32| {
        if let TxBody::Order { quantity_wh, .. } = &mut e.blocks[pos].block.txs[order_idx[0]].body {
            *quantity_wh = q;
        }
    };

    // A changed quantity: the block no longer hashes to its hash...
    let mut e = export.clone();
    set_quantity(&mut e, 2_500);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(err, AuditError::BlockHash { height: h, .. } if h == height),
        "{err}"
    );
    // ...and re-hashed and re-signed, its proof does not cover it.
    reseal(&g, &mut e, pos);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(&err, AuditError::Proof { height: h, index, quantity_wh: 2_500, .. } if *h == height && *index == order_idx[0]),
        "{err}"
    );
    assert!(err.to_string().contains("proof does not verify"), "{err}");

    // Swapped proofs between two orders.
    let mut e = export.clone();
    let proof_of = |e: &Export, i: usize| match &e.blocks[pos].block.txs[i].body {
        TxBody::Order { proof, .. } => *proof,
        _ => unreachable!(),
    };
    let (a, b) = (proof_of(&e, order_idx[0]), proof_of(&e, order_idx[1]));
    for (i, p) in [(order_idx[0], b), (order_idx[1], a)] {
        if let TxBody::Order { proof, .. } = &mut e.blocks[pos].block.txs[i].body {
            *proof = p;
        }
    }
    reseal(&g, &mut e, pos);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(err, AuditError::Proof { height: h, .. } if h == height),
        "{err}"
    );

    // A removed transaction: the replayed state differs from the block's root.
    let mut e = export.clone();
    e.blocks[pos].block.txs.remove(order_idx[0]);
    reseal(&g, &mut e, pos);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(err, AuditError::Replay { height: h, error: BlockError::StateRootMismatch { .. } } if h == height),
        "{err}"
    );

    // A wrong state root.
    let mut e = export.clone();
    let last = e.blocks.len() - 1;
    e.blocks[last].block.state_root = Hash32([7; 32]);
    reseal(&g, &mut e, last);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(
            &err,
            AuditError::Replay {
                error: BlockError::StateRootMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("state root mismatch"), "{err}");

    // A forged certificate signature, and a missing one.
    let mut e = export.clone();
    let mut cert = Certificate::decode(&hex::decode(&e.blocks[pos].certificate).unwrap()).unwrap();
    cert.signatures[0].1 .0[5] ^= 1;
    e.blocks[pos].certificate = hex::encode(cert.encode());
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(&err, AuditError::Certificate { height: h, error: CertError::BadSignature(_) } if *h == height),
        "{err}"
    );
    let mut e = export.clone();
    cert.signatures.clear();
    e.blocks[pos].certificate = hex::encode(cert.encode());
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(
            &err,
            AuditError::Certificate {
                error: CertError::NotEnoughPower { power: 0, .. },
                ..
            }
        ),
        "{err}"
    );
    // A certificate of another block.
    let mut e = export.clone();
    e.blocks[pos].certificate = e.blocks[pos + 1].certificate.clone();
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(
            &err,
            AuditError::Certificate {
                error: CertError::Height(_),
                ..
            }
        ),
        "{err}"
    );

    // Blocks out of order, and a missing block.
    let mut e = export.clone();
    e.blocks.swap(1, 2);
    let err = run_audit(&g, &e).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::OutOfOrder {
                position: 1,
                expected: 2,
                got: 3
            }
        ),
        "{err}"
    );
    let mut e = export.clone();
    e.blocks.remove(1);
    assert!(matches!(
        run_audit(&g, &e).unwrap_err(),
        AuditError::OutOfOrder { .. }
    ));

    // Another market's genesis.
    let mut other = g.clone();
    other.price_cap += 1;
    assert!(matches!(
        run_audit(&other, &export).unwrap_err(),
        AuditError::OtherGenesis(_)
    ));

    // The CLI: non-zero exit and the message.
    let mut e = export.clone();
    set_quantity(&mut e, 2_500);
    reseal(&g, &mut e, pos);
    e.write_to(std::fs::File::create(&xfile).unwrap()).unwrap();
    let out = cli(&["--ledger", x]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "AUDIT FAILED: height {height}, transaction #{}",
            order_idx[0]
        )),
        "{err}"
    );
}
