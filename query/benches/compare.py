"""The same work as `cargo bench -p query --bench lake`, done by DuckDB (queries) and
pyarrow (NDJSON -> Parquet encode, one thread like the Rust encoder), on the same lake,
for a same-run comparison.

Each query runs twice over: warm (one database, the view made once, as one `query` session
runs it) and cold (a new database each run, as a new `query` process starts with nothing
cached). Python's own start is not timed; a `query` process's start is.

Usage: compare.py LAKE_ROOT RUNS   (prints one JSON object: seconds per query, best of RUNS,
warm under "duckdb", cold under "duckdb_cold", and pyarrow's encode throughput in MB/s of
NDJSON)
"""

import glob
import json
import os
import sys
import tempfile
import time

import duckdb
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

root = sys.argv[1]
runs = int(sys.argv[2])
QUERIES = json.loads(os.environ["STREAMLAKE_BENCH_QUERIES"])
COLUMNS = (
    "{'stationid': 'VARCHAR', 'station_name': 'VARCHAR', 'datatype': 'VARCHAR', 'value': 'DOUBLE', "
    "'observed_at': 'TIMESTAMPTZ', 'date': 'DATE', 'ingested_at': 'TIMESTAMPTZ'}"
)
SOURCES = {
    "ndjson": f"read_json('{root}/ndjson/*/*/*/*', format = 'newline_delimited', columns = {COLUMNS}, "
    "hive_partitioning = true, hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER})",
    "parquet": f"read_parquet('{root}/parquet/*/*/*/*.parquet', hive_partitioning = true, "
    "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER})",
}


def best_of(runs, fn):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def cold(source, sql):
    """A new database each time: nothing cached from the run before."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW weather AS SELECT * FROM {source}")
    con.execute(sql).fetchall()
    con.close()


result = {"duckdb": {}, "duckdb_cold": {}, "duckdb_version": duckdb.__version__, "pyarrow_version": pa.__version__}
con = duckdb.connect()
for fmt, source in SOURCES.items():
    con.execute(f"CREATE OR REPLACE VIEW weather AS SELECT * FROM {source}")
    result["duckdb"][fmt] = {name: best_of(runs, lambda q=q: con.execute(q).fetchall()) for name, q in QUERIES.items()}
    result["duckdb_cold"][fmt] = {
        name: best_of(runs, lambda s=source, q=q: cold(s, q)) for name, q in QUERIES.items()
    }

schema = pa.schema(
    [
        ("stationid", pa.string()),
        ("station_name", pa.string()),
        ("datatype", pa.string()),
        ("value", pa.float64()),
        ("observed_at", pa.timestamp("us", tz="+00:00")),
        # pyarrow's JSON reader cannot read a date from a string: read it as text and cast.
        ("date", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="+00:00")),
    ]
)
DATE = schema.get_field_index("date")
files = sorted(glob.glob(f"{root}/ndjson/*/*/*/*"))
total = sum(os.path.getsize(f) for f in files)
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    for i, f in enumerate(files):
        # One thread, as the Rust encoder uses: throughput per core.
        table = pj.read_json(
            f,
            read_options=pj.ReadOptions(use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
        table = table.set_column(DATE, "date", table.column(DATE).cast(pa.date32()))
        pq.write_table(table, os.path.join(out, f"{i}.parquet"), compression="snappy")
    elapsed = time.perf_counter() - start
result["pyarrow_encode_mb_s"] = total / 1e6 / elapsed
print(json.dumps(result))
