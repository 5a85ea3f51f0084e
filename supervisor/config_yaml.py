"""Read a config file's YAML within bounds, so a hostile file costs little and fails in one line.

Rules kept here:
- The file is at most ``MAX_BYTES`` (1 MiB); a bigger one is refused before it is read whole.
- It must be UTF-8 text without control characters (a NUL byte included); the error names the line.
- Before anything is built from it, its events are scanned: nesting deeper than ``MAX_DEPTH`` or
  aliases expanding it past ``MAX_NODES`` values (a "billion laughs" file) are refused, so neither
  the loader nor ``${VAR}`` expansion can recurse or copy without limit.
- libyaml's ``CSafeLoader`` parses it (PyYAML's pure-Python SafeLoader where libyaml is missing).
- Every error is one sentence naming the file and, where known, the line.
"""

from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NODES = 10_000
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def read_yaml(path: Path) -> Any:
    """Return the YAML document in ``path``; raise a one-line ConfigError if it is out of bounds."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from err
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path}: the file is over the {MAX_BYTES}-byte (1 MiB) limit for a config file; "
            "a config file is a few kilobytes, so check that this is the right file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{path}:{line}: the file is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from err
    try:
        _check_shape(text, path)
        return yaml.load(text, Loader=_Loader)  # a safe loader: plain data only
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        char = chr(err.character) if isinstance(err.character, int) else err.character
        what = "a NUL byte" if char == "\0" else f"the control character {char!r}"
        raise ConfigError(
            f"{path}:{line}: the file holds {what} at column {column}, which YAML does not "
            "allow; remove it"
        ) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "unreadable"
        raise ConfigError(f"{path}{where}: the file is not valid YAML ({problem})") from err


def _check_shape(text: str, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH and alias expansion past MAX_NODES, in one pass."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) of its node
    open_nodes: list[list[Any]] = []  # [anchor, values, depth below] per open collection
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, _OPEN):
            if len(open_nodes) >= MAX_DEPTH:
                raise ConfigError(
                    f"{path}:{line}: the YAML nests deeper than {MAX_DEPTH} levels; a config "
                    "file needs a handful, so flatten it"
                )
            open_nodes.append([event.anchor, 1, 0])
            continue
        if isinstance(event, _CLOSE):
            anchor, values, depth = open_nodes.pop()
            node = (values, depth + 1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise ConfigError(
                    f"{path}:{line}: alias *{event.anchor} refers to a node that is not complete "
                    "yet (or not defined); define &anchor before using it, outside itself"
                )
            anchor, node = None, anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            anchor, node = event.anchor, (1, 0)
        else:
            continue
        if anchor is not None:
            anchors[anchor] = node
        if not open_nodes:
            total += node[0]
        else:
            parent = open_nodes[-1]
            parent[1] += node[0]
            parent[2] = max(parent[2], node[1])
        expanded = total + sum(item[1] for item in open_nodes)
        if expanded > MAX_NODES or len(open_nodes) + node[1] > MAX_DEPTH:
            raise ConfigError(
                f"{path}:{line}: YAML aliases (*name) expand the file past {MAX_NODES} values "
                f"or {MAX_DEPTH} levels; write the values out instead of repeating them"
            )
