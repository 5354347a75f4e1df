//! End-to-end proving figures for docs/benchmarks.md, including peak memory when run under
//! `/usr/bin/time -v`:
//!
//! `cargo build --release -p veilwatt-prover --example prove_order &&
//!  /usr/bin/time -v target/release/examples/prove_order 20`
//!
//! Loads the cached development keys (generating them on first use), proves N orders and
//! prints min / median / max proving time.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::time::Instant;
use veilwatt_circuits::{
    eddsa::SecretKey,
    order::Side,
    statement::{profile_digest, PeriodStatement},
};
use veilwatt_prover::{OrderRequest, Prover};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let t = Instant::now();
    let keys = veilwatt_params::dev::keys()?;
    let prover = Prover::new(keys.pk.clone(), keys.vk_id)?;
    println!("keys loaded in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut times = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let sk = SecretKey::from_bytes([i as u8; 32]);
        let readings: Vec<(u32, u32)> = (0..15).map(|k| (10 + k, 200 + k)).collect();
        let (import_wh, export_wh) = readings.iter().fold((0, 0), |(a, b), r| (a + r.0, b + r.1));
        let st = PeriodStatement {
            meter: sk.public_key(),
            period: i as u64,
            import_wh,
            export_wh,
            profile_digest: profile_digest(&readings),
        }
        .sign(&sk);
        let order = OrderRequest {
            side: Side::Sell,
            quantity_wh: export_wh - import_wh,
        };
        let t = Instant::now();
        prover.prove(&st, &order, &mut rng)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "prove (incl. native check and self-verification), {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}
