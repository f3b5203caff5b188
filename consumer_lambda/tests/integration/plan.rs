//! Planning a real-shaped Kinesis event (as the event source mapping delivers it).

use aws_lambda_events::event::kinesis::KinesisEvent;
use consumer_lambda::Tables;
use consumer_lambda::plan::Value;
use consumer_lambda::{InputRecord, plan_batch};
use streamlake_core::dataset::Dataset;

#[test]
fn plans_a_kinesis_event() {
    let event: KinesisEvent =
        serde_json::from_str(include_str!("../fixtures/kinesis_event.json")).unwrap();
    let records = event.records.iter().map(|r| InputRecord {
        sequence_number: &r.kinesis.sequence_number,
        partition_key: &r.kinesis.partition_key,
        data: &r.kinesis.data.0,
        arrival: r.kinesis.approximate_arrival_timestamp.0,
    });
    let plan = plan_batch(records, &Tables::new(Dataset::weather(), "").unwrap());

    let tables: Vec<&str> = plan.updates.iter().map(|u| u.key.table.as_str()).collect();
    assert_eq!(tables, ["Precipitation", "Temperature"]);
    let temperature = &plan.updates[1];
    assert_eq!(
        temperature.attributes["TMAX"].value,
        Value::Number("22.8".into())
    );
    assert_eq!(
        temperature.attributes["TMIN"].value,
        Value::Number("13.3".into())
    );
    assert_eq!(temperature.sequence_numbers.len(), 2);
    assert_eq!(plan.unrouted, 1, "AWND has no table");
    assert_eq!(plan.invalid.len(), 1);
    assert!(plan.invalid[0].sequence_number.ends_with('4'));
    assert!(plan.invalid[0].reason.contains("JSON"));
}
