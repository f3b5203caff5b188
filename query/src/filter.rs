//! `--where field=value` filters, checked against the one schema.

use std::str::FromStr;

use serde_json::{Map, Value};
use streamlake_core::schema::{self, FieldType};
use thiserror::Error;

/// Keeps the records whose `field` equals `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    field: &'static str,
    ty: FieldType,
    value: String,
}

/// A filter that cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// Not `field=value`.
    #[error("filter {0:?} is not of the form field=value")]
    Syntax(String),
    /// The field is not a column of the schema.
    #[error("unknown field {0:?}; the fields are: {fields}", fields = field_names())]
    UnknownField(String),
    /// The value cannot be of the field's type.
    #[error("{value:?} is not a number, as field {field} requires")]
    NotANumber {
        /// Field.
        field: String,
        /// Value given.
        value: String,
    },
}

fn field_names() -> String {
    schema::FIELDS
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| FilterError::Syntax(s.to_owned()))?;
        let field = schema::field(name.trim())
            .ok_or_else(|| FilterError::UnknownField(name.trim().to_owned()))?;
        let value = value.trim().to_owned();
        if field.ty == FieldType::Double && value.parse::<f64>().is_err() {
            return Err(FilterError::NotANumber {
                field: field.name.to_owned(),
                value,
            });
        }
        Ok(Self {
            field: field.name,
            ty: field.ty,
            value,
        })
    }
}

impl Filter {
    /// Whether a record matches. Text compares exactly (datatypes ignoring case),
    /// numbers numerically.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        match (record.get(self.field), self.ty) {
            (Some(Value::Number(n)), FieldType::Double) => {
                n.as_f64() == self.value.parse::<f64>().ok()
            }
            (Some(Value::String(s)), _) if self.field == "datatype" => {
                s.eq_ignore_ascii_case(&self.value)
            }
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
    fn filters_by_schema_field() {
        let r = record(r#"{"stationid":"S1","datatype":"PRCP","value":5.0}"#);
        assert!("datatype=prcp".parse::<Filter>().unwrap().matches(&r));
        assert!("value=5".parse::<Filter>().unwrap().matches(&r));
        assert!(!"stationid=S2".parse::<Filter>().unwrap().matches(&r));
        assert!(matches!(
            "nope=1".parse::<Filter>(),
            Err(FilterError::UnknownField(_))
        ));
        assert!(matches!(
            "value=x".parse::<Filter>(),
            Err(FilterError::NotANumber { .. })
        ));
        assert!(matches!(
            "value".parse::<Filter>(),
            Err(FilterError::Syntax(_))
        ));
    }
}
