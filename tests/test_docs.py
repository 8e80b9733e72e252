"""The docs site: it builds with `mkdocs build --strict` (a broken link, nav entry or anchor
fails it), its configuration reference names every field of the settings models, its pages
name no machine path, and the signing and verifying code it prints works."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import typing
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from standardwebhooks import Webhook

from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Pages other branches of issue 27 add; listed in the nav before they land (mkdocs.yml).


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _hook() -> ModuleType:
    path = DOCS / "hooks" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    done = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")

    assert done.returncode == 0, done.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "AFTERCARE_SCHEDULER__CLAIM_LEASE" in reference
    assert (tmp_path / "site" / "contract" / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    shutil.copy(ROOT / "config.example.toml", tmp_path)
    with (tmp_path / "docs" / "design.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the queue](no-such-page.md) and [this](events.md#no-such-anchor).\n")

    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model reachable from `model`'s fields, through unions, lists and dicts."""
    found: set[type[BaseModel]] = set()

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in found:
                found.add(tp)
                for field in tp.model_fields.values():
                    visit(field.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    for field in model.model_fields.values():
        visit(field.annotation)
    return found


def _sections(page: str) -> list[set[str]]:
    """The keys each `## ` section of the reference lists in its table."""
    out: list[set[str]] = []
    for chunk in page.split("\n## ")[1:]:
        out.append(set(re.findall(r"^\| `([a-z0-9_]+)`", chunk, flags=re.M)))
    return out


def test_the_reference_lists_every_field_of_every_settings_model() -> None:
    sections = _sections(_hook().render())
    models = _models(Settings)

    assert len(models) >= 12  # server … retention, clinics, quiet hours, protocols, steps, …
    for model in models:
        assert set(model.model_fields) in sections, f"{model.__name__} is not in the reference"
    plain = {
        name
        for name, field in Settings.model_fields.items()
        if not any(m in models for m in _flatten(field.annotation))
    }
    assert plain <= set().union(*sections)
    assert len(sections) == len(models) + (1 if plain else 0)


def _flatten(tp: Any) -> list[Any]:
    return [tp, *(x for arg in typing.get_args(tp) for x in _flatten(arg))]


def test_the_reference_shows_defaults_limits_and_environment_names() -> None:
    page = _hook().render()

    row = next(line for line in page.splitlines() if line.startswith("| `max_concurrent_sends`"))
    assert "`AFTERCARE_SCHEDULER__MAX_CONCURRENT_SENDS`" in row
    assert "| `64` |" in row and "≤ 1,000" in row
    assert "## `[[protocols.<key>.steps]]`" in page
    assert "`AFTERCARE_CLINICS__<ID>__FROM_NUMBER`" in page


def test_each_description_written_beside_the_reference_names_a_field() -> None:
    hook = _hook()
    paths = {row.toml for section in hook.sections() for row in hook.rows(section, {})}

    assert set(hook.DESCRIPTIONS) - paths == set()


def test_the_nav_names_pages_that_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return [p for value in node.values() for p in pages(value)]

    listed = pages(config["nav"])
    generated = {"reference.md"}
    missing = [p for p in listed if not (DOCS / p).exists() and p not in generated]
    assert missing == []
    assert len(listed) == len(set(listed))


def test_the_readme_links_to_docs_pages_and_anchors_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", readme)

    assert len(links) > 20
    for page, anchor in links:
        assert (ROOT / page).exists(), page
        if anchor:
            headings = (ROOT / page).read_text(encoding="utf-8")
            slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", headings, flags=re.M)}
            assert anchor in slugs, f"{page}#{anchor}"


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text)


def test_no_machine_path_or_outside_document_in_readme_and_docs() -> None:
    texts = [ROOT / "README.md", *DOCS.glob("*.md")]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for needle in ("/work/", "../shared", "SPEC.md", "DESIGN.md", "SPEC §"):
            assert needle not in text, f"{path.name} names {needle!r}"
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 200


def _block(page: str, first: str, last: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(first)
    return text[start : text.index(last, start) + len(last)]


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@needs_openssl
def test_the_printed_shell_signature_verifies_with_the_library() -> None:
    lines = _block("events.md", "key=$(printf", "-binary | base64)")
    script = f'secret={SECRET}; id=evt_1; ts=1796000000; body=\'{{"a": 1}}\'\n{lines}\necho "$sig"'

    sig = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)

    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1796000000"}
    headers["webhook-signature"] = "v1," + sig.stdout.strip()
    expected = Webhook(SECRET).sign("evt_1", datetime.fromtimestamp(1796000000, UTC), '{"a": 1}')
    assert headers["webhook-signature"] == expected


@needs_openssl
@pytest.mark.parametrize(("body", "verdict"), [("as signed", "valid"), ("tampered", "forged")])
def test_the_printed_openssl_check_verifies_a_notification(
    tmp_path: Path, body: str, verdict: str
) -> None:
    check = _block("notifications.md", "secret=whsec_", "\nfi")
    signed = '{"type": "patient.opted_out", "data": {"phone": "•••••••0123"}}'
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("msg_1", now, signed)
    (tmp_path / "body.json").write_text(
        signed if body == "as signed" else signed.replace("0123", "0124"), encoding="utf-8"
    )
    script = f"id=msg_1; ts={int(now.timestamp())}; sig='v1,other= {signature}'\n{check}"

    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == verdict
