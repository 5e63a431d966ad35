//! # workbus-testkit: what every test crate needs and none should own
//!
//! [`mosquitto`] gives each test process its own Mosquitto broker on a free loopback
//! port, started on first use and killed by the kernel when the process ends. The test
//! command therefore needs no broker service running (only the `mosquitto` executable,
//! which `.ci/run` installs), and test runs never see each other's traffic.
//!
//! It depends on no workspace crate, so the transport, agent, hub and integration test
//! crates can all use it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A private Mosquitto broker of this process.
#[derive(Debug, Clone, Copy)]
pub struct Mosquitto {
    addr: SocketAddr,
    pid: u32,
}

impl Mosquitto {
    /// Host to connect to (loopback).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (for CPU readings in benchmarks).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// This process's Mosquitto, started on the first call. Panics with what to install
/// when no `mosquitto` executable is found (`$WORKBUS_MOSQUITTO`, `PATH`, `/usr/sbin`).
pub fn mosquitto() -> Mosquitto {
    static BROKER: OnceLock<Mosquitto> = OnceLock::new();
    *BROKER.get_or_init(|| start_mosquitto().unwrap_or_else(|e| panic!("{e}")))
}

/// The Mosquitto executable.
pub fn mosquitto_program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WORKBUS_MOSQUITTO") {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "mosquitto not found (PATH, /usr/sbin): install it (`apt-get install mosquitto`, \
             as .ci/run does) or set WORKBUS_MOSQUITTO"
                .to_string()
        })
}

fn start_mosquitto() -> Result<Mosquitto, String> {
    let program = mosquitto_program()?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let dir = std::env::temp_dir().join(format!("workbus-mosquitto-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("mosquitto.conf");
    // Anonymous on loopback, no persistence (OCM clients use clean sessions).
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;

    // The broker must die with this process, however it ends. PR_SET_PDEATHSIG fires
    // when the *thread* that spawned the child exits, so a thread that never exits
    // spawns it and then keeps it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("private-mosquitto".into())
        .spawn(move || {
            let mut command = Command::new(&program);
            command
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe and touches only the child's own state.
            unsafe {
                use std::os::unix::process::CommandExt;
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            match command.spawn() {
                Ok(child) => {
                    let _ = tx.send(Ok(child.id()));
                    let _keep = child;
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start {}: {e}", program.display())));
                }
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let pid = rx
        .recv()
        .map_err(|_| "the Mosquitto starter thread died".to_string())??;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "private Mosquitto (pid {pid}) not listening on {addr} within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Mosquitto { addr, pid })
}
