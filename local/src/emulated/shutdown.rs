//! Stopping background work within a bounded time.
//!
//! The emulated services finish what is in progress when asked to stop (deliver the
//! buffer, settle the batch), but what is in progress can wait on a service that is gone
//! (S3 retried until it answers, a function waiting on DynamoDB). After a grace period
//! the tasks are aborted. Nothing is lost by it: checkpoints move only after a write
//! succeeded, so whatever was cut short is read again at the next start.

use std::time::Duration;

use tokio::task::JoinHandle;

/// How long a stopping service may take to finish what is in progress.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Waits for `tasks` for up to `grace`, then aborts the ones still running. Returns
/// whether every task ended by itself.
pub async fn join_within(tasks: Vec<JoinHandle<()>>, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    let mut finished = true;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
            finished = false;
        }
    }
    finished
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_that_end_are_joined_and_the_rest_aborted_at_the_deadline() {
        let grace = Duration::from_millis(300);
        let (quick_done, quick_seen) = tokio::sync::oneshot::channel();
        let quick = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = quick_done.send(());
        });
        let stuck = tokio::spawn(std::future::pending::<()>());
        let started = tokio::time::Instant::now();
        assert!(!join_within(vec![quick, stuck], grace).await);
        assert!(started.elapsed() >= grace);
        assert!(
            quick_seen.await.is_ok(),
            "the task that ended was not cut short"
        );

        let quick = tokio::spawn(tokio::time::sleep(Duration::from_millis(10)));
        assert!(join_within(vec![quick], grace).await);
    }
}
