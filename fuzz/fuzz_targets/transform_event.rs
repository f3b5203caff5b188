//! The transform over any input: as a whole event body, and as the data of the records
//! of a well-formed event. A body that is not an event is refused as a whole; an event
//! gets exactly one answer per record, in order, with the failed records' data untouched.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use streamlake_core::dataset::Dataset;
use transform_lambda::transform_json;

/// Read once, as the Lambda reads it at cold start.
static WEATHER: std::sync::LazyLock<Dataset> = std::sync::LazyLock::new(Dataset::weather);

fuzz_target!(|input: &[u8]| {
    // The input as the event body itself.
    if let Ok(body) = std::str::from_utf8(input) {
        let _ = transform_json(body, &WEATHER);
    }
    // The input as record data: records split at 0xFF bytes (never in UTF-8 text), each
    // base64-encoded as Firehose sends it, or, when it starts with 0xFE, sent as it is
    // (data that is not base64).
    let records: Vec<Value> = input
        .split(|b| *b == 0xFF)
        .enumerate()
        .map(|(i, data)| {
            let data = match data.split_first() {
                Some((0xFE, rest)) => String::from_utf8_lossy(rest).into_owned(),
                _ => STANDARD.encode(data),
            };
            json!({
                "recordId": format!("r{i}"),
                "approximateArrivalTimestamp": 1_633_046_400_000_i64,
                "data": data,
            })
        })
        .collect();
    let event = json!({
        "invocationId": "fuzz",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/fuzz",
        "region": "us-east-1",
        "records": records,
    });
    let (response, stats) = transform_json(&event.to_string(), &WEATHER).expect("a well-formed event");
    let response: Value = serde_json::from_str(response.get()).expect("the response is JSON");
    let answers = response["records"].as_array().expect("records");
    assert_eq!(answers.len(), records.len());
    assert_eq!(stats.ok + stats.failed, records.len());
    for (answer, record) in answers.iter().zip(&records) {
        assert_eq!(answer["recordId"], record["recordId"]);
        match answer["result"].as_str() {
            Some("Ok") => {
                let line = STANDARD
                    .decode(answer["data"].as_str().expect("data"))
                    .expect("base64");
                assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
                serde_json::from_slice::<Value>(&line).expect("an Ok record is one JSON line");
            }
            Some("ProcessingFailed") => assert_eq!(answer["data"], record["data"]),
            other => panic!("result {other:?}"),
        }
    }
});
