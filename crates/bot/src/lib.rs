//! Everything Telegram. Handlers only validate, enqueue and answer; the words users read live in
//! `catalogue` (keyed by message id, English and Russian) and are put together in `messages`, the
//! understanding of what they typed in `parser` (pure), who sent it in `identity`, the robustness
//! rules of talking to Telegram in `telegram_api`, start-up in `startup`, the running bot in
//! `runtime` (settings, context), `handlers` (messages), `callbacks` (buttons), `admin`,
//! `status_messages`, `keyboards`, `dvr` (schedules, `/timezone`, request options, clips), and `part_sender` (the `PartSender` a worker sends the finished
//! parts with).

mod admin;
mod callbacks;
pub mod catalogue;
mod dvr;
mod handlers;
pub mod identity;
pub mod keyboards;
mod limit_notices;
pub mod markdown;
#[cfg(test)]
mod markdown_check;
pub mod messages;
mod migrated_chats;
pub mod outbound;
pub mod parser;
pub mod part_sender;
pub mod rate_limit;
pub mod runtime;
pub mod startup;
mod status_messages;
pub mod telegram_api;
pub mod unreadable_updates;

pub use part_sender::TelegramPartSender;
pub use runtime::{BotBackend, BotError, BotSettings, WebhookSettings, run_bot};
