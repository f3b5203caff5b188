//! The weather observation schema, defined once.
//!
//! Validation ([`crate::observation`]), the NDJSON lines the transform writes, the
//! Glue/Athena columns and (later) the Parquet schema are all derived from [`FIELDS`].
//! Change a field here and every output follows.

/// The logical type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// A finite 64-bit float.
    Double,
    /// An instant, written as RFC 3339 in UTC (`2021-10-01T00:00:00Z`).
    Timestamp,
    /// A calendar day, written as `YYYY-MM-DD`.
    Date,
}

impl FieldType {
    /// The Glue / Athena (Hive DDL) type of this column.
    pub const fn glue_type(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Double => "double",
            FieldType::Timestamp => "timestamp",
            FieldType::Date => "date",
        }
    }
}

/// One column of a normalized observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Column name in NDJSON, Parquet and Glue.
    pub name: &'static str,
    /// Logical type.
    pub ty: FieldType,
    /// Whether a normalized record may lack a value.
    pub nullable: bool,
    /// One-line description (used as the Glue column comment).
    pub doc: &'static str,
}

/// Columns of a normalized observation, in output order.
pub const FIELDS: &[Field] = &[
    Field {
        name: "stationid",
        ty: FieldType::String,
        nullable: false,
        doc: "GHCND station identifier, e.g. GHCND:US1MDAA0001",
    },
    Field {
        name: "station_name",
        ty: FieldType::String,
        nullable: true,
        doc: "Station name and place, from the input's location",
    },
    Field {
        name: "datatype",
        ty: FieldType::String,
        nullable: false,
        doc: "Measured quantity in upper case: PRCP, SNOW, TMAX, TMIN, ...",
    },
    Field {
        name: "value",
        ty: FieldType::Double,
        nullable: false,
        doc: "Measured value (finite)",
    },
    Field {
        name: "observed_at",
        ty: FieldType::Timestamp,
        nullable: false,
        doc: "Event time of the observation, UTC",
    },
    Field {
        name: "date",
        ty: FieldType::Date,
        nullable: false,
        doc: "UTC day of observed_at",
    },
    Field {
        name: "ingested_at",
        ty: FieldType::Timestamp,
        nullable: false,
        doc: "Arrival time of the record in the stream, UTC",
    },
];

/// The field whose value decides the record's partition (its event time).
pub const EVENT_TIME_FIELD: &str = "observed_at";

/// Partition columns of the lake, outermost first. They are path segments
/// (`year=2021/month=10/day=01/`), not data columns.
pub const PARTITION_COLUMNS: &[&str] = &["year", "month", "day"];

/// Looks a field up by name.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_field_is_a_required_timestamp() {
        let f = field(EVENT_TIME_FIELD).unwrap();
        assert_eq!(f.ty, FieldType::Timestamp);
        assert!(!f.nullable);
    }

    #[test]
    fn partition_columns_are_not_data_columns() {
        for p in PARTITION_COLUMNS {
            assert!(field(p).is_none(), "{p} must not be a data column");
        }
    }
}
