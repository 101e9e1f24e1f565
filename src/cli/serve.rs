//! `liyu serve --config FILE`: the proxy, until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use liyu::config::Config;
use liyu::proxy::{self, State};
use tokio::net::TcpListener;

/// Logs go to stderr; `RUST_LOG` sets the level (default `info`). No message text is logged at info.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let state =
            State::new(config).map_err(|e| anyhow::anyhow!("cannot load the lexicons:\n{e}"))?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            upstream = %state.config.upstream.ws_url(""),
            mode = ?state.config.mode,
            rules = state.checker().rules().len(),
            "liyu proxy listening"
        );
        let store = liyu::store::StoreHandle::start(&state.config.store_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the findings store {}: {e}", state.config.store_url))?;
        state.attach_store(store);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let admin = match state.config.admin_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (admin)"))?;
                tracing::info!(addr = %listener.local_addr()?, "admin API and dashboard listening");
                if state.config.admin_tokens.is_empty() {
                    tracing::warn!("no admin tokens configured: every API call and the dashboard will answer 401");
                }
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(liyu::web::run(listener, state.clone(), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })))
            }
            None => None,
        };
        let watcher = {
            let mut stop = stop_rx.clone();
            tokio::spawn(proxy::watch_lexicons(
                state.clone(),
                Duration::from_secs(1),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        };
        let hup = tokio::spawn(reload_on_sighup(state.clone()));
        proxy::run(listener, state.clone(), shutdown_signal()).await;
        let _ = stop_tx.send(true);
        hup.abort();
        // Findings still queued for the store get a moment to be written.
        if let Some(store) = state.store() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while store.metrics.queued.load(std::sync::atomic::Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(admin) = admin {
            let _ = tokio::time::timeout(Duration::from_secs(5), admin).await;
        }
        let _ = watcher.await;
        tracing::info!("liyu stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn reload_on_sighup(state: std::sync::Arc<State>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the lexicons");
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || state.reload()).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        std::future::pending::<()>().await;
    }
}
