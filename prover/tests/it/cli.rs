//! The household and meter CLIs as processes, offline (no validator needed): bad statements,
//! bad interval data and other-meter statements are refused with clear errors and store or sign
//! nothing; a wallet does not open with a wrong passphrase; another market's keys are refused.
//! The end-to-end run against a validator is `node/tests/it/household.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use veilwatt_verifier::types::Genesis;

fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "veilwatt-meter" => env!("CARGO_BIN_EXE_veilwatt-meter"),
        _ => env!("CARGO_BIN_EXE_veilwatt-prover"),
    })
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).output().unwrap()
}

fn ok_json(name: &str, args: &[&str]) -> Value {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails(name: &str, args: &[&str], needle: &str) {
    let out = run(name, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name} {args:?} succeeded");
    assert!(
        err.contains(needle),
        "{name} {args:?}: expected {needle:?} in the error, got: {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Hour-long periods from a whole hour, with the development keys.
fn genesis() -> Genesis {
    serde_json::from_value(serde_json::json!({
        "chain_id": "offline", "genesis_time": 1_795_500_000u64, // a whole hour
        "validators": [{"name": "v0", "key": "11".repeat(32), "power": 1}],
        "registrar": "22".repeat(32), "period_secs": 3600, "gate_delay_secs": 600,
        "mechanism": "uniform",
        "fees": {"grid_fee_per_kwh": 4, "market_fee_per_kwh": 1, "market_fee_buyer_share_bps": 5000},
        "price_floor": 8, "price_cap": 30,
        "vk_id": veilwatt_params::dev::PINNED_VK_ID,
        "insecure_dev_keys": true
    }))
    .unwrap()
}

fn write_genesis(dir: &Path, g: &Genesis) -> PathBuf {
    let p = dir.join("genesis.json");
    std::fs::write(&p, serde_json::to_vec_pretty(g).unwrap()).unwrap();
    p
}

#[test]
fn bad_statements_and_meter_data_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = genesis();
    let genesis = write_genesis(d, &g);
    let pass = d.join("passphrase");
    std::fs::write(&pass, "a household passphrase\n").unwrap();
    let key_a = d.join("a.json");
    let key_b = d.join("b.json");
    ok_json("veilwatt-meter", &["keygen", "--out", s(&key_a), "--json"]);
    ok_json("veilwatt-meter", &["keygen", "--out", s(&key_b), "--json"]);
    fails(
        "veilwatt-meter",
        &["keygen", "--out", s(&key_a)],
        "must not exist",
    );
    let home = d.join("home");
    let init = ok_json(
        "veilwatt-prover",
        &[
            "--home",
            s(&home),
            "--passphrase-file",
            s(&pass),
            "--json",
            "init",
            "--node",
            "http://127.0.0.1:9",
            "--genesis",
            s(&genesis),
            "--meter",
            s(&key_a),
        ],
    );
    assert!(init["address"].is_string());
    let stored = home.join("statements");
    let import = |path: &Path| run("veilwatt-prover", &["--home", s(&home), "import", s(path)]);

    // Interval data: two whole hours of quarter-hour readings from genesis, as CSV.
    let csv = d.join("meter.csv");
    let mut text = String::from("timestamp,import_wh,export_wh\n");
    for k in 0..8u64 {
        text.push_str(&format!(
            "{},{},{}\n",
            g.genesis_time + 900 * k,
            50 + k,
            300 * k
        ));
    }
    std::fs::write(&csv, &text).unwrap();
    let signed_a = d.join("signed-a");
    let out = ok_json(
        "veilwatt-meter",
        &[
            "sign",
            "--key",
            s(&key_a),
            "--genesis",
            s(&genesis),
            "--input",
            s(&csv),
            "--out",
            s(&signed_a),
            "--json",
        ],
    );
    assert_eq!(out["statements"].as_array().unwrap().len(), 2);
    let signed_b = d.join("signed-b");
    ok_json(
        "veilwatt-meter",
        &[
            "sign",
            "--key",
            s(&key_b),
            "--genesis",
            s(&genesis),
            "--input",
            s(&csv),
            "--out",
            s(&signed_b),
            "--json",
        ],
    );

    // Tampered: one more Wh exported than the meter signed.
    let tampered = d.join("tampered.json");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(signed_a.join("1.json")).unwrap()).unwrap();
    v["export_wh"] = (v["export_wh"].as_u64().unwrap() + 1).into();
    std::fs::write(&tampered, v.to_string()).unwrap();
    let out = import(&tampered);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature does not verify"),
        "{out:?}"
    );
    // Malformed.
    let junk = d.join("junk.json");
    std::fs::write(
        &junk,
        "{\"format\": \"veilwatt-statement/1\", \"meter\": 12",
    )
    .unwrap();
    let out = import(&junk);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a statement file"),
        "{out:?}"
    );
    // Another meter's statement.
    let out = import(&signed_b.join("0.json"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("this household's meter is"),
        "{out:?}"
    );
    // A directory with good files and one bad one: all or nothing.
    let mixed = d.join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(signed_a.join("0.json"), mixed.join("0.json")).unwrap();
    std::fs::copy(signed_a.join("1.json"), mixed.join("1.json")).unwrap();
    std::fs::copy(&tampered, mixed.join("2.json")).unwrap();
    let out = import(&mixed);
    assert!(!out.status.success());
    assert_eq!(files_in(&stored), 0, "a refused import stored something");

    // The good ones import; the same again is recognised; a conflicting one is refused.
    let ok = ok_json(
        "veilwatt-prover",
        &["--home", s(&home), "--json", "import", s(&signed_a)],
    );
    assert_eq!(ok["imported"], serde_json::json!([0, 1]));
    let again = ok_json(
        "veilwatt-prover",
        &["--home", s(&home), "--json", "import", s(&signed_a)],
    );
    assert_eq!(again["already_present"], serde_json::json!([0, 1]));
    let other_csv = d.join("other.csv");
    std::fs::write(&other_csv, text.replace(",50,0\n", ",51,0\n")).unwrap();
    let conflicting = d.join("conflicting");
    ok_json(
        "veilwatt-meter",
        &[
            "sign",
            "--key",
            s(&key_a),
            "--genesis",
            s(&genesis),
            "--input",
            s(&other_csv),
            "--out",
            s(&conflicting),
            "--json",
        ],
    );
    let out = import(&conflicting.join("0.json"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("different statement for period 0"),
        "{out:?}"
    );
    assert_eq!(files_in(&stored), 2);

    // Bad interval data: clear errors, nothing signed.
    let sign_err = |name: &str, content: &str, needle: &str| {
        let input = d.join(name);
        std::fs::write(&input, content).unwrap();
        let out_dir = d.join(format!("out-{name}"));
        fails(
            "veilwatt-meter",
            &[
                "sign",
                "--key",
                s(&key_a),
                "--genesis",
                s(&genesis),
                "--input",
                s(&input),
                "--out",
                s(&out_dir),
            ],
            needle,
        );
        assert_eq!(files_in(&out_dir), 0, "{name}: something was signed");
    };
    let t = g.genesis_time;
    let lines: Vec<&str> = text.lines().collect();
    let gap = [&lines[..4], &lines[5..]].concat().join("\n");
    sign_err("gap.csv", &gap, "gap: no readings from");
    let overlap = text.replace(&format!("{},", t + 900 * 3), &format!("{},", t + 900 * 2));
    sign_err("overlap.csv", &overlap, "overlap");
    sign_err(
        "kwh.csv",
        "timestamp,import_kwh,export_kwh\n0,1.5,0\n",
        "kWh",
    );
    sign_err("half.csv", &lines[..7].join("\n"), "incomplete");
    sign_err(
        "frac.csv",
        &text.replace(",50,0", ",50.5,0"),
        "not a whole number of Wh",
    );
    let espi = |uom: u32| {
        let mut x = String::from(
            "<feed xmlns:espi=\"http://naesb.org/espi\"><entry><content><espi:ReadingType>",
        );
        x.push_str(&format!("<espi:flowDirection>1</espi:flowDirection><espi:uom>{uom}</espi:uom></espi:ReadingType></content></entry><entry><content><espi:IntervalBlock>"));
        for k in 0..4 {
            x.push_str(&format!("<espi:IntervalReading><espi:timePeriod><espi:duration>900</espi:duration><espi:start>{}</espi:start></espi:timePeriod><espi:value>100</espi:value></espi:IntervalReading>", t + 900 * k));
        }
        x.push_str("</espi:IntervalBlock></content></entry></feed>");
        x
    };
    sign_err("power.xml", &espi(38), "W (uom 38)");
    sign_err("broken.xml", &espi(72).replace("</espi:value>", ""), "XML");
    // Green Button in Wh signs.
    std::fs::write(d.join("good.xml"), espi(72)).unwrap();
    let out = ok_json(
        "veilwatt-meter",
        &[
            "sign",
            "--key",
            s(&key_a),
            "--genesis",
            s(&genesis),
            "--input",
            s(&d.join("good.xml")),
            "--out",
            s(&d.join("out-xml")),
            "--json",
        ],
    );
    assert_eq!(out["statements"][0]["import_wh"], 400);

    // The wallet does not open with a wrong passphrase.
    let wrong = d.join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    fails(
        "veilwatt-prover",
        &[
            "--home",
            s(&home),
            "--passphrase-file",
            s(&wrong),
            "sell",
            "--period",
            "1",
            "--kwh",
            "0.5",
            "--price",
            "10",
        ],
        "wrong passphrase",
    );
    // Another market's keys are refused before proving.
    let other_keys = d.join("keys-1");
    let insecure_1 =
        veilwatt_params::dev::generate_insecure(1, veilwatt_params::MarketCircuit::Order).unwrap();
    insecure_1
        .write(
            &other_keys,
            veilwatt_params::Provenance::InsecureDev { seed: 1 },
        )
        .unwrap();
    fails(
        "veilwatt-prover",
        &[
            "--home",
            s(&home),
            "--passphrase-file",
            s(&pass),
            "--params",
            s(&other_keys),
            "sell",
            "--period",
            "1",
            "--kwh",
            "0.5",
            "--price",
            "10",
        ],
        "refusing to use it",
    );
    // Development keys on a market that does not say insecure_dev_keys: the genesis that pins
    // the default ones is refused at init, other development keys when they are given.
    let mut unmarked = g.clone();
    unmarked.insecure_dev_keys = false;
    let unmarked_dir = d.join("unmarked");
    std::fs::create_dir_all(&unmarked_dir).unwrap();
    let unmarked_genesis = write_genesis(&unmarked_dir, &unmarked);
    let init_with = |home: &Path, genesis: &Path| {
        vec![
            "--home".to_owned(),
            s(home).to_owned(),
            "--passphrase-file".to_owned(),
            s(&pass).to_owned(),
            "init".to_owned(),
            "--node".to_owned(),
            "http://127.0.0.1:9".to_owned(),
            "--genesis".to_owned(),
            s(genesis).to_owned(),
            "--meter".to_owned(),
            s(&key_b).to_owned(),
        ]
    };
    let args = init_with(&d.join("home-unmarked"), &unmarked_genesis);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails("veilwatt-prover", &args, "INSECURE development keys");
    unmarked.vk_id = veilwatt_verifier::types::Hash32(insecure_1.vk_id.0);
    let unmarked_genesis = write_genesis(&unmarked_dir, &unmarked);
    let home2 = d.join("home-other-keys");
    let args = init_with(&home2, &unmarked_genesis);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_json("veilwatt-prover", &[&["--json"][..], &args[..]].concat());
    fails(
        "veilwatt-prover",
        &[
            "--home",
            s(&home2),
            "--passphrase-file",
            s(&pass),
            "--params",
            s(&other_keys),
            "sell",
            "--period",
            "1",
            "--kwh",
            "0.5",
            "--price",
            "10",
        ],
        "INSECURE development keys",
    );
    // The wallet file holds no plain secret (its address is public).
    let w: Value =
        serde_json::from_slice(&std::fs::read(home.join("wallet.json")).unwrap()).unwrap();
    assert_eq!(w["kdf"], "argon2id");
    assert_eq!(w["cipher"], "xchacha20poly1305");
    // A second init does not overwrite the wallet.
    fails(
        "veilwatt-prover",
        &[
            "--home",
            s(&home),
            "--passphrase-file",
            s(&pass),
            "init",
            "--node",
            "http://127.0.0.1:9",
            "--genesis",
            s(&genesis),
            "--meter",
            s(&key_a),
        ],
        "already holds a wallet",
    );
}
