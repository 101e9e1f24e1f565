//! `liyu serve` as its own process, for what only the real binary shows: its logs, its memory, its
//! answer to SIGTERM, its lexicon watcher. Ports are 0; the addresses are read from its log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::TOKEN;

/// A running `liyu serve`.
pub struct Served {
    child: Child,
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// Everything it wrote to stderr so far (its log), ANSI colours removed.
    log: Arc<Mutex<String>>,
    /// Its temporary directory (config, store).
    pub dir: PathBuf,
}

/// A fresh directory for one process's files.
pub fn temp_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "liyu-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Served {
    /// Starts `liyu serve` in front of `upstream` with an admin listener (token [`TOKEN`]) and a
    /// SQLite store in its own directory. `extra` is appended to the config (sections, messages);
    /// `proxy_extra` goes into `[proxy]`; `rust_log` sets `RUST_LOG`.
    pub fn start(
        upstream: &str,
        proxy_extra: &str,
        extra: &str,
        rust_log: &str,
        dir: PathBuf,
    ) -> Served {
        let config = format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nconnect_timeout = \"2s\"\n{proxy_extra}\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\n\n\
             [store]\nurl = \"sqlite:{}\"\n\n{extra}",
            dir.join("findings.db").display()
        );
        let path = dir.join("liyu.toml");
        std::fs::write(&path, &config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_liyu"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .env_remove("LIYU_ADMIN_TOKENS")
            .env_remove("LIYU_STORE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("liyu serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Read the log on a thread until the process ends: a full pipe would block liyu.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                if let Some(addr) = addr {
                    let admin = line.contains("admin API");
                    let _ = addr_tx.send((admin, addr));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (mut proxy, mut admin) = (None, None);
        while proxy.is_none() || admin.is_none() {
            match addr_rx.recv_timeout(Duration::from_secs(30)) {
                Ok((true, a)) => admin = Some(a),
                Ok((false, a)) => proxy = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "liyu serve did not report its addresses:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        }
        Served {
            child,
            proxy: proxy.unwrap(),
            admin: admin.unwrap(),
            log,
            dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until its log contains `what`.
    pub async fn wait_for_log(&self, what: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(what) {
            assert!(
                start.elapsed() < limit,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "SIGTERM delivered");
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "liyu did not exit in {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory in KiB: (all, anonymous). Anonymous memory is the heap: what a leak grows.
    /// File-backed pages (the binary, SQLite's memory map of a growing database) are the kernel's to
    /// drop and are left out of "anonymous".
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("RssAnon:"))
    }

    /// A counter or gauge from its `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        metric(self.admin, name).await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A metric from the admin listener at `admin` (0 when absent).
pub async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let (status, _, body) = crate::api::call(admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
