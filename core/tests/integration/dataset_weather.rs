//! The weather dataset file produces what the compiled-in schema it replaced produced: the
//! same NDJSON lines byte for byte, the same partitions, and failures for the same records,
//! naming the same field.
//!
//! `tests/golden/weather.jsonl` was written by the compiled-in schema (commit `73012a1`,
//! before its removal) over 1,500 generated records (5% malformed on purpose) and 1,500
//! inputs of the property strategy below: per input its `line` and `partition`, or the
//! field its `error` named (`null`: the record failed as a whole, not JSON or not an object).

use proptest::prelude::*;
use serde_json::{Value, json};
use streamlake_core::dataset::{Dataset, InvalidRecord};
use streamlake_core::time::from_epoch_millis;

const GOLDEN: &str = include_str!("../golden/weather.jsonl");

#[test]
fn the_weather_dataset_gives_the_compiled_in_lines_and_failures() {
    let dataset = Dataset::weather();
    let arrival = from_epoch_millis(1_633_046_400_250);
    let (mut lines, mut failures) = (0, 0);
    for (n, entry) in GOLDEN.lines().enumerate() {
        let entry: Value = serde_json::from_str(entry).unwrap();
        let data: Vec<u8> = match &entry["input"] {
            Value::String(s) => s.clone().into_bytes(),
            _ => serde_json::from_value(entry["input_bytes"].clone()).unwrap(),
        };
        let mut line = Vec::new();
        let ours = dataset.normalize_into(&data, arrival, &mut line);
        let context = format!("golden line {}: {}", n + 1, String::from_utf8_lossy(&data));
        match (&entry["line"], ours) {
            (Value::String(expected), Ok(keys)) => {
                assert_eq!(String::from_utf8_lossy(&line), *expected, "{context}");
                assert_eq!(keys.to_string(), entry["partition"], "{context}");
                lines += 1;
            }
            (Value::Null, Err(e)) => {
                if let (Value::String(expected), InvalidRecord::Field { field, .. }) =
                    (&entry["error"], &e)
                {
                    assert_eq!(field, expected, "{context}");
                }
                assert!(line.is_empty(), "{context}");
                failures += 1;
            }
            (expected, ours) => panic!("{context}: expected {expected}, got {ours:?}"),
        }
    }
    eprintln!("{lines} lines and {failures} failures as the compiled-in schema gave them");
    assert!(
        lines > 1_500 && failures > 500,
        "{lines} lines, {failures} failures"
    );
}

/// Records shaped like the users' (the schema's fields, some of them wrong), as the
/// transform's property test makes them, plus values that fit.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let good_date = prop_oneof![
        Just(json!("2021-10-01")),
        Just(json!("2021-12-31T23:30:00-05:00")),
        Just(json!("2021-10-01T06:00:00")),
        Just(json!("2021-10-01T06:00:00.250Z")),
    ];
    let any_value = prop_oneof![
        Just(json!("2021-10-01")),
        Just(json!("GHCND:USW00093721")),
        Just(json!("tmax")),
        Just(json!(" ")),
        Just(json!("12.5")),
        any::<f64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        ".{0,12}".prop_map(|s| json!(s)),
        Just(Value::Null),
        Just(json!({"a": 1})),
    ];
    let fits = (
        good_date,
        prop_oneof![Just("GHCND:USW00093721"), Just("S\u{e9}\"x")],
        prop_oneof![Just(json!("RIDGE 1.0 N")), Just(json!("")), Just(Value::Null)],
        prop_oneof![Just("PRCP"), Just("tmin"), Just("Snow_1")],
        prop_oneof![any::<f64>().prop_map(|v| json!(v)), any::<i32>().prop_map(|v| json!(v))],
    )
        .prop_map(|(date, id, location, datatype, value)| {
            json!({"date": date, "stationid": id, "location": location, "datatype": datatype, "value": value})
        });
    let names = prop_oneof![
        Just("date"),
        Just("stationid"),
        Just("datatype"),
        Just("value"),
        Just("location"),
        Just("other"),
    ];
    let mixed = proptest::collection::btree_map(names, any_value, 0..7)
        .prop_map(|m| serde_json::to_value(m).unwrap());
    let object = prop_oneof![fits, mixed];
    prop_oneof![
        3 => object.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..60),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any input gives one JSON object of the dataset's columns (the first first), or a failure
    /// that writes nothing.
    #[test]
    fn any_input_gives_a_line_of_the_columns_or_nothing(data in record()) {
        let dataset = Dataset::weather();
        let mut line = Vec::new();
        match dataset.normalize_into(&data, from_epoch_millis(1_633_046_400_250), &mut line) {
            Ok(_) => {
                prop_assert_eq!(line.last(), Some(&b'\n'));
                let object: serde_json::Map<String, Value> =
                    serde_json::from_slice(&line).unwrap();
                let mut columns: Vec<&str> =
                    dataset.columns().iter().map(|c| c.name.as_str()).collect();
                let first = format!("{{\"{}\":", columns[0]);
                prop_assert!(line.starts_with(first.as_bytes()));
                columns.sort_unstable();
                let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                prop_assert_eq!(keys, columns);
            }
            Err(_) => prop_assert!(line.is_empty()),
        }
    }
}

/// The share of valid records the property above sees, reported (a property that only
/// sees invalid input checks nothing).
#[test]
fn the_property_sees_valid_records_often() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let dataset = Dataset::weather();
    let mut runner = TestRunner::deterministic();
    let strategy = record();
    let runs = 2000;
    let valid = (0..runs)
        .filter(|_| {
            let data = strategy.new_tree(&mut runner).unwrap().current();
            dataset.normalize(&data, from_epoch_millis(0)).is_ok()
        })
        .count();
    eprintln!(
        "valid records: {valid} of {runs} ({:.0}%)",
        100.0 * valid as f64 / runs as f64
    );
    assert!(valid * 5 >= runs, "only {valid} of {runs} valid");
}
