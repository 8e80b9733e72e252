"""Notifications to clinic systems (SPEC §11): the deliverer of the outbox, signed webhooks out."""
