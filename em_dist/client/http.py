"""A small requests session for the em_dist server: auth header, retries with backoff,
and translation of HTTP failures into :mod:`em_dist.errors` types."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import requests

from em_dist.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
)

API_PREFIX = "/api/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERRORS = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError, 409: ConflictError}


def base_url(host: str) -> str:
    """``host`` with a scheme (``http://`` when none is given) and no trailing slash."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "http://" + host
    return host


def error_message(response: requests.Response) -> str:
    """The server's ``detail`` message, or the start of the body."""
    try:
        detail = response.json().get("detail")
        if detail:
            return str(detail)
    except (ValueError, AttributeError):
        pass
    return (response.text or response.reason or "").strip()[:300]


def raise_for_status(response: requests.Response) -> None:
    """Raise the matching ServerError subclass for a 4xx/5xx response."""
    if response.status_code < 400:
        return
    cls = _ERRORS.get(response.status_code, ServerError)
    message = f"{response.request.method} {response.url}: HTTP {response.status_code}: {error_message(response)}"
    raise cls(message, status_code=response.status_code)


class HttpClient:
    """Talks JSON (and raw bytes) to one server with one API key.

    Connection errors and 429/5xx answers are retried ``retries`` times with exponential
    backoff; every endpoint the SDK calls is idempotent, so a retry never duplicates data.
    """

    def __init__(self, host: str, api_key: str | None, *, timeout: float = 60.0, retries: int = 5, backoff: float = 0.25) -> None:
        self.host = base_url(host)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def url(self, path: str) -> str:
        return self.host + API_PREFIX + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: bytes | Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: Iterable[int] = (),
        stream: bool = False,
    ) -> requests.Response:
        """Send with retries; returns the response when it is 2xx or its status is in ``accept``.

        ``data`` may be a callable that returns a fresh body (an open file) per attempt.
        """
        accept = set(accept)
        last_exc: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))
            body = data() if callable(data) else data
            try:
                response = self.session.request(
                    method, self.url(path), json=json, params=params, data=body, headers=headers,
                    timeout=self.timeout, stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_exc = exc
                continue
            finally:
                close = getattr(body, "close", None)  # a file the callable opened for this attempt
                if close is not None:
                    close()
            if response.status_code in RETRY_STATUSES and response.status_code not in accept and attempt < self.retries:
                last_exc = ServerError(error_message(response), response.status_code)
                continue
            if response.status_code in accept or response.status_code < 400:
                return response
            raise_for_status(response)
        if isinstance(last_exc, ServerError):
            raise last_exc
        raise ServerUnreachableError(
            f"cannot reach the em server at {self.host} after {self.retries + 1} attempts: {last_exc}"
        )

    def get_json(self, path: str, **params: Any) -> Any:
        """The decoded JSON answer of ``GET path`` (parameters that are None are left out)."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def get_object(self, path: str, **params: Any) -> dict[str, Any]:
        """:meth:`get_json` of an endpoint whose answer the API defines as a JSON object."""
        doc: dict[str, Any] = self.get_json(path, **params)
        return doc

    def get_list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """:meth:`get_json` of an endpoint whose answer the API defines as a list of JSON objects."""
        docs: list[dict[str, Any]] = self.get_json(path, **params)
        return docs

    def close(self) -> None:
        self.session.close()
