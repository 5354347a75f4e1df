//! The audit report as one self-contained HTML page: inline CSS and inline SVG charts, no
//! script, no network (docs/spec/audit.md).

use std::fmt::Write;

use crate::audit::{AuditReport, PeriodFigures};
use crate::units::{kwh, minor_units as units};

/// Bar colour of the traded-volume chart.
pub const VOLUME_COLOUR: &str = "#2a9d8f";
/// Line colour of the price series.
pub const PRICE_COLOUR: &str = "#e76f51";
/// Grid-fee colour.
pub const GRID_FEE_COLOUR: &str = "#264653";
/// Market-fee colour.
pub const MARKET_FEE_COLOUR: &str = "#e9c46a";

fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

const W: f64 = 960.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;

/// A chart frame: axes, ticks for the left scale, period labels.
fn frame(
    svg: &mut String,
    periods: &[PeriodFigures],
    max: f64,
    label: &str,
    fmt: &dyn Fn(f64) -> String,
) {
    let plot_h = H - TOP - BOTTOM;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#444"/><line x1="{LEFT}" y1="{0}" x2="{}" y2="{0}" stroke="#444"/>"##,
        H - BOTTOM,
        W - RIGHT
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = H - BOTTOM - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{}" font-size="12" transform="rotate(-90 14 {0})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        esc(label)
    );
    let n = periods.len().max(1);
    let step = (n / 12).max(1);
    let slot = (W - LEFT - RIGHT) / n as f64;
    for (i, f) in periods.iter().enumerate().step_by(step) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            LEFT + slot * (i as f64 + 0.5),
            H - BOTTOM + 16.0,
            f.period
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">period</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 6.0
    );
}

fn price_of(f: &PeriodFigures) -> Option<f64> {
    f.clearing_price
        .or(f.price_range.map(|(a, z)| (a + z) / 2))
        .map(|p| p as f64)
}

fn volume_chart(periods: &[PeriodFigures]) -> String {
    let mut svg = format!(
        r#"<svg id="chart-volume" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="energy traded and price per period">"#
    );
    let max_v = periods
        .iter()
        .map(|f| f.traded_wh)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_p = periods.iter().filter_map(price_of).fold(1.0, f64::max);
    frame(&mut svg, periods, max_v, "traded, kWh", &|v| {
        format!("{:.2}", v / 1000.0)
    });
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - RIGHT) / periods.len().max(1) as f64;
    for (i, f) in periods.iter().enumerate() {
        let h = plot_h * f.traded_wh as f64 / max_v;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{VOLUME_COLOUR}"><title>period {}: {} kWh</title></rect>"#,
            LEFT + slot * i as f64 + slot * 0.15,
            H - BOTTOM - h,
            slot * 0.7,
            f.period,
            kwh(f.traded_wh)
        );
    }
    // Price on the right axis.
    let points: Vec<String> = periods
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            price_of(f).map(|p| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot * (i as f64 + 0.5),
                    H - BOTTOM - plot_h * p / max_p
                )
            })
        })
        .collect();
    if !points.is_empty() {
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{PRICE_COLOUR}" stroke-width="3"/>"#,
            points.join(" ")
        );
    }
    // Each period's price as a level across its bar.
    for (i, f) in periods.iter().enumerate() {
        if let Some(p) = price_of(f) {
            let y = H - BOTTOM - plot_h * p / max_p;
            let _ = write!(
                svg,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{PRICE_COLOUR}" stroke-width="4"><title>period {}: {}</title></line>"#,
                LEFT + slot * i as f64 + slot * 0.15,
                LEFT + slot * i as f64 + slot * 0.85,
                f.period,
                price_text(f)
            );
        }
    }
    for k in 0..=4 {
        let y = H - BOTTOM - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="11" fill="{PRICE_COLOUR}">{:.1}</text>"#,
            W - RIGHT + 6.0,
            y + 4.0,
            max_p * f64::from(k) / 4.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" fill="{PRICE_COLOUR}" transform="rotate(90 {0} {1})" text-anchor="middle">price per kWh</text></svg>"#,
        W - 14.0,
        TOP + plot_h / 2.0
    );
    svg
}

fn fees_chart(periods: &[PeriodFigures]) -> String {
    let mut svg = format!(
        r#"<svg id="chart-fees" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="fees per period">"#
    );
    let max = periods
        .iter()
        .map(|f| f.grid_fees_millis + f.market_fees_millis)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    frame(&mut svg, periods, max, "fees", &|v| {
        format!("{:.2}", v / 1000.0)
    });
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - RIGHT) / periods.len().max(1) as f64;
    for (i, f) in periods.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let g = plot_h * f.grid_fees_millis as f64 / max;
        let m = plot_h * f.market_fees_millis as f64 / max;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{g:.1}" fill="{GRID_FEE_COLOUR}"><title>period {}: grid {}</title></rect><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{m:.1}" fill="{MARKET_FEE_COLOUR}"><title>period {3}: market {}</title></rect>"#,
            H - BOTTOM - g,
            slot * 0.7,
            f.period,
            units(f.grid_fees_millis),
            H - BOTTOM - g - m,
            slot * 0.7,
            units(f.market_fees_millis)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn price_text(f: &PeriodFigures) -> String {
    match (f.clearing_price, f.price_range) {
        (Some(p), _) => p.to_string(),
        (None, Some((a, z))) if a == z => a.to_string(),
        (None, Some((a, z))) => format!("{a}–{z}"),
        (None, None) => "–".into(),
    }
}

fn row(out: &mut String, label: &str, f: &PeriodFigures) {
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(label),
        f.sell_orders,
        f.buy_orders,
        kwh(f.traded_wh),
        f.trades,
        price_text(f),
        units(f.money_millis),
        units(f.grid_fees_millis),
        units(f.market_fees_millis),
        kwh(f.unmatched_sell_wh),
        kwh(f.unmatched_buy_wh),
        f.meters,
        if f.one_order_per_meter { "yes" } else { "<b>NO</b>" }
    );
}

/// The report page.
pub fn render(r: &AuditReport) -> String {
    let t = &r.totals;
    let mut out = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Veilwatt audit report</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px;margin:0 0 4px}.ok{color:#1b7f3b;font-weight:bold}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:20px}table{border-collapse:collapse;font-size:13px;margin-top:12px}
td,th{border-bottom:1px solid #eee;padding:4px 8px;text-align:right}th{background:#f6f6f6}
tr.total td{font-weight:bold;border-top:2px solid #999}.insecure{background:#b00020;color:#fff;padding:12px 16px;font-size:18px;font-weight:bold;border-radius:6px}code{font-size:12px}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>"#,
    );
    if r.insecure_dev_keys {
        out.push_str(
            r#"<p class="insecure" role="alert">INSECURE DEVELOPMENT KEYS: this chain says insecure_dev_keys: true. Anyone can forge its proofs, so the verified proofs below prove nothing. A play market only.</p>"#,
        );
    }
    let _ = write!(
        out,
        r#"<h1>Veilwatt audit report</h1><p><span class="ok">AUDIT PASSED</span> — chain <code>{}</code>, genesis <code>{}</code></p>
<p>Blocks 1–{} replayed: {} transactions, {} order proofs and {} commit signatures verified; final state root <code>{}</code>.</p>"#,
        esc(&r.chain_id),
        r.genesis_hash,
        r.blocks,
        r.transactions,
        r.proofs,
        r.signatures,
        r.state_root
    );
    let _ = write!(
        out,
        r#"<div class="cards"><div class="card">energy traded<b>{} kWh</b></div><div class="card">money exchanged<b>{}</b></div><div class="card">grid fees<b>{}</b></div><div class="card">market fees<b>{}</b></div><div class="card">trades<b>{}</b></div><div class="card">meters<b>{}</b></div><div class="card">one order per meter and period<b>{}</b></div></div>"#,
        kwh(t.traded_wh),
        units(t.money_millis),
        units(t.grid_fees_millis),
        units(t.market_fees_millis),
        t.trades,
        t.meters,
        if t.one_order_per_meter { "yes" } else { "NO" }
    );
    let _ = write!(
        out,
        r#"<h2>Energy traded and price per period</h2><p class="legend"><span style="background:{VOLUME_COLOUR}"></span>traded kWh<span style="background:{PRICE_COLOUR}"></span>price per kWh (clearing price, or midpoint of the trade prices)</p>{}
<h2>Fees per period</h2><p class="legend"><span style="background:{GRID_FEE_COLOUR}"></span>grid / wheeling<span style="background:{MARKET_FEE_COLOUR}"></span>market</p>{}"#,
        volume_chart(&r.periods),
        fees_chart(&r.periods)
    );
    out.push_str("<h2>Per period</h2><table><tr><th>period</th><th>sells</th><th>buys</th><th>traded kWh</th><th>trades</th><th>price</th><th>money</th><th>grid fees</th><th>market fees</th><th>unsold kWh</th><th>unmet kWh</th><th>meters</th><th>1 order/meter</th></tr>");
    for f in &r.periods {
        row(&mut out, &f.period.to_string(), f);
    }
    out.push_str("<tr class=\"total\">");
    let mut total = String::new();
    row(&mut total, "total", t);
    out.push_str(total.trim_start_matches("<tr>"));
    out.push_str("</table><p>Money in minor currency units, prices per kWh. Unsold energy went to the utility at the feed-in tariff, unmet demand came from it at retail.</p>");
    if t.anonymous_orders > 0 {
        let _ = write!(
            out,
            "<p>{} unlinkable orders: no meter or wallet is on the ledger for them; each counts as one meter of its period (its order nullifier is unique per meter and period), so the total's meters are a lower bound.</p>",
            t.anonymous_orders
        );
    }
    if !r.open_periods.is_empty() {
        let _ = write!(
            out,
            "<p>Periods with orders not cleared yet: {:?}</p>",
            r.open_periods
        );
    }
    if let Some(sh) = &r.shielded {
        let _ = write!(
            out,
            r#"<h2>Shielded money</h2><p>{} join-split proofs verified; the pool's balance equals what was minted and paid in less what was paid out (supply invariant checked against the pool's state). Values of individual notes are hidden by design.</p><table><tr><th>minted (deposits)</th><th>paid in from wallets</th><th>paid out to wallets</th><th>withdrawn to banks</th><th>fees</th><th>held in notes</th><th>notes</th><th>spent (nullifiers)</th></tr><tr><td>{} ({} mints)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>"#,
            sh.spend_proofs,
            units(sh.minted_millis),
            sh.mints,
            units(sh.paid_in_millis),
            units(sh.to_wallets_millis),
            units(sh.withdrawn_millis),
            units(sh.fees_millis),
            units(sh.balance_millis),
            sh.notes,
            sh.nullifiers
        );
        if let Some(escrow) = sh.escrow_summary() {
            // Numbers and fixed words only: nothing to escape.
            let _ = write!(out, "<p>{escrow}</p>");
        }
    }
    out.push_str("</body></html>\n");
    out
}
