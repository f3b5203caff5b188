//! Log folders: one per run of a stack (`<state dir>/logs/<time>-<pid>-<n>/`), holding the
//! emulator's and the Lambdas' logs; old ones are pruned so the state folder stays small.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// Run folders always kept, newest first.
pub const KEEP: usize = 20;

/// Older run folders are removed once nothing has written to them for this long (a stack
/// still running elsewhere keeps its folder).
pub const IDLE: Duration = Duration::from_secs(3600);

/// Creates a new run folder under `state_dir/logs/` and prunes old ones.
pub fn create_run_dir(state_dir: &Path) -> std::io::Result<PathBuf> {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let root = state_dir.join("logs");
    let dir = root.join(format!(
        "{}-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    prune(&root, &dir);
    Ok(dir)
}

/// Removes run folders beyond the [`KEEP`] newest that have been idle for [`IDLE`].
/// Best effort: a folder that cannot be read or removed is left alone.
fn prune(root: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut runs: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path() != current && e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (last_write(&e.path()), e.path()))
        .collect();
    runs.sort_by_key(|(written, _)| std::cmp::Reverse(*written));
    let now = SystemTime::now();
    for (written, path) in runs.into_iter().skip(KEEP.saturating_sub(1)) {
        if now.duration_since(written).is_ok_and(|idle| idle > IDLE) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// The latest modification time of a folder or the files directly in it.
fn last_write(dir: &Path) -> SystemTime {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let files = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| modified(&e.path()));
    files
        .chain(modified(dir))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_the_recently_written() {
        let state = std::env::temp_dir().join(format!("streamlake-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let old = SystemTime::now() - IDLE * 2;
        let mut stale = Vec::new();
        for i in 0..KEEP + 5 {
            let dir = state.join("logs").join(format!("old-{i:02}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("moto.log");
            std::fs::write(&file, b"x").unwrap();
            let age = old - Duration::from_secs(i as u64);
            for p in [&file, &dir] {
                std::fs::File::open(p).unwrap().set_modified(age).unwrap();
            }
            stale.push(dir);
        }
        let current = create_run_dir(&state).unwrap();
        let left: Vec<_> = std::fs::read_dir(state.join("logs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left.len(), KEEP);
        assert!(left.contains(&current));
        // The newest of the idle ones are kept, the oldest removed.
        assert!(left.contains(&stale[0]));
        assert!(!left.contains(&stale[KEEP + 4]));
        std::fs::remove_dir_all(&state).unwrap();
    }
}
