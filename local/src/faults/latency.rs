//! Round trips added on purpose: the emulator answers on loopback in a fraction of a
//! millisecond, AWS in a few milliseconds (DynamoDB) to tens of milliseconds (S3). The
//! fault proxy holds each answer of a service back by a delay, so that concurrency and
//! request counts show in measurements as they would on AWS.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use thiserror::Error;

/// A service the stack talks to over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Kinesis Data Streams.
    Kinesis,
    /// DynamoDB.
    DynamoDb,
    /// S3.
    S3,
    /// SQS.
    Sqs,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 4] = [Self::Kinesis, Self::DynamoDb, Self::S3, Self::Sqs];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kinesis => "kinesis",
            Self::DynamoDb => "dynamodb",
            Self::S3 => "s3",
            Self::Sqs => "sqs",
        }
    }

    /// The service of a request: by its `X-Amz-Target` (the JSON protocols of Kinesis,
    /// DynamoDB and SQS), or S3 (REST, no target).
    pub fn of_target(target: Option<&str>) -> Option<Self> {
        let Some(target) = target else {
            return Some(Self::S3);
        };
        let prefix = target.split_once('.').map_or(target, |(p, _)| p);
        match prefix {
            "Kinesis_20131202" => Some(Self::Kinesis),
            "DynamoDB_20120810" => Some(Self::DynamoDb),
            "AmazonSQS" => Some(Self::Sqs),
            _ => None,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--inject-latency` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LatencySpecError {
    /// Not `SERVICE=MS` or `SERVICE=MS±JITTER`.
    #[error("{0:?} is not SERVICE=MS or SERVICE=MS±JITTER (for example dynamodb=5 or s3=20±5)")]
    Syntax(String),
    /// Not a service of the stack.
    #[error("{0:?} is not one of kinesis, dynamodb, s3, sqs")]
    UnknownService(String),
}

/// One `--inject-latency SERVICE=MS[±JITTER]`: each answer of the service is held back
/// by `delay`, plus or minus up to `jitter` (uniformly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySpec {
    /// The service.
    pub service: Service,
    /// The mean added delay.
    pub delay: Duration,
    /// The largest deviation from it.
    pub jitter: Duration,
}

impl FromStr for LatencySpec {
    type Err = LatencySpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || LatencySpecError::Syntax(s.to_owned());
        let (name, time) = s.split_once('=').ok_or_else(syntax)?;
        let service = Service::ALL
            .into_iter()
            .find(|svc| svc.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| LatencySpecError::UnknownService(name.trim().to_owned()))?;
        let (delay, jitter) = match time.split_once('±').or_else(|| time.split_once("+-")) {
            Some((d, j)) => (d, j),
            None => (time, "0"),
        };
        let millis = |t: &str| {
            t.trim()
                .trim_end_matches("ms")
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m >= 0.0)
                .map(|m| Duration::from_secs_f64(m / 1000.0))
        };
        let (delay, jitter) = (
            millis(delay).ok_or_else(syntax)?,
            millis(jitter).ok_or_else(syntax)?,
        );
        if jitter > delay {
            return Err(syntax());
        }
        Ok(Self {
            service,
            delay,
            jitter,
        })
    }
}

impl fmt::Display for LatencySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(f, "{}={}", self.service, ms(self.delay))?;
        if !self.jitter.is_zero() {
            write!(f, "±{}", ms(self.jitter))?;
        }
        Ok(())
    }
}

/// Draws the delays of one service (seeded, like the faults).
#[derive(Debug)]
pub struct Delays {
    spec: LatencySpec,
    rng: Mutex<fastrand::Rng>,
}

impl Delays {
    /// The delays `spec` asks for, from random numbers seeded with `seed`.
    pub fn new(spec: LatencySpec, seed: u64) -> Self {
        Self {
            spec,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// The next delay.
    pub fn next(&self) -> Duration {
        let LatencySpec { delay, jitter, .. } = self.spec;
        if jitter.is_zero() {
            return delay;
        }
        let unit = self.rng.lock().expect("not poisoned").f64() * 2.0 - 1.0;
        let offset = jitter.mul_f64(unit.abs());
        if unit < 0.0 {
            delay - offset
        } else {
            delay + offset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delays_with_and_without_jitter() {
        let spec: LatencySpec = "DynamoDB=5".parse().unwrap();
        assert_eq!(
            spec,
            LatencySpec {
                service: Service::DynamoDb,
                delay: Duration::from_millis(5),
                jitter: Duration::ZERO
            }
        );
        let spec: LatencySpec = "s3=20±5".parse().unwrap();
        assert_eq!(
            (spec.delay, spec.jitter),
            (Duration::from_millis(20), Duration::from_millis(5))
        );
        assert_eq!("s3=20+-5ms".parse::<LatencySpec>().unwrap(), spec);
        assert_eq!(spec.to_string(), "s3=20±5");
        assert_eq!(
            "kinesis=0.5".parse::<LatencySpec>().unwrap().delay,
            Duration::from_micros(500)
        );
        for bad in ["s3", "s3=", "s3=fast", "s3=-1", "s3=5±10", "lambda=5"] {
            assert!(bad.parse::<LatencySpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn delays_stay_within_the_jitter() {
        let delays = Delays::new("sqs=10±4".parse().unwrap(), 3);
        let drawn: Vec<Duration> = (0..500).map(|_| delays.next()).collect();
        assert!(drawn.iter().all(|d| (6..=14).contains(&d.as_millis())));
        let mean = drawn.iter().sum::<Duration>().as_secs_f64() / 500.0;
        assert!((0.009..0.011).contains(&mean), "{mean}");
    }

    #[test]
    fn recognises_the_service_of_a_request() {
        assert_eq!(
            Service::of_target(Some("Kinesis_20131202.GetRecords")),
            Some(Service::Kinesis)
        );
        assert_eq!(
            Service::of_target(Some("DynamoDB_20120810.UpdateItem")),
            Some(Service::DynamoDb)
        );
        assert_eq!(
            Service::of_target(Some("AmazonSQS.SendMessage")),
            Some(Service::Sqs)
        );
        assert_eq!(Service::of_target(None), Some(Service::S3));
        assert_eq!(Service::of_target(Some("Other.Call")), None);
    }
}
