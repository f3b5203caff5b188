//! A delivery stream's settings as the Firehose API holds them: the local stack creates
//! each delivery stream it plays with `CreateDeliveryStream` on the emulator (the settings
//! `infra/template.yaml` gives it on AWS), and the local Firehose plays what
//! `DescribeDeliveryStream` answers. One source of truth, visible to any AWS client
//! (`aws firehose describe-delivery-stream --endpoint-url ...`).
//!
//! A few values of the local stack are finer than the API can hold (buffers below 1 MiB
//! and intervals below a second, which tests use to see data at once): the API field gets
//! the nearest value AWS accepts and a tag of the delivery stream (`streamlake:local:*`)
//! holds the exact one, which the local Firehose prefers.
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html>
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html>
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_ProcessorParameter.html>

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DataFormatConversionConfiguration, DeliveryStreamType,
    Deserializer, DynamicPartitioningConfiguration, ExtendedS3DestinationConfiguration,
    HiveJsonSerDe, InputFormatConfiguration, KinesisStreamSourceConfiguration,
    OutputFormatConfiguration, ParquetCompression, ParquetSerDe, ProcessingConfiguration,
    Processor, ProcessorParameter, ProcessorParameterName, ProcessorType, RetryOptions,
    SchemaConfiguration, Serializer, Tag,
};
use aws_sdk_firehose::types::{DeliveryStreamDescription, DeliveryStreamStatus};
use streamlake_core::layout::OutputFormat;
use streamlake_core::names;
use thiserror::Error;

use crate::error::StackError;

const MIB: usize = 1024 * 1024;
/// Tag holding the buffer size in bytes when `SizeInMBs` cannot.
const TAG_BUFFER_BYTES: &str = "streamlake:local:buffer-bytes";
/// Tag holding the buffer interval in milliseconds when `IntervalInSeconds` cannot.
const TAG_BUFFER_INTERVAL_MS: &str = "streamlake:local:buffer-interval-ms";
/// Tag holding the processor's buffer in bytes when `BufferSizeInMBs` cannot.
const TAG_PROCESSOR_BUFFER_BYTES: &str = "streamlake:local:processor-buffer-bytes";
/// The timestamp formats of the lake's records, as the template's Hive JSON SerDe lists them.
const TIMESTAMP_FORMATS: [&str; 4] = [
    "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSS'Z'",
];

/// Where a delivery stream's records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Kinesis data stream, read shard by shard.
    Kinesis {
        /// The stream's ARN.
        stream_arn: String,
    },
    /// Producers calling `PutRecord` and `PutRecordBatch`.
    DirectPut,
}

impl Source {
    /// The Kinesis stream's name, for a Kinesis source.
    pub fn stream_name(&self) -> Option<&str> {
        match self {
            Source::Kinesis { stream_arn } => stream_arn.rsplit_once("stream/").map(|(_, n)| n),
            Source::DirectPut => None,
        }
    }
}

/// The Lambda processor of a delivery stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaProcessor {
    /// The transform function's ARN.
    pub function_arn: String,
    /// Bytes of records per invocation (Firehose: 0.2-3 MB; default 1 MB).
    pub buffer_bytes: usize,
    /// Retries of a failed invocation (Firehose: 0-300; default 3).
    pub retries: u32,
}

/// What the local Firehose plays of a delivery stream with an extended S3 destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Delivery stream name (first part of every object name).
    pub name: String,
    /// Kinesis stream or Direct PUT.
    pub source: Source,
    /// Destination bucket.
    pub bucket: String,
    /// S3 prefix template of delivered records.
    pub prefix: String,
    /// S3 prefix template of failed records.
    pub error_prefix: String,
    /// Deliver when this many bytes are buffered (Firehose: 1-128 MiB; default 5 MiB).
    pub buffer_bytes: usize,
    /// Deliver when the oldest buffered record is this old (Firehose: 0-900 s).
    pub buffer_interval: Duration,
    /// The transform Lambda.
    pub processor: LambdaProcessor,
    /// Format of the data objects: GZIP compression, or record-format conversion to Parquet.
    pub format: OutputFormat,
    /// The Glue table the Parquet conversion names (the dataset's): `Some` exactly when
    /// `format` is Parquet.
    pub conversion_table: Option<String>,
}

/// A description the local Firehose cannot play.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingsError {
    /// The destination is not an extended S3 destination.
    #[error("delivery stream {0} has no extended S3 destination")]
    NoS3Destination(String),
    /// A setting is missing or does not parse.
    #[error(
        "delivery stream {stream}: {setting} is {value:?}, which the local Firehose cannot play"
    )]
    Unplayable {
        /// The delivery stream.
        stream: String,
        /// The setting's name in the API.
        setting: &'static str,
        /// Its value.
        value: String,
    },
}

impl DeliverySettings {
    /// The IAM role Firehose assumes (the emulator does not check it).
    fn role_arn() -> String {
        format!(
            "arn:aws:iam::{}:role/{}-delivery-role",
            names::LOCAL_ACCOUNT,
            names::DELIVERY_STREAM
        )
    }

    /// Creates the delivery stream through the API.
    pub async fn create(&self, firehose: &aws_sdk_firehose::Client) -> Result<(), StackError> {
        let operation = || format!("CreateDeliveryStream {}", self.name);
        let mut request = firehose
            .create_delivery_stream()
            .delivery_stream_name(&self.name)
            .extended_s3_destination_configuration(
                self.destination()
                    .map_err(|e| StackError::aws(operation(), e))?,
            );
        request = match &self.source {
            Source::Kinesis { stream_arn } => request
                .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
                .kinesis_stream_source_configuration(
                    KinesisStreamSourceConfiguration::builder()
                        .kinesis_stream_arn(stream_arn)
                        .role_arn(Self::role_arn())
                        .build()
                        .map_err(|e| StackError::aws(operation(), e))?,
                ),
            Source::DirectPut => request.delivery_stream_type(DeliveryStreamType::DirectPut),
        };
        for (key, value) in self.local_tags() {
            let tag = Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| StackError::aws(operation(), e))?;
            request = request.tags(tag);
        }
        request
            .send()
            .await
            .map_err(|e| StackError::aws(operation(), e))?;
        Ok(())
    }

    /// The extended S3 destination, as the template configures it.
    fn destination(
        &self,
    ) -> Result<ExtendedS3DestinationConfiguration, aws_sdk_firehose::error::BuildError> {
        let parameter = |name, value: String| {
            ProcessorParameter::builder()
                .parameter_name(name)
                .parameter_value(value)
                .build()
        };
        let processor = Processor::builder()
            .r#type(ProcessorType::Lambda)
            .parameters(parameter(
                ProcessorParameterName::LambdaArn,
                self.processor.function_arn.clone(),
            )?)
            .parameters(parameter(
                ProcessorParameterName::BufferSizeInMb,
                processor_mb(self.processor.buffer_bytes),
            )?)
            .parameters(parameter(
                ProcessorParameterName::LambdaNumberOfRetries,
                self.processor.retries.to_string(),
            )?)
            .build()?;
        let mut destination = ExtendedS3DestinationConfiguration::builder()
            .bucket_arn(format!("arn:aws:s3:::{}", self.bucket))
            .role_arn(Self::role_arn())
            .prefix(&self.prefix)
            .error_output_prefix(&self.error_prefix)
            .buffering_hints(
                BufferingHints::builder()
                    .size_in_mbs(buffer_mib(self.buffer_bytes))
                    .interval_in_seconds(interval_seconds(self.buffer_interval))
                    .build(),
            )
            .dynamic_partitioning_configuration(
                DynamicPartitioningConfiguration::builder()
                    .enabled(true)
                    .retry_options(RetryOptions::builder().duration_in_seconds(300).build())
                    .build(),
            )
            .processing_configuration(
                ProcessingConfiguration::builder()
                    .enabled(true)
                    .processors(processor)
                    .build(),
            )
            .compression_format(match self.format {
                OutputFormat::NdjsonGzip => CompressionFormat::Gzip,
                OutputFormat::Ndjson | OutputFormat::Parquet => CompressionFormat::Uncompressed,
            });
        if !self.format.extension().is_empty() {
            destination = destination.file_extension(self.format.extension());
        }
        if let Some(table) = &self.conversion_table {
            destination =
                destination.data_format_conversion_configuration(parquet_conversion(table));
        }
        destination.build()
    }

    /// The exact values the API fields cannot hold, as tags.
    fn local_tags(&self) -> Vec<(&'static str, String)> {
        let mut tags = Vec::new();
        if buffer_mib(self.buffer_bytes) as usize * MIB != self.buffer_bytes {
            tags.push((TAG_BUFFER_BYTES, self.buffer_bytes.to_string()));
        }
        if Duration::from_secs(interval_seconds(self.buffer_interval) as u64)
            != self.buffer_interval
        {
            tags.push((
                TAG_BUFFER_INTERVAL_MS,
                self.buffer_interval.as_millis().to_string(),
            ));
        }
        if parse_mb(&processor_mb(self.processor.buffer_bytes)) != Some(self.processor.buffer_bytes)
        {
            tags.push((
                TAG_PROCESSOR_BUFFER_BYTES,
                self.processor.buffer_bytes.to_string(),
            ));
        }
        tags
    }

    /// The settings of a described delivery stream, with its tags.
    pub fn from_description(
        description: &DeliveryStreamDescription,
        tags: &HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        let stream = description.delivery_stream_name().to_owned();
        let unplayable = |setting, value: &dyn std::fmt::Debug| SettingsError::Unplayable {
            stream: stream.clone(),
            setting,
            value: format!("{value:?}"),
        };
        let destination = description
            .destinations()
            .iter()
            .find_map(|d| d.extended_s3_destination_description())
            .ok_or_else(|| SettingsError::NoS3Destination(stream.clone()))?;
        let source = match description.delivery_stream_type() {
            DeliveryStreamType::DirectPut => Source::DirectPut,
            DeliveryStreamType::KinesisStreamAsSource => Source::Kinesis {
                stream_arn: description
                    .source()
                    .and_then(|s| s.kinesis_stream_source_description())
                    .and_then(|k| k.kinesis_stream_arn())
                    .ok_or_else(|| unplayable("KinesisStreamSourceDescription", &None::<()>))?
                    .to_owned(),
            },
            other => return Err(unplayable("DeliveryStreamType", other)),
        };
        let bucket = destination
            .bucket_arn()
            .strip_prefix("arn:aws:s3:::")
            .ok_or_else(|| unplayable("BucketARN", &destination.bucket_arn()))?
            .to_owned();
        let tag = |key: &str| tags.get(key).and_then(|v| v.parse::<u64>().ok());
        let hints = destination.buffering_hints();
        let buffer_bytes = match tag(TAG_BUFFER_BYTES) {
            Some(bytes) => bytes as usize,
            None => hints.and_then(BufferingHints::size_in_mbs).unwrap_or(5) as usize * MIB,
        };
        let buffer_interval = match tag(TAG_BUFFER_INTERVAL_MS) {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(
                hints
                    .and_then(BufferingHints::interval_in_seconds)
                    .unwrap_or(300) as u64,
            ),
        };
        let processing = destination
            .processing_configuration()
            .filter(|p| p.enabled() == Some(true));
        let lambda = processing
            .into_iter()
            .flat_map(ProcessingConfiguration::processors)
            .find(|p| p.r#type() == &ProcessorType::Lambda)
            .ok_or_else(|| unplayable("ProcessingConfiguration", &processing))?;
        let parameter = |name: ProcessorParameterName| {
            lambda
                .parameters()
                .iter()
                .find(|p| p.parameter_name() == &name)
                .map(ProcessorParameter::parameter_value)
        };
        let function_arn = parameter(ProcessorParameterName::LambdaArn)
            .ok_or_else(|| unplayable("LambdaArn", &None::<()>))?
            .to_owned();
        let processor_buffer = match tag(TAG_PROCESSOR_BUFFER_BYTES) {
            Some(bytes) => bytes as usize,
            None => match parameter(ProcessorParameterName::BufferSizeInMb) {
                Some(mb) => parse_mb(mb).ok_or_else(|| unplayable("BufferSizeInMBs", &mb))?,
                None => MIB,
            },
        };
        let retries = match parameter(ProcessorParameterName::LambdaNumberOfRetries) {
            Some(n) => n.parse().map_err(|_| unplayable("NumberOfRetries", &n))?,
            None => 3,
        };
        let conversion = destination
            .data_format_conversion_configuration()
            .filter(|c| c.enabled() != Some(false));
        let converts = conversion.is_some();
        let conversion_table = conversion
            .and_then(|c| c.schema_configuration())
            .and_then(|c| c.table_name())
            .map(str::to_owned);
        let format = match (converts, destination.compression_format()) {
            (true, CompressionFormat::Uncompressed) => OutputFormat::Parquet,
            (false, CompressionFormat::Uncompressed) => OutputFormat::Ndjson,
            (false, CompressionFormat::Gzip) => OutputFormat::NdjsonGzip,
            (_, other) => return Err(unplayable("CompressionFormat", other)),
        };
        Ok(Self {
            name: stream.clone(),
            source,
            bucket,
            prefix: destination.prefix().unwrap_or_default().to_owned(),
            error_prefix: destination
                .error_output_prefix()
                .unwrap_or_default()
                .to_owned(),
            buffer_bytes,
            buffer_interval,
            processor: LambdaProcessor {
                function_arn,
                buffer_bytes: processor_buffer,
                retries,
            },
            format,
            conversion_table,
        })
    }

    /// Reads the delivery stream's settings back from the API.
    pub async fn describe(
        firehose: &aws_sdk_firehose::Client,
        name: &str,
    ) -> Result<Option<Self>, StackError> {
        let described = match firehose
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(StackError::aws(format!("DescribeDeliveryStream {name}"), e)),
        };
        let description = described
            .delivery_stream_description()
            .ok_or_else(|| StackError::Timeout(format!("{name} has no description")))?;
        if description.delivery_stream_status() != &DeliveryStreamStatus::Active {
            return Ok(None);
        }
        let tags = firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
            .map_err(|e| StackError::aws(format!("ListTagsForDeliveryStream {name}"), e))?
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect();
        Self::from_description(description, &tags)
            .map(Some)
            .map_err(StackError::DeliveryStream)
    }

    /// Makes the delivery stream exist with these settings and returns what the API then
    /// describes: created when missing, created again when it differs (a stream left by an
    /// earlier run with other settings, on a shared emulator).
    pub async fn ensure(&self, firehose: &aws_sdk_firehose::Client) -> Result<Self, StackError> {
        match Self::describe(firehose, &self.name).await {
            Ok(Some(existing)) if existing == *self => return Ok(existing),
            Ok(Some(_)) | Err(StackError::DeliveryStream(_)) => {
                tracing::info!(
                    stream = self.name,
                    "delivery stream exists with other settings: creating it again"
                );
                firehose
                    .delete_delivery_stream()
                    .delivery_stream_name(&self.name)
                    .send()
                    .await
                    .map_err(|e| {
                        StackError::aws(format!("DeleteDeliveryStream {}", self.name), e)
                    })?;
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(stream = self.name, "creating delivery stream");
        self.create(firehose).await?;
        for _ in 0..100 {
            if let Some(described) = Self::describe(firehose, &self.name).await? {
                return Ok(described);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(StackError::Timeout(format!(
            "delivery stream {} did not become ACTIVE",
            self.name
        )))
    }
}

/// Record-format conversion to Parquet following the Glue table `table`, as the template
/// configures it.
fn parquet_conversion(table: &str) -> DataFormatConversionConfiguration {
    DataFormatConversionConfiguration::builder()
        .enabled(true)
        .input_format_configuration(
            InputFormatConfiguration::builder()
                .deserializer(
                    Deserializer::builder()
                        .hive_json_ser_de(
                            HiveJsonSerDe::builder()
                                .set_timestamp_formats(Some(
                                    TIMESTAMP_FORMATS.map(str::to_owned).to_vec(),
                                ))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .output_format_configuration(
            OutputFormatConfiguration::builder()
                .serializer(
                    Serializer::builder()
                        .parquet_ser_de(
                            ParquetSerDe::builder()
                                .compression(ParquetCompression::Snappy)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .schema_configuration(
            SchemaConfiguration::builder()
                .catalog_id(names::LOCAL_ACCOUNT)
                .database_name(names::GLUE_DATABASE)
                .table_name(table)
                .role_arn(DeliverySettings::role_arn())
                .version_id("LATEST")
                .build(),
        )
        .build()
}

/// `SizeInMBs`: the buffer in MiB, within the 1-128 AWS accepts.
fn buffer_mib(bytes: usize) -> i32 {
    (bytes / MIB).clamp(1, 128) as i32
}

/// `IntervalInSeconds`: whole seconds, within the 0-900 AWS accepts.
fn interval_seconds(interval: Duration) -> i32 {
    interval.as_secs().min(900) as i32
}

/// The processor's `BufferSizeInMBs`: MiB with up to two decimals, within 0.2-3.
fn processor_mb(bytes: usize) -> String {
    let mb = (bytes as f64 / MIB as f64).clamp(0.2, 3.0);
    let text = format!("{mb:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Bytes of a `BufferSizeInMBs` value.
fn parse_mb(value: &str) -> Option<usize> {
    let mb: f64 = value.parse().ok()?;
    (mb.is_finite() && mb > 0.0).then(|| (mb * MIB as f64).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(format: OutputFormat, source: Source) -> DeliverySettings {
        DeliverySettings {
            name: "s".into(),
            source,
            bucket: "lake".into(),
            prefix: "data/".into(),
            error_prefix: "errors/".into(),
            buffer_bytes: 2 * MIB,
            buffer_interval: Duration::from_secs(60),
            processor: LambdaProcessor {
                function_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
                buffer_bytes: MIB,
                retries: 3,
            },
            conversion_table: (format == OutputFormat::Parquet).then(|| "records".into()),
            format,
        }
    }

    #[test]
    fn values_the_api_holds_need_no_tags_and_finer_ones_get_one_each() {
        let plain = settings(OutputFormat::Ndjson, Source::DirectPut);
        assert!(plain.local_tags().is_empty());
        let fine = DeliverySettings {
            buffer_bytes: 4096,
            buffer_interval: Duration::from_millis(1500),
            processor: LambdaProcessor {
                buffer_bytes: 2048,
                ..plain.processor.clone()
            },
            ..plain
        };
        let tags: Vec<_> = fine.local_tags().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            tags,
            [
                TAG_BUFFER_BYTES,
                TAG_BUFFER_INTERVAL_MS,
                TAG_PROCESSOR_BUFFER_BYTES
            ]
        );
        assert_eq!(buffer_mib(4096), 1);
        assert_eq!(processor_mb(2048), "0.2");
        assert_eq!(processor_mb(MIB), "1");
        assert_eq!(parse_mb("1"), Some(MIB));
    }

    #[test]
    fn the_stream_name_is_the_end_of_its_arn() {
        let source = Source::Kinesis {
            stream_arn: "arn:aws:kinesis:us-east-1:1:stream/records".into(),
        };
        assert_eq!(source.stream_name(), Some("records"));
        assert_eq!(Source::DirectPut.stream_name(), None);
    }
}
