//! The consumer reads the events the event source mapping sends, with and without
//! tumbling windows (shapes from the AWS documentation).

use consumer_lambda::{ConsumerEvent, ConsumerResponse};

#[test]
fn reads_a_plain_kinesis_event() {
    let event: ConsumerEvent =
        serde_json::from_str(include_str!("../fixtures/kinesis_event.json")).unwrap();
    assert_eq!(event.records.len(), 5);
    assert!(event.window.is_none() && event.state.is_none() && !event.is_final_invoke_for_window);
}

#[test]
fn reads_a_tumbling_window_event() {
    let json = r#"{
        "Records": [],
        "window": {"start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z"},
        "state": {"S1|2021-10-01": "{\"observations\":1,\"counts\":{\"PRCP\":1},\"sums\":{\"PRCP\":5.0}}"},
        "shardId": "shardId-000000000006",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/streamlake-records",
        "isFinalInvokeForWindow": true,
        "isWindowTerminatedEarly": false
    }"#;
    let event: ConsumerEvent = serde_json::from_str(json).unwrap();
    assert!(event.is_final_invoke_for_window);
    assert_eq!(
        event.window.unwrap().end.to_rfc3339(),
        "2020-07-30T17:05:00+00:00"
    );
    assert_eq!(event.state.unwrap().len(), 1);
}

#[test]
fn responds_as_lambda_expects() {
    let plain = serde_json::to_value(ConsumerResponse::default()).unwrap();
    assert_eq!(plain, serde_json::json!({"batchItemFailures": []}));
    let with_state = ConsumerResponse {
        state: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(with_state).unwrap(),
        serde_json::json!({"batchItemFailures": [], "state": {"k": "v"}})
    );
}

/// An event whose second record is a KPL aggregate of three user records, one of them
/// malformed, and whose third is an aggregate with a broken digest (one plain record).
#[test]
fn de_aggregates_kpl_records_into_user_records_at_their_positions() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use consumer_lambda::Tables;
    use consumer_lambda::{plan_batch, user_records};
    use streamlake_core::dataset::Dataset;
    use streamlake_core::kpl::Aggregator;

    let valid = |station: &str| {
        format!(r#"{{"date":"2021-10-01","stationid":"{station}","datatype":"PRCP","value":1}}"#)
    };
    let mut aggregator = Aggregator::default();
    assert!(aggregator.try_add("a", valid("S1").as_bytes()));
    assert!(aggregator.try_add("b", b"not json"));
    assert!(aggregator.try_add("a", valid("S2").as_bytes()));
    let aggregate = aggregator.finish().unwrap().data;
    let mut broken = aggregate.clone();
    *broken.last_mut().unwrap() ^= 1;
    let record = |seq: &str, data: &[u8]| {
        serde_json::json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0", "partitionKey": "p", "sequenceNumber": seq,
                "data": STANDARD.encode(data), "approximateArrivalTimestamp": 1633046400.0
            },
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": format!("shardId-000000000000:{seq}"),
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::1:role/r",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/streamlake-records"
        })
    };
    let event: ConsumerEvent = serde_json::from_value(serde_json::json!({"Records": [
        record("100", valid("S0").as_bytes()),
        record("200", &aggregate),
        record("300", &broken),
    ]}))
    .unwrap();
    let users = user_records(&event.records);
    let positions: Vec<(&str, &str)> = users
        .iter()
        .map(|u| (u.position.as_str(), u.partition_key.as_str()))
        .collect();
    assert_eq!(
        positions,
        [
            ("100", "p"),
            ("200:0", "a"),
            ("200:1", "b"),
            ("200:2", "a"),
            ("300", "p")
        ]
    );
    assert_eq!(users[3].data, valid("S2").as_bytes());
    assert_eq!(users[4].data, broken);
    // The malformed user record is invalid at its own position; the broken aggregate is
    // one invalid record.
    let plan = plan_batch(
        users.iter().map(|u| consumer_lambda::InputRecord {
            sequence_number: &u.position,
            partition_key: &u.partition_key,
            data: &u.data,
            arrival: u.arrival,
        }),
        &Tables::new(Dataset::weather(), "").unwrap(),
    );
    let invalid: Vec<&str> = plan
        .invalid
        .iter()
        .map(|i| i.sequence_number.as_str())
        .collect();
    assert_eq!(invalid, ["200:1", "300"]);
    assert_eq!(plan.updates.len(), 3);
}
