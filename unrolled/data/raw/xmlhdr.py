"""Small helpers to read and edit ISMRMRD XML headers (namespaced ElementTree)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from unrolled.data.header import NAMESPACE

ET.register_namespace("", NAMESPACE)


def parse(xml: bytes | str) -> ET.Element:
    """The root element; raises ``ValueError`` for malformed XML."""
    try:
        return ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"ISMRMRD XML header is not valid XML ({e})") from None


def find(node: ET.Element, *path: str) -> ET.Element | None:
    """The element at ``path`` (names without namespace) below ``node``, or ``None``."""
    return node.find("/".join(f"{{{NAMESPACE}}}{p}" for p in path))


def text(node: ET.Element, *path: str, default: str | None = None) -> str | None:
    """The stripped text at ``path``, or ``default``."""
    found = find(node, *path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def number(node: ET.Element, *path: str, default: float | None = None) -> float | None:
    """The number at ``path``, or ``default``."""
    value = text(node, *path)
    return default if value is None else float(value)


def set_text(node: ET.Element, path: tuple[str, ...], value: object) -> None:
    """Set the text at ``path``, creating the elements that are missing."""
    for name in path:
        child = find(node, name)
        if child is None:
            child = ET.SubElement(node, f"{{{NAMESPACE}}}{name}")
        node = child
    node.text = str(value)


def tag(node: ET.Element) -> str:
    """The element name without namespace."""
    return node.tag.rsplit("}", 1)[-1]


def serialize(root: ET.Element) -> bytes:
    """The XML document, UTF-8, with declaration."""
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
