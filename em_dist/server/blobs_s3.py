"""The blob store in an S3-compatible bucket: object ``<prefix>/<sha[:2]>/<sha>``, through boto3.

An upload is verified before it becomes an object: a blob smaller than one part is held
in memory and put once its digest matched; a larger one goes up as a multipart upload
whose parts stay invisible until ``CompleteMultipartUpload``, sent only after the digest
matched (otherwise the upload is aborted). So no reader and no ``exists`` ever sees a
half-received or corrupt blob under its hash, and there is no copy step.

Credentials and region come from boto3's usual sources (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles, instance roles); the endpoint
of a non-AWS store from ``--s3-endpoint-url`` or ``AWS_ENDPOINT_URL(_S3)``, in which case
path-style addressing is used (MinIO, rclone, Ceph).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Iterator

from em_dist.server.blobs import STALE_UPLOAD_S, BlobStore, BlobStoreUnavailable, BlobWriter, StoredBlob, is_sha256

PART_BYTES = 8 * 1024 * 1024
"""Multipart part size (S3 wants at least 5 MiB for every part but the last)."""


def _client(endpoint_url: str | None) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    custom = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        s3={"addressing_style": "path" if custom else "auto"},
        # Compatible stores differ in the extra checksums they send back (a ranged GET may
        # carry the whole object's); we verify sha256 ourselves.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=64,
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


class _S3Writer(BlobWriter):
    def __init__(self, client: Any, bucket: str, key: str, part_bytes: int) -> None:
        self._s3, self._bucket, self._key, self._part_bytes = client, bucket, key, part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._done = False

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=self._key)["UploadId"]
        number = len(self._parts) + 1
        answer = self._s3.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                      PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            self._send_part(part)

    def commit(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            self._s3.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                               MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()
        self._done = True

    def abort(self) -> None:
        self._buffer = bytearray()
        if self._done or self._upload_id is None:
            return
        self._done = True
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except Exception:  # noqa: BLE001 - never raises; `em server gc` aborts what is left
            pass


class S3BlobStore(BlobStore):
    """Blobs in one bucket under one key prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, part_bytes: int = PART_BYTES) -> None:
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_bytes = part_bytes
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> "S3BlobStore":
        """The store for ``s3://bucket[/prefix]``, checked: raises BlobStoreUnavailable when the
        bucket cannot be reached with the credentials at hand."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise BlobStoreUnavailable(f"an S3 blob location is s3://bucket[/prefix], not {url!r}")
        client = _client(endpoint_url)
        try:
            client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            where = client.meta.endpoint_url
            raise BlobStoreUnavailable(f"cannot use S3 bucket {bucket!r} at {where}: {exc} (the bucket must exist; "
                                       "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)") from None
        return cls(client, bucket, prefix)

    def key(self, sha256: str) -> str:
        """The object key of blob ``sha256``."""
        tail = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def stat(self, sha256: str) -> StoredBlob | None:
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise
        return StoredBlob(sha256, int(head["ContentLength"]), head["LastModified"].timestamp())

    def exists(self, sha256: str) -> bool:
        return self.stat(sha256) is not None

    def read(self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        ranged = start > 0 or end is not None
        extra = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if ranged else {}
        body = self._s3.get_object(Bucket=self.bucket, Key=self.key(sha256), **extra)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def iter_blobs(self) -> Iterator[StoredBlob]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, **({"Prefix": self.prefix + "/"} if self.prefix else {}))
        for page in pages:
            for obj in page.get("Contents", []):
                parts = obj["Key"].rsplit("/", 2)
                if len(parts) >= 2 and is_sha256(parts[-1]) and parts[-2] == parts[-1][:2]:
                    yield StoredBlob(parts[-1], int(obj["Size"]), obj["LastModified"].timestamp())

    def delete(self, sha256: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def pending_uploads(self) -> list[tuple[str, str, float]]:
        """Multipart uploads not completed nor aborted under the prefix: (key, upload id, initiated)."""
        from botocore.exceptions import ClientError

        found = []
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, **({"Prefix": self.prefix + "/"} if self.prefix else {}))
        try:
            for page in pages:
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated") or dt.datetime.now(dt.timezone.utc)
                    found.append((upload["Key"], upload["UploadId"], initiated.timestamp()))
        except ClientError as exc:  # rclone answers NoSuchUpload for a bucket that never had one
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
        return found

    def remove_stale_uploads(self, older_than_s: float = STALE_UPLOAD_S) -> int:
        cutoff = dt.datetime.now(dt.timezone.utc).timestamp() - older_than_s
        removed = 0
        for key, upload_id, initiated in self.pending_uploads():
            if initiated < cutoff:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                removed += 1
        return removed

    def _writer(self, sha256: str) -> BlobWriter:
        return _S3Writer(self._s3, self.bucket, self.key(sha256), self.part_bytes)
