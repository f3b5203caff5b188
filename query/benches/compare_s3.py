"""The S3 part of `cargo bench -p query --bench lake`, done by DuckDB with its httpfs
extension, on the same Parquet lake in the same bucket, through the same endpoint.

Each run opens a new DuckDB database (its external file cache and metadata start empty),
as each run of the bench opens a new `query` session: both read S3 cold.

Usage: compare_s3.py ENDPOINT BUCKET PREFIX RUNS   (prints one JSON object: seconds per
query, best of RUNS). Credentials and region come from the standard AWS variables.
"""

import glob
import json
import os
import sys
import time
from urllib.parse import urlparse

import duckdb
import duckdb_ext

endpoint, bucket, prefix, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
QUERIES = json.loads(os.environ["STREAMLAKE_BENCH_QUERIES"])
TABLE = os.environ.get("STREAMLAKE_BENCH_TABLE", "weather")
url = urlparse(endpoint)
extension = glob.glob(
    os.path.join(list(duckdb_ext.__path__)[0], "extensions", "*", "*", "httpfs.duckdb_extension")
)[0]
SOURCE = (
    f"read_parquet('s3://{bucket}/{prefix}*/*/*/*.parquet', hive_partitioning = true, "
    "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER})"
)


def connect():
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    settings = {
        "KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "SECRET": os.environ["AWS_SECRET_ACCESS_KEY"],
        "REGION": region,
        "ENDPOINT": url.netloc,
    }
    quoted = ", ".join(f"{k} '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items())
    ssl = "true" if url.scheme == "https" else "false"
    con.execute(f"CREATE SECRET lake (TYPE s3, {quoted}, URL_STYLE 'path', USE_SSL {ssl})")
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM {SOURCE}")
    return con


def best_of(sql):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        connect().execute(sql).fetchall()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


print(
    json.dumps(
        {
            "duckdb_version": duckdb.__version__,
            "duckdb": {name: best_of(sql) for name, sql in QUERIES.items()},
        }
    )
)
