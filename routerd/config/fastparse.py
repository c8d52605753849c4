"""Stage 1's fast parse: a routing file as plain data, without source marks, in a tenth of the time.

ruamel's round-trip loader keeps the line and column of every node, which errors need, but costs
about 1.5 ms per deployment in pure Python: a minute for a 35,000-deployment file. Most loads find
nothing to report, so :func:`fast_tree` parses with libyaml (PyYAML's C parser, when installed)
and builds the same plain tree the round-trip path builds (:mod:`routerd.config.convert`); the
loader builds the marks only when something has to be located (:class:`routerd.config.loader.SourceMap`).

The two paths must agree exactly, so this one takes only what it can decide exactly and raises
:class:`NotFast` for everything else, which the round-trip path then reads (and reports on) as
before:

* scalars: libyaml only splits the text; every plain scalar is resolved by ruamel's own resolver and
  constructor (YAML 1.2, as the round-trip loader reads it), memoised per distinct text. Quoted and
  block scalars are strings. Any tag (``!``) where a node may start: not fast; an anchor or alias
  whose name is not plain ``[A-Za-z0-9_-]`` (the YAML versions end names differently): not fast;
* merge keys (``<<``), keys that are not scalars, keys equal once made strings, directives
  (``%YAML``), any syntax error (ruamel reports it with its location): not fast;
* the bounds hold here too, before anything is copied: libyaml refuses nesting deeper than 1,000
  levels itself (so its recursion stays small), and the node graph is audited like ruamel's
  (:class:`~routerd.config.convert.Converter`): nesting beyond ``MAX_DEPTH`` and aliases expanding
  beyond ``max_alias_nodes`` are not fast, and the round-trip path refuses them at their location.
"""

from __future__ import annotations

import re
from typing import Any

from routerd.config.convert import plain_key, plain_scalar
from routerd.config.files import MAX_DEPTH

__all__ = ["NotFast", "available", "fast_tree"]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
# the tag given to plain (unquoted) scalars, resolved later by ruamel's rules, not PyYAML's (YAML 1.1)
_PLAIN = "tag:routerd,2026:plain"
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)
# an anchor, alias or tag where a node may start; libyaml (YAML 1.1) ends an anchor's name at the
# first character outside [A-Za-z0-9_-], YAML 1.2 (ruamel) only at a space or a flow indicator, so
# ``&x:`` means different things to them
_NODE_PROPERTY = re.compile(r"(?:^|(?<=[\s\[{,]))([&*!])([^\s\[\]{},]*)", re.MULTILINE)
_ANCHOR_NAME = re.compile(r"[A-Za-z0-9_-]+")


class NotFast(Exception):
    """The fast parse does not decide this document; the round-trip parser reads it."""


def _loader_class() -> type | None:
    try:
        import yaml
        from yaml.cyaml import CParser as parser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml (or absent): ruamel only
        return None

    class _Loader(parser):  # type: ignore[misc]
        """libyaml's parser and composer; every plain scalar left for ruamel's resolver."""

        def descend_resolver(self, parent: Any, index: Any) -> None:
            pass  # no path-dependent resolution

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is yaml.ScalarNode:
                return _PLAIN if implicit[0] else _STR
            return _SEQ if kind is yaml.SequenceNode else _MAP

    return _Loader


_LOADER: type | bool | None = False  # False: not looked up yet


def available() -> bool:
    """Whether libyaml is there to parse with (PyYAML's C extension)."""
    global _LOADER
    if _LOADER is False:
        _LOADER = _loader_class()
    return _LOADER is not None


def fast_tree(text: str, max_alias_nodes: int) -> dict[str, Any]:
    """The document as the round-trip path's plain tree (``{}`` when empty); raises :class:`NotFast`."""
    if not available() or _DIRECTIVE.search(text):
        raise NotFast
    _check_node_properties(text)
    import yaml

    loader_class = _LOADER
    assert isinstance(loader_class, type)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise NotFast from exc
    finally:
        loader.dispose()
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise NotFast
    builder = _Builder(max_alias_nodes)
    builder.audit(node, 0)
    data = builder.build(node)
    assert isinstance(data, dict)
    return data


def _check_node_properties(text: str) -> None:
    """Raise :class:`NotFast` for a tag, or an anchor or alias the two parsers could read apart.

    Text inside quoted scalars is scanned too: a false alarm only costs the round-trip parse.
    """
    if "&" not in text and "*" not in text and "!" not in text:
        return
    for match in _NODE_PROPERTY.finditer(text):
        if match[1] == "!" or not _ANCHOR_NAME.fullmatch(match[2]):
            raise NotFast


class _Builder:
    """Audits a composed node graph against the loader's bounds, then copies it into plain data."""

    def __init__(self, max_alias_nodes: int) -> None:
        import yaml
        from ruamel.yaml import YAML

        self._scalar, self._mapping = yaml.ScalarNode, yaml.MappingNode
        self._budget = max_alias_nodes
        self._expanded = 0
        self._seen: set[int] = set()
        self._sizes: dict[int, int] = {}
        self._plain: dict[str, Any] = {}  # plain scalar text -> its value, as ruamel reads it
        ruamel = YAML(typ="rt")
        self._resolver, self._constructor = ruamel.resolver, ruamel.constructor

    # --- bounds (the same walk as routerd.config.convert.Converter.audit, over libyaml's nodes) -----

    def audit(self, node: Any, depth: int) -> None:
        if isinstance(node, self._scalar):
            return
        if depth >= MAX_DEPTH:
            raise NotFast
        self._seen.add(id(node))
        values = [value for _, value in node.value] if isinstance(node, self._mapping) else node.value
        for value in values:
            if isinstance(value, self._scalar):
                continue
            if id(value) in self._seen:
                self._expanded += self._size(value, depth + 1)  # a second use of an anchor
                if self._expanded > self._budget:
                    raise NotFast
            else:
                self.audit(value, depth + 1)

    def _size(self, node: Any, depth: int) -> int:
        if isinstance(node, self._scalar):
            return 1
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if depth >= MAX_DEPTH:
            raise NotFast
        values = [value for _, value in node.value] if isinstance(node, self._mapping) else node.value
        size = 1 + sum(self._size(value, depth + 1) for value in values)
        self._sizes[id(node)] = size
        return size

    # --- the copy ----------------------------------------------------------------------------------

    def build(self, node: Any) -> Any:
        tag = node.tag
        if isinstance(node, self._scalar):
            if tag == _PLAIN:
                return self._resolve(node.value)
            if tag == _STR:
                return node.value
            raise NotFast  # an explicit tag: the round-trip constructor's business
        if isinstance(node, self._mapping):
            if tag != _MAP:
                raise NotFast
            out: dict[str, Any] = {}
            raw_keys: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, self._scalar):
                    raise NotFast
                if key_node.tag == _PLAIN and key_node.value == "<<":
                    raise NotFast  # a merge key
                raw = self.build(key_node)
                key = plain_key(raw)
                if key in out or raw in raw_keys:
                    # a duplicate, as ruamel compares keys (1 == 1.0 == true) or once made strings
                    raise NotFast
                raw_keys.add(raw)
                out[key] = self.build(value_node)
            return out
        if tag != _SEQ:
            raise NotFast
        return [self.build(item) for item in node.value]

    def _resolve(self, text: str) -> Any:
        try:
            return self._plain[text]
        except KeyError:
            pass
        from ruamel.yaml.nodes import ScalarNode

        tag = self._resolver.resolve(ScalarNode, text, (True, False))
        if str(tag) == _STR:
            value: Any = text
        else:
            try:
                value = plain_scalar(self._constructor.construct_object(ScalarNode(tag, text), deep=True))
            except Exception as exc:  # ruamel refuses it: the round-trip path reports where
                raise NotFast from exc
        self._plain[text] = value
        return value
