//! The household's own page (`veilwatt-prover ui`), a real process against a real validator,
//! rendered in headless Chromium: six simulated households enrol, import their meters'
//! statements and trade; the page of one of them, opened before it places its orders, follows
//! its orders as blocks commit and their periods clear, and shows the figures the ledger
//! gives (balance, escrow, fills, trades) and the household tools compute (savings), at
//! desktop and phone sizes. It loads nothing from anywhere but itself, answers only to its
//! loopback address, and refuses to serve on any other interface.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::*;
use common::tools::*;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);

/// A running `veilwatt-prover ui`, stopped when dropped.
struct Page {
    child: Child,
    url: String,
}

impl Page {
    fn start(home: &Path) -> Self {
        let mut child = Command::new(sibling_bin("veilwatt-prover"))
            .args(["--home", s(home), "ui", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let at = line.find("http://").expect("the page's address");
        let url = line[at..].split_whitespace().next().unwrap().to_owned();
        Self { child, url }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn number(v: Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a figure: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_household_page_shows_its_day_and_follows_the_ledger() {
    veilwatt_params::dev::keys().unwrap();
    let g = genesis("household-page", 2, 60);
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(&dir.path().join("node"), &g, |_| {});
    let node = veilwatt_node::run::start(&veilwatt_node::config::Home::load(&home).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", node.api_addr);
    let api = Api::new(url.clone());
    let ToolFiles {
        genesis: genesis_file,
        registrar_key,
        pass,
    } = ToolFiles::write(dir.path(), &g);

    // Six households around midday, three periods each; enrolled, funded, statements in.
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
            s(&genesis_file),
            "--out",
            s(&meters),
            "--json",
        ],
    );
    let (first, last) = (
        sim["periods"]["first"].as_u64().unwrap(),
        sim["periods"]["last"].as_u64().unwrap(),
    );
    let mut homes: Vec<(PathBuf, String)> = Vec::new();
    for i in 0..6 {
        let h = dir.path().join(format!("hh{i}"));
        let common = ["--home", s(&h), "--passphrase-file", s(&pass), "--json"];
        let mkey = meters.join(format!("household-{i:02}/meter-key.json"));
        let init = ok_json(
            "veilwatt-prover",
            &[
                &common[..],
                &["init", "--node", &url, "--genesis", s(&genesis_file)],
                &["--meter", s(&mkey)],
            ]
            .concat(),
        );
        let address = init["address"].as_str().unwrap().to_owned();
        let reg = ["registrar", "--key", s(&registrar_key), "--node", &url];
        let meter = init["meter"].as_str().unwrap();
        ok_json(
            "veilwatt-node",
            &[&reg[..], &["enroll", "--meter", meter, "--owner", &address]].concat(),
        );
        ok_json(
            "veilwatt-node",
            &[
                &reg[..],
                &["--wait", "deposit", "--to", &address, "--amount", "500"],
                &["--reference", &i.to_string()],
            ]
            .concat(),
        );
        let statements = meters.join(format!("household-{i:02}/statements"));
        ok_json(
            "veilwatt-prover",
            &[&common[..], &["import", s(&statements)]].concat(),
        );
        homes.push((h, address));
    }
    // The page is for the household that draws the most from the grid: a buyer at 26 against
    // midday sellers at 12 trades.
    let net = |h: &Path| -> i64 {
        veilwatt_prover::household::Household::open(h)
            .unwrap()
            .statements()
            .unwrap()
            .values()
            .map(|s| i64::from(s.statement.export_wh) - i64::from(s.statement.import_wh))
            .sum()
    };
    let me = (0..6).min_by_key(|&i| net(&homes[i].0)).unwrap();
    assert!(net(&homes[me].0) < 0, "no household buys");
    let (my_home, my_address) = homes[me].clone();
    let auto = |h: &Path| {
        let mut c = Command::new(sibling_bin("veilwatt-prover"));
        c.args(["--home", s(h), "--passphrase-file", s(&pass), "--json"])
            .args([
                "auto",
                "--sell-min",
                "12",
                "--buy-max",
                "26",
                "--round-wh",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let placed_by = |c: &mut Command| -> Value {
        let out = c.spawn().unwrap().wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "auto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The others at once (the gates are open for 60 s).
    let others: Vec<Child> = (0..6)
        .filter(|&i| i != me)
        .map(|i| auto(&homes[i].0).spawn().unwrap())
        .collect();
    for c in others {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "auto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The page, before this household orders: its statements, no orders.
    let page = Page::start(&my_home);
    let r = reqwest::get(&page.url).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let mut b = Browser::open(&page.url);
    b.wait_for("Number(document.getElementById('main').dataset.updates) > 0");
    assert_eq!(
        b.eval("document.getElementById('n-statements').dataset.value"),
        json!("3")
    );
    assert_eq!(
        b.eval("document.getElementById('n-orders').dataset.value"),
        json!("0")
    );
    assert_eq!(
        b.eval("document.getElementById('address').textContent"),
        json!(my_address)
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#statements tbody tr[data-period]').length"),
        json!(3)
    );

    // It orders; the page follows its orders through the blocks and the clearings.
    let placed = placed_by(&mut auto(&my_home));
    let ids: Vec<String> = placed["placed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.is_empty(), "{placed}");
    b.wait_for(&format!(
        "document.querySelectorAll('#orders tbody tr[data-status=\"cleared\"]').length === {}",
        ids.len()
    ));
    for p in first..=last {
        api.wait_cleared(p, T).await;
    }
    // Let one more refresh read the final figures.
    let seen = number(b.eval("document.getElementById('main').dataset.updates"));
    b.wait_for(&format!(
        "Number(document.getElementById('main').dataset.updates) > {seen}"
    ));

    // The page's figures are the ledger's.
    let (_, acct) = api.get(&format!("/v1/accounts/{my_address}")).await;
    let figure = |b: &mut Browser, id: &str| {
        number(b.eval(&format!("document.getElementById('{id}').dataset.value")))
    };
    assert_eq!(
        figure(&mut b, "balance"),
        acct["balance_millis"].as_i64().unwrap()
    );
    assert_eq!(
        figure(&mut b, "escrow"),
        acct["escrow_millis"].as_i64().unwrap()
    );
    let mut trades = 0;
    for id in &ids {
        let (_, tx) = api.get(&format!("/v1/tx/{id}")).await;
        assert_eq!(tx["status"], "committed", "{tx}");
        let order_period = placed["placed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id.as_str())
            .unwrap()["period"]
            .as_u64()
            .unwrap();
        let (_, view) = api.get(&format!("/v1/periods/{order_period}")).await;
        let outcome = view["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id.as_str())
            .unwrap()
            .clone();
        let filled = b.eval(&format!(
            "document.querySelector('#orders tr[data-id=\"{id}\"] td[data-value]').dataset.value"
        ));
        assert_eq!(number(filled), outcome["filled_wh"].as_i64().unwrap());
        trades += view["trades"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["buy"] == id.as_str() || t["sell"] == id.as_str())
            .count();
    }
    assert!(trades > 0, "the household did not trade");
    assert_eq!(figure(&mut b, "n-trades"), trades as i64);
    let height = figure(&mut b, "height");
    let (_, status) = api.get("/v1/status").await;
    assert!(height > 0 && height <= status["height"].as_i64().unwrap());
    // Savings: what the household tools compute from the same ledger figures.
    let statement = ok_json(
        "veilwatt-prover",
        &[
            "--home",
            s(&my_home),
            "--json",
            "statement",
            "--from",
            &first.to_string(),
            "--to",
            &last.to_string(),
        ],
    );
    assert_eq!(
        figure(&mut b, "saving"),
        statement["saving_millis"].as_i64().unwrap()
    );
    assert!(figure(&mut b, "saving") > 0, "{statement}");
    assert_eq!(
        figure(&mut b, "bought"),
        statement["bought_wh"].as_i64().unwrap()
    );
    // Everything the page fetched came from the page's own server.
    let fetched = b.eval("performance.getEntriesByType('resource').map((e) => e.name)");
    let origin = page.url.trim_end_matches('/');
    for u in fetched.as_array().unwrap() {
        assert!(
            u.as_str().unwrap().starts_with(origin),
            "the page fetched {u}"
        );
    }

    // The chart has a bar pair per statement, the drawn energy of this buyer among them.
    assert_eq!(
        b.eval("document.querySelectorAll('#chart rect').length"),
        json!(6)
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#chart rect')].some((r) => r.getAttribute('fill') === '#9c3d00' && Number(r.getAttribute('height')) > 1)"),
        json!(true)
    );
    // Desktop and phone: the day's chart is drawn, and nothing overflows the screen (the
    // tables scroll inside their own regions).
    for (width, mobile) in [(1280, false), (390, true)] {
        let (png, page_width) = b.screenshot(width, mobile);
        std::fs::write(dir.path().join(format!("household-{width}.png")), &png).unwrap();
        assert_eq!(
            page_width,
            u64::from(width),
            "the page overflows at {width}px"
        );
        let (chart_pixels, png_width) = pixels_of(&png, "#9c3d00");
        assert_eq!(png_width, width);
        assert!(chart_pixels > 50, "no chart at {width}px");
    }
    if let Some(out) = std::env::var_os("VEILWATT_SCREENSHOTS") {
        for width in [1280, 390] {
            let name = format!("household-{width}.png");
            std::fs::copy(dir.path().join(&name), Path::new(&out).join(&name)).unwrap();
        }
    }
    drop(b);

    // Only its loopback name: a page reached under another host name is refused.
    let foreign = reqwest::Client::new()
        .get(format!("{}api/household", page.url))
        .header("host", "veilwatt.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    drop(page);
    // Only on loopback.
    let out = run(
        "veilwatt-prover",
        &["--home", s(&my_home), "ui", "--listen", "0.0.0.0:0"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    node.shutdown().await;
}
