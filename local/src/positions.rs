//! Where each partition key was last seen (`[dynamodb.position]`), for `status` and the
//! dashboard: read from the item table, drawn as a plain SVG plot (no map tiles: the
//! local stack runs offline).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use streamlake_core::dataset::dynamodb;

use crate::error::StackError;

/// The most partition keys a snapshot shows.
pub const MAX_POSITIONS: usize = 500;

/// A partition key's latest position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The partition key's value.
    pub key: String,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// The sort key of the item it comes from (its time, for a table sorted by time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The newest position of each partition key of `table` (the table's real name), by
/// the greatest sort key; at most [`MAX_POSITIONS`], by key.
pub async fn latest(
    client: &Client,
    table: &str,
    position: &dynamodb::Position,
) -> Result<Vec<Position>, StackError> {
    let mut projection = vec!["#k", "#lat", "#lon"];
    let mut scan = client
        .scan()
        .table_name(table)
        .expression_attribute_names("#k", &position.key)
        .expression_attribute_names("#lat", &position.latitude)
        .expression_attribute_names("#lon", &position.longitude);
    if let Some(order) = &position.order {
        projection.push("#o");
        scan = scan.expression_attribute_names("#o", order);
    }
    let mut pages = scan
        .projection_expression(projection.join(", "))
        .into_paginator()
        .send();
    // key -> (sort key, position)
    let mut newest: BTreeMap<String, (Option<SortValue>, Position)> = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StackError::aws(format!("Scan {table}"), e))?;
        for item in page.items() {
            let (Some(key), Some(latitude), Some(longitude)) = (
                item.get(&position.key).and_then(text),
                item.get(&position.latitude).and_then(number),
                item.get(&position.longitude).and_then(number),
            ) else {
                continue;
            };
            let order = position
                .order
                .as_ref()
                .and_then(|o| item.get(o))
                .and_then(SortValue::of);
            if newest
                .get(&key)
                .is_some_and(|(seen, _)| seen.as_ref() >= order.as_ref())
            {
                continue;
            }
            let at = order.as_ref().map(SortValue::text);
            let found = Position {
                key: key.clone(),
                latitude,
                longitude,
                at,
            };
            newest.insert(key, (order, found));
        }
    }
    Ok(newest
        .into_values()
        .take(MAX_POSITIONS)
        .map(|(_, p)| p)
        .collect())
}

/// A sort key's value, ordered as DynamoDB orders it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortValue {
    Number(f64, String),
    Text(String),
}

impl SortValue {
    fn of(value: &AttributeValue) -> Option<Self> {
        match value {
            AttributeValue::N(n) => Some(Self::Number(n.parse().ok()?, n.clone())),
            AttributeValue::S(s) => Some(Self::Text(s.clone())),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Number(_, s) | Self::Text(s) => s.clone(),
        }
    }
}

fn text(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        _ => None,
    }
}

fn number(value: &AttributeValue) -> Option<f64> {
    value
        .as_n()
        .ok()?
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
}

/// Width and height of the plot, in SVG units.
const SIZE: (f64, f64) = (560.0, 320.0);
/// Room around the points for the labels and the axes' figures.
const MARGIN: f64 = 36.0;

/// The positions on a plain SVG plot: longitude across, latitude up, the box fitted to
/// the points (equirectangular, each degree of latitude as long as one of longitude at
/// the box's middle latitude), each point labelled with its key.
pub fn svg(positions: &[Position]) -> String {
    let (width, height) = SIZE;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        out,
        r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>"##
    );
    if positions.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no positions yet</text></svg>"##,
            width / 2.0,
            height / 2.0
        );
        return out;
    }
    let bounds = Bounds::of(positions);
    let _ = write!(
        out,
        r##"<text x="{MARGIN}" y="{}" fill="#888">{:.4}°, {:.4}°</text>"##,
        height - 8.0,
        bounds.south,
        bounds.west
    );
    let _ = write!(
        out,
        r##"<text x="{}" y="16" text-anchor="end" fill="#888">{:.4}°, {:.4}°</text>"##,
        width - MARGIN,
        bounds.north,
        bounds.east
    );
    for p in positions {
        let (x, y) = bounds.project(p);
        let key = escape(&p.key);
        let at = p.at.as_deref().map(escape).unwrap_or_default();
        let _ = write!(
            out,
            r##"<g><title>{key} {at} ({}, {})</title><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#2a6fdb"/><text x="{:.1}" y="{:.1}">{key}</text></g>"##,
            p.latitude,
            p.longitude,
            x + 6.0,
            y - 6.0
        );
    }
    out.push_str("</svg>");
    out
}

/// The plotted box, in degrees, and its scale.
struct Bounds {
    south: f64,
    north: f64,
    west: f64,
    east: f64,
    /// SVG units per degree of longitude.
    scale: f64,
    /// How much shorter a degree of longitude is than one of latitude.
    squeeze: f64,
}

impl Bounds {
    fn of(positions: &[Position]) -> Self {
        let fold = |f: fn(&Position) -> f64, pick: fn(f64, f64) -> f64, start: f64| {
            positions.iter().map(f).fold(start, pick)
        };
        let (mut south, mut north) = (
            fold(|p| p.latitude, f64::min, f64::INFINITY),
            fold(|p| p.latitude, f64::max, f64::NEG_INFINITY),
        );
        let (mut west, mut east) = (
            fold(|p| p.longitude, f64::min, f64::INFINITY),
            fold(|p| p.longitude, f64::max, f64::NEG_INFINITY),
        );
        // A single point, or points on a line, still get a box around them.
        let pad = |lo: &mut f64, hi: &mut f64| {
            let span = (*hi - *lo).max(1e-3);
            *lo -= span * 0.05;
            *hi += span * 0.05;
        };
        pad(&mut south, &mut north);
        pad(&mut west, &mut east);
        let squeeze = ((south + north) / 2.0).to_radians().cos().max(0.01);
        let (width, height) = (SIZE.0 - 2.0 * MARGIN, SIZE.1 - 2.0 * MARGIN);
        let scale = (width / (east - west)).min(height / ((north - south) / squeeze));
        Self {
            south,
            north,
            west,
            east,
            scale,
            squeeze,
        }
    }

    /// Where a position lands on the plot, the box centred.
    fn project(&self, p: &Position) -> (f64, f64) {
        let (width, height) = (SIZE.0 - 2.0 * MARGIN, SIZE.1 - 2.0 * MARGIN);
        let used = (
            (self.east - self.west) * self.scale,
            (self.north - self.south) / self.squeeze * self.scale,
        );
        let x = MARGIN + (width - used.0) / 2.0 + (p.longitude - self.west) * self.scale;
        let y = MARGIN
            + (height - used.1) / 2.0
            + (self.north - p.latitude) / self.squeeze * self.scale;
        (x, y)
    }
}

/// Text for SVG: `&`, `<`, `>` and `"` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str, latitude: f64, longitude: f64) -> Position {
        Position {
            key: key.into(),
            latitude,
            longitude,
            at: None,
        }
    }

    #[test]
    fn north_is_up_and_east_is_right() {
        let positions = [at("a", 42.0, -72.0), at("b", 42.5, -71.0)];
        let bounds = Bounds::of(&positions);
        let (a, b) = (bounds.project(&positions[0]), bounds.project(&positions[1]));
        assert!(b.0 > a.0 && b.1 < a.1, "{a:?} {b:?}");
        for (x, y) in [a, b] {
            assert!((MARGIN..=SIZE.0 - MARGIN).contains(&x), "{x}");
            assert!((MARGIN..=SIZE.1 - MARGIN).contains(&y), "{y}");
        }
    }

    #[test]
    fn one_point_is_drawn_inside_the_plot() {
        let positions = [at("only", 10.0, 20.0)];
        let (x, y) = Bounds::of(&positions).project(&positions[0]);
        assert!((x - SIZE.0 / 2.0).abs() < 1.0 && (y - SIZE.1 / 2.0).abs() < 1.0);
    }

    #[test]
    fn labels_are_escaped() {
        let svg = svg(&[at("<Shadow&fax>", 1.0, 2.0)]);
        assert!(svg.contains("&lt;Shadow&amp;fax&gt;") && !svg.contains("<Shadow"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
