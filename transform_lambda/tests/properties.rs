//! Properties of the transform over any input: one answer per record, never a panic, the
//! original bytes kept for every record that fails, and normalization that is stable.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::{Value, json};
use streamlake_core::dataset::Dataset;
use streamlake_core::normalize;
use streamlake_core::time::from_epoch_millis;
use transform_lambda::transform_json;

/// Record data: arbitrary bytes, or bytes shaped like the records users send (JSON
/// objects with the schema's fields, some of them wrong).
fn data() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(json!("2021-10-01")),
        Just(json!("2021-12-31T23:30:00-05:00")),
        Just(json!("GHCND:USW00093721")),
        Just(json!("TMAX")),
        any::<f64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        ".{0,12}".prop_map(|s| json!(s)),
        Just(Value::Null),
    ];
    let names = prop_oneof![
        Just("date"),
        Just("stationid"),
        Just("datatype"),
        Just("value"),
        Just("location"),
        Just("other"),
    ];
    let record = proptest::collection::btree_map(names, field, 0..7)
        .prop_map(|m| serde_json::to_vec(&m).unwrap());
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), record]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_answer_per_record_and_failures_keep_their_bytes(
        records in proptest::collection::vec((data(), any::<bool>()), 0..20)
    ) {
        // Some records are not even base64.
        let event = json!({
            "invocationId": "i",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/s",
            "region": "us-east-1",
            "records": records.iter().enumerate().map(|(i, (data, encode))| json!({
                "recordId": format!("r{i}"),
                "approximateArrivalTimestamp": 1_633_046_400_000_i64,
                "data": if *encode { STANDARD.encode(data) } else { String::from_utf8_lossy(data).into_owned() },
            })).collect::<Vec<_>>(),
        });
        let (response, stats) = transform_json(&event.to_string(), &Dataset::weather()).unwrap();
        let response: Value = serde_json::from_str(response.get()).unwrap();
        let out = response["records"].as_array().unwrap();
        prop_assert_eq!(out.len(), records.len());
        prop_assert_eq!(stats.ok + stats.failed, records.len());
        for (i, (answer, input)) in out.iter().zip(&event["records"].as_array().unwrap().clone()).enumerate() {
            let id = format!("r{i}");
            prop_assert_eq!(answer["recordId"].as_str(), Some(id.as_str()));
            match answer["result"].as_str() {
                Some("Ok") => {
                    let line = STANDARD.decode(answer["data"].as_str().unwrap()).unwrap();
                    prop_assert!(line.ends_with(b"\n"));
                    prop_assert!(answer["metadata"]["partitionKeys"]["year"].is_string());
                }
                Some("ProcessingFailed") => prop_assert_eq!(&answer["data"], &input["data"]),
                other => prop_assert!(false, "result {:?}", other),
            }
        }
    }

    #[test]
    fn normalizing_a_normalized_record_changes_nothing(data in data()) {
        let arrival = from_epoch_millis(1_633_046_400_000);
        if let Ok(once) = normalize(&data, arrival) {
            let mut line = Vec::new();
            once.write_ndjson(&mut line);
            let twice = normalize(&line, arrival).expect("a normalized record is valid");
            let mut again = Vec::new();
            twice.write_ndjson(&mut again);
            prop_assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&again));
            prop_assert_eq!(once.partition(), twice.partition());
        }
    }
}
