//! A meter simulator standing in for real smart meters: households with rooftop PV (or none),
//! some with batteries, and residential load, simulated minute by minute and summed into
//! meter-signed period statements. Deterministic from a seed.
//!
//! The model (floating point is fine here: this is a stand-in for physics, far from consensus;
//! what leaves it are integer Wh):
//!
//! * **Sun.** Declination `δ = 23.44° · sin(360°/365 · (284 + day))`, hour angle
//!   `ω = 15° · (solar hour − 12)`, elevation `sin α = sin φ sin δ + cos φ cos δ cos ω` for
//!   latitude `φ`. Clear-sky irradiance on the panel `1000 W/m² · (sin α)^1.15` (a crude air-mass
//!   attenuation).
//! * **Weather.** Each simulated day draws a clearness index in [0.35, 1.0]; minute by minute a
//!   bounded random walk in [0.55, 1.0] multiplies it (passing clouds).
//! * **PV.** 3-10 kWp, performance ratio 0.8: `P = kWp · 1000 W · irradiance/1000 · 0.8 · weather`.
//!   A quarter of the homes have no PV.
//! * **Load.** Standard residential shape: a base load (150-400 W), a morning peak around 07:00
//!   (600-1,200 W, 1 h wide), a smaller midday bump, an evening peak around 19:00
//!   (1,000-2,000 W, 1.5 h wide), ±20 % minute noise, and appliance events (2 kW for 3-20 minutes
//!   with 1 % chance per minute).
//! * **Battery.** A third of the PV homes: 5-10 kWh, 3 kW, starting half full; charged from
//!   surplus and discharged into deficit before the grid sees either.
//! * **Meter.** Per minute the net flow goes to the import or export register (Wh, fractions
//!   carried); a period's statement holds the two register deltas and the digest of the
//!   one-minute readings, signed with the meter's EdDSA-Poseidon key.

use ark_bn254::Fr;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::statement::{profile_digest, PeriodStatement, SignedPeriodStatement};

/// Minutes per simulated hour.
pub const MINUTES: u32 = 60;

/// Where and when the community is.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// Latitude, degrees north.
    pub latitude_deg: f64,
    /// Day of the year, 1-365.
    pub day_of_year: u32,
}

impl Default for Site {
    fn default() -> Self {
        // Central Europe at midsummer.
        Self {
            latitude_deg: 47.1,
            day_of_year: 172,
        }
    }
}

/// One simulated household.
#[derive(Clone, Debug)]
pub struct Household {
    /// Index in the community.
    pub index: usize,
    /// The meter's signing key.
    pub meter: SecretKey,
    /// Peak PV power, W (0: no PV).
    pub pv_peak_w: f64,
    /// Battery capacity, Wh (0: none).
    pub battery_wh: f64,
    battery_level_wh: f64,
    base_w: f64,
    morning_w: f64,
    evening_w: f64,
    appliance_left_min: u32,
    rng: ChaCha20Rng,
}

/// One period's readings of one household.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodReadings {
    /// Energy imported, Wh.
    pub import_wh: u32,
    /// Energy exported, Wh.
    pub export_wh: u32,
    /// One-minute `(import, export)` readings, Wh.
    pub minutes: Vec<(u32, u32)>,
}

impl PeriodReadings {
    /// The statement of `period`, unsigned.
    pub fn statement(&self, meter: &SecretKey, period: u64) -> PeriodStatement {
        PeriodStatement {
            meter: meter.public_key(),
            period,
            import_wh: self.import_wh,
            export_wh: self.export_wh,
            profile_digest: profile_digest(&self.minutes),
        }
    }

    /// The meter-signed statement for `period`: for any market (`market = None`, wallet-signed
    /// orders) or for the market with that id only (unlinkable orders).
    pub fn sign(
        &self,
        meter: &SecretKey,
        period: u64,
        market: Option<Fr>,
    ) -> SignedPeriodStatement {
        let statement = self.statement(meter, period);
        match market {
            None => statement.sign(meter),
            Some(m) => statement.sign_for_market(meter, m),
        }
    }
}

fn uniform(rng: &mut ChaCha20Rng, lo: f64, hi: f64) -> f64 {
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    lo + (hi - lo) * x
}

fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    let z = (hour - centre) / width;
    (-0.5 * z * z).exp()
}

/// Clear-sky irradiance, W/m², at `hour` (solar time) on `site`.
pub fn clear_sky_irradiance(site: Site, hour: f64) -> f64 {
    let rad = std::f64::consts::PI / 180.0;
    let decl = 23.44 * (360.0 / 365.0 * (284.0 + f64::from(site.day_of_year)) * rad).sin();
    let omega = 15.0 * (hour - 12.0);
    let (phi, d) = (site.latitude_deg * rad, decl * rad);
    let sin_alt = phi.sin() * d.sin() + phi.cos() * d.cos() * (omega * rad).cos();
    if sin_alt <= 0.0 {
        0.0
    } else {
        1000.0 * sin_alt.powf(1.15)
    }
}

/// A community of `n` households, deterministic from `seed`.
pub fn community(n: usize, seed: u64) -> Vec<Household> {
    (0..n)
        .map(|index| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37));
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            let has_pv = index % 4 != 3;
            let pv_peak_w = if has_pv {
                uniform(&mut rng, 3_000.0, 10_000.0)
            } else {
                0.0
            };
            let battery_wh = if has_pv && index % 3 == 0 {
                uniform(&mut rng, 5_000.0, 10_000.0)
            } else {
                0.0
            };
            Household {
                index,
                meter: SecretKey::from_bytes(key),
                pv_peak_w,
                battery_wh,
                battery_level_wh: battery_wh / 2.0,
                base_w: uniform(&mut rng, 150.0, 400.0),
                morning_w: uniform(&mut rng, 600.0, 1_200.0),
                evening_w: uniform(&mut rng, 1_000.0, 2_000.0),
                appliance_left_min: 0,
                rng,
            }
        })
        .collect()
}

/// Weather of one simulated day: a clearness index per day, then a per-minute cloud factor.
#[derive(Clone, Debug)]
pub struct Weather {
    clearness: f64,
    cloud: f64,
    rng: ChaCha20Rng,
}

impl Weather {
    /// The weather of the day drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5EED_F0DA);
        Self {
            clearness: uniform(&mut rng, 0.35, 1.0),
            cloud: 1.0,
            rng,
        }
    }

    /// The next minute's factor on clear-sky output.
    fn next_minute(&mut self) -> f64 {
        self.cloud = (self.cloud + uniform(&mut self.rng, -0.08, 0.08)).clamp(0.55, 1.0);
        self.clearness * self.cloud
    }
}

/// Simulates one hour starting at `start_hour` (solar time) for every household, under the
/// same weather. Returns one reading per household, in order.
pub fn simulate_hour(
    site: Site,
    weather: &mut Weather,
    homes: &mut [Household],
    start_hour: f64,
) -> Vec<PeriodReadings> {
    let mut out: Vec<PeriodReadings> = homes
        .iter()
        .map(|_| PeriodReadings {
            import_wh: 0,
            export_wh: 0,
            minutes: Vec::with_capacity(MINUTES as usize),
        })
        .collect();
    // Fractions of a Wh carried between minutes, per household.
    let mut carry: Vec<(f64, f64)> = vec![(0.0, 0.0); homes.len()];
    for m in 0..MINUTES {
        let hour = start_hour + f64::from(m) / f64::from(MINUTES);
        let sky = clear_sky_irradiance(site, hour) / 1000.0 * weather.next_minute();
        for (k, h) in homes.iter_mut().enumerate() {
            let pv_w = h.pv_peak_w * sky * 0.8;
            let mut load_w = h.base_w
                + h.morning_w * bump(hour, 7.0, 1.0)
                + 300.0 * bump(hour, 12.5, 1.0)
                + h.evening_w * bump(hour, 19.0, 1.5);
            load_w *= uniform(&mut h.rng, 0.8, 1.2);
            if h.appliance_left_min == 0 && h.rng.next_u32() % 100 == 0 {
                h.appliance_left_min = 3 + h.rng.next_u32() % 18;
            }
            if h.appliance_left_min > 0 {
                load_w += 2_000.0;
                h.appliance_left_min -= 1;
            }
            // Energy this minute, Wh; the battery absorbs surplus and covers deficit first.
            let mut net_wh = (load_w - pv_w) / 60.0;
            if h.battery_wh > 0.0 {
                let max_step = 3_000.0 / 60.0;
                if net_wh < 0.0 {
                    let room = h.battery_wh - h.battery_level_wh;
                    let charge = (-net_wh).min(max_step).min(room);
                    h.battery_level_wh += charge;
                    net_wh += charge;
                } else {
                    let draw = net_wh.min(max_step).min(h.battery_level_wh);
                    h.battery_level_wh -= draw;
                    net_wh -= draw;
                }
            }
            let (ci, ce) = &mut carry[k];
            if net_wh >= 0.0 {
                *ci += net_wh;
            } else {
                *ce -= net_wh;
            }
            let (imp, exp) = (ci.floor(), ce.floor());
            *ci -= imp;
            *ce -= exp;
            let (imp, exp) = (imp as u32, exp as u32);
            let r = &mut out[k];
            r.minutes.push((imp, exp));
            r.import_wh += imp;
            r.export_wh += exp;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sun_is_up_at_noon_and_down_at_midnight() {
        let site = Site::default();
        assert_eq!(clear_sky_irradiance(site, 0.0), 0.0);
        let noon = clear_sky_irradiance(site, 12.0);
        assert!(noon > 800.0 && noon < 1000.0, "{noon}");
        assert!(clear_sky_irradiance(site, 9.0) < noon);
        // Winter noon is lower than summer noon.
        let winter = Site {
            day_of_year: 355,
            ..site
        };
        assert!(clear_sky_irradiance(winter, 12.0) < noon / 2.0);
    }

    #[test]
    fn simulation_is_deterministic_and_plausible() {
        let site = Site::default();
        let run = || {
            let mut homes = community(8, 7);
            let mut w = Weather::new(7);
            simulate_hour(site, &mut w, &mut homes, 12.0)
        };
        let (a, b) = (run(), run());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.import_wh, x.export_wh), (y.import_wh, y.export_wh));
            assert_eq!(x.minutes, y.minutes);
            assert_eq!(x.minutes.len(), 60);
            let sum: (u32, u32) = x.minutes.iter().fold((0, 0), |s, m| (s.0 + m.0, s.1 + m.1));
            assert_eq!(sum, (x.import_wh, x.export_wh));
        }
        // Homes without PV (index 3, 7) never export; at noon some PV home exports.
        assert_eq!(a[3].export_wh, 0);
        assert_eq!(a[7].export_wh, 0);
        assert!(a.iter().any(|r| r.export_wh > 500), "{a:?}");
        // Midnight: nothing exported by anyone without a battery.
        let mut homes = community(8, 7);
        let night = simulate_hour(site, &mut Weather::new(7), &mut homes, 0.0);
        for (h, r) in homes.iter().zip(&night) {
            if h.battery_wh == 0.0 {
                assert_eq!(r.export_wh, 0);
            }
            assert!(r.import_wh > 0 || h.battery_wh > 0.0);
        }
    }

    #[test]
    fn signed_statements_verify_for_their_meter() {
        let mut homes = community(2, 1);
        let r = simulate_hour(Site::default(), &mut Weather::new(1), &mut homes, 11.0);
        let st = r[0].sign(&homes[0].meter, 5, None);
        assert!(st.verify().is_ok());
        assert_eq!(st.statement.period, 5);
        assert_eq!(st.statement.import_wh, r[0].import_wh);
    }
}
