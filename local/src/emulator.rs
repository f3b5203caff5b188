//! The AWS emulator: moto in server mode, installed and started on demand.
//!
//! When `AWS_ENDPOINT_URL` is set, that emulator is used as is. Otherwise moto (pinned)
//! is installed into a virtualenv under the state directory on first use, started on a
//! free loopback port, and stopped when the [`Emulator`] is dropped.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::progress::Step;

/// The moto release the local stack installs.
pub const MOTO_VERSION: &str = "5.2.5";

/// How long installing moto took on first runs here (2 cores, PyPI over the network).
const INSTALL_TAKES: &str = "about a minute, first run only";

/// A running (or external) emulator.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    child: Option<Child>,
    /// Whether it is a local emulator that accepts any credentials (so the stack signs
    /// with a placeholder key instead of looking for real credentials).
    local: bool,
}

/// Failure to provide an emulator.
#[derive(Debug, Error)]
pub enum EmulatorError {
    /// Python could not create the virtualenv or install moto.
    #[error("installing moto {MOTO_VERSION} into {venv} failed: {reason} (see {log})")]
    Install {
        /// Virtualenv folder.
        venv: String,
        /// What failed.
        reason: String,
        /// Log of the installation.
        log: String,
    },
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

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmulatorError {
    let context = context.into();
    move |source| EmulatorError::Io { context, source }
}

impl Emulator {
    /// The emulator named by `AWS_ENDPOINT_URL`, or moto installed under `state_dir` and
    /// started with its log in `log_dir`.
    pub async fn start(state_dir: &Path, log_dir: &Path) -> Result<Self, EmulatorError> {
        if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty())
        {
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
        let server = ensure_moto(state_dir).await?;
        let port = free_port().map_err(io("finding a free port"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let log_path = log_dir.join(format!("moto-{port}.log"));
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("opening the moto log"))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", server.display())))?;
        let mut emulator = Self {
            endpoint: endpoint.clone(),
            child: Some(child),
            local: true,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready(port).await {
                tracing::info!(%endpoint, "moto is ready");
                return Ok(emulator);
            }
            let exited = emulator
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return Err(EmulatorError::Start {
                    endpoint,
                    reason: exited.map_or("no answer within 30 s".into(), |s| {
                        format!("exited with {s}")
                    }),
                    log: log_path.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Stops the emulator if this process started it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// Installs a requirement with pip run from its wheel (no pip installed): the wheel is
/// fetched from PyPI with the standard library.
const PIP_BOOTSTRAP: &str = r#"
import json, os, runpy, sys, tempfile, urllib.parse, urllib.request
index = "https://pypi.org/pypi/pip/json"
meta = json.load(urllib.request.urlopen(index))
url = next(u["url"] for u in meta["urls"] if u["filename"].endswith(".whl"))
url = urllib.parse.urljoin(index, url)
wheel = os.path.join(tempfile.mkdtemp(), url.rsplit("/", 1)[1])
urllib.request.urlretrieve(url, wheel)
sys.path.insert(0, wheel)
sys.argv = ["pip", "install", sys.argv[1]]
runpy.run_module("pip", run_name="__main__")
"#;

/// Runs a program to completion, its output appended to `log`; each line it prints
/// becomes the detail of `step`.
async fn run_logged(program: &str, args: &[&str], log: &Path, step: &Step) -> Result<(), String> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let stderr = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut file = tokio::fs::File::from_std(file);
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        file.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        // pip's steps ("Collecting ...", "Installing ..."), not its progress bars.
        let line = line.trim();
        if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            step.set_detail(line.chars().take(80).collect::<String>());
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` exited with {status}",
            args.join(" ")
        ))
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Whether moto answers `GET /moto-api/` with a success status.
async fn ready(port: u16) -> bool {
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

/// The `moto_server` executable, installing moto into a virtualenv under `state_dir` when
/// it is missing. A file lock keeps concurrent starts from installing twice.
async fn ensure_moto(state_dir: &Path) -> Result<PathBuf, EmulatorError> {
    let venv = state_dir.join(format!("moto-{MOTO_VERSION}"));
    let server = venv.join("bin").join("moto_server");
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(server);
    }
    fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
    let lock_path = state_dir.join("moto-install.lock");
    let lock = File::create(&lock_path).map_err(io(format!("creating {}", lock_path.display())))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("lock task does not panic")
        .map_err(io("waiting for the moto install lock"))?;
    if marker.exists() {
        return Ok(server);
    }
    let step = Step::start(
        format!("installing the AWS emulator (moto {MOTO_VERSION})"),
        INSTALL_TAKES,
    );
    let log_path = state_dir.join("moto-install.log");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let fail = |reason: String| EmulatorError::Install {
        venv: venv.display().to_string(),
        reason,
        log: log_path.display().to_string(),
    };
    let requirement = format!("moto[server]=={MOTO_VERSION}");
    let venv_arg = venv.display().to_string();
    let bin = |name: &str| venv.join("bin").join(name).display().to_string();
    let with_pip = match run_logged(&python, &["-m", "venv", &venv_arg], &log_path, &step).await {
        Ok(()) => run_logged(&bin("pip"), &["install", &requirement], &log_path, &step).await,
        Err(e) => Err(e),
    };
    if let Err(first) = with_pip {
        // Python without ensurepip (Debian's python3 without python3-venv): make the
        // virtualenv without pip, and run pip from its wheel, fetched from PyPI.
        tracing::info!("a virtualenv with pip failed ({first}); bootstrapping pip from PyPI");
        let venv_without_pip = ["-m", "venv", "--clear", "--without-pip", &venv_arg];
        run_logged(&python, &venv_without_pip, &log_path, &step)
            .await
            .map_err(|e| fail(format!("{first}; then {e}")))?;
        run_logged(
            &bin("python"),
            &["-c", PIP_BOOTSTRAP, &requirement],
            &log_path,
            &step,
        )
        .await
        .map_err(|e| fail(format!("{first}; then {e}")))?;
    }
    File::create(&marker).map_err(io(format!("creating {}", marker.display())))?;
    drop(lock);
    Ok(server)
}
