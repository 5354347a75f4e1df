//! State snapshots (docs/spec/audit.md): the committed entries of the ledger state after block
//! `height`, with that block and its commit certificate (the *anchor*). An auditor who checks
//! the anchor's certificate and rebuilds the state root from the entries holds a state the
//! chain itself commits to, and can audit the blocks after `height` without replaying the
//! history before it (`veilwatt-verifier audit --snapshot`).
//!
//! Format `veilwatt-snapshot/1`, JSON lines: a [`SnapshotHeader`], then one line per committed
//! entry, `["<key hex>", "<value hex>"]`, in strictly increasing key order.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, Certificate, ExportIoError, ExportedBlock};
use crate::ledger::LedgerRead;
use crate::state::{keys, ChangeSet, MemoryState};
use crate::types::{encode, Genesis, Hash32};

/// The snapshot format this crate reads and writes.
pub const SNAPSHOT_FORMAT: &str = "veilwatt-snapshot/1";

/// The first line of a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Always [`SNAPSHOT_FORMAT`].
    pub format: String,
    /// Chain id.
    pub chain_id: String,
    /// Hash of the genesis.
    pub genesis_hash: Hash32,
    /// The state is the one after the block at this height.
    pub height: u64,
    /// Number of entry lines that follow.
    pub entries: u64,
    /// The block at `height` and its commit certificate: its `state_root` is the root the
    /// entries must rebuild.
    pub anchor: ExportedBlock,
}

/// Writes a snapshot line by line: the header, then [`SnapshotWriter::push`] per entry.
pub struct SnapshotWriter<W: Write> {
    out: W,
    last: Option<Vec<u8>>,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot with its header line.
    pub fn new(mut out: W, header: &SnapshotHeader) -> Result<Self, ExportIoError> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(Self { out, last: None })
    }

    /// Appends a committed entry; keys must come in increasing order.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), ExportIoError> {
        if !keys::is_committed(key) || self.last.as_deref().is_some_and(|l| l >= key) {
            return Err(ExportIoError::Io(std::io::Error::other(format!(
                "snapshot entry {} is not a committed key in increasing order",
                hex::encode(key)
            ))));
        }
        serde_json::to_writer(&mut self.out, &(hex::encode(key), hex::encode(value)))?;
        self.out.write_all(b"\n")?;
        self.last = Some(key.to_vec());
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> Result<W, ExportIoError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A verified place to start an audit: the state after block `height`.
#[derive(Debug)]
pub struct Checkpoint {
    /// The state, rebuilt from the snapshot's entries.
    pub state: MemoryState,
    /// Height of the anchor block.
    pub height: u64,
    /// Hash of the anchor block (the next block's `prev_hash`).
    pub hash: Hash32,
}

/// The state after the block at `height`, whose hash is `tip`, from its committed entries:
/// with the local entries the rules read added (the indexes follow from the committed entries;
/// the tip's hash is local because a block cannot commit to its own hash). The caller compares
/// its root with the one the chain committed.
pub fn restore(
    height: u64,
    mut committed: ChangeSet,
    tip: &Hash32,
) -> Result<MemoryState, crate::state::StateError> {
    let indexes = crate::ledger::derive_indexes(
        committed
            .iter()
            .filter_map(|(k, v)| Some((k.as_slice(), v.as_deref()?))),
    )?;
    committed.extend(indexes);
    committed.insert(keys::chain(), Some(encode(tip)));
    MemoryState::restore(height, committed)
}

fn bad(why: impl Into<String>) -> AuditError {
    AuditError::Snapshot(why.into())
}

/// Reads a snapshot and verifies it against `g`: the chain and genesis, the anchor block's hash
/// and commit certificate, the entries (committed keys, strictly increasing, as many as the
/// header says), and that they rebuild exactly the anchor's state root.
pub fn load<R: BufRead>(g: &Genesis, r: R) -> Result<Checkpoint, AuditError> {
    let mut lines = r.lines();
    let first = lines
        .next()
        .ok_or_else(|| bad("empty file"))?
        .map_err(|e| bad(format!("reading line 1: {e}")))?;
    let h: SnapshotHeader = serde_json::from_str(&first)
        .map_err(|e| bad(format!("line 1 is not a snapshot header: {e}")))?;
    if h.format != SNAPSHOT_FORMAT {
        return Err(bad(format!("format {:?}", h.format)));
    }
    if h.chain_id != g.chain_id || h.genesis_hash != g.hash() {
        return Err(AuditError::OtherGenesis(format!(
            "the snapshot is of chain {:?} with genesis {}",
            h.chain_id, h.genesis_hash
        )));
    }
    let anchor = &h.anchor;
    if anchor.block.height != h.height || h.height == 0 {
        return Err(bad(format!(
            "the anchor block has height {}, the snapshot says {}",
            anchor.block.height, h.height
        )));
    }
    let hash = anchor.block.hash();
    if hash != anchor.hash {
        return Err(AuditError::BlockHash {
            height: h.height,
            stated: anchor.hash,
            computed: hash,
        });
    }
    let cert = hex::decode(&anchor.certificate)
        .map_err(|e| e.to_string())
        .and_then(|b| Certificate::decode(&b))
        .map_err(|e| AuditError::Certificate {
            height: h.height,
            error: crate::audit::CertError::Malformed(e),
        })?;
    cert.verify(g, h.height, &hash)
        .map_err(|error| AuditError::Certificate {
            height: h.height,
            error,
        })?;

    let mut entries = ChangeSet::new();
    let mut last: Option<Vec<u8>> = None;
    for (n, line) in lines.enumerate() {
        let n = n + 2;
        let line = line.map_err(|e| bad(format!("reading line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let (k, v): (String, String) = serde_json::from_str(&line)
            .map_err(|e| bad(format!("line {n} is not an entry: {e}")))?;
        let (k, v) = (
            hex::decode(&k).map_err(|e| bad(format!("line {n}: key: {e}")))?,
            hex::decode(&v).map_err(|e| bad(format!("line {n}: value: {e}")))?,
        );
        if !keys::is_committed(&k) {
            return Err(bad(format!(
                "line {n}: {} is not a committed key",
                hex::encode(&k)
            )));
        }
        if last.as_ref().is_some_and(|l| *l >= k) {
            return Err(bad(format!("line {n}: keys out of order")));
        }
        last = Some(k.clone());
        entries.insert(k, Some(v));
    }
    if entries.len() as u64 != h.entries {
        return Err(bad(format!(
            "{} entries, the header says {} (truncated?)",
            entries.len(),
            h.entries
        )));
    }
    let state = restore(h.height, entries, &hash).map_err(AuditError::State)?;
    if state.root() != anchor.block.state_root {
        return Err(AuditError::SnapshotRoot {
            height: h.height,
            stated: anchor.block.state_root,
            computed: state.root(),
        });
    }
    debug_assert_eq!(state.meta().map(|m| m.height).ok(), Some(h.height));
    Ok(Checkpoint {
        state,
        height: h.height,
        hash,
    })
}
