"""Stage 1: read the YAML routing file into a plain tree, keeping where every key and value came from.

ruamel.yaml's round-trip loader records the line and column of every key and value; they are copied
into a :class:`SourceMap` so later stages can point at the exact spot of a problem, in whichever file
it is (``include:`` pulls in other files). That parse is slow (about a minute for a 35,000-deployment
file), so the loader first reads the files with the fast parser (:mod:`routerd.config.fastparse`,
which yields the same tree without marks) and builds the marks only when something is to be located:
the first time a later stage (or this one) reports an issue, the round-trip parser reads the same
bytes again. A document the fast parser does not decide, and anything this stage itself reports, send
the whole load through the round-trip parser, exactly as before. This stage also:

* follows ``include:`` (paths relative to the including file; lists concatenate, mappings merge, the
  including file wins on conflicting values; a cycle is an error that shows the chain);
* replaces ``os.environ/NAME`` strings with the variable's value. Variables come from the process
  environment overlaid with the file's ``environment_variables:`` section (the process environment is
  never modified). An unset variable is an error naming it and its location, at load time;
* bounds what a file can cost (:class:`~routerd.config.files.LoadLimits`): its size, the nodes its
  aliases may expand to, and its nesting depth, each refused with an error at its location;
* records a fingerprint of what it read (the files' bytes and the environment), so a reload of
  unchanged sources can be recognised without compiling them again.

The copy of ruamel's nodes into plain data, and the audit of aliases and depth before it, live in
:mod:`routerd.config.convert`; snippets of broken lines are masked by
:func:`routerd.config.issues.mask_values`. Nothing here knows the config schema beyond ``include`` and
``environment_variables``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from routerd.config import fastparse
from routerd.config.convert import Converter, Marks, TooCostly, unreadable_scalar
from routerd.config.files import MAX_DEPTH, LoadLimits, UnreadableConfig, read_config_bytes
from routerd.config.issues import Issue, Location, Severity, YamlPath, mask_values, snippet_for

ENV_PREFIX = "os.environ/"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)"')
#: parse with the fast parser first (see the module); False: always the round-trip parser
FAST_PARSE = True
#: Files shorter than this (characters) are parsed by the round-trip parser even with FAST_PARSE:
#: importing PyYAML (which compiles its regexes at import) costs more than ruamel's round trip of a
#: small file (measured: the example file to a table, 1,189 M instructions the fast way against
#: 1,150 M); marks are still built only when an issue has to be located.
FAST_PARSE_MIN_CHARS = 4096


class SourceMap:
    """Line/column of every key and value in the merged tree, looked up by YAML path.

    A path that does not exist (a missing key) resolves to its nearest existing ancestor, so every
    problem can be placed somewhere sensible. ``build``: makes the marks on first use, when the
    files were read without them (the fast parse).
    """

    def __init__(
        self, root: Marks | None, default: Location, build: Callable[[], Marks | None] | None = None
    ) -> None:
        self._root = root
        self._default = default
        self._build = build

    def _walk(self, path: YamlPath) -> Iterator[Marks]:
        if self._build is not None:
            build, self._build = self._build, None
            self._root = build()
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

    @property
    def located(self) -> bool:
        """Whether the marks exist yet (False after a fast load nothing has asked to locate)."""
        return self._build is None

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


class _NeedMarks(Exception):
    """The fast pass met something it does not decide, or something to report (which needs marks)."""


# what a file read gave: its text and bytes, kept so the round-trip pass reads the same
_Read = tuple[str, bytes]


class _Loader:
    def __init__(
        self,
        env: Mapping[str, str],
        limits: LoadLimits,
        *,
        fast: bool | None = None,
        reads: dict[Path, _Read] | None = None,
    ) -> None:
        self.env = env
        self.limits = limits
        # whether libyaml is there is asked with the first file large enough for it (the question
        # imports PyYAML)
        self.fast = FAST_PARSE if fast is None else fast
        self.reads: dict[Path, _Read] = {} if reads is None else reads
        self.issues: list[Issue] = []
        self.files: list[str] = []
        self.contents: list[tuple[str, bytes]] = []
        self.loaded: dict[Path, str] = {}
        self.usable = True

    def run(self, path: Path, display: str, text: str | None) -> LoadedConfig:
        if not self.fast:
            return self._run(path, display, text)
        try:
            return self._run(path, display, text)
        except _NeedMarks:
            slow = _Loader(self.env, self.limits, fast=False, reads=self.reads)
            return slow._run(path, display, text)

    def _marks_later(self, path: Path, display: str, text: str | None) -> Callable[[], Marks | None]:
        """The marks of a fast load: the round-trip parse of the same bytes, when first needed."""
        env, limits, reads = self.env, self.limits, self.reads

        def build() -> Marks | None:
            tree = _Loader(env, limits, fast=False, reads=reads)._load_file(path, display, (), text)
            return None if tree is None else tree[1]

        return build

    def _run(self, path: Path, display: str, text: str | None) -> LoadedConfig:
        root_at = Location(display, 1, 1)
        tree = self._load_file(path, display, (), text)
        if tree is None:
            data: dict[str, Any] = {}
            marks: Marks | None = Marks(root_at)
            self.usable = False
        else:
            data, marks = tree
        if marks is None:
            source_map = SourceMap(None, root_at, self._marks_later(path, display, text))
        else:
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
        if self.fast:
            raise _NeedMarks  # reported by the round-trip pass, with every location
        self.issues.append(Issue.at(where, path, message, "error", snippet))
        self.usable = False

    def _warn(self, marks: Marks | None, path: YamlPath, message: str) -> None:
        self.issues.append(Issue.at(_at(marks), path, message, "warning"))

    def _load_file(
        self, path: Path, display: str, chain: tuple[Path, ...], text: str | None = None
    ) -> tuple[dict[str, Any], Marks | None] | None:
        resolved = path.resolve()
        self.loaded[resolved] = display
        self.files.append(display)
        text = self._read(path, resolved, display) if text is None else self._given(text, display)
        if text is None:
            return None
        parsed = self._parse(text, display)
        if parsed is None:
            return None
        data, marks = parsed
        includes = data.pop("include", None)
        include_marks = None
        if marks is not None:
            include_marks = marks.children.pop("include", None)
            marks.keys.pop("include", None)
        if includes is not None and (include_marks is not None or self.fast):
            self._include(includes, include_marks, path, display, (*chain, resolved), data, marks)
        return data, marks

    def _read(self, path: Path, resolved: Path, display: str) -> str | None:
        known = self.reads.get(resolved)
        if known is not None:  # the round-trip pass after a fast one: the same bytes
            self.contents.append((display, known[1]))
            return known[0]
        try:
            data = read_config_bytes(path, self.limits.max_bytes)
            text = data.decode("utf-8")
        except UnreadableConfig as exc:
            self._error(Location(display), f"cannot read the file: {exc.reason}")
            return None
        except UnicodeDecodeError as exc:
            self._error(Location(display), f"cannot read the file: {exc}")
            return None
        self.reads[resolved] = (text, data)
        self.contents.append((display, data))
        return text

    def _given(self, text: str, display: str) -> str | None:
        data = text.encode("utf-8", errors="surrogateescape")
        if len(data) > self.limits.max_bytes:
            self._error(Location(display), f"cannot read the file: {_too_large(len(data), self.limits)}")
            return None
        self.contents.append((display, data))
        return text

    def _parse(self, text: str, display: str) -> tuple[dict[str, Any], Marks | None] | None:
        if not self.fast:
            return self._round_trip(text, display)
        if len(text) >= FAST_PARSE_MIN_CHARS and fastparse.available():
            try:
                return fastparse.fast_tree(text, self.limits.max_alias_nodes), None
            except fastparse.NotFast:
                raise _NeedMarks from None
        # a small file (or no libyaml): the round-trip parse, its marks dropped as the fast pass has
        # none (they are built again if an issue is to be located; an issue here raises _NeedMarks)
        parsed = self._round_trip(text, display)
        return None if parsed is None else (parsed[0], None)

    def _round_trip(self, text: str, display: str) -> tuple[dict[str, Any], Marks | None] | None:
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
        except (ArithmeticError, LookupError, TypeError, ValueError):
            # ruamel's constructor raises plain exceptions for some plain scalars it resolved as a
            # type but cannot build (2024-13-45, 0x_): find which one, and say where
            where = unreadable_scalar(text)
            line, col, kind = where if where is not None else (1, 1, "value")
            message = f"invalid YAML: not a valid {kind}; quote it if it is meant as text"
            masked, masked_col = mask_values(_line(text, line), col)
            self._error(Location(display, line, col), message, snippet_for(masked, 1, masked_col))
            return None
        if document is None:
            return {}, Marks(Location(display, 1, 1))
        if not isinstance(document, CommentedMap):
            self._error(
                Location(display, 1, 1),
                "the file must be a mapping at the top level (model_list:, router_settings:, ...)",
            )
            return None
        converter = Converter(display, self.limits.max_alias_nodes)
        try:
            converter.audit(document)
        except TooCostly as exc:
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
        value_marks: Marks | None,
        path: Path,
        display: str,
        chain: tuple[Path, ...],
        data: dict[str, Any],
        marks: Marks | None,
    ) -> None:
        """Load and merge the included files (``value_marks``/``marks``: None in the fast pass)."""
        entries: list[tuple[Any, Marks | None, YamlPath]]
        if isinstance(value, str):
            entries = [(value, value_marks, ("include",))]
        elif isinstance(value, list):
            entries = [
                (v, None if value_marks is None else value_marks.children[i], ("include", i))
                for i, v in enumerate(value)
            ]
        else:
            self._error(_at(value_marks), "expected a file name or a list of file names", path=("include",))
            return
        for entry, entry_marks, entry_path in entries:
            if not isinstance(entry, str) or not entry.strip():
                self._error(_at(entry_marks), "expected a file name", path=entry_path)
                continue
            target = path.parent / entry
            target_display = os.path.normpath(os.path.join(os.path.dirname(display), entry))
            resolved = target.resolve()
            if resolved in chain:
                names = [self.loaded.get(p, str(p)) for p in chain[chain.index(resolved) :]]
                cycle = " -> ".join([*names, target_display])
                self._error(_at(entry_marks), f"include cycle: {cycle}", path=entry_path)
                continue
            if resolved in self.loaded:
                first = self.loaded[resolved]
                message = f"{target_display} is already included (as {first}); included once"
                self._warn(entry_marks, entry_path, message)
                continue
            if not target.is_file():
                self.loaded[resolved] = target_display
                reason = "no such file" if not target.exists() else "not a regular file"
                self._error(_at(entry_marks), f"cannot include {target_display}: {reason}", path=entry_path)
                continue
            included = self._load_file(target, target_display, chain)
            if included is not None:
                if marks is None or included[1] is None:
                    _merge_plain(data, included[0])
                else:
                    _merge(data, marks, included[0], included[1], (), self.issues)


def _at(marks: Marks | None) -> Location:
    """Where ``marks`` are; in the fast pass (no marks) the load starts again to find out."""
    if marks is None:
        raise _NeedMarks
    return marks.at


def _too_large(size: int, limits: LoadLimits) -> str:
    return (
        f"the file is larger than {limits.max_bytes} bytes ({size} bytes); "
        "raise config_max_bytes (ROUTERD_CONFIG_MAX_BYTES) if it is meant to be this large"
    )


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def _merge_plain(dst: dict[str, Any], src: dict[str, Any]) -> None:
    """:func:`_merge` in the fast pass: the same merge while it warns of nothing (else: marks needed)."""
    for key, value in src.items():
        if key not in dst:
            dst[key] = value
            continue
        mine = dst[key]
        if isinstance(mine, dict) and isinstance(value, dict):
            _merge_plain(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            mine.extend(value)
        else:
            raise _NeedMarks  # a conflict: warned about with both locations by the round-trip pass


def _merge(
    dst: dict[str, Any],
    dst_marks: Marks,
    src: dict[str, Any],
    src_marks: Marks,
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
