//! The deployment template agrees with the definitions the local stack uses, and the
//! deployment checks that need no AWS account pass (cfn-lint, checkov, a smoke deploy to
//! moto, the scripts' early failures).

use std::path::PathBuf;
use std::process::Command;

use streamlake::harness::binaries::default_state_dir;
use streamlake_core::dataset::{DATASET_ENV, Dataset};
use streamlake_core::layout;
use streamlake_core::metrics;
use streamlake_core::names;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The template `deploy.sh --dataset examples/unicorns` deploys, written where check.sh
/// can read it.
fn unicorns_template() -> (PathBuf, String) {
    let dataset = Dataset::load_path(&root().join("examples/unicorns")).unwrap();
    let text = streamlake::dataset_tool::template(&dataset, &[]).unwrap();
    let path = default_state_dir().join("template-unicorns.yaml");
    std::fs::create_dir_all(default_state_dir()).unwrap();
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

/// The checked-in template is the weather dataset's rendering: nothing in it drifts from
/// what `dataset template` writes for another dataset.
#[test]
fn the_template_is_the_weather_datasets_rendering() {
    let queries =
        streamlake::dataset_tool::saved_queries(&root().join("infra/athena/queries")).unwrap();
    let rendered = streamlake::dataset_tool::template(&Dataset::weather(), &queries).unwrap();
    let checked_in = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    assert!(
        rendered == checked_in,
        "run `cargo run --bin streamlake -- dataset template examples/weather --queries infra/athena/queries -o infra/template.yaml`"
    );
}

/// Another dataset's template holds its table, columns, hourly or daily projection, view
/// and prefixes, and no weather name outside the consumer's branch.
#[test]
fn a_datasets_template_describes_its_lake() {
    let (_, text) = unicorns_template();
    let t = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let input = |name: &str| &t["Resources"][name]["Properties"]["TableInput"];
    assert_eq!(text_of(&input("ObservationsTable")["Name"]), "unicorns_raw");
    assert_eq!(text_of(&input("LakeView")["Name"]), "unicorns");
    assert_eq!(
        text_of(&input("CompactionLogTable")["Name"]),
        "unicorns_compaction_log"
    );
    let columns: Vec<String> = input("ObservationsTable")["StorageDescriptor"]["Columns"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", text_of(&c["Name"]), text_of(&c["Type"])))
        .collect();
    assert_eq!(
        columns,
        [
            "Name string",
            "StatusTime timestamp",
            "Latitude double",
            "Longitude double",
            "Distance bigint",
            "MagicPoints bigint",
            "HealthPoints bigint",
            "date date"
        ]
    );
    let saved: Vec<&str> = t["Resources"]
        .as_hash()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Athena::NamedQuery"))
        .map(|r| r["Properties"]["QueryString"].as_str().unwrap())
        .collect();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].contains("FROM unicorns\n"), "{saved:?}");
    // Tutorial 003's tables, and a role that writes only them.
    let table = &t["Resources"]["UnicornSensorDataTable"]["Properties"];
    assert_eq!(text_of(&table["KeySchema"][0]["AttributeName"]), "Name");
    assert_eq!(
        text_of(&table["KeySchema"][1]["AttributeName"]),
        "StatusTime"
    );
    let aggregation = &t["Resources"]["UnicornAggregationTable"]["Properties"];
    assert_eq!(
        text_of(&aggregation["KeySchema"][1]["AttributeName"]),
        "windowStart"
    );
    let statements = t["Resources"]["ConsumerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_vec()
        .unwrap();
    let writes = statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some("WriteRows"))
        .unwrap();
    assert_eq!(writes["Resource"].as_vec().unwrap().len(), 2);
    // The summary's rows are read before a window is added: only the summary table.
    let reads = statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some("ReadSummaryRows"))
        .unwrap();
    let actions: Vec<String> = reads["Action"]
        .as_vec()
        .unwrap()
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(actions, ["dynamodb:BatchGetItem", "dynamodb:GetItem"]);
    assert_eq!(reads["Resource"].as_vec().unwrap().len(), 1);
    assert!(text.contains("Enabled: true"));
    // The dashboard's widget of the tables names each of them.
    let widget =
        text_of(&t["Resources"]["Dashboard"]["Properties"]["DashboardBody"][1]["TableWidget"]);
    for table in ["UnicornSensorData", "UnicornAggregation"] {
        assert!(
            widget.contains(&format!("\"${{TableNamePrefix}}{table}\"")),
            "{widget}"
        );
    }
    let events = Dataset::load_path(&root().join("examples/events")).unwrap();
    let hourly = streamlake::dataset_tool::template(&events, &[]).unwrap();
    assert!(hourly.contains("Prefix: \"json_data/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/\""));
    assert!(hourly.contains("projection.hour.range: \"0,23\""));
    // Without [dynamodb]: no table, no write, the consumer never invoked.
    assert!(!hourly.contains("AWS::DynamoDB::Table"));
    assert!(!hourly.contains("dynamodb:UpdateItem"));
    assert!(hourly.contains("Enabled: false"));
    assert!(hourly.contains("No consumer: the dataset has no [dynamodb] section"));
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("weather") && !lower.contains("consumer") {
            panic!("line {}: {line}", i + 1);
        }
    }
}

/// A string property as written.
fn text_of(node: &Yaml) -> String {
    node.as_str()
        .unwrap_or_else(|| panic!("not a string: {node:?}"))
        .to_owned()
}

/// A string property, with `${NamePrefix}` and `${TableNamePrefix}` at their defaults.
fn text(node: &Yaml) -> String {
    node.as_str()
        .unwrap_or_else(|| panic!("not a string: {node:?}"))
        .replace("${NamePrefix}", "streamlake")
        .replace("${TableNamePrefix}", "")
}

#[test]
fn template_agrees_with_the_core_definitions() {
    let t = template();
    let resources = &t["Resources"];
    let props = |name: &str| &resources[name]["Properties"];

    // Parameter defaults are the project's names.
    assert_eq!(
        t["Parameters"]["NamePrefix"]["Default"].as_str(),
        Some("streamlake")
    );
    assert_eq!(
        t["Parameters"]["TableNamePrefix"]["Default"].as_str(),
        Some("")
    );

    // Glue columns are the schema's fields; partition keys its partition columns.
    let table = &props("ObservationsTable")["TableInput"];
    let columns: Vec<(String, String, String)> = table["StorageDescriptor"]["Columns"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| (text(&c["Name"]), text(&c["Type"]), text(&c["Comment"])))
        .collect();
    let dataset = Dataset::weather();
    let schema: Vec<(String, String, String)> = dataset
        .columns()
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.ty.glue_type().to_owned(),
                c.comment.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(columns, schema);
    let partitions: Vec<String> = table["PartitionKeys"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| text(&p["Name"]))
        .collect();
    assert_eq!(partitions, dataset.partition().columns());
    let location = text(&table["Parameters"]["storage.location.template"]);
    assert!(location.ends_with(&format!(
        "/{}year=${{!year}}/month=${{!month}}/day=${{!day}}/",
        layout::DATA_ROOT
    )));

    // Firehose writes where the local stack writes.
    let s3 = &props("DeliveryStream")["ExtendedS3DestinationConfiguration"];
    assert_eq!(text(&s3["Prefix"]), layout::DATA_PREFIX);
    assert_eq!(text(&s3["ErrorOutputPrefix"]), layout::ERROR_PREFIX);
    assert_eq!(
        text(&props("DeliveryStream")["DeliveryStreamName"]),
        names::DELIVERY_STREAM
    );
    // The Direct PUT stream delivers the same way into the same lake.
    let direct = props("DirectDeliveryStream");
    assert_eq!(
        text(&direct["DeliveryStreamName"]),
        names::DIRECT_DELIVERY_STREAM
    );
    assert_eq!(text(&direct["DeliveryStreamType"]), "DirectPut");
    let mut direct_s3 = direct["ExtendedS3DestinationConfiguration"].clone();
    let mut kinesis_s3 = s3.clone();
    for destination in [&mut direct_s3, &mut kinesis_s3] {
        let Yaml::Hash(h) = destination else {
            panic!("a mapping")
        };
        h.remove(&Yaml::String("CloudWatchLoggingOptions".into()));
    }
    assert_eq!(direct_s3, kinesis_s3);

    // Names.
    assert_eq!(text(&props("Stream")["Name"]), names::STREAM);
    assert_eq!(
        text(&props("TransformFunction")["FunctionName"]),
        names::TRANSFORM_FUNCTION
    );
    assert_eq!(
        text(&props("ConsumerFunction")["FunctionName"]),
        names::CONSUMER_FUNCTION
    );
    assert_eq!(
        text(&props("ConsumerFailureQueue")["QueueName"]),
        names::CONSUMER_FAILURE_QUEUE
    );
    // The tables are the dataset's, with its keys; the role writes only those.
    let weather = Dataset::weather();
    let dynamodb = weather.dynamodb().unwrap();
    for (name, partition, sort) in dynamodb.table_keys() {
        let table = props(&format!("{name}Table"));
        assert_eq!(
            text_of(&table["TableName"]),
            format!("${{TableNamePrefix}}{name}")
        );
        let keys: Vec<String> = table["KeySchema"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|k| text(&k["AttributeName"]))
            .collect();
        let expected: Vec<&str> = std::iter::once(partition)
            .chain(sort)
            .map(|k| k.attribute.as_str())
            .collect();
        assert_eq!(keys, expected, "{name}");
    }

    // The consumer reads the dataset file its package holds, as the local stack's does.
    let env = &props("ConsumerFunction")["Environment"]["Variables"];
    assert_eq!(text(&env[DATASET_ENV]), "dataset.toml");
    assert_eq!(
        text(&env[consumer_lambda::config::TABLE_PREFIX_VAR]),
        "TableNamePrefix"
    );
    assert!(
        text(&env["STREAMLAKE_DEAD_LETTER"])
            .ends_with(&format!("/{}", layout::CONSUMER_DEAD_LETTER_PREFIX))
    );

    // The alarms on the Lambdas' own metrics name the namespace their EMF lines use, and
    // metrics they print.
    for alarm in ["InvalidRecordsAlarm", "ConsumerRowsFailedAlarm"] {
        assert_eq!(text(&props(alarm)["Namespace"]), metrics::NAMESPACE);
        assert_eq!(
            text(&props(alarm)["Dimensions"][0]["Name"]),
            metrics::DIMENSION
        );
    }
    let dashboard = text(&props("Dashboard")["DashboardBody"][0]);
    for metric in [
        "RecordsOk",
        "RecordsFailed",
        "RowsWritten",
        "DeadLetters",
        "IteratorAge",
    ] {
        assert!(dashboard.contains(&format!("\"{metric}\"")), "{metric}");
    }

    // Both functions are Rust binaries for Graviton.
    for function in ["TransformFunction", "ConsumerFunction"] {
        assert_eq!(text(&props(function)["Runtime"]), "provided.al2023");
        assert_eq!(text(&props(function)["Architectures"][0]), "arm64");
    }
}

/// The Glue log table, the Glue view and the saved queries are what `query` generates and
/// reads (`infra/athena/`, `query/src/athena.rs`).
#[test]
fn athena_resources_are_the_generated_ddl() {
    use query::athena::{LOG_COLUMNS, TableNames, view_column_type, view_query};
    let t = template();
    let input = |name: &str| &t["Resources"][name]["Properties"]["TableInput"];
    let names = TableNames::for_view("weather");
    assert_eq!(text(&input("ObservationsTable")["Name"]), names.raw);
    assert_eq!(text(&input("CompactionLogTable")["Name"]), names.log);
    assert_eq!(text(&input("LakeView")["Name"]), names.view);

    let log = &input("CompactionLogTable")["StorageDescriptor"];
    let columns: Vec<(String, String)> = log["Columns"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| (text(&c["Name"]), text(&c["Comment"])))
        .collect();
    let expected: Vec<(String, String)> = LOG_COLUMNS
        .iter()
        .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(columns, expected);
    let lake: streamlake_core::lake::LakeLocation = "s3://${LakeBucket}/data/".parse().unwrap();
    assert_eq!(text(&log["Location"]), lake.compaction_log().to_string());

    // The view: Presto's definition (JSON) in ViewOriginalText, the columns of the schema
    // and the partitions, the query `query sql` runs offline.
    let view = input("LakeView");
    assert_eq!(text(&view["TableType"]), "VIRTUAL_VIEW");
    let parts = view["ViewOriginalText"][1].as_vec().unwrap();
    assert_eq!(text(&parts[0]), "/* Presto View: ");
    let definition: serde_json::Value =
        serde_json::from_str(&text(&parts[1]["Fn::Base64"])).unwrap();
    assert_eq!(
        definition["originalSql"],
        view_query(&streamlake_core::dataset::Dataset::weather(), &names)
    );
    assert_eq!(definition["catalog"], "awsdatacatalog");
    let columns: Vec<(String, String)> = definition["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let dataset = Dataset::weather();
    let expected: Vec<(String, String)> = dataset
        .columns()
        .iter()
        .map(|c| (c.name.clone(), view_column_type(c.ty).to_owned()))
        .chain(
            dataset
                .partition()
                .columns()
                .iter()
                .map(|c| ((*c).to_owned(), "integer".to_owned())),
        )
        .collect();
    assert_eq!(columns, expected);

    // The saved queries are the files of infra/athena/queries/, on the view.
    let mut saved = 0;
    for (_, resource) in t["Resources"].as_hash().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Athena::NamedQuery") {
            continue;
        }
        let props = &resource["Properties"];
        let file = root().join(format!("infra/athena/queries/{}.sql", text(&props["Name"])));
        let query = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text(&props["QueryString"]), query, "{}", file.display());
        assert!(query.contains(&format!("FROM {}\n", names.view)));
        saved += 1;
    }
    assert_eq!(saved, 3);
}

#[test]
fn no_policy_allows_every_action() {
    let (_, unicorns) = unicorns_template();
    let unicorns = YamlLoader::load_from_str(&unicorns).unwrap().remove(0);
    for t in [template(), unicorns] {
        no_wildcard_action(&t);
    }
}

fn no_wildcard_action(t: &Yaml) {
    for (name, resource) in t["Resources"].as_hash().unwrap() {
        if resource["Type"].as_str() != Some("AWS::IAM::Role") {
            continue;
        }
        for policy in resource["Properties"]["Policies"].as_vec().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_vec().unwrap() {
                let actions = match &statement["Action"] {
                    Yaml::Array(a) => a.iter().map(text).collect(),
                    other => vec![text(other)],
                };
                for action in actions {
                    assert!(!action.contains('*'), "{name:?}: wildcard action {action}");
                }
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            }
        }
    }
}

#[test]
fn deployment_checks_pass_without_an_aws_account() {
    let (unicorns, _) = unicorns_template();
    let output = Command::new("bash")
        .arg(root().join("infra/check.sh"))
        .arg(&unicorns)
        .env("STREAMLAKE_STATE_DIR", default_state_dir())
        .output()
        .expect("bash runs infra/check.sh");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "infra/check.sh failed:\n{report}");
    assert!(report.contains("infra checks passed"), "{report}");
    assert!(report.contains("template-unicorns.yaml"), "{report}");
}

#[test]
fn the_checks_install_with_the_stacks_uv() {
    // Both install under one lock into one `uv-<version>` folder: the versions must agree.
    let script = std::fs::read_to_string(root().join("infra/check.sh")).unwrap();
    let pinned = format!("uv_version=\"{}\"", streamlake::harness::python::UV_VERSION);
    assert!(script.contains(&pinned), "infra/check.sh must pin {pinned}");
    assert!(script.contains(streamlake::harness::python::LOCK_FILE));
}
