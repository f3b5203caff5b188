//! dynalite: an implementation of the DynamoDB API on Node.js that serves requests in
//! parallel (moto answers one at a time), for the tests and benchmarks that measure or
//! check the consumer against a second DynamoDB. It does not return the old item when a
//! condition fails (`ReturnValuesOnConditionCheckFailure` is accepted and ignored), as
//! some DynamoDB-compatible servers do not.
//!
//! Installed (pinned) with npm into the state folder on first use, like moto.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::harness::emulator::{EmulatorError, free_port, io, wait_until_ready};

/// The dynalite release installed.
pub const DYNALITE_VERSION: &str = "4.0.0";

/// Lock file (in the state folder) held while dynalite is installed.
const LOCK_FILE: &str = "node-tools.lock";

/// Log of the installs, in the state folder.
const LOG_FILE: &str = "node-install.log";

/// A running dynalite, stopped when dropped.
#[derive(Debug)]
pub struct Dynalite {
    endpoint: String,
    _child: Child,
}

impl Dynalite {
    /// dynalite installed under `state_dir` (in memory, tables created at once), started
    /// on a free loopback port with its log in `log_dir`.
    pub async fn start(state_dir: &Path, log_dir: &Path) -> Result<Self, EmulatorError> {
        let cli = ensure_dynalite(state_dir).await?;
        let port = free_port().map_err(io("finding a free port"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let log_path = log_dir.join(format!("dynalite-{port}.log"));
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let mut child = Command::new("node")
            .arg(&cli)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("opening the dynalite log"))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io("starting dynalite with node (Node.js is needed)"))?;
        let listening = || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
        wait_until_ready(&mut child, &endpoint, &log_path, listening).await?;
        tracing::info!(%endpoint, "dynalite is ready");
        Ok(Self {
            endpoint,
            _child: child,
        })
    }

    /// The endpoint URL clients talk to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// dynalite's command-line entry, installing it with npm under `state_dir` when missing.
async fn ensure_dynalite(state_dir: &Path) -> Result<PathBuf, EmulatorError> {
    let dir = state_dir.join(format!("dynalite-{DYNALITE_VERSION}"));
    let cli = dir.join("node_modules/dynalite/cli.js");
    let marker = dir.join(".installed");
    if marker.exists() {
        return Ok(cli);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let lock = File::create(state_dir.join(LOCK_FILE)).map_err(io("creating the install lock"))?;
    let _lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("lock task does not panic")
        .map_err(io("taking the install lock"))?;
    if marker.exists() {
        return Ok(cli);
    }
    let log_path = state_dir.join(LOG_FILE);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(format!("opening {}", log_path.display())))?;
    eprintln!("streamlake: installing dynalite {DYNALITE_VERSION} with npm (first run only)");
    let status = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!("dynalite@{DYNALITE_VERSION}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("opening the install log"))?)
        .stderr(log)
        .status()
        .await
        .map_err(io("running npm (Node.js and npm are needed for dynalite)"))?;
    if !status.success() || !cli.is_file() {
        return Err(EmulatorError::Start {
            endpoint: String::new(),
            reason: format!("npm install dynalite@{DYNALITE_VERSION} failed ({status})"),
            log: log_path.display().to_string(),
        });
    }
    File::create(&marker).map_err(io(format!("creating {}", marker.display())))?;
    Ok(cli)
}
