//! Properties of the transform over any input: one answer per record, never a panic, the
//! original bytes kept for every record that fails, and normalization that is stable.
//! The inputs hold valid records often enough to matter (a test reports their share).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};
use streamlake_core::dataset::Dataset;
use streamlake_core::time::from_epoch_millis;
use transform_lambda::transform_json;

/// A weather record the dataset accepts: every required field, in any of its accepted
/// forms, with an optional location.
fn valid_record() -> impl Strategy<Value = Vec<u8>> {
    let date = prop_oneof![
        Just("2021-10-01".to_owned()),
        Just("2021-12-31T23:30:00-05:00".to_owned()),
        (1u32..=28, 0u32..24).prop_map(|(d, h)| format!("2021-10-{d:02}T{h:02}:00:00")),
    ];
    let value = prop_oneof![
        (-1e6f64..1e6).prop_map(|v| json!(v)),
        any::<i32>().prop_map(|v| json!(v))
    ];
    (
        date,
        "GHCND:[A-Z0-9]{4,11}",
        "[A-Za-z0-9_]{1,6}",
        value,
        proptest::option::of(".{0,20}"),
    )
        .prop_map(|(date, stationid, datatype, value, location)| {
            let mut record =
                json!({"date": date, "stationid": stationid, "datatype": datatype, "value": value});
            if let Some(location) = location {
                record["location"] = json!(location);
            }
            serde_json::to_vec(&record).unwrap()
        })
}

/// Record data: arbitrary bytes, bytes shaped like the records users send (JSON objects
/// with the schema's fields, some of them wrong), or valid records.
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
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        2 => record,
        2 => valid_record(),
    ]
}

/// The properties see valid records often enough to check something: the share of the
/// inputs [`data`] makes that the weather dataset accepts, over 2,000 draws.
#[test]
fn the_inputs_hold_valid_records_often_enough() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = data();
    let arrival = from_epoch_millis(1_633_046_400_000);
    let dataset = Dataset::weather();
    let draws = 2_000;
    let valid = (0..draws)
        .filter(|_| {
            let data = strategy.new_tree(&mut runner).unwrap().current();
            dataset.normalize(&data, arrival).is_ok()
        })
        .count();
    let share = valid as f64 / f64::from(draws);
    println!(
        "valid records among the property inputs: {:.0}%",
        share * 100.0
    );
    assert!(share > 0.3, "{share}");
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

    /// A lake line read back as input gives the same record, except where the lake
    /// renames: the event time is read from the line's `date` (the input's `date` key is
    /// the lake's day column), midnight of the same day, so the partition stays; and
    /// `station_name` is null (the input's key is `location`).
    #[test]
    fn normalizing_a_normalized_record_keeps_it_but_for_the_time_of_day(data in data()) {
        let arrival = from_epoch_millis(1_633_046_400_000);
        let dataset = Dataset::weather();
        let mut line = Vec::new();
        if let Ok(once) = dataset.normalize_into(&data, arrival, &mut line) {
            let mut again = Vec::new();
            let twice = dataset
                .normalize_into(&line, arrival, &mut again)
                .expect("a normalized record is valid");
            let mut expected: Value = serde_json::from_slice(&line).unwrap();
            let day = expected["date"].as_str().unwrap().to_owned();
            expected["observed_at"] = json!(format!("{day}T00:00:00Z"));
            expected["station_name"] = Value::Null;
            prop_assert_eq!(serde_json::from_slice::<Value>(&again).unwrap(), expected);
            prop_assert_eq!(once, twice);
        }
    }
}
