//! The lake's NDJSON decoder over any bytes: never a panic; the same answer from a reader
//! that hands the bytes out a few at a time; when it reads the input, one row per
//! non-blank line; and when arrow-json reads it too, the same numbers, times and dates
//! (strings are left to the property tests: arrow-json 59.3 decodes some surrogate pairs
//! wrongly).

#![no_main]

use std::io::Read;
use std::sync::Arc;

use arrow_schema::DataType;
use libfuzzer_sys::fuzz_target;
use streamlake_core::columnar::arrow_schema;
use streamlake_core::dataset::Dataset;
use streamlake_core::ndjson::NdjsonDecoder;

fuzz_target!(|body: &[u8]| {
    let schema = arrow_schema(&Dataset::weather());
    let ours = NdjsonDecoder::new(schema.clone(), 5)
        .expect("the lake's schema")
        .decode(body);
    let projection = Arc::new(schema.project(&[4, 0]).expect("columns"));
    let projected = NdjsonDecoder::new(projection, 3)
        .expect("a projection")
        .decode(body);
    let trickled = NdjsonDecoder::new(schema.clone(), 5)
        .expect("the lake's schema")
        .decode_reader(Trickle(body));
    match (&ours, trickled) {
        (Ok(whole), Ok(read)) => assert_eq!(whole, &read, "read a few bytes at a time"),
        (whole, read) => assert_eq!(whole.is_ok(), read.is_ok(), "read a few bytes at a time"),
    }
    let Ok(ours) = ours else { return };
    assert!(
        projected.is_ok(),
        "the full schema reads it, so must a projection"
    );
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(ours.iter().map(|b| b.num_rows()).sum::<usize>(), lines);
    let theirs = arrow_json::ReaderBuilder::new(schema.clone())
        .build(body)
        .and_then(|reader| reader.collect::<Result<Vec<_>, _>>());
    let Ok(theirs) = theirs else { return };
    let concat = |b: &[_]| arrow_select::concat::concat_batches(&schema, b).expect("one schema");
    let (ours, theirs) = (concat(&ours), concat(&theirs));
    for (i, field) in schema.fields().iter().enumerate() {
        if field.data_type() != &DataType::Utf8 {
            assert_eq!(ours.column(i), theirs.column(i), "column {}", field.name());
        }
    }
});

/// Seven bytes per read.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
