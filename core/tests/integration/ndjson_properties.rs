//! Properties of the lake's NDJSON decoder over any input: it never panics, and on any
//! valid object (any key order, whitespace, escapes, unknown keys, the value forms
//! arrow-json accepts) it produces exactly what arrow-json produces.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use proptest::prelude::*;
use serde_json::Value;
use streamlake_core::columnar::arrow_schema;
use streamlake_core::dataset::Dataset;
use streamlake_core::ndjson::NdjsonDecoder;

/// JSON whitespace, often none.
fn space() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => "[ \t\r]{1,3}",
    ]
}

/// A JSON string literal for `text`: serde's escaping, or every character escaped as
/// `\uXXXX` (surrogate pairs included), as other writers do.
fn string_literal(text: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(serde_json::to_string(&text).expect("a string")),
        Just({
            let mut out = String::from("\"");
            for unit in text.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out.push('"');
            out
        }),
    ]
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,16}", "[A-Z]{4}:[A-Z0-9]{11}", "\\PC{0,8}"]
}

/// A double as JSON: shortest form, exponent form, an integer, or a numeric string.
fn number() -> impl Strategy<Value = String> {
    let finite = any::<f64>().prop_filter("finite", |v| v.is_finite());
    prop_oneof![
        finite
            .clone()
            .prop_map(|v| serde_json::to_string(&v).expect("finite")),
        finite.clone().prop_map(|v| format!("{v:e}")),
        (-100_000i64..100_000, 0u32..4).prop_map(|(m, d)| {
            let scale = 10i64.pow(d);
            let sign = if m < 0 { "-" } else { "" };
            let (whole, frac) = (m.abs() / scale, m.abs() % scale);
            if d == 0 {
                format!("{m}")
            } else {
                format!("{sign}{whole}.{frac:0width$}", width = d as usize)
            }
        }),
        (-1_000i32..1_000).prop_map(|v| format!("\"{v}.5\"")),
    ]
}

/// A time as RFC 3339 (any offset, 0 to 9 fraction digits) or microseconds.
fn timestamp() -> impl Strategy<Value = String> {
    let seconds = 0i64..4_102_444_800; // 1970 to 2100
    prop_oneof![
        (
            seconds.clone(),
            0u32..1_000_000_000,
            0usize..10,
            -14i32 * 60..=14 * 60
        )
            .prop_map(|(s, nanos, digits, offset_min)| {
                let offset = chrono::FixedOffset::east_opt(offset_min * 60).expect("offset");
                let at = chrono::DateTime::from_timestamp(s, nanos)
                    .expect("in range")
                    .with_timezone(&offset);
                let fraction = match digits {
                    0 => String::new(),
                    d => format!(".{:09}", nanos)[..=d].to_string(),
                };
                let zone = if offset_min == 0 {
                    "Z".to_string()
                } else {
                    at.format("%:z").to_string()
                };
                format!("\"{}{fraction}{zone}\"", at.format("%Y-%m-%dT%H:%M:%S"))
            }),
        seconds.prop_map(|s| (s * 1_000_000).to_string()),
    ]
}

/// A date as `YYYY-MM-DD` or days since 1970.
fn date() -> impl Strategy<Value = String> {
    (0i32..47_000).prop_flat_map(|days| {
        let text = (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
            + chrono::Days::new(days as u64))
        .format("\"%Y-%m-%d\"")
        .to_string();
        prop_oneof![Just(text), Just(days.to_string())]
    })
}

/// Any JSON value, nested, as a key the schema does not know would carry.
fn other_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|v| serde_json::to_string(&v).expect("a value"))
}

/// One valid line: every required field, the optional one present, null or absent, up to
/// two unknown keys, in any order with any whitespace.
fn line() -> impl Strategy<Value = String> {
    let text = || any_text().prop_flat_map(string_literal);
    let station_name = prop_oneof![
        text().prop_map(Some),
        Just(Some("null".to_string())),
        Just(None)
    ];
    let extras = prop::collection::vec(("[a-z_]{1,12}", other_value()), 0..3);
    (
        text(),
        station_name,
        text(),
        number(),
        timestamp(),
        date(),
        timestamp(),
        extras,
    )
        .prop_map(
            |(id, name, datatype, value, observed, day, ingested, extras)| {
                let mut members = vec![
                    ("\"stationid\"".to_string(), id),
                    ("\"datatype\"".to_string(), datatype),
                    ("\"value\"".to_string(), value),
                    ("\"observed_at\"".to_string(), observed),
                    ("\"date\"".to_string(), day),
                    ("\"ingested_at\"".to_string(), ingested),
                ];
                if let Some(name) = name {
                    members.push(("\"station_name\"".to_string(), name));
                }
                for (key, value) in extras {
                    // Unknown keys only: a known name twice is a different question.
                    if arrow_schema(&Dataset::weather())
                        .field_with_name(&key)
                        .is_err()
                    {
                        members.push((format!("\"{key}\""), value));
                    }
                }
                members
            },
        )
        .prop_shuffle()
        .prop_flat_map(|members| {
            let n = members.len();
            (
                Just(members),
                prop::collection::vec((space(), space(), space()), n),
            )
        })
        .prop_map(|(members, spaces)| {
            let body = members
                .into_iter()
                .zip(spaces)
                .map(|((key, value), (a, b, c))| format!("{a}{key}{b}:{c}{value}"))
                .collect::<Vec<_>>()
                .join(",");
            format!("{{{body}}}")
        })
}

fn arrow_json(body: &[u8]) -> RecordBatch {
    let batches = arrow_json::ReaderBuilder::new(arrow_schema(&Dataset::weather()))
        .build(body)
        .expect("a reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("arrow-json reads valid lines");
    arrow_select::concat::concat_batches(&arrow_schema(&Dataset::weather()), &batches)
        .expect("one schema")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes: an answer (batches or an error naming a line), never a panic, for the
    /// whole schema, a projection and no columns at all.
    #[test]
    fn any_bytes_decode_or_fail_without_a_panic(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let full = arrow_schema(&Dataset::weather());
        for schema in [full.clone(), Arc::new(full.project(&[3, 0]).unwrap()), Arc::new(Schema::empty())] {
            let _ = NdjsonDecoder::new(schema, 7).unwrap().decode(&body);
        }
    }

    /// Valid lines, cut anywhere or with a byte changed: never a panic.
    #[test]
    fn damaged_lines_never_panic(
        lines in prop::collection::vec(line(), 1..4),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let body = lines.join("\n").into_bytes();
        let decoder = NdjsonDecoder::new(arrow_schema(&Dataset::weather()), 3).unwrap();
        let _ = decoder.decode(&body[..cut.index(body.len() + 1)]);
        let mut changed = body.clone();
        changed[flip.index(body.len())] = byte;
        let _ = decoder.decode(&changed);
    }

    /// Valid lines: the same columns, rows and values as arrow-json.
    #[test]
    fn valid_lines_decode_as_arrow_json_does(
        lines in prop::collection::vec(line(), 1..8),
        batch_size in 1usize..5,
    ) {
        let body = lines.join("\n") + "\n";
        let ours = NdjsonDecoder::new(arrow_schema(&Dataset::weather()), batch_size)
            .unwrap()
            .decode(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert!(ours.iter().all(|b| b.num_rows() <= batch_size));
        let ours = arrow_select::concat::concat_batches(&arrow_schema(&Dataset::weather()), &ours).unwrap();
        let theirs = arrow_json(body.as_bytes());
        for (field, (a, b)) in arrow_schema(&Dataset::weather()).fields().iter().zip(ours.columns().iter().zip(theirs.columns())) {
            if field.data_type() == &DataType::Utf8 {
                // Strings as serde_json reads them: arrow-json 59 decodes some surrogate
                // pairs wrongly (see `surrogate_pairs_decode_to_their_code_point`).
                let expected: StringArray = lines
                    .iter()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()[field.name()].as_str().map(str::to_owned))
                    .collect();
                prop_assert_eq!(a.as_string::<i32>(), &expected, "column {} of {}", field.name(), body);
            } else {
                prop_assert_eq!(a, b, "column {} of {}", field.name(), body);
            }
        }
    }
}

/// `\ud9ca\udcb2` is U+828B2 (RFC 8259 section 7; serde_json and Python agree). arrow-json
/// 59.3 reads U+728B2: it combines the halves with `|` where `+` is needed, which differs
/// whenever bit 6 of the high half is set (U+20000-U+2FFFF, among others).
#[test]
fn surrogate_pairs_decode_to_their_code_point() {
    let line = r#"{"stationid":"\ud9ca\udcb2 \ud840\udc00 \ud83d\ude00","datatype":"T","value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01","ingested_at":"2021-10-01T00:00:00Z"}"#;
    let batch = &NdjsonDecoder::new(arrow_schema(&Dataset::weather()), 8)
        .unwrap()
        .decode(line.as_bytes())
        .unwrap()[0];
    assert_eq!(
        batch.column(0).as_string::<i32>().value(0),
        "\u{828b2} \u{20000} \u{1f600}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(line).unwrap()["stationid"],
        "\u{828b2} \u{20000} \u{1f600}"
    );
}
