//! Everything Telegram. Handlers only validate, enqueue and answer; the words users read live in
//! `messages`, the understanding of what they typed in `parser` (pure).

pub mod markdown;
pub mod messages;
pub mod parser;
pub mod rate_limit;
