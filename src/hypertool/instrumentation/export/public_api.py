"""One endpoint of Langfuse's public REST API (scores, prompts): its URL, basic auth and the
headers langfuse's SDK sends, a ``requests`` session, and a stop that ends pending retries.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from hypertool.instrumentation.export.sinks import SDK_NAME, basic_auth

if TYPE_CHECKING:
    import requests


class PublicApi:
    """A client of ``{host}{path}``; the keys are in its headers, never in its repr.

    Args:
        host: The Langfuse URL.
        path: The endpoint's path (``/api/public/scores``…).
        public_key: Langfuse public key.
        secret_key: Langfuse secret key (never logged).
        timeout: Seconds one request may take, retries included.
        session: A ``requests.Session`` to use; one is made when None.

    """

    def __init__(
        self,
        host: str,
        path: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        import requests

        self.url = f"{host.rstrip('/')}{path}"
        self.timeout = timeout
        self.headers = {
            "Authorization": basic_auth(public_key, secret_key),
            "x-langfuse-sdk-name": SDK_NAME,
            "x-langfuse-public-key": public_key,
        }
        self.session = session or requests.Session()
        self.stopped = threading.Event()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        """Stop: pending retries end, later requests fail, connections close."""
        self.stopped.set()
        self.session.close()
