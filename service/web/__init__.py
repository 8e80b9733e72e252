"""The aiohttp application: events in, read API, Twilio webhooks, operations."""
