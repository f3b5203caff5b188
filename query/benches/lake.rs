//! The lake at scale: 10 million records over 31 days, NDJSON and Parquet, of one example
//! dataset.
//!
//! `cargo bench -p query --bench lake` generates the lake of `STREAMLAKE_BENCH_DATASET`
//! (`weather`, the default, or `unicorns`: the records built as the tutorial's, read through
//! `examples/NAME/dataset.toml` as the transform reads them; about 2 GB, in
//! `STREAMLAKE_BENCH_DIR` or the system's temporary folder, never under `target/`),
//! measures the NDJSON -> Parquet encode throughput while writing the Parquet copy, and runs
//! the example's four queries on both formats, best of [`RUNS`], twice over: cold (a new
//! `query sql` process each run, as a user types it) and warm (one session for every run:
//! no process start, no new session).
//! When Python 3 is available, DuckDB runs the same queries in the same run, cold (a new
//! database each run) and warm, and pyarrow the same encode (installed, pinned, into a
//! virtualenv under the build directory). Results are printed as ratios.
//!
//! With `STREAMLAKE_BENCH_S3=1` and the environment `streamlake up --inject-latency s3=20`
//! prints (an emulator behind a proxy adding a 20 ms round trip), the Parquet lake is also
//! uploaded to the stack's bucket and queried over S3, each run cold, by `query` and by
//! DuckDB's httpfs (`compare_s3.py`). The lake is removed at the end unless
//! `STREAMLAKE_BENCH_KEEP=1`, with which the next run reuses it. `STREAMLAKE_BENCH_RECORDS=N`
//! makes a smaller lake, for a quick look (the figures are those of 10 million).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::StreamExt;
use query::sql::LakeSession;
use serde_json::json;
use streamlake_core::columnar::ndjson_to_parquet;
use streamlake_core::dataset::Dataset;
use streamlake_core::lake::{Lake, LakeLocation};

/// The allocator `query` runs with, for the warm runs made in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// At least this many records (whole source-days: 10,000,104 weather observations), unless
/// `STREAMLAKE_BENCH_RECORDS` says otherwise (a quick look at a small lake).
const RECORDS: usize = 10_000_000;
const DAYS: u32 = 31;
const OBJECTS_PER_DAY: usize = 8;
const DATATYPES: [&str; 4] = ["PRCP", "SNOW", "TMAX", "TMIN"];
/// Statuses of one unicorn a day (at random times of the day).
const STATUSES_PER_DAY: usize = 160;
/// Each query runs this many times, on both engines; the best time counts (sub-0.1 s
/// queries on a shared 2-core VM vary by 10-20 % from run to run).
const RUNS: usize = 10;
/// Each query over S3 runs this many times, each time in a new `query` process (and DuckDB in a
/// new database): cold reads, best time counts.
const S3_RUNS: usize = 5;
/// Key prefix of the Parquet lake uploaded for the S3 runs.
const S3_PREFIX: &str = "bench-lake/parquet/";

/// The example a run measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Example {
    /// NOAA daily observations: a few sources of four datatypes each, four groups.
    Weather,
    /// Tutorial 003's unicorn telemetry: longs and doubles, an event time to the
    /// millisecond, a group per unicorn.
    Unicorns,
}

impl Example {
    fn from_env() -> Self {
        match std::env::var("STREAMLAKE_BENCH_DATASET").as_deref() {
            Err(_) | Ok("weather") => Self::Weather,
            Ok("unicorns") => Self::Unicorns,
            Ok(other) => panic!("STREAMLAKE_BENCH_DATASET={other}: weather or unicorns"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Weather => "weather",
            Self::Unicorns => "unicorns",
        }
    }

    /// The example's dataset file, as `streamlake up --dataset` reads it.
    fn dataset_file(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(self.name())
            .join("dataset.toml")
    }

    /// Records each source (a station, a unicorn) sends a day.
    fn per_source(self) -> usize {
        match self {
            Self::Weather => DATATYPES.len(),
            Self::Unicorns => STATUSES_PER_DAY,
        }
    }

    /// Source `s`'s input records of `date`, with their arrival times.
    fn records(
        self,
        rng: &mut fastrand::Rng,
        date: NaiveDate,
        s: usize,
    ) -> Vec<(Vec<u8>, DateTime<Utc>)> {
        let midnight = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap());
        match self {
            Self::Weather => DATATYPES
                .iter()
                .map(|datatype| {
                    let record = json!({
                        "date": format!("{date}T00:00:00"),
                        "stationid": format!("GHCND:USBENCH{s:06}"),
                        "location": format!("BENCH STATION {s}, MD US"),
                        "datatype": datatype,
                        "value": f64::from(rng.i32(-300..600)) / 10.0,
                    });
                    let arrival = midnight + Duration::milliseconds(rng.i64(0..86_400_000));
                    (serde_json::to_vec(&record).unwrap(), arrival)
                })
                .collect(),
            Self::Unicorns => (0..STATUSES_PER_DAY)
                .map(|_| {
                    let at = midnight + Duration::milliseconds(rng.i64(0..86_400_000));
                    let record = json!({
                        "Name": format!("Unicorn{s:04}"),
                        "StatusTime": at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                        "Latitude": 42.0 + rng.f64(),
                        "Longitude": -72.0 + rng.f64(),
                        "Distance": rng.i64(0..200),
                        "MagicPoints": rng.i64(100..160),
                        "HealthPoints": rng.i64(100..160),
                    });
                    let arrival = at + Duration::milliseconds(rng.i64(0..2_000));
                    (serde_json::to_vec(&record).unwrap(), arrival)
                })
                .collect(),
        }
    }

    /// The four queries (the same text runs in DuckDB: `compare.py`, `compare_s3.py`): the
    /// whole lake grouped, one day named by its partition, one day named by the day column,
    /// and two days of event time.
    fn queries(self) -> [(&'static str, &'static str); 4] {
        match self {
            Self::Weather => [
                (
                    "group_by",
                    "SELECT datatype, count(*) AS n, avg(value) AS average FROM weather GROUP BY datatype ORDER BY datatype",
                ),
                (
                    "one_day",
                    "SELECT count(*) AS n, avg(value) AS average FROM weather \
                     WHERE year = 2021 AND month = 10 AND day = 15 AND datatype = 'TMAX'",
                ),
                (
                    "date",
                    "SELECT datatype, count(*) AS n, avg(value) AS average FROM weather \
                     WHERE \"date\" = '2021-10-15' GROUP BY datatype ORDER BY datatype",
                ),
                (
                    "observed",
                    "SELECT count(*) AS n, avg(value) AS average FROM weather \
                     WHERE observed_at >= '2021-10-15T00:00:00Z' AND observed_at < '2021-10-17T00:00:00Z'",
                ),
            ],
            Self::Unicorns => [
                (
                    "group_by",
                    "SELECT \"Name\", count(*) AS n, sum(\"Distance\") AS distance, \
                     min(\"HealthPoints\") AS lowest, max(\"MagicPoints\") AS highest \
                     FROM unicorns GROUP BY \"Name\" ORDER BY \"Name\"",
                ),
                (
                    "one_day",
                    "SELECT count(*) AS n, sum(\"Distance\") AS distance FROM unicorns \
                     WHERE year = 2021 AND month = 10 AND day = 15 AND \"Name\" = 'Unicorn0042'",
                ),
                (
                    "date",
                    "SELECT count(*) AS n, avg(\"Distance\") AS average FROM unicorns \
                     WHERE \"date\" = '2021-10-15'",
                ),
                (
                    "observed",
                    "SELECT count(*) AS n, avg(\"Distance\") AS average FROM unicorns \
                     WHERE \"StatusTime\" >= '2021-10-15T00:00:00Z' AND \"StatusTime\" < '2021-10-17T00:00:00Z'",
                ),
            ],
        }
    }
}

fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench has a path");
    // target/release/deps/lake-... -> target/
    exe.ancestors()
        .nth(3)
        .expect("inside the build directory")
        .to_owned()
}

/// Writes the NDJSON lake (once): each source sends its records every day, each record
/// read through the dataset as the transform reads it. Returns the number of records.
fn generate(root: &Path, example: Example, dataset: &Dataset) -> usize {
    let per_day = example.per_source();
    let wanted = std::env::var("STREAMLAKE_BENCH_RECORDS").map_or(RECORDS, |n| {
        n.parse().expect("STREAMLAKE_BENCH_RECORDS is a count")
    });
    let sources = wanted.div_ceil(DAYS as usize * per_day);
    let records = sources * DAYS as usize * per_day;
    // The marker holds the record count of a complete lake.
    let marker = root.join("ndjson/.complete");
    if std::fs::read_to_string(&marker).ok() == Some(records.to_string()) {
        return records;
    }
    let _ = std::fs::remove_dir_all(root.join("ndjson"));
    let mut rng = fastrand::Rng::with_seed(2021);
    let start = Instant::now();
    for d in 0..DAYS {
        let date = NaiveDate::from_ymd_opt(2021, 10, 1 + d).unwrap();
        let dir = root.join(format!("ndjson/year=2021/month=10/day={:02}", d + 1));
        std::fs::create_dir_all(&dir).unwrap();
        let mut objects = vec![Vec::new(); OBJECTS_PER_DAY];
        for s in 0..sources {
            for (data, arrival) in example.records(&mut rng, date, s) {
                let object = &mut objects[s % OBJECTS_PER_DAY];
                let partition = dataset.normalize_into(&data, arrival, object).unwrap();
                assert_eq!(partition.date(), date);
            }
        }
        for (i, body) in objects.iter().enumerate() {
            std::fs::write(
                dir.join(format!(
                    "streamlake-delivery-1-2021-10-{:02}-00-00-00-{i}",
                    d + 1
                )),
                body,
            )
            .unwrap();
        }
    }
    std::fs::write(marker, records.to_string()).unwrap();
    eprintln!(
        "generated {records} records in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    records
}

/// Writes the Parquet copy, timing only the encode; returns MB/s of NDJSON.
fn encode(root: &Path, dataset: &Dataset) -> f64 {
    let mut bytes = 0usize;
    let mut seconds = 0.0;
    for day in std::fs::read_dir(root.join("ndjson/year=2021/month=10")).unwrap() {
        let day = day.unwrap().path();
        let out = root
            .join("parquet/year=2021/month=10")
            .join(day.file_name().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        for object in std::fs::read_dir(&day).unwrap() {
            let path = object.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            let start = Instant::now();
            let lines: Vec<&[u8]> = body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let converted = ndjson_to_parquet(dataset, &lines).unwrap();
            seconds += start.elapsed().as_secs_f64();
            assert!(converted.rejected.is_empty());
            bytes += body.len();
            let name = format!("{}.parquet", path.file_name().unwrap().to_string_lossy());
            std::fs::write(out.join(name), converted.parquet.unwrap()).unwrap();
        }
    }
    bytes as f64 / 1e6 / seconds
}

/// Seconds of the fastest of `runs` calls of `f`.
fn fastest(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// [`fastest`] of `runs` runs of the future `f` makes, on `runtime`.
fn best_of<F: Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    runs: usize,
    f: impl Fn() -> F,
) -> f64 {
    fastest(runs, || runtime.block_on(f()))
}

/// Seconds of a cold run: a new `query sql` process over `lake` (its start, a new session,
/// the dataset file read, listing and footers read again, nothing cached), best of `runs`.
fn cold_process(example: Example, lake: &str, sql: &str, runs: usize) -> f64 {
    fastest(runs, || {
        let output = Command::new(env!("CARGO_BIN_EXE_query"))
            .arg("--dataset")
            .arg(example.dataset_file())
            .args(["--lake", lake, "sql", sql])
            .stdout(Stdio::null())
            .output()
            .expect("query runs");
        assert!(
            output.status.success(),
            "query sql {sql:?} over {lake}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    })
}

/// A virtualenv under the build directory with `packages` installed (pinned), or `None`
/// when Python cannot make one.
fn venv(name: &str, packages: &[&str]) -> Option<PathBuf> {
    let venv = build_dir().join("streamlake").join(name);
    if !venv.join(".installed").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .ok()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet"])
                .args(packages)
                .status()
                .ok()?
                .success();
        if !ok {
            eprintln!("could not install {}: no comparison", packages.join(" "));
            return None;
        }
        std::fs::write(venv.join(".installed"), b"").ok()?;
    }
    Some(venv)
}

/// Runs a comparison script of this folder with the venv's Python, the queries in
/// `STREAMLAKE_BENCH_QUERIES`, the table's name and columns (`[name, type]`, the dataset's
/// types) in `STREAMLAKE_BENCH_TABLE` and `STREAMLAKE_BENCH_COLUMNS`; its JSON answer, or
/// `None` when it fails.
fn run_script(
    example: Example,
    dataset: &Dataset,
    venv: &Path,
    script: &str,
    args: &[String],
) -> Option<serde_json::Value> {
    let queries: BTreeMap<&str, &str> = example.queries().into_iter().collect();
    let columns: Vec<[&str; 2]> = dataset
        .columns()
        .iter()
        .map(|c| [c.name.as_str(), c.ty.as_str()])
        .collect();
    let output = Command::new(venv.join("bin/python"))
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches")
                .join(script),
        )
        .args(args)
        .env(
            "STREAMLAKE_BENCH_QUERIES",
            serde_json::to_string(&queries).unwrap(),
        )
        .env("STREAMLAKE_BENCH_TABLE", dataset.name())
        .env(
            "STREAMLAKE_BENCH_COLUMNS",
            serde_json::to_string(&columns).unwrap(),
        )
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// DuckDB and pyarrow on the same lake, or `None` when Python is not usable.
fn compare(example: Example, dataset: &Dataset, root: &Path) -> Option<serde_json::Value> {
    let venv = venv("bench-venv-1", &["duckdb==1.5.6", "pyarrow==26.0.1"])?;
    run_script(
        example,
        dataset,
        &venv,
        "compare.py",
        &[root.display().to_string(), RUNS.to_string()],
    )
}

/// The Parquet lake read over S3, when `STREAMLAKE_BENCH_S3=1`: uploaded under
/// [`S3_PREFIX`] of `STREAMLAKE_BENCH_BUCKET` (default: the local stack's bucket) through
/// the endpoint and credentials of the environment (what `streamlake up
/// --inject-latency s3=20` prints), then each query run by `query` and by DuckDB's httpfs,
/// cold each time. Seconds per query, best of [`S3_RUNS`], and DuckDB's figures.
fn over_s3(
    example: Example,
    dataset: &Arc<Dataset>,
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    records: usize,
) -> Option<(BTreeMap<&'static str, f64>, Option<serde_json::Value>)> {
    if std::env::var_os("STREAMLAKE_BENCH_S3").is_none_or(|v| v != "1") {
        return None;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("STREAMLAKE_BENCH_S3=1 reads the lake through AWS_ENDPOINT_URL");
    let bucket = std::env::var("STREAMLAKE_BENCH_BUCKET")
        .unwrap_or_else(|_| streamlake_core::names::BUCKET.to_owned());
    let store = runtime.block_on(Lake::open(LakeLocation::S3 {
        bucket: bucket.clone(),
        prefix: String::new(),
    }));
    let mut objects = Vec::new();
    let parquet = root.join("parquet");
    let mut folders = vec![parquet.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let key = path.strip_prefix(&parquet).unwrap().display().to_string();
                objects.push((format!("{S3_PREFIX}{key}"), path));
            }
        }
    }
    let start = Instant::now();
    runtime.block_on(
        futures::stream::iter(&objects)
            .map(|(key, path)| {
                let store = &store;
                async move {
                    let body = std::fs::read(path).unwrap();
                    store.write(key, body).await.unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<()>(),
    );
    eprintln!(
        "uploaded {} objects to s3://{bucket}/{S3_PREFIX} in {:.0} s",
        objects.len(),
        start.elapsed().as_secs_f64()
    );
    let location = || LakeLocation::S3 {
        bucket: bucket.clone(),
        prefix: S3_PREFIX.to_owned(),
    };
    let session = || async {
        LakeSession::new(Lake::open(location()).await, dataset.clone())
            .await
            .unwrap()
    };
    let count = format!("SELECT count(*) FROM {}", dataset.name());
    let counted = runtime.block_on(async { session().await.run(&count).await.unwrap() });
    assert_eq!(
        counted[0].column(0).as_primitive::<Int64Type>().value(0) as usize,
        records,
        "every record of the S3 lake"
    );
    let lake = format!("s3://{bucket}/{S3_PREFIX}");
    let ours = example
        .queries()
        .into_iter()
        .map(|(name, sql)| (name, cold_process(example, &lake, sql, S3_RUNS)))
        .collect();
    let theirs = venv(
        "bench-venv-httpfs-1",
        &["duckdb==1.4.4", "duckdb-ext-httpfs==1.4.4.20260205"],
    )
    .and_then(|venv| {
        run_script(
            example,
            dataset,
            &venv,
            "compare_s3.py",
            &[endpoint, bucket, S3_PREFIX.to_owned(), S3_RUNS.to_string()],
        )
    });
    Some((ours, theirs))
}

/// Where the generated lake goes: outside the build directory, which it would double.
fn data_dir(example: Example) -> PathBuf {
    let folder = match example {
        Example::Weather => "streamlake-bench-lake".to_owned(),
        other => format!("streamlake-bench-lake-{}", other.name()),
    };
    std::env::var_os("STREAMLAKE_BENCH_DIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(folder)
}

fn main() {
    let example = Example::from_env();
    let dataset = Arc::new(Dataset::load(&example.dataset_file()).unwrap());
    let root = data_dir(example);
    let keep = std::env::var_os("STREAMLAKE_BENCH_KEEP").is_some_and(|v| v == "1");
    let records = generate(&root, example, &dataset);
    let _ = std::fs::remove_dir_all(root.join("parquet"));
    let encode_mb_s = encode(&root, &dataset);
    let size = |dir: &str| -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.map(|e| {
                        let e = e.unwrap();
                        if e.file_type().unwrap().is_dir() {
                            walk(&e.path())
                        } else {
                            e.metadata().unwrap().len()
                        }
                    })
                    .sum()
                })
                .unwrap_or(0)
        }
        walk(&root.join(dir))
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    // (cold, warm) seconds per (format, query).
    let mut ours: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
    for format in ["ndjson", "parquet"] {
        let lake = runtime.block_on(Lake::open(LakeLocation::Local(root.join(format))));
        let session = runtime
            .block_on(LakeSession::new(lake, dataset.clone()))
            .unwrap();
        let count = format!("SELECT count(*) FROM {}", dataset.name());
        let counted = runtime.block_on(session.run(&count)).unwrap();
        let counted = counted[0].column(0).as_primitive::<Int64Type>().value(0);
        assert_eq!(
            counted as usize, records,
            "every record of the {format} lake"
        );
        let lake = root.join(format).display().to_string();
        for (name, sql) in example.queries() {
            let warm = best_of(&runtime, RUNS, || async {
                let batches = session.run(sql).await.unwrap();
                assert!(!batches.is_empty());
            });
            let cold = cold_process(example, &lake, sql, RUNS);
            ours.insert((format, name), (cold, warm));
        }
    }
    let theirs = compare(example, &dataset, &root);
    let s3 = over_s3(example, &dataset, &runtime, &root, records);

    println!(
        "lake bench: {}, {records} records, {DAYS} days, {} objects per day; NDJSON {:.0} MB, Parquet {:.0} MB",
        example.name(),
        OBJECTS_PER_DAY,
        size("ndjson") as f64 / 1e6,
        size("parquet") as f64 / 1e6
    );
    match &theirs {
        Some(t) => {
            let pyarrow = t["pyarrow_encode_mb_s"].as_f64().unwrap();
            println!(
                "  encode NDJSON -> Parquet: streamlake {encode_mb_s:.0} MB/s, pyarrow {} {pyarrow:.0} MB/s: {:.2}x",
                t["pyarrow_version"].as_str().unwrap_or("?"),
                encode_mb_s / pyarrow
            );
            let version = t["duckdb_version"].as_str().unwrap_or("?");
            for ((format, name), (cold, warm)) in &ours {
                let duck_cold = t["duckdb_cold"][format][name].as_f64().unwrap();
                let duck_warm = t["duckdb"][format][name].as_f64().unwrap();
                println!(
                    "  {format:<8} {name:<9} cold: streamlake {cold:>7.3} s, DuckDB {version} {duck_cold:>7.3} s: {:.2}x; \
                     warm: {warm:>7.3} s, {duck_warm:>7.3} s: {:.2}x DuckDB's time",
                    cold / duck_cold,
                    warm / duck_warm
                );
            }
        }
        None => {
            println!(
                "  encode NDJSON -> Parquet: streamlake {encode_mb_s:.0} MB/s (no Python comparison)"
            );
            for ((format, name), (cold, warm)) in &ours {
                println!(
                    "  {format:<8} {name:<9} streamlake cold {cold:>7.3} s, warm {warm:>7.3} s"
                );
            }
        }
    }
    match &s3 {
        Some((ours, theirs)) => {
            println!(
                "  over S3 at {} (Parquet; each run a new process, best of {S3_RUNS}):",
                std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
            );
            for (name, seconds) in ours {
                match theirs {
                    Some(t) => {
                        let duck = t["duckdb"][name].as_f64().unwrap();
                        println!(
                            "  s3       {name:<9} streamlake {seconds:>7.3} s, DuckDB {} httpfs {duck:>7.3} s: {:.2}x DuckDB's time",
                            t["duckdb_version"].as_str().unwrap_or("?"),
                            seconds / duck
                        );
                    }
                    None => println!("  s3       {name:<9} streamlake {seconds:>7.3} s"),
                }
            }
        }
        None => println!(
            "  (over S3: run `streamlake up --inject-latency s3=20`, export what it prints, \
             and STREAMLAKE_BENCH_S3=1)"
        ),
    }
    if keep {
        eprintln!(
            "the lake is kept in {} (STREAMLAKE_BENCH_KEEP=1)",
            root.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
}
