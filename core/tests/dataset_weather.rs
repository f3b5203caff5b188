//! The weather dataset file produces what the compiled-in schema produces: the same NDJSON
//! lines byte for byte, the same partitions, and failures for the same records, naming the
//! same field. (The compiled-in path is the baseline until it is removed.)

use proptest::prelude::*;
use serde_json::{Value, json};
use streamlake_core::dataset::{Dataset, InvalidRecord};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::normalize;
use streamlake_core::observation::InvalidRecord as Compiled;
use streamlake_core::time::from_epoch_millis;

/// The field an error names, if any.
fn compiled_field(e: &Compiled) -> Option<String> {
    match e {
        Compiled::Field { field, .. } => Some((*field).to_owned()),
        Compiled::FieldType { field, .. } => Some(field.clone()),
        Compiled::Shape(m) => m
            .split('`')
            .nth(1)
            .filter(|_| m.contains("missing field"))
            .map(str::to_owned),
        _ => None,
    }
}

fn dataset_field(e: &InvalidRecord) -> Option<String> {
    match e {
        InvalidRecord::Field { field, .. } => Some(field.clone()),
        _ => None,
    }
}

/// Both paths over one record: `Ok` lines equal, or both failing. Returns whether the
/// record was valid.
fn same(dataset: &Dataset, data: &[u8]) -> Result<bool, TestCaseError> {
    let arrival = from_epoch_millis(1_633_046_400_250);
    let compiled = normalize(data, arrival);
    let mut line = Vec::new();
    let ours = dataset.normalize_into(data, arrival, &mut line);
    match (compiled, ours) {
        (Ok(o), Ok(keys)) => {
            let mut expected = Vec::new();
            o.write_ndjson(&mut expected);
            prop_assert_eq!(
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&line)
            );
            prop_assert_eq!(o.partition(), keys);
            Ok(true)
        }
        (Err(c), Err(d)) => {
            // Records with one fault name the same field; JSON-level failures both fail.
            if let (Some(c), Some(d)) = (compiled_field(&c), dataset_field(&d)) {
                prop_assert_eq!(&c, &d, "{} / {}", c, d);
            }
            prop_assert!(line.is_empty());
            Ok(false)
        }
        (c, d) => {
            prop_assert!(
                false,
                "{:?}: compiled {:?}, dataset {:?}",
                String::from_utf8_lossy(data),
                c.map(|_| ()),
                d
            );
            unreachable!()
        }
    }
}

#[test]
fn generated_records_give_the_same_lines_and_failures() {
    let dataset = Dataset::weather();
    let config = GeneratorConfig {
        error_rate: 0.05,
        ..Default::default()
    };
    let mut valid = 0;
    for record in WeatherGenerator::new(config).take(20_000) {
        if same(&dataset, &record.data).unwrap() {
            valid += 1;
        }
    }
    assert!(valid > 18_000, "{valid} valid of 20000");
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

    #[test]
    fn any_input_gives_the_same_answer(data in record()) {
        same(&Dataset::weather(), &data)?;
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
