//! The `[dynamodb]` section: the examples' tables, and every mistake refused with the
//! file, line and key.

use std::path::Path;

use streamlake_core::dataset::Dataset;
use streamlake_core::dataset::dynamodb::{KeySource, KeyType, Versions, Window};

const BASE: &str = r#"
name = "unicorns"
partition_key = "Name"

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
name = "Kind"
type = "string"

[[fields]]
name = "Distance"
type = "long"

[[fields]]
name = "Happy"
type = "boolean"
required = true
"#;

fn example(name: &str) -> Dataset {
    Dataset::load_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name),
    )
    .unwrap()
}

fn refused(section: &str) -> String {
    Dataset::from_toml(&format!("{BASE}{section}"), "ds.toml")
        .unwrap_err()
        .to_string()
}

/// The line of `needle` in the full text.
fn line_of(section: &str, needle: &str) -> usize {
    let text = format!("{BASE}{section}");
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn the_weather_tables_are_the_ones_the_consumer_always_wrote() {
    let weather = example("weather");
    let dynamodb = weather.dynamodb().unwrap();
    let names: Vec<_> = dynamodb.table_keys().map(|(name, ..)| name).collect();
    assert_eq!(names, ["Precipitation", "Temperature", "DailySummary"]);
    let precipitation = &dynamodb.tables[0];
    assert_eq!(precipitation.partition_key.attribute, "stationid");
    assert_eq!(precipitation.sort_key.as_ref().unwrap().attribute, "date");
    assert_eq!(
        precipitation.when.as_ref().unwrap().values,
        ["PRCP", "SNOW"]
    );
    assert_eq!(precipitation.attributes[0].name, "StationName");
    assert_eq!(precipitation.versions, Versions::Attribute);
    let summary = &dynamodb.summaries[0];
    assert_eq!(summary.count.as_deref(), Some("observations"));
    assert_eq!(summary.measures[0].attribute_for(Some("PRCP")), "PRCP_sum");
    assert!(example("trades").dynamodb().is_none());
}

#[test]
fn the_unicorn_tables_are_tutorial_003s() {
    let unicorns = example("unicorns");
    let dynamodb = unicorns.dynamodb().unwrap();
    let sensors = &dynamodb.tables[0];
    assert_eq!(sensors.name, "UnicornSensorData");
    assert_eq!(sensors.sort_key.as_ref().unwrap().ty, KeyType::String);
    // Distance may be null, so a record does not always set the whole row.
    assert_eq!(sensors.versions, Versions::Attribute);
    let summary = &dynamodb.summaries[0];
    let sort = summary.sort_key.as_ref().unwrap();
    assert_eq!(sort.attribute, "windowStart");
    assert_eq!(sort.source, KeySource::WindowStart(Window::Minute));
    let attributes: Vec<_> = summary
        .measures
        .iter()
        .map(|m| m.attribute_for(None))
        .collect();
    assert_eq!(
        attributes,
        [
            "Distance_sum",
            "MagicPoints_min",
            "HealthPoints_min",
            "MagicPoints_max",
            "HealthPoints_max"
        ]
    );
    let position = dynamodb.position.as_ref().unwrap();
    assert_eq!(
        (position.table.as_str(), position.key.as_str()),
        ("UnicornSensorData", "Name")
    );
    assert_eq!(position.order.as_deref(), Some("StatusTime"));
    assert_eq!(
        (position.latitude.as_str(), position.longitude.as_str()),
        ("Latitude", "Longitude")
    );
}

#[test]
fn a_table_of_required_attributes_is_versioned_per_row() {
    let d = Dataset::from_toml(
        &format!(
            "{BASE}\n[[dynamodb.tables]]\nname = \"Moods\"\npartition_key = \"Name\"\nattributes = [\"Happy\"]\n"
        ),
        "ds.toml",
    )
    .unwrap();
    assert_eq!(d.dynamodb().unwrap().tables[0].versions, Versions::Row);
}

#[test]
fn every_mistake_is_refused_with_file_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "\n[[dynamodb.tables]]\nname = \"T1\"\npartition_key = \"Name\"\n",
            "name = \"T1\"",
            "`dynamodb.tables[0].name`: \"T1\" is not a DynamoDB table name",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Kind\"\n",
            "partition_key = \"Kind\"",
            "`dynamodb.tables[0].partition_key`: column \"Kind\" is not required",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Nom\"\n",
            "partition_key = \"Nom\"",
            "`dynamodb.tables[0].partition_key`: \"Nom\" is not a column of the dataset",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Happy\"\n",
            "partition_key = \"Happy\"",
            "column \"Happy\" is a boolean: a key here is a string or long",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nattributes = [\"Name\"]\n",
            "attributes = [\"Name\"]",
            "`dynamodb.tables[0].attributes[0]`: column \"Name\" is a key of the table",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nattributes = [\"Kind\"]\nrename = { Kind = \"Name\" }\n",
            "rename = { Kind = \"Name\" }",
            "`dynamodb.tables[0].attributes`: attribute \"Name\" is a key of the table",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nattributes = [\"Kind\"]\nrename = { Kind = \"Kind_seq\" }\n",
            "rename = { Kind = \"Kind_seq\" }",
            "attribute \"Kind_seq\" clashes with the version attributes",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\n\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nsort_key = \"StatusTime\"\n",
            "name = \"Items\"\npartition_key = \"Name\"\nsort_key",
            "table \"Items\" is named twice (dynamodb.tables[0].name has that name)",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nwhen = { field = \"Kind\", in = [] }\n",
            "when = ",
            "`dynamodb.tables[0].when.in`: `in` lists no value",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nversions = \"row\"\n",
            "versions = \"row\"",
            "versions per row need every record to set the whole row",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Kind\"]\nsum = [\"Distance\"]\n",
            "group_by = [\"Kind\"]",
            "column \"Kind\" is not required",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Happy\", \"StatusTime\"]\nsum = [\"Distance\"]\n",
            "group_by = [\"Happy\"",
            "`dynamodb.summaries[0].group_by[0]`: column \"Happy\" is a boolean",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Name\"]\nsum = [\"Kind\"]\n",
            "sum = [\"Kind\"]",
            "`dynamodb.summaries[0].sum[0]`: `sum` takes long or double columns; \"Kind\" is a string",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Name\"]\nwindow = \"minute\"\ncount = \"windowStart\"\nwindow_attribute = \"windowStart\"\n",
            "count = \"windowStart\"",
            "`dynamodb.summaries[0].count`: attribute \"windowStart\" is a key of the table",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Name\"]\ncount = \"window_end\"\n",
            "count = \"window_end\"",
            "attribute \"window_end\" clashes with the version attributes",
        ),
        (
            "\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Name\"]\n",
            "[[dynamodb.summaries]]",
            "the summary aggregates nothing",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\n\n[dynamodb.position]\ntable = \"Other\"\nlatitude = \"Distance\"\nlongitude = \"Distance\"\n",
            "table = \"Other\"",
            "`dynamodb.position.table`: \"Other\" is not a table of [[dynamodb.tables]] (tables: Items)",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\n\n[dynamodb.position]\ntable = \"Items\"\nlatitude = \"Kind\"\nlongitude = \"Distance\"\n",
            "latitude = \"Kind\"",
            "`dynamodb.position.latitude`: column \"Kind\" is a string: a coordinate is a double or a long",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nattributes = [\"Kind\"]\n\n[dynamodb.position]\ntable = \"Items\"\nlatitude = \"Distance\"\nlongitude = \"Distance\"\n",
            "latitude = \"Distance\"",
            "`dynamodb.position.latitude`: column \"Distance\" is not an attribute of table \"Items\"",
        ),
        (
            "\n[[dynamodb.tables]]\nname = \"Items\"\npartition_key = \"Name\"\nsort = \"Kind\"\n",
            "sort = ",
            "unknown field `sort`",
        ),
    ];
    for (section, at, message) in cases {
        let error = refused(section);
        let line = line_of(section, at);
        assert!(
            error.starts_with(&format!("ds.toml:{line}:")),
            "{section}: {error} (expected line {line})"
        );
        assert!(error.contains(message), "{section}: {error}");
    }
}

#[test]
fn a_summary_not_grouped_by_the_streams_key_is_refused() {
    let text = BASE.replace("partition_key = \"Name\"\n", "partition_key = \"Kind\"\n");
    let text = text.replace(
        "name = \"Kind\"\ntype = \"string\"\n",
        "name = \"Kind\"\ntype = \"string\"\nrequired = true\n",
    );
    let error = Dataset::from_toml(
        &format!("{text}\n[[dynamodb.summaries]]\ntable = \"Sums\"\ngroup_by = [\"Name\"]\ncount = \"n\"\n"),
        "ds.toml",
    )
    .unwrap_err();
    assert_eq!(error.key, "dynamodb.summaries[0].group_by");
    assert!(error.message.contains("partitioned by"), "{error}");
}

#[test]
fn a_table_wider_than_one_update_is_refused() {
    let mut text = BASE.to_owned();
    let mut names = Vec::new();
    for i in 0..80 {
        text.push_str(&format!("\n[[fields]]\nname = \"c{i}\"\ntype = \"long\"\n"));
        names.push(format!("\"c{i}\""));
    }
    text.push_str(&format!(
        "\n[[dynamodb.tables]]\nname = \"Wide\"\npartition_key = \"Name\"\nattributes = [{}]\n",
        names.join(", ")
    ));
    let error = Dataset::from_toml(&text, "ds.toml").unwrap_err();
    assert_eq!(error.key, "dynamodb.tables[0].attributes");
    assert!(error.message.contains("sets 80 attributes"), "{error}");
}
