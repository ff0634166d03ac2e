"""The S3 store (boto3): ``s3://bucket/prefix``, on AWS or any S3-compatible server.

Credentials and the endpoint come from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...) unless the
farm config names an endpoint. Every object write on S3 is atomic; a
generation is committed with a conditional PutObject (``If-None-Match: *``),
so of two publishers racing for generation N exactly one creates it. The live
view has no atomic swap here: :meth:`S3Store.switch` writes the changed
project pages, then the root pages, then removes dropped projects, then the
checksums and the root manifest last, so every link a reader follows resolves.
Every write goes through ``_put``, ``_copy`` or :meth:`S3Store.delete` (the
tests that stop a publisher at each write count those).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from wheelfarm.errors import ConfigError, StoreError, needs_extra
from wheelfarm.publish.store import (
    PAGE_NAMES,
    SIGNED_NAMES,
    View,
    cache_control,
    check_key,
    check_prefix,
    content_type,
)

with needs_extra("s3", "the S3 store (s3://)"):
    import boto3  # type: ignore[import-untyped]  # stubs are a separate package
    from botocore.config import Config  # type: ignore[import-untyped]
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
        NoCredentialsError,
    )

# Codes that mean the URL or the credentials are wrong, not that the store failed.
_BAD_INPUT = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
              "AllAccessDisabled", "InvalidBucketName"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    def __init__(self, url: str, *, endpoint_url: str | None = None) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"{url}: expected s3://BUCKET/PREFIX")
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        if prefix:
            check_key(prefix)
        session = boto3.session.Session()
        # boto3 itself honours AWS_ENDPOINT_URL(_S3); an explicit endpoint overrides it.
        self.client: Any = session.client(
            "s3", endpoint_url=endpoint_url or None,
            region_name=session.region_name or "us-east-1",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, exc: Exception, what: str) -> Exception:
        where = f"{self.url}: {what}"
        if isinstance(exc, NoCredentialsError):
            return ConfigError(f"{where}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                               f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"{where}: {code}: {error.get('Message', '')}".rstrip(": ")
            return ConfigError(message) if code in _BAD_INPUT else StoreError(message)
        return StoreError(f"{where}: {exc}")

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
            return data
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise self._fail(exc, f"reading {key}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"reading {key}") from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            self._put(key, data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"writing {key}") from exc

    def _put(self, key: str, data: bytes, **extra: Any) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                               ContentType=content_type(key), CacheControl=cache_control(key),
                               **extra)

    def _copy(self, key: str, source: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket, Key=self._key(key),
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            MetadataDirective="REPLACE", ContentType=content_type(key),
            CacheControl=cache_control(key))

    def put_new(self, key: str, data: bytes) -> bool:
        for attempt in range(6):
            try:
                self._put(key, data, IfNoneMatch="*")
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "PreconditionFailed":
                    return False
                if code == "ConditionalRequestConflict":
                    # Another conditional write to this key is in flight: ask again.
                    time.sleep(0.1 * 2 ** attempt)
                    continue
                raise self._fail(exc, f"writing {key}") from exc
            except BotoCoreError as exc:
                raise self._fail(exc, f"writing {key}") from exc
            return True
        raise StoreError(f"{self.url}: writing {key}: conflicting writers did not settle")

    def list(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + check_prefix(prefix))
            for page in pages:
                found += [o["Key"][len(self.prefix):] for o in page.get("Contents", ())]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"listing {prefix}") from exc
        return found

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"deleting {key}") from exc

    def live_generation(self) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key("InRelease"))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return 0
            raise self._fail(exc, "reading InRelease") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, "reading InRelease") from exc
        value = str(head.get("Metadata", {}).get("generation", "0"))
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise StoreError(f"{self.url}: InRelease says generation {value[:40]!r}; "
                             f"the store was altered")
        return int(value)

    def switch(self, view: View) -> None:
        # Without a lock on S3 a slower publisher may still overwrite a page after
        # a newer switch; the publisher re-checks the latest generation afterwards.
        if self.live_generation() >= view.generation:
            return
        try:
            for project in sorted(view.changed & view.projects.keys()):
                for page in PAGE_NAMES:
                    key = f"simple/{check_key(project)}/{page}"
                    self._copy(key, f"{view.projects[project]}/{page}")
            for key, data in view.root.items():
                self._put(key, data)
            for project in sorted(view.changed - view.projects.keys()):
                for page in PAGE_NAMES:
                    key = f"simple/{check_key(project)}/{page}"
                    self.delete(key)
            for name in SIGNED_NAMES:
                extra = {"Metadata": {"generation": str(view.generation)}} \
                    if name == "InRelease" else {}
                self._put(name, view.signed[name], **extra)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"switching to generation {view.generation}") from exc
