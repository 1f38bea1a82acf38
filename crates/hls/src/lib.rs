//! HLS for streambot: the playlist parser (pure), variant selection, the live fetcher and the
//! segment ledger. See ARCHITECTURE.md for what this crate must not know.

pub mod playlist;
