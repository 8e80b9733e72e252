"""/metrics shows the escalations waiting for a person (database, the same on every replica):
how many are open and the age of the oldest, which `AftercareEscalationUnacknowledged`
(deploy/alerts.yml) pages on after 30 minutes."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from service.storage.conversation_tables import Escalation
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.client import bearer, post_completed, treatment_messages
from tests.helpers.prometheus import sample
from tests.processes import until_async
from tests.support import TOKEN, FakeClock


async def scrape(client: AppClient) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


async def test_open_escalations_and_the_oldest_age_until_acknowledged(
    client: AppClient, clock: FakeClock
) -> None:
    await post_completed(client, {"id": "tr_1", "completed_at": clock.now().isoformat()})
    message_id = next(iter(await treatment_messages(client)))
    metrics = await scrape(client)
    assert sample(metrics, "aftercare_escalations_open") == 0
    assert sample(metrics, "aftercare_oldest_open_escalation_seconds") == 0

    def opened(s: Session) -> None:
        for n, minutes in enumerate((40, 5)):
            s.add(
                Escalation(
                    id=f"esc_{n}",
                    clinic_id="glow",
                    message_id=message_id,
                    level="urgent",
                    reply="my cheek is swollen",
                    opened_at=clock.now() - timedelta(minutes=minutes),
                )
            )

    await client.app[TRANSACTIONS].write(opened)

    async def counted(open_: float, oldest: float) -> bool:
        metrics = await scrape(client)
        return (
            sample(metrics, "aftercare_escalations_open") == open_
            and sample(metrics, "aftercare_oldest_open_escalation_seconds") == oldest
        )

    await until_async(lambda: counted(2, 2400))
    url = "/v1/clinics/glow/escalations/esc_0/acknowledge"
    answer = await client.post(url, json={"by": "nurse Kim"}, headers=bearer(TOKEN))
    assert answer.status == 200, await answer.text()
    await until_async(lambda: counted(1, 300))
