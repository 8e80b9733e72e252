"""Issue 5's peer, run beside Aftercare: reminders as Celery tasks with an ETA, on Redis.

The usual architecture for "send this text at that time": the producer calls
`send.apply_async(args, eta=send_at)`, one Celery worker holds each task until its ETA and then
runs it, and the task POSTs the message to the same fake Twilio as the service (keep-alive
HTTP, one connection per pool thread or process). When the fake answers a create after a
delay, as Twilio does, the worker runs a pool of threads as wide as the service's
`max_concurrent_sends`: a prefork pool of one process per core would send two at a time, ten
messages a second at 0.2 s an answer. `bench/run.py` starts the worker with
`python -m celery -A peer_celery worker` in this directory.

Needs the `bench` extra (`pip install -e '.[bench]'`) and Redis (`PEER_BROKER`, default
redis://127.0.0.1:6379/15; the bench empties that database before and after).
"""

from __future__ import annotations

import http.client
import os
import threading
from urllib.parse import urlencode, urlsplit

from celery import Celery

BROKER = os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/15")
ACCOUNT_SID = "AC" + "0" * 32
FROM_NUMBER = "+14155550100"

app = Celery("peer_celery", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)

_local = threading.local()  # each pool thread (or process) keeps its own connection


@app.task(name="peer.send")  # type: ignore[untyped-decorator]  # celery has no type stubs
def send(to: str, body: str) -> int:
    """Create the message at the fake Twilio; its HTTP status."""
    target = urlsplit(os.environ["PEER_TWILIO_URL"])
    form = urlencode({"To": to, "From": FROM_NUMBER, "Body": body})
    for attempt in (1, 2):  # a kept-alive connection the server closed: open a new one once
        connection = getattr(_local, "connection", None)
        if connection is None:
            connection = _local.connection = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=10
            )
        try:
            connection.request(
                "POST",
                f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                form,
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = connection.getresponse()
            response.read()
            return response.status
        except (http.client.HTTPException, OSError):
            connection.close()
            _local.connection = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
