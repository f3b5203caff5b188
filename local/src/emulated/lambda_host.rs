//! Runs a Lambda binary locally behind the Lambda Runtime API, as Lambda does.
//!
//! The function is a child process with `AWS_LAMBDA_RUNTIME_API` pointing at a small
//! HTTP server here. It polls `GET /2018-06-01/runtime/invocation/next`, and posts the
//! result to `.../{request id}/response` or `.../{request id}/error`, exactly as on AWS.
//! A process that exits is started again (a new sandbox); its in-flight invocation fails
//! (`Runtime.ExitError`). As on Lambda, the timeout runs from the moment the function
//! takes the invocation (the `Lambda-Runtime-Deadline-Ms` it gets is that moment plus the
//! timeout), and a function still running at its deadline is stopped (`Sandbox.Timedout`)
//! and started again. An invocation whose caller stopped waiting before the function took
//! it is never delivered.
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-next>
//!
//! With a fault injector ([`FunctionSpec::faults`], `--inject lambda:consumer=RATE`), a
//! share of the invocations end as if the process had died or hit its timeout after doing
//! its work and before reporting it: the result is thrown away, the process is stopped and
//! started again, and the caller gets `Runtime.ExitError` or `Sandbox.Timedout`, what
//! Lambda reports for those.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use backon::{BackoffBuilder, ExponentialBuilder};
use thiserror::Error;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};

use crate::emulated::log_metrics::{LogMetrics, MetricSeries};
use crate::error::StackError;
use crate::faults::Injector;

/// Largest synchronous invocation request or response Lambda accepts.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// What the records of one event may take: the payload limit less 4 KiB for the event
/// around them (with [`StreamRecord::event_bytes`](crate::emulated::kinesis_source::StreamRecord::event_bytes)).
pub const MAX_EVENT_RECORDS_BYTES: usize = MAX_PAYLOAD_BYTES - 4096;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name.
    pub name: String,
    /// The bootstrap binary.
    pub binary: PathBuf,
    /// Extra environment (endpoint, region, function configuration).
    pub env: Vec<(String, String)>,
    /// Invocation timeout.
    pub timeout: Duration,
    /// Memory setting reported to the function.
    pub memory_mb: u32,
    /// File that receives the function's stdout and stderr (its CloudWatch log).
    pub log_path: PathBuf,
    /// Region and account for the function's ARN.
    pub region: String,
    /// Invocations to end with a crash or a timeout on purpose.
    pub faults: Option<Arc<Injector>>,
}

impl FunctionSpec {
    /// The function's ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region,
            streamlake_core::names::LOCAL_ACCOUNT,
            self.name
        )
    }
}

/// Why an invocation did not return a result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvokeError {
    /// The function reported an error (`/error`).
    #[error("function error {error_type}: {message}")]
    Function {
        /// `errorType` of the report.
        error_type: String,
        /// `errorMessage` of the report.
        message: String,
    },
    /// The process exited during the invocation (`Runtime.ExitError`).
    #[error("Runtime.ExitError: the function process exited during the invocation ({0})")]
    Crashed(String),
    /// The invocation was still running at its deadline and the function was stopped
    /// (`Sandbox.Timedout`).
    #[error("Sandbox.Timedout: the invocation timed out after {0:?}")]
    Timeout(Duration),
    /// The request or response is larger than Lambda allows.
    #[error("{0} of {1} bytes exceeds the 6 MB limit")]
    TooLarge(&'static str, usize),
    /// The function is shutting down.
    #[error("the function is stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Bytes, InvokeError>>;

struct Invocation {
    id: String,
    payload: Bytes,
    reply: Reply,
}

/// An invocation the function has taken: where its result goes, the timer that stops
/// the function at its deadline, and the fault it ends with (if one was injected).
struct Running {
    reply: Reply,
    timer: AbortHandle,
    fault: Option<InjectedFault>,
}

/// How an invocation ends when a fault is injected into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InjectedFault {
    /// The process dies before reporting its result.
    Crash,
    /// The invocation hits its timeout before reporting its result.
    Timeout,
}

struct Shared {
    spec: FunctionSpec,
    queue: Mutex<mpsc::Receiver<Invocation>>,
    in_flight: std::sync::Mutex<HashMap<String, Running>>,
    restart: Notify,
    shutdown: Notify,
    stopped: std::sync::atomic::AtomicBool,
    /// Whether the running process has asked for an invocation (its init is done).
    initialized: std::sync::atomic::AtomicBool,
    stats: std::sync::Mutex<FunctionStats>,
}

/// Counters of a function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunctionStats {
    /// Invocations the function took.
    pub invocations: u64,
    /// Invocations that ended in an error the function reported.
    pub errors: u64,
    /// Invocations stopped at the timeout (`Sandbox.Timedout`).
    pub timeouts: u64,
    /// Invocations whose process exited (`Runtime.ExitError`).
    pub crashes: u64,
}

impl FunctionStats {
    fn count(&mut self, result: &Result<Bytes, InvokeError>) {
        match result {
            Err(InvokeError::Function { .. }) => self.errors += 1,
            Err(InvokeError::Timeout(_)) => self.timeouts += 1,
            Err(InvokeError::Crashed(_)) => self.crashes += 1,
            _ => {}
        }
    }
}

impl Shared {
    /// A process that exited before asking for an invocation failed its init: as on
    /// Lambda, the invocation that was waiting for it fails (`Runtime.ExitError`), instead
    /// of waiting for a process that never starts.
    fn fail_waiting(&self, status: &str) {
        let Ok(mut queue) = self.queue.try_lock() else {
            return;
        };
        while let Ok(invocation) = queue.try_recv() {
            if invocation.reply.is_closed() {
                continue;
            }
            let result = Err(InvokeError::Crashed(format!(
                "{status}, before it asked for an invocation (init failed)"
            )));
            self.stats.lock().expect("not poisoned").count(&result);
            let _ = invocation.reply.send(result);
            return;
        }
    }

    fn fail_in_flight(&self, error: &InvokeError) {
        let pending: Vec<Running> = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, r)| r)
            .collect();
        let mut stats = self.stats.lock().expect("not poisoned");
        for running in pending {
            running.timer.abort();
            let result = Err(error.clone());
            stats.count(&result);
            let _ = running.reply.send(result);
        }
    }

    fn complete(&self, id: &str, result: Result<Bytes, InvokeError>) -> bool {
        match self.in_flight.lock().expect("not poisoned").remove(id) {
            Some(running) => {
                running.timer.abort();
                self.stats.lock().expect("not poisoned").count(&result);
                let _ = running.reply.send(result);
                true
            }
            None => false,
        }
    }

    /// Completes an invocation with what the function reported, unless a fault was
    /// injected into it: then the report is thrown away and the process stopped, as if it
    /// had died or timed out before reporting.
    fn report(&self, id: &str, result: Result<Bytes, InvokeError>) -> bool {
        let fault = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .get(id)
            .and_then(|r| r.fault);
        let result = match fault {
            None => return self.complete(id, result),
            Some(InjectedFault::Crash) => Err(InvokeError::Crashed(
                "signal: 9 (SIGKILL), injected by --inject".into(),
            )),
            Some(InjectedFault::Timeout) => Err(InvokeError::Timeout(self.spec.timeout)),
        };
        tracing::debug!(function = %self.spec.name, ?fault, "fault injected");
        let completed = self.complete(id, result);
        self.restart.notify_one();
        completed
    }
}

/// A locally running Lambda function.
pub struct LambdaFunction {
    shared: Arc<Shared>,
    metrics: LogMetrics,
    queue: mpsc::Sender<Invocation>,
    /// The Runtime API server and the process supervisor.
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for LambdaFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaFunction")
            .field("name", &self.shared.spec.name)
            .finish()
    }
}

impl LambdaFunction {
    /// Starts the Runtime API server and the function process.
    pub async fn start(spec: FunctionSpec) -> Result<Self, StackError> {
        if !spec.binary.is_file() {
            return Err(StackError::MissingBinary(spec.binary));
        }
        let (queue, receiver) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            spec,
            queue: Mutex::new(receiver),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            restart: Notify::new(),
            shutdown: Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            initialized: std::sync::atomic::AtomicBool::new(false),
            stats: std::sync::Mutex::new(FunctionStats::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(StackError::io("binding the Runtime API"))?;
        let addr = listener
            .local_addr()
            .map_err(StackError::io("binding the Runtime API"))?;
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(4 * MAX_PAYLOAD_BYTES))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("Runtime API server stopped: {e}");
            }
        });
        let supervisor = tokio::spawn(supervise(shared.clone(), addr));
        Ok(Self {
            metrics: LogMetrics::new(&shared.spec.log_path),
            shared,
            queue,
            tasks: [server, supervisor],
        })
    }

    /// The function's specification.
    pub fn spec(&self) -> &FunctionSpec {
        &self.shared.spec
    }

    /// The metrics the function printed (EMF lines in its log), by name.
    pub fn metrics(&self) -> BTreeMap<String, MetricSeries> {
        self.metrics.read()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FunctionStats {
        *self.shared.stats.lock().expect("not poisoned")
    }

    /// Invokes the function synchronously (`RequestResponse`) with a JSON payload. It
    /// waits while the function is busy with earlier invocations; dropping the future
    /// before the function takes this one withdraws it.
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Result<Bytes, InvokeError> {
        let payload = payload.into();
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::TooLarge("request", payload.len()));
        }
        let (reply, result) = oneshot::channel();
        let invocation = Invocation {
            id: uuid::Uuid::new_v4().to_string(),
            payload,
            reply,
        };
        self.queue
            .send(invocation)
            .await
            .map_err(|_| InvokeError::Stopped)?;
        // Bounded by the function's timeout once it takes the invocation (`next`).
        result.await.unwrap_or(Err(InvokeError::Stopped))
    }

    /// Stops the process and the server; pending invocations fail with
    /// [`InvokeError::Stopped`].
    pub async fn stop(mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.shutdown.notify_waiters();
        self.shared.shutdown.notify_one();
        self.shared.fail_in_flight(&InvokeError::Stopped);
        // The supervisor kills the process; then the Runtime API has nobody left to serve.
        let [server, supervisor] = &mut self.tasks;
        if tokio::time::timeout(Duration::from_secs(5), &mut *supervisor)
            .await
            .is_err()
        {
            supervisor.abort();
        }
        server.abort();
        let _ = server.await;
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Keeps one function process running until shutdown.
async fn supervise(shared: Arc<Shared>, addr: SocketAddr) {
    let spec = &shared.spec;
    let mut quick_exits = 0u32;
    loop {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&spec.log_path);
        let (stdout, stderr) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let started = tokio::time::Instant::now();
        shared
            .initialized
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let child = tokio::process::Command::new(&spec.binary)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                uuid::Uuid::new_v4().simple().to_string(),
            )
            .env("AWS_REGION", &spec.region)
            .env("AWS_DEFAULT_REGION", &spec.region)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(function = %spec.name, "cannot start {}: {e}", spec.binary.display());
                shared.fail_in_flight(&InvokeError::Crashed(e.to_string()));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shared.shutdown.notified() => return,
                }
            }
        };
        tokio::select! {
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                if !shared.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    tracing::warn!(function = %spec.name, %status, "function process exited; starting a new one");
                }
                if !shared.initialized.load(std::sync::atomic::Ordering::SeqCst) {
                    shared.fail_waiting(&status);
                }
                shared.fail_in_flight(&InvokeError::Crashed(status));
            }
            () = shared.restart.notified() => {
                tracing::warn!(function = %spec.name, "restarting the function process after a timeout or an injected fault");
                let _ = child.kill().await;
            }
            () = shared.shutdown.notified() => {
                let _ = child.kill().await;
                return;
            }
        }
        if shared.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // A process that dies at once (an init error) is restarted more and more slowly.
        quick_exits = if started.elapsed() < Duration::from_secs(1) {
            quick_exits + 1
        } else {
            0
        };
        let pause = Duration::from_millis(100 * u64::from(quick_exits.min(20)));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shared.shutdown.notified() => return,
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared
        .initialized
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut queue = shared.queue.lock().await;
    // An invocation whose caller stopped waiting is dropped, never run.
    let invocation = loop {
        match queue.recv().await {
            Some(invocation) if invocation.reply.is_closed() => continue,
            Some(invocation) => break invocation,
            None => return (StatusCode::GONE, HeaderMap::new(), Bytes::new()),
        }
    };
    drop(queue);
    shared.stats.lock().expect("not poisoned").invocations += 1;
    let fault = shared.spec.faults.as_ref().filter(|f| f.roll()).map(|f| {
        if f.coin() {
            InjectedFault::Crash
        } else {
            InjectedFault::Timeout
        }
    });
    // The timeout runs from now: the deadline the function sees, and the moment it is
    // stopped if it has not answered.
    let timeout = shared.spec.timeout;
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(timeout)
        .as_millis();
    let timer = {
        let (shared, id) = (shared.clone(), invocation.id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if shared.complete(&id, Err(InvokeError::Timeout(timeout))) {
                shared.restart.notify_one();
            }
        })
        .abort_handle()
    };
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("ASCII header value");
    headers.insert("lambda-runtime-aws-request-id", header(&invocation.id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&shared.spec.arn()),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header(&format!(
            "Root=1-00000000-{};Sampled=0",
            uuid::Uuid::new_v4().simple()
        )),
    );
    headers.insert("content-type", header("application/json"));
    shared.in_flight.lock().expect("not poisoned").insert(
        invocation.id,
        Running {
            reply: invocation.reply,
            timer,
            fault,
        },
    );
    (StatusCode::OK, headers, invocation.payload)
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let result = if body.len() > MAX_PAYLOAD_BYTES {
        Err(InvokeError::TooLarge("response", body.len()))
    } else {
        Ok(body)
    };
    if shared.report(&id, result) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorReport {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let report: ErrorReport = serde_json::from_slice(&body).unwrap_or_default();
    let error = InvokeError::Function {
        error_type: report.error_type,
        message: report.error_message,
    };
    if shared.report(&id, Err(error)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let report: ErrorReport = serde_json::from_slice(&body).unwrap_or_default();
    tracing::error!(
        function = %shared.spec.name,
        error_type = %report.error_type,
        "function failed to initialize: {}",
        report.error_message
    );
    StatusCode::ACCEPTED
}

/// How long a service that invokes a function waits before retry `attempt` (1, 2, …) of
/// a failed invocation: doubling from 100 ms up to 2 s. AWS documents that Firehose and
/// the event source mapping retry, not how long they wait in between.
pub fn retry_delay(attempt: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1).min(32) as usize)
        .unwrap_or(Duration::from_secs(2))
}

/// A function as the services that invoke it see it (Firehose's transform, the mapping's
/// consumer): its ARN, and a synchronous invocation. [`LambdaFunction`] runs the real
/// binary behind the Runtime API; tests of a service's own logic give it a stub.
pub trait Function: Send + Sync + 'static {
    /// The function's name.
    fn name(&self) -> &str;
    /// The function's ARN.
    fn arn(&self) -> String;
    /// Invokes it (`RequestResponse`) with a JSON payload.
    fn invoke(&self, payload: Bytes) -> futures::future::BoxFuture<'_, Result<Bytes, InvokeError>>;
}

/// A function for the unit tests of the services that invoke one: it answers invocation
/// number `call` (from 0) with `answer(call, payload)`.
#[cfg(test)]
pub(crate) struct StubFunction {
    calls: std::sync::atomic::AtomicU32,
    #[allow(clippy::type_complexity)]
    answer: Box<dyn Fn(u32, &[u8]) -> Result<Bytes, InvokeError> + Send + Sync>,
}

#[cfg(test)]
impl StubFunction {
    /// A stub answering as `answer` does.
    pub(crate) fn new(
        answer: impl Fn(u32, &[u8]) -> Result<Bytes, InvokeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: std::sync::atomic::AtomicU32::new(0),
            answer: Box::new(answer),
        })
    }

    /// How many times it was invoked.
    pub(crate) fn calls(&self) -> u32 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
impl Function for StubFunction {
    fn name(&self) -> &str {
        "stub"
    }

    fn arn(&self) -> String {
        "arn:aws:lambda:us-east-1:123456789012:function:stub".into()
    }

    fn invoke(&self, payload: Bytes) -> futures::future::BoxFuture<'_, Result<Bytes, InvokeError>> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = (self.answer)(call, &payload);
        Box::pin(async move { answer })
    }
}

impl Function for LambdaFunction {
    fn name(&self) -> &str {
        &self.spec().name
    }

    fn arn(&self) -> String {
        self.spec().arn()
    }

    fn invoke(&self, payload: Bytes) -> futures::future::BoxFuture<'_, Result<Bytes, InvokeError>> {
        Box::pin(LambdaFunction::invoke(self, payload))
    }
}
