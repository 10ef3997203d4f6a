"""Slither gate: every High or Medium finding in the project's own contracts must be triaged.

The triage lives in docs/slither-triage.md, in a fenced ```triage block of
`detector: Contract.function` lines (or `detector: Contract` / `detector: Contract.stateVariable`
for findings that belong to no function). Findings are matched on detector and enclosing
function, never on line numbers, so edits that move code do not touch the triage.

How it runs:
- The contracts, hardhat.config.js and package.json are copied to a temporary directory (with
  node_modules linked) and compiled there with `npx hardhat compile --quiet`. That gives slither
  exactly one build-info for the current sources: the repo's own artifacts/build-info keeps stale
  build-infos from Hardhat's incremental builds (a deleted source in one of them makes
  crytic-compile fail with "Unknown file"), and it is never touched by this test.
- slither then reads that build-info (`--hardhat-ignore-compile`: it never looks for a native
  solc), with all detectors, without the repo's slither.config.json, and with
  `--show-ignored-findings`, so neither the config's exclusions nor inline
  `slither-disable` comments can hide a High or Medium finding from this gate.
- Only findings with an element in contracts/ outside contracts/test/ are gated; dependencies
  (node_modules/@openzeppelin) and test contracts are not.

Skips when the `slither` executable is not in the virtualenv's bin directory (the `SLITHER`
environment variable may name another one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import warnings
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRIAGE_DOC = ROOT / "docs" / "slither-triage.md"
CONFIG_FILE = ROOT / "slither.config.json"
GATED_IMPACTS = ("High", "Medium")

_TRIAGE_BLOCK = re.compile(r"^```triage[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_TRIAGE_LINE = re.compile(
    r"^(?P<detector>[a-z0-9]+(?:-[a-z0-9]+)*)\s*:\s*"
    r"(?P<target>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)?)$"
)


def _find_slither() -> Path | None:
    override = os.environ.get("SLITHER")
    candidates = [Path(override)] if override else []
    candidates += [
        Path(sysconfig.get_path("scripts")) / "slither",
        ROOT / ".venv" / "bin" / "slither",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


SLITHER = _find_slither()
needs_slither = pytest.mark.skipif(
    SLITHER is None,
    reason="slither is not installed in the virtualenv's bin directory (see 'Installing' in "
    "docs/slither-triage.md); set SLITHER to the path of another slither executable",
)


def parse_triage(text: str) -> set[tuple[str, str]]:
    """(detector, target) pairs from the ```triage block(s) of the triage document."""
    blocks = _TRIAGE_BLOCK.findall(text)
    if not blocks:
        raise ValueError("no ```triage block in docs/slither-triage.md")
    entries: set[tuple[str, str]] = set()
    for block in blocks:
        for raw in block.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _TRIAGE_LINE.match(line)
            if m is None:
                raise ValueError(
                    f"malformed triage line {raw!r}: want `detector: Contract.function`"
                )
            entry = (m["detector"], m["target"])
            if entry in entries:
                raise ValueError(f"duplicate triage line {raw!r}")
            entries.add(entry)
    return entries


def _in_scope(path: str | None) -> bool:
    if not path:
        return False
    parts = PurePosixPath(path.replace(os.sep, "/")).parts
    return parts[:1] == ("contracts",) and parts[:2] != ("contracts", "test")


def _owner(element: dict) -> str:
    """`Contract.function` for an element inside a function (the function itself, one of its
    nodes or locals), `Contract.name` for other contract members, `Contract` for a contract."""
    kind = element.get("type")
    name = element.get("name", "?")
    parent = (element.get("type_specific_fields") or {}).get("parent") or {}
    if kind == "contract":
        return name
    if kind == "function":
        return f"{parent['name']}.{name}" if parent.get("type") == "contract" else name
    if parent.get("type") == "function":
        return _owner(parent)
    if parent.get("type") == "contract":
        return f"{parent['name']}.{name}"
    return name


def gated_findings(results: list[dict]) -> list[dict]:
    """High/Medium detector results with an element in the project's non-test contracts."""
    out = []
    for r in results:
        if r.get("impact") not in GATED_IMPACTS:
            continue
        scoped = [
            e
            for e in r.get("elements", [])
            if _in_scope((e.get("source_mapping") or {}).get("filename_relative"))
        ]
        if not scoped:
            continue
        first_line = (
            r.get("description", "").strip().splitlines()[0] if r.get("description") else ""
        )
        out.append(
            {
                "detector": r["check"],
                "target": _owner(scoped[0]),
                "impact": r["impact"],
                "text": first_line,
            }
        )
    return out


def _run(cmd: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(ROOT / "node_modules" / ".bin"), env.get("PATH", "")])
    env.setdefault("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def slither_results(tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("slither")
    shutil.copytree(ROOT / "contracts", work / "contracts")
    for name in ("package.json", "hardhat.config.js", "hardhat.config.ts", "hardhat.config.cjs"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, work / name)
    (work / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)

    compiled = _run(["npx", "hardhat", "compile", "--quiet"], work, timeout=600)
    assert compiled.returncode == 0, (
        f"hardhat compile failed:\n{compiled.stdout}\n{compiled.stderr}"
    )

    defaults = work / "slither-defaults.json"  # all detectors: not the repo's slither.config.json
    defaults.write_text("{}\n")
    out = work / "slither.json"
    ran = _run(
        [
            str(SLITHER),
            ".",
            "--hardhat-ignore-compile",
            "--config-file",
            str(defaults),
            "--show-ignored-findings",
            "--disable-color",
            "--json",
            str(out),
        ],
        work,
        timeout=600,
    )
    # slither exits non-zero whenever it reports anything; success is judged from the JSON
    assert out.exists(), f"slither wrote no JSON (exit {ran.returncode}):\n{ran.stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert report.get("success"), f"slither failed: {report.get('error')}\n{ran.stderr[-4000:]}"
    return (report.get("results") or {}).get("detectors") or []


def test_triage_block_is_well_formed():
    entries = parse_triage(TRIAGE_DOC.read_text(encoding="utf-8"))
    assert entries, "the ```triage block is empty"


@needs_slither
def test_triage_names_real_detectors_and_config_keeps_high_and_medium():
    listed = _run([str(SLITHER), "--list-detectors-json"], ROOT, timeout=120)
    assert listed.returncode == 0, listed.stderr
    impact = {d["check"]: d["impact"] for d in json.loads(listed.stdout)}

    unknown = sorted(
        d for d, _ in parse_triage(TRIAGE_DOC.read_text(encoding="utf-8")) if d not in impact
    )
    assert not unknown, f"triage names detectors slither does not have: {unknown}"

    # A human running `slither .` with the repo's config must still see every High and Medium.
    config = json.loads(CONFIG_FILE.read_text(encoding="utf-8"))
    assert not config.get("exclude_high") and not config.get("exclude_medium"), config
    assert config.get("detectors_to_run", "all") == "all", (
        "slither.config.json narrows detectors_to_run"
    )
    excluded = [
        d.strip() for d in (config.get("detectors_to_exclude") or "").split(",") if d.strip()
    ]
    hidden = sorted(d for d in excluded if impact.get(d) in GATED_IMPACTS)
    assert not hidden, f"slither.config.json excludes High/Medium detectors: {hidden}"
    # slither drops a finding when any of its elements matches a filter_paths regex
    sources = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "contracts").rglob("*.sol")
        if _in_scope(p.relative_to(ROOT).as_posix())
    ]
    patterns = [p for p in (config.get("filter_paths") or "").split(",") if p]
    filtered = sorted(s for s in sources for p in patterns if re.search(p, s))
    assert not filtered, f"slither.config.json filter_paths hides project sources: {filtered}"
    assert not config.get("include_paths"), "slither.config.json narrows include_paths"


@needs_slither
def test_high_and_medium_findings_are_triaged(slither_results):
    triaged = parse_triage(TRIAGE_DOC.read_text(encoding="utf-8"))
    findings = gated_findings(slither_results)

    untriaged = sorted(
        {
            (f["impact"], f["detector"], f["target"], f["text"])
            for f in findings
            if (f["detector"], f["target"]) not in triaged
        }
    )
    stale = sorted(triaged - {(f["detector"], f["target"]) for f in findings})
    if stale:
        warnings.warn(
            "docs/slither-triage.md lists findings slither no longer reports: "
            + ", ".join(f"{d}: {t}" for d, t in stale),
            stacklevel=1,
        )
    assert not untriaged, (
        "High/Medium slither findings in contracts/ not triaged in docs/slither-triage.md "
        "(fix the code, or add a `detector: Contract.function` line with the reasoning):\n"
        + "\n".join(f"  [{imp}] {det}: {tgt}  -- {text}" for imp, det, tgt, text in untriaged)
    )
