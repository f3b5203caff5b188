//! The stack's HTTP front (the fault proxy): every client of the stack (its Firehose and
//! event source mapping, the Lambdas, the producer and the tools, through the endpoint
//! `up` prints) talks to it, and it
//! - answers `PutRecord`/`PutRecordBatch` of the Direct PUT delivery streams the stack
//!   plays ([`crate::http::firehose`]);
//! - sends the requests of a service to the server that answers it (the emulator, or a
//!   Node.js server such as dynalite), conditional S3 writes one at a time
//!   ([`crate::http::conditional`]);
//! - answers some requests with an error AWS documents for the call, instead of
//!   forwarding them, and holds the answers of a service back by a round trip as long as
//!   AWS's ([`crate::faults::latency`]). The emulator never fails: clients see real HTTP
//!   error responses, as AWS sends them, and retry as they would against AWS. Which calls
//!   fail and how: [`crate::faults`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::emulated::firehose::direct_put::DirectPutRoutes;
use crate::error::StackError;
use crate::faults::kinesis::PartialFailure;
use crate::faults::latency::{Delays, Service};
use crate::faults::{Call, FaultPlan, HttpError, Injector};
use crate::http::conditional::ConditionalWrites;
use crate::http::firehose::{self, Operation};

/// The largest request body the proxy reads to fail entries of (PutRecords: 5 MiB).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

struct Proxy {
    upstream: Uri,
    /// Services answered by another server than the emulator.
    routes: BTreeMap<Service, Uri>,
    injectors: BTreeMap<Call, Injector>,
    delays: BTreeMap<Service, Delays>,
    direct_put: DirectPutRoutes,
    conditional: ConditionalWrites,
    client: Client<HttpConnector, Body>,
    forwarded: AtomicU64,
}

/// A running fault proxy.
pub struct FaultProxy {
    endpoint: String,
    proxy: Arc<Proxy>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (an `http://` endpoint) on a free loopback port,
    /// failing the HTTP calls of `plan`.
    pub async fn start(upstream: &str, plan: &FaultPlan) -> Result<Self, StackError> {
        Self::start_routed(upstream, &[], plan).await
    }

    /// [`FaultProxy::start`], with the requests of some services sent to other servers
    /// (for example DynamoDB to dynalite).
    pub async fn start_routed(
        upstream: &str,
        routes: &[(Service, &str)],
        plan: &FaultPlan,
    ) -> Result<Self, StackError> {
        let uri = |endpoint: &str| {
            endpoint
                .parse::<Uri>()
                .map_err(|source| StackError::Endpoint {
                    endpoint: endpoint.to_owned(),
                    source,
                })
        };
        let upstream = uri(upstream)?;
        let routes = routes
            .iter()
            .map(|(service, endpoint)| Ok((*service, uri(endpoint)?)))
            .collect::<Result<_, StackError>>()?;
        let injectors = Call::ALL
            .into_iter()
            .filter(|c| !c.is_lambda())
            .filter_map(|c| Some((c, plan.injector(c)?)))
            .collect();
        let delays = Service::ALL
            .into_iter()
            .filter_map(|s| Some((s, plan.delays(s)?)))
            .collect();
        let proxy = Arc::new(Proxy {
            upstream,
            routes,
            injectors,
            delays,
            direct_put: DirectPutRoutes::default(),
            conditional: ConditionalWrites::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
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

    /// Requests answered with an injected error (or with failed entries) so far.
    pub fn injected(&self) -> u64 {
        self.proxy.injectors.values().map(Injector::injected).sum()
    }

    /// Faults injected so far, per call.
    pub fn injected_by_call(&self) -> BTreeMap<Call, u64> {
        self.proxy
            .injectors
            .iter()
            .map(|(c, i)| (*c, i.injected()))
            .collect()
    }

    /// The Direct PUT delivery streams this front answers for.
    pub fn direct_put(&self) -> &DirectPutRoutes {
        &self.proxy.direct_put
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

/// The call a request makes, among those that can be faulted.
fn classify(request: &Request) -> Option<Call> {
    if let Some(target) = request.headers().get("x-amz-target") {
        return match target.to_str().ok()? {
            "Kinesis_20131202.PutRecords" => Some(Call::KinesisPutRecords),
            "Kinesis_20131202.GetRecords" => Some(Call::KinesisGetRecords),
            "DynamoDB_20120810.UpdateItem" => Some(Call::DynamoDbUpdateItem),
            "AmazonSQS.SendMessage" => Some(Call::SqsSendMessage),
            _ => None,
        };
    }
    // S3 (path style): PUT /bucket/key, not a copy, a part or a sub-resource (`?tagging`).
    let uri = request.uri();
    let object = uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let plain = uri
        .query()
        .is_none_or(|q| q.split('&').all(|p| p.is_empty() || p == "x-id=PutObject"));
    let copy = request.headers().contains_key("x-amz-copy-source");
    (request.method() == Method::PUT && object && plain && !copy).then_some(Call::S3PutObject)
}

async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    // A round trip as long as AWS's, whether the call then fails or not.
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok());
    if let Some(delays) = Service::of_target(target).and_then(|s| proxy.delays.get(&s)) {
        tokio::time::sleep(delays.next()).await;
    }
    if let Some(operation) = Operation::of_target(target) {
        return proxy.firehose(operation, request).await;
    }
    let Some((call, injector)) =
        classify(&request).and_then(|c| Some((c, proxy.injectors.get(&c)?)))
    else {
        return proxy.forward(request).await;
    };
    if !injector.roll() {
        return proxy.forward(request).await;
    }
    if call == Call::KinesisPutRecords && injector.coin() {
        return proxy.fail_entries(injector, request).await;
    }
    let errors = call.errors();
    let error = errors[injector.below(errors.len())];
    tracing::debug!(%call, code = error.code, "fault injected");
    error_response(error, call)
}

impl Proxy {
    /// Answers a Direct PUT call of a delivery stream the stack plays; forwards any other.
    async fn firehose(&self, operation: Operation, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return json_response(firehose::Answer::error(
                413,
                "InvalidArgumentException",
                "the request is larger than Firehose accepts",
            ));
        };
        let Some(inlet) = firehose::stream_name(&body).and_then(|s| self.direct_put.get(&s)) else {
            return self
                .forward(Request::from_parts(parts, Body::from(body)))
                .await;
        };
        let injector = (operation == Operation::PutRecordBatch)
            .then(|| self.injectors.get(&Call::FirehosePutRecordBatch))
            .flatten()
            .filter(|i| i.roll());
        let failing = match injector {
            Some(injector) if !injector.coin() => {
                let errors = Call::FirehosePutRecordBatch.errors();
                let error = errors[injector.below(errors.len())];
                return error_response(error, Call::FirehosePutRecordBatch);
            }
            other => other,
        };
        json_response(firehose::answer(operation, &body, &inlet, failing).await)
    }

    async fn forward(&self, mut request: Request) -> Response {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok());
        let upstream = Service::of_target(target)
            .and_then(|s| self.routes.get(&s))
            .unwrap_or(&self.upstream);
        let mut parts = upstream.clone().into_parts();
        parts.path_and_query = path.parse().ok();
        *request.uri_mut() = Uri::from_parts(parts).expect("upstream and path form a URI");
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let _turn = self.conditional.turn(&request).await;
        match self.client.request(request).await {
            Ok(response) => response.map(Body::new),
            Err(e) => (
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream failed: {e}"),
            )
                .into_response(),
        }
    }

    /// Forwards a PutRecords request without some of its entries, and answers with those
    /// entries failed inside an HTTP 200.
    async fn fail_entries(&self, injector: &Injector, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return (StatusCode::BAD_REQUEST, "fault proxy: unreadable body").into_response();
        };
        let Some(failure) = PartialFailure::choose(injector, &body) else {
            return self
                .forward(Request::from_parts(parts, Body::from(body)))
                .await;
        };
        let upstream = if failure.fails_all() {
            None
        } else {
            let kept = failure
                .request(&body)
                .expect("chosen from a PutRecords body");
            parts.headers.insert("content-length", kept.len().into());
            let response = self
                .forward(Request::from_parts(parts, Body::from(kept)))
                .await;
            if response.status() != StatusCode::OK {
                return response;
            }
            let (head, body) = response.into_parts();
            match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(bytes) => Some((head, bytes)),
                Err(e) => {
                    return (StatusCode::BAD_GATEWAY, format!("fault proxy: {e}")).into_response();
                }
            }
        };
        let Some(answer) = failure.response(upstream.as_ref().map(|(_, b)| b.as_ref())) else {
            return (
                StatusCode::BAD_GATEWAY,
                "fault proxy: unexpected PutRecords answer",
            )
                .into_response();
        };
        tracing::debug!(call = %Call::KinesisPutRecords, "entries failed inside a 200");
        let mut response = Response::new(Body::from(Bytes::from(answer)));
        if let Some((head, _)) = upstream {
            *response.headers_mut() = head.headers;
            // The body changed: its length and checksum are the proxy's now.
            response.headers_mut().remove("content-length");
            response.headers_mut().remove("x-amz-crc32");
        }
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        response
    }
}

/// The error response of `error` in the call's protocol.
fn error_response(error: HttpError, call: Call) -> Response {
    let status = StatusCode::from_u16(error.status).expect("documented statuses are valid");
    let request_id = uuid::Uuid::new_v4().to_string();
    let (body, content_type) = if error.xml {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>\
             <RequestId>{request_id}</RequestId></Error>",
            error.code, error.message
        );
        (body, "application/xml")
    } else {
        let body = serde_json::json!({ "__type": error.code, "message": error.message });
        let content_type = match call {
            Call::KinesisPutRecords | Call::KinesisGetRecords | Call::FirehosePutRecordBatch => {
                "application/x-amz-json-1.1"
            }
            _ => "application/x-amz-json-1.0",
        };
        (body.to_string(), content_type)
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&request_id).expect("a UUID is a header value"),
    );
    response
}

/// An answer of the Firehose API (AWS JSON 1.1).
fn json_response(answer: firehose::Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn request(method: Method, uri: &str, target: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(target) = target {
            builder = builder.header("x-amz-target", target);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn recognises_the_calls_that_can_fail() {
        let cases = [
            (
                request(Method::POST, "/", Some("Kinesis_20131202.PutRecords")),
                Some(Call::KinesisPutRecords),
            ),
            (
                request(Method::POST, "/", Some("Kinesis_20131202.GetRecords")),
                Some(Call::KinesisGetRecords),
            ),
            (
                request(Method::POST, "/", Some("Kinesis_20131202.ListShards")),
                None,
            ),
            (
                request(Method::POST, "/", Some("DynamoDB_20120810.UpdateItem")),
                Some(Call::DynamoDbUpdateItem),
            ),
            (
                request(Method::POST, "/", Some("AmazonSQS.SendMessage")),
                Some(Call::SqsSendMessage),
            ),
            (
                request(Method::PUT, "/lake/data/a.json?x-id=PutObject", None),
                Some(Call::S3PutObject),
            ),
            (
                request(Method::PUT, "/lake/data/a.json", None),
                Some(Call::S3PutObject),
            ),
            (request(Method::PUT, "/lake", None), None),
            (request(Method::PUT, "/lake/a?tagging", None), None),
            (
                request(Method::PUT, "/lake/a?partNumber=1&uploadId=x", None),
                None,
            ),
            (request(Method::GET, "/lake/data/a.json", None), None),
        ];
        for (request, call) in cases {
            assert_eq!(
                classify(&request),
                call,
                "{} {}",
                request.method(),
                request.uri()
            );
        }
    }

    #[tokio::test]
    async fn answers_of_a_delayed_service_take_at_least_the_delay() {
        // An upstream that answers at once.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let upstream = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(|| async { "ok" });
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let plan = FaultPlan::default().with_latency("dynamodb=60".parse().unwrap());
        let proxy = FaultProxy::start(&upstream, &plan).await.unwrap();
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build_http();
        let send = |target: Option<&'static str>| {
            let mut builder = Request::builder()
                .method(Method::POST)
                .uri(format!("{}/", proxy.endpoint()));
            if let Some(t) = target {
                builder = builder.header("x-amz-target", t);
            }
            let request = builder.body(Body::empty()).unwrap();
            let client = client.clone();
            async move {
                let start = std::time::Instant::now();
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                start.elapsed()
            }
        };
        // Sleeping guarantees at least the delay: a lower bound only.
        assert!(send(Some("DynamoDB_20120810.UpdateItem")).await >= Duration::from_millis(60));
        assert!(send(Some("DynamoDB_20120810.GetItem")).await >= Duration::from_millis(60));
        assert_eq!(proxy.forwarded(), 2);
        server.abort();
    }
}
