//! `liyu demo`: liyu in front of a small built-in chat, with the dashboard, in one command.
//!
//! Binds three listeners on 127.0.0.1 (the demo's chat backend, liyu's proxy, liyu's admin API),
//! runs liyu's service exactly as `liyu serve` does ([`super::serve::start`]) with a configuration
//! made for the backend ([`liyu::demo::config`]), prints the addresses, and stops everything on
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use liyu::config::Mode;
use liyu::demo::{self, hub};
use liyu::proxy::State;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::serve;

/// What `liyu demo` was asked for.
pub struct Options {
    /// Annotate or block.
    pub mode: Mode,
    /// Where the findings store is kept; None: a temporary folder, removed on exit.
    pub data: Option<PathBuf>,
    /// Ports of the chat backend, the proxy and the admin listener (0: any free one).
    pub ports: [u16; 3],
    /// How long a customer waits before the agent is nudged.
    pub nudge_after: Duration,
    /// The dashboard's token; None: a random one.
    pub token: Option<String>,
}

/// The folder of the findings store: the one given, or a temporary one removed when dropped.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn new(given: Option<PathBuf>) -> anyhow::Result<DataDir> {
        let (path, temporary) = match given {
            Some(p) => (p, false),
            None => (
                std::env::temp_dir().join(format!(
                    "liyu-demo-{}-{}",
                    std::process::id(),
                    &liyu::web::random_id()[..8]
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create the folder {}", path.display()))?;
        Ok(DataDir { path, temporary })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn bind(port: u16, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} ({what})"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    // The addresses are what the demo has to say; liyu's own logs only when something is wrong.
    serve::init_logging("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let data = DataDir::new(options.data)?;
        let [chat_port, proxy_port, admin_port] = options.ports;
        let (chat, chat_addr) = bind(chat_port, "chat backend").await?;
        let (proxy, proxy_addr) = bind(proxy_port, "proxy").await?;
        let (admin, admin_addr) = bind(admin_port, "dashboard").await?;
        let token = options.token.unwrap_or_else(liyu::web::random_id);
        let store = data.path.join("liyu-demo.db");
        let settings = demo::Settings {
            mode: options.mode,
            chat: chat_addr,
            proxy: proxy_addr,
            admin: admin_addr,
            token: token.clone(),
            store_url: format!("sqlite:{}", store.display()),
            nudge_after: options.nudge_after,
        };
        let config = demo::config(&settings)
            .map_err(|e| anyhow::anyhow!("the demo's configuration is invalid:\n{e}"))?;
        let state =
            State::new(config).map_err(|e| anyhow::anyhow!("cannot load the lexicons:\n{e}"))?;

        let hub = hub::Hub::new(hub::Settings {
            mode: options.mode,
            liyu: format!("http://{admin_addr}"),
        });
        let (stop_backend, mut backend_stopped) = watch::channel(false);
        let backend = tokio::spawn(hub::run(chat, hub, async move {
            let _ = backend_stopped.wait_for(|s| *s).await;
        }));
        let running = serve::start(state, proxy, Some(admin)).await?;

        let (mode, other) = match options.mode {
            Mode::Annotate => ("annotate", "--mode block shows blocking"),
            Mode::Block => ("block", "messages with a block finding are held back"),
        };
        let kept = if data.temporary {
            "removed on exit; --data DIR keeps it"
        } else {
            "kept"
        };
        println!("礼语 liyu demo, {mode} mode ({other})");
        println!();
        println!("  Customer page   http://{chat_addr}/");
        println!("  Agent console   http://{proxy_addr}/agent");
        println!("  Dashboard       http://{admin_addr}/login#token={token}");
        println!("                  token: {token}");
        println!();
        println!("Findings store: {} ({kept}).", store.display());
        println!(
            "Open the customer page and the agent console side by side. Ctrl-C stops everything."
        );

        serve::shutdown_signal().await;
        println!("Stopping…");
        running.stop().await;
        let _ = stop_backend.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), backend).await;
        drop(data);
        println!("Stopped.");
        Ok(ExitCode::SUCCESS)
    })
}
