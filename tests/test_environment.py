"""The pinned environment agrees with what the package asks for: every dependency of
pyproject.toml (with the `dev` extras) is pinned in the lock file within its range, every pin
is something a dependency needs, each pin carries its hashes, and environment.yml and
scripts/setup.sh install that same file."""
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "py311-linux-x86_64.txt"
# the platform the lock is for: CPython 3.11 on Linux x86_64 (scripts/lock.sh)
LOCKED_PLATFORM = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.7",
                   "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}
ROOT_REASONS = {"panopticlab (pyproject.toml)", "the torch/torchvision pair of scripts/lock.sh"}


def parse_lock(text: str) -> dict[str, dict]:
    """``{name: {"version", "hashes", "via"}}`` from a requirements file written by ``uv pip compile
    --generate-hashes --annotation-style line``; a ValueError names a line it cannot read."""
    pins: dict[str, dict] = {}
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if match := re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(\s*;[^\\]*)?\s*\\?", stripped):
            current = canonicalize_name(match[1])
            if current in pins:
                raise ValueError(f"line {number}: {current} pinned twice")
            pins[current] = {"version": Version(match[2]), "hashes": [], "via": set()}
        elif match := re.fullmatch(r"--hash=sha256:([0-9a-f]{64})\s*\\?", stripped):
            pins[current]["hashes"].append(match[1])
        elif match := re.fullmatch(r"#\s*via (.+)", stripped):
            pins[current]["via"] = {reason.strip() for reason in match[1].split(",")}
        elif not stripped.startswith("#"):
            raise ValueError(f"line {number}: cannot read {stripped!r}")
    return pins


def direct_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and those of its `dev` extra, self-references expanded,
    for the locked platform."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras, pending, requirements = project["optional-dependencies"], ["dev"], list(project["dependencies"])
    seen = set()
    while pending:
        extra = pending.pop()
        for line in extras[extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                pending += [e for e in requirement.extras if e not in seen]
                seen |= requirement.extras
            else:
                requirements.append(line)
    parsed = [Requirement(line) for line in requirements]
    return [r for r in parsed if r.marker is None or r.marker.evaluate(LOCKED_PLATFORM)]


@pytest.fixture(scope="module")
def pins():
    return parse_lock(LOCK.read_text(encoding="utf-8"))


def test_every_dependency_is_pinned_within_its_range(pins):
    requirements = direct_requirements()
    assert len(requirements) > 15
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} of pyproject.toml is not pinned in {LOCK.name}: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name]["version"], prereleases=True), \
            f"{LOCK.name} pins {name}=={pins[name]['version']}, outside pyproject.toml's {requirement}"


def test_nothing_is_pinned_that_no_dependency_needs(pins):
    """Each pin names what needs it; following those reasons from any pin reaches pyproject.toml."""
    direct = {canonicalize_name(r.name) for r in direct_requirements()}
    for name, pin in pins.items():
        assert pin["via"], f"{name} is pinned for no stated reason"
        parents = {canonicalize_name(v) for v in pin["via"] - ROOT_REASONS}
        assert parents <= set(pins), f"{name} is needed by {parents - set(pins)}, which are not pinned"
        if pin["via"] & ROOT_REASONS:
            assert name in direct | {"torch", "torchvision"}, f"{name} is pinned for pyproject.toml, which lacks it"
    reached, frontier = set(), {n for n, p in pins.items() if p["via"] & ROOT_REASONS}
    while frontier:
        reached |= frontier
        frontier = {n for n, p in pins.items() if n not in reached
                    and {canonicalize_name(v) for v in p["via"] - ROOT_REASONS} & reached}
    assert reached == set(pins), f"pinned but needed by nothing of pyproject.toml: {sorted(set(pins) - reached)}"


def test_every_pin_carries_its_hashes(pins):
    assert all(pin["hashes"] for pin in pins.values()), [n for n, p in pins.items() if not p["hashes"]]


def test_the_lock_reader_names_what_it_cannot_read():
    assert parse_lock("numpy==1.26.4 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via scipy\n")["numpy"]["via"] == {"scipy"}
    with pytest.raises(ValueError, match=r"line 1: cannot read 'numpy>=1.24'"):
        parse_lock("numpy>=1.24\n")
    with pytest.raises(ValueError, match="line 2: numpy pinned twice"):
        parse_lock("numpy==1.26.4\nnumpy==2.0.0\n")


def test_setup_and_conda_install_the_lock_file(pins):
    relative = LOCK.relative_to(ROOT).as_posix()
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert f"LOCK={relative}" in setup and '--require-hashes --no-deps -r "$LOCK"' in setup
    environment = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert re.search(rf"(?m)^\s+- -r {re.escape(relative)}$", environment)
    assert re.search(r"(?m)^\s+- python=3\.11$", environment)
    # the torch pair scripts/lock.sh resolves with is the one in the lock
    pair = re.search(r"TORCH_PAIR=\(([^)]*)\)", (ROOT / "scripts" / "lock.sh").read_text(encoding="utf-8"))[1]
    assert {tuple(p.strip('"').split("==")) for p in pair.split()} == \
        {("torch", str(pins["torch"]["version"])), ("torchvision", str(pins["torchvision"]["version"]))}
