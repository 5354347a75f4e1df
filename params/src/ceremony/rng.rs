//! The randomness snarkjs derives from public data, reproduced exactly.
//!
//! A phase-2 contribution's proof of knowledge uses a G2 point derived from the transcript hash
//! (`hashToG2`), and a beacon contribution derives its whole key from the beacon; a verifier
//! re-derives both. snarkjs does this with ffjavascript's ChaCha20 stream (8 big-endian seed
//! words, no nonce, a 128-bit block counter, each `u64` drawn high word first) and its
//! `fromRng` samplers. Anything else would make our contributions unverifiable by snarkjs and
//! theirs by us, so this module follows those definitions bit for bit; the cross-check is the
//! snarkjs interoperability test (`params/tests/it/ceremony_snarkjs.rs`).

use super::encoding::{fq2_is_negative, fq_is_negative};
use ark_bn254::{g1, g2, Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::{short_weierstrass::SWCurveConfig, AffineRepr, CurveGroup};
use ark_ff::{BigInteger256, Field, PrimeField};
use sha2::{Digest, Sha256};

/// ffjavascript's ChaCha20 stream.
pub struct SnarkjsChaCha {
    state: [u32; 16],
    block: [u32; 16],
    idx: usize,
}

fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

impl SnarkjsChaCha {
    /// A stream seeded with eight 32-bit words.
    pub fn new(seed: [u32; 8]) -> Self {
        let mut state = [0u32; 16];
        state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646E, 0x7962_2D32, 0x6B20_6574]);
        state[4..12].copy_from_slice(&seed);
        Self {
            state,
            block: [0; 16],
            idx: 16,
        }
    }

    /// A stream seeded with the first 32 bytes of `hash`, read as big-endian words.
    pub fn from_hash(hash: &[u8; 32]) -> Self {
        let mut seed = [0u32; 8];
        for (i, w) in seed.iter_mut().enumerate() {
            *w = u32::from_be_bytes([
                hash[i * 4],
                hash[i * 4 + 1],
                hash[i * 4 + 2],
                hash[i * 4 + 3],
            ]);
        }
        Self::new(seed)
    }

    fn refill(&mut self) {
        let mut b = self.state;
        for _ in 0..10 {
            quarter_round(&mut b, 0, 4, 8, 12);
            quarter_round(&mut b, 1, 5, 9, 13);
            quarter_round(&mut b, 2, 6, 10, 14);
            quarter_round(&mut b, 3, 7, 11, 15);
            quarter_round(&mut b, 0, 5, 10, 15);
            quarter_round(&mut b, 1, 6, 11, 12);
            quarter_round(&mut b, 2, 7, 8, 13);
            quarter_round(&mut b, 3, 4, 9, 14);
        }
        for (o, s) in b.iter_mut().zip(self.state.iter()) {
            *o = o.wrapping_add(*s);
        }
        self.block = b;
        self.idx = 0;
        // 128-bit block counter in words 12..16.
        for w in 12..16 {
            self.state[w] = self.state[w].wrapping_add(1);
            if self.state[w] != 0 {
                break;
            }
        }
    }

    /// The next 32-bit word.
    pub fn next_u32(&mut self) -> u32 {
        if self.idx == 16 {
            self.refill();
        }
        let v = self.block[self.idx];
        self.idx += 1;
        v
    }

    /// The next 64-bit word: high half first.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// The next boolean: the low bit of a word.
    pub fn next_bool(&mut self) -> bool {
        self.next_u32() & 1 == 1
    }

    /// ffjavascript's `F.fromRng` for a 254-bit prime field: four `u64` limbs (least
    /// significant first) masked to the modulus' bit length, rejected until below the modulus,
    /// then read as a *Montgomery* representation.
    fn field_limbs<F: PrimeField<BigInt = BigInteger256>>(&mut self) -> BigInteger256 {
        let top_mask = (1u64 << (F::MODULUS_BIT_SIZE - 192)) - 1;
        loop {
            let mut limbs = [0u64; 4];
            for l in limbs.iter_mut() {
                *l = self.next_u64();
            }
            limbs[3] &= top_mask;
            let v = BigInteger256::new(limbs);
            if v < F::MODULUS {
                return v;
            }
        }
    }

    /// `Fr.fromRng`.
    pub fn fr(&mut self) -> Fr {
        Fr::new_unchecked(self.field_limbs::<Fr>())
    }

    fn fq(&mut self) -> Fq {
        Fq::new_unchecked(self.field_limbs::<Fq>())
    }

    /// `G1.fromRng`: a random x until `x^3 + b` is a square, the root whose sign matches a
    /// random bit.
    pub fn g1(&mut self) -> G1Affine {
        loop {
            let x = self.fq();
            let greatest = self.next_bool();
            let rhs = x.square() * x + g1::Config::COEFF_B;
            if let Some(mut y) = rhs.sqrt() {
                if greatest != fq_is_negative(&y) {
                    y = -y;
                }
                return G1Affine::new_unchecked(x, y);
            }
        }
    }

    /// `G2.fromRng`: as for G1 over `Fq2` (c0 drawn first), then multiplied by the G2
    /// cofactor as an integer.
    pub fn g2(&mut self) -> G2Affine {
        loop {
            let c0 = self.fq();
            let c1 = self.fq();
            let x = Fq2::new(c0, c1);
            let greatest = self.next_bool();
            let rhs = x.square() * x + g2::Config::COEFF_B;
            if let Some(mut y) = rhs.sqrt() {
                if greatest != fq2_is_negative(&y) {
                    y = -y;
                }
                let p = G2Affine::new_unchecked(x, y);
                return p.mul_bigint(G2_COFACTOR).into_affine();
            }
        }
    }
}

/// The BN254 G2 cofactor as ffjavascript multiplies by it
/// (0x30644e72e131a029b85045b68181585e06ceecda572a2489345f2299c0f9fa8d), least significant limb
/// first.
const G2_COFACTOR: [u64; 4] = [
    0x345f_2299_c0f9_fa8d,
    0x06ce_ecda_572a_2489,
    0xb850_45b6_8181_585e,
    0x3064_4e72_e131_a029,
];

/// snarkjs' `hashToG2`: the G2 point a contribution's proof of knowledge is bound to.
pub fn hash_to_g2(transcript: &[u8; 64]) -> G2Affine {
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&transcript[..32]);
    SnarkjsChaCha::from_hash(&seed).g2()
}

/// snarkjs' `rngFromBeaconParams`: SHA-256 applied `2^iterations_exp` times to the beacon,
/// then a ChaCha stream seeded with the result. Callers bound `iterations_exp` (snarkjs: 10..=63).
pub fn beacon_rng(beacon: &[u8], iterations_exp: u8) -> SnarkjsChaCha {
    let mut h: [u8; 32] = Sha256::digest(beacon).into();
    let n: u128 = 1u128 << iterations_exp;
    for _ in 1..n {
        h = Sha256::digest(h).into();
    }
    SnarkjsChaCha::from_hash(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.3.2's block function test vector: with key 00 01 .. 1f, counter 1 and
    /// nonce 00 00 00 09 00 00 00 4a 00 00 00 00 (as state words 12..16).
    #[test]
    fn block_function_matches_rfc_8439() {
        let key: Vec<u8> = (0u8..32).collect();
        let mut seed = [0u32; 8];
        for (i, w) in seed.iter_mut().enumerate() {
            *w = u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
        }
        let mut c = SnarkjsChaCha::new(seed);
        c.state[12] = 1;
        c.state[13] = 0x0900_0000;
        c.state[14] = 0x4a00_0000;
        c.state[15] = 0;
        assert_eq!(c.next_u32(), 0xe4e7_f110);
        assert_eq!(c.next_u32(), 0x1559_3bd1);
        assert_eq!(c.next_u32(), 0x1fdd_0f50);
    }

    #[test]
    fn sampled_points_are_in_the_groups() {
        let mut c = SnarkjsChaCha::new([1, 2, 3, 4, 5, 6, 7, 8]);
        let p = c.g1();
        assert!(p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve());
        let q = c.g2();
        assert!(q.is_on_curve() && q.is_in_correct_subgroup_assuming_on_curve());
        let h = hash_to_g2(&[7u8; 64]);
        assert_eq!(h, hash_to_g2(&[7u8; 64]));
    }
}
