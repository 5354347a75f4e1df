//! The household's wallet file: its Ed25519 account key encrypted at rest
//! (`veilwatt-wallet/1`, docs/spec/household.md).
//!
//! The key is sealed with XChaCha20-Poly1305 under a key derived from the passphrase with
//! Argon2id (64 MiB, 3 passes, 1 lane; a fresh 16-byte salt and 24-byte nonce per file). The
//! format tag and the address are bound as associated data, so a file whose address was
//! edited does not open either. A wrong passphrase and a tampered file are indistinguishable
//! by design: both fail authentication.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use veilwatt_verifier::types::WalletKey;
use zeroize::Zeroizing;

/// The format tag.
pub const WALLET_FORMAT: &str = "veilwatt-wallet/1";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// The wallet file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletFile {
    /// Always [`WALLET_FORMAT`].
    pub format: String,
    /// The account's public key (its address).
    pub address: WalletKey,
    /// Always `argon2id`.
    pub kdf: String,
    /// Its parameters.
    pub kdf_params: KdfParams,
    /// Salt, hex.
    pub salt: String,
    /// Always `xchacha20poly1305`.
    pub cipher: String,
    /// Nonce, hex.
    pub nonce: String,
    /// The sealed 32-byte secret with its tag, hex.
    pub ciphertext: String,
}

/// Why a wallet could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// Wrong passphrase, or the file was altered.
    #[error("wrong passphrase (or the wallet file was altered)")]
    WrongPassphrase,
    /// Not a wallet file this version reads.
    #[error("not a {WALLET_FORMAT} wallet file: {0}")]
    Format(String),
    /// The passphrase is unusable.
    #[error("{0}")]
    WeakPassphrase(&'static str),
    /// The KDF refused its parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// The shortest passphrase accepted when a wallet is created.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

fn derive(
    passphrase: &str,
    salt: &[u8],
    p: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| WalletError::Kdf(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| WalletError::Kdf(e.to_string()))?;
    Ok(key)
}

fn aad(address: &WalletKey) -> Vec<u8> {
    let mut v = WALLET_FORMAT.as_bytes().to_vec();
    v.extend_from_slice(&address.0);
    v
}

impl WalletFile {
    /// Seals `key` under `passphrase`.
    pub fn seal<R: RngCore + CryptoRng>(
        key: &SigningKey,
        passphrase: &str,
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Self, WalletError> {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(WalletError::WeakPassphrase(
                "the passphrase must have at least 8 characters",
            ));
        }
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut nonce);
        let address = WalletKey(key.verifying_key().to_bytes());
        let k = derive(passphrase, &salt, &params)?;
        let secret = Zeroizing::new(key.to_bytes());
        let ciphertext = XChaCha20Poly1305::new(k.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_ref(),
                    aad: &aad(&address),
                },
            )
            .map_err(|_| WalletError::Kdf("encryption failed".into()))?;
        Ok(Self {
            format: WALLET_FORMAT.into(),
            address,
            kdf: "argon2id".into(),
            kdf_params: params,
            salt: hex::encode(salt),
            cipher: "xchacha20poly1305".into(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Opens the wallet.
    pub fn open(&self, passphrase: &str) -> Result<SigningKey, WalletError> {
        let format = |why: &str| WalletError::Format(why.to_owned());
        if self.format != WALLET_FORMAT {
            return Err(format("unknown format tag"));
        }
        if self.kdf != "argon2id" || self.cipher != "xchacha20poly1305" {
            return Err(format("unsupported kdf or cipher"));
        }
        // Refuse parameters an attacker could have lowered to make guessing cheap, or raised
        // to exhaust memory.
        let p = self.kdf_params;
        if p.m_cost_kib < 8 * 1024
            || p.m_cost_kib > 4 * 1024 * 1024
            || p.t_cost == 0
            || p.t_cost > 64
        {
            return Err(format("kdf parameters out of range"));
        }
        let salt = hex::decode(&self.salt).map_err(|_| format("salt is not hex"))?;
        let nonce: [u8; 24] = hex::decode(&self.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| format("nonce must be 24 bytes of hex"))?;
        let ct = hex::decode(&self.ciphertext).map_err(|_| format("ciphertext is not hex"))?;
        let k = derive(passphrase, &salt, &p)?;
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(k.as_ref().into())
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ct,
                        aad: &aad(&self.address),
                    },
                )
                .map_err(|_| WalletError::WrongPassphrase)?,
        );
        let secret: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| format("sealed secret is not 32 bytes"))?;
        let key = SigningKey::from_bytes(&secret);
        if key.verifying_key().to_bytes() != self.address.0 {
            return Err(WalletError::WrongPassphrase);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    /// Cheaper parameters than the default, still above the floor `open` enforces.
    const TEST: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    fn sealed() -> (SigningKey, WalletFile) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let w = WalletFile::seal(&key, "correct horse battery", TEST, &mut rng).unwrap();
        (key, w)
    }

    #[test]
    fn opens_with_the_passphrase_only() {
        let (key, w) = sealed();
        assert_eq!(
            w.open("correct horse battery").unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            w.open("correct horse batterY"),
            Err(WalletError::WrongPassphrase)
        ));
        assert!(matches!(w.open(""), Err(WalletError::WrongPassphrase)));
        // The secret is not in the file.
        let json = serde_json::to_string(&w).unwrap();
        assert!(!json.contains(&hex::encode(key.to_bytes())));
    }

    #[test]
    fn tampering_is_detected() {
        let (_, w) = sealed();
        let mut other = w.clone();
        other.address = WalletKey(
            SigningKey::from_bytes(&[3u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        assert!(matches!(
            other.open("correct horse battery"),
            Err(WalletError::WrongPassphrase)
        ));
        let mut flipped = w.clone();
        let mut ct = hex::decode(&flipped.ciphertext).unwrap();
        ct[0] ^= 1;
        flipped.ciphertext = hex::encode(ct);
        assert!(matches!(
            flipped.open("correct horse battery"),
            Err(WalletError::WrongPassphrase)
        ));
        let mut cheap = w.clone();
        cheap.kdf_params.m_cost_kib = 64;
        assert!(matches!(
            cheap.open("correct horse battery"),
            Err(WalletError::Format(_))
        ));
    }

    #[test]
    fn short_passphrases_are_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = SigningKey::from_bytes(&[9u8; 32]);
        assert!(matches!(
            WalletFile::seal(&key, "short", TEST, &mut rng),
            Err(WalletError::WeakPassphrase(_))
        ));
    }
}
