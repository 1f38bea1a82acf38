//! Everything Telegram. Handlers only validate, enqueue and answer; the words users read live in
//! `messages`, the understanding of what they typed in `parser` (pure), the robustness rules of
//! talking to Telegram in `telegram_api`, the running bot in `runtime`.

pub mod markdown;
pub mod messages;
pub mod parser;
pub mod rate_limit;
pub mod runtime;
pub mod telegram_api;

pub use runtime::{BotError, BotSettings, WebhookSettings, run_bot};
