//! The `tally` binary: parse the configuration, set up logging, serve until
//! SIGTERM or Ctrl-C.

use clap::Parser;
use tally::Application;
use tally::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    let app = Application::build(config).await?;
    let shutdown = app.shutdown();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.trigger();
    });
    app.run_until_stopped().await
}

/// `TALLY_LOG`, else `RUST_LOG`, else `info`.
fn init_logging(format: LogFormat) {
    let filter = std::env::var("TALLY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let builder = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
