"""Encryption where the data rests and travels: every object an S3 lake (and a DVC remote configured as
docs/access.md says) writes carries server-side encryption, on a real moto server on loopback; plain
http:// endpoints are refused unless allowed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sluice.config import parse_params
from sluice.errors import ConfigError
from sluice.lake import Lake
from sluice.storage import storage_options
from tests.sluice.test_catalog import raw_rows

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def moto():
    """A real S3-compatible server (moto) on 127.0.0.1; yields (endpoint, boto3 client)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        yield endpoint, client
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_params(endpoint: str, bucket: str, **lake):
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    return parse_params({"lake": {"root": f"s3://{bucket}/lake", "storage_options": options, "allow_http": True, **lake}})


def objects(client, bucket: str) -> dict[str, dict]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.head_object(Bucket=bucket, Key=k) for k in keys}


def write_every_way(lake: Lake) -> None:
    lake.merge_insert("raw_images", raw_rows(range(4), source="a"))
    lake.append("raw_images", raw_rows(range(4, 6), source="b"))
    lake.upsert("raw_images", raw_rows(range(5, 8), source="c"))
    lake.overwrite("raw_images", raw_rows(range(8, 9), source="d"), predicate="source = 'd'")
    lake.table("raw_images").create_checkpoint()
    lake.table("raw_images").optimize.compact()


@pytest.mark.parametrize("sse, key", [({}, None), ({"sse": "aws:kms", "sse_kms_key_id": "sluice-key"}, "sluice-key")])
def test_every_object_the_lake_writes_carries_sse(moto, sse, key):
    endpoint, client = moto
    bucket = f"lake-{'kms' if key else 's3'}"
    client.create_bucket(Bucket=bucket)
    lake = Lake.from_params(s3_params(endpoint, bucket, **sse))
    write_every_way(lake)
    assert lake.count("raw_images") == 10  # keys hold the source: upserting 5 from c adds a row
    written = objects(client, bucket)
    assert any(k.endswith(".parquet") for k in written) and any("checkpoint" in k for k in written)
    for name, head in written.items():
        assert head.get("ServerSideEncryption") == ("aws:kms" if key else "AES256"), name
        assert head.get("SSEKMSKeyId") == key, name


def test_sse_none_and_the_kms_key_from_the_environment(moto, monkeypatch):
    endpoint, client = moto
    client.create_bucket(Bucket="lake-plain")
    lake = Lake.from_params(s3_params(endpoint, "lake-plain", sse="none"))
    lake.merge_insert("raw_images", raw_rows(range(2)))
    assert all("ServerSideEncryption" not in h for h in objects(client, "lake-plain").values())
    monkeypatch.setenv("SLUICE_SSE_KMS_KEY_ID", "from-env")
    options = storage_options(s3_params(endpoint, "x", sse="aws:kms").lake)
    assert options["aws_server_side_encryption"] == "aws:kms" and options["aws_sse_kms_key_id"] == "from-env"
    own = storage_options(parse_params({"lake": {"root": "s3://b/l", "storage_options": {
        "AWS_SERVER_SIDE_ENCRYPTION": "aws:kms:dsse"}}}).lake)
    assert own == {"AWS_SERVER_SIDE_ENCRYPTION": "aws:kms:dsse"}  # the storage options' own choice wins
    assert storage_options(parse_params({"lake": {"root": "lake"}}).lake) == {}  # local: nothing to add


def test_plain_http_endpoints_are_refused_unless_allowed(monkeypatch):
    options = {"AWS_ENDPOINT_URL": "http://minio.internal:9000"}
    with pytest.raises(ConfigError, match=r"^lake storage endpoint http://minio.internal:9000 is plain http:// .*"
                                          r"lake.allow_http: true"):
        parse_params({"lake": {"root": "s3://b/lake", "storage_options": options}})
    monkeypatch.setenv("SLUICE_STORAGE_OPTIONS", '{"aws_endpoint": "http://10.0.0.2"}')
    with pytest.raises(ConfigError, match="plain http://"):
        parse_params({"lake": {"root": "s3://b/lake"}})
    monkeypatch.delenv("SLUICE_STORAGE_OPTIONS")
    assert parse_params({"lake": {"root": "s3://b/lake", "storage_options": options, "allow_http": True}})
    assert parse_params({"lake": {"root": "s3://b/lake", "storage_options": {**options, "AWS_ALLOW_HTTP": "true"}}})
    assert parse_params({"lake": {"root": "s3://b/lake", "storage_options": {"AWS_ENDPOINT_URL": "https://s3.x"}}})
    assert parse_params({"lake": {"root": "lake", "storage_options": options}})  # a local lake reaches no endpoint


def test_cli_refuses_http_in_one_line(run_cli):
    out = run_cli("tables", params={"lake": {"root": "s3://b/lake", "storage_options": {"AWS_ENDPOINT_URL": "http://h"}}})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "plain http://" in out.stderr


@pytest.mark.slow
def test_a_dvc_remote_with_sse_writes_encrypted_objects(moto, tmp_path):
    """The recipe of docs/access.md: `dvc remote modify NAME sse AES256` (DVC's own S3 option)."""
    endpoint, client = moto
    client.create_bucket(Bucket="dvc-remote")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    dvc = str(BIN / "dvc")

    def run(*cmd):
        result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    run("git", "init", "-q")
    run(dvc, "init", "-q")
    (repo / "data").mkdir()
    for i in range(3):
        (repo / "data" / f"{i}.bin").write_bytes(os.urandom(64))
    run(dvc, "add", "-q", "data")
    run(dvc, "remote", "add", "-d", "s3", "s3://dvc-remote/cache")
    run(dvc, "remote", "modify", "s3", "endpointurl", endpoint)
    run(dvc, "remote", "modify", "s3", "sse", "AES256")
    run(dvc, "push", "-q")
    pushed = objects(client, "dvc-remote")
    assert len(pushed) == 4  # three files and the directory listing
    assert all(h.get("ServerSideEncryption") == "AES256" for h in pushed.values()), pushed
