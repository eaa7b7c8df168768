"""Where the lake's bytes rest and travel: the storage options every Delta read and write uses.

On S3 (``s3://``, ``s3a://``) every object the lake writes (data files, log entries, checkpoints)
carries server-side encryption: ``lake.sse`` is object_store's ``aws_server_side_encryption``
(``AES256`` = SSE-S3, ``aws:kms`` = SSE-KMS with ``lake.sse_kms_key_id`` or ``$SLUICE_SSE_KMS_KEY_ID``
as ``aws_sse_kms_key_id``), unless the storage options name their own. An endpoint reached over plain
``http://`` (data and credentials in clear) is refused unless ``lake.allow_http`` (or the
``aws_allow_http`` storage option) says so. Other object stores encrypt at rest themselves (GCS,
Azure); a local lake is protected by the disk's encryption, which Sluice cannot check (docs/access.md).
"""

from __future__ import annotations

import os

from sluice.errors import ConfigError

KMS_ENV = "SLUICE_SSE_KMS_KEY_ID"
SSE_KEYS = ("aws_server_side_encryption", "aws_sse_kms_key_id", "aws_sse_customer_key_base64")
ENDPOINT_KEYS = ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint")
ALLOW_HTTP_KEYS = ("aws_allow_http", "allow_http")


def is_s3(root: str) -> bool:
    return root.startswith(("s3://", "s3a://"))


def _lower(options: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in options.items()}


def storage_options(lake) -> dict[str, str]:
    """The deltalake storage options for ``lake`` (params' ``lake`` section): its own plus encryption
    and ``allow_http`` on S3; a plain-HTTP endpoint without ``allow_http`` is a one-line ConfigError."""
    options = dict(lake.storage_options)
    check_transport(lake)
    if not is_s3(lake.root):
        return options
    given = _lower(options)
    if lake.allow_http:
        options.setdefault("aws_allow_http", "true")
    if any(key in given for key in SSE_KEYS) or lake.sse == "none":
        return options
    options["aws_server_side_encryption"] = lake.sse
    key_id = lake.sse_kms_key_id or os.environ.get(KMS_ENV)
    if lake.sse == "aws:kms" and key_id:
        options["aws_sse_kms_key_id"] = key_id
    return options


def check_transport(lake) -> None:
    """Refuse an ``http://`` endpoint unless allowed: object storage is reached over TLS."""
    if "://" not in lake.root or lake.root.startswith("file://"):
        return
    given = _lower(lake.storage_options)
    endpoint = next((given[k] for k in ENDPOINT_KEYS if k in given), "") or os.environ.get("AWS_ENDPOINT_URL", "")
    allowed = lake.allow_http or any(given.get(k, "").strip().lower() == "true" for k in ALLOW_HTTP_KEYS)
    if endpoint.strip().lower().startswith("http://") and not allowed:
        raise ConfigError(f"lake storage endpoint {endpoint} is plain http:// (data and credentials unencrypted in "
                          f"transit); use https://, or set lake.allow_http: true for a trusted local server")
