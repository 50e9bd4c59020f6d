//! The `tally` binary: parse the configuration, set up logging, serve until
//! SIGTERM or Ctrl-C.

use clap::Parser;
use tally::Application;
use tally::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// jemalloc instead of the system allocator, so that memory comes back:
/// glibc's malloc kept ~99 % of the RSS of 8,000 followers after they left
/// (freed chunks sit in per-thread arenas and are rarely trimmed), which
/// made an instance that served one burst keep its peak forever.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (the crate's jemalloc names
/// this symbol with its `_rjem_` prefix). A background thread purges
/// unused pages even while the instance is idle — without it, purging
/// happens only on later allocations — and dirty pages go back to the
/// kernel within about 5 s of being freed, at once (`muzzy_decay_ms:0`)
/// rather than in a second, lazier step. `_RJEM_MALLOC_CONF` overrides.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0\0";

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
