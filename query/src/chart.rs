//! Charts of a query's result (`query sql ... --chart FILE.png`), drawn with Plotters.
//!
//! The first column is the x axis; every other numeric column is a series, or, with
//! `--series COLUMN`, each value of that column is a series of the first other numeric
//! column. A date, timestamp or numeric x gives a line chart; a text x gives grouped bars.
//! Labels use the first of the usual system sans-serif fonts found (DejaVu, Liberation,
//! ...); without one the chart is drawn without text.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use plotters::prelude::*;
use plotters::style::FontStyle;
use thiserror::Error;

/// Why a chart could not be drawn.
#[derive(Debug, Error)]
pub enum ChartError {
    /// The result does not have the shape of a chart.
    #[error("cannot chart this result: {0}")]
    Shape(String),
    /// Plotters failed (drawing or writing the file).
    #[error("drawing the chart: {0}")]
    Draw(String),
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Make one series per value of this column.
    pub series: Option<String>,
    /// Title above the chart.
    pub title: Option<String>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            width: 1000,
            height: 600,
            series: None,
            title: None,
        }
    }
}

/// What was drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSummary {
    /// Series names, in the legend's order.
    pub series: Vec<String>,
    /// Points drawn.
    pub points: usize,
}

/// The x axis: numbers to place points, and how to label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XKind {
    Number,
    /// Days since the epoch.
    Date,
    /// Milliseconds since the epoch.
    Timestamp,
    /// Categories: the index of each distinct text, in order of appearance.
    Text,
}

type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// Draws `batches` into a PNG at `path`.
pub fn draw_png(
    batches: &[RecordBatch],
    path: &Path,
    options: &ChartOptions,
) -> Result<ChartSummary, ChartError> {
    let (kind, categories, series) = series_of(batches, options.series.as_deref())?;
    let points = series.values().map(Vec::len).sum();
    if points == 0 {
        return Err(ChartError::Shape("the query returned no points".into()));
    }
    let draw = |e: &dyn std::fmt::Display| ChartError::Draw(e.to_string());
    let root = BitMapBackend::new(path, (options.width, options.height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let text = font_registered();
    let (mut x0, mut x1) = bounds(series.values().flatten().map(|p| p.0));
    let (y0, y1) = bounds(series.values().flatten().map(|p| p.1));
    if kind == XKind::Text {
        (x0, x1) = (-0.5, categories.len() as f64 - 0.5);
    }
    let y0 = y0.min(0.0);
    let pad = ((y1 - y0) * 0.05).max(f64::EPSILON);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if text {
        builder.x_label_area_size(40).y_label_area_size(60);
        if let Some(title) = &options.title {
            builder.caption(title, ("sans-serif", 22));
        }
    }
    let mut chart = builder
        .build_cartesian_2d(x0..x1, y0..y1 + pad)
        .map_err(|e| draw(&e))?;
    let label = move |x: &f64| match kind {
        XKind::Number => format!("{x}"),
        XKind::Date => (NaiveDate::from_epoch_days(x.round() as i32))
            .map_or_else(String::new, |d| d.to_string()),
        XKind::Timestamp => DateTime::from_timestamp_millis(*x as i64)
            .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string()),
        XKind::Text => categories
            .get(x.round() as usize)
            .filter(|_| (x - x.round()).abs() < 1e-9)
            .cloned()
            .unwrap_or_default(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&label)
        .light_line_style(WHITE.mix(0.0));
    if !text {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| draw(&e))?;
    let count = series.len().max(1) as f64;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let drawn = if kind == XKind::Text {
            let width = 0.8 / count;
            let offset = -0.4 + width * i as f64;
            chart.draw_series(points.iter().map(|&(x, y)| {
                Rectangle::new([(x + offset, 0.0), (x + offset + width, y)], color.filled())
            }))
        } else {
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
        };
        let drawn = drawn.map_err(|e| draw(&e))?;
        if text {
            drawn.label(name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
    }
    root.present().map_err(|e| draw(&e))?;
    Ok(ChartSummary {
        series: series.keys().cloned().collect(),
        points,
    })
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo == hi {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

/// The x kind, the categories of a text x, and the points of each series.
fn series_of(
    batches: &[RecordBatch],
    series_column: Option<&str>,
) -> Result<(XKind, Vec<String>, Series), ChartError> {
    let shape = |m: &str| ChartError::Shape(m.to_owned());
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .ok_or_else(|| shape("the query returned no rows"))?;
    if schema.fields().len() < 2 {
        return Err(shape(
            "a chart needs an x column and at least one value column",
        ));
    }
    let kind = match schema.field(0).data_type() {
        DataType::Date32 | DataType::Date64 => XKind::Date,
        DataType::Timestamp(..) => XKind::Timestamp,
        t if t.is_numeric() => XKind::Number,
        _ => XKind::Text,
    };
    let split = match series_column {
        Some(name) => Some(
            schema
                .index_of(name)
                .map_err(|_| ChartError::Shape(format!("no column {name:?} for --series")))?,
        ),
        None => None,
    };
    let values: Vec<usize> = (1..schema.fields().len())
        .filter(|&i| Some(i) != split && schema.field(i).data_type().is_numeric())
        .collect();
    let values = match split {
        Some(_) => values.into_iter().take(1).collect(),
        None => values,
    };
    if values.is_empty() {
        return Err(shape("no numeric column to draw"));
    }
    let mut categories: Vec<String> = Vec::new();
    let mut series = Series::new();
    for batch in batches {
        let x = batch.column(0);
        let xs: Vec<Option<f64>> = match kind {
            XKind::Text => (0..x.len())
                .map(|row| {
                    let text = array_value_to_string(x, row).unwrap_or_default();
                    let index = categories
                        .iter()
                        .position(|c| *c == text)
                        .unwrap_or_else(|| {
                            categories.push(text);
                            categories.len() - 1
                        });
                    Some(index as f64)
                })
                .collect(),
            XKind::Date => floats(&cast(x, &DataType::Int32).map_err(|e| shape(&e.to_string()))?)?,
            XKind::Timestamp => {
                let ms = cast(x, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|a| cast(&a, &DataType::Int64))
                    .map_err(|e| shape(&e.to_string()))?;
                ms.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(|v| v as f64))
                    .collect()
            }
            XKind::Number => floats(x)?,
        };
        let names: Vec<Option<String>> = match split {
            Some(column) => {
                let column = batch.column(column);
                (0..batch.num_rows())
                    .map(|row| {
                        (!column.is_null(row))
                            .then(|| array_value_to_string(column, row).unwrap_or_default())
                    })
                    .collect()
            }
            None => vec![None; batch.num_rows()],
        };
        for &v in &values {
            let ys = floats(batch.column(v))?;
            let field = schema.field(v).name();
            for ((x, y), name) in xs.iter().zip(ys).zip(&names) {
                if let (Some(x), Some(y)) = (x, y) {
                    let name = name.clone().unwrap_or_else(|| field.clone());
                    series.entry(name).or_default().push((*x, y));
                }
            }
        }
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok((kind, categories, series))
}

fn floats(array: &ArrayRef) -> Result<Vec<Option<f64>>, ChartError> {
    let floats = cast(array, &DataType::Float64).map_err(|e| ChartError::Shape(e.to_string()))?;
    Ok(floats.as_primitive::<Float64Type>().iter().collect())
}

/// Registers the first sans-serif font found on the system as Plotters' "sans-serif";
/// whether one was.
fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        const FONTS: [&str; 4] = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ];
        FONTS.iter().any(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            // Plotters keeps fonts for the whole process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        })
    })
}
