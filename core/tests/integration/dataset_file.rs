//! Dataset files: every mistake refused with the file, line and key; every type read as
//! the dataset says.

use chrono::{DateTime, Utc};
use streamlake_core::dataset::{Dataset, Granularity, InvalidRecord};
use streamlake_core::time::from_epoch_millis;

const UNICORNS: &str = r#"
name = "unicorns"
partition = "hour"
unknown_fields = "reject"

[event_time]
field = "StatusTime"
format = "%Y-%m-%d %H:%M:%S%.f"

[[fields]]
name = "Name"
type = "string"
required = true

[[fields]]
name = "StatusTime"
type = "timestamp"

[[fields]]
name = "Latitude"
from = "position.lat"
type = "double"

[[fields]]
name = "MagicPoints"
type = "long"

[[fields]]
name = "Happy"
type = "boolean"

[[fields]]
name = "Tags"
type = "json"

[[fields]]
name = "Seen"
type = "date"
"#;

fn refused(text: &str) -> String {
    Dataset::from_toml(text, "ds.toml").unwrap_err().to_string()
}

fn arrival() -> DateTime<Utc> {
    from_epoch_millis(1_633_046_400_250)
}

fn line(dataset: &Dataset, record: &str) -> Result<String, InvalidRecord> {
    let mut out = Vec::new();
    dataset.normalize_into(record.as_bytes(), arrival(), &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn every_type_is_read_and_written() {
    let d = Dataset::from_toml(UNICORNS, "unicorns.toml").unwrap();
    assert_eq!(d.partition(), Granularity::Hour);
    let out = line(
        &d,
        r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","position":{"lat":"59.5"},"MagicPoints":"12","Happy":true,"Tags":{"a": [1, 2]},"Seen":"2017-06-04"}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        "{\"Name\":\"Shadowfax\",\"StatusTime\":\"2017-06-05T09:17:08.189Z\",\"Latitude\":59.5,\"MagicPoints\":12,\"Happy\":true,\"Tags\":\"{\\\"a\\\": [1, 2]}\",\"Seen\":\"2017-06-04\"}\n"
    );
    let mut sink = Vec::new();
    let keys = d
        .normalize_into(
            br#"{"Name":"A","StatusTime":"2017-06-05 23:59:59.999"}"#,
            arrival(),
            &mut sink,
        )
        .unwrap();
    assert_eq!(keys.to_string(), "year=2017/month=06/day=05/hour=23");
    assert!(sink.ends_with(
        b"\"Latitude\":null,\"MagicPoints\":null,\"Happy\":null,\"Tags\":null,\"Seen\":null}\n"
    ));
}

#[test]
fn records_that_do_not_fit_name_the_field_and_cause() {
    let d = Dataset::from_toml(UNICORNS, "unicorns.toml").unwrap();
    let base = r#""Name":"A","StatusTime":"2017-06-05 09:17:08""#;
    for (extra, expected) in [
        (
            r#","MagicPoints":1.5"#,
            "field `MagicPoints`: the number 1.5 is not an integer (64-bit)",
        ),
        (
            r#","MagicPoints":"x""#,
            "field `MagicPoints`: the string \"x\" is not an integer (64-bit)",
        ),
        (
            r#","Latitude":1"#,
            "field `Latitude`: not a field of the dataset (it rejects unknown fields)",
        ),
        (
            r#","position":{"lat":"north"}"#,
            "field `position.lat`: expected a number, found the string \"north\"",
        ),
        (
            r#","position":{"alt":3}"#,
            "field `position.alt`: not a field of the dataset (it rejects unknown fields)",
        ),
        (
            r#","position":7"#,
            "field `position`: expected an object, found the number 7",
        ),
        (
            r#","Happy":"maybe""#,
            "field `Happy`: expected true or false, found the string \"maybe\"",
        ),
        (
            r#","Seen":"2017-02-30""#,
            "field `Seen`: \"2017-02-30\" is not a date (YYYY-MM-DD)",
        ),
        (r#","Name":"B""#, "field `Name`: appears twice"),
    ] {
        let record = format!("{{{base}{extra}}}");
        assert_eq!(
            line(&d, &record).unwrap_err().to_string(),
            expected,
            "{record}"
        );
    }
    assert_eq!(
        line(&d, r#"{"Name":"A","StatusTime":"2017-06-05T09:17:08Z"}"#)
            .unwrap_err()
            .to_string(),
        "field `StatusTime`: \"2017-06-05T09:17:08Z\" is not a time in the format \"%Y-%m-%d %H:%M:%S%.f\""
    );
    assert_eq!(
        line(&d, r#"{"StatusTime":"2017-06-05 09:17:08"}"#)
            .unwrap_err()
            .to_string(),
        "field `Name`: missing"
    );
    assert_eq!(
        line(&d, r#"{"Name":"A"}"#).unwrap_err().to_string(),
        "field `StatusTime`: missing",
        "the event time is required"
    );
    assert_eq!(line(&d, "[1]").unwrap_err(), InvalidRecord::NotAnObject);
    assert!(matches!(
        line(&d, "{\"Name\":"),
        Err(InvalidRecord::NotJson(_))
    ));
    assert!(matches!(
        line(&d, "\u{0}\u{1}"),
        Err(InvalidRecord::NotJson(_))
    ));
    assert!(matches!(
        d.normalize_into(b"{\"Name\":\"\xff\"}", arrival(), &mut Vec::new()),
        Err(InvalidRecord::NotUtf8 { offset: 9 })
    ));
}

#[test]
fn without_an_event_time_the_arrival_decides() {
    let d = Dataset::from_toml(
        "name = \"trades\"\n[[fields]]\nname = \"price\"\ntype = \"double\"\n[[fields]]\nname = \"at\"\nderive = \"arrival_time\"\n",
        "t.toml",
    )
    .unwrap();
    let mut out = Vec::new();
    let keys = d
        .normalize_into(br#"{"price":"12.5","other":1}"#, arrival(), &mut out)
        .unwrap();
    assert_eq!(keys.to_string(), "year=2021/month=10/day=01");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"price\":12.5,\"at\":\"2021-10-01T00:00:00.250Z\"}\n"
    );
}

#[test]
fn epoch_event_times_in_numbers_and_text() {
    let d = Dataset::from_toml(
        "name = \"events\"\n[event_time]\nfield = \"meta.ts\"\nformat = \"epoch_millis\"\n[[fields]]\nname = \"ts\"\nfrom = \"meta.ts\"\ntype = \"timestamp\"\n[[fields]]\nname = \"day\"\nderive = \"event_date\"\n",
        "e.toml",
    );
    // `day` is a partition column's name.
    assert!(d.unwrap_err().to_string().contains("partition column"));
    let d = Dataset::from_toml(
        "name = \"events\"\n[event_time]\nfield = \"meta.ts\"\nformat = \"epoch_millis\"\n[[fields]]\nname = \"ts\"\nfrom = \"meta.ts\"\ntype = \"timestamp\"\n[[fields]]\nname = \"event_day\"\nderive = \"event_date\"\n",
        "e.toml",
    )
    .unwrap();
    for record in [
        r#"{"meta":{"ts":1633046400250}}"#,
        r#"{"meta":{"ts":"1633046400250"}}"#,
    ] {
        assert_eq!(
            line(&d, record).unwrap(),
            "{\"ts\":\"2021-10-01T00:00:00.250Z\",\"event_day\":\"2021-10-01\"}\n"
        );
    }
}

/// Each mistake: the file's text, then the line, key and message the refusal must hold.
#[test]
fn mistakes_are_refused_with_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "name = \"x\"\nnope = 1\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:2:1: `nope`: unknown field `nope`",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"strin\"\n",
            "ds.toml:4:8: `type`: unknown variant `strin`",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n[[fields]]\nname = \"A\"\ntype = \"long\"\n",
            "ds.toml:6:8: `fields[1].name`: duplicate column \"A\"",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\nfrom = \"b\"\nderive = \"arrival_time\"\n",
            "ds.toml:4:8: `fields[0].from`: column \"a\" is derived (arrival_time) and cannot also be read",
        ),
        (
            "name = \"x\"\n[event_time]\nfield = \"ts\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:3:9: `event_time.field`: \"ts\" is not a field",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\npattern = \"[a-\"\n",
            "ds.toml:5:11: `fields[0].pattern`: \"[a-\" is not a regular expression",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"timestamp\"\nformat = \"%Y-%Q\"\n",
            "ds.toml:5:10: `fields[0].format`: \"%Y-%Q\" is not a valid strftime pattern",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"timestamp\"\nformat = \"%H:%M\"\n",
            "ds.toml:5:10: `fields[0].format`: \"%H:%M\" does not read a whole date",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"timestamp\"\ntimezone = \"Mars/Olympus\"\n",
            "ds.toml:5:12: `fields[0].timezone`: unknown timezone",
        ),
        (
            "name = \"Bad-Name\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:1:8: `name`: \"Bad-Name\" is not a table name",
        ),
        (
            "name = \"x\"\n",
            "ds.toml:1:1: `fields`: the dataset has no [[fields]]",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\n",
            "ds.toml:3:8: `fields[0].type`: column \"a\" has no type",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"long\"\ncase = \"upper\"\n",
            "ds.toml:5:8: `fields[0].case`: `case` applies to string columns",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n[[fields]]\nname = \"b\"\nfrom = \"a\"\ntype = \"string\"\n",
            "ds.toml:5:1: `fields[1].from`: column \"b\" reads \"a\", which column \"a\" (fields[0]) reads already",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"json\"\n[[fields]]\nname = \"b\"\nfrom = \"a.c\"\ntype = \"string\"\n",
            "ds.toml:5:1: `fields[1].from`: column \"b\" reads \"a.c\" and column \"a\" (fields[0]) reads \"a\": one is inside the other",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\nderive = \"event_date\"\n",
            "`fields[0].derive`: column \"a\" is derived from the event time, but the dataset has no [event_time]",
        ),
        (
            "name = \"x\"\nprefix = \"/data\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:2:10: `prefix`: \"/data\" is not a lake prefix",
        ),
        (
            "name = \"x\"\npartition = \"week\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:2:13: `partition`: unknown variant `week`",
        ),
        (
            "name = \"x\"\npartition_key = \"id\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n",
            "ds.toml:2:17: `partition_key`: \"id\" is not an input field",
        ),
        (
            "name = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"string\"\n[event_time]\nfield = \"a\"\n",
            "ds.toml:6:9: `event_time.field`: \"a\" is read by column \"a\", a string",
        ),
        ("name = \"x\"\n[[fields]\n", "ds.toml:2:"),
    ];
    for (text, expected) in cases {
        let message = refused(text);
        assert!(
            message.contains(expected),
            "{text}\n  gave: {message}\n  want: {expected}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn the_weather_dataset_is_the_default() {
    let d = Dataset::weather();
    assert_eq!(d.name(), "weather");
    assert_eq!(d.prefix(), "data/");
    let names: Vec<&str> = d.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "stationid",
            "station_name",
            "datatype",
            "value",
            "observed_at",
            "date",
            "ingested_at"
        ]
    );
    assert_eq!(d.event_time_column().unwrap().name, "observed_at");
    assert_eq!(d.event_date_column().unwrap().name, "date");
    assert_eq!(d.partition_key(), Some("stationid"));
    assert_eq!(d.firehose_prefix(), streamlake_core::layout::DATA_PREFIX);
    let hourly = Dataset::from_toml(UNICORNS, "u.toml").unwrap();
    assert!(
        hourly
            .firehose_prefix()
            .ends_with("/day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/")
    );
}
