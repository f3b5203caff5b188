//! `streamlake up` after the start: the status served and refreshed, the counters logged,
//! until told to stop ([`Serving`]); and what `up` prints once the stack is up
//! ([`banner`]).

use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Report, StackError};
use crate::harness::stack::{ApiServer, LocalStack};
use crate::lake_index::LakeIndex;
use crate::status::{REFRESH, Status, StatusServer};

/// Resolves when the process is told to stop: Ctrl-C (`SIGINT`), or `SIGTERM` (what
/// `kill`, a service manager or a container runtime sends) on Unix. Ctrl-C in a terminal
/// reaches the emulator processes too; `SIGTERM` reaches `up` alone, which then stops them
/// as it stops.
pub async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot listen for SIGTERM: {e}"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How often the counters are logged (when they changed).
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// A stack's status, served on loopback and refreshed every [`REFRESH`].
pub struct Serving {
    lake: LakeIndex,
    publish: watch::Sender<Status>,
    server: StatusServer,
}

impl Serving {
    /// Takes the first snapshot (listing the lake once: its partitions stay in the
    /// snapshots for `window` after the stack wrote into them) and starts serving it.
    pub async fn start(stack: &LocalStack, window: Duration) -> Result<Self, StackError> {
        let mut lake = LakeIndex::of_stack(stack, window).await?;
        let (publish, latest) = watch::channel(Status::of(stack, &mut lake).await?);
        let server = StatusServer::start(latest, &stack.config().state_dir).await?;
        Ok(Self {
            lake,
            publish,
            server,
        })
    }

    /// The status server's address (the dashboard's, `/api/status` for JSON).
    pub fn endpoint(&self) -> &str {
        self.server.endpoint()
    }

    /// Refreshes the status and logs the counters until `stop` completes.
    pub async fn until(mut self, stack: &LocalStack, stop: impl Future<Output = ()>) {
        let mut last = (stack.firehose_stats(), stack.mapping_stats());
        let mut log = tokio::time::interval(LOG_EVERY);
        let mut refresh = tokio::time::interval(REFRESH);
        // One future for the whole loop: a stop that comes while a branch runs is kept.
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = refresh.tick() => match Status::of(stack, &mut self.lake).await {
                    Ok(status) => {
                        self.publish.send_replace(status);
                    }
                    Err(e) => tracing::warn!("status: {}", Report(&e)),
                },
                _ = log.tick() => {
                    let now = (stack.firehose_stats(), stack.mapping_stats());
                    if now != last {
                        let (f, m) = &now;
                        tracing::info!(
                            "firehose: read {} delivered {} failed {} dropped {} | consumer: read {} succeeded {} discarded {}, iterator age {} ms",
                            f.records_read, f.delivered, f.failed, f.dropped, m.records_read, m.succeeded, m.discarded, m.iterator_age_ms
                        );
                        last = now;
                    }
                }
            }
        }
    }
}

/// What `up` prints once the stack is up: its endpoint, resources, dashboard, and the
/// commands that send data into it (`generate`: the producer's `--generate` value).
pub fn banner(stack: &LocalStack, dashboard: &str, generate: &str) -> String {
    let c = stack.config();
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("streamlake local stack is up (Ctrl-C to stop)".into());
    line(format!("  endpoint  {}", stack.endpoint()));
    if !c.faults.is_empty() {
        line(format!("  faults    {}", c.faults));
        line(format!(
            "  emulator  {} (without faults)",
            stack.emulator_endpoint()
        ));
    }
    let served_by = |server, node| if server == ApiServer::Node { node } else { "" };
    line(format!(
        "  stream    {} ({} shards){}",
        c.stream,
        c.shards,
        served_by(stack.servers().kinesis, " (kinesalite)")
    ));
    line(format!(
        "  delivery  {} (from the stream), {} (Direct PUT)",
        c.delivery_stream,
        streamlake_core::names::DIRECT_DELIVERY_STREAM
    ));
    line(format!(
        "  lake      s3://{}/{} (dataset {}, stored beside it)",
        c.bucket,
        c.dataset.prefix(),
        c.dataset.name()
    ));
    line(match c.table_names().as_slice() {
        [] => format!(
            "  tables    none: dataset {} has no [dynamodb] section (no consumer)",
            c.dataset.name()
        ),
        tables => format!(
            "  tables    {}{}",
            tables.join(", "),
            served_by(stack.servers().dynamodb, " (dynalite)")
        ),
    });
    line(format!("  logs      {}", stack.log_dir().display()));
    line(format!("  dashboard {dashboard}/"));
    let state_dir = if c.state_dir == crate::harness::binaries::default_state_dir() {
        String::new()
    } else {
        format!(" --state-dir {}", c.state_dir.display())
    };
    line(format!(
        "  status    streamlake status{state_dir} (JSON: {dashboard}/api/status)"
    ));
    line(String::new());
    line("Send data from another terminal:".into());
    let env: Vec<String> = stack
        .clients()
        .child_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line(format!("  export {}", env.join(" ")));
    line(format!(
        "  cargo run --bin producer -- --generate {generate} --count 1000"
    ));
    line(format!(
        "  cargo run --bin producer -- --generate {generate} --count 1000 --firehose {}",
        streamlake_core::names::DIRECT_DELIVERY_STREAM
    ));
    line("  cargo run --bin query -- partitions".into());
    out
}
