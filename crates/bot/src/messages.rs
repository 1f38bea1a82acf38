//! Every sentence the bot says. Filled in with the handlers.
