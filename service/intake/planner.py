"""The planner: the configured protocols, built once, and the plan they make.

The settings' side of planning: the pure planner (`service.planning`) takes plain values (a
protocol, `protocols.Treatment`, `protocols.Recipient`, the clinic as a plan sees it) and
returns `protocols.PlannedMessage`s; this builds those values from the configuration once.
Turning stored rows into its inputs and its plan into rows is storage's
(`storage.message_rows`), so that the event that plans a treatment and the corrections that
re-plan one build a message alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from service.config import ClinicSettings, Settings
from service.errors import FieldError, Unprocessable
from service.planning import prep, protocols
from service.storage.message_rows import recipient, treatment_for_plan
from service.storage.models import Patient, Treatment

FUTURE_TOLERANCE = timedelta(minutes=5)


class Planner:
    """Builds message rows from the configured protocols (the pure planner does the timing)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._protocols: dict[tuple[str, str], protocols.Protocol] = {}

    def check(self, *, protocol: str, completed_at: datetime, now: datetime) -> None:
        """Refuse what cannot be planned: an unknown protocol, a treatment in the future."""
        errors = []
        if protocol not in self.settings.protocols:
            known = ", ".join(sorted(self.settings.protocols))
            errors.append(
                FieldError(
                    "data.treatment.protocol", f"unknown protocol; this service knows {known}"
                )
            )
        if completed_at > now + FUTURE_TOLERANCE:
            errors.append(FieldError("data.treatment.completed_at", "is in the future"))
        if errors:
            raise Unprocessable("the treatment cannot be planned", errors=errors)

    def protocol(self, key: str, clinic: ClinicSettings) -> protocols.Protocol:
        """The pure-planning protocol for this clinic's locale, built once."""
        cached = self._protocols.get((key, clinic.locale))
        if cached is None:
            cached = self.settings.protocol(key, locale=clinic.locale)
            self._protocols[(key, clinic.locale)] = cached
        return cached

    def clinic_view(self, clinic_id: str) -> protocols.ClinicView:
        """The clinic settings a plan depends on (name, fallback locale, quiet hours)."""
        clinic = self.settings.clinics[clinic_id]
        return protocols.ClinicView(
            name=clinic.name, locale=clinic.locale, quiet_hours=clinic.quiet()
        )

    def plan_for(
        self,
        clinic_id: str,
        protocol_key: str,
        treatment: protocols.Treatment,
        recipient: protocols.Recipient,
    ) -> list[protocols.PlannedMessage]:
        """The plan of a protocol for a treatment and a recipient given as plain values."""
        return protocols.plan(
            self.protocol(protocol_key, self.settings.clinics[clinic_id]),
            treatment,
            recipient,
            self.clinic_view(clinic_id),
            default_expires_after=self.settings.scheduler.default_expires_after,
        )

    def prep_for(
        self,
        clinic_id: str,
        protocol_key: str,
        appointment: prep.Appointment,
        recipient: protocols.Recipient,
        *,
        now: datetime,
    ) -> list[protocols.PlannedMessage]:
        """The prep messages of a protocol for an appointment booked (or moved) at `now`.

        See `prep.plan_prep`: every occurrence comes back; `landed` "past" and "skipped" are
        recorded but not sent (`storage.message_rows.new_message` makes them so).
        """
        return prep.plan_prep(
            self.protocol(protocol_key, self.settings.clinics[clinic_id]),
            appointment,
            recipient,
            self.clinic_view(clinic_id),
            now=now,
            default_expires_after=self.settings.scheduler.default_expires_after,
        )


def plan_of(
    planner: Planner, clinic_id: str, treatment: Treatment, patient: Patient
) -> list[protocols.PlannedMessage]:
    """The stored treatment's plan for the patient as they are now (name, locale, zone)."""
    return planner.plan_for(
        clinic_id, treatment.protocol, treatment_for_plan(treatment), recipient(patient)
    )
