//! Creating the stack's resources when they are missing.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_kinesis::types::StreamStatus;
use streamlake_core::dataset::dynamodb::{DynamoDb, Key, KeyType as DatasetKeyType};

use crate::clients::Clients;
use crate::error::StackError;

/// What the stack needs to exist.
#[derive(Debug, Clone)]
pub struct Resources {
    /// Kinesis stream.
    pub stream: String,
    /// Shards of the stream when it is created.
    pub shards: i32,
    /// Bucket of the lake.
    pub bucket: String,
    /// DynamoDB tables.
    pub tables: Vec<TableSpec>,
    /// SQS queue of the event source mapping's on-failure destination.
    pub failure_queue: String,
}

/// A DynamoDB table: its name and key attributes with their types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's name.
    pub name: String,
    /// The partition key attribute.
    pub partition_key: (String, DatasetKeyType),
    /// The sort key attribute.
    pub sort_key: Option<(String, DatasetKeyType)>,
}

impl TableSpec {
    /// The tables of a dataset's `[dynamodb]` section.
    pub fn of(dynamodb: &DynamoDb) -> Vec<Self> {
        let key = |k: &Key| (k.attribute.clone(), k.ty);
        dynamodb
            .table_keys()
            .map(|(name, partition, sort)| Self {
                name: name.to_owned(),
                partition_key: key(partition),
                sort_key: sort.map(key),
            })
            .collect()
    }
}

/// What exists once [`ensure`] is done.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The stream's ARN.
    pub stream_arn: String,
    /// The stream instance: its ARN and creation time (a stream created again under the
    /// same name is another instance).
    pub stream_identity: String,
    /// URL of the on-failure queue.
    pub failure_queue_url: String,
}

/// Creates whatever of `resources` is missing.
pub async fn ensure(clients: &Clients, resources: &Resources) -> Result<Provisioned, StackError> {
    let (stream_arn, stream_identity) =
        ensure_stream(clients, &resources.stream, resources.shards).await?;
    ensure_bucket(clients, &resources.bucket).await?;
    for table in &resources.tables {
        ensure_table(clients, table).await?;
    }
    let failure_queue_url = ensure_queue(clients, &resources.failure_queue).await?;
    Ok(Provisioned {
        stream_arn,
        stream_identity,
        failure_queue_url,
    })
}

async fn ensure_queue(clients: &Clients, queue: &str) -> Result<String, StackError> {
    let created = clients
        .sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| StackError::aws(format!("CreateQueue {queue}"), e))?;
    Ok(created.queue_url().unwrap_or_default().to_owned())
}

async fn ensure_stream(
    clients: &Clients,
    stream: &str,
    shards: i32,
) -> Result<(String, String), StackError> {
    let kinesis = &clients.kinesis;
    let describe = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await;
    if let Err(e) = &describe {
        if e.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
        {
            tracing::info!(stream, shards, "creating stream");
            kinesis
                .create_stream()
                .stream_name(stream)
                .shard_count(shards)
                .send()
                .await
                .map_err(|e| StackError::aws(format!("CreateStream {stream}"), e))?;
        } else {
            return Err(StackError::aws(
                format!("DescribeStreamSummary {stream}"),
                describe.expect_err("checked"),
            ));
        }
    }
    for _ in 0..300 {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| StackError::aws(format!("DescribeStreamSummary {stream}"), e))?;
        let description = summary.stream_description_summary();
        if let Some(d) = description
            && d.stream_status() == &StreamStatus::Active
        {
            let created = d
                .stream_creation_timestamp()
                .to_millis()
                .unwrap_or_default();
            return Ok((
                d.stream_arn().to_owned(),
                format!("{}@{created}", d.stream_arn()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StackError::Timeout(format!(
        "stream {stream} did not become ACTIVE"
    )))
}

async fn ensure_bucket(clients: &Clients, bucket: &str) -> Result<(), StackError> {
    if clients.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    tracing::info!(bucket, "creating bucket");
    match clients.s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(StackError::aws(format!("CreateBucket {bucket}"), e)),
    }
}

/// Creates the DynamoDB table unless it exists (on demand, as the template's).
pub async fn ensure_table(clients: &Clients, spec: &TableSpec) -> Result<(), StackError> {
    let table = spec.name.as_str();
    let dynamodb = &clients.dynamodb;
    match dynamodb.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(e) => return Err(StackError::aws(format!("DescribeTable {table}"), e)),
    }
    tracing::info!(table, "creating table");
    let attribute = |(name, ty): &(String, DatasetKeyType)| {
        let ty = match ty {
            DatasetKeyType::String => ScalarAttributeType::S,
            DatasetKeyType::Number => ScalarAttributeType::N,
        };
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ty)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("name and type are set")
    };
    let mut request = dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute(&spec.partition_key))
        .key_schema(key(&spec.partition_key.0, KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest);
    if let Some(sort) = &spec.sort_key {
        request = request
            .attribute_definitions(attribute(sort))
            .key_schema(key(&sort.0, KeyType::Range));
    }
    request
        .send()
        .await
        .map_err(|e| StackError::aws(format!("CreateTable {table}"), e))?;
    Ok(())
}
