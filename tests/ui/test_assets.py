"""Everything the pages load ships inside the package: pinned, unchanged, with its licence."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import hypertool.instrumentation.ui as ui_package

UI = Path(ui_package.__file__).parent
VENDOR = UI / "static" / "vendor" / "uplot-1.6.32"
PINNED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


def test_vendored_uplot_is_the_pinned_release_with_its_licence() -> None:
    for name, digest in PINNED.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
        assert digest in (VENDOR / "README.md").read_text()
    assert (
        (VENDOR / "uPlot.iife.min.js")
        .read_text()
        .startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    )
    assert "MIT License" in (VENDOR / "LICENSE").read_text()


def test_pages_load_only_the_packages_own_files() -> None:
    base = (UI / "templates" / "base.html").read_text()
    urls = re.findall(r'(?:src|href)="([^"]+)"', base)
    assets = [url for url in urls if url.startswith("/static/")]
    assert len(assets) >= 5
    for url in assets:
        assert (UI / url.removeprefix("/")).is_file(), url
    for template in (UI / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r'(?:src|href|action)="(?:https?:)?//', text), template.name
        assert "<style" not in text and " style=" not in text, template.name  # CSP: no inline
        assert not re.search(r"<script(?![^>]*(?:src=|application/json))", text), template.name
    for own in ("charts.js", "live.js", "app.css"):
        text = (UI / "static" / own).read_text()
        assert "http://" not in text and "https://" not in text, own
