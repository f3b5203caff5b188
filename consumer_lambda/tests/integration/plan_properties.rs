//! Properties of the batch plan over any batch: every record is accounted for exactly
//! once, the plan does not depend on the order of the records, and each attribute of a
//! row holds the value of the record with the highest sequence number that sets it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use consumer_lambda::plan::{BatchPlan, Value};
use consumer_lambda::{InputRecord, Tables, plan_batch};
use proptest::prelude::*;
use serde_json::json;
use streamlake_core::dataset::Dataset;
use streamlake_core::time::from_epoch_millis;

/// One generated record: its sequence number and its data.
#[derive(Debug, Clone)]
struct Generated {
    sequence_number: String,
    data: Vec<u8>,
}

/// Record data: valid observations over a few stations, days and datatypes (routed or
/// not), values DynamoDB cannot hold, and bytes that are no record at all.
fn data() -> impl Strategy<Value = Vec<u8>> {
    let station = prop::sample::select(vec!["GHCND:A", "GHCND:B", "GHCND:C"]);
    let day = prop::sample::select(vec![
        "2021-10-01",
        "2021-10-02T23:59:59",
        "2021-10-02T22:30:00-05:00",
    ]);
    let datatype = prop::sample::select(vec!["TMAX", "tmin", "PRCP", "SNOW", "AWND"]);
    let value = prop_oneof![
        8 => (-500i32..500).prop_map(|v| f64::from(v) / 10.0),
        1 => Just(1e200),
        1 => Just(-1e-200),
    ];
    let name = prop::option::of(prop::sample::select(vec!["Airport", "Harbour"]));
    let valid = (station, day, datatype, value, name).prop_map(|(s, d, t, v, n)| {
        let mut record = json!({"stationid": s, "date": d, "datatype": t, "value": v});
        if let Some(n) = n {
            record["location"] = json!(n);
        }
        serde_json::to_vec(&record).expect("json")
    });
    prop_oneof![
        8 => valid,
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(br#"{"stationid":"GHCND:A","datatype":"TMAX"}"#.to_vec()),
    ]
}

/// A batch: distinct sequence numbers of mixed lengths (numeric order is not text
/// order), in shard order, each with its data.
fn batch() -> impl Strategy<Value = Vec<Generated>> {
    let seq = prop_oneof![any::<u64>().prop_map(u128::from), any::<u128>(),];
    prop::collection::btree_set(seq, 0..40).prop_flat_map(|seqs| {
        let n = seqs.len();
        (Just(seqs), prop::collection::vec(data(), n)).prop_map(|(seqs, data)| {
            seqs.into_iter()
                .zip(data)
                .map(|(s, data)| Generated {
                    sequence_number: s.to_string(),
                    data,
                })
                .collect()
        })
    })
}

fn arrival() -> DateTime<Utc> {
    from_epoch_millis(1_633_046_400_000)
}

fn plan(records: &[Generated]) -> BatchPlan {
    plan_batch(
        records.iter().map(|r| InputRecord {
            sequence_number: &r.sequence_number,
            partition_key: "k",
            data: &r.data,
            arrival: arrival(),
        }),
        &Tables::new(Dataset::weather(), "").unwrap(),
    )
}

/// The weather tables, as the model sees them.
fn table_for(datatype: &str) -> Option<&'static str> {
    match datatype {
        "PRCP" | "SNOW" => Some("Precipitation"),
        "TMAX" | "TMIN" => Some("Temperature"),
        _ => None,
    }
}

/// The plan with each row's sequence numbers sorted and invalid entries in sequence order:
/// what must not depend on the order of the input.
fn canonical(mut plan: BatchPlan) -> BatchPlan {
    for row in &mut plan.updates {
        row.sequence_numbers.sort();
    }
    plan.invalid
        .sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
    plan
}

fn seq(s: &str) -> u128 {
    s.parse().expect("generated sequence numbers are numbers")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_record_is_planned_once(records in batch()) {
        let plan = plan(&records);
        let planned: Vec<&str> = plan
            .updates
            .iter()
            .flat_map(|u| u.sequence_numbers.iter().map(String::as_str))
            .chain(plan.invalid.iter().map(|i| i.sequence_number.as_str()))
            .collect();
        prop_assert_eq!(planned.len() + plan.unrouted, records.len());
        prop_assert_eq!(planned.iter().collect::<BTreeSet<_>>().len(), planned.len());
        for invalid in &plan.invalid {
            let original = records.iter().find(|r| r.sequence_number == invalid.sequence_number);
            prop_assert_eq!(&original.expect("an input record").data, &invalid.data);
            prop_assert!(!invalid.reason.is_empty());
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_record_order(
        records in batch(),
        order in any::<u64>(),
    ) {
        let mut shuffled = records.clone();
        fastrand::Rng::with_seed(order).shuffle(&mut shuffled);
        prop_assert_eq!(canonical(plan(&records)), canonical(plan(&shuffled)));
    }

    #[test]
    fn each_attribute_holds_its_newest_value(records in batch()) {
        // The model: the newest record per (row, attribute), from each record alone.
        let mut newest: BTreeMap<(String, String, String, String), (u128, Value)> = BTreeMap::new();
        let dataset = Dataset::weather();
        for record in &records {
            let Ok(o) = dataset.normalize(&record.data, arrival()) else { continue };
            let text = |column| o.get(&dataset, column).and_then(|v| v.as_str());
            let (Some(station), Some(datatype)) = (text("stationid"), text("datatype")) else {
                continue;
            };
            let value = o.get(&dataset, "value").and_then(|v| v.as_f64()).unwrap();
            let date = o.get(&dataset, "date").and_then(|v| v.as_date()).unwrap();
            let Some(table) = table_for(datatype) else { continue };
            if !(value == 0.0 || (1e-130..1e126).contains(&value.abs())) {
                continue;
            }
            let row = (table.to_owned(), station.to_owned(), date.to_string());
            let s = seq(&record.sequence_number);
            let mut set = |attribute: String, value: Value| {
                let key = (row.0.clone(), row.1.clone(), row.2.clone(), attribute);
                if newest.get(&key).is_none_or(|(old, _)| *old < s) {
                    newest.insert(key, (s, value));
                }
            };
            set(datatype.to_owned(), Value::Number(value.to_string()));
            if let Some(name) = text("station_name") {
                set("StationName".to_owned(), Value::Text(name.to_owned()));
            }
        }
        let planned: BTreeMap<_, _> = plan(&records)
            .updates
            .into_iter()
            .flat_map(|u| {
                let row = (
                    u.key.table,
                    u.key.partition.1.as_str().to_owned(),
                    u.key.sort.map(|(_, v)| v.as_str().to_owned()).unwrap_or_default(),
                );
                u.attributes.into_iter().map(move |(attribute, v)| {
                    ((row.0.clone(), row.1.clone(), row.2.clone(), attribute), (seq(&v.sequence_number), v.value))
                })
            })
            .collect();
        prop_assert_eq!(planned, newest);
    }
}
