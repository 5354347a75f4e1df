//! Size of every market circuit as a ceremony sees it: constraints, nonzero coefficients of
//! A, B and C (what the initial key costs: one point multiplication each) and the time of its
//! initial key over a development phase 1.
//!
//! `cargo run --release -p veilwatt-params --example r1cs_size`

use std::time::Instant;
use veilwatt_params::{
    ceremony::{self, ptau},
    dev, MarketCircuit,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for &c in MarketCircuit::KNOWN {
        let r = c.r1cs()?;
        let nonzeros: usize = r
            .constraints
            .iter()
            .map(|[a, b, cc]| a.len() + b.len() + cc.len())
            .sum();
        let bytes = ptau::write_insecure(r.domain_power(), &dev::phase1_secrets(1))?;
        let mut p1 = ptau::Phase1File::from_bytes(bytes)?;
        let slice = p1.slice(r.domain_power())?;
        let t = Instant::now();
        ceremony::phase2::new_zkey(&r, &slice)?;
        println!(
            "{}: {} constraints, {} wires, {nonzeros} nonzeros, domain 2^{}, initial key {:.1} s",
            c.name(),
            r.constraints.len(),
            r.n_wires,
            r.domain_power(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
