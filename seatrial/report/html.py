"""The HTML report: npm allure 3 over a run's allure results, offline, one self-contained page."""

from __future__ import annotations

from pathlib import Path

from seatrial.errors import ConfigError

# ---- HTML (offline, from the allure results) ---------------------------------------------
ALLURE_NPM = "allure@3"


def allure_cli(cache: Path) -> Path:
    """The npm ``allure`` (Allure 3: Node only, no Java), installed once into the cache."""
    import shutil
    import subprocess

    from seatrial.errors import ToolMissingError

    prefix = cache / "node"
    binary = prefix / "node_modules" / ".bin" / "allure"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        raise ToolMissingError("building the HTML report needs npm (Node.js)", hint="apt-get install npm")
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"seatrial: installing {ALLURE_NPM} from npm into {prefix} (once)", flush=True)
    proc = subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), ALLURE_NPM],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not binary.exists():
        raise ToolMissingError(f"npm install {ALLURE_NPM} failed: {proc.stderr.strip()[-500:]}")
    return binary


def build_html(run_dir: Path, cache: Path) -> Path:
    """One self-contained index.html from the run's allure results."""
    import subprocess

    results = run_dir / "allure-results"
    if not results.is_dir():
        raise ConfigError(f"{run_dir} has no allure-results: run nox -s conformance first")
    out = run_dir / "html"
    proc = subprocess.run(
        [str(allure_cli(cache)), "awesome", str(results), "-o", str(out), "--single-file"],
        capture_output=True,
        text=True,
        check=False,
        cwd=run_dir,
    )
    if proc.returncode != 0 or not (out / "index.html").exists():
        raise ConfigError(f"allure could not build the report: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return out / "index.html"
