"""Stage 1's copy of ruamel's document into plain data with source marks, within bounds.

ruamel's round-trip loader gives ``CommentedMap``/``CommentedSeq`` nodes that know their line and
column; :class:`Converter` turns them into plain dicts, lists and scalars, and records the marks in a
:class:`Marks` tree for :class:`~routerd.config.loader.SourceMap`. Before copying, it audits the
document against the loader's bounds (alias expansion, nesting depth).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from routerd.config.files import MAX_DEPTH
from routerd.config.issues import Location, YamlPath


@dataclass(slots=True)
class Marks:
    """Where one node of the tree is, and where its children and (for mappings) their keys are."""

    at: Location
    keys: dict[str, Location] = field(default_factory=dict)
    children: dict[str | int, Marks] = field(default_factory=dict)


class TooCostly(Exception):
    """Raised out of :meth:`Converter.audit` when a document goes beyond the loader's bounds."""

    def __init__(self, path: YamlPath, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@dataclass
class Converter:
    """ruamel's document as plain Python data with marks, within the loader's bounds.

    ruamel shares one object for an anchor and all its aliases, so a file of nested aliases parses
    quickly into a small graph; copying that graph into a tree is what explodes (nine aliases nine
    levels deep are 387 million nodes). :meth:`audit` walks the graph first without copying: at each
    second use of an anchor it adds the size of the tree that alias expands to (memoised per shared
    node, so the walk is linear in the file) to a count bounded by ``max_alias_nodes``. A bomb is
    refused at the alias that crosses the bound before anything is copied. Nesting is bounded by
    ``MAX_DEPTH`` (which also stops an alias inside its own anchor).
    """

    file: str
    max_alias_nodes: int
    expanded: int = 0
    seen: set[int] = field(default_factory=set)
    sizes: dict[int, int] = field(default_factory=dict)
    path: list[str | int] = field(default_factory=list)

    def audit(self, node: Any, depth: int = 0) -> None:
        """Raise :class:`TooCostly` if ``node`` nests too deeply or its aliases expand too far.

        Only identities and sizes are looked at (no locations): the walk costs little next to parsing.
        """
        if not isinstance(node, CommentedMap | CommentedSeq):
            return
        if depth >= MAX_DEPTH:
            raise self._too_deep()
        self.seen.add(id(node))
        entries: Iterable[tuple[Any, Any]]
        if isinstance(node, CommentedMap):
            entries = ((plain_key(key), value) for key, value in node.items())
        else:
            entries = enumerate(node)
        for key, value in entries:
            self.path.append(key)
            if isinstance(value, CommentedMap | CommentedSeq) and id(value) in self.seen:
                self._charge(value, depth + 1)  # a second use of an anchor: an expansion
            else:
                self.audit(value, depth + 1)
            self.path.pop()

    def locate(self, document: Any, path: YamlPath) -> Location:
        """Where the node at ``path`` is (for an alias: its anchor's position, as ruamel records it)."""
        at, node = Location(self.file, 1, 1), document
        for part in path:
            if not isinstance(node, CommentedMap | CommentedSeq):
                break
            for key, value, _, value_at in self._children(node, at):
                if key == part:
                    at, node = value_at, value
                    break
            else:
                break
        return at

    def convert(self, node: Any, at: Location) -> tuple[Any, Marks]:
        """``node`` as plain data and the marks of it and everything under it (after :meth:`audit`)."""
        marks = Marks(at)
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key, value, key_at, value_at in self._children(node, at):
                assert isinstance(key, str)
                out[key], marks.children[key] = self.convert(value, value_at)
                marks.keys[key] = key_at
            return out, marks
        if isinstance(node, CommentedSeq):
            items: list[Any] = []
            for index, value, _, item_at in self._children(node, at):
                item, marks.children[index] = self.convert(value, item_at)
                items.append(item)
            return items, marks
        return plain_scalar(node), marks

    def _children(
        self, node: CommentedMap | CommentedSeq, at: Location
    ) -> Iterator[tuple[str | int, Any, Location, Location]]:
        """(key or index, value, key location, value location) of each entry of ``node``."""
        if isinstance(node, CommentedMap):
            for raw_key, value in node.items():
                key_at, value_at = _entry_locations(node, raw_key, self.file, at)
                yield plain_key(raw_key), value, key_at, self._where(value, value_at)
            return
        for index, value in enumerate(node):
            try:
                line, col = node.lc.item(index)
                item_at = Location(self.file, line + 1, col + 1)
            except (KeyError, IndexError, TypeError):
                item_at = at
            yield index, value, item_at, self._where(value, item_at)

    def _where(self, value: Any, at: Location) -> Location:
        if isinstance(value, CommentedMap | CommentedSeq):
            return _collection_location(value, self.file, at)
        return at

    def _charge(self, node: Any, depth: int) -> None:
        self.expanded += self._size(node, depth)
        if self.expanded > self.max_alias_nodes:
            raise TooCostly(
                tuple(self.path),
                f"aliases expand to more than {self.max_alias_nodes} nodes; raise config_max_alias_nodes "
                "(ROUTERD_CONFIG_MAX_ALIAS_NODES) if the file is meant to be this large",
            )

    def _size(self, node: Any, depth: int) -> int:
        """How many nodes ``node`` becomes once every alias under it is expanded."""
        if not isinstance(node, CommentedMap | CommentedSeq):
            return 1
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if depth >= MAX_DEPTH:
            raise self._too_deep()
        children = node.values() if isinstance(node, CommentedMap) else node
        size = 1 + sum(self._size(child, depth + 1) for child in children)
        self.sizes[id(node)] = size
        return size

    def _too_deep(self) -> TooCostly:
        return TooCostly(tuple(self.path), f"nested deeper than {MAX_DEPTH} levels")


def _entry_locations(
    node: CommentedMap, key: Any, file: str, fallback: Location
) -> tuple[Location, Location]:
    """Key and value locations of one mapping entry; merged (``<<: *anchor``) keys come from the anchor."""
    for owner in (node, *(m for m in getattr(node, "merge", ()) if isinstance(m, CommentedMap))):
        try:
            key_line, key_col = owner.lc.key(key)
            value_line, value_col = owner.lc.value(key)
        except (KeyError, TypeError):
            continue
        return Location(file, key_line + 1, key_col + 1), Location(file, value_line + 1, value_col + 1)
    return fallback, fallback


def _collection_location(node: CommentedMap | CommentedSeq, file: str, fallback: Location) -> Location:
    line, col = getattr(node.lc, "line", None), getattr(node.lc, "col", None)
    if isinstance(line, int) and isinstance(col, int):
        return Location(file, line + 1, col + 1)
    return fallback


def plain_key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return str(key).lower() if key is not None else "null"
    return str(plain_scalar(key))


def plain_scalar(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, HexInt, ...) as plain Python values."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        # YAML reads an unquoted 2024-02-01 as a date; every such value in this format is a string
        # (api_version being the common one)
        return value.isoformat()
    if isinstance(value, set):
        return sorted(str(v) for v in value)
    inner = getattr(value, "value", None)  # TaggedScalar: a custom !tag; keep its text
    return str(inner if inner is not None else value)


def unreadable_scalar(text: str) -> tuple[int, int, str] | None:
    """(line, column, kind) of the first scalar ruamel resolves to a type it then cannot build.

    The document is composed (no values built, aliases shared) and each scalar built on its own.
    """
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(text)
    except Exception:  # the caller reports the document as a whole
        return None
    found: list[tuple[int, int, str]] = []
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, ScalarNode):
            try:
                yaml.constructor.construct_object(node, deep=True)
            except Exception:
                kind = str(node.tag).rsplit(":", 1)[-1]
                found.append((node.start_mark.line + 1, node.start_mark.column + 1, kind))
    return min(found) if found else None
