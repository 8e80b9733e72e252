"""The staff console (SPEC §16): server-rendered pages at /console/ for clinic staff.

A layer of its own, below `service.web` (whose app factory wires it) and above the use cases:
its pages render what `service.reads` answers and act through the same services the API uses
(no SQL here). Its dependencies come in one object the app factory stores under the console's
own app key, so the console knows nothing of the web layer.
"""
