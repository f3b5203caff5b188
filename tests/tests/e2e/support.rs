//! What several of the end-to-end tests need.

use std::path::PathBuf;

use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::logs;

/// A log folder for an emulator a test starts by itself.
pub fn run_logs() -> PathBuf {
    logs::create_run_dir(&default_state_dir()).expect("a log folder")
}
