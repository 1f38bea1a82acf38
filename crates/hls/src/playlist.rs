//! Playlist parser: filled in by the parser work.
