"""The message lists of the clinic API (contract §8): a patient's messages newest first with history
and a masked phone, the clinic's across treatments filtered by status and send_at window, their
limits and the problems naming wrong parameters, and pages that cover every message once on both
databases, however messages arrive while paging, behind an opaque cursor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.config import Settings
from service.storage.models import Status
from tests.conftest import AppClient
from tests.fixtures.clinic_api import NOW, every_page, get, page_ids, plan
from tests.helpers.client import move_message
from tests.support import PHONE, make_settings


class TestPatientMessages:
    async def test_newest_first_with_history_and_masked_phone(self, client: AppClient) -> None:
        """A patient's messages of every treatment, latest send_at first, phone masked."""
        await plan(client, "tr_1", completed=NOW - timedelta(days=1))
        await plan(client, "tr_2")
        await plan(client, "tr_3", patient="pt_88")
        response = await get(client, "/v1/clinics/glow/patients/pt_77/messages")
        text = await response.text()
        found = (await response.json())["messages"]
        assert len(found) == 12
        assert [m["send_at"] for m in found] == sorted((m["send_at"] for m in found), reverse=True)
        assert {m["patient_id"] for m in found} == {"pt_77"}
        assert {m["treatment_id"] for m in found} == {"tr_1", "tr_2"}
        assert all(m["history"][0]["at"] == "2026-11-25T15:00:00Z" for m in found)
        assert PHONE[1:] not in text and {m["to"] for m in found} == {"•••••••0123"}

    async def test_unknown_patient_is_404(self, client: AppClient) -> None:
        """A patient id the clinic does not have is a 404 problem."""
        response = await get(client, "/v1/clinics/glow/patients/nobody/messages")
        assert response.status == 404
        assert response.content_type == "application/problem+json"

    async def test_pages_and_filters_like_the_clinic_list(self, client: AppClient) -> None:
        """limit, cursor and status work on a patient's list too."""
        ids = await plan(client, "tr_1")
        await move_message(client, ids[0], Status.SENDING, Status.SENT)
        path = "/v1/clinics/glow/patients/pt_77/messages"
        assert sorted(await every_page(client, path, limit=4)) == sorted(ids)
        assert (await page_ids(client, path, status="sent"))[0] == [ids[0]]


class TestClinicMessages:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        """On SQLite, then on PostgreSQL: the keyset comparison must hold on both."""
        return make_settings(database)

    async def test_newest_first_across_treatments(self, client: AppClient) -> None:
        """Every message of the clinic, latest send_at first, each naming its treatment."""
        await plan(client, "tr_1", completed=NOW - timedelta(days=2))
        await plan(client, "tr_2", patient="pt_88")
        found = (await (await get(client, "/v1/clinics/glow/messages")).json())["messages"]
        assert len(found) == 12
        keys = [(m["send_at"], m["id"]) for m in found]
        assert keys == sorted(keys, reverse=True)
        assert found[-1]["treatment_id"] == "tr_1" and found[0]["treatment_id"] == "tr_2"

    async def test_filter_by_status(self, client: AppClient) -> None:
        """?status= keeps the messages in that status."""
        ids = await plan(client, "tr_1")
        await move_message(client, ids[0], Status.SENDING)
        assert (await page_ids(client, "/v1/clinics/glow/messages", status="sending"))[0] == [
            ids[0]
        ]
        assert (
            len((await page_ids(client, "/v1/clinics/glow/messages", status="scheduled"))[0]) == 5
        )

    async def test_filter_by_send_at_window(self, client: AppClient) -> None:
        """since is inclusive and until exclusive, on send_at."""
        await plan(client, "tr_1")
        found = await (
            await get(
                client,
                "/v1/clinics/glow/messages",
                since="2026-11-26T16:30:00Z",
                until="2026-11-27T16:30:00+00:00",
            )
        ).json()
        assert [m["send_at"] for m in found["messages"]] == [
            "2026-11-27T04:30:00Z",
            "2026-11-26T16:30:00Z",
        ]

    async def test_limit_defaults_to_50(self, client: AppClient) -> None:
        """Without a limit a page holds 50 messages."""
        for n in range(9):
            await plan(client, f"tr_{n}")
        ids, cursor = await page_ids(client, "/v1/clinics/glow/messages")
        assert len(ids) == 50 and cursor is not None
        assert len((await page_ids(client, "/v1/clinics/glow/messages", limit=200))[0]) == 54

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"limit": "0"}, "limit"),
            ({"limit": "201"}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"limit": "²"}, "limit"),  # a digit to str.isdigit, not to int
            ({"limit": "٣"}, "limit"),  # Arabic-Indic 3: ASCII digits only
            ({"status": "lost"}, "status"),
            ({"since": "yesterday"}, "since"),
            ({"until": "2026-11-25T15:00:00"}, "until"),
            ({"until": "0001-01-01T00:00:01+01:01"}, "until"),  # before UTC's year 1 (was a 500)
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"cursor": "eyJ4IjogMX0"}, "cursor"),
            ({"since": "2026-11-26T00:00:00Z", "until": "2026-11-25T00:00:00Z"}, "until"),
        ],
    )
    async def test_bad_parameter_is_422_naming_it(
        self, client: AppClient, query: dict[str, str], field: str
    ) -> None:
        """A wrong parameter is a 422 problem listing it."""
        response = await get(client, "/v1/clinics/glow/messages", **query)
        assert response.status == 422
        assert response.content_type == "application/problem+json"
        assert [e["field"] for e in (await response.json())["errors"]] == [field]

    async def test_every_wrong_parameter_is_listed(self, client: AppClient) -> None:
        """Several wrong parameters are all named, not only the first."""
        response = await get(client, "/v1/clinics/glow/messages", limit="-1", status="x", since="y")
        fields = {e["field"] for e in (await response.json())["errors"]}
        assert fields == {"limit", "status", "since"}


class TestPagination:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        """On SQLite, then on PostgreSQL: the keyset comparison must hold on both."""
        return make_settings(database)

    async def test_pages_cover_every_message_once(self, client: AppClient) -> None:
        """Following next_cursor yields each message exactly once, and the last page says so."""
        ids = await plan(client, "tr_1") + await plan(client, "tr_2", patient="pt_88")
        seen = await every_page(client, "/v1/clinics/glow/messages", limit=5)
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))

    async def test_equal_send_times_are_ordered_by_id(self, client: AppClient) -> None:
        """Messages sent at the same instant page one at a time without repeats or gaps."""
        ids = [m for n in range(3) for m in await plan(client, f"tr_{n}", patient=f"pt_{n}")]
        seen = await every_page(client, "/v1/clinics/glow/messages", limit=1)
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))

    async def test_messages_arriving_while_paging_are_not_skipped_or_repeated(
        self, client: AppClient
    ) -> None:
        """New plans stored between pages, newer and older, shift nothing already listed."""
        before = await plan(client, "tr_1") + await plan(client, "tr_2", patient="pt_88")
        path = "/v1/clinics/glow/messages"
        seen, cursor = await page_ids(client, path, limit=4)
        arrived = await plan(client, "tr_new", completed=NOW + timedelta(minutes=1))
        arrived += await plan(client, "tr_old", completed=NOW - timedelta(days=3))
        while cursor is not None:
            more, cursor = await page_ids(client, path, limit=4, cursor=cursor)
            seen += more
            if len(seen) == 8:
                arrived += await plan(client, "tr_mid", completed=NOW - timedelta(hours=1))
        assert len(seen) == len(set(seen)), "a message was repeated"
        assert set(before) <= set(seen), "a message was skipped"
        assert set(seen) <= set(before) | set(arrived)

    async def test_cursor_is_opaque_text(self, client: AppClient) -> None:
        """The cursor is URL-safe text that names no internal field."""
        await plan(client, "tr_1")
        _, cursor = await page_ids(client, "/v1/clinics/glow/messages", limit=2)
        assert cursor is not None and cursor.replace("-", "").replace("_", "").isalnum()
