//! Headless Chromium (Debian's `chromium`, installed by `scripts/test` and `.ci/run`) driven
//! over the DevTools protocol, for the page tests (web.rs, household_page.rs), and helpers to
//! read a dumped DOM and a screenshot.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

/// The longest a page is waited for.
const WAIT: Duration = Duration::from_secs(60);

/// Headless Chromium driven over the DevTools protocol (one page), so the test can wait for
/// the page's scripts (fetches, the event stream) in real time, read its DOM and take
/// screenshots at any size.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn open(url: &str) -> Self {
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits (real time, at most `T`) until `expression` is true in the page.
    pub fn wait_for(&mut self, expression: &str) {
        let t0 = std::time::Instant::now();
        while self.eval(expression) != json!(true) {
            assert!(t0.elapsed() < WAIT, "the page never satisfied {expression}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's DOM as HTML.
    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A PNG screenshot of the whole page laid out `width` CSS pixels wide (a phone or a
    /// desktop window), and the page's own width there (wider than `width`: it overflows).
    pub fn screenshot(&mut self, width: u32, mobile: bool) -> (Vec<u8>, u64) {
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
pub fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page"));
    let start = at + dom[at..].find('>').expect("tag ends") + 1;
    let end = start + dom[start..].find('<').expect("text ends");
    dom[start..end].to_owned()
}

/// The value of attribute `attr` of the element with `id`.
pub fn attr_of(dom: &str, id: &str, attr: &str) -> String {
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
pub fn thousandths(n: u64) -> String {
    format!("{}.{:03}", n / 1000, n % 1000)
}

/// Pixels of `hex` colour (within a small tolerance) in a PNG, and the PNG's width.
pub fn pixels_of(png_bytes: &[u8], hex: &str) -> (usize, u32) {
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
