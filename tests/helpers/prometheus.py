"""One sample's value read from the Prometheus text format, as /metrics writes it."""

from __future__ import annotations

import re


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (labels in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if (
            match
            and match[1] == name
            and dict(re.findall(r'(\w+)="([^"]*)"', match[2] or "")) == labels
        ):
            return float(match[3])
    return None
