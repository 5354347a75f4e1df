//! Where the ledger lives between blocks. The node implements [`LedgerStore`] on RocksDB; this
//! module has the in-memory implementation used by tests, benchmarks and replays.

use crate::ledger::LedgerState;
use crate::types::Block;

/// Durable storage of blocks and the state after the last one. `commit` must be atomic: after a
/// crash the store holds either the previous or the new block and state, never a mix.
pub trait LedgerStore {
    /// Storage error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The state after the last committed block (`None` before the first block).
    fn state(&self) -> Result<Option<LedgerState>, Self::Error>;

    /// The block at `height`, if committed.
    fn block(&self, height: u64) -> Result<Option<Block>, Self::Error>;

    /// Commits `block` and the state it produced, atomically.
    fn commit(&mut self, block: &Block, state: &LedgerState) -> Result<(), Self::Error>;
}

/// Blocks and state in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    blocks: Vec<Block>,
    state: Option<LedgerState>,
}

impl LedgerStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn state(&self) -> Result<Option<LedgerState>, Self::Error> {
        Ok(self.state.clone())
    }

    fn block(&self, height: u64) -> Result<Option<Block>, Self::Error> {
        Ok(height
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.blocks.get(i).cloned()))
    }

    fn commit(&mut self, block: &Block, state: &LedgerState) -> Result<(), Self::Error> {
        self.blocks.push(block.clone());
        self.state = Some(state.clone());
        Ok(())
    }
}
