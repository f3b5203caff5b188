//! The Firehose API of the local stack: its delivery streams exist on the emulator as
//! `DescribeDeliveryStream` shows them, the local Firehose plays exactly that, and Direct
//! PUT calls to the stack's endpoint go through the same delivery (transform, partitions,
//! error output) with Firehose's limits and partial failures.

use std::time::Duration;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{DeliveryStreamType, ProcessorParameterName, Record};
use chrono::NaiveDate;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::emulated::firehose::settings::{DeliverySettings, Source};
use streamlake::faults::{Call, FaultPlan};
use streamlake::harness::binaries::default_state_dir;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::{self, OutputFormat};
use streamlake_core::names;

use crate::support::{audit_lake, with_newline};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn describe_delivery_stream_shows_what_the_local_firehose_plays() {
    let mut config = StackConfig::new(default_state_dir());
    config.output_format = OutputFormat::Parquet;
    // Finer than the API's fields: held in tags, played exactly.
    config.buffer_interval = Duration::from_millis(1500);
    config.processor_buffer_bytes = 64 * 1024;
    let stack = LocalStack::start(config).await.unwrap();
    let firehose = &stack.clients().firehose;

    let played = stack.delivery_settings();
    assert_eq!(played.len(), 2);
    for settings in &played {
        let described = DeliverySettings::describe(firehose, &settings.name)
            .await
            .unwrap()
            .expect("the delivery stream exists");
        assert_eq!(&described, settings);
        assert_eq!(settings.format, OutputFormat::Parquet);
        assert_eq!(settings.buffer_interval, Duration::from_millis(1500));
        assert_eq!(settings.processor.buffer_bytes, 64 * 1024);
        assert_eq!(settings.prefix, layout::DATA_PREFIX);
        assert_eq!(settings.error_prefix, layout::ERROR_PREFIX);
    }
    let kinesis = &played[0];
    assert_eq!(kinesis.name, stack.config().delivery_stream);
    assert_eq!(
        kinesis.source.stream_name(),
        Some(stack.config().stream.as_str())
    );
    assert_eq!(played[1].name, names::DIRECT_DELIVERY_STREAM);
    assert_eq!(played[1].source, Source::DirectPut);

    // What any AWS client sees: the fields as the template sets them.
    let described = firehose
        .describe_delivery_stream()
        .delivery_stream_name(names::DIRECT_DELIVERY_STREAM)
        .send()
        .await
        .unwrap();
    let description = described.delivery_stream_description().unwrap();
    assert_eq!(
        description.delivery_stream_type(),
        &DeliveryStreamType::DirectPut
    );
    let destination = description.destinations()[0]
        .extended_s3_destination_description()
        .unwrap();
    assert_eq!(
        destination.bucket_arn(),
        format!("arn:aws:s3:::{}", stack.config().bucket)
    );
    assert_eq!(destination.file_extension(), Some(".parquet"));
    assert!(
        destination
            .dynamic_partitioning_configuration()
            .and_then(|d| d.enabled())
            .unwrap()
    );
    let processor = &destination.processing_configuration().unwrap().processors()[0];
    let parameter = |name: ProcessorParameterName| {
        processor
            .parameters()
            .iter()
            .find(|p| p.parameter_name() == &name)
            .map(|p| p.parameter_value().to_owned())
    };
    assert_eq!(
        parameter(ProcessorParameterName::LambdaArn).unwrap(),
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            stack.clients().region(),
            names::LOCAL_ACCOUNT,
            names::TRANSFORM_FUNCTION
        )
    );
    // 64 KiB is below what AWS accepts: the field holds the least (0.2 MB).
    assert_eq!(
        parameter(ProcessorParameterName::BufferSizeInMb).as_deref(),
        Some("0.2")
    );
    let hints = destination.buffering_hints().unwrap();
    assert_eq!(hints.interval_in_seconds(), Some(1));
    let conversion = destination.data_format_conversion_configuration().unwrap();
    assert!(conversion.enabled().unwrap());
    // The Glue table the conversion follows is the dataset's.
    assert_eq!(
        conversion
            .schema_configuration()
            .and_then(|s| s.table_name()),
        Some(stack.config().dataset.name())
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_put_records_reach_the_lake_through_partial_failures() {
    let mut config = StackConfig::new(default_state_dir());
    config.buffer_interval = Duration::from_secs(1);
    // Half the batches fail: whole (ServiceUnavailableException) or entry by entry.
    config.faults = FaultPlan::new([], 7).with(Call::FirehosePutRecordBatch, 0.5);
    let stack = LocalStack::start(config).await.unwrap();
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
        seed: 5,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.05,
    })
    .take(1200)
    .map(Entry::from)
    .collect();
    let mut producer_config = ProducerConfig::new(names::DIRECT_DELIVERY_STREAM);
    producer_config.max_attempts = 30;
    producer_config.max_delay = Duration::from_millis(200);
    let producer = Producer::firehose(stack.clients().firehose.clone(), producer_config);
    let summary = producer.send(entries.clone(), |_| {}).await.unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.sent, entries.len() as u64);
    assert!(summary.retried > 0, "faults were injected: {summary:?}");
    assert!(stack.injected_by_call()[&Call::FirehosePutRecordBatch] > 0);

    stack
        .wait_direct_put_settled(entries.len() as u64, Duration::from_secs(120))
        .await
        .unwrap();
    // Every record exactly once: the re-sent entries were the failed ones only.
    let sent = with_newline(&entries);
    let (ledger, _, _) = audit_lake(stack.clients(), &stack.config().bucket, &sent).await;
    assert!(ledger.malformed > 0 && ledger.delivered > 0, "{ledger:?}");
    let stats = stack.direct_put_stats();
    assert_eq!(stats.records_read, entries.len() as u64);
    assert_eq!(stats.failed as usize, ledger.malformed);
    // Nothing went through the Kinesis stream.
    assert_eq!(stack.firehose_stats().records_read, 0);
    // Objects are named after the Direct PUT delivery stream.
    let listed = stack
        .clients()
        .bucket(&stack.config().bucket)
        .objects_under(layout::DATA_ROOT)
        .await
        .unwrap();
    assert!(listed.iter().all(|o| {
        streamlake_core::lake::is_hidden(&o.key)
            || o.name().starts_with(names::DIRECT_DELIVERY_STREAM)
    }));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_put_calls_answer_as_firehose_does() {
    let stack = LocalStack::start(StackConfig::new(default_state_dir()))
        .await
        .unwrap();
    let firehose = &stack.clients().firehose;
    let record = |bytes: Vec<u8>| Record::builder().data(Blob::new(bytes)).build().unwrap();
    let batch = |records: Vec<Record>| {
        firehose
            .put_record_batch()
            .delivery_stream_name(names::DIRECT_DELIVERY_STREAM)
            .set_records(Some(records))
            .send()
    };
    let code = |e: &dyn aws_sdk_firehose::error::ProvideErrorMetadata| e.code().map(str::to_owned);

    let one = firehose
        .put_record()
        .delivery_stream_name(names::DIRECT_DELIVERY_STREAM)
        .record(record(b"{\"not\": \"a record\"}\n".to_vec()))
        .send()
        .await
        .unwrap();
    assert!(!one.record_id().is_empty());

    let ok = batch(vec![record(b"a\n".to_vec()), record(b"b\n".to_vec())])
        .await
        .unwrap();
    assert_eq!(ok.failed_put_count(), 0);
    let ids: Vec<&str> = ok
        .request_responses()
        .iter()
        .map(|r| r.record_id().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    let too_many = batch((0..501).map(|_| record(b"x".to_vec())).collect())
        .await
        .unwrap_err();
    assert_eq!(
        code(too_many.as_service_error().unwrap()).as_deref(),
        Some("ValidationException")
    );
    let too_big = batch(vec![record(vec![b'x'; 1_024_001])])
        .await
        .unwrap_err();
    assert_eq!(
        code(too_big.as_service_error().unwrap()).as_deref(),
        Some("ValidationException")
    );
    let request_too_big = batch((0..5).map(|_| record(vec![b'x'; 1_000_000])).collect())
        .await
        .unwrap_err();
    assert!(
        request_too_big
            .as_service_error()
            .unwrap()
            .is_invalid_argument_exception()
    );
    // A delivery stream the stack does not play: the emulator answers.
    let missing = firehose
        .put_record_batch()
        .delivery_stream_name("no-such-stream")
        .records(record(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    // The refused calls took nothing in; the three accepted records are all accounted for
    // (none of them is a weather record: three under processing-failed/).
    stack
        .wait_direct_put_settled(3, Duration::from_secs(60))
        .await
        .unwrap();
    let stats = stack.direct_put_stats();
    assert_eq!((stats.records_read, stats.failed), (3, 3), "{stats:?}");
    stack.stop().await;
}
