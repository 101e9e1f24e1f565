//! `liyu serve --config FILE`: the proxy, until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use liyu::config::Config;
use liyu::proxy::{self, State};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Logs go to stderr; `RUST_LOG` sets the level (default `default`). No message text is logged at
/// info.
///
/// tungstenite logs every frame and message it handles at trace, payload included: customers'
/// messages with their phone and ID numbers, and whatever the chat system puts in its frames. So
/// when the filter would let trace through, the WebSocket libraries are held at debug unless
/// `RUST_LOG` names them: trace for liyu's own code does not put customers' data in the log.
pub fn init_logging(default: &str) {
    let spec = std::env::var("RUST_LOG").ok();
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let names_tungstenite = spec.as_deref().is_some_and(|s| s.contains("tungstenite"));
    if filter.max_level_hint() == Some(tracing_subscriber::filter::LevelFilter::TRACE)
        && !names_tungstenite
    {
        for directive in ["tungstenite=debug", "tokio_tungstenite=debug"] {
            if let Ok(d) = directive.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    init_logging("info");
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
        let admin_listen = config.admin_listen;
        let state =
            State::new(config).map_err(|e| anyhow::anyhow!("cannot load the lexicons:\n{e}"))?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let admin = match admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (admin)"))?,
            ),
            None => None,
        };
        let running = start(state.clone(), listener, admin).await?;
        let hup = tokio::spawn(reload_on_sighup(state));
        shutdown_signal().await;
        hup.abort();
        running.stop().await;
        tracing::info!("liyu stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// liyu's service once its listeners are bound: the findings store, the admin API (when it has a
/// listener), the lexicon watcher and the proxy. `liyu serve` and `liyu demo` both run exactly this.
pub struct Running {
    state: Arc<State>,
    stop: watch::Sender<bool>,
    proxy: JoinHandle<()>,
    admin: Option<JoinHandle<()>>,
    watcher: JoinHandle<()>,
}

/// Opens the store and starts serving on `proxy` (and `admin`).
pub async fn start(
    state: Arc<State>,
    proxy: TcpListener,
    admin: Option<TcpListener>,
) -> anyhow::Result<Running> {
    tracing::info!(
        addr = %proxy.local_addr()?,
        upstream = %state.config.upstream.ws_url(""),
        mode = ?state.config.mode,
        rules = state.checker().rules().len(),
        "liyu proxy listening"
    );
    let store = liyu::store::StoreHandle::start(&state.config.store_url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the findings store {}: {e}",
                state.config.store_url
            )
        })?;
    state.attach_store(store);
    let (stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin = match admin {
        Some(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "admin API and dashboard listening");
            if state.config.admin_tokens.is_empty() {
                tracing::warn!(
                    "no admin tokens configured: every API call and the dashboard will answer 401"
                );
            }
            Some(tokio::spawn(liyu::web::run(
                listener,
                state.clone(),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let watcher = tokio::spawn(proxy::watch_lexicons(
        state.clone(),
        Duration::from_secs(1),
        stopped(stop_rx.clone()),
    ));
    let proxy = tokio::spawn(proxy::run(proxy, state.clone(), stopped(stop_rx)));
    Ok(Running {
        state,
        stop,
        proxy,
        admin,
        watcher,
    })
}

impl Running {
    /// Stops accepting, drains the proxied connections (`drain_timeout`), gives queued findings a
    /// moment to reach the store, then stops the admin API.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.proxy.await;
        // Findings still queued for the store get a moment to be written.
        if let Some(store) = self.state.store() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while store
                .metrics
                .queued
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(admin) = self.admin {
            let _ = tokio::time::timeout(Duration::from_secs(5), admin).await;
        }
        let _ = self.watcher.await;
    }
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

async fn reload_on_sighup(state: Arc<State>) {
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
