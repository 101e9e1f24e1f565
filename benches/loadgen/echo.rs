//! The upstream of every set-up: a WebSocket server that sends each text or binary frame back.
//!
//! It runs as a process of its own so that the proxy's CPU time can be read apart from it, and it is
//! the same process for all four set-ups (direct, both liyu configurations, nginx), so whatever it
//! costs, it costs each of them alike.

use std::io::Write;
use std::net::SocketAddr;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::client::ws_config;

/// Serves until killed. Prints the bound address on the first line of stdout.
pub fn run(listen: SocketAddr, threads: usize) -> Result<(), String> {
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{addr}");
        let _ = out.flush();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => {
                    // Out of descriptors: let connections close instead of spinning.
                    eprintln!("echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    })
}

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    while let Some(Ok(first)) = ws.next().await {
        let mut next = Some(first);
        // Echo everything already received in one write: the echo should never be the bottleneck.
        while let Some(msg) = next.take() {
            let fed = match msg {
                Message::Text(_) | Message::Binary(_) => ws.feed(msg).await,
                Message::Close(_) => {
                    let _ = ws.close(None).await;
                    return;
                }
                _ => Ok(()),
            };
            if fed.is_err() {
                return;
            }
            next = match ws.next().now_or_never() {
                Some(Some(Ok(m))) => Some(m),
                Some(_) => return,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
