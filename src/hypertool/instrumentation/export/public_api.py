"""One endpoint of Langfuse's public REST API (scores, prompts): its URL, basic auth and the
headers langfuse's SDK sends, a ``requests`` session, and a stop that ends pending retries.

A forked child makes a session of its own: it never sends over the parent's pooled connections.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from hypertool.instrumentation._fork import reset_in_child
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
        reset_in_child(self, PublicApi._after_fork)

    def _after_fork(self) -> None:
        import requests

        # The parent's session and its sockets are the parent's; never closed from here.
        self.session = requests.Session()
        stopped = self.stopped.is_set()
        self.stopped = threading.Event()
        if stopped:
            self.stopped.set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        """Stop: pending retries end, later requests fail, connections close."""
        self.stopped.set()
        self.session.close()
