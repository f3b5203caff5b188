"""The baseline of `cargo bench -p streamlake-e2e --bench producer`: what users write by
hand with boto3 (seed 004's telemetry, the Kinesis tutorials), batched as well as boto3
allows: `put_records` in requests of 500, or Firehose `put_record_batch` in requests of
500 (a newline appended where a record lacks one), re-sending only the failed entries.

Usage: python producer_boto3.py ENDPOINT kinesis|firehose NAME RECORDS.ndjson
Prints one JSON line: {"records": N, "seconds": S, "requests": R}. boto3's import and
client set-up are not timed; reading the file is not either.
"""

import json
import sys
import time

import boto3

endpoint, mode, name, path = sys.argv[1:5]
with open(path, "rb") as f:
    lines = [line.rstrip(b"\n") for line in f if line.strip()]

session = boto3.session.Session(
    aws_access_key_id="streamlake-local-emulator",
    aws_secret_access_key="streamlake-local-emulator",
    region_name="us-east-1",
)
client = session.client("kinesis" if mode == "kinesis" else "firehose", endpoint_url=endpoint)


def key(line, i):
    try:
        return json.loads(line).get("stationid") or f"line-{i}"
    except ValueError:
        return f"line-{i}"


start = time.perf_counter()
requests = 0
for first in range(0, len(lines), 500):
    chunk = lines[first : first + 500]
    if mode == "kinesis":
        pending = [
            {"Data": line, "PartitionKey": key(line, first + i)} for i, line in enumerate(chunk)
        ]
    else:
        pending = [{"Data": line if line.endswith(b"\n") else line + b"\n"} for line in chunk]
    while pending:
        requests += 1
        if mode == "kinesis":
            answer = client.put_records(StreamName=name, Records=pending)
            results = answer["Records"]
        else:
            answer = client.put_record_batch(DeliveryStreamName=name, Records=pending)
            results = answer["RequestResponses"]
        pending = [entry for entry, result in zip(pending, results) if "ErrorCode" in result]
        if pending:
            time.sleep(0.1)
seconds = time.perf_counter() - start
print(json.dumps({"records": len(lines), "seconds": seconds, "requests": requests}))
