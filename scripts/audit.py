"""`make audit`: pip-audit over the pinned requirements, where a vulnerability service answers.

pip-audit asks one of two services about each pinned package: PyPI's JSON API
(`--vulnerability-service pypi`) or OSV (`osv`). Some build machines reach only
PyPI's simple index through a proxy (JSON API answers 404) and cannot resolve
api.osv.dev, so nothing can be audited there. This script probes both first:
it audits with the first one that answers and fails on any finding not listed
in KNOWN below; where neither answers it prints SKIPPED with the reason and
exits 0, unless PETAL_AUDIT_REQUIRED=1 (CI where the services are reachable),
which turns that into a failure. See docs/reliability.md ("Dependency audit").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
PROBES = {
    # pip-audit asks for each pinned version; a proxy may serve /pypi/NAME/json (latest
    # release only) but not /pypi/NAME/VERSION/json, which is the one that matters.
    "pypi": os.environ.get("PETAL_AUDIT_PYPI_PROBE", "https://pypi.org/pypi/pip/24.0/json"),
    "osv": os.environ.get("PETAL_AUDIT_OSV_PROBE", "https://api.osv.dev/v1/query"),
}
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


def main() -> int:
    reasons = {}
    for service, url in PROBES.items():
        reason = _probe(service, url)
        if reason is None:
            code, reason = _audit(service)
            if reason is None:
                return code
        reasons[service] = reason
    message = "; ".join(f"{service}: {why}" for service, why in reasons.items())
    if os.environ.get("PETAL_AUDIT_REQUIRED") == "1":
        print(f"audit: FAILED, no vulnerability service usable ({message})", file=sys.stderr)
        return 1
    print(f"audit: SKIPPED, no vulnerability service usable from here ({message}). "
          "Run `make audit` where pypi.org's JSON API or api.osv.dev answers.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
