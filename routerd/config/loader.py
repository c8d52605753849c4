"""Stage 1: read the YAML routing file into a plain tree, keeping where every key and value came from.

ruamel.yaml's round-trip loader records the line and column of every key and value; they are copied
into a :class:`SourceMap` so later stages can point at the exact spot of a problem, in whichever file
it is (``include:`` pulls in other files). This stage also:

* follows ``include:`` (paths relative to the including file; lists concatenate, mappings merge, the
  including file wins on conflicting values; a cycle is an error that shows the chain);
* replaces ``os.environ/NAME`` strings with the variable's value. Variables come from the process
  environment overlaid with the file's ``environment_variables:`` section (the process environment is
  never modified). An unset variable is an error naming it and its location, at load time;
* bounds what a file can cost (:class:`~routerd.config.files.LoadLimits`): its size, the nodes its
  aliases may expand to, and its nesting depth, each refused with an error at its location;
* records a fingerprint of what it read (the files' bytes and the environment), so a reload of
  unchanged sources can be recognised without compiling them again.

Nothing here knows the config schema beyond ``include`` and ``environment_variables``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from routerd.config.files import MAX_DEPTH, LoadLimits, UnreadableConfig, read_config_bytes
from routerd.config.frozen import REDACTED
from routerd.config.issues import Issue, Location, Severity, YamlPath, snippet_for

ENV_PREFIX = "os.environ/"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)"')


@dataclass(slots=True)
class _Marks:
    """Where one node of the tree is, and where its children and (for mappings) their keys are."""

    at: Location
    keys: dict[str, Location] = field(default_factory=dict)
    children: dict[str | int, _Marks] = field(default_factory=dict)


class SourceMap:
    """Line/column of every key and value in the merged tree, looked up by YAML path.

    A path that does not exist (a missing key) resolves to its nearest existing ancestor, so every
    problem can be placed somewhere sensible.
    """

    def __init__(self, root: _Marks | None, default: Location) -> None:
        self._root = root
        self._default = default

    def _walk(self, path: YamlPath) -> Iterator[_Marks]:
        node = self._root
        if node is None:
            return
        yield node
        for part in path:
            child = node.children.get(part)
            if child is None:
                return
            node = child
            yield node

    def value(self, path: YamlPath) -> Location:
        """Where the value at ``path`` (or its nearest existing ancestor) starts."""
        found = self._default
        for node in self._walk(path):
            found = node.at
        return found

    def key(self, path: YamlPath) -> Location:
        """Where the key of the mapping entry at ``path`` is; its value's location if it has no key."""
        if path and isinstance(path[-1], str):
            nodes = list(self._walk(path[:-1]))
            if len(nodes) == len(path) and path[-1] in nodes[-1].keys:
                return nodes[-1].keys[path[-1]]
        return self.value(path)

    def has(self, path: YamlPath) -> bool:
        return len(list(self._walk(path))) == len(path) + 1

    def issue(
        self,
        path: YamlPath,
        message: str,
        *,
        severity: Severity = "error",
        at_key: bool = False,
    ) -> Issue:
        """An :class:`Issue` at ``path``'s key (``at_key``) or value."""
        where = self.key(path) if at_key else self.value(path)
        return Issue.at(where, path, message, severity)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The result of stage 1.

    ``data`` is a plain tree (dicts, lists, str/int/float/bool/None) with includes merged and
    environment references resolved. ``secret_paths`` are the paths whose values came from the
    environment (never shown in messages); ``unresolved_paths`` hold references to unset variables,
    which are reported here and skipped by later stages. ``usable`` is False when the tree could not be
    built (syntax errors, unreadable files, include cycles) and validation must not run.
    """

    source: str
    data: dict[str, Any]
    marks: SourceMap
    files: tuple[str, ...]
    env: Mapping[str, str]
    file_env: Mapping[str, str]
    issues: tuple[Issue, ...]
    secret_paths: frozenset[YamlPath] = frozenset()
    unresolved_paths: frozenset[YamlPath] = frozenset()
    usable: bool = True
    # sha256 of every file read (name and bytes) and of the environment: equal fingerprints mean
    # equal inputs, so the compiled table would be the same
    fingerprint: str = ""

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


def load(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    limits: LoadLimits | None = None,
) -> LoadedConfig:
    """Read ``path`` (and everything it includes). Problems are returned as issues, never raised."""
    loader = _Loader(os.environ if env is None else env, limits or LoadLimits())
    display = os.fspath(path)
    return loader.run(Path(display), display, None)


def load_text(
    text: str,
    filename: str = "<config>",
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    limits: LoadLimits | None = None,
) -> LoadedConfig:
    """Like :func:`load` for YAML given as a string; includes resolve against ``base_dir`` (or cwd)."""
    loader = _Loader(os.environ if env is None else env, limits or LoadLimits())
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return loader.run(base / Path(filename).name, filename, text)


def source_fingerprint(contents: Iterable[tuple[str, bytes]], env: Mapping[str, str]) -> str:
    """sha256 of files (display name and bytes, in reading order) and of an environment.

    The whole environment is hashed, not only the variables the file names: providers read default
    credentials from it too, and hashing a few kilobytes costs microseconds.
    """
    digest = hashlib.sha256()
    for name, data in contents:
        digest.update(b"%d:%s\0%d:" % (len(name.encode()), name.encode(), len(data)))
        digest.update(data)
    for key, value in sorted(env.items()):
        digest.update(b"\1" + key.encode(errors="surrogateescape") + b"=")
        digest.update(value.encode(errors="surrogateescape"))
    return digest.hexdigest()


def current_fingerprint(files: Iterable[str], env: Mapping[str, str], limits: LoadLimits) -> str | None:
    """The :func:`source_fingerprint` the loader would record for ``files`` now; None if one is
    unreadable (the loader would report it)."""
    try:
        contents = [(name, read_config_bytes(Path(name), limits.max_bytes)) for name in files]
    except UnreadableConfig:
        return None
    return source_fingerprint(contents, env)


class _Loader:
    def __init__(self, env: Mapping[str, str], limits: LoadLimits) -> None:
        self.env = env
        self.limits = limits
        self.issues: list[Issue] = []
        self.files: list[str] = []
        self.contents: list[tuple[str, bytes]] = []
        self.loaded: dict[Path, str] = {}
        self.usable = True

    def run(self, path: Path, display: str, text: str | None) -> LoadedConfig:
        root_at = Location(display, 1, 1)
        tree = self._load_file(path, display, (), text)
        if tree is None:
            data: dict[str, Any] = {}
            marks = _Marks(root_at)
            self.usable = False
        else:
            data, marks = tree
        source_map = SourceMap(marks, root_at)
        file_env, secrets, unresolved = _resolve_environment(data, source_map, self.env, self.issues)
        return LoadedConfig(
            source=display,
            data=data,
            marks=source_map,
            files=tuple(self.files),
            env={**self.env, **file_env},
            file_env=file_env,
            issues=tuple(self.issues),
            secret_paths=frozenset(secrets),
            unresolved_paths=frozenset(unresolved),
            usable=self.usable,
            fingerprint=source_fingerprint(self.contents, self.env),
        )

    def _error(self, where: Location, message: str, snippet: str = "", path: YamlPath = ()) -> None:
        self.issues.append(Issue.at(where, path, message, "error", snippet))
        self.usable = False

    def _load_file(
        self, path: Path, display: str, chain: tuple[Path, ...], text: str | None = None
    ) -> tuple[dict[str, Any], _Marks] | None:
        resolved = path.resolve()
        self.loaded[resolved] = display
        self.files.append(display)
        text = self._read(path, display) if text is None else self._given(text, display)
        if text is None:
            return None
        parsed = self._parse(text, display)
        if parsed is None:
            return None
        data, marks = parsed
        includes = data.pop("include", None)
        include_marks = marks.children.pop("include", None)
        marks.keys.pop("include", None)
        if includes is not None and include_marks is not None:
            self._include(includes, include_marks, path, display, (*chain, resolved), data, marks)
        return data, marks

    def _read(self, path: Path, display: str) -> str | None:
        try:
            data = read_config_bytes(path, self.limits.max_bytes)
            text = data.decode("utf-8")
        except UnreadableConfig as exc:
            self._error(Location(display), f"cannot read the file: {exc.reason}")
            return None
        except UnicodeDecodeError as exc:
            self._error(Location(display), f"cannot read the file: {exc}")
            return None
        self.contents.append((display, data))
        return text

    def _given(self, text: str, display: str) -> str | None:
        data = text.encode("utf-8", errors="surrogateescape")
        if len(data) > self.limits.max_bytes:
            self._error(Location(display), f"cannot read the file: {_too_large(len(data), self.limits)}")
            return None
        self.contents.append((display, data))
        return text

    def _parse(self, text: str, display: str) -> tuple[dict[str, Any], _Marks] | None:
        yaml = YAML(typ="rt")
        try:
            document = yaml.load(text)
        except MarkedYAMLError as exc:
            self._syntax_error(exc, text, display)
            return None
        except YAMLError as exc:  # pragma: no cover - ruamel raises marked errors for bad input
            self._error(Location(display), f"invalid YAML: {exc}")
            return None
        except RecursionError:
            # ruamel's parser recurses once per nesting level; thousands of '[' exhaust the stack
            self._error(Location(display, 1, 1), f"invalid YAML: nested deeper than {MAX_DEPTH} levels")
            return None
        if document is None:
            return {}, _Marks(Location(display, 1, 1))
        if not isinstance(document, CommentedMap):
            self._error(
                Location(display, 1, 1),
                "the file must be a mapping at the top level (model_list:, router_settings:, ...)",
            )
            return None
        converter = _Converter(display, self.limits.max_alias_nodes)
        try:
            converter.audit(document)
        except _TooCostly as exc:
            self._error(converter.locate(document, exc.path), exc.message, path=exc.path)
            return None
        data, marks = converter.convert(document, Location(display, 1, 1))
        assert isinstance(data, dict)
        return data, marks

    def _syntax_error(self, exc: MarkedYAMLError, text: str, display: str) -> None:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        duplicate = _DUPLICATE_KEY.search(exc.problem or "")
        if duplicate:
            # ruamel's own message quotes both values, which may be secrets; the line number is enough
            first = exc.context_mark.line + 1 if exc.context_mark is not None else 0
            message = f"duplicate key {duplicate.group(1)!r} in the mapping that starts at line {first}"
            self._error(Location(display, line, col), message)
            return
        message = f"invalid YAML: {exc.problem}" if exc.problem else "invalid YAML"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        masked, masked_col = mask_values(_line(text, line), col)
        self._error(Location(display, line, col), message, snippet_for(masked, 1, masked_col))

    def _include(
        self,
        value: Any,
        value_marks: _Marks,
        path: Path,
        display: str,
        chain: tuple[Path, ...],
        data: dict[str, Any],
        marks: _Marks,
    ) -> None:
        entries: list[tuple[Any, _Marks, YamlPath]]
        if isinstance(value, str):
            entries = [(value, value_marks, ("include",))]
        elif isinstance(value, list):
            entries = [(v, value_marks.children[i], ("include", i)) for i, v in enumerate(value)]
        else:
            self._error(value_marks.at, "expected a file name or a list of file names", path=("include",))
            return
        for entry, entry_marks, entry_path in entries:
            if not isinstance(entry, str) or not entry.strip():
                self._error(entry_marks.at, "expected a file name", path=entry_path)
                continue
            target = path.parent / entry
            target_display = os.path.normpath(os.path.join(os.path.dirname(display), entry))
            resolved = target.resolve()
            if resolved in chain:
                names = [self.loaded.get(p, str(p)) for p in chain[chain.index(resolved) :]]
                cycle = " -> ".join([*names, target_display])
                self._error(entry_marks.at, f"include cycle: {cycle}", path=entry_path)
                continue
            if resolved in self.loaded:
                first = self.loaded[resolved]
                self.issues.append(
                    Issue.at(
                        entry_marks.at,
                        entry_path,
                        f"{target_display} is already included (as {first}); included once",
                        "warning",
                    )
                )
                continue
            if not target.is_file():
                self.loaded[resolved] = target_display
                reason = "no such file" if not target.exists() else "not a regular file"
                self._error(entry_marks.at, f"cannot include {target_display}: {reason}", path=entry_path)
                continue
            included = self._load_file(target, target_display, chain)
            if included is not None:
                _merge(data, marks, included[0], included[1], (), self.issues)


def _too_large(size: int, limits: LoadLimits) -> str:
    return (
        f"the file is larger than {limits.max_bytes} bytes ({size} bytes); "
        "raise config_max_bytes (ROUTERD_CONFIG_MAX_BYTES) if it is meant to be this large"
    )


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else ""


# One token of a line of YAML: a mapping key with its colon (plain or quoted), structure (brackets,
# commas, a sequence dash, blanks), or anything else -- a value, or part of one.
_SNIPPET_TOKEN = re.compile(
    r"""(?P<key>(?:"[^"\n]*"|'[^'\n]*'|[\w.\-]+)\s*:)(?=\s|$|[{}\[\],"'])"""
    r"""|(?P<blank>\s+)|(?P<structure>[{}\[\],]|-(?=\s|$))"""
    r"""|(?P<value>[^\s{}\[\],]+)"""
)


def mask_values(line: str, col: int) -> tuple[str, int]:
    """``line`` with every value replaced by ``***`` (keys and structure kept), and where ``col``
    (1-based) moved to.

    Snippets of broken files show the line of the error; whatever a value holds there (a key written
    inline in a block or flow mapping, a sequence item, the rest of a broken quoted string) may be a
    secret, and a broken line cannot be parsed well enough to tell, so no value is ever shown. A key
    counts as one only where a key can start (line start, after ``{``, ``[``, ``,`` or ``-``); the
    words of one value become a single ``***``.
    """
    out: list[str] = []
    length, new_col = 0, 0
    key_may_start, in_value = True, False
    for match in _SNIPPET_TOKEN.finditer(line):
        kind, text = match.lastgroup, match.group()
        start, end = match.span()
        if kind == "key" and not key_may_start:
            kind = "value"
        if kind == "value":
            piece = "" if in_value else REDACTED
            in_value, key_may_start = True, False
        elif kind == "blank":
            piece = text
        else:
            piece, in_value = text, False
            key_may_start = kind == "structure"
        if kind == "blank" and in_value:
            piece = ""  # blanks inside a value vanish with it; _respace puts one back before a key
        if not new_col and start <= col - 1 < end:
            new_col = length + 1 + (col - 1 - start if kind in ("key", "structure") else 0)
        out.append(piece)
        length += len(piece)
    masked = _respace("".join(out))
    if not new_col:
        new_col = len(masked) + 1 + max(col - 1 - len(line), 0)
    return masked, min(new_col, len(masked) + 1)


def _respace(text: str) -> str:
    # blanks inside masked values were dropped: put one back where a masked value meets a key
    return re.sub(r"\*\*\*(?=[^\s,}\]])", "*** ", text)


class _TooCostly(Exception):
    """Raised out of :meth:`_Converter.audit` when a document goes beyond the loader's bounds."""

    def __init__(self, path: YamlPath, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@dataclass
class _Converter:
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
        """Raise :class:`_TooCostly` if ``node`` nests too deeply or its aliases expand too far.

        Only identities and sizes are looked at (no locations): the walk costs little next to parsing.
        """
        if not isinstance(node, CommentedMap | CommentedSeq):
            return
        if depth >= MAX_DEPTH:
            raise self._too_deep()
        self.seen.add(id(node))
        entries: Iterable[tuple[Any, Any]]
        if isinstance(node, CommentedMap):
            entries = ((_plain_key(key), value) for key, value in node.items())
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

    def convert(self, node: Any, at: Location) -> tuple[Any, _Marks]:
        """``node`` as plain data and the marks of it and everything under it (after :meth:`audit`)."""
        marks = _Marks(at)
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
        return _plain_scalar(node), marks

    def _children(
        self, node: CommentedMap | CommentedSeq, at: Location
    ) -> Iterator[tuple[str | int, Any, Location, Location]]:
        """(key or index, value, key location, value location) of each entry of ``node``."""
        if isinstance(node, CommentedMap):
            for raw_key, value in node.items():
                key_at, value_at = _entry_locations(node, raw_key, self.file, at)
                yield _plain_key(raw_key), value, key_at, self._where(value, value_at)
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
            raise _TooCostly(
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

    def _too_deep(self) -> _TooCostly:
        return _TooCostly(tuple(self.path), f"nested deeper than {MAX_DEPTH} levels")


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


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return str(key).lower() if key is not None else "null"
    return str(_plain_scalar(key))


def _plain_scalar(value: Any) -> Any:
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


def _merge(
    dst: dict[str, Any],
    dst_marks: _Marks,
    src: dict[str, Any],
    src_marks: _Marks,
    path: YamlPath,
    issues: list[Issue],
) -> None:
    """Merge an included tree into the including one: lists concatenate, mappings merge recursively,
    and for any other conflict the value already there (the including file's) wins, with a warning."""
    for key, value in src.items():
        child_path = (*path, key)
        if key not in dst:
            dst[key] = value
            dst_marks.children[key] = src_marks.children[key]
            dst_marks.keys[key] = src_marks.keys[key]
            continue
        mine = dst[key]
        mine_marks, their_marks = dst_marks.children[key], src_marks.children[key]
        if isinstance(mine, dict) and isinstance(value, dict):
            _merge(mine, mine_marks, value, their_marks, child_path, issues)
        elif isinstance(mine, list) and isinstance(value, list):
            offset = len(mine)
            mine.extend(value)
            for index in range(len(value)):
                mine_marks.children[offset + index] = their_marks.children[index]
        else:
            kept = dst_marks.keys.get(key, mine_marks.at)
            issues.append(
                Issue.at(
                    src_marks.keys.get(key, their_marks.at),
                    child_path,
                    f"also set at {kept}; the value there is used",
                    "warning",
                )
            )


@dataclass
class _EnvResolver:
    """Replaces ``os.environ/NAME`` strings in a tree, in place, recording what it did."""

    marks: SourceMap
    issues: list[Issue]
    secrets: set[YamlPath] = field(default_factory=set)  # paths whose values came from the environment
    unresolved: set[YamlPath] = field(default_factory=set)  # paths that reference unset variables

    def substitute(self, value: Any, path: YamlPath, env: Mapping[str, str]) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = self.substitute(item, (*path, key), env)
            return value
        if isinstance(value, list):
            for index, item in enumerate(value):
                value[index] = self.substitute(item, (*path, index), env)
            return value
        if not isinstance(value, str) or not value.startswith(ENV_PREFIX):
            return value
        name = value[len(ENV_PREFIX) :].strip()
        if not _ENV_NAME.match(name):
            self._unresolved(path, f"{value!r} does not name an environment variable")
        elif name not in env:
            self._unresolved(path, f"environment variable {name} is not set (referenced as {value})")
        else:
            self.secrets.add(path)
            return env[name]
        return value

    def _unresolved(self, path: YamlPath, message: str) -> None:
        self.issues.append(self.marks.issue(path, message))
        self.unresolved.add(path)


def _resolve_environment(
    data: dict[str, Any], marks: SourceMap, env: Mapping[str, str], issues: list[Issue]
) -> tuple[dict[str, str], set[YamlPath], set[YamlPath]]:
    """Replace ``os.environ/NAME`` strings in ``data`` in place.

    ``environment_variables`` is resolved first, against the process environment alone; everything
    else then sees the process environment overlaid with those variables. Returns the file's
    variables, the paths of values taken from the environment, and the paths of unset references.
    """
    resolver = _EnvResolver(marks, issues)
    file_env: dict[str, str] = {}
    section = data.get("environment_variables")
    if isinstance(section, dict):
        resolver.substitute(section, ("environment_variables",), env)
        for name, value in section.items():
            usable = isinstance(value, str | int | float | bool)
            if usable and ("environment_variables", name) not in resolver.unresolved:
                file_env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    merged = {**env, **file_env}
    for key, value in data.items():
        if key != "environment_variables":
            data[key] = resolver.substitute(value, (key,), merged)
    return file_env, resolver.secrets, resolver.unresolved
