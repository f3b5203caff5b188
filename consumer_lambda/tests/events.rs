//! The consumer reads the events the event source mapping sends, with and without
//! tumbling windows (shapes from the AWS documentation).

use consumer_lambda::{ConsumerEvent, ConsumerResponse};

#[test]
fn reads_a_plain_kinesis_event() {
    let event: ConsumerEvent =
        serde_json::from_str(include_str!("fixtures/kinesis_event.json")).unwrap();
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
