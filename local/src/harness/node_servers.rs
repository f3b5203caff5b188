//! Servers of the AWS APIs written for Node.js that answer requests in parallel (moto
//! answers one at a time), for the stack, tests and benchmarks that measure throughput:
//!
//! - dynalite (DynamoDB). It does not return the old item when a condition fails
//!   (`ReturnValuesOnConditionCheckFailure` is accepted and ignored), as some
//!   DynamoDB-compatible servers do not.
//! - kinesalite (Kinesis Data Streams): about ten times the `PutRecords` throughput of
//!   moto's Kinesis, whose cost per put grows with the records in the shard.
//!
//! Installed (pinned) with npm into the state folder on first use, like moto; both keep
//! their data in memory and listen on loopback only.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::harness::emulator::{EmulatorError, free_port, io, wait_until_ready};
use crate::harness::progress::Step;

/// The dynalite release installed.
pub const DYNALITE_VERSION: &str = "4.0.0";

/// The kinesalite release installed.
pub const KINESALITE_VERSION: &str = "3.3.3";

/// Lock file (in the package's folder) held while the package is installed: one per
/// package, so that the stack installs both at once.
const LOCK_FILE: &str = ".lock";

/// Log of the installs, in the state folder.
const LOG_FILE: &str = "node-install.log";

/// A server installed from npm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeServerKind {
    /// dynalite: DynamoDB.
    Dynalite,
    /// kinesalite: Kinesis Data Streams.
    Kinesalite,
}

impl NodeServerKind {
    fn package(self) -> (&'static str, &'static str) {
        match self {
            Self::Dynalite => ("dynalite", DYNALITE_VERSION),
            Self::Kinesalite => ("kinesalite", KINESALITE_VERSION),
        }
    }

    /// The script that starts the server on `port`, loopback only, resources created,
    /// changed and deleted at once.
    fn launcher(self, module: &Path, port: u16) -> String {
        let options = match self {
            Self::Dynalite => "{createTableMs: 0, deleteTableMs: 0, updateTableMs: 0}",
            Self::Kinesalite => {
                "{createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000}"
            }
        };
        let module =
            serde_json::to_string(&module.display().to_string()).expect("a string serializes");
        format!("require({module})({options}).listen({port}, '127.0.0.1')")
    }
}

/// A running Node.js server, stopped when dropped.
#[derive(Debug)]
pub struct NodeServer {
    endpoint: String,
    _child: Child,
}

impl NodeServer {
    /// `kind` installed under `state_dir` (in memory, resources created at once), started
    /// on a free loopback port with its log in `log_dir`.
    pub async fn start(
        kind: NodeServerKind,
        state_dir: &Path,
        log_dir: &Path,
    ) -> Result<Self, EmulatorError> {
        let (name, _) = kind.package();
        let module = ensure_installed(kind, state_dir).await?;
        let port = free_port().map_err(io("finding a free port"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let log_path = log_dir.join(format!("{name}-{port}.log"));
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let mut child = Command::new("node")
            .arg("-e")
            .arg(kind.launcher(&module, port))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(io(format!("opening the {name} log")))?,
            )
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {name} with node (Node.js is needed)")))?;
        let listening = || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
        wait_until_ready(&mut child, &endpoint, &log_path, listening).await?;
        tracing::info!(%endpoint, "{name} is ready");
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

/// Whether `node` and `npm` can be run (the servers here need both).
pub fn node_available() -> bool {
    let runs = |program: &str| {
        std::process::Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    runs("node") && runs("npm")
}

/// The package's folder (what `require` loads), installing it with npm under
/// `state_dir` when missing.
async fn ensure_installed(
    kind: NodeServerKind,
    state_dir: &Path,
) -> Result<PathBuf, EmulatorError> {
    let (name, version) = kind.package();
    let dir = state_dir.join(format!("{name}-{version}"));
    let module = dir.join("node_modules").join(name);
    let marker = dir.join(".installed");
    if marker.exists() {
        return Ok(module);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let lock = File::create(dir.join(LOCK_FILE)).map_err(io("creating the install lock"))?;
    let _lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("lock task does not panic")
        .map_err(io("taking the install lock"))?;
    if marker.exists() {
        return Ok(module);
    }
    let log_path = state_dir.join(LOG_FILE);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(format!("opening {}", log_path.display())))?;
    let _installing = Step::start(
        format!("installing {name} {version} with npm"),
        "first run only",
    );
    let status = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!("{name}@{version}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("opening the install log"))?)
        .stderr(log)
        .status()
        .await
        .map_err(io(format!(
            "running npm (Node.js and npm are needed for {name})"
        )))?;
    if !status.success() || !module.join("package.json").is_file() {
        return Err(EmulatorError::Start {
            endpoint: String::new(),
            reason: format!("npm install {name}@{version} failed ({status})"),
            log: log_path.display().to_string(),
        });
    }
    File::create(&marker).map_err(io(format!("creating {}", marker.display())))?;
    Ok(module)
}
