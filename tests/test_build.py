"""The `sam build` artifact: self-contained, it serves API Gateway events with nothing else on sys.path.

The test runs `sam build` itself, so the artifact is the one the current tree makes, then imports the
handler in a fresh interpreter (-I -S: no site-packages, no PYTHONPATH) whose sys.path holds only the
standard library and the artifact. The artifact holds Lambda's wheels (Python 3.13, arm64): this proves
that what the handler imports is pure Python, and the script ships inside the package. A fresh clone
with no .venv builds too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.servers import RedisServer
from flipper.core.connection import script_source
from tests.conftest import ROOT, SAM
from tests.lambda_events import KINDS, request_event

# Runs in the isolated interpreter: import the handler from the artifact, serve the events from stdin.
CHILD = """
import json, sys, sysconfig
artifact, out = sys.argv[1], sys.argv[2]
stdlib = sysconfig.get_paths()["stdlib"]
sys.path[:] = [path for path in sys.path if path.startswith(stdlib)] + [artifact]

class Context:
    function_name = "flipper"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:flipper"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000000"

from flipper import handler

from flipper.core import connection

responses = [handler.handler(event, Context()) for event in json.load(sys.stdin)]
files = sorted({module.__file__ for module in list(sys.modules.values()) if getattr(module, "__file__", None)})
script = connection.script_source()
json.dump({"responses": responses, "files": files, "path": sys.path, "script": script}, open(out, "w"))
"""


@pytest.fixture
def prefixed_flags(redis_server: RedisServer) -> Iterator[None]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.sadd("{flipper}:version:v1:positive", "feature_A", "feature_B")
    client.sadd("{flipper}:group:g1:negative", "feature_B")
    yield
    client.close()


def serve_from_artifact(
    artifact: Path, tmp_path: Path, environ: dict[str, str], events: list[Any], python: str = sys.executable
) -> dict[str, Any]:
    out = tmp_path / "out.json"
    subprocess.run(
        [python, "-I", "-S", "-B", "-c", CHILD, str(artifact), str(out)],
        input=json.dumps(events),
        text=True,
        check=True,
        capture_output=True,
        env={"PATH": os.environ["PATH"], **environ},
        timeout=60,
    )
    return json.loads(out.read_text())


def test_artifact_serves_every_event_kind_on_its_own(
    artifact: Path, tmp_path: Path, redis_server: RedisServer, prefixed_flags: None
) -> None:
    query = [("version", "v1"), ("group", "g1")]
    events = [
        *(request_event(kind, "/", query) for kind in KINDS),
        request_event("rest-api", "/health"),
        {
            "flipper_admin": {
                "operation": "change",
                "arguments": {
                    "operation": "enable",
                    "feature": "special_g1_feature",
                    "entity": "group:g1",
                    "actor": "t",
                },
            }
        },
        request_event("http-api", "/", query),
    ]
    result = serve_from_artifact(
        artifact, tmp_path, {"REDIS_URL": redis_server.url, "FLIPPER_KEY_PREFIX": "{flipper}:"}, events
    )

    *features, health, admin, after_admin = result["responses"]
    assert [(r["statusCode"], r["body"]) for r in features] == [(200, '{"features": ["feature_A"]}')] * len(KINDS)
    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok"})
    assert admin["result"]["changes"] == [["group:g1:positive", "special_g1_feature", "", "1"]]
    assert after_admin["body"] == '{"features": ["feature_A", "special_g1_feature"]}'
    # Nothing came from outside the standard library and the artifact.
    outside = [file for file in result["files"] if not file.startswith(str(artifact)) and "site-packages" in file]
    assert outside == []
    assert str(ROOT / "functions") not in result["path"]
    # An annotation only: the handler imports powertools' LambdaContext at no point, cold or serving.
    assert [file for file in result["files"] if "aws_lambda_powertools/utilities/typing" in file] == []
    assert result["script"] == script_source()
    assert {path.name for path in (artifact / "flipper" / "lua").iterdir()} == {
        path.name for path in (ROOT / "lua").glob("*.lua")
    }


def test_sam_build_works_on_a_fresh_clone_with_nothing_run_before(
    tmp_path: Path, redis_server: RedisServer, prefixed_flags: None
) -> None:
    """The first command a SAM user types: no `make install-develop`, no .venv; any python3 >= 3.11 with pip
    on PATH builds, and `sam local start-api` then gets as far as wanting Docker."""
    clone = tmp_path / "clone"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head.stdout.strip()], cwd=clone, check=True)
    # Plus the uncommitted changes to tracked files, so the test builds the tree being worked on.
    changes = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["git", "apply", "--allow-empty"], cwd=clone, input=changes.stdout, check=True)
    # Without this checkout's .venv on PATH, as on a newcomer's machine.
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not d.startswith(str(ROOT)))
    environ = os.environ | {"SAM_CLI_TELEMETRY": "0", "PATH": path}
    build = subprocess.run([str(SAM), "build"], cwd=clone, capture_output=True, text=True, env=environ, timeout=110)
    assert build.returncode == 0, build.stderr
    assert not (clone / ".venv").exists()

    event = request_event("http-api", "/", [("version", "v1"), ("group", "g1")])
    result = serve_from_artifact(
        clone / ".aws-sam" / "build" / "FlipperFunction",
        tmp_path,
        {"REDIS_URL": redis_server.url, "FLIPPER_KEY_PREFIX": "{flipper}:"},
        [event],
    )
    assert [(r["statusCode"], r["body"]) for r in result["responses"]] == [(200, '{"features": ["feature_A"]}')]

    local = subprocess.run(
        [str(SAM), "local", "start-api"], cwd=clone, capture_output=True, text=True, env=environ, timeout=60
    )
    assert "requires a container runtime" in local.stdout + local.stderr


def test_artifact_holds_the_dependencies_and_no_development_code_or_foreign_bytecode(artifact: Path) -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ]", dependency)[0].replace("-", "_").lower() for dependency in dependencies}
    installed = {path.name.split("-")[0].lower() for path in artifact.glob("*.dist-info")}
    assert names <= installed
    # The dev server (uvicorn), `make invoke`'s driver, the operator's command (click, PyYAML, boto3) and
    # console are not the function's.
    development = ["serve/devserver", "serve/devinvoke", "core/devstore", "operate/cli", "operate/flagsfile"]
    for module in [*development, "operate/backends", "operate/console", "operate/text"]:
        assert (ROOT / "functions" / "flipper" / f"{module}.py").exists(), module  # the list is up to date
        assert not (artifact / "flipper" / f"{module}.py").exists(), module
    shipped = {path.name for path in (artifact / "flipper" / "operate").iterdir()}
    assert shipped <= {"__init__.py", "admin.py", "__pycache__"}
    # Bytecode of the build machine's Python would be dead weight; Lambda's own (3.13) is welcome.
    assert {path.suffixes[-2] for path in artifact.rglob("*.pyc")} <= {".cpython-313"}


def python_313() -> str | None:
    """A Python 3.13, Lambda's: on PATH, or one of pyenv's."""
    candidates = [shutil.which("python3.13"), *map(str, Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))]
    for candidate in filter(None, candidates):
        version = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        if version.stdout.strip() == b"(3, 13)":
            return candidate
    return None


def build_function(artifact: Path, cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What sam build runs; from `cwd`, where the recipe leaves its requirements file."""
    return subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "build-FlipperFunction", f"ARTIFACTS_DIR={artifact}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environ,
        timeout=110,
    )


def test_with_a_python_313_at_hand_the_artifact_carries_its_bytecode(
    tmp_path: Path, redis_server: RedisServer, prefixed_flags: None
) -> None:
    """Lambda cannot write bytecode: compiled at build time, by Lambda's Python, a cold start compiles nothing."""
    python = python_313()
    if python is None:
        pytest.skip("no Python 3.13 here (python3.13 on PATH, or pyenv's)")
    artifact = tmp_path / "artifact"
    build = build_function(artifact, tmp_path, os.environ | {"BYTECODE_PYTHON": python})
    assert build.returncode == 0, build.stderr

    sources = list((artifact / "flipper").rglob("*.py"))
    compiled = [source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc" for source in sources]
    # PEP 552 flags: 0b01, hash-based and unchecked: used as is, whatever file times Lambda's zip keeps.
    assert [int.from_bytes(pyc.read_bytes()[4:8], "little") for pyc in compiled] == [0b01] * len(sources)
    event = request_event("http-api", "/", [("version", "v1"), ("group", "g1")])
    environ = {"REDIS_URL": redis_server.url, "FLIPPER_KEY_PREFIX": "{flipper}:"}
    result = serve_from_artifact(artifact, tmp_path, environ, [event], python=python)
    assert [(r["statusCode"], r["body"]) for r in result["responses"]] == [(200, '{"features": ["feature_A"]}')]


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def candidates_environ(tmp_path: Path, on_path: Path) -> dict[str, str]:
    """A machine whose `python3.13` on PATH is `on_path`, whose pyenv root is tmp_path/pyenv and whose home
    (uv's pythons) is empty; no BYTECODE_PYTHON."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.13").symlink_to(on_path)
    environ = {name: value for name, value in os.environ.items() if name != "BYTECODE_PYTHON"}
    path = os.pathsep.join([str(tmp_path / "bin"), environ["PATH"]])
    return environ | {"PATH": path, "PYENV_ROOT": str(tmp_path / "pyenv"), "HOME": str(tmp_path / "home")}


# A pyenv shim for a version that is installed but not selected, as pyenv's own message says it.
SHIM = "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"


def test_the_build_finds_a_python_313_behind_a_failing_shim_and_says_which(tmp_path: Path) -> None:
    python = python_313()
    if python is None:
        pytest.skip("no Python 3.13 here (python3.13 on PATH, or pyenv's)")
    environ = candidates_environ(tmp_path, executable(tmp_path / "shim", SHIM))
    pyenvs = tmp_path / "pyenv" / "versions" / "3.13.99" / "bin" / "python3.13"
    pyenvs.parent.mkdir(parents=True)
    pyenvs.symlink_to(python)
    artifact = tmp_path / "artifact"
    build = build_function(artifact, tmp_path, environ)
    assert build.returncode == 0, build.stderr
    assert f"bytecode for Lambda's Python 3.13, compiled by {pyenvs} (3.13." in build.stdout
    assert (artifact / "flipper" / "serve" / "__pycache__" / "app.cpython-313.pyc").exists()


def test_with_no_working_python_313_the_build_says_so_once_and_ships_no_bytecode(tmp_path: Path) -> None:
    # This machine's Python (3.11 or 3.12) answers to python3.13 on PATH; pyenv's 3.13 is a failing shim.
    others = [Path(p) for p in ("/usr/local/bin/python3.13", "/usr/bin/python3.13") if Path(p).exists()]
    if others or shutil.which("uv"):
        pytest.skip(f"this machine has a Python 3.13 the build would find: {others or 'uv'}")
    environ = candidates_environ(tmp_path, Path(sys.executable))
    executable(tmp_path / "pyenv" / "versions" / "3.13.99" / "bin" / "python3.13", SHIM)
    artifact = tmp_path / "artifact"
    build = build_function(artifact, tmp_path, environ)
    assert build.returncode == 0, build.stderr
    assert build.stdout.count("NO BYTECODE: no working Python 3.13") == 1
    assert "about 3x the import" in build.stdout
    assert list(artifact.rglob("*.pyc")) == []


def test_a_bytecode_python_given_that_does_not_work_fails_the_build(tmp_path: Path) -> None:
    environ = os.environ | {"BYTECODE_PYTHON": str(executable(tmp_path / "shim", SHIM))}
    build = build_function(tmp_path / "artifact", tmp_path, environ)
    assert build.returncode != 0
    assert f"BYTECODE_PYTHON={tmp_path / 'shim'} is not a working Python 3.13" in build.stderr


def make_invoke(event: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`make invoke EVENT=...` on the artifact the session built, as a user runs it from the checkout."""
    return subprocess.run(
        ["make", "--no-print-directory", "invoke", f"EVENT={event}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={name: value for name, value in os.environ.items() if name != "REDIS_URL"} | environ,
        timeout=60,
    )


def test_make_invoke_prints_the_built_handlers_response_alone_on_stdout(
    artifact: Path, tmp_path: Path, redis_server: RedisServer, prefixed_flags: None
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(request_event("http-api", "/", [("version", "v1"), ("group", "g1")])))
    result = make_invoke(event, {"REDIS_URL": redis_server.url, "FLIPPER_KEY_PREFIX": "{flipper}:"})
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)  # nothing else on stdout: the logs and metrics are on stderr
    assert (response["statusCode"], response["body"]) == (200, '{"features": ["feature_A"]}')
    assert '"ColdStart"' in result.stderr


def test_make_invoke_runs_the_documented_event_on_a_fresh_embedded_store(artifact: Path, tmp_path: Path) -> None:
    # No REDIS_URL, and no dev server recorded in this XDG_RUNTIME_DIR: the store is a new, empty one.
    result = make_invoke(Path("tests/events/http-api.json"), {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "a fresh embedded store at redis://127.0.0.1:" in result.stderr
    # sam's generated event carries sam's example query, which Flipper refuses by name.
    response = json.loads(result.stdout)
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {
        "error": "unknown query parameter 'parameter1'; expected version, group or user"
    }


def test_make_invoke_runs_the_artifact_not_the_checkout(artifact: Path, tmp_path: Path) -> None:
    """The handler is the artifact's copy, not the checkout's: a copy of the artifact whose handler.py is
    changed answers what the change says."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps(request_event("http-api", "/health")))
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy, ignore=shutil.ignore_patterns("__pycache__"))
    source = copy / "flipper" / "handler.py"
    source.write_text(source.read_text() + "\nhandler = lambda event, context: {'from': 'the artifact'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "flipper.serve.devinvoke", str(event), "--artifact", str(copy)],
        capture_output=True,
        text=True,
        env=os.environ | {"XDG_RUNTIME_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"from": "the artifact"}
