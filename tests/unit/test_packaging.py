"""The distribution's package list: pyproject.toml names every package folder, because folders
mapped to other import names (`envoy/` -> `sovereign_envoy`) rule out automatic discovery."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed() -> None:
    found = set()
    for name, folder in SETUPTOOLS["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(ROOT / folder).parts)))
    listed = set(SETUPTOOLS["packages"])
    assert not found - listed, "add these to `packages` under [tool.setuptools] in pyproject.toml"
    assert not listed - found, "these listed packages have no folder"


def test_the_gateway_files_exist_where_the_package_data_names_them() -> None:
    folder = ROOT / SETUPTOOLS["package-dir"]["sovereign_envoy"]
    for name in SETUPTOOLS["package-data"]["sovereign_envoy"]:
        assert (folder / name).is_file(), name
