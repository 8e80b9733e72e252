"""The staff console (contract §16): server-rendered pages at /console/ for clinic staff.

A layer of its own, below `service.web` (whose app factory wires it) and above the use cases:
its pages render what `service.reads` answers and act through the same services the API uses
(no SQL here). Its dependencies come in one object the app factory stores under the console's
own app key, so the console knows nothing of the web layer.

Writing a page (the API a page module uses):
- routes: a `web.RouteTableDef()` of the module, added in `wiring.setup`; every path under
  /console is guarded by `guard.guard` (session, CSRF, HTML errors) and gets the safe-page
  headers, whatever the handler does;
- `request.app[CONSOLE]`: the `Console` (settings, transactions, clock, metrics, arm, ...);
- `signed_in(request)`: the `StaffSession` (staff_id, email, name, clinic_ids, csrf);
  `require_clinic(request, clinic_id)` before showing anything of a clinic (404 otherwise);
- `render(request, "page.html", {...})`: a template extending base.html (`{% block content %}`),
  with `scripts=("name.js",)` to load files of /console/static/;
- a POST form carries `<input type="hidden" name="csrf" value="{{ csrf }}">` (our script sends
  the header `X-CSRF-Token`); the handler runs only when the token matched. After a POST,
  answer 303 to a GET page (`raise web.HTTPSeeOther(...)` works too).
"""

from service.console.auth import StaffSession, require_clinic, signed_in
from service.console.deps import CONSOLE, Console
from service.console.pages import render
from service.console.passwords import Passwords
from service.console.wiring import setup

__all__ = [
    "CONSOLE",
    "Console",
    "Passwords",
    "StaffSession",
    "render",
    "require_clinic",
    "setup",
    "signed_in",
]
