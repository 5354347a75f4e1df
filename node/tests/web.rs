//! The live market page (`GET /`) of a real node, rendered in headless Chromium (Debian's
//! `chromium`, installed by `scripts/test` and `.ci/run`): the figures on the page equal the
//! API's, the page follows the event stream as blocks commit, the period view lists the
//! period's trades, and screenshots at desktop and phone sizes show the day's chart.

mod common;

use std::time::Duration;

use common::browser::*;
use common::*;
use serde_json::Value;
use veilwatt_node::config::Home;
use veilwatt_node::run;

const T: Duration = Duration::from_secs(60);

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
