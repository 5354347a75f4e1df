//! The live market page (`GET /`) of a real node, rendered in headless Chromium (Debian's
//! `chromium`, installed by `scripts/test` and `.ci/run`): the figures on the page equal the
//! API's, the page follows the event stream as blocks commit, the period view lists the
//! period's trades, and screenshots at desktop and phone sizes show the day's chart.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};
use veilwatt_node::config::Home;
use veilwatt_node::run;

const T: Duration = Duration::from_secs(60);

/// Headless Chromium driven over the DevTools protocol (one page), so the test can wait for
/// the page's scripts (fetches, the event stream) in real time, read its DOM and take
/// screenshots at any size.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromium not runnable ({e}): apt-get install chromium"));
        // Chromium prints its DevTools address on stderr once it listens.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ws_url = loop {
            let line = lines
                .next()
                .expect("chromium exited before listening")
                .unwrap();
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_owned();
            }
        };
        // Keep draining stderr so chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let (ws, _) = tungstenite::connect(ws_url.as_str()).unwrap();
        let mut b = Self {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({ "url": url }));
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b
    }

    /// Sends a command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::Text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits (real time, at most `T`) until `expression` is true in the page.
    fn wait_for(&mut self, expression: &str) {
        let t0 = std::time::Instant::now();
        while self.eval(expression) != json!(true) {
            assert!(t0.elapsed() < T, "the page never satisfied {expression}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's DOM as HTML.
    fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A PNG screenshot of the whole page laid out `width` CSS pixels wide (a phone or a
    /// desktop window), and the page's own width there (wider than `width`: it overflows).
    fn screenshot(&mut self, width: u32, mobile: bool) -> (Vec<u8>, u64) {
        let metrics = |height: u64| json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
        self.call("Emulation.setDeviceMetricsOverride", metrics(800));
        let height = self
            .eval("document.documentElement.scrollHeight")
            .as_u64()
            .unwrap();
        self.call("Emulation.setDeviceMetricsOverride", metrics(height));
        let page_width = self
            .eval("document.documentElement.scrollWidth")
            .as_u64()
            .unwrap();
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        (png, page_width)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the element with `id` in a dumped DOM (`<tag id="ID" ...>TEXT<`).
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page"));
    let start = at + dom[at..].find('>').expect("tag ends") + 1;
    let end = start + dom[start..].find('<').expect("text ends");
    dom[start..end].to_owned()
}

/// The value of attribute `attr` of the element with `id`.
fn attr_of(dom: &str, id: &str, attr: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).expect("element");
    let tag_end = at + dom[at..].find('>').expect("tag ends");
    let tag = &dom[at..tag_end];
    let key = format!("{attr}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {attr}"))
        + key.len();
    let end = start + tag[start..].find('"').expect("quoted");
    tag[start..end].to_owned()
}

/// `n` thousandths with three decimals, as the page shows Wh as kWh and millis as units.
fn thousandths(n: u64) -> String {
    format!("{}.{:03}", n / 1000, n % 1000)
}

/// Pixels of `hex` colour (within a small tolerance) in a PNG, and the PNG's width.
fn pixels_of(png_bytes: &[u8], hex: &str) -> (usize, u32) {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let c: Vec<u8> = (0..3)
        .map(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap())
        .collect();
    let n = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(c[i]) <= 8))
        .count();
    (n, info.width)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_page_shows_the_apis_figures_and_follows_commits() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis("web-test", 4, 4);
    let home = make_home(dir.path(), &g, |_| {});
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let base = format!("http://{}", node.api_addr);
    let api = Api::new(base.clone());
    // One period with a trade: 1 kWh at the midpoint price 15.
    let (p, _) = one_trade(&api, &g, &key(21), &key(22)).await;
    let cleared = api.wait_cleared(p, T).await;
    // The page is served whole, with a policy that keeps the browser on this node.
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(!html.contains("src=\"http"), "no remote resources");

    // The market now, as the browser renders it, equals the API.
    let (_, status) = api.get("/v1/status").await;
    let url = format!("{base}/");
    let mut browser = tokio::task::spawn_blocking(move || {
        let mut b = Browser::open(&url);
        b.wait_for("document.getElementById('main').dataset.loaded === 'true'");
        b
    })
    .await
    .unwrap();
    let page = browser.dom();
    assert_eq!(text_of(&page, "chain"), "web-test");
    assert_eq!(
        text_of(&page, "validators"),
        status["validators"].as_array().unwrap().len().to_string()
    );
    assert_eq!(text_of(&page, "last-link"), p.to_string());
    let u = |v: &Value| v.as_u64().unwrap();
    assert_eq!(
        text_of(&page, "last-price"),
        format!("{} / kWh", u(&cleared["clearing_price"]))
    );
    assert_eq!(
        text_of(&page, "last-volume"),
        format!("{} kWh", thousandths(u(&cleared["volume_wh"])))
    );
    assert_eq!(
        text_of(&page, "last-money"),
        thousandths(u(&cleared["money_exchanged_millis"]))
    );
    assert_eq!(
        text_of(&page, "last-grid"),
        thousandths(u(&cleared["fees_millis"]["grid"]))
    );
    assert_eq!(
        text_of(&page, "last-market"),
        thousandths(u(&cleared["fees_millis"]["market"]))
    );
    assert_eq!(
        text_of(&page, "last-unmatched"),
        format!(
            "{} kWh / {} kWh",
            thousandths(u(&cleared["unmatched_wh"]["sell"])),
            thousandths(u(&cleared["unmatched_wh"]["buy"]))
        )
    );
    // The two order proofs this node verified, as its metrics say.
    assert_eq!(text_of(&page, "proofs-order"), "2");
    // The day's table has the period, with the API's figures.
    assert!(page.contains(&format!("data-period=\"{p}\"")), "{page}");

    // The page follows the event stream: once blocks commit, it shows a later height than the
    // one it loaded with, without being reloaded.
    let initial: u64 = attr_of(&page, "height", "data-initial").parse().unwrap();
    assert!(initial >= u(&status["height"]));
    let mut browser = tokio::task::spawn_blocking(move || {
        browser.wait_for(&format!(
            "Number(document.getElementById('main').dataset.commits) > 0 && \
             Number(document.getElementById('height').textContent) > {initial}"
        ));
        browser
    })
    .await
    .unwrap();
    let (_, now_status) = api.get("/v1/status").await;
    let shown: u64 = text_of(&browser.dom(), "height").parse().unwrap();
    assert!(shown > initial && shown <= u(&now_status["height"]));

    // Screenshots at desktop and phone widths show the day's chart (its volume bars; the
    // legend swatch alone is ~170 pixels).
    for (name, width, mobile, min_pixels) in
        [("desktop", 1280, false, 1_500), ("phone", 390, true, 400)]
    {
        let (png, page_width) = browser.screenshot(width, mobile);
        // Kept where VEILWATT_SCREENSHOTS points, for people to look at.
        let keep = std::env::var_os("VEILWATT_SCREENSHOTS").map(std::path::PathBuf::from);
        let out = keep.unwrap_or_else(|| dir.path().to_owned());
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("market-{name}.png")), &png).unwrap();
        assert!(
            page_width <= u64::from(width),
            "{name}: the page is {page_width} px wide on a {width} px screen"
        );
        let (n, w) = pixels_of(&png, "#1f6f43");
        assert_eq!(w, width);
        assert!(
            n >= min_pixels,
            "{name}: only {n} pixels of the volume colour"
        );
        // The price level over the bar (beyond its ~170-pixel legend swatch).
        let (n, _) = pixels_of(&png, "#9c3d00");
        assert!(n >= 250, "{name}: only {n} pixels of the price colour");
    }

    // The period view lists the period's trades.
    browser.eval(&format!("location.hash = '#/periods/{p}'"));
    let mut browser = tokio::task::spawn_blocking(move || {
        browser.wait_for("document.querySelectorAll('#trades-table tbody tr').length > 0");
        browser
    })
    .await
    .unwrap();
    let view = browser.dom();
    assert_eq!(text_of(&view, "period-h"), format!("Period {p} (cleared)"));
    let trades = cleared["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 1);
    let table = &view[view.find("id=\"trades-table\"").unwrap()..];
    assert!(
        table.contains(&format!(
            "<td>1</td><td>{}</td><td>{}</td>",
            thousandths(u(&trades[0]["quantity_wh"])),
            u(&trades[0]["price"])
        )),
        "{table}"
    );
    drop(browser);
    node.shutdown().await;
}
