//! Progress of the stack's long steps (building the binaries, installing the emulator,
//! waiting for the pipeline), so that a first run is never silent.
//!
//! Quiet unless [`enable`] was called (the `streamlake` CLI does; tests and other library
//! users stay quiet). On a terminal a step is a spinner with its elapsed time; otherwise
//! (CI logs, pipes) it prints a line when it starts, one every [`HEARTBEAT`] while it runs,
//! and one when it ends.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

/// How often a running step says so when stderr is not a terminal.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The spinners of the steps running at once (a first run builds the binaries while it
/// installs the servers), each on its own line.
static SPINNERS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// Shows the progress of long steps on stderr from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether progress is shown.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A long step in progress; finished (with its duration) when dropped.
pub struct Step {
    label: String,
    started: Instant,
    detail: Arc<Mutex<String>>,
    display: Display,
}

enum Display {
    Hidden,
    Spinner(ProgressBar),
    Lines(JoinHandle<()>),
}

impl Step {
    /// Starts a step: `label` says what runs, `expected` how long it usually takes (empty
    /// when it is short).
    pub fn start(label: impl Into<String>, expected: &str) -> Self {
        let label = label.into();
        let detail = Arc::new(Mutex::new(String::new()));
        let display = if !enabled() {
            Display::Hidden
        } else if std::io::stderr().is_terminal() {
            let bar = SPINNERS.add(ProgressBar::new_spinner()).with_style(
                ProgressStyle::with_template("{spinner} streamlake: {prefix} [{elapsed}] {msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(with_expected(&label, expected));
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Spinner(bar)
        } else {
            eprintln!("streamlake: {}", with_expected(&label, expected));
            let (label, detail) = (label.clone(), detail.clone());
            let started = Instant::now();
            Display::Lines(tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
                loop {
                    tick.tick().await;
                    let detail = detail.lock().expect("not poisoned").clone();
                    let separator = if detail.is_empty() { "" } else { ": " };
                    eprintln!(
                        "streamlake: {label} ({} s){separator}{detail}",
                        started.elapsed().as_secs()
                    );
                }
            }))
        };
        Self {
            label,
            started: Instant::now(),
            detail,
            display,
        }
    }

    /// What the step is doing now (shown beside it).
    pub fn set_detail(&self, detail: impl Into<String>) {
        let detail = detail.into();
        if let Display::Spinner(bar) = &self.display {
            bar.set_message(detail.clone());
        }
        *self.detail.lock().expect("not poisoned") = detail;
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        let took = format!("{:.1} s", self.started.elapsed().as_secs_f64());
        let done = format!("streamlake: {} ({took})", self.label);
        match &self.display {
            Display::Hidden => {}
            Display::Spinner(bar) => {
                bar.finish_and_clear();
                SPINNERS.remove(bar);
                // Above the spinners still running.
                let _ = SPINNERS.println(done);
            }
            Display::Lines(heartbeat) => {
                heartbeat.abort();
                eprintln!("{done}");
            }
        }
    }
}

fn with_expected(label: &str, expected: &str) -> String {
    if expected.is_empty() {
        format!("{label}...")
    } else {
        format!("{label} ({expected})...")
    }
}
