"""Deploys the template to moto with `aws cloudformation create-stack`, for the resource
types moto supports, and checks that those resources exist afterwards.

Usage: smoke_deploy.py TEMPLATE MOTO_SERVER_EXECUTABLE

Resources of other types (Firehose, Glue, Athena, alarms, ...) are left out, and so are
the resources that refer to them; the rest is deployed as written.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from cfnlint.decode import cfn_yaml

SUPPORTED = {
    "AWS::Kinesis::Stream",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::SQS::Queue",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Logs::LogGroup",
}


def references(node):
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, Fn::Sub, DependsOn)."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!][^}]*)\}", text))
            elif key == "DependsOn":
                found.update(value if isinstance(value, list) else [value])
            found.update(references(value))
    elif isinstance(node, list):
        for item in node:
            found.update(references(item))
    return found


def supported_part(template):
    resources = template["Resources"]
    kept = {k for k, v in resources.items() if v["Type"] in SUPPORTED}
    changed = True
    while changed:
        changed = False
        for name in sorted(kept):
            missing = (references(resources[name]) & set(resources)) - kept
            if missing:
                kept.discard(name)
                changed = True
                print(f"  leaving out {name}: refers to {', '.join(sorted(missing))}")
    left_out = sorted(set(resources) - kept)
    print(f"  deploying {len(kept)} resources; left out {len(left_out)}: {', '.join(left_out)}")
    out = dict(template)
    out["Resources"] = {k: resources[k] for k in kept}
    out["Outputs"] = {
        k: v for k, v in template.get("Outputs", {}).items() if (references(v) & set(resources)) <= kept
    }
    return out, kept


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    template_path, moto_server = sys.argv[1], sys.argv[2]
    template, kept = supported_part(cfn_yaml.load(template_path))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/")
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="emulator", AWS_SECRET_ACCESS_KEY="emulator", AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
        session = boto3.Session(aws_access_key_id="emulator", aws_secret_access_key="emulator", region_name="us-east-1")
        client = lambda service: session.client(service, endpoint_url=endpoint)
        # The Lambda zips the template points at (moto never runs them).
        client("s3").create_bucket(Bucket="smoke-artifacts")
        for key in ["transform.zip", "consumer.zip"]:
            client("s3").put_object(Bucket="smoke-artifacts", Key=key, Body=b"PK\x05\x06" + b"\x00" * 18)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(template, f)
        parameters = [
            "ParameterKey=ArtifactBucket,ParameterValue=smoke-artifacts",
            "ParameterKey=TransformCodeKey,ParameterValue=transform.zip",
            "ParameterKey=ConsumerCodeKey,ParameterValue=consumer.zip",
        ]
        aws = [sys.executable, "-m", "awscli"]
        subprocess.run(
            aws + ["cloudformation", "create-stack", "--stack-name", "smoke", "--template-body", f"file://{f.name}",
                   "--capabilities", "CAPABILITY_NAMED_IAM", "--parameters", *parameters],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )
        subprocess.run(aws + ["cloudformation", "wait", "stack-create-complete", "--stack-name", "smoke"], env=env, check=True)
        status = client("cloudformation").describe_stacks(StackName="smoke")["Stacks"][0]["StackStatus"]
        assert status == "CREATE_COMPLETE", status

        # Every deployed resource exists, under the names the local stack uses.
        checks = {
            "Stream": lambda: client("kinesis").describe_stream_summary(StreamName="streamlake-records"),
            "PrecipitationTable": lambda: client("dynamodb").describe_table(TableName="Precipitation"),
            "TemperatureTable": lambda: client("dynamodb").describe_table(TableName="Temperature"),
            "DailySummaryTable": lambda: client("dynamodb").describe_table(TableName="DailySummary"),
            "LakeBucket": lambda: client("s3").head_bucket(Bucket="streamlake-lake-123456789012-us-east-1"),
            "ConsumerFailureQueue": lambda: client("sqs").get_queue_url(QueueName="streamlake-consumer-failures"),
            "TransformRole": lambda: client("iam").get_role(RoleName="streamlake-transform-us-east-1"),
            "ConsumerRole": lambda: client("iam").get_role(RoleName="streamlake-consumer-us-east-1"),
            "TransformFunction": lambda: client("lambda").get_function(FunctionName="streamlake-transform"),
            "ConsumerFunction": lambda: client("lambda").get_function(FunctionName="streamlake-consumer"),
            "ConsumerEventSourceMapping": lambda: check_mapping(client("lambda")),
            "ConsumerLogGroup": lambda: check_log_group(client("logs"), "/aws/lambda/streamlake-consumer"),
            "TransformLogGroup": lambda: check_log_group(client("logs"), "/aws/lambda/streamlake-transform"),
            "DeliveryLogGroup": lambda: check_log_group(client("logs"), "/aws/kinesisfirehose/streamlake-delivery"),
        }
        missing = [name for name in kept if name not in checks]
        assert not missing, f"no check for deployed resources {missing}"
        for name in sorted(kept):
            checks[name]()
            print(f"  ok: {name}")
        print(f"smoke deploy to moto: {len(kept)} resources created and found")

        # teardown.sh --empty-bucket deletes the stack, then every version of the lake.
        lake = "streamlake-lake-123456789012-us-east-1"
        s3 = client("s3")
        for body in [b"first", b"second"]:
            s3.put_object(Bucket=lake, Key="data/year=2021/month=10/day=01/object", Body=body)
        teardown = os.path.join(os.path.dirname(os.path.abspath(template_path)), "teardown.sh")
        subprocess.run(["bash", teardown, "--empty-bucket"], env=dict(env, STACK_NAME="smoke"), check=True)
        remaining = [s["StackStatus"] for s in client("cloudformation").list_stacks()["StackSummaries"] if s["StackName"] == "smoke"]
        assert all(status == "DELETE_COMPLETE" for status in remaining), remaining
        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert lake not in buckets, buckets
        print("teardown.sh: stack deleted, lake bucket emptied and deleted")
    finally:
        server.terminate()


def check_mapping(client):
    mappings = client.list_event_source_mappings(FunctionName="streamlake-consumer")["EventSourceMappings"]
    assert len(mappings) == 1, mappings
    m = mappings[0]
    assert m["EventSourceArn"].endswith(":stream/streamlake-records"), m
    assert m.get("BisectBatchOnFunctionError") is True, m


def check_log_group(client, name):
    groups = client.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert any(g["logGroupName"] == name for g in groups), groups


if __name__ == "__main__":
    main()
