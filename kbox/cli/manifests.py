"""Reading manifests the way kubectl does: files, folders, `-`, multi-document
YAML or JSON, and `List` kinds, with errors naming the file and the line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from kbox.cli.registry import CliError

EXTENSIONS = (".yaml", ".yml", ".json")


def _files(path: str, base: str, recursive: bool) -> list[str]:
    if path == "-":
        return ["-"]
    p = Path(path) if os.path.isabs(path) else Path(base) / path
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(str(f) for f in p.glob(pattern) if f.suffix in EXTENSIONS and f.is_file())
    if not p.exists():
        raise CliError(f'the path "{path}" does not exist')
    return [str(p)]


def load(paths: list[str], base: str = ".", stdin: TextIO | None = None,
         recursive: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (source, object) for every object in every file."""
    for path in paths:
        for f in _files(path, base, recursive):
            text = (stdin or sys.stdin).read() if f == "-" else Path(f).read_text()
            name = "STDIN" if f == "-" else os.path.relpath(f, base) if not os.path.isabs(path) else f
            for obj in parse_documents(text, name):
                yield name, obj


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            docs = [json.loads(text)]
        else:
            docs = list(yaml.safe_load_all(text))
    except json.JSONDecodeError as e:
        raise CliError(f"error parsing {source}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")
    except yaml.YAMLError as e:
        raise CliError(f"error parsing {source}: error converting YAML to JSON: yaml: {yaml_error_text(e)}")
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            items = doc
        elif not isinstance(doc, dict):
            raise CliError(f"error parsing {source}: each document must be a mapping (an object), "
                           f"got {type(doc).__name__}")
        elif doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            items = doc["items"]
        else:
            items = [doc]
        for item in items:
            if not isinstance(item, dict):
                raise CliError(f"error parsing {source}: list items must be objects")
            if not item.get("kind"):
                raise CliError(f"error validating data from {source}: kind not set")
            if not item.get("apiVersion"):
                raise CliError(f"error validating data from {source}: apiVersion not set")
            out.append(item)
    return out


def yaml_error_text(e: yaml.YAMLError) -> str:
    """`line N: problem` worded and numbered as kubectl's YAML library (libyaml's port) words
    them: parser errors give the 0-based line of the problem, scanner errors the 1-based one."""
    mark = getattr(e, "problem_mark", None)
    problem = (getattr(e, "problem", None) or str(e)).strip()
    context = getattr(e, "context", None) or ""
    if problem.startswith("expected <block end>"):
        problem = ("did not find expected '-' indicator" if ("sequence" in context or "collection" in context)
                   else "did not find expected key")
    elif problem.startswith("expected ',' or ']'"):
        problem = "did not find expected ',' or ']'"
    elif problem.startswith("expected ',' or '}'"):
        problem = "did not find expected ',' or '}'"
    elif problem == "mapping values are not allowed here":
        problem = "mapping values are not allowed in this context"
    elif problem.startswith("found character") and "cannot start any token" in problem:
        problem = "found character that cannot start any token"
    elif problem.startswith("found unexpected end of stream"):
        problem = "found unexpected end of stream"
    if mark is None:
        return problem
    line = mark.line + 1 if isinstance(e, yaml.scanner.ScannerError) else mark.line
    return f"line {line}: {problem}"
