"""How many DynamoDB requests per second the emulator serves, by request shape.

Run with the Python of the local stack's moto virtualenv against a fresh moto server:
    target/streamlake/moto-5.2.5/bin/moto_server -H 127.0.0.1 -p 45999 &
    target/streamlake/moto-5.2.5/bin/python tests/benches/moto_capacity.py http://127.0.0.1:45999
It explains the consumer benchmark: moto serves one request at a time, so concurrency
does not raise its throughput; only fewer requests do.
"""

import concurrent.futures
import sys
import time

import boto3

endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:45999"
client = boto3.client(
    "dynamodb",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="emulator",
    aws_secret_access_key="emulator",
)
for table in ["A", "B", "C"]:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "d", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}, {"AttributeName": "d", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def update(table, i, conditional=False):
    request = dict(
        TableName=table,
        Key={"k": {"S": f"s{i % 50}"}, "d": {"S": f"d{i // 50}"}},
        UpdateExpression="SET #a = :a, #s = :s",
        ExpressionAttributeNames={"#a": "PRCP", "#s": "PRCP_seq"},
        ExpressionAttributeValues={":a": {"N": str(i)}, ":s": {"S": f"{i:010d}"}},
    )
    if conditional:
        request["ConditionExpression"] = "attribute_not_exists(#s) OR #s < :s"
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    client.update_item(**request)


def rate(label, count, run):
    start = time.time()
    run()
    print(f"{label:<40} {count / (time.time() - start):>7.0f} items/s")


N = 400
rate("UpdateItem, sequential", N, lambda: [update("A", i) for i in range(N)])
rate("UpdateItem conditional, sequential", N, lambda: [update("A", i + N, True) for i in range(N)])
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    rate("UpdateItem conditional, 16 concurrent", N, lambda: list(pool.map(lambda i: update("B", i, True), range(N))))
rate(
    "BatchWriteItem, 25 per request",
    600,
    lambda: [
        client.batch_write_item(
            RequestItems={
                "C": [
                    {"PutRequest": {"Item": {"k": {"S": f"s{i % 25}"}, "d": {"S": f"e{i // 25}"}, "PRCP": {"N": "1"}}}}
                    for i in range(j * 25, j * 25 + 25)
                ]
            }
        )
        for j in range(24)
    ],
)
