"""The few URDF facts a task needs, read with the standard library's XML parser.

Joint types, limits, dynamics and the kinematic tree (for a reach estimate), and every mesh file,
so that a bad description fails when the task is loaded, with the file and the element named,
instead of half-way into a simulation or on the robot. No PyBullet and no ROS are imported:
``package://`` URIs are resolved through the ament index exactly as ``ament_index_python`` does
(``<prefix>/share/ament_index/resource_index/packages/<name>`` for each prefix of
``AMENT_PREFIX_PATH``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "MOVABLE_TYPES",
    "JointInfo",
    "RobotDescription",
    "TaskSpecError",
    "package_share",
    "resolve_uri",
]

MOVABLE_TYPES = ("revolute", "continuous", "prismatic")


class TaskSpecError(ValueError):
    """A task spec or its robot description is wrong: one line naming the file and the element."""


@dataclass(frozen=True)
class JointInfo:
    """One URDF ``<joint>``; limits are None where the URDF gives none."""

    name: str
    type: str  # revolute, continuous, prismatic, fixed, floating, planar
    parent: str
    child: str
    origin_xyz: tuple[float, float, float]
    lower: float | None
    upper: float | None
    effort: float | None
    velocity: float | None
    damping: float
    friction: float


@dataclass(frozen=True)
class RobotDescription:
    """A parsed URDF: joints by name, link names, and the text with its URIs resolved."""

    source: str  # the file, or "robot_description" for a string
    name: str
    joints: dict[str, JointInfo]
    links: tuple[str, ...]
    resolved_text: str  # package:// and relative mesh paths replaced by absolute paths
    path: Path | None  # the file itself, when it is one
    # Links whose <inertia> PyBullet replaces by zero (see principal_inertia_is_bad): link name ->
    # principal moments.
    bad_inertia: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def movable_joints(self) -> list[JointInfo]:
        return [j for j in self.joints.values() if j.type in MOVABLE_TYPES]

    def chain_to(self, link: str) -> list[JointInfo]:
        """Joints from the root to ``link``, root first."""
        by_child = {j.child: j for j in self.joints.values()}
        chain = []
        while link in by_child:
            joint = by_child[link]
            chain.append(joint)
            link = joint.parent
        return chain[::-1]

    def reach(self, link: str) -> float:
        """An upper bound of the distance from the root link's origin to ``link``'s origin: the
        sum of the joint offsets along the chain (prismatic travel included)."""
        total = 0.0
        for joint in self.chain_to(link):
            total += math.dist(joint.origin_xyz, (0.0, 0.0, 0.0))
            if joint.type == "prismatic" and joint.lower is not None and joint.upper is not None:
                total += max(abs(joint.lower), abs(joint.upper))
        return total


def package_share(package: str) -> Path | None:
    """``<prefix>/share/<package>`` of the first ament prefix that registers ``package``."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if not prefix:
            continue
        marker = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / package
        if marker.is_file():
            return Path(prefix) / "share" / package
    return None


def _pybullet_data_dir() -> Path | None:
    spec = importlib.util.find_spec("pybullet_data")  # finds it without importing PyBullet
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_uri(uri: str, base_dir: Path | None, where: str) -> Path:
    """A file named by ``uri``: ``package://<pkg>/<path>`` (ament index), ``pybullet_data:<path>``,
    ``file://<path>``, an absolute path or one relative to ``base_dir``. TaskSpecError naming
    ``where`` when the package or the file does not exist."""
    if uri.startswith("package://"):
        package, _, rest = uri[len("package://") :].partition("/")
        share = package_share(package)
        if share is not None:
            path = share / rest
        elif base_dir is not None and (base_dir / package / rest).exists():
            # PyBullet's own convention (pybullet_data's URDFs use it): package://<dir>/<file>
            # relative to the URDF's folder when no ROS package of that name exists.
            path = base_dir / package / rest
        else:
            prefixes = os.environ.get("AMENT_PREFIX_PATH", "") or "unset"
            raise TaskSpecError(
                f"{where}: package {package!r} of {uri!r} not found in the ament index "
                f"(AMENT_PREFIX_PATH={prefixes}): a package is found under a prefix of "
                f"AMENT_PREFIX_PATH that has share/ament_index/resource_index/packages/{package} "
                f"(colcon creates it; or create the empty file) and share/{package}/"
            )
    elif uri.startswith("pybullet_data:"):
        data = _pybullet_data_dir()
        if data is None:
            raise TaskSpecError(f"{where}: {uri!r} needs pybullet_data, which is not installed")
        path = data / uri.split(":", 1)[1]
    elif uri.startswith("file://"):
        path = Path(uri[len("file://") :])
    else:
        path = Path(uri)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.exists():
        raise TaskSpecError(f"{where}: {uri!r} not found (looked for {path})")
    return path.resolve()


def _floats(text: str | None, count: int, where: str) -> tuple[float, ...]:
    if text is None:
        return (0.0,) * count
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        values = ()
    if len(values) != count:
        raise TaskSpecError(f"{where}: expected {count} numbers, got {text!r}")
    return values


def _attribute(element, name: str, where: str) -> float | None:
    text = element.get(name) if element is not None else None
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise TaskSpecError(f"{where}: {name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise TaskSpecError(f"{where}: {name}={text!r} is not finite")
    return value


def parse_urdf(text: str, source: str, path: Path | None) -> RobotDescription:
    """Parse and check a URDF; every mesh file must exist. ``source`` names it in errors."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise TaskSpecError(f"{source}: malformed URDF: {exc}") from None
    if root.tag != "robot":
        raise TaskSpecError(f"{source}: the root element is <{root.tag}>, not <robot>")
    links = tuple(link.get("name", "") for link in root.findall("link"))
    joints: dict[str, JointInfo] = {}
    for element in root.findall("joint"):
        name = element.get("name", "")
        where = f'{source}: <joint name="{name}">'
        parent, child = element.find("parent"), element.find("child")
        if parent is None or child is None:
            raise TaskSpecError(f"{where}: needs <parent link=...> and <child link=...>")
        origin = element.find("origin")
        limit, dynamics = element.find("limit"), element.find("dynamics")
        joints[name] = JointInfo(
            name=name,
            type=element.get("type", ""),
            parent=parent.get("link", ""),
            child=child.get("link", ""),
            origin_xyz=_floats(origin.get("xyz") if origin is not None else None, 3, where),
            lower=_attribute(limit, "lower", f"{where} <limit>"),
            upper=_attribute(limit, "upper", f"{where} <limit>"),
            effort=_attribute(limit, "effort", f"{where} <limit>"),
            velocity=_attribute(limit, "velocity", f"{where} <limit>"),
            damping=_attribute(dynamics, "damping", f"{where} <dynamics>") or 0.0,
            friction=_attribute(dynamics, "friction", f"{where} <dynamics>") or 0.0,
        )
    base_dir = path.parent if path is not None else None

    def absolute(match: re.Match) -> str:
        uri = match.group(2)
        link = _link_of(root, uri)
        found = resolve_uri(uri, base_dir, f'{source}: <link name="{link}"> <mesh>')
        return f"{match.group(1)}{found}{match.group(3)}"

    resolved = re.sub(r'(<mesh\s[^>]*filename=")([^"]+)(")', absolute, text)
    bad_inertia = {}
    for link in root.findall("link"):
        moments = _principal_inertia(link, f'{source}: <link name="{link.get("name", "")}">')
        if moments is not None and principal_inertia_is_bad(moments):
            bad_inertia[link.get("name", "")] = moments
    return RobotDescription(
        source, root.get("name", ""), joints, links, resolved, path, bad_inertia
    )


def _principal_inertia(link, where: str) -> tuple[float, float, float] | None:
    """The principal moments of a link's ``<inertial><inertia>`` (None without one)."""
    inertia = link.find("inertial/inertia")
    if inertia is None:
        return None
    value = {k: _attribute(inertia, k, f"{where} <inertia>") or 0.0 for k in _INERTIA_KEYS}
    tensor = np.array(
        [
            [value["ixx"], value["ixy"], value["ixz"]],
            [value["ixy"], value["iyy"], value["iyz"]],
            [value["ixz"], value["iyz"], value["izz"]],
        ]
    )
    x, y, z = (float(m) for m in np.linalg.eigvalsh(tensor))
    return x, y, z


_INERTIA_KEYS = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")


def principal_inertia_is_bad(moments: tuple[float, float, float]) -> bool:
    """PyBullet's test (BulletUrdfImporter::getMassAndInertia2): a negative principal moment or
    one above the sum of the other two (a triangle inequality every rigid body satisfies) makes
    it print "Bad inertia tensor properties, setting inertia to zero for link" and zero them."""
    x, y, z = moments
    return min(x, y, z) < 0.0 or x > y + z or y > x + z or z > x + y


def _link_of(root, uri: str) -> str:
    for link in root.findall("link"):
        for mesh in link.iter("mesh"):
            if mesh.get("filename") == uri:
                return link.get("name", "")
    return "?"


def load_urdf(uri: str, spec_dir: Path, where: str) -> RobotDescription:
    """Read and parse the URDF file ``uri`` names (see :func:`resolve_uri`)."""
    path = resolve_uri(uri, spec_dir, where)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskSpecError(f"{where}: cannot read {path}: {exc}") from None
    return parse_urdf(text, str(path), path)
