//! The processes under test (the echo upstream, liyu, nginx) and what /proc says about them.
//!
//! CPU time is read from `/proc/PID/stat` (utime + stime, every thread, in clock ticks) and memory
//! from `/proc/PID/status` (VmRSS). nginx is a master and its workers, so a process is always read
//! together with its children.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd`, its stderr (and stdout unless `keep_stdout`) going to `log`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        keep_stdout: bool,
    ) -> Result<Proc, String> {
        let file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stderr(err);
        if keep_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(file);
        }
        // SAFETY: between fork and exec only async-signal-safe calls: prctl. A child of a load
        // generator that was killed must not keep a port or ten thousand sockets.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its children (nginx's workers).
    pub fn family(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(children(self.pid()));
        pids
    }

    /// The first line of stdout (when spawned with `keep_stdout`).
    pub fn first_line(&mut self) -> Result<String, String> {
        use std::io::BufRead;
        let out = self
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{}: no stdout", self.name))?;
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", self.name))?;
        if line.is_empty() {
            return Err(format!("{} exited before it was ready", self.name));
        }
        Ok(line.trim().to_string())
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        // SAFETY: signalling our own child, whose pid cannot have been reused before it is waited.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            stat_fields(*p).is_some_and(|f| f.get(1).and_then(|s| s.parse().ok()) == Some(pid))
        })
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name: state is [0], ppid [1], utime [11],
/// stime [12].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of all `pids`, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let f = stat_fields(*p)?;
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Microseconds per clock tick.
pub fn us_per_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1e6 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Resident memory of all `pids`, KiB.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// This process's limit on open files (soft, after raising it to the hard limit).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("LIYU_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// liyu's config for the bench: the json-chat framing of `examples/json-chat.toml` when checking,
/// none when forwarding (no frame is decoded at all: liyu is a pure relay).
pub fn liyu_config(dir: &TempDir, name: &str, port: u16, echo_port: u16, check: bool) -> PathBuf {
    let db = dir.path(&format!("{name}.db"));
    let mut text = format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"ws://127.0.0.1:{echo_port}\"\n\
         agent_side = \"client\"\n\n\
         [check]\nmode = \"annotate\"\nchecking = {check}\n\n\
         [store]\nurl = \"sqlite:{}\"\n",
        db.display()
    );
    if check {
        text.push_str(
            "\n[[messages]]\nname = \"chat message\"\nframing = \"json\"\n\
             match = { \"/type\" = \"message\" }\ntext = \"/text\"\n\
             conversation = \"/conversation\"\nsender = \"/sender\"\nmessage_id = \"/id\"\n\n\
             [[messages]]\nname = \"conversation closed\"\nframing = \"json\"\nkind = \"end\"\n\
             match = { \"/type\" = \"conversation.closed\" }\nconversation = \"/conversation\"\n",
        );
    }
    let path = dir.path(&format!("{name}.toml"));
    let _ = std::fs::write(&path, text);
    path
}

/// nginx as a user would put it in front of a WebSocket chat: `proxy_pass` with the Upgrade headers,
/// Debian's defaults for everything else, one worker per core.
pub fn nginx_config(dir: &TempDir, name: &str, port: u16, echo_port: u16) -> PathBuf {
    let d = dir.0.display();
    let text = format!(
        "worker_processes auto;\n\
         pid {d}/{name}.pid;\n\
         events {{ worker_connections 20000; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/{name}-body;\n\
         \x20   proxy_temp_path {d}/{name}-proxy;\n\
         \x20   fastcgi_temp_path {d}/{name}-fastcgi;\n\
         \x20   uwsgi_temp_path {d}/{name}-uwsgi;\n\
         \x20   scgi_temp_path {d}/{name}-scgi;\n\
         \x20   map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://127.0.0.1:{echo_port};\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Upgrade $http_upgrade;\n\
         \x20           proxy_set_header Connection $connection_upgrade;\n\
         \x20           proxy_set_header Host $host;\n\
         \x20           proxy_read_timeout 1h;\n\
         \x20           proxy_send_timeout 1h;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    );
    let path = dir.path(&format!("{name}.conf"));
    let _ = std::fs::write(&path, text);
    path
}

/// The command that starts nginx with `conf`, in the foreground, logging into the bench directory.
pub fn nginx_command(nginx: &Path, dir: &TempDir, name: &str, conf: &Path) -> Command {
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(&dir.0)
        .arg("-e")
        .arg(dir.path(&format!("{name}-error.log")))
        .arg("-c")
        .arg(conf)
        .args(["-g", "daemon off;"]);
    cmd
}
