"""ledger.chain.compiler must hand solc exactly what Hardhat hands it, and so get the same code.

Identical runtime bytecode is what matters on chain; identical standard-JSON input is checked
too because it is the cause (the metadata hash covers every source and setting) and because a
mismatch there is far easier to read than two differing hex blobs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import solc_input, solc_run
from ledger.chain.compiler import (
    CompilationError,
    CompiledContracts,
    compile_contracts,
    hardhat_artifacts,
    project_root,
    standard_json_input,
)

ROOT = project_root()
ABI_VECTOR = Path(__file__).resolve().parent / "vectors" / "abi.json"
# The contracts whose external interface clients depend on: any change to a function selector,
# event topic, error selector, parameter name or struct layout shows up in abi_signatures().
ABI_CONTRACTS = ("CoLendingLedger", "ConsortiumCouncil", "ConsortiumRegistry", "LoanServicing")

# Asks Hardhat's own subtasks for the input of a full, uncached compile: the same chain of
# subtasks `hardhat compile` runs, minus the cache filter and the compiler.
_HARDHAT_INPUTS_JS = """
const rq = require("module").createRequire(process.cwd() + "/");
const hre = rq("hardhat");
const t = rq("hardhat/builtin-tasks/task-names");
(async () => {
  const rootPath = hre.config.paths.root;
  const sourcePaths = await hre.run(t.TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS, {
    sourcePath: hre.config.paths.sources,
  });
  const sourceNames = await hre.run(t.TASK_COMPILE_SOLIDITY_GET_SOURCE_NAMES, {
    rootPath,
    sourcePaths,
  });
  const dependencyGraph = await hre.run(t.TASK_COMPILE_SOLIDITY_GET_DEPENDENCY_GRAPH, {
    rootPath,
    sourceNames,
  });
  const { jobs, errors } = await hre.run(t.TASK_COMPILE_SOLIDITY_GET_COMPILATION_JOBS, {
    dependencyGraph,
  });
  if (errors.length > 0) throw new Error(JSON.stringify(errors));
  const merged = await hre.run(t.TASK_COMPILE_SOLIDITY_MERGE_COMPILATION_JOBS, {
    compilationJobs: jobs,
  });
  const inputs = [];
  for (const compilationJob of merged) {
    const input = await hre.run(t.TASK_COMPILE_SOLIDITY_GET_COMPILER_INPUT, { compilationJob });
    inputs.push(JSON.stringify(input));
  }
  process.stdout.write(JSON.stringify(inputs));
})().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
"""

# Exercises the resolver: nested and test/ directories, ./ and ../ imports, every import form,
# imports hidden in comments and strings, a relative import through node_modules, OpenZeppelin,
# and file names whose order differs between localeCompare and a plain byte sort. (Not names
# that differ only in case: Hardhat maps both to whichever readdir() lists first.)
_SAMPLE_SOURCES = {
    "contracts/Vault.sol": """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import "./lib/Math2.sol";
import * as Types from './lib/types/Types.sol';
import {Ownable as Owned} from "@openzeppelin/contracts/access/Ownable.sol";
import "../node_modules/@openzeppelin/contracts/utils/Context.sol";
/* import "./Missing.sol"; */
// import "./AlsoMissing.sol";

contract Vault is EIP712, Owned {
    string public constant NOTE = "import \\"./NotAnImport.sol\\";";
    constructor() EIP712("Vault", "1") Owned(msg.sender) {}
    function cap(uint256 a) external pure returns (uint256) { return Math2.min(a, 10); }
}
""",
    "contracts/lib/Math2.sol": """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
import "./types/Types.sol";
library Math2 { function min(uint256 a, uint256 b) internal pure returns (uint256) {
    return a < b ? a : b; } }
""",
    "contracts/lib/types/Types.sol": """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
struct Position { uint256 amount; }
""",
    "contracts/test/MockVault.sol": """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
import {Vault} from "../Vault.sol";
import "contracts/lib/Math2.sol";
contract MockVault is Vault {}
""",
    "contracts/a_b.sol": "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.28;\n",
    "contracts/aB.sol": "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.28;\n",
    "contracts/Ac.sol": "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.28;\n",
    "contracts/a-c.sol": "// SPDX-License-Identifier: Apache-2.0\r\npragma solidity 0.8.28;\r\n",
}


def _node_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{root / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], root: Path) -> str:
    done = subprocess.run(
        args, cwd=root, env=_node_env(root), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed in {root}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _hardhat_inputs(root: Path) -> list[str]:
    inputs: list[str] = json.loads(_run(["node", "-e", _HARDHAT_INPUTS_JS], root))
    return inputs


def _scratch_project(tmp_path: Path, sources: dict[str, str] | None = None) -> Path:
    """A project root in tmp_path: the real contracts/ unless `sources` replaces them."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(ROOT / "hardhat.config.js", root)
    (root / "node_modules").symlink_to(ROOT / "node_modules")
    if sources is None:
        shutil.copytree(ROOT / "contracts", root / "contracts")
    else:
        (root / "contracts").mkdir()
        shutil.copy2(ROOT / solc_input.COMPILER_CONFIG, root / solc_input.COMPILER_CONFIG)
        for name, content in sources.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content.encode())
    return root


def _assert_same_input(root: Path) -> None:
    ours = standard_json_input(root)
    theirs = _hardhat_inputs(root)
    if not ours["sources"]:
        assert theirs == []
        return
    assert len(theirs) == 1, "Hardhat split the sources into several compilation jobs"
    hardhat = json.loads(theirs[0])
    # Readable failures first; the byte comparison below is the real requirement.
    assert list(ours["sources"]) == list(hardhat["sources"])
    assert ours["settings"] == hardhat["settings"]
    for name, source in hardhat["sources"].items():
        assert ours["sources"][name] == source, name
    assert json.dumps(ours, separators=(",", ":"), ensure_ascii=False) == theirs[0]


@pytest.fixture(scope="module")
def hardhat_build() -> dict[str, str]:
    _run(["npx", "--no-install", "hardhat", "compile", "--quiet"], ROOT)
    return hardhat_artifacts(ROOT)


@pytest.fixture(scope="module")
def python_build() -> CompiledContracts:
    return compile_contracts(ROOT, use_cache=False)


def test_input_is_byte_for_byte_hardhats() -> None:
    _assert_same_input(ROOT)


def test_resolver_edge_cases_match_hardhat(tmp_path: Path) -> None:
    root = _scratch_project(tmp_path, _SAMPLE_SOURCES)
    _assert_same_input(root)
    names = list(standard_json_input(root)["sources"])
    assert "@openzeppelin/contracts/utils/Context.sol" in names
    assert not any("Missing" in n or "NotAnImport" in n for n in names)


def test_runtime_bytecode_matches_hardhat(
    hardhat_build: dict[str, str], python_build: CompiledContracts
) -> None:
    ours = python_build.project()
    assert sorted(ours) == sorted(hardhat_build)
    for name, contract in ours.items():
        assert contract.deployed_bytecode == hardhat_build[name], name
        if contract.deployable:
            assert len(contract.deployed_bytecode) > 2, f"{name} has no runtime code"
        assert contract.abi == _hardhat_artifact(name)["abi"], name


def test_build_info_settings_match(hardhat_build: dict[str, str]) -> None:
    # Only settings: an older build-info kept for unchanged files may hold outdated copies
    # of other sources, so comparing its sources would fail for no real reason.
    _, settings = solc_input.load_compiler_config(ROOT)
    for path in (ROOT / "artifacts" / "build-info").glob("*.json"):
        assert json.loads(path.read_text())["input"]["settings"] == settings, path.name


def _hardhat_artifact(name: str) -> dict[str, object]:
    (path,) = (ROOT / "artifacts" / "contracts").rglob(f"{name}.json")
    artifact: dict[str, object] = json.loads(path.read_text())
    return artifact


def test_second_compile_comes_from_cache(
    python_build: CompiledContracts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(solc_run, "run_solc", _no_compiler)
    cached = compile_contracts(ROOT)
    assert cached.input_hash == python_build.input_hash
    assert cached.by_fqn == python_build.by_fqn


def test_changed_source_is_recompiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _scratch_project(
        tmp_path, {"contracts/One.sol": "pragma solidity 0.8.28;\ncontract One {}\n"}
    )
    first = compile_contracts(root)
    runtime = first["One"].deployed_bytecode
    assert runtime.startswith("0x") and len(runtime) > 2
    monkeypatch.setattr(solc_run, "run_solc", _no_compiler)
    assert compile_contracts(root).input_hash == first.input_hash
    with (root / "contracts" / "One.sol").open("a") as f:
        f.write("// edited\n")
    with pytest.raises(AssertionError, match="compiler was invoked"):
        compile_contracts(root)


def _no_compiler(*_args: object) -> dict[str, object]:
    raise AssertionError("compiler was invoked")


def test_syntax_error_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _scratch_project(tmp_path)
    broken = root / "contracts" / "test" / "Broken.sol"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text("pragma solidity 0.8.28;\ncontract Broken { uint256 x = 1 }\n")
    monkeypatch.setenv(solc_input.ROOT_ENV_VAR, str(root))
    with pytest.raises(CompilationError) as excinfo:
        compile_contracts()
    assert "contracts/test/Broken.sol" in excinfo.value.files
    assert "contracts/test/Broken.sol:2" in str(excinfo.value)


def test_unresolvable_import_names_the_file(tmp_path: Path) -> None:
    root = _scratch_project(
        tmp_path, {"contracts/A.sol": 'pragma solidity 0.8.28;\nimport "./lib/Nope.sol";\n'}
    )
    with pytest.raises(CompilationError, match=r"contracts/A\.sol: cannot resolve import"):
        standard_json_input(root)


def test_names_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    pragma = "pragma solidity 0.8.28;\n"
    root = _scratch_project(tmp_path, {"contracts/Pool.sol": pragma, "contracts/pool.sol": pragma})
    with pytest.raises(CompilationError, match="differ only in case"):
        standard_json_input(root)


def test_source_order_is_locale_compare() -> None:
    rng = random.Random(1234)
    alphabet = "aAbBzZ09_-./@$~ "
    names = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(400)})
    script = (
        "const n = JSON.parse(process.argv[1]);"
        "process.stdout.write(JSON.stringify(n.sort((a, b) => a.localeCompare(b))));"
    )
    expected = json.loads(_run(["node", "-e", script, json.dumps(names)], ROOT))
    assert solc_input.hardhat_order(names) == expected


def test_import_paths_skip_comments_and_strings() -> None:
    source = """
    import "a.sol"; import 'b.sol' as B;
    import * as C from "./c.sol";
    import {D, E as F} from "../d.sol";
    // import "no1.sol";
    /* import "no2.sol";
       import "no3.sol"; */
    string constant S = "import \\"no4.sol\\";";
    contract myimport {}
    """
    assert solc_input.import_paths(source) == ["a.sol", "b.sol", "./c.sol", "../d.sol"]


def test_solc_select_shim_on_path_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slither brings solc-select, whose `solc` script downloads compilers when asked anything.
    shim_dir, marker = tmp_path / "bin", tmp_path / "shim-was-run"
    shim_dir.mkdir()
    shim = shim_dir / "solc"
    shim.write_text(
        "#!/usr/bin/env python3\n# from solc_select.__main__ import solc\n"
        f"open({str(marker)!r}, 'w').close()\n"
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")
    root = _scratch_project(
        tmp_path, {"contracts/Two.sol": "pragma solidity 0.8.28;\ncontract Two {}\n"}
    )
    assert compile_contracts(root, use_cache=False)["Two"].deployed_bytecode != "0x"
    assert not marker.exists()


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(f"{_abi_type(c)} {c['name']}" for c in param["components"])
        kind = f"({inner}){kind[len('tuple') :]}"
    return kind


def _abi_params(params: list[dict[str, Any]]) -> str:
    return ", ".join(
        " ".join(
            part
            for part in (_abi_type(p), "indexed" if p.get("indexed") else "", p.get("name", ""))
            if part
        )
        for p in params
    )


def abi_signatures(abi: list[dict[str, Any]]) -> list[str]:
    """One line per ABI entry: kind, name, parameter types (structs spelt out) and names,
    indexed flags, mutability and outputs; everything but solc's `internalType` annotations,
    which name the Solidity declaration (e.g. which contract or interface declares a struct)
    and not anything that is encoded on the wire. Sorted, so the order solc lists them in
    does not matter."""
    lines = []
    for entry in abi:
        line = f"{entry['type']} {entry.get('name', '')}({_abi_params(entry.get('inputs', []))})"
        if entry.get("anonymous"):
            line += " anonymous"
        if "stateMutability" in entry:
            line += f" {entry['stateMutability']}"
        if entry.get("outputs"):
            line += f" returns ({_abi_params(entry['outputs'])})"
        lines.append(line)
    return sorted(lines)


def test_abi_is_unchanged(python_build: CompiledContracts) -> None:
    # tests/vectors/abi.json was generated from the contracts before they were split into
    # interfaces and typed words; regenerate it only for a deliberate change of the on-chain ABI.
    expected = json.loads(ABI_VECTOR.read_text())
    actual = {name: abi_signatures(python_build[name].abi) for name in ABI_CONTRACTS}
    for name in ABI_CONTRACTS:
        assert actual[name] == expected[name], name


# Each packed word has its own user-defined value type, so reading one through another's
# library, or as a bare uint256, does not compile.
_WORD_MISUSES = (
    "book.total()",  # a borrower's book read as a lender's usage word
    "usage.exposure(0)",  # and the other way round
    "member.cap(0)",  # a registry member slot read as the policy word
    "policy.index()",  # and the other way round
    "uint256(book)",  # a word used as a bare number
)
_WORDS_CONTRACT = """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
import {{Book}} from "./libraries/BorrowerBook.sol";
import {{MemberWord, PolicyWord}} from "./libraries/PackedWords.sol";
import {{Usage}} from "./libraries/UsageWord.sol";
contract Words {{
    function read(Book book, Usage usage, MemberWord member, PolicyWord policy)
        external pure returns (uint256)
    {{
        return {expr};
    }}
}}
"""


def _compile_words(tmp_path: Path, expr: str) -> CompiledContracts:
    libraries = ROOT / "contracts" / "libraries"
    sources = {
        f"contracts/libraries/{name}.sol": (libraries / f"{name}.sol").read_text()
        for name in ("BorrowerBook", "PackedWords", "UsageWord")
    }
    sources["contracts/Words.sol"] = _WORDS_CONTRACT.format(expr=expr)
    return compile_contracts(_scratch_project(tmp_path, sources), use_cache=False)


def test_packed_words_read_through_their_own_library(tmp_path: Path) -> None:
    expr = "book.exposure(0) + usage.total() + member.index() + policy.cap(0)"
    assert _compile_words(tmp_path, expr)["Words"].deployed_bytecode != "0x"


@pytest.mark.parametrize("expr", _WORD_MISUSES)
def test_packed_words_cannot_be_mixed(tmp_path: Path, expr: str) -> None:
    with pytest.raises(CompilationError) as excinfo:
        _compile_words(tmp_path, expr)
    assert excinfo.value.files == ["contracts/Words.sol"]
    assert all(e["type"] == "TypeError" for e in excinfo.value.errors), excinfo.value
