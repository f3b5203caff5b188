//! Fault injection: an HTTP proxy in front of the emulator that answers some requests
//! with an AWS error instead of forwarding them.
//!
//! The emulator never throttles, so retry paths are exercised by putting this proxy
//! between a client and the emulator (for example `AWS_ENDPOINT_URL_DYNAMODB` of the
//! consumer). The client sees real HTTP error responses, as AWS sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::error::StackError;

/// Which requests to fail, how often, and with what.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The `X-Amz-Target` of the requests (JSON protocols), e.g. `DynamoDB_20120810.UpdateItem`.
    pub target: String,
    /// Fraction (0 to 1) of matching requests that fail.
    pub rate: f64,
    /// The error's type, e.g. `ProvisionedThroughputExceededException`.
    pub error_type: String,
    /// The error's namespace, e.g. `com.amazonaws.dynamodb.v20120810`.
    pub namespace: String,
}

impl Fault {
    /// DynamoDB `UpdateItem` throttled at `rate`.
    pub fn dynamodb_update_throttling(rate: f64) -> Self {
        Self {
            target: "DynamoDB_20120810.UpdateItem".into(),
            rate,
            error_type: "ProvisionedThroughputExceededException".into(),
            namespace: "com.amazonaws.dynamodb.v20120810".into(),
        }
    }
}

struct Proxy {
    upstream: Uri,
    faults: Vec<Fault>,
    rng: std::sync::Mutex<fastrand::Rng>,
    client: Client<HttpConnector, Body>,
    injected: AtomicU64,
    forwarded: AtomicU64,
}

/// A running fault-injecting proxy.
pub struct FaultProxy {
    endpoint: String,
    proxy: Arc<Proxy>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (an `http://` endpoint) on a free loopback port.
    pub async fn start(upstream: &str, faults: Vec<Fault>, seed: u64) -> Result<Self, StackError> {
        let upstream: Uri = upstream.parse().map_err(|source| StackError::Endpoint {
            endpoint: upstream.to_owned(),
            source,
        })?;
        let proxy = Arc::new(Proxy {
            upstream,
            faults,
            rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
            client: Client::builder(TokioExecutor::new()).build_http(),
            injected: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(StackError::io("binding the fault proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(StackError::io("binding the fault proxy"))?;
        let app = Router::new().fallback(handle).with_state(proxy.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("fault proxy stopped: {e}");
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            proxy,
            task,
        })
    }

    /// The proxy's endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Requests answered with an injected error so far.
    pub fn injected(&self) -> u64 {
        self.proxy.injected.load(Ordering::Relaxed)
    }

    /// Requests forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.proxy.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(proxy): State<Arc<Proxy>>, mut request: Request) -> Response {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let fault = proxy
        .faults
        .iter()
        .find(|f| f.target == target && proxy.rng.lock().expect("not poisoned").f64() < f.rate);
    if let Some(fault) = fault {
        proxy.injected.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({
            "__type": format!("{}#{}", fault.namespace, fault.error_type),
            "message": "injected by the streamlake fault proxy",
        });
        let mut response = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        return response;
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut parts = proxy.upstream.clone().into_parts();
    parts.path_and_query = path.parse().ok();
    *request.uri_mut() = Uri::from_parts(parts).expect("upstream and path form a URI");
    proxy.forwarded.fetch_add(1, Ordering::Relaxed);
    match proxy.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("fault proxy: upstream failed: {e}"),
        )
            .into_response(),
    }
}
