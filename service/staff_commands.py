"""`aftercare staff add | list | disable | password`: the console's accounts (contract §16).

A password comes from standard input (one line; its newline is not part of it); when standard
input is a terminal or empty, one is generated and printed once. Exit 2 for a refusal of the
arguments (a short password, an unknown clinic, a malformed email), 1 when the account named
does not exist or already does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from service.clock import SystemClock
from service.config import Loaded

if TYPE_CHECKING:
    from service.storage.transactions import Session

# The console and the store are imported where a command runs, not here: every `aftercare`
# command builds this parser, and `serve` must not import prometheus_client (by way of them)
# before it knows whether its workers keep their metrics in files (service.web.workers).

T = TypeVar("T")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `staff` and its subcommands to the `aftercare` command's parser."""
    parser = commands.add_parser("staff", help="the staff console's accounts")
    sub = parser.add_subparsers(dest="staff_command", required=True)
    add = sub.add_parser("add", help="add an account (password from stdin, or generated)")
    add.add_argument("--clinic", action="append", required=True, help="repeat for several")
    add.add_argument("--email", required=True)
    add.add_argument("--name")
    add.set_defaults(run=_add)
    sub.add_parser("list", help="list the accounts").set_defaults(run=_list)
    disable = sub.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("--email", required=True)
    disable.set_defaults(run=_disable)
    reset = sub.add_parser("password", help="set a new password and end the sessions")
    reset.add_argument("--email", required=True)
    reset.set_defaults(run=_password)


def _refuse(message: str) -> int:
    print(f"aftercare staff: {message}", file=sys.stderr)
    return 2


def _add(loaded: Loaded, args: argparse.Namespace) -> int:
    from service.console.passwords import PasswordTooShort
    from service.console.signin import normal_email
    from service.storage import staff

    unknown = [c for c in args.clinic if c not in loaded.settings.clinics]
    if unknown:
        return _refuse(f"no clinic {unknown[0]!r} in the configuration")
    email = normal_email(args.email)
    if "@" not in email or len(email) > 320:
        return _refuse(f"not an email address: {args.email!r}")
    try:
        password, generated = _new_password()
    except PasswordTooShort as exc:
        return _refuse(str(exc))
    name, clinics, now = args.name, tuple(args.clinic), SystemClock().now()

    def work(s: Session) -> int:
        return staff.add(
            s, email=email, name=name, password_hash=password, clinic_ids=clinics, now=now
        )

    try:
        _run(loaded, work)
    except staff.AccountExists:
        print(f"aftercare staff: an account of {email} exists already", file=sys.stderr)
        return 1
    print(f"added {email} ({', '.join(clinics)})")
    _show(generated)
    return 0


def _new_password() -> tuple[str, str | None]:
    """The hash of the password read from stdin (or generated), and the generated one."""
    from service.console.passwords import Passwords, generate

    typed = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.readline()
    typed = typed.rstrip("\r\n")
    generated = None if typed else generate()
    return Passwords().hash(typed or str(generated)), generated


def _show(generated: str | None) -> None:
    if generated is not None:
        print(f"password (shown only now): {generated}")


def _list(loaded: Loaded, _args: argparse.Namespace) -> int:
    from service.storage import staff

    accounts = _run(loaded, staff.listed)
    print(f"{'EMAIL':<32}  {'NAME':<20}  {'CLINICS':<20}  STATUS")
    for a in accounts:
        status = "disabled" if a.disabled_at else "active"
        print(f"{a.email:<32}  {a.name or '-':<20}  {','.join(a.clinic_ids):<20}  {status}")
    return 0


def _disable(loaded: Loaded, args: argparse.Namespace) -> int:
    from service.console.signin import normal_email
    from service.storage import staff

    email, now = normal_email(args.email), SystemClock().now()
    if not _run(loaded, lambda s: staff.disable(s, email, now=now)):
        return _missing(email)
    print(f"disabled {email}; its sessions have ended")
    return 0


def _password(loaded: Loaded, args: argparse.Namespace) -> int:
    from service.console.passwords import PasswordTooShort
    from service.console.signin import normal_email
    from service.storage import staff

    email, now = normal_email(args.email), SystemClock().now()
    try:
        hashed, generated = _new_password()
    except PasswordTooShort as exc:
        return _refuse(str(exc))
    if not _run(loaded, lambda s: staff.set_password(s, email, password_hash=hashed, now=now)):
        return _missing(email)
    print(f"new password for {email}; its sessions have ended")
    _show(generated)
    return 0


def _missing(email: str) -> int:
    print(f"aftercare staff: no account of {email}", file=sys.stderr)
    return 1


def _run(loaded: Loaded, work: Callable[[Session], T]) -> T:
    """`work` in one write transaction on the configured database."""
    from service.storage.transactions import Transactions

    async def run() -> T:
        transactions = Transactions.open(loaded.settings.database.url)
        try:
            return await transactions.write(work)
        finally:
            await transactions.close()

    return asyncio.run(run())
