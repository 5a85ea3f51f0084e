"""Static checks of a role file: the mistakes an import cannot see, found by reading its ast.

Rules kept here (docs/ROLES.md has the same table):
- Errors (the role is not loaded): an import of anything but ``common``, ``strands``, the
  standard library and ``roles.allowed_imports``; an import of another role; in an event handler,
  or a helper of the file it calls, blocking I/O (``open``, network, subprocess, database,
  ``time.sleep``), a ``global`` statement, or a change to a module-level dict, list or set; in
  an intent handler a call of ``services.kv`` or ``services.timers`` that is not awaited.
- Warnings (the role loads; ``intentd check`` and the log show them): in an event handler a
  wall-clock read (``time.time()``, ``datetime.now()``) or ``print()``; an event handler with a
  path that ends without ``return``; a tool argument its docstring's ``Args:`` section omits.
- Each finding is one line, ``file:line: what was found; the rule and the fix``.
"""

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

ALLOWED_PACKAGES = frozenset({"common", "strands", "__future__"})
CLOCK_READS = frozenset({
    "time.time", "time.time_ns", "datetime.datetime.now", "datetime.datetime.utcnow",
    "datetime.datetime.today", "datetime.date.today",
})  # fmt: skip
BLOCKING = {  # module or function prefix -> what kind of I/O a call to it does
    "builtins.open": "file", "io.open": "file", "os.open": "file", "shutil": "file",
    "socket": "network", "ssl": "network", "http.client": "network", "urllib.request": "network",
    "urllib3": "network", "requests": "network", "httpx": "network", "aiohttp": "network",
    "ftplib": "network", "smtplib": "network", "imaplib": "network", "poplib": "network",
    "xmlrpc.client": "network", "asyncio.open_connection": "network",
    "subprocess": "subprocess", "os.system": "subprocess", "os.popen": "subprocess",
    "multiprocessing": "subprocess", "asyncio.create_subprocess_exec": "subprocess",
    "asyncio.create_subprocess_shell": "subprocess", "sqlite3": "database",
    "time.sleep": "sleeping",
}  # fmt: skip
MUTATORS = frozenset({
    "append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault",
    "add", "discard", "sort", "reverse", "appendleft", "extendleft", "popleft", "rotate",
    "difference_update", "intersection_update", "symmetric_difference_update",
})  # fmt: skip
CONTAINER_CALLS = frozenset({
    "builtins.dict", "builtins.list", "builtins.set", "collections.defaultdict",
    "collections.Counter", "collections.deque", "collections.OrderedDict",
})  # fmt: skip
_ARGS_HEADER = re.compile(r"^\s*(?:Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*\**(\w+)\s*(?:\([^)]*\))?\s*:")
Function = ast.FunctionDef | ast.AsyncFunctionDef
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


RULES = {  # rule -> (is a warning, message); the file is not executed after an import rule
    "import": (False, "the file imports {module!r}, which is not common, strands, the standard "
               "library or in roles.allowed_imports; remove the import, or add {top!r} to "
               "roles.allowed_imports in config.yaml"),
    "other_role": (False, "the file imports {module!r}, another role; roles never import each "
                   "other, so define what you need in this file or talk to the other role "
                   "through an event (EventIntent)"),
    "blocking": (False, "{who} calls {call}() ({kind} I/O), which blocks the daemon's one event "
                 "loop; event handlers are pure, so return an intent and do the I/O in its "
                 "intent handler"),
    "global": (False, "{who} declares 'global {names}'; handlers keep no state between events "
               "(a reload loses it), so keep it in services.kv from an intent handler"),
    "module_state": (False, "{who} changes the module-level {kind} {name!r} ({how}); module "
                     "state is lost on reload and makes the handler impure, so keep it in "
                     "services.kv from an intent handler"),
    "unawaited": (False, "intent handler {name!r} calls {call}() without 'await', so nothing "
                  "happens and it gets a coroutine, not the result; services.kv and "
                  "services.timers are async, so write 'await {call}(...)'"),
    "clock": (True, "{who} reads the wall clock with {call}(), so a replayed event asks for "
              "different intents; use context.timestamp (epoch seconds) instead"),
    "print": (True, "{who} calls print(), whose output is mixed into the console channel's "
              "stdout; return a NotificationIntent, or log with services.log in an intent handler"),
    "no_return": (True, "event handler {name!r} can reach its end without 'return', so it "
                  "returns None and asks for nothing; end every path with 'return [...]' "
                  "('return []' when there is nothing to do)"),
    "tool_args": (True, "tool {name!r} does not describe argument(s) {names} in its docstring's "
                  "'Args:' section, so the model gets no description of them; add 'Args:' with "
                  "a line '{first}: what it is' for each"),
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One broken rule at one line; ``warning`` findings leave the role loaded."""

    line: int
    rule: str
    message: str
    warning: bool = False

    @classmethod
    def of(cls, line: int, rule: str, **fields: object) -> "Finding":
        """Return the finding of ``rule`` at ``line``, its message filled in with ``fields``."""
        warning, message = RULES[rule]
        return cls(line, rule, message.format(**fields), warning)

    @property
    def blocks_import(self) -> bool:
        """Return True for an import rule: the file is then not executed."""
        return self.rule in ("import", "other_role")


def lint_role(source: str | bytes, allowed_imports: Iterable[str] = ()) -> list[Finding]:
    """Return what the static checks find in a role file's source; raise SyntaxError if bad."""
    tree = ast.parse(source)
    reader = _Module(tree)
    findings = list(_import_findings(tree, tuple(allowed_imports)))
    handlers = reader.event_handler_names()
    for function, handler in reader.reachable(handlers):
        findings.extend(reader.handler_findings(function, handler))
    for name in handlers:
        function = reader.functions[name]
        if _can_fall_off(function.body) and not _is_generator(function):
            findings.append(Finding.of(function.lineno, "no_return", name=name))
    findings.extend(_tool_findings(reader))
    findings.extend(_unawaited_findings(reader))
    return sorted(findings, key=lambda finding: finding.line)


def _import_findings(tree: ast.Module, allowed: tuple[str, ...]) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                modules = [f"{'.' * node.level}{node.module or ''}"]
            elif node.module == "roles":
                modules = [f"roles.{alias.name}" for alias in node.names]
            else:
                modules = [node.module or ""]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if module.startswith(".") or top == "roles":
                yield Finding.of(node.lineno, "other_role", module=module)
            elif not _allowed(module, allowed):
                yield Finding.of(node.lineno, "import", module=module, top=top)


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    top = module.split(".")[0]
    if top in ALLOWED_PACKAGES or top in sys.stdlib_module_names:
        return True
    return any(module == name or module.startswith(f"{name}.") for name in allowed)


class _Module:
    """What one role file defines: its functions, imports and module-level containers."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.functions: dict[str, Function] = {
            node.name: node for node in tree.body if isinstance(node, Function)
        }
        self.aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        self.aliases[head] = head
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.containers: dict[str, str] = {}
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else ([node.target] if isinstance(node, ast.AnnAssign) and node.value else [])
            )
            kind = self._container_kind(getattr(node, "value", None))
            for target in targets:
                if kind and isinstance(target, ast.Name):
                    self.containers[target.id] = kind

    def _container_kind(self, value: ast.expr | None) -> str | None:
        kinds = {
            ast.Dict: "dict",
            ast.DictComp: "dict",
            ast.List: "list",
            ast.ListComp: "list",
            ast.Set: "set",
            ast.SetComp: "set",
        }
        if type(value) in kinds:
            return kinds[type(value)]
        if isinstance(value, ast.Call) and self.qualified(value.func) in CONTAINER_CALLS:
            return self.qualified(value.func).rsplit(".", 1)[1].lower()
        return None

    def qualified(self, node: ast.expr) -> str:
        """Return the dotted name a call target resolves to through the file's imports."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return ""
        head = self.aliases.get(node.id)
        if head is None:
            head = node.id if node.id in self.functions else f"builtins.{node.id}"
        return ".".join([head, *reversed(parts)])

    def event_handler_names(self) -> list[str]:
        """Return the functions register_role() maps events to (``handle_*`` if unreadable)."""
        names = [
            value.id
            for mapping in registration_values(self.tree, "event_handlers")
            if isinstance(mapping, ast.Dict)
            for value in mapping.values
            if isinstance(value, ast.Name) and value.id in self.functions
        ]
        return names or [name for name in self.functions if name.startswith("handle_")]

    def reachable(self, handlers: list[str]) -> Iterator[tuple[Function, str]]:
        """Yield each handler and each file function it calls, once, with the handler's name."""
        seen: set[str] = set()
        for handler in handlers:
            pending = [handler]
            while pending:
                name = pending.pop()
                if name in seen or name not in self.functions:
                    continue
                seen.add(name)
                function = self.functions[name]
                yield function, handler
                pending.extend(
                    node.func.id
                    for node in ast.walk(function)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                )

    def handler_findings(self, function: Function, handler: str) -> Iterator[Finding]:
        """Yield the purity findings inside ``function`` (``handler`` itself or its helper)."""
        who = (
            f"event handler {handler!r}"
            if function.name == handler
            else (f"{function.name!r}, called by event handler {handler!r},")
        )
        local = _local_names(function)
        for node in ast.walk(function):
            if isinstance(node, ast.Global):
                yield Finding.of(node.lineno, "global", who=who, names=", ".join(node.names))
            elif isinstance(node, ast.Call):
                yield from self._call_findings(node, who, local)
            for line, name, how in _mutations(node):
                if name in self.containers and name not in local:
                    kind = self.containers[name]
                    yield Finding.of(line, "module_state", who=who, kind=kind, name=name, how=how)

    def _call_findings(self, node: ast.Call, who: str, local: set[str]) -> Iterator[Finding]:
        target = node.func
        if isinstance(target, ast.Name) and target.id in local:
            return
        name = self.qualified(target)
        shown = ast.unparse(target)
        kind = next(
            (
                kind
                for prefix, kind in BLOCKING.items()
                if name == prefix or name.startswith(f"{prefix}.")
            ),
            None,
        )
        if kind is None and re.fullmatch(r"os\.(?:exec|spawn)\w*|os\.fork", name):
            kind = "subprocess"
        if kind is not None:
            yield Finding.of(node.lineno, "blocking", who=who, call=shown, kind=kind)
        elif name in CLOCK_READS:
            yield Finding.of(node.lineno, "clock", who=who, call=shown)
        elif name == "builtins.print":
            yield Finding.of(node.lineno, "print", who=who)


def registration_values(tree: ast.Module, key: str) -> Iterator[ast.expr]:
    """Yield the values under ``key`` in every dict literal register_role() returns."""
    for node in tree.body:
        if isinstance(node, Function) and node.name == "register_role":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    for name, value in zip(ret.value.keys, ret.value.values, strict=True):
                        if isinstance(name, ast.Constant) and name.value == key:
                            yield value


def _local_names(function: Function) -> set[str]:
    args = function.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    declared = {
        name for node in ast.walk(function) if isinstance(node, ast.Global) for name in node.names
    }
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, Function) and node is not function:
            names.add(node.name)
    return names - declared


def _mutations(node: ast.AST) -> Iterator[tuple[int, str, str]]:
    """Yield (line, name, how) for each change ``node`` makes to the contents of a named object."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    for target in targets:
        root = target
        while isinstance(root, (ast.Subscript, ast.Attribute)):
            root = root.value
        if root is not target and isinstance(root, ast.Name):
            verb = "del" if isinstance(node, ast.Delete) else "assigns"
            yield target.lineno, root.id, f"{verb} {ast.unparse(target)}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = node.func.value
        if isinstance(owner, ast.Name) and node.func.attr in MUTATORS:
            yield node.lineno, owner.id, f"calls {owner.id}.{node.func.attr}()"


def _can_fall_off(body: list[ast.stmt]) -> bool:
    """Return True when running ``body`` can reach its end (no return or raise on some path)."""
    return not any(_ends(statement) for statement in body)


def _ends(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Return, ast.Raise)):
        return True
    if isinstance(node, ast.If):
        return not _can_fall_off(node.body) and not _can_fall_off(node.orelse)
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return not _can_fall_off(node.body)
    if isinstance(node, (ast.Try, ast.TryStar)):
        normal = not _can_fall_off(node.body) or not _can_fall_off(node.orelse)
        caught = all(not _can_fall_off(handler.body) for handler in node.handlers)
        return (normal and caught) or not _can_fall_off(node.finalbody)
    if isinstance(node, ast.While):
        forever = isinstance(node.test, ast.Constant) and bool(node.test.value)
        return forever and not any(isinstance(n, ast.Break) for n in _same_loop(node.body))
    if isinstance(node, ast.Match):
        irrefutable = any(
            isinstance(case.pattern, ast.MatchAs)
            and case.pattern.pattern is None
            and case.guard is None
            for case in node.cases
        )
        return irrefutable and all(not _can_fall_off(case.body) for case in node.cases)
    return False


def _same_loop(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Yield the nodes of a loop body that are not inside a nested loop or function."""
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, (ast.For, ast.AsyncFor, ast.While, *_FUNCTIONS)):
            pending.extend(ast.iter_child_nodes(node))


def _is_generator(function: Function) -> bool:
    return any(isinstance(node, (ast.Yield, ast.YieldFrom)) for node in ast.walk(function))


SERVICE_CALLS = {  # the async members of RoleServices, by attribute
    "kv": frozenset({"get", "set", "delete", "keys"}),
    "timers": frozenset({"create", "cancel", "get", "list"}),
}


def _unawaited_findings(reader: _Module) -> Iterator[Finding]:
    """Yield each call of ``services.kv.*`` or ``services.timers.*`` an intent handler does not
    await (as an argument of another call, ``asyncio.gather(...)`` say, it is left alone)."""
    names = {
        value.id
        for mapping in registration_values(reader.tree, "intents")
        if isinstance(mapping, ast.Dict)
        for value in mapping.values
        if isinstance(value, ast.Name)
    }
    for name in sorted(names):
        function = reader.functions.get(name)
        params = [a.arg for a in function.args.args] if function is not None else []
        if function is None or len(params) < 2:
            continue
        services = params[1]
        consumed = {
            id(child)
            for node in ast.walk(function)
            if isinstance(node, (ast.Await, ast.Call))
            for child in ast.iter_child_nodes(node)
        }
        for node in ast.walk(function):
            if not isinstance(node, ast.Call) or id(node) in consumed:
                continue
            target = node.func
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Attribute)
                and isinstance(target.value.value, ast.Name)
                and target.value.value.id == services
                and target.attr in SERVICE_CALLS.get(target.value.attr, ())
            ):
                yield Finding.of(node.lineno, "unawaited", name=name, call=ast.unparse(target))


def _tool_findings(reader: _Module) -> Iterator[Finding]:
    for function in reader.functions.values():
        context = _tool_context_name(reader, function)
        if context is None:
            continue
        docstring = ast.get_docstring(function)
        if not docstring:
            continue  # the contract check reports a tool without a description
        args = function.args
        wanted = [
            a.arg
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]
            if a.arg not in ("self", "cls", context)
        ]
        missing = [name for name in wanted if name not in _described(docstring)]
        if missing:
            names = ", ".join(map(repr, missing))
            yield Finding.of(function.lineno, "tool_args", name=function.name, names=names,
                             first=missing[0])  # fmt: skip


def _tool_context_name(reader: _Module, function: Function) -> str | None:
    """Return a ``@tool`` function's injected context parameter ('' if none); None if no tool."""
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call is not None else decorator
        if reader.qualified(target) not in ("strands.tool", "strands.tools.decorator.tool"):
            continue
        for keyword in call.keywords if call is not None else []:
            if keyword.arg == "context" and isinstance(keyword.value, ast.Constant):
                value = keyword.value.value
                return value if isinstance(value, str) else "tool_context" if value else ""
        return ""
    return None


def _described(docstring: str) -> set[str]:
    names: set[str] = set()
    lines = docstring.splitlines()
    for index, line in enumerate(lines):
        if not _ARGS_HEADER.match(line):
            continue
        indent = len(line) - len(line.lstrip())
        for entry in lines[index + 1 :]:
            if entry.strip() and len(entry) - len(entry.lstrip()) <= indent:
                break
            match = _ARG_LINE.match(entry)
            if match:
                names.add(match.group(1))
    return names
