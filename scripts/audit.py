"""`make audit`: pip-audit over the pinned requirements, where a vulnerability service answers.

pip-audit asks one of two services about each pinned package: PyPI's JSON API
(`--vulnerability-service pypi`) or OSV (`osv`). Some build machines reach only
PyPI's simple index and its per-project JSON through a proxy (per-version JSON
answers 404) and cannot resolve api.osv.dev. There this script falls back to
PyPI's per-project JSON, whose `vulnerabilities` are those of the project's
latest release: every package pinned at its latest release is audited that
way, and the ones pinned below it are named as not audited. Any finding not
listed in KNOWN below fails. Where nothing answers it prints SKIPPED with the
reason and exits 0, unless PETAL_AUDIT_REQUIRED=1 (CI where the services are
reachable), which turns a skip or a partial audit into a failure.
See docs/reliability.md ("Dependency audit").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = Path(os.environ.get("PETAL_AUDIT_REQUIREMENTS", ROOT / "requirements.txt"))
PROBES = {
    # pip-audit asks for each pinned version; a proxy may serve /pypi/NAME/json (latest
    # release only) but not /pypi/NAME/VERSION/json, which is the one that matters.
    "pypi": os.environ.get("PETAL_AUDIT_PYPI_PROBE", "https://pypi.org/pypi/pip/24.0/json"),
    "osv": os.environ.get("PETAL_AUDIT_OSV_PROBE", "https://api.osv.dev/v1/query"),
}
#: PyPI's per-project JSON (`{base}/NAME/json`): the fallback when neither service answers.
PYPI_PROJECTS = os.environ.get("PETAL_AUDIT_PYPI_PROJECTS", "https://pypi.org/pypi")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")
#: Findings reviewed and accepted: vulnerability id -> why it does not apply. Keep short.
KNOWN: dict[str, str] = {}


def _probe(service: str, url: str) -> str | None:
    """None if the service answers like itself, else why not (one line)."""
    body = None
    if service == "osv":
        body = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "20.0"})
    request = urllib.request.Request(
        url, data=body.encode() if body else None, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            payload = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"{url} unreachable: {getattr(exc, 'reason', exc)}"
    except ValueError:
        return f"{url} did not answer JSON"
    expected = "vulns" if service == "osv" else "vulnerabilities"
    return None if expected in payload else f"{url} answered without '{expected}'"


def _audit(service: str) -> tuple[int, str | None]:
    """(exit code, why nothing could be audited or None) for one pip-audit run."""
    report = Path(tempfile.mkdtemp(prefix="petal-audit-")) / "pip-audit.json"
    command = [
        sys.executable, "-m", "pip_audit", "-r", str(REQUIREMENTS), "--no-deps", "--disable-pip",
        "--progress-spinner", "off", "--vulnerability-service", service,
        "--format", "json", "--output", str(report),
    ]  # fmt: skip
    for vulnerability in KNOWN:
        command += ["--ignore-vuln", vulnerability]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    try:
        dependencies = json.loads(report.read_text())["dependencies"]
    except (OSError, ValueError, KeyError):
        print(run.stdout, run.stderr, sep="\n", file=sys.stderr)
        return 1, None
    finally:
        report.unlink(missing_ok=True)
    skipped = [d["name"] for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    if not audited:  # pip-audit says "no known vulnerabilities" even then: not a pass
        return 0, f"{service} answered, but not for any of the {len(skipped)} pinned versions"
    findings = [(d["name"], d["version"], v["id"]) for d in audited for v in d["vulns"]]
    print(f"audit ({service}): {len(audited)} packages audited, {len(skipped)} not on the "
          f"service (local-only packages: {', '.join(skipped) or 'none'}), "
          f"{len(KNOWN)} known finding(s) accepted")  # fmt: skip
    for name, version, vulnerability in findings:
        print(f"  VULNERABLE {name}=={version}: {vulnerability}")
    return (1 if findings else 0), None


def _pins() -> list[tuple[str, str]]:
    """(name, version) of every `name==version` line of the requirements file."""
    pins = []
    for line in REQUIREMENTS.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins.append((match[1], match[2]))
    return pins


def _project(name: str) -> dict:
    with urllib.request.urlopen(f"{PYPI_PROJECTS}/{name}/json", timeout=30) as response:
        return json.loads(response.read())


def _audit_latest_releases() -> tuple[int, str | None]:
    """Audit from per-project JSON; (exit code, why nothing could be audited or None).

    Hand-written because pip-audit only asks for per-version JSON: the project
    JSON's `vulnerabilities` describe its latest release, so a pin is audited
    only when it is that release.
    """
    pins = _pins()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            projects = list(pool.map(lambda pin: _project(pin[0]), pins))
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        return 0, f"{PYPI_PROJECTS}/NAME/json unusable: {getattr(exc, 'reason', exc)}"
    audited, behind, findings = 0, [], []
    for (name, version), project in zip(pins, projects, strict=True):
        latest = project.get("info", {}).get("version")
        if latest != version or "vulnerabilities" not in project:
            behind.append(f"{name}=={version} (latest {latest})")
            continue
        audited += 1
        findings += [
            (name, version, vuln["id"])
            for vuln in project["vulnerabilities"]
            if not vuln.get("withdrawn") and vuln["id"] not in KNOWN
        ]
    print(f"audit (PyPI latest-release data): {audited} of {len(pins)} pinned packages "
          f"audited, {len(KNOWN)} known finding(s) accepted; not audited here, pinned "
          f"below their latest release: {', '.join(behind) or 'none'}")  # fmt: skip
    for name, version, vulnerability in findings:
        print(f"  VULNERABLE {name}=={version}: {vulnerability}")
    if findings:
        return 1, None
    if behind and os.environ.get("PETAL_AUDIT_REQUIRED") == "1":
        print(f"audit: FAILED, {len(behind)} package(s) could not be audited", file=sys.stderr)
        return 1, None
    return 0, None


def main() -> int:
    reasons = {}
    for service, url in PROBES.items():
        reason = _probe(service, url)
        if reason is None:
            code, reason = _audit(service)
            if reason is None:
                return code
        reasons[service] = reason
    code, reason = _audit_latest_releases()
    if reason is None:
        return code
    reasons["pypi-latest"] = reason
    message = "; ".join(f"{service}: {why}" for service, why in reasons.items())
    if os.environ.get("PETAL_AUDIT_REQUIRED") == "1":
        print(f"audit: FAILED, no vulnerability service usable ({message})", file=sys.stderr)
        return 1
    print(f"audit: SKIPPED, no vulnerability service usable from here ({message}). "
          "Run `make audit` where pypi.org's JSON API or api.osv.dev answers.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
