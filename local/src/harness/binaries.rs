//! Finding the binaries the stack runs: the two Lambdas and the `query` CLI.
//!
//! They are found next to the running executable (cargo puts every binary of the
//! workspace in one folder), or in `STREAMLAKE_BIN_DIR`. When the stack runs under
//! cargo (`cargo run`, `cargo test`), it first builds them with the same cargo and
//! profile, so they are never missing or stale: once per process (the end-to-end tests
//! start about fifty stacks in one process, and each `cargo build` that finds nothing to
//! do still costs two to three seconds of CPU checking the workspace).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::StackError;
use crate::harness::progress;

/// Packages whose binaries the stack runs.
const PACKAGES: &[&str] = &["transform_lambda", "consumer_lambda", "query", "streamlake"];

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Locates the binaries, building them first when running under cargo.
    pub async fn locate() -> Result<Self, StackError> {
        if let Some(dir) = std::env::var_os("STREAMLAKE_BIN_DIR") {
            return Self::checked(PathBuf::from(dir));
        }
        let exe =
            std::env::current_exe().map_err(StackError::io("locating the running executable"))?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        // Test executables live in `target/<profile>/deps`.
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        if let Some(cargo) = std::env::var_os("CARGO") {
            static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
            BUILT.get_or_try_init(|| build(&cargo, &dir)).await?;
        }
        Self::checked(dir)
    }

    fn checked(dir: PathBuf) -> Result<Self, StackError> {
        let this = Self { dir };
        for name in PACKAGES {
            let path = this.path(name);
            if !path.is_file() {
                return Err(StackError::MissingBinary(path));
            }
        }
        Ok(this)
    }

    /// The path of a binary.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// A command running a binary, which finds the other binaries where these are
    /// (`STREAMLAKE_BIN_DIR`) instead of building them again (`streamlake up` run by a test).
    pub fn command(&self, name: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.path(name));
        command.env("STREAMLAKE_BIN_DIR", &self.dir);
        command
    }
}

/// Builds the binaries with the cargo that runs us, in the profile of `dir`. With
/// progress on, it is a step of its own (cargo says only what fails: the step runs beside
/// the servers' installs).
async fn build(cargo: &std::ffi::OsStr, dir: &Path) -> Result<(), StackError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml");
    if !manifest.is_file() {
        return Ok(());
    }
    let mut command = tokio::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest);
    // The same packages as every other build of the workspace resolve the same features
    // (`streamlake` depends on the others), so this build reuses what is built.
    command.args(["--package", env!("CARGO_PKG_NAME")]);
    for package in PACKAGES {
        command.args(["--package", package]);
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    // Cargo gave this process (`cargo run`, `cargo test`) the variables it sets for a
    // crate; build scripts (ring's, cc's) rerun when they change, so passing them on would
    // rebuild ring and everything above it (rustls, the AWS SDK, DataFusion) here, and
    // again in the next build from a shell.
    // https://doc.rust-lang.org/cargo/reference/environment-variables.html#environment-variables-cargo-sets-for-crates
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_crates) {
            command.env_remove(name);
        }
    }
    let _building =
        progress::Step::start("building the Lambda and query binaries (cargo build)", "");
    let status = command
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(StackError::io("running cargo build"))?;
    if status.success() {
        Ok(())
    } else {
        Err(StackError::Build {
            packages: PACKAGES.join(", "),
            status,
        })
    }
}

/// Whether cargo sets this variable for the crate it runs (not one that configures cargo).
fn set_by_cargo_for_crates(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "OUT_DIR",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    const PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The default state folder: `streamlake/` in the build directory (`target/`) of the
/// running executable, else in the working directory.
pub fn default_state_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let dir = exe.parent()?;
            let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
                dir.parent()?
            } else {
                dir
            };
            Some(profile_dir.parent()?.join("streamlake"))
        })
        .unwrap_or_else(|| PathBuf::from("streamlake-state"))
}

#[cfg(test)]
mod tests {
    use super::set_by_cargo_for_crates;

    #[test]
    fn only_the_variables_cargo_sets_for_a_crate_are_dropped() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_EXE_query",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_for_crates(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO",
            "PATH",
        ] {
            assert!(!set_by_cargo_for_crates(name), "{name}");
        }
    }
}
