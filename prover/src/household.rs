//! A household's local directory: its settings, encrypted wallet, imported meter statements and
//! the orders it submitted (docs/spec/household.md).
//!
//! ```text
//! HOME/household.json        node URL, the household's meter, the market's genesis
//! HOME/wallet.json           the account key, encrypted (crate::wallet)
//! HOME/statements/P.json     one verified statement per period (crate::statement_file)
//! HOME/orders/P.json         the order submitted for period P
//! ```
//!
//! Every file is written to a temporary name and renamed, so a crash leaves either the old
//! file or the new one. Imports are all-or-nothing: every input is checked before anything is
//! written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use veilwatt_circuits::statement::SignedPeriodStatement;
use veilwatt_verifier::types::{Genesis, Hash32, MeterKey, Millis, NoteTarget, Side, TxId};

use crate::statement_file::{Binding, StatementFile, StatementFileError};
use crate::wallet::WalletFile;

/// The settings format tag.
pub const HOUSEHOLD_FORMAT: &str = "veilwatt-household/1";

/// `household.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Always [`HOUSEHOLD_FORMAT`].
    pub format: String,
    /// The validator API the household talks to.
    pub node: String,
    /// The household's meter (statements from any other meter are refused).
    pub meter: MeterKey,
    /// The market's genesis (periods, price limits, tariffs, chain id).
    pub genesis: Genesis,
}

/// An order the household submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRecord {
    /// Period.
    pub period: u64,
    /// Transaction id.
    pub id: TxId,
    /// Side.
    pub side: Side,
    /// Quantity offered or bid, Wh.
    pub quantity_wh: u32,
    /// Limit price, minor units per kWh.
    pub limit_price: u64,
    /// When it was submitted, Unix seconds (local clock; informational).
    pub submitted_at: u64,
    /// What only the household knows of an unlinkable order (absent for wallet orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlinkable: Option<UnlinkableTerms>,
    /// The transaction that cancelled it, once the node admitted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<TxId>,
}

/// The household's own record of an unlinkable order: where its proceeds or unused escrow go
/// (the wallet finds the note by this owner tag) and the key that cancels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlinkableTerms {
    /// The payout target the order names.
    pub payout: NoteTarget,
    /// The cancel key (its commitment is in the order).
    pub cancel_key: Hash32,
    /// The escrow it paid from the household's notes, millis (buys).
    pub escrow: Millis,
}

/// Errors of the household directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored file does not parse.
    #[error("{path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `init` on a directory that already holds a wallet.
    #[error("{0} already holds a wallet; refusing to overwrite it")]
    Exists(PathBuf),
    /// No household here.
    #[error("{0} is not a household directory (run `veilwatt-prover init` first)")]
    Missing(PathBuf),
    /// An input statement file is invalid.
    #[error("{path}: {source}")]
    Statement {
        /// The input file.
        path: PathBuf,
        /// Why.
        source: StatementFileError,
    },
    /// An input statement is from another meter.
    #[error("{path}: statement of meter {meter}, but this household's meter is {expected}")]
    WrongMeter {
        /// The input file.
        path: PathBuf,
        /// Its meter.
        meter: Box<MeterKey>,
        /// The household's meter.
        expected: Box<MeterKey>,
    },
    /// Two different signed statements for one period.
    #[error("{path}: a different statement for period {period} is already {where_}; a meter signs one statement per period")]
    Conflict {
        /// The input file.
        path: PathBuf,
        /// Period.
        period: u64,
        /// "stored" or "in this import".
        where_: &'static str,
    },
    /// Nothing to import.
    #[error("{0}: no .json statement files found")]
    NothingToImport(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, HomeError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| HomeError::Corrupt {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain data structs always serialize.
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Periods newly stored.
    pub imported: Vec<u64>,
    /// Periods already stored with the identical statement.
    pub already_present: Vec<u64>,
}

/// An opened household directory.
#[derive(Debug)]
pub struct Household {
    dir: PathBuf,
    /// Its settings.
    pub settings: Settings,
}

impl Household {
    fn settings_path(dir: &Path) -> PathBuf {
        dir.join("household.json")
    }

    fn wallet_path(&self) -> PathBuf {
        self.dir.join("wallet.json")
    }

    fn statement_path(&self, period: u64) -> PathBuf {
        self.dir.join("statements").join(format!("{period}.json"))
    }

    fn order_path(&self, period: u64) -> PathBuf {
        self.dir.join("orders").join(format!("{period}.json"))
    }

    /// Creates a household directory with its settings and sealed wallet.
    pub fn create(dir: &Path, settings: Settings, wallet: &WalletFile) -> Result<Self, HomeError> {
        if dir.join("wallet.json").exists() {
            return Err(HomeError::Exists(dir.to_owned()));
        }
        for sub in ["statements", "orders"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(dir))?;
        }
        let h = Self {
            dir: dir.to_owned(),
            settings,
        };
        write_atomic(&h.wallet_path(), &to_json(wallet))?;
        write_atomic(&Self::settings_path(dir), &to_json(&h.settings))?;
        Ok(h)
    }

    /// Opens an existing household directory.
    pub fn open(dir: &Path) -> Result<Self, HomeError> {
        let path = Self::settings_path(dir);
        if !path.exists() {
            return Err(HomeError::Missing(dir.to_owned()));
        }
        let settings: Settings = read_json(&path)?;
        if settings.format != HOUSEHOLD_FORMAT {
            return Err(HomeError::Corrupt {
                path,
                why: format!("unknown format {:?}", settings.format),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            settings,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How this market's statements are signed: for it alone on a market of unlinkable
    /// orders (the signed message names the market), for any market otherwise.
    pub fn market(&self) -> Binding {
        let g = &self.settings.genesis;
        g.anonymous.as_ref().map(|_| g.market_id())
    }

    /// The sealed wallet.
    pub fn wallet(&self) -> Result<WalletFile, HomeError> {
        read_json(&self.wallet_path())
    }

    /// Every stored statement by period, each re-verified.
    pub fn statements(&self) -> Result<BTreeMap<u64, SignedPeriodStatement>, HomeError> {
        let mut out = BTreeMap::new();
        for path in json_files(&self.dir.join("statements"))? {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let s =
                StatementFile::parse(&bytes, self.market()).map_err(|e| HomeError::Corrupt {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            out.insert(s.statement.period, s);
        }
        Ok(out)
    }

    /// The stored statement of `period`.
    pub fn statement(&self, period: u64) -> Result<Option<SignedPeriodStatement>, HomeError> {
        let path = self.statement_path(period);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        StatementFile::parse(&bytes, self.market())
            .map(Some)
            .map_err(|e| HomeError::Corrupt {
                path,
                why: e.to_string(),
            })
    }

    /// Imports statement files (a file, or every `.json` file of a directory): each must be a
    /// statement of this household's meter with a valid signature, and must not contradict a
    /// stored one. Nothing is stored unless every file passes.
    pub fn import(&self, path: &Path) -> Result<ImportReport, HomeError> {
        let files = if path.is_dir() {
            json_files(path)?
        } else {
            vec![path.to_owned()]
        };
        if files.is_empty() {
            return Err(HomeError::NothingToImport(path.to_owned()));
        }
        let mut batch: BTreeMap<u64, (PathBuf, SignedPeriodStatement)> = BTreeMap::new();
        let mut report = ImportReport::default();
        for file in files {
            let bytes = std::fs::read(&file).map_err(io(&file))?;
            let s = StatementFile::parse(&bytes, self.market()).map_err(|source| {
                HomeError::Statement {
                    path: file.clone(),
                    source,
                }
            })?;
            let meter = MeterKey::from_public_key(&s.statement.meter);
            if meter != self.settings.meter {
                return Err(HomeError::WrongMeter {
                    path: file,
                    meter: Box::new(meter),
                    expected: Box::new(self.settings.meter),
                });
            }
            let period = s.statement.period;
            if let Some(stored) = self.statement(period)? {
                if stored != s {
                    return Err(HomeError::Conflict {
                        path: file,
                        period,
                        where_: "stored",
                    });
                }
                report.already_present.push(period);
                continue;
            }
            if let Some((_, other)) = batch.get(&period) {
                if *other != s {
                    return Err(HomeError::Conflict {
                        path: file,
                        period,
                        where_: "in this import",
                    });
                }
                continue;
            }
            batch.insert(period, (file, s));
        }
        for (period, (_, s)) in batch {
            let json = StatementFile::from_signed(&s, self.market()).to_json();
            write_atomic(&self.statement_path(period), json.as_bytes())?;
            report.imported.push(period);
        }
        report.already_present.sort_unstable();
        report.already_present.dedup();
        Ok(report)
    }

    /// Every order the household submitted, by period.
    pub fn orders(&self) -> Result<BTreeMap<u64, OrderRecord>, HomeError> {
        json_files(&self.dir.join("orders"))?
            .iter()
            .map(|p| read_json::<OrderRecord>(p).map(|o| (o.period, o)))
            .collect()
    }

    /// Records a submitted order.
    pub fn record_order(&self, order: &OrderRecord) -> Result<(), HomeError> {
        write_atomic(&self.order_path(order.period), &to_json(order))
    }

    fn notes_path(&self) -> PathBuf {
        self.dir.join("notes.json")
    }

    /// The sealed shielded wallet (`None` before its first use).
    pub fn notes(&self) -> Result<Option<crate::notes::NotesFile>, HomeError> {
        let path = self.notes_path();
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Stores the sealed shielded wallet.
    pub fn save_notes(&self, file: &crate::notes::NotesFile) -> Result<(), HomeError> {
        write_atomic(&self.notes_path(), &to_json(file))
    }
}

/// The `.json` files of a directory, sorted by name.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, HomeError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
