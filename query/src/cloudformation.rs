//! The CloudFormation template for any dataset. `infra/template.yaml` is the weather
//! dataset's template; the parts of it that depend on the dataset sit between a
//! `# {dataset:REGION}` and a `# {/dataset}` comment line, and [`render`] writes each
//! region for another dataset: the Glue table's columns, partition keys and projection, the
//! compaction log's and the view's names and locations, the Firehose prefixes, the
//! lake's output, the saved queries, the consumer's DynamoDB tables with the ARNs its
//! role may write, and whether its event source mapping is enabled (not for a dataset
//! without `[dynamodb]`). A test checks that rendering the checked-in
//! template for the weather dataset gives it back byte for byte, so the template and the
//! generator cannot drift apart.

use std::fmt::Write as _;

use streamlake_core::dataset::Dataset;
use thiserror::Error;

use crate::athena::{TableNames, view_column_type, view_query};

/// A saved Athena query (an `AWS::Athena::NamedQuery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedQuery {
    /// Its name, `[a-z0-9_]+` (the file's stem).
    pub name: String,
    /// One line.
    pub description: String,
    /// The statement, as the file holds it.
    pub sql: String,
}

impl SavedQuery {
    /// A saved query from the text of `NAME.sql`: the description is its first line's
    /// `-- ` comment, without a final period and what follows a comma.
    pub fn from_file(name: &str, sql: &str) -> Self {
        let first = sql.lines().next().unwrap_or_default();
        let description = first
            .strip_prefix("-- ")
            .unwrap_or(name)
            .trim_end_matches('.')
            .to_owned();
        Self {
            name: name.to_owned(),
            description,
            sql: sql.to_owned(),
        }
    }

    /// The query a dataset gets when it brings none: its records per day.
    pub fn records_per_day(dataset: &Dataset) -> Self {
        let view = TableNames::of(dataset).view;
        let sql = format!(
            "-- Records per day, the newest days first.\n\
             SELECT year, month, day, COUNT(*) AS records\n\
             FROM {view}\n\
             GROUP BY year, month, day\n\
             ORDER BY year DESC, month DESC, day DESC\n\
             LIMIT 31\n"
        );
        Self::from_file("records_per_day", &sql)
    }

    /// The resource's logical id: the name in CamelCase, then `Query`.
    fn logical_id(&self) -> String {
        let mut id: String = self
            .name
            .split('_')
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |c| {
                    c.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        id.push_str("Query");
        id
    }
}

/// A template whose regions cannot be rendered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A region starts and does not end.
    #[error("template line {line}: region {region:?} has no `# {{/dataset}}` line")]
    Unclosed {
        /// The region.
        region: String,
        /// Its first line (1-based).
        line: usize,
    },
    /// A region this module does not know.
    #[error("template line {line}: unknown region {region:?}")]
    Unknown {
        /// The region.
        region: String,
        /// Its first line (1-based).
        line: usize,
    },
}

/// `base` with every dataset region rendered for `dataset`, with `queries` as its saved
/// queries.
pub fn render(
    base: &str,
    dataset: &Dataset,
    queries: &[SavedQuery],
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(base.len());
    let mut lines = base.split_inclusive('\n').enumerate();
    while let Some((i, line)) = lines.next() {
        out.push_str(line);
        let Some(region) = line
            .trim()
            .strip_prefix("# {dataset:")
            .and_then(|r| r.strip_suffix('}'))
        else {
            continue;
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            if inner.trim() == "# {/dataset}" {
                let body = region_text(region, indent, dataset, queries).ok_or_else(|| {
                    TemplateError::Unknown {
                        region: region.to_owned(),
                        line: i + 1,
                    }
                })?;
                out.push_str(&body);
                out.push_str(inner);
                closed = true;
                break;
            }
        }
        if !closed {
            return Err(TemplateError::Unclosed {
                region: region.to_owned(),
                line: i + 1,
            });
        }
    }
    Ok(out)
}

/// The lines of one region, at `indent`.
fn region_text(
    region: &str,
    indent: &str,
    dataset: &Dataset,
    queries: &[SavedQuery],
) -> Option<String> {
    let names = TableNames::of(dataset);
    let prefix = dataset.prefix();
    let partitions = dataset.partition().columns();
    let mut out = String::new();
    let mut line = |text: &str| {
        let _ = writeln!(out, "{indent}{text}");
    };
    match region {
        "firehose-prefix" => {
            let folders: Vec<String> = partitions
                .iter()
                .map(|c| format!("{c}=!{{partitionKeyFromLambda:{c}}}"))
                .collect();
            line(&format!("Prefix: \"{prefix}{}/\"", folders.join("/")));
        }
        "lake-output" => line(&format!("Value: !Sub \"s3://${{LakeBucket}}/{prefix}\"")),
        "raw-table" => {
            line(&format!("Name: {}", names.raw));
            line(&format!(
                "Description: The objects in the lake's partition folders (query the view {}); partitions projected from {}.",
                names.view,
                partitions.join("/")
            ));
            line("TableType: EXTERNAL_TABLE");
            line("Parameters:");
            line("  classification: !If [IsParquet, parquet, json]");
            line("  projection.enabled: \"true\"");
            for column in partitions {
                let (range, digits) = match *column {
                    "year" => ("1970,2100", false),
                    "month" => ("1,12", true),
                    "day" => ("1,31", true),
                    _ => ("0,23", true),
                };
                line(&format!("  projection.{column}.type: integer"));
                line(&format!("  projection.{column}.range: \"{range}\""));
                if digits {
                    line(&format!("  projection.{column}.digits: \"2\""));
                }
            }
            let folders: Vec<String> = partitions
                .iter()
                .map(|c| format!("{c}=${{!{c}}}"))
                .collect();
            line(&format!(
                "  storage.location.template: !Sub \"s3://${{LakeBucket}}/{prefix}{}/\"",
                folders.join("/")
            ));
            line("PartitionKeys:");
            for column in partitions {
                line(&format!("  - {{Name: {column}, Type: int}}"));
            }
            line("StorageDescriptor:");
            line(&format!(
                "  Location: !Sub \"s3://${{LakeBucket}}/{prefix}\""
            ));
            line("  Columns:");
            for column in dataset.columns() {
                let comment = column
                    .comment
                    .as_ref()
                    .map(|c| format!(", Comment: {}", yaml_string(c)))
                    .unwrap_or_default();
                line(&format!(
                    "    - {{Name: {}, Type: {}{comment}}}",
                    column.name,
                    column.ty.glue_type()
                ));
            }
        }
        "log-table" => {
            line(&format!("Name: {}", names.log));
            line(&format!(
                "Description: Compactions in progress (query compact); the view {} reads it to count every record once.",
                names.view
            ));
        }
        "log-location" => line(&format!(
            "Location: !Sub \"s3://${{LakeBucket}}/compaction-log/{prefix}\""
        )),
        "view" => {
            line(&format!("Name: {}", names.view));
            line(
                "Description: What to query. Every record once, at every step of a compaction, as query sql reads the lake.",
            );
            line("TableType: VIRTUAL_VIEW");
            line("Parameters:");
            line("  presto_view: \"true\"");
            line("  comment: Presto View");
            line("ViewExpandedText: /* Presto View */");
            line("ViewOriginalText: !Join");
            line("  - \"\"");
            line("  - - \"/* Presto View: \"");
            line("    - Fn::Base64: !Sub |-");
            line(&format!("        {}", presto_view(dataset, &names)));
            line("    - \" */\"");
            line("StorageDescriptor:");
            line("  SerdeInfo: {}");
            line("  Columns:");
            for column in dataset.columns() {
                line(&format!(
                    "    - {{Name: {}, Type: {}}}",
                    column.name,
                    column.ty.glue_type()
                ));
            }
            for column in partitions {
                line(&format!("    - {{Name: {column}, Type: int}}"));
            }
        }
        "tables" => {
            let keys: Vec<_> = dataset
                .dynamodb()
                .map(|d| d.table_keys().collect())
                .unwrap_or_default();
            for (i, (name, partition, sort)) in keys.into_iter().enumerate() {
                if i > 0 {
                    line("");
                }
                line(&format!("{}:", table_logical_id(name)));
                line("  Type: AWS::DynamoDB::Table");
                line("  Metadata:");
                line("    checkov:");
                line("      skip:");
                line("        - id: CKV_AWS_119");
                line(
                    "          comment: Encrypted at rest with the AWS owned key; a customer managed key adds cost and key policy management the project does not need.",
                );
                line("  Properties:");
                line(&format!(
                    "    TableName: !Sub \"${{TableNamePrefix}}{name}\""
                ));
                line("    BillingMode: PAY_PER_REQUEST");
                line("    AttributeDefinitions:");
                let keys: Vec<_> = std::iter::once((partition, "HASH"))
                    .chain(sort.map(|k| (k, "RANGE")))
                    .collect();
                for (key, _) in &keys {
                    line(&format!(
                        "      - {{AttributeName: {}, AttributeType: {}}}",
                        yaml_key(&key.attribute),
                        key.ty.as_str()
                    ));
                }
                line("    KeySchema:");
                for (key, kind) in &keys {
                    line(&format!(
                        "      - {{AttributeName: {}, KeyType: {kind}}}",
                        yaml_key(&key.attribute)
                    ));
                }
                line("    PointInTimeRecoverySpecification:");
                line("      PointInTimeRecoveryEnabled: true");
                line("    SSESpecification:");
                line("      SSEEnabled: true");
            }
        }
        // Only the dataset's tables, only the action the consumer uses.
        "table-writes" => {
            let tables: Vec<_> = dataset
                .dynamodb()
                .iter()
                .flat_map(|d| d.table_keys())
                .collect();
            if !tables.is_empty() {
                line("- Sid: WriteRows");
                line("  Effect: Allow");
                line("  Action: dynamodb:UpdateItem");
                line("  Resource:");
                for (name, ..) in tables {
                    line(&format!("    - !GetAtt {}.Arn", table_logical_id(name)));
                }
            }
            // A window's final invocation reads its summary rows first (so that a retry
            // writes only what is missing), and reads a row back when a condition on its
            // extremes fails without returning it.
            let summaries: Vec<_> = dataset
                .dynamodb()
                .iter()
                .flat_map(|d| &d.summaries)
                .collect();
            if !summaries.is_empty() {
                line("- Sid: ReadSummaryRows");
                line("  Effect: Allow");
                line("  Action:");
                line("    - dynamodb:BatchGetItem");
                line("    - dynamodb:GetItem");
                line("  Resource:");
                for summary in summaries {
                    line(&format!(
                        "    - !GetAtt {}.Arn",
                        table_logical_id(&summary.name)
                    ));
                }
            }
        }
        // The dashboard's widget of the tables: the write capacity each consumes.
        "table-widget" => {
            let tables: Vec<_> = dataset
                .dynamodb()
                .iter()
                .flat_map(|d| d.table_keys())
                .map(|(name, ..)| {
                    format!(
                        r#"["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", "${{TableNamePrefix}}{name}"]"#
                    )
                })
                .collect();
            let widget = if tables.is_empty() {
                r#"{"type": "text", "x": 0, "y": 18, "width": 24, "height": 2, "properties": {"markdown": "No consumer: the dataset has no [dynamodb] section, so no tables are written."}}"#.to_owned()
            } else {
                format!(
                    r#"{{"type": "metric", "x": 0, "y": 18, "width": 24, "height": 6, "properties": {{"title": "DynamoDB: write capacity consumed per table", "region": "${{AWS::Region}}", "stat": "Sum", "period": 60, "metrics": [{}]}}}}"#,
                    tables.join(", ")
                )
            };
            line(&format!("TableWidget: !Sub '{widget}'"));
        }
        // A dataset without tables: the consumer is deployed, never invoked.
        "consumer-enabled" => line(&format!("Enabled: {}", dataset.dynamodb().is_some())),
        "saved-queries" => {
            for (i, query) in queries.iter().enumerate() {
                if i > 0 {
                    line("");
                }
                line(&format!("{}:", query.logical_id()));
                line("  Type: AWS::Athena::NamedQuery");
                line("  Properties:");
                line(&format!("    Name: {}", query.name));
                line(&format!("    Description: {}", query.description));
                line("    Database: !Ref GlueDatabase");
                line("    WorkGroup: !Ref AthenaWorkGroup");
                line("    QueryString: |");
                for sql in query.sql.lines() {
                    line(&format!("      {sql}"));
                }
            }
        }
        _ => return None,
    }
    // Blank lines carry no indentation.
    Some(
        out.split_inclusive('\n')
            .map(|l| if l.trim().is_empty() { "\n" } else { l })
            .collect(),
    )
}

/// Presto's view definition (JSON, in a `!Sub` string: `${GlueDatabase}` is the schema).
fn presto_view(dataset: &Dataset, names: &TableNames) -> String {
    let sql = serde_json::to_string(&view_query(dataset, names)).expect("a string serializes");
    let columns: Vec<String> = dataset
        .columns()
        .iter()
        .map(|c| (c.name.as_str(), view_column_type(c.ty)))
        .chain(
            dataset
                .partition()
                .columns()
                .iter()
                .map(|c| (*c, "integer")),
        )
        .map(|(name, ty)| format!("{{\"name\": \"{name}\", \"type\": \"{ty}\"}}"))
        .collect();
    format!(
        "{{\"originalSql\": {sql}, \"catalog\": \"awsdatacatalog\", \"schema\": \"${{GlueDatabase}}\", \"columns\": [{}]}}",
        columns.join(", ")
    )
}

/// The logical id of a DynamoDB table: its name's letters and digits, then `Table`.
fn table_logical_id(name: &str) -> String {
    let mut id: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    id.push_str("Table");
    id
}

/// An attribute name in a flow mapping: as it is when plain, quoted otherwise.
fn yaml_key(name: &str) -> String {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_owned()
    } else {
        yaml_string(name)
    }
}

/// A YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    // JSON's escapes are YAML's for a double-quoted scalar.
    serde_json::to_string(text).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "a:\n  # {dataset:lake-output}\n  Value: old\n  # {/dataset}\nb: 1\n";

    #[test]
    fn regions_are_rendered_and_the_rest_kept() {
        let out = render(BASE, &Dataset::weather(), &[]).unwrap();
        assert_eq!(
            out,
            "a:\n  # {dataset:lake-output}\n  Value: !Sub \"s3://${LakeBucket}/data/\"\n  # {/dataset}\nb: 1\n"
        );
    }

    #[test]
    fn an_unknown_or_unclosed_region_is_named_with_its_line() {
        let weather = Dataset::weather();
        assert_eq!(
            render("x: 1\n# {dataset:nope}\n# {/dataset}\n", &weather, &[]),
            Err(TemplateError::Unknown {
                region: "nope".into(),
                line: 2
            })
        );
        assert_eq!(
            render("# {dataset:view}\nName: x\n", &weather, &[])
                .unwrap_err()
                .to_string(),
            "template line 1: region \"view\" has no `# {/dataset}` line"
        );
    }

    #[test]
    fn saved_queries_take_their_description_and_id_from_the_file() {
        let q = SavedQuery::from_file(
            "top_stations_by_snowfall",
            "-- The ten stations with the most snowfall (mm) over the whole lake.\nSELECT 1\n",
        );
        assert_eq!(q.logical_id(), "TopStationsBySnowfallQuery");
        assert_eq!(
            q.description,
            "The ten stations with the most snowfall (mm) over the whole lake"
        );
    }
}
