//! The Python tools the local stack runs (the emulator), each in its own virtualenv under
//! the state folder, installed on first use.
//!
//! Installs go through [uv](https://docs.astral.sh/uv/) (pinned), itself installed once
//! with pip into `<state>/uv-<version>/`: moto with its dependencies takes about 2 s with
//! uv and about 40 s with pip on 2 cores. `infra/check.sh` installs its tools with the same
//! uv, under the same lock.
//!
//! The tools run with [`BYTECODE`] removed from their environment, so they cache their
//! modules' bytecode in their virtualenv the first time they import them.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::harness::progress::Step;

/// The uv release used for installs (`infra/check.sh` pins the same).
pub const UV_VERSION: &str = "0.13.9";

/// Lock file (in the state folder) held while a virtualenv is installed, so concurrent
/// starts install it once.
pub const LOCK_FILE: &str = "python-tools.lock";

/// Log of the installs, in the state folder.
pub const LOG_FILE: &str = "python-install.log";

/// The variable that keeps Python from writing bytecode. Set (as on some CI machines), it
/// would make every start of a tool compile moto, Flask and botocore from source again:
/// moto took 1.7 s of CPU to answer each service once, 0.7 s from bytecode, and the
/// end-to-end tests start about fifty. Compiling the whole virtualenv at install time
/// (`uv pip install --compile-bytecode`) instead costs 14 s, mostly for modules never
/// imported.
pub const BYTECODE: &str = "PYTHONDONTWRITEBYTECODE";

/// A virtualenv that could not be installed.
#[derive(Debug, Error)]
#[error("installing {requirements} into {venv} failed: {reason} (see {log})")]
pub struct InstallError {
    /// What was installed.
    pub requirements: String,
    /// Virtualenv folder.
    pub venv: PathBuf,
    /// What failed.
    pub reason: String,
    /// Log of the installation.
    pub log: PathBuf,
}

/// Runs pip from its wheel, fetched from PyPI with the standard library, for a Python
/// without `ensurepip` (Debian's `python3` without `python3-venv`).
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

/// The virtualenv `state_dir/name` with `requirements` installed, installing it first
/// when it is missing (progress shown as `label`, usually taking `expected`).
pub async fn ensure_venv(
    state_dir: &Path,
    name: &str,
    requirements: &[&str],
    label: &str,
    expected: &str,
) -> Result<PathBuf, InstallError> {
    let venv = state_dir.join(name);
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(venv);
    }
    let log = state_dir.join(LOG_FILE);
    let fail = |reason: String| InstallError {
        requirements: requirements.join(" "),
        venv: venv.clone(),
        reason,
        log: log.clone(),
    };
    fs::create_dir_all(state_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", state_dir.display())))?;
    let lock = File::create(state_dir.join(LOCK_FILE))
        .map_err(|e| fail(format!("cannot create the install lock: {e}")))?;
    let _lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("lock task does not panic")
        .map_err(|e| fail(format!("cannot take the install lock: {e}")))?;
    if marker.exists() {
        return Ok(venv);
    }
    let step = Step::start(label, expected);
    let uv = ensure_uv(state_dir, &log, &step).await.map_err(&fail)?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let venv_arg = venv.display().to_string();
    run_logged(
        &uv,
        &["venv", "--clear", "--python", &python, &venv_arg],
        &log,
        &step,
    )
    .await
    .map_err(&fail)?;
    let venv_python = venv.join("bin").join("python").display().to_string();
    let mut install = vec!["pip", "install", "--python", &venv_python];
    install.extend_from_slice(requirements);
    run_logged(&uv, &install, &log, &step)
        .await
        .map_err(&fail)?;
    File::create(&marker).map_err(|e| fail(format!("cannot create {}: {e}", marker.display())))?;
    Ok(venv)
}

/// The `uv` executable, installed with pip into `state_dir/uv-<version>` when missing.
/// Called under the install lock.
async fn ensure_uv(state_dir: &Path, log: &Path, step: &Step) -> Result<String, String> {
    let venv = state_dir.join(format!("uv-{UV_VERSION}"));
    let uv = venv.join("bin").join("uv").display().to_string();
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(uv);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let requirement = format!("uv=={UV_VERSION}");
    let venv_arg = venv.display().to_string();
    let bin = |name: &str| venv.join("bin").join(name).display().to_string();
    // A virtualenv without pip (installing pip into it is most of the time a venv takes),
    // uv installed into it by the Python's own pip (`--python`, pip 22.3 or newer)...
    let without_pip = ["-m", "venv", "--clear", "--without-pip", &venv_arg];
    run_logged(&python, &without_pip, log, step).await?;
    let venv_python = bin("python");
    let into_venv = [
        "-m",
        "pip",
        "--python",
        &venv_python,
        "install",
        &requirement,
    ];
    if let Err(first) = run_logged(&python, &into_venv, log, step).await {
        // ... or by a pip fetched from PyPI (a Python without pip, or with an older one).
        tracing::info!("the Python's pip cannot install uv ({first}); bootstrapping pip from PyPI");
        run_logged(
            &venv_python,
            &["-c", PIP_BOOTSTRAP, &requirement],
            log,
            step,
        )
        .await
        .map_err(|e| format!("{first}; then {e}"))?;
    }
    File::create(&marker).map_err(|e| format!("cannot create {}: {e}", marker.display()))?;
    Ok(uv)
}

/// Runs a program to completion, its output appended to `log`; each step it prints
/// becomes the detail of `step`.
async fn run_logged(program: &str, args: &[&str], log: &Path, step: &Step) -> Result<(), String> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let stdout = file.try_clone().map_err(|e| e.to_string())?;
    // uv and pip report their steps on stderr and stdout respectively.
    let mut child = Command::new(program)
        .args(args)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut file = tokio::fs::File::from_std(file);
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        file.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        // Steps ("Resolved 61 packages", "Installed ..."), not progress bars.
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
