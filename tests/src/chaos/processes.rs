//! The processes of a chaos run: a broker (the embedded one standalone, or a private
//! Mosquitto), the hub and one agent per simulated cluster, each a real child process so
//! that SIGKILL, SIGSTOP and SIGCONT are real.
//!
//! Every child is killed when its [`Proc`] is dropped (also while a failing test
//! unwinds) and, should the test process itself die, by the kernel
//! (`PR_SET_PDEATHSIG`). Output goes to one log file per process in the run directory,
//! appended across restarts with a marker line per start.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One child process that can be started again after it was killed.
pub struct Proc {
    /// Short name used in reports (`hub`, `broker`, `agent-2`).
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
    paused: bool,
    /// When the last SIGTERM was sent.
    termed: Option<Instant>,
    /// `RUST_LOG` of the process (`WORKBUS_CHAOS_CHILD_LOG` overrides it).
    rust_log: String,
}

impl Proc {
    /// A process description; nothing runs until [`Proc::start`].
    pub fn new(name: &str, program: &Path, args: Vec<String>, log: PathBuf) -> Proc {
        Proc {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            log,
            child: None,
            starts: 0,
            paused: false,
            termed: None,
            rust_log: "info".into(),
        }
    }

    /// Sets the process's log filter (default `info`).
    pub fn with_log(mut self, filter: &str) -> Proc {
        self.rust_log = filter.to_string();
        self
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Starts the process (it must not be running).
    pub fn start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let _ = writeln!(
            log,
            "==== chaos: start #{} of {} at {} ====",
            self.starts,
            self.name,
            chrono::Utc::now().to_rfc3339()
        );
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("WORKBUS_CHAOS_CHILD_LOG").unwrap_or_else(|_| self.rust_log.clone()),
            );
        // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({}): {e}",
                self.name,
                self.program.display()
            )
        })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// The pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid; it stays reserved until reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL and reap; nothing when not running.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, then waits up to `grace` for the exit. Returns `Err` (after a SIGKILL)
    /// when the process did not exit in time.
    pub async fn terminate(&mut self, grace: Duration) -> Result<(), String> {
        self.term();
        self.wait_exit(Instant::now() + grace).await
    }

    /// Sends SIGTERM (continuing a paused process first).
    pub fn term(&mut self) {
        if self.paused {
            self.resume();
        }
        self.signal(libc::SIGTERM);
        self.termed = Some(Instant::now());
    }

    /// Waits until the process exited, at most until `deadline`; then SIGKILL and
    /// `Err`.
    pub async fn wait_exit(&mut self, deadline: Instant) -> Result<(), String> {
        while let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    return Ok(());
                }
                Ok(None) if Instant::now() >= deadline => {
                    self.kill9();
                    return Err(format!(
                        "{} did not exit within {:?} of SIGTERM (killed)",
                        self.name,
                        self.termed.map(|t| t.elapsed()).unwrap_or_default()
                    ));
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(())
    }

    /// SIGSTOP: the process keeps its sockets but does nothing (no keep-alive pings).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = self.child.is_some();
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// `Some(status)` when the process exited on its own (it was started and not killed
    /// by us); the handle is cleared so it can be started again.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// True while started (and not killed by us).
    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on {addr} after {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
