"""Issue 5's peer, run beside Aftercare: reminders as Celery tasks with an ETA, on Redis.

The usual architecture for "send this text at that time": the producer calls
`send.apply_async(args, eta=send_at)`, one Celery worker (prefork, one process per core)
holds each task until its ETA and then runs it, and the task POSTs the message to the same
fake Twilio as the service (keep-alive HTTP from each worker process). `bench/run.py` starts
the worker with `python -m celery -A peer_celery worker` in this directory.

Needs the `bench` extra (`pip install -e '.[bench]'`) and Redis (`PEER_BROKER`, default
redis://127.0.0.1:6379/15; the bench empties that database before and after).
"""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlencode, urlsplit

from celery import Celery

BROKER = os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/15")
ACCOUNT_SID = "AC" + "0" * 32
FROM_NUMBER = "+14155550100"

app = Celery("peer_celery", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True, worker_send_task_events=False)

_connection: http.client.HTTPConnection | None = None


@app.task(name="peer.send")
def send(to: str, body: str) -> int:
    """Create the message at the fake Twilio; its HTTP status."""
    global _connection
    target = urlsplit(os.environ["PEER_TWILIO_URL"])
    form = urlencode({"To": to, "From": FROM_NUMBER, "Body": body})
    for attempt in (1, 2):  # a kept-alive connection the server closed: open a new one once
        if _connection is None:
            _connection = http.client.HTTPConnection(target.hostname or "127.0.0.1",
                                                     target.port, timeout=10)
        try:
            _connection.request("POST", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                                form, {"Content-Type": "application/x-www-form-urlencoded"})
            response = _connection.getresponse()
            response.read()
            return response.status
        except (http.client.HTTPException, OSError):
            _connection.close()
            _connection = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
