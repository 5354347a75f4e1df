//! Household-side figures of the join-split for docs/benchmarks.md, with peak memory when run
//! under `/usr/bin/time -v`. Key generation and proving run as separate processes so that the
//! proving figure is what a household device needs:
//!
//! ```text
//! cargo build --release -p veilwatt-circuits --example joinsplit_prove
//! target/release/examples/joinsplit_prove setup /tmp/joinsplit.pk
//! /usr/bin/time -v target/release/examples/joinsplit_prove prove /tmp/joinsplit.pk 10
//! ```
//!
//! The key is a throwaway one from a seeded setup (these figures do not depend on who made it).

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::{Groth16, ProvingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_snark::SNARK;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::time::Instant;
use veilwatt_circuits::{
    joinsplit::{check_relation, JoinSplitCircuit, JoinSplitWitness, Spend},
    merkle::MemoryTree,
    note::{Note, SpendingKey},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: joinsplit_prove setup FILE | prove FILE [N]";
    let (cmd, file) = match (args.get(1), args.get(2)) {
        (Some(c), Some(f)) => (c.as_str(), f),
        _ => return Err(usage.into()),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    match cmd {
        "setup" => {
            let t = Instant::now();
            let (pk, _) =
                Groth16::<Bn254>::circuit_specific_setup(JoinSplitCircuit::blank(), &mut rng)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
            pk.serialize_uncompressed(&mut out)?;
            println!("setup in {:.1} s", t.elapsed().as_secs_f64());
        }
        "prove" => {
            let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);
            let t = Instant::now();
            let bytes = std::fs::read(file)?;
            let pk = ProvingKey::<Bn254>::deserialize_with_mode(
                bytes.as_slice(),
                Compress::No,
                Validate::No,
            )?;
            drop(bytes);
            println!("key loaded in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
            let key = SpendingKey::generate(&mut rng);
            let vk = key.viewing_key();
            let mut tree = MemoryTree::new();
            let note = Note::new(10_000, vk.owner_tag(vk.diversifier(0)), &mut rng);
            for _ in 0..100 {
                tree.append(Fr::rand(&mut rng))?;
            }
            let position = tree.append(note.commitment())?;
            let spends = [
                Spend {
                    key: key.clone(),
                    diversifier: vk.diversifier(0),
                    value: note.value,
                    rho: note.rho,
                    path: tree.path(position).ok_or("no path")?,
                },
                Spend::dummy(&key, &mut rng),
            ];
            let mut times = Vec::with_capacity(n);
            for i in 0..n.max(1) {
                let outputs = [
                    Note::new(6_000, Fr::rand(&mut rng), &mut rng),
                    Note::new(4_000 - i as u64, vk.owner_tag(vk.diversifier(1)), &mut rng),
                ];
                let (_, w) = JoinSplitWitness::new(
                    tree.root(),
                    &spends,
                    &outputs,
                    0,
                    i as u64,
                    Fr::rand(&mut rng),
                );
                let t = Instant::now();
                check_relation(&w)?;
                Groth16::<Bn254>::prove(&pk, JoinSplitCircuit::new(w), &mut rng)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "prove (incl. native check), {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
                times.len(),
                times[0],
                times[times.len() / 2],
                times[times.len() - 1]
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
