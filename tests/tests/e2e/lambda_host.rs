//! The local Lambda host's timeout and queueing, as Lambda documents them: the timeout runs
//! from the moment the function takes an invocation, a function still running at its
//! deadline is stopped, and an invocation whose caller gave up before it started never
//! runs. Over the Lambda Runtime API with `flaky_lambda` (no emulator needed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use streamlake::emulated::lambda_host::{FunctionSpec, InvokeError, LambdaFunction};

const TIMEOUT: Duration = Duration::from_secs(2);

struct Host {
    function: LambdaFunction,
    /// `partition-key sequence-number` of every record the function completed.
    completed: PathBuf,
    /// Milliseconds each invocation had left when it started.
    remaining: PathBuf,
}

/// `flaky_lambda` in `hang` mode: it never answers a batch holding a `poison` record.
async fn start(name: &str) -> Host {
    let dir = std::env::temp_dir().join(format!("lambda-host-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (completed, remaining) = (dir.join("completed.log"), dir.join("remaining.log"));
    let function = LambdaFunction::start(FunctionSpec {
        name: name.into(),
        binary: env!("CARGO_BIN_EXE_flaky_lambda").into(),
        env: vec![
            ("FLAKY_MODE".into(), "hang".into()),
            ("FLAKY_LOG".into(), completed.display().to_string()),
            (
                "FLAKY_REMAINING_LOG".into(),
                remaining.display().to_string(),
            ),
        ],
        timeout: TIMEOUT,
        memory_mb: 128,
        log_path: dir.join("stderr.log"),
        region: "us-east-1".into(),
        faults: None,
    })
    .await
    .unwrap();
    Host {
        function,
        completed,
        remaining,
    }
}

/// A Kinesis event of one record.
fn event(partition_key: &str, data: &str) -> Vec<u8> {
    json!({ "Records": [{
        "eventSource": "aws:kinesis",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": "1",
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "approximateArrivalTimestamp": 1_700_000_000.0,
        },
    }]})
    .to_string()
    .into_bytes()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_function_is_stopped_at_its_timeout_and_started_again() {
    let host = start("hung").await;
    let started = Instant::now();
    let result = host.function.invoke(event("a", "poison")).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(InvokeError::Timeout(t)) if t == TIMEOUT),
        "{result:?}"
    );
    assert!(
        result
            .unwrap_err()
            .to_string()
            .starts_with("Sandbox.Timedout"),
        "the error Lambda reports"
    );
    // Stopped at the deadline, not at a multiple of it (the margin is for a busy machine).
    assert!(elapsed < TIMEOUT * 2, "answered after {elapsed:?}");
    // A new process takes the next invocation.
    host.function.invoke(event("b", "fine")).await.unwrap();
    assert_eq!(lines(&host.completed), ["b 1"]);
    let stats = host.function.stats();
    assert_eq!(
        (stats.invocations, stats.timeouts, stats.crashes),
        (2, 1, 0)
    );
    host.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_runs_from_when_the_function_takes_the_invocation() {
    let host = start("queued").await;
    let function = &host.function;
    // The second invocation waits for the first one's timeout before the function takes it;
    // it still gets its whole timeout.
    let (hung, queued) = tokio::join!(function.invoke(event("a", "poison")), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        function.invoke(event("b", "fine")).await
    });
    assert!(matches!(hung, Err(InvokeError::Timeout(_))), "{hung:?}");
    queued.unwrap();
    let remaining: Vec<u64> = lines(&host.remaining)
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    let full = TIMEOUT.as_millis() as u64;
    assert!(
        remaining.iter().all(|&ms| ms > full / 2 && ms <= full),
        "each invocation starts with about {full} ms left: {remaining:?}"
    );
    host.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_given_up_before_it_started_never_runs() {
    let host = start("abandoned").await;
    let function = &host.function;
    let (hung, abandoned) = tokio::join!(function.invoke(event("a", "poison")), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Queued behind the hung invocation; the caller stops waiting after 0.5 s.
        tokio::time::timeout(
            Duration::from_millis(500),
            function.invoke(event("abandoned", "fine")),
        )
        .await
    });
    assert!(matches!(hung, Err(InvokeError::Timeout(_))), "{hung:?}");
    assert!(abandoned.is_err(), "the caller gave up: {abandoned:?}");
    function.invoke(event("after", "fine")).await.unwrap();
    assert_eq!(lines(&host.completed), ["after 1"]);
    assert_eq!(
        lines(&host.remaining).len(),
        2,
        "only the hung and the last invocation reached the function"
    );
    host.function.stop().await;
}

/// The transform with `STREAMLAKE_DATASET` set to `dataset` (a file written with `text`,
/// or none).
async fn transform_with_dataset(name: &str, text: Option<&str>) -> (LambdaFunction, PathBuf) {
    let dir = std::env::temp_dir().join(format!("lambda-host-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dataset = dir.join("dataset.toml");
    if let Some(text) = text {
        std::fs::write(&dataset, text).unwrap();
    }
    let binaries = streamlake::harness::binaries::Binaries::locate()
        .await
        .unwrap();
    let log = dir.join("stderr.log");
    let function = LambdaFunction::start(FunctionSpec {
        name: name.into(),
        binary: binaries.path("transform_lambda"),
        env: vec![(
            streamlake_core::dataset::DATASET_ENV.into(),
            dataset.display().to_string(),
        )],
        timeout: TIMEOUT,
        memory_mb: 128,
        log_path: log.clone(),
        region: "us-east-1".into(),
        faults: None,
    })
    .await
    .unwrap();
    (function, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_invalid_dataset_fails_the_cold_start_not_a_batch() {
    let firehose_event = json!({"invocationId": "i", "records": [{
        "recordId": "r", "approximateArrivalTimestamp": 1_633_046_400_000_i64,
        "data": base64::engine::general_purpose::STANDARD.encode(r#"{"a":1}"#),
    }]})
    .to_string()
    .into_bytes();
    for (name, text, reason) in [
        ("no-dataset", None, "dataset.toml: cannot be read"),
        (
            "bad-dataset",
            Some("name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"lng\"\n"),
            "dataset.toml:4:8: `type`: unknown variant `lng`",
        ),
    ] {
        let (function, log) = transform_with_dataset(name, text).await;
        let result = function.invoke(firehose_event.clone()).await;
        assert!(
            matches!(result, Err(InvokeError::Crashed(_))),
            "{name}: {result:?}"
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains(reason), "{name}: {logged}");
        function.stop().await;
    }
    // A valid dataset transforms the record.
    let (function, _) = transform_with_dataset(
        "good-dataset",
        Some("name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"long\"\n"),
    )
    .await;
    let response = function.invoke(firehose_event).await.unwrap();
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(response["records"][0]["result"], "Ok");
    function.stop().await;
}
