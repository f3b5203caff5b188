//! Whether a lake written with one dataset file can be read with another: a column added
//! as optional reads null in older objects (NDJSON lacks the key, Parquet the column);
//! anything else that older objects cannot answer is a breaking change.

use std::fmt;

use super::Dataset;

/// A change that would make objects written with the older dataset unreadable, or wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breaking {
    /// A column of the older dataset is gone.
    Removed {
        /// The column.
        column: String,
    },
    /// A column's type changed.
    Retyped {
        /// The column.
        column: String,
        /// Its older type.
        was: &'static str,
        /// Its new type.
        now: &'static str,
    },
    /// A column that older objects lack, or hold nulls in, may no longer be null.
    NowRequired {
        /// The column.
        column: String,
        /// Whether the older dataset had the column at all.
        added: bool,
    },
    /// The partitions are laid out differently.
    Repartitioned {
        /// The older granularity.
        was: &'static str,
        /// The new one.
        now: &'static str,
    },
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Removed { column } => write!(
                f,
                "column {column:?} is removed: older objects hold it, and tables read from them would lose it"
            ),
            Self::Retyped { column, was, now } => write!(
                f,
                "column {column:?} changes type from {was} to {now}: older objects hold {was} values"
            ),
            Self::NowRequired {
                column,
                added: true,
            } => write!(
                f,
                "column {column:?} is added as required (or derived): older objects have no value for it; add it with required = false"
            ),
            Self::NowRequired {
                column,
                added: false,
            } => write!(
                f,
                "column {column:?} becomes required: older objects may hold nulls in it"
            ),
            Self::Repartitioned { was, now } => write!(
                f,
                "partition changes from {was} to {now}: older partitions are laid out by {was}"
            ),
        }
    }
}

impl Dataset {
    /// The changes from `older` (the dataset stored with the lake) to this one that would
    /// break reading older objects; empty when this dataset reads them all (same columns,
    /// or optional columns added).
    pub fn breaking_changes_from(&self, older: &Dataset) -> Vec<Breaking> {
        let mut changes = Vec::new();
        if self.partition() != older.partition() {
            changes.push(Breaking::Repartitioned {
                was: older.partition().as_str(),
                now: self.partition().as_str(),
            });
        }
        for old in older.columns() {
            match self.column(&old.name) {
                None => changes.push(Breaking::Removed {
                    column: old.name.clone(),
                }),
                Some(new) if new.ty != old.ty => changes.push(Breaking::Retyped {
                    column: old.name.clone(),
                    was: old.ty.as_str(),
                    now: new.ty.as_str(),
                }),
                Some(new) if old.nullable() && !new.nullable() => {
                    changes.push(Breaking::NowRequired {
                        column: old.name.clone(),
                        added: false,
                    });
                }
                Some(_) => {}
            }
        }
        for new in self.columns() {
            if older.column(&new.name).is_none() && !new.nullable() {
                changes.push(Breaking::NowRequired {
                    column: new.name.clone(),
                    added: true,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(fields: &str) -> Dataset {
        Dataset::from_toml(&format!("name = \"t\"\n{fields}"), "t.toml").unwrap()
    }

    const BASE: &str = r#"
[[fields]]
name = "id"
type = "string"
required = true

[[fields]]
name = "n"
type = "long"
"#;

    #[test]
    fn adding_an_optional_column_breaks_nothing() {
        let older = dataset(BASE);
        let newer = dataset(&format!(
            "{BASE}\n[[fields]]\nname = \"extra\"\ntype = \"double\"\n"
        ));
        assert_eq!(newer.breaking_changes_from(&older), []);
        assert_eq!(older.breaking_changes_from(&older), []);
    }

    #[test]
    fn removing_retyping_requiring_and_repartitioning_break() {
        let older = dataset(BASE);
        let newer = dataset(
            r#"partition = "hour"
[[fields]]
name = "id"
type = "long"

[[fields]]
name = "m"
type = "string"
required = true

[[fields]]
name = "at"
derive = "arrival_time"
"#,
        );
        let changes: Vec<String> = newer
            .breaking_changes_from(&older)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "partition changes from day to hour: older partitions are laid out by day",
                "column \"id\" changes type from string to long: older objects hold string values",
                "column \"n\" is removed: older objects hold it, and tables read from them would lose it",
                "column \"m\" is added as required (or derived): older objects have no value for it; add it with required = false",
                "column \"at\" is added as required (or derived): older objects have no value for it; add it with required = false",
            ]
        );
        let required =
            dataset(&BASE.replace("type = \"long\"", "type = \"long\"\nrequired = true"));
        assert_eq!(
            required.breaking_changes_from(&older),
            [Breaking::NowRequired {
                column: "n".into(),
                added: false
            }]
        );
    }
}
