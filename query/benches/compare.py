"""The same work as `cargo bench -p query --bench lake`, done by DuckDB (queries) and
pyarrow (NDJSON -> Parquet encode, one thread like the Rust encoder), on the same lake,
for a same-run comparison.

Each query runs twice over: warm (one database, the view made once, as one `query` session
runs it) and cold (a new database each run, as a new `query` process starts with nothing
cached). The table's name and columns come from the bench (`STREAMLAKE_BENCH_TABLE`,
`STREAMLAKE_BENCH_COLUMNS`: the dataset file's). Python's own start is not timed; a `query` process's start is.

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
TABLE = os.environ.get("STREAMLAKE_BENCH_TABLE", "weather")
# [name, type] per column, the dataset's types.
COLUMNS = json.loads(os.environ["STREAMLAKE_BENCH_COLUMNS"])
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "json": "VARCHAR",
    "long": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}
DUCKDB_COLUMNS = "{" + ", ".join(f"'{name}': '{DUCKDB_TYPES[ty]}'" for name, ty in COLUMNS) + "}"
SOURCES = {
    "ndjson": f"read_json('{root}/ndjson/*/*/*/*', format = 'newline_delimited', columns = {DUCKDB_COLUMNS}, "
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
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM {source}")
    con.execute(sql).fetchall()
    con.close()


result = {"duckdb": {}, "duckdb_cold": {}, "duckdb_version": duckdb.__version__, "pyarrow_version": pa.__version__}
con = duckdb.connect()
for fmt, source in SOURCES.items():
    con.execute(f"CREATE OR REPLACE VIEW {TABLE} AS SELECT * FROM {source}")
    result["duckdb"][fmt] = {name: best_of(runs, lambda q=q: con.execute(q).fetchall()) for name, q in QUERIES.items()}
    result["duckdb_cold"][fmt] = {
        name: best_of(runs, lambda s=source, q=q: cold(s, q)) for name, q in QUERIES.items()
    }

PYARROW_TYPES = {
    "string": pa.string(),
    "json": pa.string(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="+00:00"),
    # pyarrow's JSON reader cannot read a date from a string: read it as text and cast.
    "date": pa.string(),
}
schema = pa.schema([(name, PYARROW_TYPES[ty]) for name, ty in COLUMNS])
DATES = [i for i, (_, ty) in enumerate(COLUMNS) if ty == "date"]
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
        for i in DATES:
            table = table.set_column(i, COLUMNS[i][0], table.column(i).cast(pa.date32()))
        pq.write_table(table, os.path.join(out, f"{i}.parquet"), compression="snappy")
    elapsed = time.perf_counter() - start
result["pyarrow_encode_mb_s"] = total / 1e6 / elapsed
print(json.dumps(result))
