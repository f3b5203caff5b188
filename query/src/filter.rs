//! `--where column=value` filters, checked against the dataset's columns.

use serde_json::{Map, Value};
use streamlake_core::dataset::{Case, ColumnType, Dataset, Source};
use thiserror::Error;

/// Keeps the records whose `column` equals `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    column: String,
    ty: ColumnType,
    value: String,
    /// The column is written in one case (`case = "upper"`): compare ignoring it.
    ignore_case: bool,
}

/// A filter that cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// Not `column=value`.
    #[error("filter {0:?} is not of the form column=value")]
    Syntax(String),
    /// The column is not one of the dataset's.
    #[error("unknown column {column:?}; the columns are: {columns}")]
    UnknownField {
        /// The column asked for.
        column: String,
        /// The dataset's columns.
        columns: String,
    },
    /// The value cannot be of the column's type.
    #[error("{value:?} is not a {ty}, as column {column} requires")]
    NotOfType {
        /// Column.
        column: String,
        /// Its type.
        ty: ColumnType,
        /// Value given.
        value: String,
    },
}

impl Filter {
    /// Reads `column=value` against `dataset`'s columns.
    pub fn parse(spec: &str, dataset: &Dataset) -> Result<Self, FilterError> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| FilterError::Syntax(spec.to_owned()))?;
        let (name, value) = (name.trim(), value.trim().to_owned());
        let column = dataset
            .column(name)
            .ok_or_else(|| FilterError::UnknownField {
                column: name.to_owned(),
                columns: dataset
                    .columns()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let fits = match column.ty {
            ColumnType::Long | ColumnType::Double => value.parse::<f64>().is_ok(),
            ColumnType::Boolean => matches!(value.as_str(), "true" | "false"),
            _ => true,
        };
        if !fits {
            return Err(FilterError::NotOfType {
                column: column.name.clone(),
                ty: column.ty,
                value,
            });
        }
        let ignore_case = matches!(&column.source, Source::Read(r) if matches!(r.case, Some(Case::Upper | Case::Lower)));
        Ok(Self {
            column: column.name.clone(),
            ty: column.ty,
            value,
            ignore_case,
        })
    }

    /// Whether a record matches. Text compares exactly (ignoring case for a column the
    /// dataset writes in one case), numbers numerically.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        match (record.get(&self.column), self.ty) {
            (Some(Value::Number(n)), ColumnType::Long | ColumnType::Double) => {
                n.as_f64() == self.value.parse::<f64>().ok()
            }
            (Some(Value::Bool(b)), ColumnType::Boolean) => b.to_string() == self.value,
            (Some(Value::String(s)), _) if self.ignore_case => s.eq_ignore_ascii_case(&self.value),
            (Some(Value::String(s)), _) => *s == self.value,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn filters_by_the_datasets_columns() {
        let d = Dataset::weather();
        let parse = |s: &str| Filter::parse(s, &d);
        let r = record(r#"{"stationid":"S1","datatype":"PRCP","value":5.0}"#);
        assert!(parse("datatype=prcp").unwrap().matches(&r));
        assert!(parse("value=5").unwrap().matches(&r));
        assert!(!parse("stationid=S2").unwrap().matches(&r));
        assert!(!parse("stationid=s1").unwrap().matches(&r), "exact text");
        assert!(matches!(
            parse("nope=1"),
            Err(FilterError::UnknownField { .. })
        ));
        assert!(matches!(
            parse("value=x"),
            Err(FilterError::NotOfType { .. })
        ));
        assert!(matches!(parse("value"), Err(FilterError::Syntax(_))));
    }
}
