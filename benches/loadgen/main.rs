//! What does liyu cost in the path of every chat message, next to forwarding alone and next to nginx?
//!
//! The proxy half of the benchmarks (the checker half is `benches/checker.rs`): a load generator of
//! tokio-tungstenite clients, an echo upstream, and a suite that runs four set-ups on this machine in
//! one run (direct to the echo; liyu forwarding; liyu checking; nginx) at 1, 100 and 1,000
//! connections, then idle memory per session and liyu's start-up time, and prints one table.
//! `benches/run.sh` builds everything and runs it with the checker's figures.
//!
//! ```text
//! cargo bench --bench loadgen -- suite [--quick] [--nginx /usr/sbin/nginx]
//! cargo bench --bench loadgen -- echo --listen 127.0.0.1:9000
//! cargo bench --bench loadgen -- drive --url ws://127.0.0.1:8080/chat --conns 100 --secs 20 [--rate 5000] [--pid PID]
//! ```
//!
//! `drive` loads one set-up for as long as a profiler needs.

mod client;
mod echo;
mod procs;
mod suite;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", about = "liyu's proxy benchmarks")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The WebSocket echo upstream; prints its address, serves until killed.
    Echo {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Runtime threads (1: a current-thread runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Every set-up, every connection count, memory and start-up; prints the tables.
    Suite(suite::Options),
    /// Loads one set-up: closed loop (saturation), or open loop with --rate.
    Drive {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        conns: usize,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Frames per second in total (open loop); without it, closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Frames in flight per connection (closed loop).
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// A process (and its children) whose CPU time to report per message.
        #[arg(long)]
        pid: Vec<u32>,
    },
}

fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(args: Args) -> Result<(), String> {
    match args.command {
        Cmd::Echo { listen, threads } => echo::run(listen, threads),
        Cmd::Suite(mut options) => {
            options.nginx = options.nginx.or_else(|| which("nginx"));
            if options.nginx.is_none() {
                eprintln!(
                    "loadgen: no nginx found; its rows are left out (benches/run.sh installs it)"
                );
            }
            client_runtime()?.block_on(suite::run(options))
        }
        Cmd::Drive {
            url,
            conns,
            secs,
            rate,
            in_flight,
            pid,
        } => client_runtime()?.block_on(async move {
            procs::raise_nofile();
            let frames = Arc::new(client::Frames::load()?);
            let ws = client::connect_many(&url, conns, 64).await?;
            let load = match rate {
                Some(rate) => client::Load::Open { rate },
                None => client::Load::Closed { in_flight },
            };
            let pids: Vec<u32> = pid
                .iter()
                .flat_map(|p| std::iter::once(*p).chain(procs::children(*p)))
                .collect();
            let (_, r) = client::run(
                ws,
                &frames,
                load,
                Duration::from_millis(500),
                Duration::from_secs_f64(secs),
                &pids,
            )
            .await;
            println!(
                "{:.0} msg/s, {} echoed, {} unanswered, {} errors{}",
                r.per_sec,
                r.completed,
                r.unanswered,
                r.errors.len(),
                r.cpu_per_msg()
                    .map_or(String::new(), |c| format!(", {c:.1} CPU-µs/msg"))
            );
            if !r.latencies_us.is_empty() {
                println!(
                    "latency µs: p50 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0}",
                    r.quantile(0.5).unwrap_or(0.0),
                    r.quantile(0.99).unwrap_or(0.0),
                    r.quantile(0.999).unwrap_or(0.0),
                    r.quantile(1.0).unwrap_or(0.0)
                );
            }
            Ok(())
        }),
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` to every bench binary; it means nothing here.
    let argv: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if argv.len() == 1 {
        eprintln!(
            "loadgen: nothing to do without a subcommand (the proxy suite takes minutes); \
             run benches/run.sh, or cargo bench --bench loadgen -- suite --quick"
        );
        return ExitCode::SUCCESS;
    }
    match run(Args::parse_from(argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
