//! `veilwatt-meter`: what a smart meter does for Veilwatt, for development and for meters
//! without native support: generate a meter key, simulate a community's meters, and sign
//! period statements from real interval data (CSV or Green Button XML).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_prover::household::write_atomic;
use veilwatt_prover::interval::{self, Interval};
use veilwatt_prover::simulate::{community, simulate_hour, Site, Weather};
use veilwatt_prover::statement_file::StatementFile;
use veilwatt_verifier::types::{Genesis, MeterKey};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "veilwatt-meter",
    version,
    about = "Meter keys and signed period statements"
)]
struct Cli {
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a meter key pair (EdDSA-Poseidon on Baby Jubjub).
    Keygen {
        /// Where to write the key file (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of a meter key file.
    Show {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Simulate a community's meters and write their signed statements.
    ///
    /// Writes DIR/household-NN/{meter-key.json,statements/P.json} and DIR/community.json.
    Simulate {
        /// Households.
        #[arg(long, default_value_t = 16)]
        households: usize,
        /// Periods (each a simulated hour).
        #[arg(long, default_value_t = 6)]
        periods: u64,
        /// Seed: same seed, same meters and readings.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// First period number [default: with --genesis, the periods that ended last; else 0].
        #[arg(long)]
        first_period: Option<u64>,
        /// The market's genesis, to number the periods that just ended (and, on a market of
        /// unlinkable orders, to sign the statements for it alone).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Solar hour of the first period.
        #[arg(long, default_value_t = 9.0)]
        start_hour: f64,
        /// Latitude, degrees north.
        #[arg(long, default_value_t = 47.1)]
        latitude: f64,
        /// Day of the year.
        #[arg(long, default_value_t = 172)]
        day_of_year: u32,
    },
    /// Sign period statements from interval data (CSV `timestamp,import_wh,export_wh` or Green
    /// Button ESPI XML); writes OUT/P.json per whole period.
    Sign {
        /// The meter's key file.
        #[arg(long)]
        key: PathBuf,
        /// The interval data.
        #[arg(long)]
        input: PathBuf,
        /// The market's genesis (period length and numbering; on a market of unlinkable
        /// orders the statements are signed for it alone: `veilwatt-statement/2`).
        #[arg(long)]
        genesis: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Input format [default: from the file name, .xml = espi, else csv].
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Interval length, seconds (CSV; default: the distance of the first two rows).
        #[arg(long)]
        interval_secs: Option<u64>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Espi,
}

/// The key file format tag.
const KEY_FORMAT: &str = "veilwatt-meter-key/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    public_key: MeterKey,
    secret: String,
}

fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn key_file(sk: &SecretKey) -> KeyFile {
    KeyFile {
        format: KEY_FORMAT.into(),
        public_key: MeterKey::from_public_key(&sk.public_key()),
        secret: hex::encode(sk.to_bytes()),
    }
}

fn load_key(path: &Path) -> Result<SecretKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let f: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a meter key file", path.display()))?;
    if f.format != KEY_FORMAT {
        bail!("{}: unknown key format {:?}", path.display(), f.format);
    }
    let bytes = Zeroizing::new(hex::decode(&f.secret).context("secret is not hex")?);
    let secret: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("{}: the secret must be 32 bytes", path.display()))?;
    let sk = SecretKey::from_bytes(secret);
    if MeterKey::from_public_key(&sk.public_key()) != f.public_key {
        bail!(
            "{}: the public key does not belong to the secret",
            path.display()
        );
    }
    Ok(sk)
}

fn load_genesis(path: &Path) -> Result<Genesis> {
    Ok(Genesis::read(path)?)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn print(json: bool, v: &serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{v}");
    } else {
        println!("{}", text());
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Keygen { out } => {
            let sk = SecretKey::generate(&mut OsRng);
            let f = key_file(&sk);
            write_new_secret_file(&out, serde_json::to_string_pretty(&f)?.as_bytes())?;
            let v = serde_json::json!({"public_key": f.public_key, "key_file": out});
            print(cli.json, &v, || {
                format!(
                    "meter key written to {}\npublic key: {}",
                    out.display(),
                    f.public_key
                )
            });
        }
        Cmd::Show { key } => {
            let pk = MeterKey::from_public_key(&load_key(&key)?.public_key());
            print(cli.json, &serde_json::json!({"public_key": pk}), || {
                pk.to_string()
            });
        }
        Cmd::Simulate {
            households,
            periods,
            seed,
            out,
            first_period,
            genesis,
            start_hour,
            latitude,
            day_of_year,
        } => {
            if households == 0 || periods == 0 {
                bail!("--households and --periods must be at least 1");
            }
            if !(1..=366).contains(&day_of_year) || !(-90.0..=90.0).contains(&latitude) {
                bail!("--day-of-year must be 1-366 and --latitude -90..90");
            }
            let genesis = genesis.map(|g| load_genesis(&g)).transpose()?;
            let first = match (first_period, &genesis) {
                (Some(p), _) => p,
                (None, Some(g)) => {
                    let current = now().saturating_sub(g.genesis_time) / g.period_secs;
                    current.checked_sub(periods).context(
                        "fewer periods have ended since genesis than --periods; give --first-period",
                    )?
                }
                (None, None) => 0,
            };
            // With the genesis of a market of unlinkable orders, statements signed for it.
            let market = genesis
                .as_ref()
                .and_then(|g| g.anonymous.as_ref().map(|_| g.market_id()));
            let site = Site {
                latitude_deg: latitude,
                day_of_year,
            };
            let mut homes = community(households, seed);
            let mut weather = Weather::new(seed);
            let mut meters = Vec::new();
            for h in &homes {
                let dir = out.join(format!("household-{:02}", h.index));
                std::fs::create_dir_all(dir.join("statements"))?;
                let key = dir.join("meter-key.json");
                if !key.exists() {
                    write_new_secret_file(
                        &key,
                        serde_json::to_string_pretty(&key_file(&h.meter))?.as_bytes(),
                    )?;
                }
                meters.push(serde_json::json!({
                    "household": h.index,
                    "meter": MeterKey::from_public_key(&h.meter.public_key()),
                    "pv_peak_w": h.pv_peak_w.round() as u64,
                    "battery_wh": h.battery_wh.round() as u64,
                    "dir": dir,
                }));
            }
            let bar = indicatif::ProgressBar::new(periods);
            let (mut imported, mut exported) = (0u64, 0u64);
            for k in 0..periods {
                let p = first + k;
                let readings = simulate_hour(site, &mut weather, &mut homes, start_hour + k as f64);
                for (h, r) in homes.iter().zip(&readings) {
                    let file = StatementFile::from_signed(&r.sign(&h.meter, p, market), market);
                    imported += u64::from(r.import_wh);
                    exported += u64::from(r.export_wh);
                    let path = out
                        .join(format!("household-{:02}", h.index))
                        .join("statements")
                        .join(format!("{p}.json"));
                    write_atomic(&path, file.to_json().as_bytes())?;
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            let summary = serde_json::json!({
                "households": households,
                "periods": {"first": first, "last": first + periods - 1},
                "seed": seed,
                "import_wh": imported,
                "export_wh": exported,
                "meters": meters,
            });
            write_atomic(
                &out.join("community.json"),
                serde_json::to_string_pretty(&summary)?.as_bytes(),
            )?;
            print(cli.json, &summary, || {
                format!(
                    "{households} meters, periods {first}-{}: {:.1} kWh imported, {:.1} kWh exported\nstatements in {}/household-NN/statements",
                    first + periods - 1,
                    imported as f64 / 1000.0,
                    exported as f64 / 1000.0,
                    out.display()
                )
            });
        }
        Cmd::Sign {
            key,
            input,
            genesis,
            out,
            format,
            interval_secs,
        } => {
            let sk = load_key(&key)?;
            let g = load_genesis(&genesis)?;
            // A market of unlinkable orders takes statements signed for it alone.
            let market = g.anonymous.as_ref().map(|_| g.market_id());
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let format = format.unwrap_or(
                if input
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
                {
                    Format::Espi
                } else {
                    Format::Csv
                },
            );
            let intervals: Vec<Interval> = match format {
                Format::Csv => interval::parse_csv(&bytes, interval_secs),
                Format::Espi => interval::parse_espi(&bytes),
            }
            .with_context(|| format!("{}", input.display()))?;
            let periods = interval::periods(&intervals, g.genesis_time, g.period_secs)
                .with_context(|| format!("{}", input.display()))?;
            // Everything checked; now write.
            std::fs::create_dir_all(&out)?;
            let mut written = Vec::new();
            for d in &periods {
                let file =
                    StatementFile::from_signed(&d.readings.sign(&sk, d.period, market), market);
                let path = out.join(format!("{}.json", d.period));
                write_atomic(&path, file.to_json().as_bytes())?;
                written.push(serde_json::json!({
                    "period": d.period,
                    "import_wh": d.readings.import_wh,
                    "export_wh": d.readings.export_wh,
                    "intervals": d.readings.minutes.len(),
                    "file": path,
                }));
            }
            let v = serde_json::json!({"meter": MeterKey::from_public_key(&sk.public_key()), "statements": written});
            print(cli.json, &v, || {
                let mut s = format!(
                    "{} statements signed into {}\n",
                    periods.len(),
                    out.display()
                );
                for d in &periods {
                    s.push_str(&format!(
                        "  period {:>8}  import {:>7} Wh  export {:>7} Wh  ({} intervals)\n",
                        d.period,
                        d.readings.import_wh,
                        d.readings.export_wh,
                        d.readings.minutes.len()
                    ));
                }
                s.trim_end().to_owned()
            });
        }
    }
    Ok(())
}
