"""Delivery: timers, dispatch, send outcomes, the return path, SMS senders."""
