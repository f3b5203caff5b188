//! Faults injected on purpose: which calls fail, how often, and with which of the errors
//! AWS documents for each call.
//!
//! A [`FaultPlan`] is what `streamlake up --inject SERVICE:OPERATION=RATE` builds. Each
//! faulted [`Call`] gets an [`Injector`] (its rate and its own seeded random numbers, so
//! `--inject-seed` makes a run reproducible up to the order of concurrent requests). The
//! HTTP calls are failed by the fault proxy in front of the emulator
//! ([`crate::http::faults`]); the Lambda calls by the Lambda host, which stops the function
//! process as Lambda would ([`crate::emulated::lambda_host`]).

pub mod kinesis;
pub mod latency;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

use latency::{Delays, LatencySpec, Service};

/// A call of the pipeline that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// `kinesis:PutRecords` (the producer, redrive).
    KinesisPutRecords,
    /// `kinesis:GetRecords` (Firehose and the event source mapping reading shards).
    KinesisGetRecords,
    /// `s3:PutObject` (Firehose delivery, dead letters, compaction).
    S3PutObject,
    /// `dynamodb:UpdateItem` (the consumer's writes).
    DynamoDbUpdateItem,
    /// `sqs:SendMessage` (the mapping's on-failure destination).
    SqsSendMessage,
    /// `lambda:transform` (Firehose invoking the transform).
    LambdaTransform,
    /// `lambda:consumer` (the mapping invoking the consumer).
    LambdaConsumer,
    /// `firehose:PutRecordBatch` (Direct PUT producers).
    FirehosePutRecordBatch,
}

impl Call {
    /// Every call that can be faulted.
    pub const ALL: [Call; 8] = [
        Call::KinesisPutRecords,
        Call::KinesisGetRecords,
        Call::S3PutObject,
        Call::DynamoDbUpdateItem,
        Call::SqsSendMessage,
        Call::LambdaTransform,
        Call::LambdaConsumer,
        Call::FirehosePutRecordBatch,
    ];

    /// `service:operation`, as `--inject` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Call::KinesisPutRecords => "kinesis:PutRecords",
            Call::KinesisGetRecords => "kinesis:GetRecords",
            Call::S3PutObject => "s3:PutObject",
            Call::DynamoDbUpdateItem => "dynamodb:UpdateItem",
            Call::SqsSendMessage => "sqs:SendMessage",
            Call::LambdaTransform => "lambda:transform",
            Call::LambdaConsumer => "lambda:consumer",
            Call::FirehosePutRecordBatch => "firehose:PutRecordBatch",
        }
    }

    /// Whether the call is a Lambda invocation (failed by the Lambda host, not over HTTP).
    pub fn is_lambda(self) -> bool {
        matches!(self, Call::LambdaTransform | Call::LambdaConsumer)
    }

    /// The errors AWS documents for this call that the fault injects, one picked at random
    /// per fault. (Lambda calls fail by the process crashing or timing out instead.)
    pub fn errors(self) -> &'static [HttpError] {
        match self {
            Call::KinesisPutRecords => PUT_RECORDS_ERRORS,
            Call::KinesisGetRecords => GET_RECORDS_ERRORS,
            Call::S3PutObject => PUT_OBJECT_ERRORS,
            Call::DynamoDbUpdateItem => UPDATE_ITEM_ERRORS,
            Call::SqsSendMessage => SEND_MESSAGE_ERRORS,
            Call::FirehosePutRecordBatch => PUT_RECORD_BATCH_ERRORS,
            Call::LambdaTransform | Call::LambdaConsumer => &[],
        }
    }
}

/// PutRecords throttled as a whole request; the other half of its faults fail entries
/// inside an HTTP 200 ([`kinesis::PartialFailure`]).
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>
const PUT_RECORDS_ERRORS: &[HttpError] = &[HttpError::json(
    400,
    "ProvisionedThroughputExceededException",
)];

/// PutRecordBatch refused as a whole request; the other half of its faults fail entries
/// inside an HTTP 200 ([`crate::http::firehose`]).
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
const PUT_RECORD_BATCH_ERRORS: &[HttpError] =
    &[HttpError::json(500, "ServiceUnavailableException")];

/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>
const GET_RECORDS_ERRORS: &[HttpError] = &[
    HttpError::json(400, "ProvisionedThroughputExceededException"),
    HttpError::json(400, "ExpiredIteratorException"),
];

/// <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>
const PUT_OBJECT_ERRORS: &[HttpError] = &[
    HttpError::xml(503, "SlowDown", "Please reduce your request rate."),
    HttpError::xml(
        500,
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
];

/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html>
const UPDATE_ITEM_ERRORS: &[HttpError] = &[
    HttpError::json(400, "ProvisionedThroughputExceededException"),
    HttpError::json(400, "ThrottlingException"),
    HttpError::json(500, "InternalServerError"),
];

/// The common errors of every AWS API (SQS documents no throttling error of its own).
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html>
const SEND_MESSAGE_ERRORS: &[HttpError] = &[
    HttpError::json(400, "ThrottlingException"),
    HttpError::json(500, "InternalFailure"),
];

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error response AWS documents for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status.
    pub status: u16,
    /// The error code (`__type` of the JSON protocols, `Code` of S3's XML).
    pub code: &'static str,
    /// The message; S3 documents one per code.
    pub message: &'static str,
    /// Whether the body is S3's XML (otherwise the AWS JSON protocol's).
    pub xml: bool,
}

impl HttpError {
    const fn json(status: u16, code: &'static str) -> Self {
        Self {
            status,
            code,
            message: "injected by the streamlake fault proxy",
            xml: false,
        }
    }

    const fn xml(status: u16, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
            xml: true,
        }
    }
}

/// A `--inject` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultSpecError {
    /// Not `SERVICE:OPERATION=RATE`.
    #[error("{0:?} is not SERVICE:OPERATION=RATE (for example kinesis:PutRecords=0.1)")]
    Syntax(String),
    /// The call is not one the pipeline makes.
    #[error("{name:?} is not a call that can be faulted; one of: {}", Call::ALL.map(Call::name).join(", "))]
    UnknownCall {
        /// The `SERVICE:OPERATION` given.
        name: String,
    },
    /// The rate is not a number from 0 to 1.
    #[error("rate {0:?} is not a number from 0 to 1")]
    Rate(String),
}

/// One `--inject SERVICE:OPERATION=RATE`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultSpec {
    /// The call.
    pub call: Call,
    /// Fraction (0 to 1) of the calls that fail.
    pub rate: f64,
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rate) = s
            .split_once('=')
            .ok_or_else(|| FaultSpecError::Syntax(s.to_owned()))?;
        let (service, operation) = name
            .split_once(':')
            .ok_or_else(|| FaultSpecError::Syntax(s.to_owned()))?;
        let call = Call::ALL
            .into_iter()
            .find(|c| {
                let (cs, co) = c.name().split_once(':').expect("names have a colon");
                cs.eq_ignore_ascii_case(service.trim()) && co.eq_ignore_ascii_case(operation.trim())
            })
            .ok_or_else(|| FaultSpecError::UnknownCall {
                name: name.to_owned(),
            })?;
        let rate = rate
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| FaultSpecError::Rate(rate.to_owned()))?;
        Ok(Self { call, rate })
    }
}

/// The faults of a run: a rate per call, a delay per service, and the seed of their
/// random numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    rates: BTreeMap<Call, f64>,
    latencies: BTreeMap<Service, LatencySpec>,
    seed: u64,
}

impl FaultPlan {
    /// The faults `specs` ask for (a call named twice keeps the last rate), seeded.
    pub fn new(specs: impl IntoIterator<Item = FaultSpec>, seed: u64) -> Self {
        Self {
            rates: specs
                .into_iter()
                .filter(|s| s.rate > 0.0)
                .map(|s| (s.call, s.rate))
                .collect(),
            latencies: BTreeMap::new(),
            seed,
        }
    }

    /// Adds (or replaces) the delay of a service.
    pub fn with_latency(mut self, spec: LatencySpec) -> Self {
        if spec.delay.is_zero() {
            self.latencies.remove(&spec.service);
        } else {
            self.latencies.insert(spec.service, spec);
        }
        self
    }

    /// The delays of `service`'s answers, if any: seeded from the plan's seed and the
    /// service.
    pub fn delays(&self, service: Service) -> Option<Delays> {
        let spec = *self.latencies.get(&service)?;
        let index = Service::ALL.iter().position(|s| *s == service).unwrap_or(0) as u64;
        Some(Delays::new(
            spec,
            self.seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (index + 1),
        ))
    }

    /// Adds (or replaces) one fault.
    pub fn with(mut self, call: Call, rate: f64) -> Self {
        if rate > 0.0 {
            self.rates.insert(call, rate);
        } else {
            self.rates.remove(&call);
        }
        self
    }

    /// Whether no call is faulted or delayed.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.latencies.is_empty()
    }

    /// Whether any call made over HTTP (through the fault proxy) is faulted or delayed.
    pub fn has_http_faults(&self) -> bool {
        self.rates.keys().any(|c| !c.is_lambda()) || !self.latencies.is_empty()
    }

    /// The faulted calls and their rates.
    pub fn rates(&self) -> impl Iterator<Item = (Call, f64)> + '_ {
        self.rates.iter().map(|(c, r)| (*c, *r))
    }

    /// The injector of `call`, if it is faulted: its random numbers are seeded from the
    /// plan's seed and the call, so each call's sequence does not depend on the others'.
    pub fn injector(&self, call: Call) -> Option<Injector> {
        let rate = *self.rates.get(&call)?;
        let index = Call::ALL.iter().position(|c| *c == call).unwrap_or(0) as u64;
        Some(Injector {
            rate,
            rng: Mutex::new(fastrand::Rng::with_seed(
                self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index + 1),
            )),
            injected: AtomicU64::new(0),
        })
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rates()
            .map(|(c, r)| format!("{c}={r}"))
            .chain(self.latencies.values().map(|l| format!("latency {l} ms")))
            .collect();
        write!(f, "{} (seed {})", parts.join(", "), self.seed)
    }
}

/// Decides, call by call, whether to fail and how.
#[derive(Debug)]
pub struct Injector {
    rate: f64,
    rng: Mutex<fastrand::Rng>,
    injected: AtomicU64,
}

impl Injector {
    /// Whether this call fails (counted when it does).
    pub fn roll(&self) -> bool {
        let hit = self.rng().f64() < self.rate;
        if hit {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// A random number below `n` (to pick an error, or entries to fail).
    pub fn below(&self, n: usize) -> usize {
        self.rng().usize(..n.max(1))
    }

    /// Whether to take an even chance.
    pub fn coin(&self) -> bool {
        self.rng().bool()
    }

    /// Which of a request's `entries` fail, and with which of `errors`: each entry with
    /// even chance, at least one (for answers that fail entries inside an HTTP 200).
    pub fn fail_entries<T: Copy>(&self, entries: usize, errors: &[T]) -> Vec<Option<T>> {
        let mut failed: Vec<Option<T>> = (0..entries)
            .map(|_| self.coin().then(|| errors[self.below(errors.len())]))
            .collect();
        if entries > 0 && failed.iter().all(Option::is_none) {
            failed[self.below(entries)] = Some(errors[self.below(errors.len())]);
        }
        failed
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, fastrand::Rng> {
        self.rng.lock().expect("not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_call_case_insensitively() {
        for call in Call::ALL {
            let spec: FaultSpec = format!("{}=0.25", call.name().to_uppercase())
                .parse()
                .unwrap();
            assert_eq!(spec, FaultSpec { call, rate: 0.25 });
        }
    }

    #[test]
    fn refuses_what_is_not_a_fault() {
        assert!(matches!(
            "kinesis:PutRecords".parse::<FaultSpec>(),
            Err(FaultSpecError::Syntax(_))
        ));
        assert!(matches!(
            "kinesis:ListShards=0.1".parse::<FaultSpec>(),
            Err(FaultSpecError::UnknownCall { .. })
        ));
        for rate in ["1.5", "-0.1", "often", "NaN"] {
            assert!(matches!(
                format!("s3:PutObject={rate}").parse::<FaultSpec>(),
                Err(FaultSpecError::Rate(_))
            ));
        }
        let message = "sqs:Send=0.1".parse::<FaultSpec>().unwrap_err().to_string();
        assert!(message.contains("sqs:SendMessage"), "{message}");
    }

    #[test]
    fn the_same_seed_fails_the_same_calls() {
        let plan = FaultPlan::new(["s3:PutObject=0.3".parse().unwrap()], 7);
        let draws = |plan: &FaultPlan| {
            let injector = plan.injector(Call::S3PutObject).unwrap();
            (0..200).map(|_| injector.roll()).collect::<Vec<_>>()
        };
        let first = draws(&plan);
        assert_eq!(first, draws(&plan));
        let hits = first.iter().filter(|h| **h).count();
        assert!((30..=90).contains(&hits), "{hits} of 200 at 0.3");
        assert_ne!(
            first,
            draws(&FaultPlan::new(["s3:PutObject=0.3".parse().unwrap()], 8))
        );
        assert!(plan.injector(Call::SqsSendMessage).is_none());
    }

    #[test]
    fn only_non_lambda_faults_need_the_proxy() {
        let lambda = FaultPlan::default().with(Call::LambdaConsumer, 0.1);
        assert!(!lambda.has_http_faults());
        assert!(lambda.with(Call::KinesisPutRecords, 0.1).has_http_faults());
    }
}
