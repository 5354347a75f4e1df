//! The household tools end to end, through real processes over HTTP: `veilwatt-meter simulate`
//! writes meter keys and signed statements, `veilwatt-prover init/import/auto` creates
//! encrypted wallets, imports, proves and submits, `veilwatt-node registrar` enrols the meters
//! and credits deposits, a `veilwatt-node run` validator clears the periods, and every
//! household's `statement` must agree with the ledger's trades to the milli.
//!
//! The offline refusals (bad statements and interval data, wrong passphrase, other keys) are
//! tested in `prover/tests/it/cli.rs`.
//!
//! The prover and meter binaries belong to the prover crate; `cargo test --release --workspace`
//! builds them next to this crate's binary (because `prover/tests/it/cli.rs` runs them).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::tools::*;
use common::*;
use serde_json::Value;

/// A validator embedded in this process, with the files the command-line tools need: the
/// genesis, the registrar's key file and a passphrase file for the households' wallets.
struct Embedded {
    dir: tempfile::TempDir,
    node: veilwatt_node::run::RunningNode,
    url: String,
    api: Api,
    genesis: PathBuf,
    registrar_key: PathBuf,
    pass: PathBuf,
}

impl Embedded {
    async fn start(g: &veilwatt_verifier::types::Genesis) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = make_home(&dir.path().join("node"), g, |_| {});
        let node = veilwatt_node::run::start(&veilwatt_node::config::Home::load(&home).unwrap())
            .await
            .unwrap();
        let url = format!("http://{}", node.api_addr);
        let ToolFiles {
            genesis,
            registrar_key,
            pass,
        } = ToolFiles::write(dir.path(), g);
        Self {
            api: Api::new(url.clone()),
            dir,
            node,
            url,
            genesis,
            registrar_key,
            pass,
        }
    }

    /// `veilwatt-node registrar ... --wait ARGS` against this validator.
    fn registrar(&self, args: &[&str]) -> Output {
        let common = [
            "registrar",
            "--key",
            s(&self.registrar_key),
            "--node",
            &self.url,
            "--wait",
        ];
        run("veilwatt-node", &[&common[..], args].concat())
    }

    /// `veilwatt-prover --json ARGS` for the household at `home`.
    fn prover(&self, home: &Path, args: &[&str]) -> Value {
        let common = [
            "--home",
            s(home),
            "--passphrase-file",
            s(&self.pass),
            "--json",
        ];
        ok_json("veilwatt-prover", &[&common[..], args].concat())
    }

    /// A household `hh{i}` with meter `i`, initialised against this validator.
    fn household(&self, i: u8) -> PathBuf {
        let h = self.dir.path().join(format!("hh{i}"));
        let meter = meter_key(i).to_hex();
        let init = [
            "init",
            "--node",
            &self.url,
            "--genesis",
            s(&self.genesis),
            "--meter",
        ];
        self.prover(&h, &[&init[..], &[meter.as_str()]].concat());
        h
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_trade_and_their_statements_match_the_ledger() {
    // The proving key must be cached before six provers start at once.
    veilwatt_params::dev::keys().unwrap();
    let g = genesis_n("households", 2, 40, 1);
    let mut net = Net::new(g.clone(), |_, _| {});
    net.start_all();
    let api = net.apis[0].clone();
    let url = api.base.clone();
    let dir = tempfile::tempdir().unwrap();
    let ToolFiles {
        genesis,
        registrar_key,
        pass,
    } = ToolFiles::write(dir.path(), &g);

    // Meters: the three periods that just ended, around midday so that PV homes sell.
    let meters = dir.path().join("meters");
    let sim = ok_json(
        "veilwatt-meter",
        &[
            "simulate",
            "--households",
            "6",
            "--periods",
            "3",
            "--seed",
            "7",
            "--start-hour",
            "11",
            "--genesis",
            s(&genesis),
            "--out",
            s(&meters),
            "--json",
        ],
    );
    let first = sim["periods"]["first"].as_u64().unwrap();
    let last = sim["periods"]["last"].as_u64().unwrap();
    assert_eq!(last, first + 2);

    // Households: wallet, enrolment, deposit, import.
    let mut homes = Vec::new();
    for i in 0..6 {
        let home = dir.path().join(format!("hh{i}"));
        let mkey = meters.join(format!("household-{i:02}/meter-key.json"));
        let common = ["--home", s(&home), "--passphrase-file", s(&pass), "--json"];
        let init = ok_json(
            "veilwatt-prover",
            &[
                &common[..],
                &[
                    "init",
                    "--node",
                    &url,
                    "--genesis",
                    s(&genesis),
                    "--meter",
                    s(&mkey),
                ],
            ]
            .concat(),
        );
        let address = init["address"].as_str().unwrap().to_owned();
        let meter = init["meter"].as_str().unwrap().to_owned();
        let reg = ["registrar", "--key", s(&registrar_key), "--node", &url];
        ok_json(
            "veilwatt-node",
            &[
                &reg[..],
                &["enroll", "--meter", &meter, "--owner", &address],
            ]
            .concat(),
        );
        let wait: &[&str] = if i == 5 { &["--wait"] } else { &[] };
        ok_json(
            "veilwatt-node",
            &[
                &reg[..],
                wait,
                &[
                    "deposit",
                    "--to",
                    &address,
                    "--amount",
                    "500",
                    "--reference",
                    &i.to_string(),
                ],
            ]
            .concat(),
        );
        // The last household's daemon imports its statements itself (below).
        if i < 5 {
            let statements = meters.join(format!("household-{i:02}/statements"));
            let imported = ok_json(
                "veilwatt-prover",
                &[&common[..], &["import", s(&statements)]].concat(),
            );
            assert_eq!(
                imported["imported"].as_array().unwrap().len(),
                3,
                "{imported}"
            );
        }
        homes.push((home, address));
    }

    // Every household's prover at once, as separate processes; the last one as a daemon that
    // watches the directory its meter writes to, stopped with SIGINT after its first round.
    let auto = |home: &Path| {
        let mut c = Command::new(sibling_bin("veilwatt-prover"));
        c.args(["--home", s(home), "--passphrase-file", s(&pass), "--json"])
            .args([
                "auto",
                "--sell-min",
                "12",
                "--buy-max",
                "26",
                "--round-wh",
                "10",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let children: Vec<_> = homes[..5]
        .iter()
        .map(|(home, _)| auto(home).spawn().unwrap())
        .collect();
    let watch = meters.join("household-05/statements");
    let mut daemon = auto(&homes[5].0)
        .args(["--daemon", "--poll-secs", "1", "--watch", s(&watch)])
        .spawn()
        .unwrap();
    let mut rounds = Vec::new();
    for c in children {
        rounds.push(c.wait_with_output().unwrap());
    }
    let first_round = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    };
    Command::new("kill")
        .args(["-INT", &daemon.id().to_string()])
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(
        status.success(),
        "the daemon did not stop cleanly: {status:?}"
    );
    let v: Value = serde_json::from_str(&first_round).unwrap();
    assert_eq!(
        v["placed"].as_array().unwrap().len() + v["skipped"].as_array().unwrap().len(),
        3,
        "the daemon's first round: {v}"
    );
    let mut placed = v["placed"].as_array().unwrap().len();
    for out in rounds {
        assert!(
            out.status.success(),
            "auto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for skip in v["skipped"].as_array().unwrap() {
            assert!(
                skip["reason"].as_str().unwrap().contains("no net surplus"),
                "unexpected skip: {skip}"
            );
        }
        placed += v["placed"].as_array().unwrap().len();
    }
    assert!(placed >= 12, "only {placed} orders placed");
    // A second round finds nothing left to do.
    let again = ok_json(
        "veilwatt-prover",
        &[
            "--home",
            s(&homes[0].0),
            "--passphrase-file",
            s(&pass),
            "--json",
            "auto",
            "--sell-min",
            "12",
            "--buy-max",
            "26",
        ],
    );
    assert!(again["placed"].as_array().unwrap().is_empty(), "{again}");

    // Let the three periods clear.
    let mut views = Vec::new();
    for p in first..=last {
        views.push(api.wait_cleared(p, Duration::from_secs(120)).await);
    }
    let trades: Vec<&Value> = views
        .iter()
        .flat_map(|v| v["trades"].as_array().unwrap())
        .collect();
    assert!(!trades.is_empty(), "nothing traded: {views:?}");
    let ledger_sum = |f: &dyn Fn(&Value) -> u64| -> u64 { trades.iter().map(|t| f(t)).sum() };
    let volume = ledger_sum(&|t| t["quantity_wh"].as_u64().unwrap());
    let grid = ledger_sum(&|t| t["grid_fee"].as_u64().unwrap());
    let market = ledger_sum(&|t| {
        t["market_fee_buyer"].as_u64().unwrap() + t["market_fee_seller"].as_u64().unwrap()
    });

    // Every household's statement against the ledger.
    let (mut sold, mut bought, mut grid_paid, mut market_paid, mut lines) = (0, 0, 0, 0, 0);
    let mut net_total: i64 = 0;
    for (home, address) in &homes {
        let st = ok_json(
            "veilwatt-prover",
            &[
                "--home",
                s(home),
                "--json",
                "statement",
                "--from",
                &first.to_string(),
                "--to",
                &last.to_string(),
            ],
        );
        assert_eq!(st["orders_not_cleared"], 0, "{st}");
        sold += st["sold_wh"].as_u64().unwrap();
        bought += st["bought_wh"].as_u64().unwrap();
        grid_paid += st["grid_fees_millis"].as_u64().unwrap();
        market_paid += st["market_fees_millis"].as_u64().unwrap();
        net_total += st["net_millis"].as_i64().unwrap();
        // Each line is a ledger trade seen from this household's side, savings by the tariffs.
        for l in st["lines"].as_array().unwrap() {
            lines += 1;
            let q = l["quantity_wh"].as_i64().unwrap();
            let net = l["net_millis"].as_i64().unwrap();
            let saving = l["saving_millis"].as_i64().unwrap();
            match l["side"].as_str().unwrap() {
                "buy" => assert_eq!(saving, q * g.price_cap as i64 + net),
                _ => assert_eq!(saving, net - q * g.price_floor as i64),
            }
        }
        // The account on the ledger moved by exactly the statement's net.
        let (_, acct) = api.get(&format!("/v1/accounts/{address}")).await;
        let held =
            acct["balance_millis"].as_i64().unwrap() + acct["escrow_millis"].as_i64().unwrap();
        assert_eq!(
            held,
            500_000 + st["net_millis"].as_i64().unwrap(),
            "{st} {acct}"
        );
        // History: every order committed and cleared.
        let h = ok_json("veilwatt-prover", &["--home", s(home), "--json", "history"]);
        for o in h.as_array().unwrap() {
            assert_eq!(o["status"], "committed", "{o}");
            assert_eq!(o["cleared"], true, "{o}");
        }
        let status = ok_json("veilwatt-prover", &["--home", s(home), "--json", "status"]);
        assert_eq!(status["meter_enrolled"], true, "{status}");
        assert_eq!(status["address"].as_str().unwrap(), address);
    }
    assert_eq!(sold, volume);
    assert_eq!(bought, volume);
    assert_eq!(lines, 2 * trades.len());
    assert_eq!(grid_paid, grid);
    assert_eq!(market_paid, market);
    // Money only leaves the community as fees.
    assert_eq!(-net_total, (grid + market) as i64);
}

/// Shielded money from the command line: `deposit-tag`, the registrar's `mint`, `balance`,
/// `transfer` between two households and `withdraw` to a bank and to the wallet balance, each
/// spend proved by `veilwatt-prover` and committed by a real validator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_hold_pay_and_withdraw_shielded_money_from_the_command_line() {
    use veilwatt_params::{dev, MarketCircuit};
    use veilwatt_verifier::types::TxId;
    // Cached before the provers start.
    dev::keys_of(MarketCircuit::JoinSplit).unwrap();
    let g = with_pool(genesis("households-shielded", 60, 30), 32, 10);
    let site = Embedded::start(&g).await;
    let (api, pass) = (&site.api, &site.pass);
    let homes: Vec<PathBuf> = (1..=2u8).map(|i| site.household(i)).collect();
    let prover = |h: &Path, args: &[&str]| site.prover(h, args);
    let shielded = |h: &Path| prover(h, &["balance"])["shielded_millis"].as_u64().unwrap();
    let committed = |v: &Value| TxId::from_hex(v["id"].as_str().unwrap()).unwrap();

    // The registrar mints 50 for alice's one-time tag.
    let tag = prover(&homes[0], &["deposit-tag"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tag.starts_with("vwpay1"), "{tag}");
    let minted = site.registrar(&["mint", "--to", &tag, "--amount", "50", "--reference", "1"]);
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    assert_eq!(shielded(&homes[0]), 50_000);

    // Alice pays bob 20 (fee 10 millis).
    let bob_tag = prover(&homes[1], &["deposit-tag"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = prover(&homes[0], &["transfer", "--to", &bob_tag, "--amount", "20"]);
    api.wait_committed(&committed(&t), Duration::from_secs(60))
        .await;
    assert_eq!(shielded(&homes[1]), 20_000);
    assert_eq!(shielded(&homes[0]), 50_000 - 20_000 - 10);

    // Alice moves 5 to her wallet balance, bob withdraws 19.99 to the bank.
    let w = prover(&homes[0], &["withdraw", "--amount", "5", "--to-wallet"]);
    api.wait_committed(&committed(&w), Duration::from_secs(60))
        .await;
    let b = prover(&homes[0], &["balance"]);
    assert_eq!(b["shielded_millis"], 50_000 - 20_000 - 10 - 5_010);
    assert_eq!(b["wallet_millis"], 5_000);
    let status = prover(&homes[0], &["status"]);
    assert_eq!(
        status["shielded"]["balance_millis"],
        50_000 - 20_000 - 10 - 5_010,
        "{status}"
    );
    assert_eq!(status["balance_millis"], 5_000);
    let w = prover(
        &homes[1],
        &["withdraw", "--amount", "19.99", "--reference", "77"],
    );
    api.wait_committed(&committed(&w), Duration::from_secs(60))
        .await;
    assert_eq!(shielded(&homes[1]), 0);

    // Refused before proving: more than the notes hold, and an address that is not one.
    let common = ["--home", s(&homes[1]), "--passphrase-file", s(pass)];
    let out = run(
        "veilwatt-prover",
        &[&common[..], &["transfer", "--to", &tag, "--amount", "1"]].concat(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        "veilwatt-prover",
        &[
            &common[..],
            &["transfer", "--to", "vwpay1abc", "--amount", "1"],
        ]
        .concat(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("payment address"));
    site.node.shutdown().await;
}

/// The registry of unlinkable orders from the command line: `veilwatt-prover enrolment` prints
/// the meter key and the household's key commitment, the registrar's `enroll-household` and
/// `revoke` change the registry of a real validator, and the API's public leaves rebuild the
/// tree whose root the ledger records (so a household finds its path without naming its leaf).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_enrol_in_the_meter_registry_and_the_registrar_revokes() {
    use veilwatt_circuits::registry::{self as reg, MemoryRegistry};
    use veilwatt_verifier::types::FieldBytes;
    let g = with_registry(with_pool(genesis("households-registry", 60, 30), 32, 10), 8);
    let site = Embedded::start(&g).await;
    let api = &site.api;
    let registrar_cmd = |args: &[&str]| site.registrar(args);

    let (s0, empty) = api.get("/v1/registry").await;
    assert_eq!(s0, 200);
    assert_eq!(empty["size"], 0);
    assert_eq!(
        empty["root"],
        serde_json::json!(FieldBytes::from_field(reg::empty_root()))
    );

    let mut enrolled = Vec::new();
    for i in 1..=3u8 {
        let h = site.household(i);
        let meter_hex = meter_key(i).to_hex();
        let e = site.prover(&h, &["enrolment"]);
        assert_eq!(e["meter"], meter_hex.as_str());
        let nk_commit = e["nk_commit"].as_str().unwrap().to_owned();
        let out = registrar_cmd(&[
            "enroll-household",
            "--meter",
            &meter_hex,
            "--nk-commit",
            &nk_commit,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        enrolled.push((meter_hex, FieldBytes::from_hex(&nk_commit).unwrap()));
    }

    // The public leaves rebuild the ledger's tree; each household's leaf is where the
    // registrar's transaction put it.
    let rebuild = |leaves: &Value| {
        let mut r = MemoryRegistry::new();
        for l in leaves.as_array().unwrap() {
            let l = FieldBytes::from_hex(l.as_str().unwrap()).unwrap();
            r.enrol(l.to_field().unwrap()).unwrap_or_else(|_| {
                // A revoked position: enrolled, then zeroed.
                let p = r.enrol(ark_bn254::Fr::from(1u64)).unwrap();
                r.revoke(u64::from(p)).unwrap();
                p
            });
        }
        r
    };
    let (_, reg_now) = api.get("/v1/registry").await;
    let (_, leaves) = api.get("/v1/registry/leaves?from=0").await;
    assert_eq!(reg_now["size"], 3);
    let tree = rebuild(&leaves["leaves"]);
    let root = serde_json::json!(FieldBytes::from_field(tree.root()));
    assert_eq!(reg_now["root"], root);
    assert!(reg_now["recent_roots"].as_array().unwrap().contains(&root));
    for (p, (meter_hex, nk_commit)) in enrolled.iter().enumerate() {
        let (_, m) = api.get(&format!("/v1/meters/{meter_hex}")).await;
        assert_eq!(m["enrolment"]["position"], p, "{m}");
        assert_eq!(m["enrolment"]["revoked"], false);
        assert_eq!(m["revoked"], false);
        let pk = veilwatt_verifier::types::MeterKey::from_hex(meter_hex)
            .unwrap()
            .to_public_key()
            .unwrap();
        let leaf = reg::leaf(&pk, nk_commit.to_field().unwrap());
        assert_eq!(tree.leaf(p as u64), leaf);
    }
    let (_, page) = api.get("/v1/registry/leaves?from=1&limit=1").await;
    assert_eq!(page["leaves"].as_array().unwrap().len(), 1);

    // One live enrolment per meter: the registrar's second one is refused with the rule.
    let out = registrar_cmd(&[
        "enroll-household",
        "--meter",
        &enrolled[0].0,
        "--nk-commit",
        &enrolled[1].1.to_hex(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already enrolled"), "{err}");

    // Revoking meter 2 zeroes its leaf and leaves only the new root valid.
    let out = registrar_cmd(&["revoke", "--meter", &enrolled[1].0]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, after) = api.get("/v1/registry").await;
    let (_, leaves) = api.get("/v1/registry/leaves").await;
    let tree = rebuild(&leaves["leaves"]);
    assert_eq!(tree.leaf(1), ark_bn254::Fr::from(0u64));
    let new_root = serde_json::json!(FieldBytes::from_field(tree.root()));
    assert_eq!(after["root"], new_root);
    assert_eq!(after["recent_roots"], serde_json::json!([new_root]));
    let (_, m) = api.get(&format!("/v1/meters/{}", enrolled[1].0)).await;
    assert_eq!(m["revoked"], true);
    assert_eq!(m["enrolment"]["revoked"], true);

    site.node.shutdown().await;
}

/// Unlinkable orders from the command line, on a market with a meter registry: meters sign
/// their interval data for the market (`veilwatt-meter sign`, `veilwatt-statement/2`), the
/// registrar enrols the households (`enrolment`, `enroll-household`) and mints the buyer's
/// money into a note, `auto` proves and submits an unlinkable sell and an escrowed unlinkable
/// buy (quantities rounded to 100 Wh by default), the validator clears them, and each
/// household's wallet finds the note its order was paid into. The public record names
/// neither meter nor wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_trade_unlinkable_orders_from_the_command_line() {
    use veilwatt_params::{dev, MarketCircuit};
    use veilwatt_verifier::clearing::buy_escrow;
    // Cached before the provers start (each process loads them from the cache).
    for c in MarketCircuit::ALL {
        dev::keys_of(*c).unwrap();
    }
    // Periods of 10 s, a gate open 40 s after each: the orders of the period that just ended
    // are placed well inside it.
    let g = with_registry(
        with_pool(genesis("households-unlinkable", 10, 40), 32, 10),
        8,
    );
    let site = Embedded::start(&g).await;
    let api = &site.api;
    let dir = site.dir.path().to_owned();

    // Three households, each with its own meter key; enrolled for unlinkable orders. The
    // third bids and then cancels its order.
    let mut homes = Vec::new();
    for name in ["seller", "buyer", "canceller"] {
        let key = dir.join(format!("{name}-meter.json"));
        let out = run("veilwatt-meter", &["keygen", "--out", s(&key)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let h = dir.join(name);
        site.prover(
            &h,
            &[
                "init",
                "--node",
                &site.url,
                "--genesis",
                s(&site.genesis),
                "--meter",
                s(&key),
            ],
        );
        let e = site.prover(&h, &["enrolment"]);
        let out = site.registrar(&[
            "enroll-household",
            "--meter",
            e["meter"].as_str().unwrap(),
            "--nk-commit",
            e["nk_commit"].as_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        homes.push((h, key, e["meter"].as_str().unwrap().to_owned()));
    }
    // The buyers' money, as notes.
    for (k, reference) in [(1, "9"), (2, "10")] {
        let tag = site.prover(&homes[k].0, &["deposit-tag"])["address"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = site.registrar(&[
            "mint",
            "--to",
            &tag,
            "--amount",
            "100",
            "--reference",
            reference,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The period that just ended: interval data signed for the market, imported, traded.
    let p = (now() - g.genesis_time) / g.period_secs - 1;
    let t0 = g.genesis_time + p * g.period_secs;
    for (k, (h, key, _)) in homes.iter().enumerate() {
        let csv = dir.join(format!("readings-{k}.csv"));
        let (imp, exp) = [(100, 1_234), (1_000, 0), (700, 0)][k];
        std::fs::write(
            &csv,
            format!(
                "timestamp,import_wh,export_wh\n{t0},{imp},{exp}\n{},{imp},{exp}\n",
                t0 + 5
            ),
        )
        .unwrap();
        let out_dir = dir.join(format!("statements-{k}"));
        let signed = ok_json(
            "veilwatt-meter",
            &[
                "--json",
                "sign",
                "--key",
                s(key),
                "--input",
                s(&csv),
                "--genesis",
                s(&site.genesis),
                "--out",
                s(&out_dir),
            ],
        );
        assert_eq!(
            signed["statements"].as_array().unwrap().len(),
            1,
            "{signed}"
        );
        let file = std::fs::read_to_string(out_dir.join(format!("{p}.json"))).unwrap();
        assert!(file.contains("veilwatt-statement/2"), "{file}");
        site.prover(h, &["import", s(&out_dir)]);
    }
    let mut ids = Vec::new();
    for (h, _, _) in &homes {
        let placed = site.prover(h, &["auto", "--sell-min", "10", "--buy-max", "30"]);
        let orders = placed["placed"].as_array().unwrap();
        assert_eq!(orders.len(), 1, "{placed}");
        ids.push(
            veilwatt_verifier::types::TxId::from_hex(orders[0]["id"].as_str().unwrap()).unwrap(),
        );
    }
    for id in &ids {
        api.wait_committed(id, Duration::from_secs(60)).await;
    }
    // 2,468 - 200 Wh of surplus offered as 2,200 (rounded to 100 Wh); 2,000 + 1,400 Wh of
    // demand.
    let (_, open) = api.get(&format!("/v1/periods/{p}")).await;
    assert_eq!(open["quantity_wh"]["sell"], 2_200, "{open}");
    assert_eq!(open["quantity_wh"]["buy"], 3_400, "{open}");

    // The third household cancels its bid while the gate is open (the cancel reveals the key
    // only it kept); its escrow comes back as a note. A second cancel is refused locally.
    let cancelled = site.prover(&homes[2].0, &["cancel", "--period", &p.to_string()]);
    let cancel_id =
        veilwatt_verifier::types::TxId::from_hex(cancelled["cancel"].as_str().unwrap()).unwrap();
    api.wait_committed(&cancel_id, Duration::from_secs(60))
        .await;
    let again = run(
        "veilwatt-prover",
        &[
            "--home",
            s(&homes[2].0),
            "--passphrase-file",
            s(&site.pass),
            "cancel",
            "--period",
            &p.to_string(),
        ],
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already cancelled"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let (_, open) = api.get(&format!("/v1/periods/{p}")).await;
    assert_eq!(open["quantity_wh"]["buy"], 2_000, "{open}");

    // The gate closes, the period clears: 2,000 Wh at the uniform price 20.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let view = loop {
        let (_, v) = api.get(&format!("/v1/periods/{p}")).await;
        if v["status"] == "cleared" {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "period {p} did not clear: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(view["volume_wh"], 2_000, "{view}");
    assert_eq!(view["clearing_price"], 20, "{view}");
    for o in view["outcomes"].as_array().unwrap() {
        assert!(o["owner"].is_null(), "{o}");
    }
    let proceeds = 2_000 * 20 - 2_000; // energy less the seller's half of the market fee
    let paid = 2_000 * 20 + 2_000 * 5 + 2_000; // energy, grid fee, buyer's half of the fee
    let escrow = buy_escrow(2_000, 30, &g.fees);
    let balance = |h: &Path| {
        site.prover(h, &["balance"])["shielded_millis"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(balance(&homes[0].0), proceeds);
    assert_eq!(
        balance(&homes[1].0),
        100_000 - escrow - 10 + (escrow - paid)
    );
    assert_eq!(
        balance(&homes[2].0),
        100_000 - 10,
        "the escrow of the cancelled bid is refunded in full"
    );
    let history = site.prover(&homes[2].0, &["history"]);
    let o = &history.as_array().unwrap()[0];
    assert_eq!(
        (o["status"].as_str(), o["filled_wh"].as_u64()),
        (Some("cancelled"), Some(0)),
        "{o}"
    );
    for (h, _, _) in &homes[..2] {
        let history = site.prover(h, &["history"]);
        let o = &history.as_array().unwrap()[0];
        assert_eq!(
            (o["status"].as_str(), o["cleared"].as_bool()),
            (Some("committed"), Some(true)),
            "{o}"
        );
        assert_eq!(o["filled_wh"], 2_000, "{o}");
    }

    // The public record: no order names a household's meter or wallet (the registrar's
    // enrolment names the meter, as it must).
    let (_, blocks) = api.get("/v1/blocks?from=1&to=1000").await;
    let orders: Vec<String> = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["txs"].as_array().unwrap().iter())
        .filter(|tx| tx["body"]["kind"] == "unlinkable_order")
        .map(|tx| tx.to_string())
        .collect();
    assert_eq!(orders.len(), 3);
    for (h, _, meter) in &homes {
        let address = site.prover(h, &["address"])["address"]
            .as_str()
            .unwrap()
            .to_owned();
        for t in &orders {
            assert!(!t.contains(meter.as_str()) && !t.contains(&address), "{t}");
        }
    }
    site.node.shutdown().await;
}
