"""A real S3 API server on loopback (moto in server mode) for tests and benchmarks.

Needs ``moto[server]`` (the ``test`` extra). Requests are counted by method and path so tests can
check that the dataset cache does not go back to the store::

    with MotoS3() as s3:
        s3.client.create_bucket(Bucket="data")
        s3.client.put_object(Bucket="data", Key="t.csv", Body=b"a\\n1\\n")
        options = {"bucket": "data", "key": "t.csv", "endpoint_url": s3.endpoint_url, ...}
        assert s3.count("GET", "/data/t.csv") == 1
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from lomas_core.testing.tables import table_bytes

__all__ = ["table_bytes", "MotoS3", "TEST_ACCESS_KEY_ID", "TEST_SECRET_ACCESS_KEY"]

#: moto accepts any credentials; tests use these and grep for the secret part.
TEST_ACCESS_KEY_ID = "AKIALOMASTESTKEY0001"
TEST_SECRET_ACCESS_KEY = "lomas-test-secret-Zq9v/Wx7+never-shown"


class MotoS3:
    """moto's S3 on 127.0.0.1 with a free port, in a background thread (a context manager)."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._auth = False

    def _counting(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self._lock:
                self.requests.append((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
            return app(environ, start_response)
        return wrapped

    def start(self) -> MotoS3:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class _QuietHandler(MotoRequestHandler):  # type: ignore[misc]
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", 0, self._counting(app), threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def client(self) -> Any:
        """A boto3 S3 client on this server (for setting up buckets and objects)."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                aws_access_key_id=TEST_ACCESS_KEY_ID, aws_secret_access_key=TEST_SECRET_ACCESS_KEY)
        return self._client

    def require_auth(self) -> tuple[str, str]:
        """Make moto check signatures and IAM permissions from now on (until :meth:`stop`).

        Creates an IAM user allowed every S3 action and returns its (access key id, secret key);
        any other credentials are refused as S3 would refuse them. moto keeps this switch
        process-wide, so :meth:`stop` turns checking off again.
        """
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint_url, region_name=self.region,
                           aws_access_key_id=TEST_ACCESS_KEY_ID,
                           aws_secret_access_key=TEST_SECRET_ACCESS_KEY)
        user = f"lomas-reader-{secrets.token_hex(4)}"  # moto's IAM state outlives this server
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self._set_auth("0")
        self._auth = True
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _set_auth(self, count: str) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset-auth",
                                         data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests matched ``method`` and ``path`` (None matches any)."""
        with self._lock:
            return sum(1 for m, p in self.requests
                       if (method is None or m == method) and (path is None or p == path))

    def stop(self) -> None:
        if self._auth:
            self._set_auth("inf")
            self._auth = False
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
