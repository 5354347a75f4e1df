pub mod admission;
pub mod mempool;
pub mod store;
