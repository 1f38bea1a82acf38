//! Structured logs with tracing: `LOG_FORMAT=json|console` (console by default), `LOG_LEVEL`
//! (an env-filter directive such as `info` or `streambot_hls=debug`; `warn` by default).

use anyhow::{Context, bail};
use tracing_subscriber::EnvFilter;

pub fn initialise_logging(values: &crate::settings::EnvironmentValues) -> anyhow::Result<()> {
    let level = values
        .log_level
        .clone()
        .unwrap_or_else(|| "warn".to_string());
    let filter = EnvFilter::try_new(&level).with_context(|| {
        format!("LOG_LEVEL={level:?} is not a valid level or filter (try info, debug, warn)")
    })?;
    let format = values
        .log_format
        .clone()
        .unwrap_or_else(|| "console".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.as_str() {
        "json" => builder.json().flatten_event(true).init(),
        "console" | "pretty" | "text" => builder.init(),
        other => bail!("LOG_FORMAT={other:?} is not allowed; use json or console"),
    }
    Ok(())
}
