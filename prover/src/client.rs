//! What the household tools do over the validator API beyond single calls: follow the ledger
//! with wallets, and rebuild the meter registry from its public leaves. Calls go through the
//! one API client, [`NodeClient`] (re-exported from the verifier crate).

use veilwatt_circuits::registry::MemoryRegistry;
use veilwatt_verifier::types::{FieldBytes, Genesis};

pub use veilwatt_verifier::client::{send_waiting, ClientError, NodeClient, RATE_RETRIES};

use crate::notes::{NoteBook, NotesError};

/// Why wallets could not follow the ledger.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The node could not give the blocks or period results.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A block the wallet cannot take (out of order, or a clearing without its result).
    #[error(transparent)]
    Notes(#[from] NotesError),
}

/// Why the registry could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The node could not give it.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The market has no registry (no unlinkable orders).
    #[error("this market has no meter registry")]
    NoRegistry,
    /// The node's leaves and roots do not agree, or never stopped changing.
    #[error("registry: {0}")]
    Inconsistent(String),
}

/// Brings the wallets `books` of market `g` up to the node's height: every block each has not
/// scanned yet, with the results of the periods the block clears (the notes clearing mints to
/// unlinkable orders' payout targets; [`NoteBook::due_periods`]). Each period's result is
/// fetched once for all the books.
pub async fn sync(node: &NodeClient, g: &Genesis, books: &mut [NoteBook]) -> Result<(), SyncError> {
    let Some(mut from) = books.iter().map(|b| b.height() + 1).min() else {
        return Ok(());
    };
    loop {
        let range = node.blocks(from, from.saturating_add(999)).await?;
        for view in &range.blocks {
            let b = view.block();
            let behind: Vec<&mut NoteBook> = books
                .iter_mut()
                .filter(|k| k.height() + 1 == b.height)
                .collect();
            let mut due: Vec<u64> = behind
                .iter()
                .flat_map(|k| k.due_periods(g, b.time))
                .collect();
            due.sort_unstable();
            due.dedup();
            let mut cleared = Vec::new();
            for p in due {
                cleared.extend(node.period(p).await?.result());
            }
            for book in behind {
                book.scan(g, &b, &cleared)?;
            }
        }
        from = range.to.saturating_add(1);
        if range.blocks.is_empty() || from > range.height {
            return Ok(());
        }
    }
}

/// The meter registry rebuilt from the node's public leaves (every page of
/// `/v1/registry/leaves`; the node learns nothing of which leaf is the caller's), and its valid
/// recent roots (`/v1/registry`). The leaves' root is checked against the node's; a block
/// committed between the pages is retried.
pub async fn registry(
    node: &NodeClient,
) -> Result<(MemoryRegistry, Vec<FieldBytes>), RegistryError> {
    for _ in 0..5 {
        let status = node.registry().await?.ok_or(RegistryError::NoRegistry)?;
        let mut leaves = Vec::new();
        let mut moved = false;
        while (leaves.len() as u64) < status.size {
            let page = node.registry_leaves(leaves.len() as u64).await?;
            if page.root != status.root {
                moved = true;
                break;
            }
            if page.leaves.is_empty() {
                return Err(RegistryError::Inconsistent(
                    "the leaves end before the registry's size".into(),
                ));
            }
            for l in page.leaves {
                leaves.push(l.to_field().ok_or_else(|| {
                    RegistryError::Inconsistent(format!("leaf {l} is not a field element"))
                })?);
            }
        }
        if moved {
            continue;
        }
        let registry = crate::unlinkable::registry_from_leaves(&leaves)
            .map_err(|e| RegistryError::Inconsistent(e.to_string()))?;
        if FieldBytes::from_field(registry.root()) != status.root {
            return Err(RegistryError::Inconsistent(
                "the leaves do not give the registry's root".into(),
            ));
        }
        return Ok((registry, status.recent_roots));
    }
    Err(RegistryError::Inconsistent(
        "it kept changing while it was read".into(),
    ))
}
