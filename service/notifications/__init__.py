"""Notifications to clinic systems (contract §11): the outbox's deliverer, signed webhooks out."""
