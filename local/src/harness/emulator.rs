//! The AWS emulator: moto in server mode, installed and started on demand.
//!
//! When `AWS_ENDPOINT_URL` is set, that emulator is used as is. Otherwise moto (pinned)
//! is installed into a virtualenv under the state directory on first use, started on a
//! free loopback port, and stopped when the [`Emulator`] is dropped. It never outlives the
//! process that started it, even one killed with SIGKILL ([`LAUNCHER`]).
//!
//! A moto server whose owner stopped it is reset (every service's data gone) and kept for
//! the next [`Emulator::start`] of the same process: starting moto and answering the first
//! call of each service take about 1.3 s of CPU, and the end-to-end tests start some fifty
//! stacks in one process. A program that starts one stack never reuses one.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::harness::python::{self, InstallError};

/// The moto release the local stack installs.
pub const MOTO_VERSION: &str = "5.2.5";

/// How long installing moto took on first runs here (2 cores, PyPI over the network).
const INSTALL_TAKES: &str = "about 10 s, first run only";

/// How long a started server (moto, dynalite) may take to answer. moto answers within 2 s
/// on an idle machine;
/// with the end-to-end tests starting sixteen of them beside their Lambdas on two cores,
/// one took more than 30 s (CI, 2026-11-24), so the wait is generous: a server that never
/// answers is still reported, only later.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// How long one readiness probe may wait for an answer before it counts as "not yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs moto's server (its arguments after the script's), and ends it when the process
/// that started it is gone: a stack killed with SIGKILL, or a process ending with reset
/// servers kept for reuse, leaves no moto behind.
const LAUNCHER: &str = r#"
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
sys.exit(main(sys.argv[1:]))
"#;

/// A running (or external) emulator.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    child: Option<Child>,
    /// Whether it is a local emulator that accepts any credentials (so the stack signs
    /// with a placeholder key instead of looking for real credentials).
    local: bool,
}

/// moto servers this process started whose owners stopped them, reset, for the next
/// [`Emulator::start`].
static IDLE: std::sync::Mutex<Vec<(String, Child)>> = std::sync::Mutex::new(Vec::new());

/// Failure to provide an emulator.
#[derive(Debug, Error)]
pub enum EmulatorError {
    /// Python could not create the virtualenv or install moto.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The server did not start or did not answer.
    #[error("moto did not start on {endpoint}: {reason} (see {log})")]
    Start {
        /// Where it should answer.
        endpoint: String,
        /// What went wrong.
        reason: String,
        /// The server's log.
        log: String,
    },
    /// A local file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Maps an I/O error to [`EmulatorError::Io`] with what was being done.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmulatorError {
    let context = context.into();
    move |source| EmulatorError::Io { context, source }
}

impl Emulator {
    /// The emulator named by `AWS_ENDPOINT_URL`, or moto installed under `state_dir` and
    /// started with its log in `log_dir`.
    pub async fn start(state_dir: &Path, log_dir: &Path) -> Result<Self, EmulatorError> {
        if let Some(endpoint) = Self::named_by_environment() {
            tracing::info!(%endpoint, "using the emulator named by AWS_ENDPOINT_URL");
            // An emulator on this machine, with no credentials configured, gets the
            // placeholder key; anything else uses the standard configuration.
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| endpoint.starts_with(p));
            let local = loopback && std::env::var_os("AWS_ACCESS_KEY_ID").is_none();
            return Ok(Self {
                endpoint,
                child: None,
                local,
            });
        }
        if let Some(reused) = Self::idle() {
            return Ok(reused);
        }
        let python = ensure_moto(state_dir).await?;
        let port = free_port().map_err(io("finding a free port"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let log_path = log_dir.join(format!("moto-{port}.log"));
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let mut child = Command::new(&python)
            .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove(python::BYTECODE)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("opening the moto log"))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting moto with {}", python.display())))?;
        wait_until_ready(&mut child, &endpoint, &log_path, || ready(port)).await?;
        tracing::info!(%endpoint, "moto is ready");
        Ok(Self {
            endpoint,
            child: Some(child),
            local: true,
        })
    }

    /// The emulator `AWS_ENDPOINT_URL` names, which [`Emulator::start`] uses instead of
    /// starting one.
    pub fn named_by_environment() -> Option<String> {
        std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty())
    }

    /// A local emulator (accepting any credentials) that another owner runs at `endpoint`.
    pub fn shared(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            child: None,
            local: true,
        }
    }

    /// The endpoint URL clients talk to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether it is a local emulator that accepts any credentials.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Whether this process started it (its data then lives and dies with the stack).
    pub fn is_owned(&self) -> bool {
        self.child.is_some()
    }

    /// A moto server an earlier owner stopped, if one is still running.
    fn idle() -> Option<Self> {
        let mut idle = IDLE.lock().expect("not poisoned");
        while let Some((endpoint, mut child)) = idle.pop() {
            if child.try_wait().is_ok_and(|exited| exited.is_none()) {
                tracing::info!(%endpoint, "moto is ready (reset and reused; its log is its first run's)");
                return Some(Self {
                    endpoint,
                    child: Some(child),
                    local: true,
                });
            }
        }
        None
    }

    /// Stops the emulator if this process started it: its data is gone, and the server
    /// waits, reset, for this process's next [`Emulator::start`] (or ends, if it cannot be
    /// reset).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if reset(&self.endpoint).await {
                IDLE.lock()
                    .expect("not poisoned")
                    .push((self.endpoint.clone(), child));
            } else {
                let _ = child.start_kill();
            }
        }
    }

    /// Ends the emulator if this process started it, as a crash would: it is never
    /// reused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

/// Waits until `ready` says the server just started as `child` (at `endpoint`, logging to
/// `log`) answers; fails when it exits first or [`READY_WITHIN`] passes.
pub(crate) async fn wait_until_ready<F: Future<Output = bool>>(
    child: &mut Child,
    endpoint: &str,
    log: &Path,
    mut ready: impl FnMut() -> F,
) -> Result<(), EmulatorError> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        // Ready, and from our own process: a server that could not bind its port exits,
        // and the answer came from whoever holds the port.
        if ready().await && child.try_wait().is_ok_and(|s| s.is_none()) {
            return Ok(());
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            return Err(EmulatorError::Start {
                endpoint: endpoint.to_owned(),
                reason: exited.map_or_else(
                    || format!("no answer within {} s", READY_WITHIN.as_secs()),
                    |s| format!("exited with {s}"),
                ),
                log: log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port for a server this process starts (moto, dynalite): nobody listens on
/// it right now, and this process has not handed it out before.
///
/// It is taken below the kernel's ephemeral range: the ports the kernel picks by itself
/// (a bind to port 0, the local end of an outgoing connection) come from that range, so
/// a port from it could be taken by the stack's own sockets between this check and the
/// server's bind (seen: moto exiting with "Address already in use", CI 2026-12-04).
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let below = ephemeral_range_start().clamp(10_000, 32_768);
    loop {
        let port = fastrand::u16(5_000..below);
        let free = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => false,
            Err(e) => return Err(e),
        };
        if free && GIVEN.lock().expect("not poisoned").insert(port) {
            return Ok(port);
        }
    }
}

/// The first port of the kernel's ephemeral range (Linux's default where it cannot be
/// read; macOS's starts higher, at 49152).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Whether moto answers `GET /moto-api/` with a success status within [`PROBE_TIMEOUT`].
async fn ready(port: u16) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, probe(port))
        .await
        .unwrap_or(false)
}

async fn probe(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.") && head[9] == b'2'
}

/// Resets every service of the moto at `endpoint` (`POST /moto-api/reset`); whether it
/// said it did.
async fn reset(endpoint: &str) -> bool {
    let Some(address) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let answer = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request = format!(
            "POST /moto-api/reset HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && head[9] == b'2')
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, answer).await,
        Ok(Some(true))
    )
}

/// The Python of moto's virtualenv, installing moto into it under `state_dir` when it is
/// missing.
async fn ensure_moto(state_dir: &Path) -> Result<PathBuf, EmulatorError> {
    let venv = python::ensure_venv(
        state_dir,
        &format!("moto-{MOTO_VERSION}"),
        &[&format!("moto[server]=={MOTO_VERSION}")],
        &format!("installing the AWS emulator (moto {MOTO_VERSION})"),
        INSTALL_TAKES,
    )
    .await?;
    Ok(venv.join("bin").join("python"))
}
