"""lisalib.cli and the package's hygiene: one table formatter, quiet imports, every import declared."""
import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from lisalib.cli import format_table

ROOT = Path(__file__).resolve().parent.parent


def test_format_table_aligns_and_formats_numbers():
    text = format_table([("a", 1234567, 0.5), ("bb", 2, None)], ["name", "count", "share"])
    assert text.splitlines() == [
        "name      count  share",
        "----  ---------  -----",
        "a     1,234,567  0.500",
        "bb            2   None",
    ]
    assert format_table([], ["x", "y"]).splitlines() == ["x  y", "-  -"]


def test_cli_start_prints_no_bitsandbytes_kernel_notice():
    """Loading bitsandbytes on a CPU logged "Failed to load CPU gemm_4bit_forward from kernels-community" at
    every start; lisalib drops that one line (the CPU fallback it announces is what every run uses)."""
    done = subprocess.run([sys.executable, "-m", "lisalib.accounting", "tiny-llava", "--quant", "4bit"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "gemm_4bit_forward" not in done.stderr + done.stdout
    assert "tiny-llava" in done.stdout


def _third_party_imports() -> set[str]:
    names = set()
    for path in (ROOT / "lisalib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "lisalib" and n not in sys.stdlib_module_names}


def test_every_imported_package_is_declared():
    """A fresh install must bring everything lisalib imports (scipy was once imported but not declared)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = declared["dependencies"] + [d for extra in declared.get("optional-dependencies", {}).values()
                                               for d in extra]
    names = {req.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("~")[0].strip().lower()
             for req in requirements}
    owners = packages_distributions()
    missing = {}
    for module in sorted(_third_party_imports()):
        distributions = {d.lower() for d in owners.get(module, [module])}
        if not distributions & names:
            missing[module] = sorted(distributions)
    assert not missing, f"imported by lisalib but not in pyproject.toml: {missing}"


@pytest.mark.parametrize("module", ["lisalib.accounting", "lisalib.bench vision", "lisalib.zoo build",
                                    "lisalib.zoo eval", "lisalib.notebook", "lisalib.lisa.train",
                                    "lisalib.lisa.evaluate", "lisalib.lisa.ceiling", "lisalib.lisa.ladder",
                                    "lisalib.reasonseg.synth", "lisalib.reasonseg.hub_copy", "lisalib.zoo.miniatures",
                                    "lisalib.bench.budget", "lisalib.bench.gpu_check", "lisalib.train"])
def test_every_cli_has_help_with_underscore_flags(module):
    done = subprocess.run([sys.executable, "-m", *module.split(), "--help"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    flags = {word.strip(",[]").split("=")[0] for word in done.stdout.split() if word.startswith("--")}
    assert "--help" in flags or "-h" in done.stdout
    assert not [f for f in flags if "-" in f[2:]], f"{module}: flags with dashes {sorted(f for f in flags if '-' in f[2:])}"
