//! Which DynamoDB table each datatype goes to, and the tables' key attributes.

use std::str::FromStr;

use thiserror::Error;

/// Partition key attribute of every table: the station.
pub const PARTITION_KEY: &str = "stationid";
/// Sort key attribute of every table: the UTC day, `YYYY-MM-DD`.
pub const SORT_KEY: &str = "date";
/// Attribute holding the station's name.
pub const STATION_NAME_ATTRIBUTE: &str = "StationName";
/// The attribute that holds the (sortable) sequence number of the record that set
/// `attribute`; the consumer's conditions compare it so that older values never replace
/// newer ones.
pub fn sequence_attribute(attribute: &str) -> String {
    format!("{attribute}_seq")
}

/// Table of precipitation and snowfall rows.
pub const PRECIPITATION_TABLE: &str = "Precipitation";
/// Table of temperature rows.
pub const TEMPERATURE_TABLE: &str = "Temperature";

/// Datatype -> table routing. A datatype with no route is skipped by the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    routes: Vec<(String, String)>,
}

impl Default for Routing {
    /// The NOAA routing: `PRCP`/`SNOW` into `Precipitation`, `TMAX`/`TMIN` into `Temperature`.
    fn default() -> Self {
        Self::new([
            ("PRCP", PRECIPITATION_TABLE),
            ("SNOW", PRECIPITATION_TABLE),
            ("TMAX", TEMPERATURE_TABLE),
            ("TMIN", TEMPERATURE_TABLE),
        ])
    }
}

impl Routing {
    /// Routing from (datatype, table) pairs; datatypes are matched in upper case.
    pub fn new<D: AsRef<str>, T: Into<String>>(routes: impl IntoIterator<Item = (D, T)>) -> Self {
        Self {
            routes: routes
                .into_iter()
                .map(|(d, t)| (d.as_ref().to_ascii_uppercase(), t.into()))
                .collect(),
        }
    }

    /// The table a datatype is written to, if any.
    pub fn table_for(&self, datatype: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(datatype))
            .map(|(_, t)| t.as_str())
    }

    /// Every distinct table, in first-route order.
    pub fn tables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, t) in &self.routes {
            if !out.contains(&t.as_str()) {
                out.push(t);
            }
        }
        out
    }
}

/// Writes the routing as [`FromStr`] reads it: `PRCP=Precipitation,SNOW=Precipitation`.
impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (datatype, table)) in self.routes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{datatype}={table}")?;
        }
        Ok(())
    }
}

/// A routing specification that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid route {0:?}: expected DATATYPE=Table")]
pub struct RoutingParseError(String);

/// Reads `PRCP=Precipitation,SNOW=Precipitation,TMAX=Temperature`.
impl FromStr for Routing {
    type Err = RoutingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let routes = s
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| match r.split_once('=') {
                Some((d, t)) if !d.trim().is_empty() && !t.trim().is_empty() => {
                    Ok((d.trim().to_owned(), t.trim().to_owned()))
                }
                _ => Err(RoutingParseError(r.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(routes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_noaa_routing() {
        let r = Routing::default();
        assert_eq!(r.table_for("PRCP"), Some("Precipitation"));
        assert_eq!(r.table_for("snow"), Some("Precipitation"));
        assert_eq!(r.table_for("TMIN"), Some("Temperature"));
        assert_eq!(r.table_for("AWND"), None);
        assert_eq!(r.tables(), ["Precipitation", "Temperature"]);
    }

    #[test]
    fn parses_a_specification() {
        let r: Routing = "prcp=Rain, TAVG=Temperature".parse().unwrap();
        assert_eq!(r.table_for("PRCP"), Some("Rain"));
        assert_eq!(r.table_for("TAVG"), Some("Temperature"));
        assert!("PRCP".parse::<Routing>().is_err());
        assert_eq!(
            Routing::default().to_string().parse::<Routing>().unwrap(),
            Routing::default()
        );
    }
}
